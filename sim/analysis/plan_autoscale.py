"""``fleetcast plan`` with an autoscaled pool: the search sizes the pool as a fixed fleet
for the peak (``CandidateSearch`` sets ``autoscale`` aside); then the recommended fleet
is simulated over the scenario's own time axis twice, fixed at the recommended count and
autoscaled with that count as ``max_replicas``, so the plan says what autoscaling saves
and what it costs in SLO attainment (``plan.json`` ``autoscale``)."""

from __future__ import annotations

import copy

from sim.analysis.forecast import forecast
from sim.analysis.rates import with_rate
from sim.scenario.spec import scenario_from_dict

__all__ = ["autoscale_comparison"]


def _outcome(summary: dict) -> dict:
    o = summary["overall"]
    return {
        "usd_per_hour": summary["cost"]["fleet_usd_per_hour"],
        "usd_per_month": summary["cost"]["usd_per_month"],
        "attainment_pct": o["attainment_pct"],
        "slo_met": o["slo_met"],
        "ttft_p99_s": (o.get("ttft_s") or {}).get("p99"),
    }


def autoscale_comparison(
    fixed_data: dict, autoscale: dict, pool: int, replicas: int, peak_rps: float, path, max_requests: int
) -> dict | None:
    """Fixed at ``replicas`` vs autoscaled up to ``replicas`` (``autoscale``: the scenario's
    section for the planned pool, its ``max_replicas`` replaced) over the scenario's own
    traffic at the planned peak; None when that would exceed ``max_requests``."""
    data = with_rate(copy.deepcopy(fixed_data), peak_rps)
    data["events"] = [ev for ev in data.get("events") or [] if ev.get("kind") == "surge"]
    first = int(data["fleet"][pool].get("replicas", 1))  # the scenario's count at time 0
    data["fleet"][pool]["replicas"] = int(replicas)
    fixed = scenario_from_dict(data, path=path)
    if fixed.traffic.duration_s * peak_rps > max_requests:
        return None
    _, fixed_summary = forecast(fixed)
    lo = min(int(autoscale["min_replicas"]), int(replicas))
    start = min(max(first, lo), int(replicas))
    scaled_auto = {**autoscale, "min_replicas": lo, "max_replicas": int(replicas)}
    if scaled_auto.get("schedule"):
        scaled_auto["schedule"] = [
            {**s, "replicas": min(max(s["replicas"], lo), int(replicas))} for s in scaled_auto["schedule"]
        ]
    data["fleet"][pool] = {**data["fleet"][pool], "replicas": start, "autoscale": scaled_auto}
    _, auto_summary = forecast(scenario_from_dict(data, path=path))
    a = next(iter(auto_summary["autoscale"]["pools"].values()))
    fixed_out, auto_out = _outcome(fixed_summary), _outcome(auto_summary)
    return {
        "replicas": int(replicas),
        "min_replicas": lo,
        "fixed": fixed_out,
        "autoscaled": {
            **auto_out,
            "replicas_mean": a["replicas_mean"],
            "replicas_min": a["replicas_min"],
            "replicas_max": a["replicas_max"],
            "cold_start_s": a["cold_start_s"],
            "scale_ups": a["scale_ups"],
        },
        "saving_pct": 100.0 * (1.0 - auto_out["usd_per_hour"] / fixed_out["usd_per_hour"])
        if fixed_out["usd_per_hour"]
        else None,
        "duration_s": float(fixed.traffic.duration_s),
    }
