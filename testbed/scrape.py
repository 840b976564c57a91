"""vLLM ``/metrics``: a small Prometheus text parser and a ~1 Hz scraper.

The scraper keeps one row per scrape with the gauges and counters that matter
(summed over label sets such as ``model_name`` / ``engine``); ``to_frames``
turns them into the shared time series (``sim.records.TIMESERIES_COLUMNS``)
plus the full scraped series (``server_metrics.parquet``).
``batch_tokens`` is tokens per engine step in each interval: the delta of
``vllm:iteration_tokens_total_sum`` over the delta of its ``_count``.
"""

from __future__ import annotations

import math
import re
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.records import TIMESERIES_COLUMNS

__all__ = [
    "Sample",
    "parse_prometheus",
    "metric_sum",
    "histogram",
    "histogram_quantile_bounds",
    "cache_config",
    "scrape",
    "MetricsScraper",
    "SERIES",
]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict
    value: float


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


_SPECIAL = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


def _value(text: str) -> float:
    return _SPECIAL[text] if text in _SPECIAL else float(text)


def parse_prometheus(text: str, prefixes: tuple[str, ...] | None = None) -> list[Sample]:
    """Samples of a Prometheus text exposition (comments and junk lines skipped);
    ``prefixes``: keep only metrics whose name starts with one of them (fast path:
    the scraper runs in a greenlet and must not hold up request timing)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#") or (prefixes and not line.startswith(prefixes)):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        labels = {}
        if m.group(2):
            for lm in _LABEL.finditer(m.group(2)):
                labels[lm.group(1)] = bytes(lm.group(2), "utf-8").decode("unicode_escape")
        try:
            out.append(Sample(m.group(1), labels, _value(m.group(3))))
        except ValueError:
            continue
    return out


def metric_sum(samples: list[Sample], *names: str) -> float:
    """Sum of the first name present (over all label sets); NaN if none is."""
    for name in names:
        vals = [s.value for s in samples if s.name == name]
        if vals:
            return float(sum(vals))
    return math.nan


def histogram(samples: list[Sample], base: str) -> tuple[np.ndarray, np.ndarray]:
    """(upper edges ``le`` sorted, cumulative counts) of histogram ``base``, summed over labels."""
    acc: dict[float, float] = {}
    for s in samples:
        if s.name == base + "_bucket" and "le" in s.labels:
            le = _value(s.labels["le"])
            acc[le] = acc.get(le, 0.0) + s.value
    edges = np.array(sorted(acc))
    return edges, np.array([acc[e] for e in edges])


def histogram_quantile_bounds(edges: np.ndarray, cum: np.ndarray, q: float) -> tuple[float, float]:
    """(lower, upper) bound of the q-quantile from cumulative bucket counts."""
    total = cum[-1] if len(cum) else 0
    if total <= 0:
        return math.nan, math.nan
    i = int(np.searchsorted(cum, q * total, side="left"))
    lower = float(edges[i - 1]) if i > 0 else 0.0
    return lower, float(edges[i])


def cache_config(samples: list[Sample]) -> dict:
    """Labels of ``vllm:cache_config_info`` (block_size, num_gpu_blocks, ...)."""
    for s in samples:
        if s.name == "vllm:cache_config_info":
            return dict(s.labels)
    return {}


def scrape(base_url: str, timeout_s: float = 5.0, prefixes: tuple[str, ...] | None = None) -> list[Sample]:
    with urllib.request.urlopen(base_url + "/metrics", timeout=timeout_s) as resp:  # noqa: S310
        return parse_prometheus(resp.read().decode("utf-8", "replace"), prefixes)


#: scraped column -> metric names tried in order (older vLLM names second)
SERIES: dict[str, tuple[str, ...]] = {
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    "preemptions_total": ("vllm:num_preemptions_total",),
    "prompt_tokens_total": ("vllm:prompt_tokens_total",),
    "generation_tokens_total": ("vllm:generation_tokens_total",),
    "prefix_cache_hits_total": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prefix_cache_queries_total": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "iteration_tokens_sum": ("vllm:iteration_tokens_total_sum",),
    "iteration_tokens_count": ("vllm:iteration_tokens_total_count",),
    "requests_finished_total": ("vllm:request_success_total",),
}


_SERIES_PREFIXES = tuple(
    sorted(
        {n + ("" if n.endswith(("_sum", "_count", "_total")) else " ") for names in SERIES.values() for n in names}
        | {n + "{" for names in SERIES.values() for n in names}
    )
)


def row_of(samples: list[Sample]) -> dict:
    return {col: metric_sum(samples, *names) for col, names in SERIES.items()}


class MetricsScraper:
    """Scrapes ``/metrics`` every ``interval_s`` in a background thread (a
    greenlet under Locust's monkey patching) until ``stop()``."""

    def __init__(
        self, base_url: str, clock: Callable[[], float], t0: float, interval_s: float = 1.0, replica: str = "vllm-0"
    ):
        self.base_url, self.clock, self.t0 = base_url, clock, t0
        self.interval_s, self.replica = interval_s, replica
        self.rows: list[dict] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def scrape_once(self) -> list[Sample] | None:
        sent_s = self.clock() - self.t0
        try:
            samples = scrape(self.base_url, prefixes=_SERIES_PREFIXES)
        except OSError:
            self.failures += 1
            return None
        self.add_row(sent_s, samples)
        return samples

    def add_row(self, sent_s: float, samples: list[Sample]) -> None:
        """One scrape's row: ``t_s`` when its answer was in, ``scrape_start_s`` when it was asked
        for. The server read its gauges somewhere between the two; on a busy machine a scrape can
        take far longer than a step, so a check of the gauges against the client's records uses
        the whole window."""
        self.rows.append({"t_s": self.clock() - self.t0, "scrape_start_s": sent_s, **row_of(samples)})

    def _loop(self) -> None:
        next_t = self.clock()
        while not self._stop.is_set():
            self.scrape_once()
            next_t += self.interval_s
            self._stop.wait(max(0.0, next_t - self.clock()))

    def start(self) -> MetricsScraper:
        self._thread = threading.Thread(target=self._loop, name="metrics-scraper", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def to_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(timeseries in ``TIMESERIES_COLUMNS``, all scraped columns)."""
        raw = pd.DataFrame(self.rows, columns=["t_s", "scrape_start_s", *SERIES])
        raw.insert(1, "replica", self.replica)
        d_sum = raw["iteration_tokens_sum"].diff()
        d_cnt = raw["iteration_tokens_count"].diff()
        batch = (d_sum / d_cnt.where(d_cnt > 0)).fillna(0.0).round()
        raw["batch_tokens"] = batch.astype("int64")
        ts = pd.DataFrame(
            {
                "t_s": raw["t_s"],
                "replica": raw["replica"],
                "running": raw["running"].fillna(0).astype("int64"),
                "waiting": raw["waiting"].fillna(0).astype("int64"),
                "kv_usage": raw["kv_usage"].astype("float64"),
                "batch_tokens": raw["batch_tokens"],
            }
        )
        return ts.astype(TIMESERIES_COLUMNS), raw
