"""A load generator's own CPU in its measured TTFT and E2E: a single-threaded client that reads every
streamed chunk itself (docs/run-logs.md, "The client's own CPU").

Some clients run every stream of a run in one Python event loop: LMBenchmark's ShareGPT client
(LMCache/LMBenchmark ``sharegpt/sharegpt-qa.py``: one ``openai.AsyncOpenAI`` client on one asyncio loop
in one thread, ``time.time()`` taken when the loop reads a request's first chunk and its last). Its
time stamps then include the loop's own work. Per request, two parts:

- ``per_request_s``: building and sending the request and reading its response headers, between the
  clock's start and the first chunk;
- ``per_chunk_s`` per chunk ahead of the stamped one in its step's batch: vLLM sends a step's
  outputs together, the running requests' first and the new requests' last (V1's order,
  ``sim.engine.front_end``), and the client's loop reads the sockets in the order they became ready
  (Linux epoll's ready list is FIFO), so a request's first (or last) chunk is read after one chunk
  of every request streaming at that moment.

So the replay's first token and last token move by ``per_request_s + per_chunk_s · (streaming + 1)``
and ``per_chunk_s · (streaming + 1)``, where ``streaming`` is the replay's requests between their
first and last token at that time. The loop's queueing across steps is left out: the rule holds
while the loop's load, ``per_chunk_s`` times the chunks per second, is well below one
(``client_utilization`` says it, per run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["apply_client_cpu", "client_utilization"]


def _streaming(t_s: np.ndarray, first_s: np.ndarray, last_s: np.ndarray) -> np.ndarray:
    """Requests with ``first_s <= t < last_s`` at each ``t_s`` (sorted searches: O(n log n))."""
    started = np.searchsorted(np.sort(first_s), t_s, side="right")
    ended = np.searchsorted(np.sort(last_s), t_s, side="right")
    return started - ended


def apply_client_cpu(requests: pd.DataFrame, per_request_s: float, per_chunk_s: float) -> pd.DataFrame:
    """``requests`` (the replay's, ``sim.engine`` columns) as the client stamped them (module doc): the
    succeeded requests' ``first_token_s`` and ``finish_s`` later, ``ttft_s``, ``e2e_s`` and ``tpot_s``
    recomputed from them; others unchanged."""
    out = requests.copy()
    ok = (out["status"] == "ok").to_numpy()
    first = out["first_token_s"].to_numpy(dtype=float)[ok]
    last = out["finish_s"].to_numpy(dtype=float)[ok]
    # a request is streaming from its first token (inclusive) to its last (exclusive); at its own first
    # token it is one of them, at its own last token it no longer is: + 1 counts its own chunk either way
    ahead_first = _streaming(first, first, last) - 1
    ahead_last = _streaming(last, first, last)
    new_first = first + per_request_s + per_chunk_s * (ahead_first + 1)
    new_last = np.maximum(last + per_chunk_s * (ahead_last + 1), new_first)
    idx = out.index[ok]
    out.loc[idx, "first_token_s"] = new_first
    out.loc[idx, "finish_s"] = new_last
    arrival = out.loc[idx, "arrival_s"].to_numpy(dtype=float)
    out.loc[idx, "ttft_s"] = new_first - arrival
    out.loc[idx, "e2e_s"] = new_last - arrival
    n = out.loc[idx, "output_tokens"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.loc[idx, "tpot_s"] = np.where(n > 1, (new_last - new_first) / (n - 1), np.nan)
    return out


def client_utilization(requests: pd.DataFrame, per_chunk_s: float) -> float:
    """The client loop's busy share for the chunks over the replay's span (one chunk per output token,
    vLLM's stream with one token a step), first send to last token."""
    ok = requests[requests["status"] == "ok"]
    if ok.empty:
        return 0.0
    span = float(ok["finish_s"].max() - requests["arrival_s"].min())
    return float(per_chunk_s * ok["output_tokens"].sum() / span) if span > 0 else float("inf")
