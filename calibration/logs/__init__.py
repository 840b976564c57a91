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

__all__ = ["load_log", "is_log_file", "LOG_SUFFIXES", "conversation_chains"]

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
    sharing = "warmup" in records.columns
    warm = records[records["warmup"] & (records["status"] == "ok")] if sharing else records.iloc[:0]
    if sharing:  # the warm-up is replayed first, not measured (calibration.validate drops its request ids)
        records = records[~records["warmup"]].reset_index(drop=True)
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
    played = pd.concat([warm, ok], ignore_index=True) if len(warm) else ok
    names = sorted(played["class"].astype(str).unique())
    if sharing:
        offsets, keys, ends = conversation_chains(
            played["conversation"].astype(str).tolist(),
            played["turn"].to_numpy(np.int64),
            played["prefix_tokens"].to_numpy(np.int64),
            played["prompt_tokens"].to_numpy(np.int64),
        )
        req = req.drop(columns=["conversation", "turn", "prefix_tokens", "warmup"])
    else:
        offsets = np.zeros(len(ok) + 1, dtype=np.int64)
        keys, ends = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    wl = Workload(
        arrival_s=played["arrival_s"].to_numpy(float),
        class_idx=played["class"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int16),
        prompt_tokens=played["prompt_tokens"].to_numpy(np.int32),
        output_tokens=played["output_tokens"].to_numpy(np.int32),
        prefix_offsets=offsets,
        prefix_keys=keys,
        prefix_end_tok=ends,
        class_names=names,
    )
    if len(warm):
        meta["warmup_requests"] = len(warm)
        notes.append(f"{len(warm)} warm-up requests sent before the measured ones are replayed first and not measured")
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
    if st.client_cpu:
        meta["client_cpu"] = st.client_cpu
        meta["notes"].append(
            f"the client's own CPU ({st.client_cpu['per_request_s'] * 1e3:g} ms per request, "
            f"{st.client_cpu['per_chunk_s'] * 1e6:g} µs per chunk; sidecar client_cpu) is added to the replay's "
            "first and last tokens (calibration/logs/client_cpu.py)"
        )
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


def conversation_chains(conversations: list[str], turns: np.ndarray, shared: np.ndarray, prompt: np.ndarray):
    """Prefix chains (``Workload.prefix_*``, CSR) of requests that are turns of conversations: turn
    ``t``'s first ``shared`` tokens are turn ``t-1``'s first ``shared`` tokens. Each turn's own tokens are
    one chunk keyed by (conversation, turn), so every request of that turn has the same keys; a turn's
    chain is its previous turn's chain cut at the shared length, then its own chunk. Block ``i`` of two
    requests then gets the same key exactly when both hold it as the same turn's content
    (``sim.engine.prefix_keys.PrefixKeys``). A request outside any conversation (empty name) has no
    chain. The caller has checked that a turn with a shared prefix has its previous turn in the list
    (``request_log``)."""
    spec = {(c, int(t)): (int(s), int(p)) for c, t, s, p in zip(conversations, turns, shared, prompt) if c}
    key = {ct: i + 1 for i, ct in enumerate(sorted(spec))}
    chains: dict[tuple[str, int], list[tuple[int, int]]] = {}

    def chain(ct: tuple[str, int]) -> list[tuple[int, int]]:
        got = chains.get(ct)
        if got is None:
            s, p = spec[ct]
            got = []
            for k, e in chain((ct[0], ct[1] - 1)) if s else ():
                got.append((k, min(e, s)))
                if e >= s:
                    break
            got.append((key[ct], p))
            chains[ct] = got
        return got

    offsets = np.zeros(len(prompt) + 1, dtype=np.int64)
    keys: list[int] = []
    ends: list[int] = []
    for r, c in enumerate(conversations):
        if c:
            ch = chain((c, int(turns[r])))
            keys.extend(k for k, _e in ch)
            ends.extend(e for _k, e in ch)
        offsets[r + 1] = len(keys)
    return offsets, np.array(keys, dtype=np.int64), np.array(ends, dtype=np.int32)
