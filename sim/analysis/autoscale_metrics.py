"""What an autoscaled pool cost and did: replica-seconds, the mean, min and max provisioned
count over the window, the same fleet fixed at ``max_replicas`` for comparison, the scale
events and the replica-count steps (``summary.json`` ``autoscale``)."""

from __future__ import annotations

from sim.analysis.metrics import HOURS_PER_MONTH, ClassSlo, PoolCost, attainment_by_time
from sim.engine.result import SimResult

__all__ = ["mean_replicas", "autoscale_summary"]


def mean_replicas(result: SimResult) -> dict[str, float]:
    """Autoscaled pool -> mean provisioned (billed) replicas over the measured window."""
    if not result.autoscale:
        return {}
    w0, w1 = result.window
    length = w1 - w0
    return {
        pool: sum(r.billed_s or 0.0 for r in result.replicas if r.pool == pool) / length for pool in result.autoscale
    }


def _billed_count(periods: list, t: float) -> int:
    return sum(1 for rep in periods for s, e in rep if s <= t < e)


def _held_s(periods: list, lo: float, hi: float) -> float:
    """Replica-seconds of ``periods`` (per replica, [start, end] pairs) inside [lo, hi)."""
    return sum(max(0.0, min(e, hi) - max(s, lo)) for rep in periods for s, e in rep)


def timeline(result: SimResult, slos: list[ClassSlo], bin_s: float) -> list[dict]:
    """Per time bin of the run (by arrival): arrival rate, p99 TTFT, SLO attainment and each
    autoscaled pool's mean provisioned replicas (``replicas``: pool -> mean)."""
    rows = attainment_by_time(result, slos, bin_s)
    for row in rows:
        row["rate_rps"] = row["requests"] / bin_s
        row["replicas"] = {
            pool: _held_s(rec["billed"], row["start_s"], row["end_s"]) / bin_s
            for pool, rec in result.autoscale.items()  # type: ignore[union-attr]  # only called for an autoscaled run
        }
    return rows


def autoscale_summary(
    result: SimResult, costs: list[PoolCost], max_replicas: dict[str, int], slos: list[ClassSlo], bin_s: float
) -> dict | None:
    """Per autoscaled pool: ``replicas_mean`` (provisioned, over the window), ``replicas_min`` /
    ``replicas_max`` (provisioned counts seen in the window), ``replica_s`` (the window's
    integral of provisioned replicas), ``gpu_hours``, ``usd`` (the window's cost:
    replica_s x GPUs per replica x $/GPU-hour / 3600), ``usd_per_hour`` (its mean),
    ``fixed_at_max_usd_per_hour`` and ``saving_pct`` against ``max_replicas`` fixed,
    ``cold_start_s``, ``scale_ups``, ``scale_downs``, ``events`` and ``series``
    (``[t_s, active, provisioned]`` at every change, the whole run); and the fleet's
    ``timeline`` (bins of ``bin_s``). None without autoscaling."""
    if not result.autoscale:
        return None
    w0, w1 = result.window
    length = w1 - w0
    by_pool = {c.pool: c for c in costs}
    out: dict = {"pools": {}, "timeline": timeline(result, slos, bin_s)}
    for pool, rec in result.autoscale.items():
        cost = by_pool[pool]
        replica_s = sum(r.billed_s or 0.0 for r in result.replicas if r.pool == pool)
        gpus = cost.gpus_per_replica
        usd = replica_s * gpus * cost.usd_per_gpu_hour / 3600.0
        fixed_h = max_replicas[pool] * gpus * cost.usd_per_gpu_hour
        times = [w0] + [t for t, _, _ in rec["series"] if w0 < t < w1]
        counts = [_billed_count(rec["billed"], t) for t in times]
        out["pools"][pool] = {
            "replicas_mean": replica_s / length,
            "replicas_min": min(counts),
            "replicas_max": max(counts),
            "max_replicas": max_replicas[pool],
            "replica_s": replica_s,
            "gpu_hours": replica_s * gpus / 3600.0,
            "usd": usd,
            "usd_per_hour": usd * 3600.0 / length,
            "usd_per_month": usd * 3600.0 / length * HOURS_PER_MONTH,
            "fixed_at_max_usd_per_hour": fixed_h,
            "saving_pct": 100.0 * (1.0 - usd * 3600.0 / length / fixed_h) if fixed_h > 0 else None,
            "cold_start_s": rec["cold_start_s"],
            "scale_ups": sum(1 for e in rec["events"] if e["to"] > e["from"]),
            "scale_downs": sum(1 for e in rec["events"] if e["to"] < e["from"]),
            "events": rec["events"],
            "series": rec["series"],
        }
    return out
