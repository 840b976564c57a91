"""Records -> Summary: latency percentiles, SLO attainment, goodput,
utilization, cost and a Little's-law check, as one JSON-ready dict.

Definitions follow vLLM ``bench serve`` (see docs/design.md, "Metrics"):

- Only requests whose ``arrival_s`` lies in the measured window
  ``[start_s, end_s)`` count; warm-up and cool-down arrivals are ignored.
- Latency percentiles use numpy's ``"linear"`` method on the raw values of the
  ``ok`` requests; TPOT only over requests with ``output_tokens > 1``.
  ``p99.9`` is reported only with at least 1000 samples.
- ITL comes from the pooled log-bucket histogram (``records.ITL_EDGES_S``),
  interpolated geometrically inside the bucket holding the rank.
- A request *meets its SLO* when its status is ``ok`` and, for every metric its
  class targets, its value is at most the target of that metric's highest
  percentile (a request without TPOT, i.e. one output token, is judged on the
  other metrics). Errors, rejections, timeouts and cancellations are misses.

Every number in the result is a plain ``float``/``int``; missing or undefined
values (empty sets, zero throughput) are ``None``, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sim.engine.result import ReplicaStats, SimResult
from sim.records import ITL_EDGES_S, STATUSES

__all__ = [
    "rejection_warnings",
    "cost_and_class_columns",
    "completion_span_s",
    "ClassSlo",
    "PoolCost",
    "LATENCY_METRICS",
    "PERCENTILES",
    "HOURS_PER_MONTH",
    "percentiles",
    "hist_percentiles",
    "summarize",
    "attainment_by_time",
]

#: per-request latency metrics with an SLO (column names of the records).
LATENCY_METRICS = ("ttft_s", "tpot_s", "e2e_s")
#: percentiles every latency dict reports (label -> q in percent).
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
#: p99.9 needs this many samples to mean anything.
MIN_SAMPLES_P999 = 1000
#: cloud-billing convention (365 * 24 / 12).
HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class ClassSlo:
    """What the scenario asked of one traffic class."""

    name: str  # traffic class name
    # metric ("ttft_s" | "tpot_s" | "e2e_s") -> {"p50": s, "p99": s, "p99.9": s, ...}
    targets: dict[str, dict[str, float]]
    # required share (%) of window requests meeting all per-request thresholds
    attainment_pct: float | None = None


@dataclass(frozen=True)
class PoolCost:
    """Price and power of one pool of identical replicas."""

    pool: str  # pool name (records' replica column is "<pool>/<index>")
    gpu: str  # catalog GPU name
    replicas: float  # a fixed pool's count; an autoscaled pool's mean provisioned count over the window
    gpus_per_replica: int  # tensor-parallel size
    usd_per_gpu_hour: float
    watts_per_gpu: float | None  # board power (TDP); None = unknown


def _f(x) -> float | None:
    """Plain float, or None for None/NaN/inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _div(a, b) -> float | None:
    a, b = _f(a), _f(b)
    return None if a is None or not b else a / b


def _pct_q(label: str) -> float:
    """ "p99.9" -> 99.9."""
    return float(label.lstrip("pP"))


def percentiles(values) -> dict:
    """``{n, mean, p50, p90, p95, p99, p99.9}`` of the finite values (numpy
    "linear"); all None when empty, ``p99.9`` None under 1000 samples."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    out: dict = {"n": int(v.size), "mean": _f(v.mean()) if v.size else None}
    for label, q in PERCENTILES.items():
        enough = v.size >= (MIN_SAMPLES_P999 if label == "p99.9" else 1)
        out[label] = _f(np.percentile(v, q, method="linear")) if enough else None
    return out


def hist_percentiles(counts, edges=ITL_EDGES_S) -> dict:
    """Same dict as ``percentiles`` from a log-bucket histogram.

    The rank is numpy's linear rank ``q/100·(n-1)``; inside the bucket holding
    it the value is interpolated geometrically (log-uniform within the bucket),
    so the error is below one bucket width. The mean uses geometric midpoints.
    """
    c = np.asarray(counts, dtype=np.int64).ravel()
    edges = np.asarray(edges, dtype=float)
    n = int(c.sum())
    out: dict = {"n": n, "mean": None, **{k: None for k in PERCENTILES}}
    if n == 0:
        return out
    lo, hi = edges[:-1], edges[1:]
    out["mean"] = _f(np.dot(c, np.sqrt(lo * hi)) / n)
    cum = np.cumsum(c)
    for label, q in PERCENTILES.items():
        if label == "p99.9" and n < MIN_SAMPLES_P999:
            continue
        rank = q / 100.0 * (n - 1)  # 0-based rank of the wanted sample
        b = int(np.searchsorted(cum, rank, side="right"))  # first cum > rank
        b = min(b, len(c) - 1)
        before = cum[b] - c[b]
        frac = min(max((rank - before + 0.5) / c[b], 0.0), 1.0)
        out[label] = _f(lo[b] * (hi[b] / lo[b]) ** frac)
    return out


def _thresholds(slo: ClassSlo | None) -> dict[str, float]:
    """Per-request threshold of each metric: the target of its highest percentile."""
    if slo is None:
        return {}
    return {m: float(t[max(t, key=_pct_q)]) for m, t in slo.targets.items() if t}


class _Columns:
    """The record columns a summary reads, as numpy arrays over the whole run: views of
    the frame's numeric columns (no copy of the frame, which a 10-million-request run
    cannot afford twice) and small codes for class and status. A set of requests is an
    array of row indices into them."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.arrival = df["arrival_s"].to_numpy(dtype=float)
        self.finish = df["finish_s"].to_numpy(dtype=float)
        self.out = df["output_tokens"].to_numpy()
        self.prompt = df["prompt_tokens"].to_numpy()
        self.metric = {m: df[m].to_numpy(dtype=float) for m in LATENCY_METRICS}
        # index into STATUSES (-1: anything else, counted in no status)
        self.status = np.asarray(pd.Categorical(df["status"], categories=list(STATUSES)).codes)
        self.class_codes, uniques = pd.factorize(df["class"])  # -1: no class
        self.class_names = [str(u) for u in uniques]
        self.replica_codes, uniques = pd.factorize(df["replica"])
        self.replica_names = [str(u) for u in uniques]

    def ok(self, idx: np.ndarray) -> np.ndarray:
        """The rows of ``idx`` whose status is ok."""
        return idx[self.status[idx] == 0]

    def of_class(self, idx: np.ndarray, name: str) -> np.ndarray:
        """The rows of ``idx`` of class ``name``."""
        if name not in self.class_names:
            return idx[:0]
        return idx[self.class_codes[idx] == self.class_names.index(name)]

    def good(self, idx: np.ndarray, slos: dict[str, ClassSlo]) -> np.ndarray:
        """Per row of ``idx``: ok and within every per-request threshold of its own class."""
        good = np.zeros(len(idx), dtype=bool)
        codes = self.class_codes[idx]
        for code in np.unique(codes):
            if code < 0:  # no class: judged by no class, a miss
                continue
            at = np.flatnonzero(codes == code)
            rows = idx[at]
            g = self.status[rows] == 0
            for metric, limit in _thresholds(slos.get(self.class_names[code])).items():
                within = self.metric[metric][rows] <= limit
                if metric == "tpot_s":  # no TPOT with one output token: not judged on it
                    within |= self.out[rows] <= 1
                g &= within
            good[at] = g
        return good

    def span_s(self, idx: np.ndarray) -> float | None:
        """``completion_span_s`` of the rows ``idx``."""
        return _span_s(self.arrival[idx], self.finish[self.ok(idx)])


def _span_s(arrival: np.ndarray, finish_ok: np.ndarray) -> float | None:
    """Last finite finish of ``finish_ok`` (the ok requests) minus the first of ``arrival``
    (all of them); None when nothing finished ok or the span is not positive."""
    fin = finish_ok[np.isfinite(finish_ok)]
    if not fin.size:
        return None
    span = float(fin.max() - arrival.min())
    return span if span > 0 else None


def completion_span_s(df: pd.DataFrame) -> float | None:
    """Seconds from the first arrival of ``df`` to the last finish of its ok requests,
    the span vLLM ``bench serve`` divides by (benchmark start to last completion);
    None when nothing finished ok."""
    ok = (df["status"] == "ok").to_numpy(dtype=bool)
    return _span_s(df["arrival_s"].to_numpy(dtype=float), df["finish_s"].to_numpy(dtype=float)[ok])


def _group(
    cols: _Columns,
    idx: np.ndarray,
    length_s: float,
    slos: dict[str, ClassSlo],
    itl_counts: np.ndarray,
    name: str | None,
) -> dict:
    """Counts, latencies, throughput and SLO figures of one set of window
    requests (rows ``idx``: one class, or all when ``name`` is None)."""
    status = cols.status[idx]
    counts = {s: int((status == i).sum()) for i, s in enumerate(STATUSES)}
    counts["total"] = int(len(idx))
    ok = idx[status == 0]
    out: dict = {"counts": counts}
    out["ttft_s"] = percentiles(cols.metric["ttft_s"][ok])
    out["tpot_s"] = percentiles(cols.metric["tpot_s"][ok[cols.out[ok] > 1]])
    out["e2e_s"] = percentiles(cols.metric["e2e_s"][ok])
    out["itl_s"] = hist_percentiles(itl_counts)
    out_tok = float(cols.out[ok].sum())
    all_tok = out_tok + float(cols.prompt[ok].sum())
    span_s = cols.span_s(idx)
    out["completion_span_s"] = span_s
    out["requests_per_s"] = _div(len(ok), span_s)
    out["output_tokens_per_s"] = _div(out_tok, span_s)
    out["total_tokens_per_s"] = _div(all_tok, span_s)
    out["window_requests_per_s"] = _div(len(ok), length_s)
    out["window_output_tokens_per_s"] = _div(out_tok, length_s)
    out["window_total_tokens_per_s"] = _div(all_tok, length_s)

    # per-request SLO: each request judged against its own class's thresholds
    good = cols.good(idx, slos)
    out["goodput_rps"] = _div(int(good.sum()), span_s)
    out["attainment_pct"] = _div(100.0 * good.sum(), len(idx))
    if name is None:  # overall: targets are per class, see summarize()
        out["slo"] = None
        out["attainment_target_pct"] = None
        return out

    slo = slos.get(name)
    table: dict = {}
    met_all = True
    for metric, targets in (slo.targets if slo else {}).items():
        vals = cols.metric[metric][ok]
        vals = vals[np.isfinite(vals)]
        for label, target in targets.items():
            achieved = _f(np.percentile(vals, _pct_q(label))) if vals.size else None
            if achieved is not None:
                met = achieved <= target
            else:  # no TPOT at all because every ok output was one token: vacuous
                met = metric == "tpot_s" and len(ok) > 0
            table[f"{metric}:{label}"] = {
                "metric": metric,
                "percentile": label,
                "target_s": float(target),
                "achieved_s": achieved,
                "met": bool(met),
            }
            met_all &= met
    target_pct = _f(slo.attainment_pct) if slo else None
    if target_pct is not None:
        met_all &= out["attainment_pct"] is not None and out["attainment_pct"] >= target_pct
    out["slo"] = table
    out["attainment_target_pct"] = target_pct
    out["slo_met"] = bool(met_all)
    return out


def _utilization(replicas: Sequence[ReplicaStats], length_s: float) -> dict:
    """Busy fraction, MFU, MBU and mean KV usage per pool and for the fleet. A replica of an
    autoscaled pool counts for the share of the window it was provisioned (``billed_s``), so
    ``replicas`` is then the mean provisioned count."""

    def agg(reps: Sequence[ReplicaStats]) -> dict:
        if any(r.billed_s is not None for r in reps):
            return _weighted(reps, length_s)
        busy = [_busy_s(r, length_s) / length_s for r in reps] if length_s > 0 else []
        return {
            "replicas": len(reps),
            "busy_frac": _div(sum(_busy_s(r, length_s) for r in reps), len(reps) * length_s),
            "busy_frac_min": _f(min(busy)) if busy else None,
            "busy_frac_max": _f(max(busy)) if busy else None,
            "mfu": _div(sum(r.flops for r in reps), sum(r.peak_flops for r in reps) * length_s),
            "mbu": _div(sum(r.bytes for r in reps), sum(r.hbm_bw_bytes_s for r in reps) * length_s),
            "kv_usage": _div(sum(r.kv_block_s for r in reps), sum(r.kv_blocks_total for r in reps) * length_s),
        }

    pools: dict[str, list[ReplicaStats]] = {}
    for r in replicas:
        pools.setdefault(r.pool, []).append(r)
    return {"fleet": agg(list(replicas)), "pools": {p: agg(rs) for p, rs in pools.items()}}


def _busy_s(r: ReplicaStats, held_s: float) -> float:
    """A replica's busy seconds, at most the seconds it was held: the engine counts a step
    that ends in the window whole, so the first step (begun before the window) can push
    the raw sum over the window's length (a busy fraction of 100.1%)."""
    return min(r.busy_s, held_s)


def _weighted(reps: Sequence[ReplicaStats], length_s: float) -> dict:
    """``_utilization`` of replicas that were provisioned for part of the window only: each
    counts for its provisioned seconds (a fixed replica for the whole window)."""
    held = [(r, r.billed_s if r.billed_s is not None else length_s) for r in reps]
    busy = [_busy_s(r, s) / s for r, s in held if s > 0]
    return {
        "replicas": _f(sum(s for _, s in held) / length_s) if length_s > 0 else None,
        "busy_frac": _div(sum(_busy_s(r, s) for r, s in held), sum(s for _, s in held)),
        "busy_frac_min": _f(min(busy)) if busy else None,
        "busy_frac_max": _f(max(busy)) if busy else None,
        "mfu": _div(sum(r.flops for r in reps), sum(r.peak_flops * s for r, s in held)),
        "mbu": _div(sum(r.bytes for r in reps), sum(r.hbm_bw_bytes_s * s for r, s in held)),
        "kv_usage": _div(sum(r.kv_block_s for r in reps), sum(r.kv_blocks_total * s for r, s in held)),
    }


def _cost(
    pools: Sequence[PoolCost], cols: _Columns, ok: np.ndarray, out_tok_s: float | None, total_tok_s: float | None
) -> tuple[dict, dict]:
    """Fleet and per-pool $/hour, $/month, $/1M tokens (``ok``: the window's ok rows);
    energy per 1M tokens."""

    def per_1m(usd_h: float, tok_s: float | None) -> float | None:
        return _div(usd_h * 1e6, tok_s * 3600.0) if tok_s else None

    replica = cols.replica_codes[ok]
    pool_rows: dict[str, dict[str, Any]] = {}
    for p in pools:
        gpus = p.replicas * p.gpus_per_replica
        usd_h = gpus * p.usd_per_gpu_hour
        codes = [i for i, r in enumerate(cols.replica_names) if r.startswith(f"{p.pool}/")]
        mine = ok[np.isin(replica, codes)]
        tok_s = _div(float(cols.out[mine].sum()), cols.span_s(mine))
        pool_rows[p.pool] = {
            "gpu": p.gpu,
            "replicas": p.replicas,
            "gpus_per_replica": p.gpus_per_replica,
            "gpus": gpus,
            "usd_per_gpu_hour": float(p.usd_per_gpu_hour),
            "usd_per_hour": float(usd_h),
            "usd_per_month": float(usd_h * HOURS_PER_MONTH),
            "output_tokens_per_s": tok_s,
            "usd_per_1m_output_tokens": per_1m(usd_h, tok_s),
            "watts": _f(gpus * p.watts_per_gpu) if p.watts_per_gpu is not None else None,
        }
    usd_h = float(sum(r["usd_per_hour"] for r in pool_rows.values()))
    cost = {
        "fleet_usd_per_hour": usd_h,
        "usd_per_month": usd_h * HOURS_PER_MONTH,
        "usd_per_1m_output_tokens": per_1m(usd_h, out_tok_s),
        "usd_per_1m_total_tokens": per_1m(usd_h, total_tok_s),
        "pools": pool_rows,
    }
    have_watts = bool(pools) and all(r["watts"] is not None for r in pool_rows.values())
    kw = sum(r["watts"] for r in pool_rows.values()) / 1000.0 if have_watts else None
    energy = {
        "fleet_kw": _f(kw),
        "kwh_per_1m_output_tokens": per_1m(kw, out_tok_s) if kw is not None else None,
        "kwh_per_1m_total_tokens": per_1m(kw, total_tok_s) if kw is not None else None,
        "note": "upper bound at TDP: GPU board power x GPUs, always on; "
        "excludes host, network and cooling (PUE)" + ("" if have_watts else "; None because a pool has no watts"),
    }
    return cost, energy


def _little(cols: _Columns, start_s: float, end_s: float) -> dict:
    """Little's law L = λW over the window.

    L integrates the number of requests in system (arrived, not departed) over
    the window, counting every request of the run; λ and W use the window's
    arrivals. A request leaves at ``finish_s``, or at its arrival when it never
    finished (rejected / failed without a finish time).
    """
    length = end_s - start_s
    arr, fin = cols.arrival, cols.finish
    dep = np.where(np.isfinite(fin), fin, arr)
    overlap = np.clip(dep, start_s, end_s) - np.clip(arr, start_s, end_s)
    in_win = (arr >= start_s) & (arr < end_s)
    L = _div(float(np.clip(overlap, 0, None).sum()), length)
    lam = _div(int(in_win.sum()), length)
    W = _f((dep - arr)[in_win].mean()) if in_win.any() else None
    lam_w = lam * W if lam is not None and W is not None else None
    return {
        "L": L,
        "lambda_per_s": lam,
        "W_s": W,
        "lambda_W": lam_w,
        "rel_gap": _div(abs(L - lam_w), lam_w) if L is not None and lam_w else None,
    }


def summarize(result: SimResult, slos: Sequence[ClassSlo], pools: Sequence[PoolCost]) -> dict:
    """Summary of one run (simulated or testbed) as a JSON-ready dict.

    Keys: ``window``, ``overall``, ``classes`` (by name, in ``class_names``
    order), ``utilization``, ``cost``, ``energy``, ``little``.
    """
    start_s, end_s = (float(x) for x in result.window)
    length_s = max(end_s - start_s, 0.0)
    cols = _Columns(result.requests)
    win = np.flatnonzero((cols.arrival >= start_s) & (cols.arrival < end_s))
    slo_by = {s.name: s for s in slos}

    names = list(result.class_names)
    seen = pd.unique(cols.class_codes[win])  # the window's classes in order of appearance
    names += [cols.class_names[c] for c in seen if c >= 0 and cols.class_names[c] not in names]
    names += [s.name for s in slos if s.name not in names]
    hist = np.asarray(result.itl_hist, dtype=np.int64)
    nb = len(ITL_EDGES_S) - 1
    hist = hist.reshape(-1, nb) if hist.size else np.zeros((0, nb), np.int64)

    classes = {}
    for i, name in enumerate(names):
        row = hist[i] if i < len(hist) else np.zeros(nb, np.int64)
        classes[name] = _group(cols, cols.of_class(win, name), length_s, slo_by, row, name)
    overall = _group(cols, win, length_s, slo_by, hist.sum(axis=0), None)
    overall["slo_met"] = all(c["slo_met"] for c in classes.values())

    cost, energy = _cost(pools, cols, cols.ok(win), overall["output_tokens_per_s"], overall["total_tokens_per_s"])
    return {
        "window": {
            "start_s": start_s,
            "end_s": end_s,
            "length_s": length_s,
            "note": "requests arriving in [start_s, end_s) count (all statuses); "
            "latencies and throughput over the ok ones; warm-up and "
            "cool-down excluded",
        },
        "overall": overall,
        "classes": classes,
        "utilization": _utilization(result.replicas, length_s),
        "cost": cost,
        "energy": energy,
        "little": _little(cols, start_s, end_s),
    }


def cost_and_class_columns(summary: dict) -> dict:
    """The cost figures and each class's SLO columns of a ``summarize`` dict, flat
    (``<class>.slo_met``, ``.attainment_pct``, ``.p99_ttft_s``, ``.p99_tpot_s``): the
    columns every plan point and sweep point records."""
    row = {
        k: summary["cost"][k]
        for k in ("fleet_usd_per_hour", "usd_per_month", "usd_per_1m_output_tokens", "usd_per_1m_total_tokens")
    }
    for name, c in summary["classes"].items():
        row[f"{name}.slo_met"] = bool(c["slo_met"])
        row[f"{name}.attainment_pct"] = c["attainment_pct"]
        row[f"{name}.p99_ttft_s"] = c["ttft_s"]["p99"]
        row[f"{name}.p99_tpot_s"] = c["tpot_s"]["p99"]
    return row


def rejection_warnings(summary: dict) -> list[str]:
    """One line per class with rejected requests in the window: their share, and why vLLM
    rejects a request (prompt + output tokens beyond max_model_len, or more KV blocks than
    the replica has)."""
    out = []
    for name, c in summary["classes"].items():
        n, total = c["counts"]["rejected"], c["counts"]["total"]
        if n:
            out.append(
                f"class '{name}': {n:,} of {total:,} requests in the window ({100 * n / total:.1f}%) were "
                f"rejected: prompt + output tokens exceed max_model_len or the replica's KV cache (vLLM "
                f"rejects such requests); their latencies are not in the percentiles"
            )
    return out


def attainment_by_time(result: SimResult, slos: Sequence[ClassSlo], bin_s: float) -> list[dict]:
    """SLO attainment per time bin of ``bin_s`` seconds, by arrival time, over
    the whole run (warm-up and cool-down included; ``in_window`` says which
    bins overlap the measured window): requests, attainment % (as in
    ``summarize``: every status counts, misses included) and p99 TTFT of the
    ok ones."""
    cols = _Columns(result.requests)
    arr = cols.arrival
    good = cols.good(np.arange(len(arr)), {s.name: s for s in slos})
    ok = cols.status == 0
    ttft = cols.metric["ttft_s"]
    start, end = (float(x) for x in result.window)
    n_bins = max(1, int(math.ceil((float(arr.max()) if arr.size else 0.0) / bin_s + 1e-9)))
    rows = []
    for b in range(n_bins):
        lo, hi = b * bin_s, (b + 1) * bin_s
        sel = (arr >= lo) & (arr < hi)
        n = int(sel.sum())
        t = ttft[sel & ok]
        t = t[np.isfinite(t)]
        rows.append(
            {
                "start_s": lo,
                "end_s": hi,
                "requests": n,
                "attainment_pct": _div(100.0 * int(good[sel].sum()), n),
                "p99_ttft_s": _f(np.percentile(t, 99)) if t.size else None,
                "in_window": bool(hi > start and lo < end),
            }
        )
    return rows
