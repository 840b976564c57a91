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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "REQUEST_COLUMNS",
    "DISAGG_COLUMNS",
    "TIMESERIES_COLUMNS",
    "STATUSES",
    "ITL_EDGES_S",
    "itl_bucket",
    "itl_bucket_one",
    "derive_latencies",
    "latency_columns",
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

#: per-request columns of disaggregated prefill/decode, written by the simulator for a
#: disaggregated run only (co-located runs and the testbed do not have them).
DISAGG_COLUMNS: dict[str, str] = {
    "prefill_replica": "string",  # replica that ran the prompt ("" when it decoded where it prefilled)
    "kv_transfer_s": "float64",  # KV-transfer seconds the request waited for after its prefill (NaN: none)
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
    # compiled, math is libc's (records.pxd): int(floor(...)) is one C cast, no Python call
    idx = int(math.floor((math.log10(gap_s) + 5.0) * 20.0))
    return 0 if idx < 0 else (_ITL_LAST if idx > _ITL_LAST else idx)


def latency_columns(
    arrival_s: np.ndarray, first_token_s: np.ndarray, finish_s: np.ndarray, output_tokens: np.ndarray
) -> dict[str, np.ndarray]:
    """``ttft_s``, ``e2e_s`` and ``tpot_s`` (in that column order) as vLLM ``bench serve``
    defines them, from float64/int arrays of one run.

    TTFT = first token - arrival; E2E = finish - arrival;
    TPOT = (E2E - TTFT) / (output_tokens - 1), NaN for single-token outputs.
    """
    ttft = first_token_s - arrival_s
    e2e = finish_s - arrival_s
    denom = (output_tokens - 1).astype("float64")
    denom[denom <= 0] = np.nan
    return {"ttft_s": ttft, "e2e_s": e2e, "tpot_s": (e2e - ttft) / denom}


def derive_latencies(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with ``ttft_s``, ``e2e_s`` and ``tpot_s`` added (``latency_columns``)."""
    out = df.copy()
    cols = latency_columns(
        out["arrival_s"].to_numpy(),
        out["first_token_s"].to_numpy(),
        out["finish_s"].to_numpy(),
        out["output_tokens"].to_numpy(),
    )
    for name, values in cols.items():
        out[name] = values
    return out


def _atomic_target(path: Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    return path, Path(tmp)


#: rows per Parquet row group: a table is converted to Arrow one row group at a time, so
#: writing costs one row group of memory (~30 MB of records), not a copy of the table
PARQUET_ROW_GROUP_ROWS = 256 * 1024


def write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` via a temp file + rename (never half-written), one row
    group at a time. Categorical columns (the simulator keeps class, replica and status
    as categories in memory) are written as the records' ``string`` columns, so the file
    is the same whichever way the frame held them."""
    path, tmp = _atomic_target(path)
    strings = {c: "string" for c, dt in df.dtypes.items() if isinstance(dt, pd.CategoricalDtype)}
    try:
        writer: Any = None  # a ParquetWriter from the first chunk on (there is always one chunk)
        for lo in range(0, max(len(df), 1), PARQUET_ROW_GROUP_ROWS):
            chunk = df.iloc[lo : lo + PARQUET_ROW_GROUP_ROWS]
            table = pa.Table.from_pandas(chunk.astype(strings) if strings else chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=PARQUET_ROW_GROUP_ROWS)
        writer.close()
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
