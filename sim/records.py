"""The record schema shared by the simulator and the testbed.

One row per request (``REQUEST_COLUMNS``) and one row per (sample time,
replica) for the time series (``TIMESERIES_COLUMNS``). Both sides write the
same columns, so calibration and validation compare like with like. Times are
seconds from the start of the run (the first scheduled arrival is at
``arrival_s >= 0``); ``arrival_s`` is the *intended* send time, so client-side
queueing counts as latency (no coordinated omission).

Inter-token latency is pooled into a fixed log-bucket histogram
(``ITL_EDGES_S``) instead of per-token timestamps, so a million-request run
stays small.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "REQUEST_COLUMNS",
    "TIMESERIES_COLUMNS",
    "STATUSES",
    "ITL_EDGES_S",
    "itl_bucket",
    "itl_bucket_one",
    "derive_latencies",
    "write_parquet_atomic",
    "write_text_atomic",
]

#: column -> dtype of the per-request table (before the derived columns).
REQUEST_COLUMNS: dict[str, str] = {
    "request_id": "int64",  # index in the generated workload (same id in sim and testbed)
    "class": "string",  # traffic class name
    "arrival_s": "float64",  # intended send / arrival time
    "first_token_s": "float64",  # time the first output token was produced (NaN if never)
    "finish_s": "float64",  # time the last output token was produced (NaN if never)
    "prompt_tokens": "int64",
    "output_tokens": "int64",  # output tokens produced (== requested when status ok)
    "cached_prompt_tokens": "int64",  # prompt tokens served from the prefix cache
    "replica": "string",  # "<pool>/<index>" in the simulator; server name in the testbed
    "preemptions": "int64",
    "status": "string",  # one of STATUSES
}

#: derived per-request columns (see ``derive_latencies``).
DERIVED_COLUMNS = ("ttft_s", "tpot_s", "e2e_s")

STATUSES = ("ok", "rejected", "error", "timeout", "cancelled")

#: column -> dtype of the time series.
TIMESERIES_COLUMNS: dict[str, str] = {
    "t_s": "float64",
    "replica": "string",
    "running": "int64",  # requests scheduled in the engine (prefilling or decoding)
    "waiting": "int64",  # requests queued at the replica
    "kv_usage": "float64",  # fraction of KV blocks in use by running requests, 0..1
    "batch_tokens": "int64",  # tokens in the engine step running at t_s
}

#: ITL histogram bucket edges, seconds: 20 log buckets per decade from 10 us
#: to 1000 s. Bucket i holds gaps in [ITL_EDGES_S[i], ITL_EDGES_S[i+1]).
ITL_EDGES_S = np.logspace(-5, 3, 8 * 20 + 1)
_ITL_LAST = len(ITL_EDGES_S) - 2


def itl_bucket(gaps_s: np.ndarray) -> np.ndarray:
    """Bucket index of each gap (clipped into the histogram's range)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        idx = np.floor((np.log10(np.asarray(gaps_s, dtype=float)) + 5.0) * 20.0)
    return np.clip(np.nan_to_num(idx, nan=0.0, neginf=0.0), 0, _ITL_LAST).astype(np.int64)


def itl_bucket_one(gap_s: float) -> int:
    """``itl_bucket`` of one gap, without numpy (the engine's hot path); same formula."""
    if not gap_s > 0:
        return 0
    idx = math.floor((math.log10(gap_s) + 5.0) * 20.0)
    return 0 if idx < 0 else (_ITL_LAST if idx > _ITL_LAST else idx)


def derive_latencies(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``ttft_s``, ``tpot_s`` and ``e2e_s`` as vLLM ``bench serve`` defines them.

    TTFT = first token - arrival; E2E = finish - arrival;
    TPOT = (E2E - TTFT) / (output_tokens - 1), NaN for single-token outputs.
    """
    out = df.copy()
    out["ttft_s"] = out["first_token_s"] - out["arrival_s"]
    out["e2e_s"] = out["finish_s"] - out["arrival_s"]
    denom = (out["output_tokens"] - 1).astype("float64")
    denom[denom <= 0] = np.nan
    out["tpot_s"] = (out["e2e_s"] - out["ttft_s"]) / denom
    return out


def _atomic_target(path: Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return path, Path(tmp)


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` via a temp file + rename (never half-written)."""
    path, tmp = _atomic_target(path)
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(text: str, path: Path) -> None:
    """Write ``text`` to ``path`` via a temp file + rename."""
    path, tmp = _atomic_target(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
