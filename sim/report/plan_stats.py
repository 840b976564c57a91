"""What a plan's statistics say, in words and rows for every renderer: the
replications and samples behind the answer, the 95% intervals of the count
and the headroom, the window on the demand curve, what one replica down
does, the plan's warnings, and SLO attainment hour by hour.

Every function takes the plan.json document (``PlanDoc``, or one candidate of it) and
returns ``None`` / ``[]`` when the plan predates these fields.
"""

from __future__ import annotations

from sim.analysis.contracts import PlanCandidate, PlanDoc
from sim.report import fmt

__all__ = [
    "confidence_sentences",
    "failure_sentence",
    "window_sentence",
    "plan_warnings",
    "slo_interval_rows",
    "timeline_rows",
    "count_text",
    "headroom_text",
]


def count_text(c: PlanCandidate) -> str:
    """'3 (95% interval 2–3)'."""
    n, iv = c.replicas, c.replicas_interval
    if n is None:
        return fmt.DASH
    if not iv:
        return f"{n:,}"
    return f"{n:,} (95% interval {iv[0]:,}–{iv[1]:,})" if iv[0] != iv[1] else f"{n:,} (95% interval {n:,}–{n:,})"


def headroom_text(c: PlanCandidate) -> str:
    """'40.6% (95% interval 40.6–52.3%)'."""
    h, iv = c.headroom_pct, c.headroom_interval_pct
    if h is None:
        return fmt.DASH
    if not iv:
        return fmt.pct(h)
    hi = "above " + fmt.pct(iv[0]) if iv[1] is None else fmt.pct(iv[1])
    return f"{fmt.pct(h)} (95% interval {fmt.pct(iv[0])} to {hi})"


def _items(c: PlanCandidate) -> list:
    return list((c.slo_stats.items if c.slo_stats is not None else None) or [])


def _samples(c: PlanCandidate) -> list[str]:
    out = []
    for it in _items(c):
        if it.metric == "attainment_pct":
            continue
        out.append(
            f"{it.class_} {it.metric[:-2].upper()} {it.percentile}: {it.samples_min:,} per "
            f"replication, {it.samples_total:,} in all"
        )
    return out


def confidence_sentences(plan: PlanDoc, c: PlanCandidate) -> list[str]:
    """How sure the recommendation is: replications, intervals, samples."""
    st = plan.statistics
    if not st or c.replicas is None:
        return []
    seeds = st.seeds or []
    out = [
        f"Every fleet size was simulated {st.replications} times with independent arrivals (seeds "
        f"{seeds[0]}–{seeds[-1]}, the same for every candidate) and counts as meeting an SLO only when the 95% "
        f"confidence interval over those runs is within the target. Fewest replicas meeting every SLO: "
        f"{count_text(c)}; headroom {headroom_text(c)}."
    ]
    if c.failures_down:
        out.append(
            f"The fleet is sized to keep every SLO with {c.failures_text}: "
            f"{c.replicas_for_slo} replicas carry the load, {c.failures_down} more are spares."
        )
    samples = _samples(c)
    if samples:
        out.append("Requests behind each percentile at the recommended size: " + "; ".join(samples) + ".")
    return out


def failure_sentence(c: PlanCandidate) -> str | None:
    """'With one replica down (2 of 3 running) the fleet misses its SLO ...'."""
    text = c.failure.text if c.failure is not None else None
    return (text[0].upper() + text[1:] + ".") if text else None


def window_sentence(plan: PlanDoc) -> str | None:
    w = plan.window
    if not w:
        return None
    where = ""
    if w.day_length_s and w.kind != "whole-cycle":
        where = f", from {w.start_s:,.0f} s to {w.start_s + w.window_s:,.0f} s of the scenario's day"
    elif w.surge_multiplier:
        where = f", {w.surge_multiplier:.3g}× the base rate"
    return (
        f"Each run measures a {w.window_s:,.0f} s window after {w.warmup_s:,.0f} s of warm-up{where}: "
        f"{w.text or w.kind} (mean {fmt.rate(w.mean_rate_rps)} at the forecast peak)."
    )


def plan_warnings(plan: PlanDoc) -> list[str]:
    return [str(w) for w in plan.warnings or []]


def slo_interval_rows(c: PlanCandidate) -> list[dict]:
    """One row per class and SLO item at the recommended size: target, mean, 95% interval, verdict, samples."""
    out = []
    for it in _items(c):
        att = it.metric == "attainment_pct"
        f = fmt.pct if att else fmt.latency
        out.append(
            {
                "class": it.class_,
                "item": "requests meeting every target" if att else f"{it.percentile} {it.metric[:-2].upper()}",
                "target": f(it.target),
                "mean": f(it.mean),
                "interval": f"{f(it.ci_low)} – {f(it.ci_high)}",
                "verdict": it.verdict,
                "samples_min": it.samples_min,
                "samples_total": it.samples_total,
                "raw": it,
            }
        )
    return out


def timeline_rows(plan: PlanDoc) -> list[dict]:
    """Hour-by-hour rows of the recommended fleet over the scenario's own time axis."""
    t = plan.timeline
    rows: list[dict] = []
    if t is None:
        return rows
    for i, r in enumerate(t.rows):
        rows.append(
            {
                "bin": i,
                "label": f"{t.unit or 'hour'} {i}",
                "from_s": r.start_s,
                "to_s": r.end_s,
                "requests": r.requests,
                "attainment_pct": r.attainment_pct,
                "p99_ttft_s": r.p99_ttft_s,
                "in_window": r.in_window,
            }
        )
    return rows
