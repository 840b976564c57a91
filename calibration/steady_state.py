"""The steady window of a saturated burst, as the ML.ENERGY Benchmark measures it.

ML.ENERGY (github.com/ml-energy/benchmark @ c1d6557, ``mlenergy/benchmark/llm/benchmark.py``,
``RequestTracker``; Apache-2.0) sends all N requests at once to a vLLM server capped at B running
sequences (``--max-num-seqs``). Its steady window starts when the B-th request's first token
arrives and ends when N - B - 1 requests have finished (the queue is about to run dry). Over that
window it reports (``ml-energy/data`` @ b37408f, ``mlenergy_data/records/runs.py``):

- output throughput: the tokens streamed inside the window over its length;
- average batch size: the mean of vLLM's ``vllm:num_requests_running`` gauge over the window
  (scraped every second).

The replay computes the same from its own records: the window from the replay's first-token and
finish times; the tokens of each request inside it counted with its tokens evenly spread from its
first token to its finish (the simulator keeps no per-token times; at the batch cap a request's
decode pace is steady); the mean running sequences of the per-second time series inside it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["steady_window", "steady_state_metrics"]


def steady_window(requests: pd.DataFrame, max_num_seqs: int, num_requests: int) -> tuple[float, float]:
    """(start_s, end_s) of the steady window (module doc); NaN where the run never reached it.
    A failed request counts as finished, as in the source's tracker."""
    first = np.sort(requests["first_token_s"].to_numpy(float))
    first = first[np.isfinite(first)]
    fin = np.sort(requests["finish_s"].to_numpy(float))
    fin = fin[np.isfinite(fin)]
    start = float(first[max_num_seqs - 1]) if len(first) >= max_num_seqs else math.nan
    k = max(num_requests - max_num_seqs - 1, 1)  # the source's end fires at the k-th finish
    end = float(fin[k - 1]) if len(fin) >= k else math.nan
    return start, end


def tokens_in(requests: pd.DataFrame, start_s: float, end_s: float) -> int:
    """Output tokens of the ok requests with their time in (start_s, end_s], each request's tokens
    evenly spread from its first token to its finish (module doc)."""
    ok = requests[requests["status"] == "ok"]
    first = ok["first_token_s"].to_numpy(float)
    fin = ok["finish_s"].to_numpy(float)
    n = ok["output_tokens"].to_numpy(np.int64)
    gap = np.where(n > 1, (fin - first) / np.maximum(n - 1, 1), np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(first > start_s, 0, np.floor((start_s - first) / gap) + 1)
        hi = np.where(first > end_s, -1, np.floor((end_s - first) / gap))
    lo = np.clip(np.nan_to_num(lo, nan=0.0, posinf=n), 0, n)
    hi = np.clip(np.nan_to_num(hi, nan=0.0, posinf=n - 1), -1, n - 1)
    return int(np.maximum(hi - lo + 1, 0).sum())


def steady_state_metrics(
    requests: pd.DataFrame, timeseries: pd.DataFrame, max_num_seqs: int, num_requests: int
) -> dict:
    """``output_tok_s`` and ``avg_batch_size`` over the steady window, and the window itself
    (``steady_start_s``, ``steady_end_s``); the figures are NaN when the window is empty."""
    start, end = steady_window(requests, max_num_seqs, num_requests)
    out = {"steady_start_s": start, "steady_end_s": end, "output_tok_s": math.nan, "avg_batch_size": math.nan}
    if not (math.isfinite(start) and math.isfinite(end) and end > start):
        return out
    out["output_tok_s"] = tokens_in(requests, start, end) / (end - start)
    ts = timeseries[(timeseries["t_s"] >= start) & (timeseries["t_s"] <= end)]
    if len(ts):
        out["avg_batch_size"] = float(ts.groupby("t_s")["running"].sum().mean())
    return out
