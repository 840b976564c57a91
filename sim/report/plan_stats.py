"""What a plan's statistics say, in words and rows for every renderer: the
replications and samples behind the answer, the 95% intervals of the count
and the headroom, the window on the demand curve, what one replica down
does, the plan's warnings, and SLO attainment hour by hour.

Every function takes the plan.json document (or one candidate of it) and
returns ``None`` / ``[]`` when the plan predates these fields.
"""

from __future__ import annotations

from sim.report import fmt

__all__ = ["confidence_sentences", "failure_sentence", "window_sentence", "plan_warnings", "slo_interval_rows",
           "timeline_rows", "count_text", "headroom_text"]


def count_text(c: dict) -> str:
    """'3 (95% interval 2–3)'."""
    n, iv = c.get("replicas"), c.get("replicas_interval")
    if n is None:
        return fmt.DASH
    if not iv:
        return f"{n:,}"
    return f"{n:,} (95% interval {iv[0]:,}–{iv[1]:,})" if iv[0] != iv[1] else f"{n:,} (95% interval {n:,}–{n:,})"


def headroom_text(c: dict) -> str:
    """'40.6% (95% interval 40.6–52.3%)'."""
    h, iv = c.get("headroom_pct"), c.get("headroom_interval_pct")
    if h is None:
        return fmt.DASH
    if not iv:
        return fmt.pct(h)
    hi = "above " + fmt.pct(iv[0]) if iv[1] is None else fmt.pct(iv[1])
    return f"{fmt.pct(h)} (95% interval {fmt.pct(iv[0])} to {hi})"


def _samples(c: dict) -> list[str]:
    out = []
    for it in ((c.get("slo_stats") or {}).get("items") or []):
        if it["metric"] == "attainment_pct":
            continue
        out.append(f"{it['class']} {it['metric'][:-2].upper()} {it['percentile']}: {it['samples_min']:,} per "
                   f"replication, {it['samples_total']:,} in all")
    return out


def confidence_sentences(plan: dict, c: dict) -> list[str]:
    """How sure the recommendation is: replications, intervals, samples."""
    st = plan.get("statistics")
    if not st or c.get("replicas") is None:
        return []
    seeds = st.get("seeds") or []
    out = [f"Every fleet size was simulated {st['replications']} times with independent arrivals (seeds "
           f"{seeds[0]}–{seeds[-1]}, the same for every candidate) and counts as meeting an SLO only when the 95% "
           f"confidence interval over those runs is within the target. Fewest replicas meeting every SLO: "
           f"{count_text(c)}; headroom {headroom_text(c)}."]
    if c.get("failures_down"):
        out.append(f"The fleet is sized to keep every SLO with {c.get('failures_text')}: "
                   f"{c.get('replicas_for_slo')} replicas carry the load, {c['failures_down']} more are spares.")
    samples = _samples(c)
    if samples:
        out.append("Requests behind each percentile at the recommended size: " + "; ".join(samples) + ".")
    return out


def failure_sentence(c: dict) -> str | None:
    """'With one replica down (2 of 3 running) the fleet misses its SLO ...'."""
    f = c.get("failure") or {}
    text = f.get("text")
    return (text[0].upper() + text[1:] + ".") if text else None


def window_sentence(plan: dict) -> str | None:
    w = plan.get("window")
    if not w:
        return None
    where = ""
    if w.get("day_length_s") and w.get("kind") != "whole-cycle":
        where = f", from {w['start_s']:,.0f} s to {w['start_s'] + w['window_s']:,.0f} s of the scenario's day"
    elif w.get("surge_multiplier"):
        where = f", {w['surge_multiplier']:.3g}× the base rate"
    return (f"Each run measures a {w['window_s']:,.0f} s window after {w['warmup_s']:,.0f} s of warm-up{where}: "
            f"{w.get('text') or w['kind']} (mean {fmt.rate(w.get('mean_rate_rps'))} at the forecast peak).")


def plan_warnings(plan: dict) -> list[str]:
    return [str(w) for w in plan.get("warnings") or []]


def slo_interval_rows(c: dict) -> list[dict]:
    """One row per class and SLO item at the recommended size: target, mean, 95% interval, verdict, samples."""
    out = []
    for it in ((c.get("slo_stats") or {}).get("items") or []):
        att = it["metric"] == "attainment_pct"
        f = fmt.pct if att else fmt.latency
        out.append({"class": it["class"],
                    "item": "requests meeting every target" if att else f"{it['percentile']} {it['metric'][:-2].upper()}",
                    "target": f(it["target"]), "mean": f(it["mean"]),
                    "interval": f"{f(it['ci_low'])} – {f(it['ci_high'])}", "verdict": it["verdict"],
                    "samples_min": it["samples_min"], "samples_total": it["samples_total"], "raw": it})
    return out


def timeline_rows(plan: dict) -> list[dict]:
    """Hour-by-hour rows of the recommended fleet over the scenario's own time axis."""
    t = plan.get("timeline") or {}
    rows = []
    for i, r in enumerate(t.get("rows") or []):
        rows.append({"bin": i, "label": f"{t.get('unit', 'hour')} {i}", "from_s": r["start_s"], "to_s": r["end_s"],
                     "requests": r["requests"], "attainment_pct": r["attainment_pct"],
                     "p99_ttft_s": r["p99_ttft_s"], "in_window": r["in_window"]})
    return rows
