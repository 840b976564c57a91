"""Run logs other than testbed run folders, made into ``calibration.runs.Run``s.

``load_log(path)`` reads a ``vllm bench serve`` detailed result (``.json``,
``bench_serve``) or a per-request log (``.jsonl`` / ``.csv``,
``request_log``), takes the engine settings from the sidecar beside it
(``sidecar``) and returns a ``Run`` that ``fleetcast validate`` and
``fleetcast calibrate`` replay like a testbed run: the exact send times,
prompt and output lengths of the requests that succeeded, on the GPU of the
main fleetcast catalog. Such a log has no server time series, so the
running/waiting comparison is "not measured". docs/run-logs.md has the
formats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calibration.log_files import LOG_SUFFIXES, is_log_file
from calibration.logs.bench_serve import looks_like_bench_serve, read_bench_serve, read_json_object
from calibration.logs.request_log import read_request_log
from calibration.logs.sidecar import LogSettings, load_settings
from calibration.runs import Run
from sim.errors import FleetcastError
from sim.records import derive_latencies
from sim.workload.generate import Workload

__all__ = ["load_log", "is_log_file", "LOG_SUFFIXES"]

_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


def load_log(path: Path, sidecar: Path | None = None, overrides: list[str] | None = None) -> Run:
    """A bench-serve result or per-request log, with its engine settings, as a replayable ``Run``."""
    path = Path(path)
    if not path.is_file():
        raise FleetcastError(
            f"{path} not found; give a testbed run folder, a vLLM bench serve result (.json) or "
            "a per-request log (.jsonl, .csv; docs/run-logs.md)"
        )
    meta: dict = {}
    notes: list[str] = []
    if path.suffix.lower() == ".json":
        data = read_json_object(path)
        if not looks_like_bench_serve(data):
            raise FleetcastError(
                f"{path}: not a vLLM bench serve result (no ttfts, output_throughput or "
                "num_prompts field); give the file `vllm bench serve --save-result "
                "--save-detailed` wrote (docs/run-logs.md)"
            )
        records, bench, notes = read_bench_serve(path, data)
        source, cap = "vllm bench serve", bench.get("max_concurrency")
        meta["bench_serve"] = bench
    else:
        records, source, cap = read_request_log(path), "per-request log", None
    settings = load_settings(path, sidecar, overrides)
    if cap is None:
        cap = settings.concurrency
    return _to_run(path, records, settings, meta, source, cap, notes)


def _to_run(path: Path, records: pd.DataFrame, st: LogSettings, meta: dict, source: str, cap, notes) -> Run:
    records = records.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    records.insert(0, "request_id", np.arange(len(records), dtype=np.int64))
    records["replica"] = "vllm-0"
    req = derive_latencies(records)
    ok = req[req["status"] == "ok"]
    if ok.empty:
        raise FleetcastError(
            f"{path}: every one of its {len(req)} requests failed; nothing to compare "
            f"(first error: {str(req['error'].iloc[0])[:200]!r})"
        )
    failed = int(len(req) - len(ok))
    if failed:
        first = str(req.loc[req["status"] != "ok", "error"].iloc[0]).strip().splitlines()
        notes.append(
            f"{failed} of {len(req)} requests failed; they are left out of the latencies "
            f"and throughput and are not replayed (first error: {(first[-1] if first else '')[:160]!r})"
        )
    names = sorted(ok["class"].astype(str).unique())
    wl = Workload(
        arrival_s=ok["arrival_s"].to_numpy(float),
        class_idx=ok["class"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int16),
        prompt_tokens=ok["prompt_tokens"].to_numpy(np.int32),
        output_tokens=ok["output_tokens"].to_numpy(np.int32),
        prefix_offsets=np.zeros(len(ok) + 1, dtype=np.int64),
        prefix_keys=np.zeros(0, dtype=np.int64),
        prefix_end_tok=np.zeros(0, dtype=np.int32),
        class_names=names,
    )
    lens = ok[["prompt_tokens", "output_tokens"]].drop_duplicates()
    if cap is not None and len(lens) == 1:  # a closed loop of one request shape: a sweep point
        meta["sweep_point"] = {
            "concurrency": int(cap),
            "prompt_tokens": int(lens.iloc[0, 0]),
            "output_tokens": int(lens.iloc[0, 1]),
        }
    meta.update(
        {
            "source": source,
            "log": str(path),
            "engine_settings": st.source,
            "vllm_version": st.vllm_version,
            "hardware": {"gpu": st.gpu, "tensor_parallel": st.tensor_parallel}
            | ({"expert_parallel": True} if st.expert_parallel else {}),
            "engine_args": dict(st.engine),
            "max_concurrency": cap,
            "failed_requests": failed,
            "notes": [*st.notes, *notes],
        }
    )
    if st.policy:
        meta["policy"] = st.policy
    name = f"{path.parent.name}/{path.name}" if path.parent.name not in ("", ".") else path.name
    return Run(
        path,
        name,
        meta,
        req,
        pd.DataFrame(),
        wl,
        "closed" if cap is not None else "open",
        st.model,
        _DTYPE.get(st.weights, "bfloat16"),
        st.weights,
        st.kv_cache,
        dict(st.engine),
        gpu=st.gpu,
        tp=st.tensor_parallel,
        expert_parallel=st.expert_parallel,
        catalogs=st.catalogs,
        failed=failed,
        notes=tuple(meta["notes"]),
    )
