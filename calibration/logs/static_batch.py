"""A static-batch table (``*.batches.csv``): aggregate measurements of whole batches sent at once.

One row per measured batch: ``batch_size`` requests of ``prompt_tokens`` prompt tokens each, all
sent at time 0 (an offline ``LLM.generate`` of one batch of prompt token ids: no API server, so the
replay has no front end, ``Run.api_server``), each generating exactly
``output_tokens`` tokens (``ignore_eos``), and ``batch_latency_s``, the measured time from the send
to the last request's last token. Optional columns: ``name`` (the entry's name; default
``b<batch>-p<prompt>-o<output>``), ``ttft_p50_s`` and ``tpot_p50_s`` where the source measured them;
other columns are ignored. (Throughput is not compared apart: for a batch it is tokens / latency.)
The engine settings come from the sidecar as for any log (docs/run-logs.md). Each row becomes one
``calibration.runs.Run`` whose workload is that batch and whose measured side is the row's figures
(``meta['aggregate_measured']``); it has no per-request records.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.logs.sidecar import LogSettings, load_settings
from calibration.runs import Run
from sim.errors import FleetcastError
from sim.workload.generate import Workload

__all__ = ["STATIC_BATCH_SUFFIX", "is_static_batch_table", "load_static_batches", "BATCH_FIELDS"]

STATIC_BATCH_SUFFIX = ".batches.csv"
BATCH_FIELDS = ("batch_size", "prompt_tokens", "output_tokens", "batch_latency_s")
_OPTIONAL = ("ttft_p50_s", "tpot_p50_s")
_DOC = 'docs/run-logs.md, "Static-batch tables"'
_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


def is_static_batch_table(path: Path) -> bool:
    return Path(path).name.lower().endswith(STATIC_BATCH_SUFFIX)


def load_static_batches(path: Path, sidecar: Path | None = None, overrides: list[str] | None = None) -> list[Run]:
    """Every row of the table as a replayable ``Run``; a bad row is a FleetcastError naming the file,
    line and field."""
    path = Path(path)
    rows = _read(path)
    st = load_settings(path, sidecar, overrides)
    return [_run(path, line, rec, st) for line, rec in rows]


def _read(path: Path) -> list[tuple[int, dict]]:
    def check(header: list[str]) -> None:
        missing = [f for f in BATCH_FIELDS if f not in header]
        if missing:
            raise FleetcastError(
                f"{path}, line 1: the header lacks the column(s) {', '.join(missing)}; a "
                f"static-batch table has {', '.join(BATCH_FIELDS)} ({_DOC})"
            )

    return read_csv_table(path, check, "a static-batch table has one row per measured batch", _DOC)


def read_csv_table(
    path: Path, check_header: Callable[[list[str]], None], one_row_per: str, doc: str
) -> list[tuple[int, dict]]:
    """The rows of a CSV table as (line, {column: stripped cell}), blank lines skipped;
    ``check_header`` raises on a header that lacks what the table needs. A row whose cell count
    is not the header's, an unreadable file or a table with no rows is a FleetcastError naming
    the file and line (``one_row_per``: what a row is, for that message; ``doc``: where the format
    is documented)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            check_header(header)
            out = []
            for row in reader:
                if not any(c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise FleetcastError(
                        f"{path}, line {reader.line_num}: {len(row)} cells but the header names "
                        f"{len(header)} columns ({doc})"
                    )
                out.append((reader.line_num, {h: c.strip() for h, c in zip(header, row)}))
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetcastError(f"cannot read {path}: {exc}") from None
    if not out:
        raise FleetcastError(f"{path} holds no rows; {one_row_per} ({doc})")
    return out


def _num(path: Path, line: int, rec: dict, fld: str, *, integer: bool) -> float:
    text = rec.get(fld, "")
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    ok = math.isfinite(v) and v > 0 and (not integer or v == int(v))
    if not ok:
        kind = "an integer >= 1" if integer else "a number > 0 (seconds)"
        raise FleetcastError(f"{path}, line {line}, field {fld}: must be {kind}, got {text!r} ({_DOC})")
    return int(v) if integer else v


def _run(path: Path, line: int, rec: dict, st: LogSettings) -> Run:
    b, p, o = (int(_num(path, line, rec, f, integer=True)) for f in BATCH_FIELDS[:3])
    measured = {"batch_latency_s": _num(path, line, rec, "batch_latency_s", integer=False)}
    for f in _OPTIONAL:
        if rec.get(f):
            measured[f] = _num(path, line, rec, f, integer=False)
    name = rec.get("name") or f"b{b}-p{p}-o{o}"
    wl = Workload(
        arrival_s=np.zeros(b),
        class_idx=np.zeros(b, dtype=np.int16),
        prompt_tokens=np.full(b, p, dtype=np.int32),
        output_tokens=np.full(b, o, dtype=np.int32),
        prefix_offsets=np.zeros(b + 1, dtype=np.int64),
        prefix_keys=np.zeros(0, dtype=np.int64),
        prefix_end_tok=np.zeros(0, dtype=np.int32),
        class_names=["default"],
    )
    meta = {
        "source": "static-batch table",
        "log": str(path),
        "line": line,
        "engine_settings": st.source,
        "vllm_version": st.vllm_version,
        "hardware": {"gpu": st.gpu, "tensor_parallel": st.tensor_parallel}
        | ({"expert_parallel": True} if st.expert_parallel else {}),
        "engine_args": dict(st.engine),
        "aggregate_measured": measured,
        "static_batch": {"batch_size": b, "prompt_tokens": p, "output_tokens": o},
        "notes": list(st.notes),
    }
    if st.policy:
        meta["policy"] = st.policy
    if st.client_cpu:  # the client's stamps per request: a per-request log's (calibration/logs/client_cpu.py)
        raise FleetcastError(f"{st.source}: client_cpu is for per-request logs only, not {path.name}")
    empty = pd.DataFrame(
        {
            c: pd.Series(dtype=float)
            for c in (
                "request_id",
                "arrival_s",
                "first_token_s",
                "finish_s",
                "prompt_tokens",
                "output_tokens",
                "ttft_s",
                "tpot_s",
                "e2e_s",
            )
        }
    ).assign(status=pd.Series(dtype=object))
    run_name = f"{path.parent.name}/{name}" if path.parent.name not in ("", ".") else name
    return Run(
        path,
        run_name,
        meta,
        empty,
        pd.DataFrame(),
        wl,
        "static",
        st.model,
        _DTYPE.get(st.weights, "bfloat16"),
        st.weights,
        st.kv_cache,
        dict(st.engine),
        gpu=st.gpu,
        tp=st.tensor_parallel,
        expert_parallel=st.expert_parallel,
        catalogs=st.catalogs,
        notes=tuple(st.notes),
    )
