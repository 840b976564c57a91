"""A ``vllm bench serve`` result saved with ``--save-result --save-detailed`` as per-request records.

The format (vLLM's ``vllm/benchmarks/serve.py``, and the older
``benchmarks/benchmark_serving.py``): one JSON object with the run's settings
and totals (``date``, ``backend``, ``model_id``, ``num_prompts``,
``request_rate``, ``burstiness``, ``max_concurrency``, ``duration``,
``completed``, ``output_throughput``, ...) and, with ``--save-detailed``,
parallel per-request lists: ``input_lens``, ``output_lens``, ``ttfts``
(seconds), ``itls`` (a list of gaps in seconds per request), ``errors`` (""
when it succeeded), ``generated_texts`` and, only in versions with vLLM PR
#32667 (January 2026), ``start_times`` (the client's ``time.perf_counter()``
when each request was sent). Which version saves what, and what happens
without ``start_times``, is in docs/run-logs.md.

Per request: arrival = start time - the earliest start time, first token =
arrival + TTFT, last token = first token + sum(ITLs) (vLLM's ``latency``).
A request with a non-empty ``errors[i]`` is failed: status ``error``, no
latencies, not replayed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sim.errors import FleetcastError
from sim.infiles import MAX_DATA_FILE_BYTES, read_text_limited
from sim.workload.spec import MAX_LATENCY_S

__all__ = ["read_bench_serve", "looks_like_bench_serve", "BENCH_LISTS"]

BENCH_LISTS = ("input_lens", "output_lens", "ttfts", "itls")
"""Per-request lists a detailed result always has (``errors`` too, checked separately)."""
_DOC = 'docs/run-logs.md, "vLLM bench serve results"'
_CLASS = "default"


def looks_like_bench_serve(data) -> bool:
    """A JSON object with bench-serve fields (per-request or summary)."""
    return isinstance(data, dict) and any(k in data for k in ("ttfts", "output_throughput", "num_prompts"))


def read_json_object(path: Path) -> dict:
    """A JSON file holding one object; an unreadable file or bad JSON is located (line, column)."""
    # within the log files' limit (a 3 GiB file took 6.4 GB of memory before its JSON error); a binary one located
    text = read_text_limited(Path(path), MAX_DATA_FILE_BYTES, "run log")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FleetcastError(
            f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); a vLLM "
            f"bench serve result is one JSON object ({_DOC})"
        ) from None
    if not isinstance(data, dict):
        raise FleetcastError(
            f"{path}: a vLLM bench serve result is one JSON object, got a JSON {type(data).__name__} ({_DOC})"
        )
    return data


def _num(
    path: Path, i: int, fld: str, v, *, integer: bool = False, minimum: float = 0.0, maximum: float = math.inf
) -> float:
    """A finite number from minimum to maximum (an integer if asked) of record ``i``, else a located error."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and minimum <= v <= maximum
    if ok and integer and v != int(v):
        ok = False
    if not ok:
        kind = (
            f"an integer >= {minimum:g}"
            if integer
            else "a finite number (seconds)"
            if minimum == -math.inf
            else f"a finite number from {minimum:g} to {maximum:g} (seconds)"
            if maximum < math.inf
            else f"a finite number >= {minimum:g} (seconds)"
        )
        raise FleetcastError(f"{path}: request {i}, field {fld}: must be {kind}, got {v!r} ({_DOC})")
    return float(v)


def read_bench_serve(path: Path, data: dict | None = None) -> tuple[pd.DataFrame, dict, list[str]]:
    """(records, the result's scalar fields, notes). Records: one row per request in file order with
    ``class, arrival_s, first_token_s, finish_s, prompt_tokens, output_tokens, status, error``."""
    path = Path(path)
    data = read_json_object(path) if data is None else data
    missing = [k for k in BENCH_LISTS if k not in data]
    if missing:
        summary = " (it holds the summary only)" if "output_throughput" in data else ""
        raise FleetcastError(
            f"{path}: field {missing[0]} is missing{summary}; fleetcast replays the per-request "
            "detail that `vllm bench serve --save-result --save-detailed` saves "
            f"(input_lens, output_lens, ttfts, itls, errors, start_times; {_DOC})"
        )
    lists = {k: data[k] for k in (*BENCH_LISTS, "errors", "start_times") if k in data}
    for k, v in lists.items():
        if not isinstance(v, list):
            raise FleetcastError(
                f"{path}: field {k} must be a list (one entry per request), got {type(v).__name__} ({_DOC})"
            )
    n = len(lists["input_lens"])
    for k, v in lists.items():
        if len(v) != n:
            raise FleetcastError(
                f"{path}: field {k} has {len(v)} entries but input_lens has {n}; the per-request "
                f"lists must be parallel, one entry per request ({_DOC})"
            )
    if n == 0:
        raise FleetcastError(f"{path}: the result holds no requests (input_lens is empty); nothing to compare")
    meta = {k: v for k, v in data.items() if not isinstance(v, (list, dict))}
    notes: list[str] = []
    errors = lists.get("errors", [""] * n)
    starts = lists.get("start_times")
    if starts is None:
        starts = _no_start_times(path, data, n, notes)
    rows = []
    for i in range(n):
        err = errors[i]
        if err is not None and not isinstance(err, str):
            raise FleetcastError(
                f'{path}: request {i}, field errors: must be a string ("" when the request '
                f"succeeded), got {err!r} ({_DOC})"
            )
        start = _num(path, i, "start_times", starts[i], minimum=-math.inf)
        prompt = _num(path, i, "input_lens", lists["input_lens"][i], integer=True)
        if err:
            rows.append((start, math.nan, math.nan, int(prompt), 0, "error", err))  # (start, ttft, gaps, ...)
            continue
        out = _num(path, i, "output_lens", lists["output_lens"][i], integer=True, minimum=1)
        if prompt < 1:
            raise FleetcastError(
                f"{path}: request {i}, field input_lens: a request that succeeded has at least "
                f"1 prompt token, got {lists['input_lens'][i]!r} ({_DOC})"
            )
        ttft = _num(path, i, "ttfts", lists["ttfts"][i], maximum=MAX_LATENCY_S)
        itls = lists["itls"][i]
        if not isinstance(itls, list):
            raise FleetcastError(
                f"{path}: request {i}, field itls: must be a list of gaps in seconds, got {itls!r} ({_DOC})"
            )
        gaps = sum(_num(path, i, f"itls[{j}]", g, maximum=MAX_LATENCY_S) for j, g in enumerate(itls))
        if ttft + gaps > MAX_LATENCY_S:
            raise FleetcastError(
                f"{path}: request {i}, fields ttfts and itls: the request's latency adds up to {ttft + gaps:g} s; "
                f"a latency is at most {MAX_LATENCY_S:g} s ({_DOC})"
            )
        rows.append((start, ttft, gaps, int(prompt), int(out), "ok", ""))
    df = pd.DataFrame(rows, columns=["arrival_s", "ttft", "gaps", "prompt_tokens", "output_tokens", "status", "error"])
    # relative to the first send before adding the (small) latencies: no rounding at perf_counter's magnitude
    df["arrival_s"] = df["arrival_s"] - float(df["arrival_s"].min())
    df["first_token_s"] = df["arrival_s"] + df["ttft"]
    df["finish_s"] = df["first_token_s"] + df["gaps"]
    df.insert(0, "class", _CLASS)
    cols = ["class", "arrival_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens", "status", "error"]
    return df[cols], meta, notes


def _no_start_times(path: Path, data: dict, n: int, notes: list[str]) -> list[float]:
    """Send times of a result without ``start_times``: all 0 when every request was sent at once
    (request_rate inf, no max_concurrency); otherwise they are unknown and the file is refused."""
    rate, cap = data.get("request_rate"), data.get("max_concurrency")
    burst = rate in ("inf", "Infinity") or (isinstance(rate, float) and math.isinf(rate))
    if burst and cap is None:
        notes.append(
            "no start_times (vLLM before PR #32667 does not save them); request_rate "
            "is inf and there is no max_concurrency, so every request was sent at once: arrivals "
            "are taken as 0"
        )
        return [0.0] * n
    why = (
        "max_concurrency held requests back in the client for unknown times"
        if cap is not None
        else f"request_rate {rate!r} spaced the sends by random gamma draws that the file does not record "
        "(request_rate, burstiness and the seed do not give them back: the same numpy stream also "
        "sampled the dataset)"
    )
    raise FleetcastError(
        f"{path}: field start_times is missing, so the send times are unknown: {why}. vLLM saves start_times "
        "from PR #32667 (January 2026) on; re-run with such a version, or write the timings you have as a "
        f'per-request log ({_DOC.split(",")[0]}, "Per-request logs")'
    )
