"""vLLM's Prometheus metrics over time as a request log the fit can read.

Two exports are read (docs/traffic-fit.md):

* a Prometheus range-query JSON (``/api/v1/query_range`` answers: one object, a JSON
  list of them, or one per line), holding ``vllm:request_success_total`` (or the
  prompt histogram's ``_count``) and the histograms
  ``vllm:request_prompt_tokens_bucket`` / ``vllm:request_generation_tokens_bucket``;
* a series of ``/metrics`` scrapes in one text file, each scrape starting with a line
  ``# scrape <UNIX seconds or ISO 8601 time>`` (the CLI parses the text).

Metrics hold no single request, so ``metrics_to_log`` rebuilds one, and says so: each
interval's new requests arrive uniformly at random within it (the dispersion below
the scrape interval is not observed); lengths are drawn from the histograms' bucket
counts, uniformly within a bucket (the ``+Inf`` bucket at its lower edge); prompt and
output lengths are drawn independently (histograms do not pair them), so the fit
cannot see their dependence. A counter that goes down (a restart) counts its new
value as the interval's increase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.errors import FleetcastError
from sim.workload.fit.log import RequestLog

__all__ = ["MetricsSeries", "from_range_query", "metrics_to_log", "REQUESTS", "PROMPT_HIST", "OUTPUT_HIST"]

REQUESTS = ("vllm:request_success_total", "vllm:request_prompt_tokens_count")
PROMPT_HIST = "vllm:request_prompt_tokens"
OUTPUT_HIST = "vllm:request_generation_tokens"


@dataclass
class MetricsSeries:
    """Cumulative values at scrape times (summed over label sets)."""

    times_s: np.ndarray  # UNIX seconds, sorted
    requests: np.ndarray  # cumulative request count at each time
    prompt_edges: np.ndarray  # bucket upper edges (le), sorted, +inf last
    prompt_cum: np.ndarray  # (times, edges) cumulative bucket counts
    output_edges: np.ndarray
    output_cum: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)


def _increase(x: np.ndarray) -> np.ndarray:
    """Per-interval increase of a counter; a drop (restart) counts the new value."""
    d = np.diff(x, axis=0)
    return np.where(d < 0, x[1:], d)


def _series_from_points(points: dict[str, dict[float, dict[float, float]]], source: str) -> MetricsSeries:
    """``points[name][le or nan][time] = value`` (summed over other labels) -> a MetricsSeries."""
    req_name = next((n for n in REQUESTS if n in points), None)
    missing = [n for n in (PROMPT_HIST + "_bucket", OUTPUT_HIST + "_bucket") if n not in points]
    if req_name is None or missing:
        gone = ([" or ".join(REQUESTS)] if req_name is None else []) + missing
        raise FleetcastError(
            f"{source}: no {', '.join(gone)} in the metrics; found: {', '.join(sorted(points)) or 'none'}"
        )
    times = np.array(sorted(points[req_name][math.nan]), dtype=float)
    if times.size < 3:
        raise FleetcastError(f"{source}: {times.size} sample time(s) of {req_name}; fitting needs at least 3")

    def at(name: str, le: float) -> np.ndarray:
        series = points[name][le]
        return np.array([series.get(t, math.nan) for t in times], dtype=float)

    def hist(base: str) -> tuple[np.ndarray, np.ndarray]:
        les = np.array(sorted(points[base + "_bucket"]), dtype=float)
        cum = np.column_stack([at(base + "_bucket", le) for le in les])
        return les, cum

    pe, pc = hist(PROMPT_HIST)
    oe, oc = hist(OUTPUT_HIST)
    req = at(req_name, math.nan)
    ok = np.isfinite(req) & np.isfinite(pc).all(axis=1) & np.isfinite(oc).all(axis=1)
    notes = []
    if not ok.all():
        notes.append(f"{source}: {int((~ok).sum())} sample time(s) without every series dropped.")
    return MetricsSeries(times[ok], req[ok], pe, pc[ok], oe, oc[ok], source, notes)


def from_range_query(answers: list, source: str) -> MetricsSeries:
    """Range-query answers (parsed JSON objects) -> a MetricsSeries."""
    points: dict[str, dict[float, dict[float, float]]] = {}
    for k, ans in enumerate(answers):
        try:
            results = ans["data"]["result"]
        except (KeyError, TypeError):
            raise FleetcastError(
                f"{source}: answer {k + 1} is not a Prometheus query_range answer (no data.result)"
            ) from None
        for r in results:
            metric, values = r.get("metric", {}), r.get("values", [])
            name = metric.get("__name__")
            if not name:
                continue
            le = float(metric["le"]) if "le" in metric else math.nan
            slot = points.setdefault(name, {}).setdefault(le, {})
            for i, pair in enumerate(values):
                try:
                    t, v = float(pair[0]), float(pair[1])
                except (TypeError, ValueError, IndexError):
                    raise FleetcastError(
                        f"{source}: answer {k + 1}, series {name}, point {i + 1}: {pair!r} is not [time, value]"
                    ) from None
                slot[t] = slot.get(t, 0.0) + v
    return _series_from_points(points, source)


def series_from_scrapes(scrapes: list[tuple[float, list]], source: str) -> MetricsSeries:
    """``[(UNIX seconds, samples)]`` (samples with ``name``, ``labels``, ``value``) -> a MetricsSeries."""
    points: dict[str, dict[float, dict[float, float]]] = {}
    for t, samples in scrapes:
        for s in samples:
            if not s.name.startswith("vllm:"):
                continue
            le = float(s.labels["le"]) if "le" in s.labels else math.nan
            slot = points.setdefault(s.name, {}).setdefault(le, {})
            slot[t] = slot.get(t, 0.0) + s.value
    return _series_from_points(points, source)


def _draw_lengths(edges: np.ndarray, counts: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``n`` lengths from bucket counts (uniform within a bucket); and how many fell in +Inf."""
    total = counts.sum()
    if total <= 0:
        raise FleetcastError("a length histogram has no counts over the series")
    which = rng.choice(counts.size, size=n, p=counts / total)
    lower = np.concatenate([[0.0], edges[:-1]])
    upper = np.where(np.isinf(edges), lower, edges)
    x = lower[which] + rng.random(n) * (upper[which] - lower[which])
    return np.maximum(np.ceil(x), 1).astype(np.int64), int(np.isinf(edges[which]).sum())


def metrics_to_log(ms: MetricsSeries, seed: int = 0) -> RequestLog:
    """The rebuilt request log (see the module docstring)."""
    rng = np.random.default_rng(seed)
    per = np.rint(_increase(ms.requests)).astype(np.int64)
    n = int(per.sum())
    if n == 0:
        raise FleetcastError(f"{ms.source}: the request counter does not increase over the series")
    starts, lengths = ms.times_s[:-1], np.diff(ms.times_s)
    t = np.repeat(starts, per) + rng.random(n) * np.repeat(lengths, per)
    t.sort()
    p_counts = np.diff(np.concatenate([[0.0], _increase(ms.prompt_cum).sum(axis=0)]))
    o_counts = np.diff(np.concatenate([[0.0], _increase(ms.output_cum).sum(axis=0)]))
    prompt, p_inf = _draw_lengths(ms.prompt_edges, np.maximum(p_counts, 0), n, rng)
    output, o_inf = _draw_lengths(ms.output_edges, np.maximum(o_counts, 0), n, rng)
    step = float(np.median(lengths))
    notes = list(ms.notes) + [
        f"{ms.source}: {n:,} requests rebuilt from Prometheus metrics ({ms.times_s.size} samples every ~{step:g} s): "
        "arrivals uniform within each interval, lengths drawn from the histograms, prompt and output independent "
        "(metrics do not pair them)."
    ]
    if p_inf or o_inf:
        notes.append(
            f"{ms.source}: {p_inf + o_inf:,} drawn length(s) fell in a +Inf bucket and were set to its lower edge."
        )
    return RequestLog(
        arrival_s=t,
        prompt_tokens=prompt,
        output_tokens=output,
        start_epoch_s=0.0 if float(ms.times_s[0]) > 1e8 else None,
        paired=False,
        sources=[ms.source],
        warnings=notes,
    )
