"""Replications and confidence bounds: when a plan point "meets the SLO".

A plan point (one candidate, replica count and rate) is simulated ``R``
times; replication ``r`` uses seed ``base_seed + r`` for every candidate,
replica count and rate (common random numbers, as ``fleetcast compare``
does), so candidates are compared on the same arrivals.

For every SLO item of every class (a latency percentile target, or the
attainment target) the ``R`` per-replication values give a mean and a 95%
Student-t interval (``R - 1`` degrees of freedom). The item is

- ``met`` when the interval's worst end is within the target (the upper end
  of a latency percentile at or under its target; the lower end of the
  attainment at or over it),
- ``missed`` when its best end is outside the target,
- ``undecided`` otherwise.

A point is ``met`` when every item is met, ``missed`` when any item is
missed, else ``undecided``. Each end of a two-sided 95% interval is a
one-sided 97.5% bound, so a proven-met point and a proven-missed point
bracket the true boundary with at least 95% confidence (per item; no
correction for several items).

Sequential replications (``early_verdict``): a point starts with
``MIN_REPLICATIONS`` (2) and adds one at a time up to ``R``
(``plan.replications``); it stops early once its stricter 99% interval
(``EARLY_MISSED_CONFIDENCE``) lies wholly outside a target (missed), or once
it has at least ``MIN_MET_REPLICATIONS`` (3) and its 99.5% interval
(``EARLY_MET_CONFIDENCE``) is within every target (met). A point still open
at ``R`` is judged there. The verdict recorded is always the 95% Student-t
rule over the replications actually run (the stricter intervals imply it);
the stricter early looks keep the chance of a wrong verdict at a point whose
true value sits exactly on its target near the fixed-R rule's (met 2.7%,
missed 3.4%, against 2.4% each for a fixed R = 5; Monte Carlo with normal
replications; docs/design.md, Statistics).

Sample size: a percentile ``q`` estimated from ``n`` requests rests on the
``n (1 - q)`` requests above it. Each class should have ``tail_samples``
requests there in every replication: ``n >= tail_samples / (1 - q)`` for the
class's highest percentile (its attainment target counts as one), e.g.
300 requests for a p99 with ``tail_samples`` 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.errors import FleetcastError
from sim.workload.spec import PERCENTILES, TrafficSpec

__all__ = [
    "CONFIDENCE",
    "MIN_REPLICATIONS",
    "MIN_MET_REPLICATIONS",
    "EARLY_MET_CONFIDENCE",
    "EARLY_MISSED_CONFIDENCE",
    "early_verdict",
    "replication_seeds",
    "t_interval",
    "required_samples",
    "ClassNeed",
    "class_needs",
    "point_stats",
    "misses_text",
    "VERDICTS",
]

CONFIDENCE = 0.95
VERDICTS = ("met", "undecided", "missed")
MIN_REPLICATIONS = 2  # a point's first look: the fewest replications that give an interval
MIN_MET_REPLICATIONS = 3  # guard: an early "met" needs at least this many (a "missed" may stop at 2)
EARLY_MET_CONFIDENCE = 0.995  # an early "met" (before the last replication) needs this interval within target
EARLY_MISSED_CONFIDENCE = 0.99  # an early "missed" needs this interval wholly outside


def early_verdict(summaries: list[dict]) -> bool:
    """True when a point may stop after ``summaries`` (the replications run so far, fewer
    than ``plan.replications``): it is ``missed`` on the stricter
    ``EARLY_MISSED_CONFIDENCE`` interval, or ``met`` on at least ``MIN_MET_REPLICATIONS``
    replications with the stricter ``EARLY_MET_CONFIDENCE`` interval. Either implies the
    same 95% verdict; the stricter looks keep a wrong early verdict about as rare as with
    every replication run (docs/design.md, Statistics)."""
    n = len(summaries)
    if n < MIN_REPLICATIONS:
        return False
    if point_stats(summaries, EARLY_MISSED_CONFIDENCE)["verdict"] == "missed":
        return True
    return n >= MIN_MET_REPLICATIONS and point_stats(summaries, EARLY_MET_CONFIDENCE)["verdict"] == "met"


def replication_seeds(base_seed: int, replications: int) -> list[int]:
    """Seed of each replication: ``base_seed + r`` (the rule of ``fleetcast compare``)."""
    if base_seed + replications - 1 > 2**63 - 1:
        raise FleetcastError(f"seed {base_seed} + {replications} replications overflows the seed range")
    return [int(base_seed) + r for r in range(replications)]


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float] | None:
    """(mean, low, high) of the Student-t interval of the mean of ``values``;
    None when empty; low = high = mean for a single value or no spread."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    sd = float(v.std(ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return (mean, mean, mean) if sd == 0.0 else (mean, -math.inf, math.inf)
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.5 + confidence / 2.0, v.size - 1)) * sd / math.sqrt(v.size)
    return mean, mean - half, mean + half


def required_samples(q_pct: float, tail_samples: float) -> int:
    """Requests per replication a percentile ``q_pct`` needs: ceil(tail / (1 - q))."""
    return int(math.ceil(tail_samples / (1.0 - q_pct / 100.0) - 1e-9))


@dataclass(frozen=True)
class ClassNeed:
    """What one class with an SLO needs per replication."""

    name: str
    share: float  # fraction of the arrivals
    q_pct: float  # its highest percentile (latency targets and attainment target)
    label: str  # where q comes from, e.g. "ttft_s p99"
    samples: int  # requests per replication


def class_needs(traffic: TrafficSpec, tail_samples: float) -> list[ClassNeed]:
    """The sample need of every class that has an SLO target."""
    shares = traffic.shares()
    out = []
    for i, c in enumerate(traffic.classes):
        if c.slo is None or not c.slo.thresholds():
            continue
        items = [(PERCENTILES[k], f"{m} {k}") for m in ("ttft_s", "tpot_s", "e2e_s") for k in (getattr(c.slo, m) or {})]
        items.append((float(c.slo.attainment_pct), f"attainment {c.slo.attainment_pct:g}%"))
        q, label = max(items)
        share = float(shares[i]) if shares is not None else 1.0 / len(traffic.classes)
        out.append(ClassNeed(c.name, share, q, label, required_samples(q, tail_samples)))
    return out


def _item(
    values,
    target: float,
    lower_is_better: bool,
    clip: tuple[float, float] | None = None,
    confidence: float = CONFIDENCE,
) -> dict:
    v = np.asarray(values, dtype=float)
    iv = t_interval(v, confidence)
    if iv is None:
        mean = low = high = math.nan
    elif not np.isfinite(v).all():  # a replication served nothing: no bound on that side
        mean, low, high = math.inf, float(np.min(v)), math.inf
        if not lower_is_better:
            mean, low, high = float(v.mean()), -math.inf, float(np.max(v))
    else:
        mean, low, high = iv
    if clip is not None:
        low, high = max(low, clip[0]), min(high, clip[1])
    if lower_is_better:
        verdict = "met" if high <= target else ("missed" if low > target else "undecided")
    else:
        verdict = "met" if low >= target else ("missed" if high < target else "undecided")
    return {"mean": _num(mean), "ci_low": _num(low), "ci_high": _num(high), "verdict": verdict}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def point_stats(summaries: list[dict], confidence: float = CONFIDENCE) -> dict:
    """Verdict, SLO items with intervals (``confidence``, 95% unless asked) and sample
    counts, and the means, of one point's per-replication summaries (``summarize`` dicts)."""
    items = []
    for cname, c0 in summaries[0]["classes"].items():
        for key, it in (c0.get("slo") or {}).items():
            vals, ns = [], []
            for s in summaries:
                x = s["classes"][cname]["slo"][key]
                vals.append(x["achieved_s"] if x["achieved_s"] is not None else (0.0 if x["met"] else math.inf))
                ns.append(int(s["classes"][cname][it["metric"]]["n"]))
            items.append(
                {
                    "class": cname,
                    "metric": it["metric"],
                    "percentile": it["percentile"],
                    "target": it["target_s"],
                    **_item(vals, it["target_s"], True, (0.0, math.inf), confidence),  # a latency is never below 0
                    "samples_min": min(ns),
                    "samples_total": sum(ns),
                }
            )
        tgt = c0.get("attainment_target_pct")
        if tgt is not None and c0.get("slo"):
            vals = [s["classes"][cname]["attainment_pct"] or 0.0 for s in summaries]
            ns = [int(s["classes"][cname]["counts"]["total"]) for s in summaries]
            items.append(
                {
                    "class": cname,
                    "metric": "attainment_pct",
                    "percentile": None,
                    "target": tgt,
                    **_item(vals, tgt, False, (0.0, 100.0), confidence),
                    "samples_min": min(ns),
                    "samples_total": sum(ns),
                }
            )
    verdicts = {i["verdict"] for i in items}
    verdict = "missed" if "missed" in verdicts else ("undecided" if "undecided" in verdicts else "met")

    def mean_of(get):
        v = [get(s) for s in summaries]
        v = [x for x in v if x is not None]
        return float(np.mean(v)) if v else None

    o = lambda s: s["overall"]  # noqa: E731
    return {
        "verdict": verdict,
        "replications": len(summaries),
        "items": items,
        "attainment_pct": mean_of(lambda s: o(s)["attainment_pct"]),
        "attainment_interval_pct": _interval([o(s)["attainment_pct"] or 0.0 for s in summaries]),
        "p99_ttft_s": mean_of(lambda s: o(s)["ttft_s"]["p99"]),
        "p99_tpot_s": mean_of(lambda s: o(s)["tpot_s"]["p99"]),
        "p99_e2e_s": mean_of(lambda s: o(s)["e2e_s"]["p99"]),
        "usd_per_1m_output_tokens": mean_of(lambda s: s["cost"]["usd_per_1m_output_tokens"]),
        "usd_per_1m_total_tokens": mean_of(lambda s: s["cost"]["usd_per_1m_total_tokens"]),
        "requests_per_replication": [int(o(s)["counts"]["total"]) for s in summaries],
        "power_intervals": power_intervals(summaries),
    }


#: the ``summary.power`` figures a plan gives an interval over its replications
POWER_INTERVAL_FIELDS = (
    "server_avg_kw",
    "server_peak_kw",
    "it_peak_kw",
    "mwh_per_month",
    "energy_usd_per_month",
    "kwh_per_1m_output_tokens",
    "energy_usd_per_1m_output_tokens",
)


def power_intervals(summaries: list[dict]) -> dict[str, list[float | None]] | None:
    """The 95% Student-t interval over the replications of each ``POWER_INTERVAL_FIELDS`` figure
    (None without a ``power`` block or with fewer than two replications)."""
    blocks = [s.get("power") for s in summaries]
    if len(blocks) < 2 or not all(blocks):
        return None
    out: dict[str, list[float | None]] = {}
    for key in POWER_INTERVAL_FIELDS:
        vals = [b[key] for b in blocks]  # type: ignore[index]  # all blocks are dicts here
        iv = t_interval(vals) if all(v is not None for v in vals) else None
        # power, energy and cost are never negative: the low end clipped at 0
        out[key] = [None, None] if iv is None else [_num(max(iv[1], 0.0)), _num(iv[2])]
    return out


def _interval(values, lo: float = 0.0, hi: float = 100.0) -> list[float | None]:
    """The 95% interval of a percentage, clipped to [lo, hi]."""
    iv = t_interval(values)
    return [None, None] if iv is None else [_num(max(iv[1], lo)), _num(min(iv[2], hi))]


def misses_text(stats: dict, limit: int = 4) -> str:
    """The items of a point that are not proven met, as words."""
    out = []
    for i in stats["items"]:
        if i["verdict"] == "met":
            continue
        what = "attainment" if i["metric"] == "attainment_pct" else f"{i['metric']} {i['percentile']}"
        unit = "%" if i["metric"] == "attainment_pct" else " s"
        fmt = lambda x: "none" if x is None else f"{x:.4g}{unit}"  # noqa: E731, B023 - called in this iteration only
        out.append(
            f"class {i['class']} {what} {fmt(i['mean'])} (95% CI {fmt(i['ci_low'])} to {fmt(i['ci_high'])}) "
            f"vs target {i['target']:g}{unit}" + (" (undecided)" if i["verdict"] == "undecided" else "")
        )
    return "; ".join(out[:limit]) + (f" (and {len(out) - limit} more)" if len(out) > limit else "")
