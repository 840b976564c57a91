"""An autoscaled fleet in a planner's words: what the autoscaler saves, what its cold
start costs in SLO. Read from ``summary.json`` ``autoscale``
(``sim.analysis.autoscale_metrics``); the terminal summary and the report quote it."""

from __future__ import annotations

from sim.analysis.contracts import RunSummary
from sim.analysis.contracts.plan import AutoscaleComparison
from sim.report import fmt

__all__ = ["autoscale_lines", "autoscale_paragraph", "replica_count", "plan_autoscale_sentence"]


def replica_count(x) -> str:
    """A replica count: whole for a fixed pool, two decimals for an autoscaled pool's mean."""
    return fmt.num(x, 0) if float(x).is_integer() else fmt.num(x, 2)


def _worst_bin(timeline: list[dict]) -> dict | None:
    bins = [b for b in timeline if b.get("in_window") and b.get("attainment_pct") is not None]
    # lowest attainment, then the slowest p99 TTFT
    return min(bins, key=lambda b: (b["attainment_pct"], -(b["p99_ttft_s"] or 0.0))) if bins else None


def autoscale_lines(summary: RunSummary | None) -> list[tuple[str, str]]:
    """(label, text) lines for the terminal summary; none for a fixed fleet."""
    a = summary.autoscale if summary is not None else None
    if not a:
        return []
    lines = []
    for pool, p in a.pools.items():
        lines.append(
            (
                "autoscale",
                f"pool {pool}: {replica_count(p.replicas_mean)} replicas on average "
                f"(min {p.replicas_min}, max {p.replicas_max} of {p.max_replicas}), "
                f"{p.scale_ups} up / {p.scale_downs} down, cold start "
                f"{fmt.latency(p.cold_start_s)}",
            )
        )
        lines.append(
            (
                "vs fixed",
                f"{fmt.usd_small(p.usd_per_hour)}/hour against "
                f"{fmt.usd_small(p.fixed_at_max_usd_per_hour)}/hour for {p.max_replicas} fixed "
                f"replicas ({fmt.pct(p.saving_pct, 0)} less)",
            )
        )
    worst = _worst_bin([r.model_dump() for r in a.timeline])
    if worst is not None:
        lines.append(
            (
                "worst period",
                f"SLO attainment {fmt.pct(worst['attainment_pct'])} for arrivals "
                f"{worst['start_s']:,.0f}-{worst['end_s']:,.0f} s, p99 TTFT "
                f"{fmt.latency(worst['p99_ttft_s'])}",
            )
        )
    return lines


def autoscale_paragraph(summary: RunSummary | None) -> str | None:
    """One paragraph for the report; None for a fixed fleet."""
    a = summary.autoscale if summary is not None else None
    if not a:
        return None
    parts = []
    for pool, p in a.pools.items():
        parts.append(
            f"Pool {pool} scales between its bounds with the load: {replica_count(p.replicas_mean)} replicas "
            f"on average (from {p.replicas_min} to {p.replicas_max}), paid for "
            f"{fmt.num(p.gpu_hours, 2)} GPU-hours in the measured window. What the autoscaler buys: "
            f"{fmt.usd_small(p.usd_per_hour)}/hour on average instead of "
            f"{fmt.usd_small(p.fixed_at_max_usd_per_hour)}/hour for {p.max_replicas} replicas kept up all day, "
            f"{fmt.pct(p.saving_pct, 0)} less. What it costs: each of its {p.scale_ups} scale-ups waited "
            f"{fmt.latency(p.cold_start_s)} (node provisioning plus loading the weights) before the new replica "
            f"took requests, and in that time the replicas already up carried the rising load alone."
        )
    worst = _worst_bin([r.model_dump() for r in a.timeline])
    if worst is not None:
        parts.append(
            f"The worst stretch for the SLO was arrivals between {worst['start_s']:,.0f} and {worst['end_s']:,.0f} s: "
            f"{fmt.pct(worst['attainment_pct'])} of requests met their SLO, p99 time to first token "
            f"{fmt.latency(worst['p99_ttft_s'])}. If that is too low, scale earlier (a lower target, a schedule "
            f"ahead of the daily rise), keep a higher min_replicas, or shorten the cold start (a warm node pool, "
            f"faster weight loading); fleetcast compare against the same pool fixed at its maximum "
            f"(--variant 'fixed:fleet.N.autoscale=null,fleet.N.replicas=MAX') puts both on cost and SLO attainment "
            f"side by side."
        )
    return " ".join(parts)


def plan_autoscale_sentence(a: AutoscaleComparison | None) -> str | None:
    """``fleetcast plan``'s and the plan report's words on ``plan.json`` ``autoscale``: the
    recommended count fixed vs autoscaled up to it, over the scenario's own traffic."""
    if not a:
        return None
    f, s = a.fixed, a.autoscaled

    def slo(x) -> str:
        return f"{fmt.pct(x.attainment_pct)} SLO attainment ({'met' if x.slo_met else 'missed'})"

    lost = (f.attainment_pct or 0.0) - (s.attainment_pct or 0.0)
    cold = f"{s.scale_ups} cold start{'s' if s.scale_ups != 1 else ''} of {fmt.latency(s.cold_start_s)}"
    cost = (
        f"The {lost:.2f} points of attainment lost are what {cold} cost while the load rose"
        if lost >= 0.005
        else f"The {cold} cost no measurable SLO attainment here: the replicas already up absorbed the rise"
    )
    return (
        f"Autoscaled between {a.min_replicas} and the recommended {a.replicas} replicas over the scenario's "
        f"{a.duration_s:,.0f} s, the fleet averages {replica_count(s.replicas_mean)} replicas and costs "
        f"{fmt.usd(s.usd_per_month)}/month instead of {fmt.usd(f.usd_per_month)} fixed "
        f"({fmt.pct(a.saving_pct, 0)} less), with {slo(s)} against {slo(f)} fixed. {cost} (plan.json "
        f"autoscale)."
    )
