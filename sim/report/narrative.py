"""The words and tables of a report, shared by the HTML, PDF and XLSX writers:
the executive summary in plain sentences, the key numbers, the candidate
table and the SLO table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sim.analysis.contracts import PlanCandidate, RunSummary
from sim.report import fmt
from sim.report.assumptions import Assumptions
from sim.report.autoscale_text import autoscale_paragraph, plan_autoscale_sentence
from sim.report.disagg_text import disagg_paragraph, layout_sentence
from sim.report.load import ReportInput, gpus_per_replica
from sim.report.own_rent import own_rent_sentence
from sim.report.plan_stats import confidence_sentences, failure_sentence, plan_warnings, window_sentence

__all__ = [
    "Column",
    "CANDIDATE_COLUMNS",
    "STATUS_TEXT",
    "candidate_rows",
    "headline",
    "label_parts",
    "ranking_sentence",
    "TIE_RULE",
    "summary_paragraphs",
    "key_numbers",
    "slo_rows",
    "candidate_slo_rows",
    "fleet_text",
    "gpus_of",
]

STATUS_TEXT = {
    "ok": "meets SLO",
    "does-not-fit": "does not fit",
    "cannot-meet-slo": "misses SLO",
    "pruned": "pruned (costs more)",
}
METRIC_TEXT = {"ttft_s": "time to first token", "tpot_s": "time per output token", "e2e_s": "end-to-end latency"}


@dataclass(frozen=True)
class Column:
    """One column of the candidate table."""

    key: str  # candidate dict key (or a derived one, see candidate_rows)
    header: str  # shown to people
    text: Callable[[Any], str]  # formatter for HTML/PDF
    excel: str = "General"  # openpyxl number_format


CANDIDATE_COLUMNS = (
    Column("rank", "#", lambda v: fmt.DASH if v is None else str(v), "0"),
    Column("label", "candidate", str),
    Column("status_text", "status", str),
    Column("replicas", "replicas", fmt.num, "#,##0"),
    Column("replicas_interval", "replicas 95% CI", lambda v: f"{v[0]:,}–{v[1]:,}" if v else fmt.DASH),
    Column("gpus", "GPUs", fmt.num, "#,##0"),
    Column("usd_per_month", "$/month", fmt.usd, "$#,##0"),
    Column("usd_per_1m_output_tokens", "$/1M out tok", fmt.usd_small, "$#,##0.000"),
    Column("p99_ttft_s", "p99 TTFT all classes", fmt.latency, "0.000"),
    Column("p99_tpot_s", "p99 TPOT all classes", fmt.latency, "0.0000"),
    Column("attainment_pct", "SLO attained", fmt.pct, "0.0"),
    Column("headroom_pct", "headroom", fmt.pct, "0.0"),
    Column(
        "headroom_interval_pct",
        "headroom 95% CI",
        lambda v: f"{fmt.pct(v[0])} – {fmt.pct(v[1]) if v[1] is not None else 'more'}" if v else fmt.DASH,
    ),
    Column("reason", "why", lambda v: v or ""),
)


def gpus_of(c: PlanCandidate) -> int | None:
    if c.gpus is not None:
        return int(c.gpus)
    if c.replicas is not None:
        return int(c.replicas) * gpus_per_replica(c)
    return None


def autoscaled_gpus(c: PlanCandidate) -> tuple[float, float, float] | None:
    """(min, max, mean) GPUs of a run whose pools autoscale (pool replicas x TP), else None."""
    pools = c.summary.autoscale.pools if c.summary is not None and c.summary.autoscale is not None else None
    if not pools:
        return None
    tp = c.tensor_parallel or 1
    return (
        sum(p.replicas_min for p in pools.values()) * tp,
        sum(p.replicas_max for p in pools.values()) * tp,
        sum(p.replicas_mean for p in pools.values()) * tp,
    )


def gpus_text(c: PlanCandidate) -> str:
    """The fleet's GPU count for a headline card: '8', or '1–6 (2.93 on average)' when autoscaled."""
    a = autoscaled_gpus(c)
    if a is not None:
        return f"{a[0]:,.0f}–{a[1]:,.0f} ({a[2]:,.2f} on average)"
    return fmt.num(gpus_of(c))


def fleet_text(c: PlanCandidate) -> str:
    """'8 × h100-sxm GPUs (4 replicas, TP 2)'; a disaggregated fleet '... (1 prefill + 3 decode replicas, TP 1)';
    an autoscaled one '1–6 × h100-sxm GPUs, autoscaled (2.93 on average, TP 1)'."""
    g, r, tp = gpus_of(c), c.replicas, c.tensor_parallel or 1
    if g is None:
        return f"{c.gpu} (TP {tp}), no fleet size"
    a = autoscaled_gpus(c)
    if a is not None:
        return f"{a[0]:,.0f}–{a[1]:,.0f} × {c.gpu} GPUs, autoscaled ({a[2]:,.2f} on average, TP {tp})"
    split = c.summary.disaggregated if c.summary is not None else None
    if split:
        return (
            f"{g:,} × {c.gpu} GPU{'s' if g != 1 else ''} ({split.prefill.replicas:,} prefill + "
            f"{split.decode.replicas:,} decode replicas, TP {tp}, KV over {split.link})"
        )
    return f"{g:,} × {c.gpu} GPU{'s' if g != 1 else ''} ({r:,} replica{'s' if r != 1 else ''}, TP {tp})"


def _model_text(c: PlanCandidate) -> str:
    q = c.quantization or {}
    return (
        f"{c.model} with {q.get('weights', 'bf16')} weights and {q.get('kv_cache', 'auto')} "
        f"KV cache under the {c.policy or 'default'} batching policy"
    )


def candidate_rows(inp: ReportInput) -> list[dict]:
    """Candidates in plan order, each with ``rank`` (1.. among ok), ``status_text``,
    ``gpus`` filled in, ``recommended``, and ``reason`` (why not ok, or for an ok one
    searched for its count only, ``not_searched``)."""
    rows, rank = [], 0
    for c in inp.doc.candidates:
        row = c.model_dump(mode="python", by_alias=True)
        ok = c.status == "ok"
        rank += ok
        row["rank"] = rank if ok else None
        row["gpus"] = gpus_of(c)
        row["status_text"] = STATUS_TEXT.get(c.status, c.status)
        row["label"] = c.label or c.id
        row["recommended"] = c.id == inp.doc.recommended
        row["reason"] = c.reason or c.not_searched  # an ok candidate searched for its count only says so
        rows.append(row)
    return rows


def label_parts(inp: ReportInput) -> tuple[dict[str, list[str]], list[str]]:
    """Each candidate's label split at " · ", less the parts every candidate shares
    (said once instead): ``({id: [parts]}, [shared parts])``."""
    split = {c.id: str(c.label or c.id).split(" · ") for c in inp.doc.candidates}
    lengths = {len(p) for p in split.values()}
    if len(split) < 2 or len(lengths) != 1:
        return split, []
    width = lengths.pop()
    shared = [i for i in range(width) if len({tuple(p)[i] for p in split.values()}) == 1]
    if len(shared) == width:  # identical labels: keep them whole
        return split, []
    first = next(iter(split.values()))
    return ({k: [x for i, x in enumerate(p) if i not in shared] for k, p in split.items()}, [first[i] for i in shared])


def slo_rows(summary: RunSummary | None) -> list[dict]:
    """One row per (class, SLO target): class, metric, percentile, target_s, achieved_s, met."""
    out: list[dict] = []
    for name, cls in (summary.classes if summary is not None else {}).items():
        for row in (cls.slo or {}).values():
            out.append({"class": name, **row.model_dump()})
        if cls.attainment_target_pct is not None:
            out.append(
                {
                    "class": name,
                    "metric": "attainment_pct",
                    "percentile": "",
                    "target_s": cls.attainment_target_pct,
                    "achieved_s": cls.attainment_pct,
                    "met": (cls.attainment_pct or 0) >= cls.attainment_target_pct,
                }
            )
    return out


def candidate_slo_rows(c: PlanCandidate) -> tuple[list[dict], str]:
    """``slo_rows`` of a candidate and what "forecast" means there: for a plan candidate the
    mean over its replications (the figure its verdict and 95% interval use; ``met`` is the
    verdict), else the one run's summary."""
    rows = slo_rows(c.summary)
    stats = c.slo_stats
    if stats is None or not stats.items or not rows:
        return rows, "forecast"
    items = {(it.class_, it.metric, it.percentile or ""): it for it in stats.items}
    for r in rows:
        it = items.get((r["class"], r["metric"], r.get("percentile") or ""))
        if it is not None:
            r.update(achieved_s=it.mean, met=it.verdict == "met")
    return rows, f"forecast, mean of {stats.replications} runs"


def _has_slo(summary: RunSummary | None) -> bool:
    return summary is not None and any(cls.slo for cls in summary.classes.values())


def _target_text(summary: RunSummary | None) -> str:
    targets = sorted(
        {
            c.attainment_target_pct
            for c in (summary.classes if summary is not None else {}).values()
            if c.attainment_target_pct is not None
        }
    )
    return f" (target {', '.join(fmt.pct(t, 1) for t in targets)})" if targets else ""


def headline(inp: ReportInput) -> str:
    rec = inp.doc.recommended_candidate
    if inp.kind == "run":
        c = inp.doc.candidates[0]
        verdict = "meets its SLO" if rec is not None else "MISSES its SLO"
        return f"Simulated fleet: {fleet_text(c)} — {fmt.usd(c.usd_per_month)}/month, {verdict}"
    if rec is not None:
        return f"Recommended: {fleet_text(rec)} — {fmt.usd(rec.usd_per_month)}/month"
    return f"No fleet met the SLO — {len(inp.doc.candidates)} candidates tried"


def _service_sentence(c: PlanCandidate, peak) -> str:
    s = c.summary
    at = f"At the forecast peak of {fmt.rate(peak)} it" if peak else "It"
    if not _has_slo(s):
        return (
            f"{at} serves requests with p99 time to first token {fmt.latency(c.p99_ttft_s)} and "
            f"p99 time per output token {fmt.latency(c.p99_tpot_s)}. The scenario sets no latency "
            "SLO, so every completed request counts as meeting it."
        )
    return (
        f"{at} meets the latency targets for {fmt.pct(c.attainment_pct)} "
        f"of requests{_target_text(s)}: p99 time to first token {fmt.latency(c.p99_ttft_s)}, "
        f"p99 time per output token {fmt.latency(c.p99_tpot_s)} (all classes together; each "
        "class against its own target in the SLO table)."
    )


def _utilization_sentence(c: PlanCandidate, peak) -> str:
    """Capacity in words: where the SLOs break (headroom), then what the GPUs use.

    The busy fraction counts time with an engine step running; continuous
    batching steps whenever any request is in flight, so a lightly loaded
    replica is 'busy' nearly all the time. It is said as such, next to the
    capacity measures (memory bandwidth, compute, KV cache) and the headroom.
    """
    u = c.summary.utilization.fleet if c.summary is not None else None
    parts = []
    h = c.headroom_pct
    if h is not None:
        top = f" (up to {fmt.rate(peak * (1 + h / 100))})" if peak else ""
        parts.append(
            f"Capacity: every SLO still holds at {fmt.pct(h, 0)} above the forecast peak{top}, the "
            "highest load tested that meets them (headroom)."
        )
    if u is not None:

        def share(key):
            v = getattr(u, key)
            return None if v is None else min(v, 1.0) * 100

        parts.append(
            f"An engine step is running {fmt.pct(share('busy_frac'), 0)} of the time; that counts time, "
            "not capacity, since a replica with continuous batching steps whenever any request is in "
            f"flight. Of their capacity the GPUs use {fmt.pct(share('mbu'), 0)} of their memory "
            f"bandwidth and {fmt.pct(share('mfu'), 0)} of their compute, and the KV cache is "
            f"{fmt.pct(share('kv_usage'), 0)} full on average."
        )
    return " ".join(parts)


def _calibration_sentence(a: Assumptions) -> str:
    if not a.profiles:
        return ""
    if all(not p.calibrated for p in a.profiles):
        return (
            "Caveat: no pool has a calibration profile validated on its own hardware: the latency figures "
            "come from measured GPU kernel timings or a roofline (see Assumptions), with no validated "
            "end-to-end error bound; confirm them with a run on the chosen hardware (fleetcast validate takes "
            "a vLLM bench serve result) before committing budget."
        )
    if all(p.validation for p in a.profiles):
        return (
            "The latency figures come from calibration profiles validated against real vLLM runs; "
            "their measured error is listed under Assumptions."
        )
    return (
        "Caveat: not every pool uses a validated calibration profile (see Assumptions), so part of the "
        "forecast has no validated error bound."
    )


def _failure_paragraphs(inp: ReportInput) -> list[str]:
    cands = inp.doc.candidates
    peak = inp.doc.peak_rate_rps
    tried = len(cands)
    nofit = [c for c in cands if c.status == "does-not-fit"]
    miss = [c for c in cands if c.status == "cannot-meet-slo"]
    at = f" at the forecast peak of {fmt.rate(peak)}" if peak else ""
    out = [
        f"None of the {tried} fleet configurations tried meets the latency SLOs{at}. "
        f"{len(nofit)} did not fit the model in GPU memory and {len(miss)} fit but missed an SLO "
        "even at the largest fleet size searched. The candidate table lists why each one failed."
    ]
    if miss:
        best = min(miss, key=lambda c: (-(c.attainment_pct or 0.0), c.p99_ttft_s or float("inf")))
        out.append(
            f"The closest was {best.label or best.id}: {fleet_text(best)}, "
            f"{fmt.usd(best.usd_per_month)}/month, meeting the targets for "
            f"{fmt.pct(best.attainment_pct)} of requests ({best.reason or 'no reason given'})."
        )
    out.append(
        "Options: relax the SLO, widen the search (more replicas, other GPUs, tensor parallelism, "
        "quantization), or reduce the peak load."
    )
    return out


#: how ``fleetcast plan`` orders the candidates that meet every SLO (sim.analysis.plan._rank_key)
TIE_RULE = "equal monthly costs are ranked by more proven headroom, then by $ per 1M tokens (prompt + output)"


def ranking_sentence(inp: ReportInput, c: PlanCandidate) -> str:
    """How many candidates were searched and met the SLO, and how the next one compares
    (the same price is said as such, with the rule that broke the tie)."""
    ok = [x for x in inp.doc.candidates if x.status == "ok"]
    n, points = len(inp.doc.candidates), inp.doc.tried
    pts = f" ({points:,} simulated points)" if points != n else ""
    text = (
        f"{n} candidate configuration{'s' if n != 1 else ''} were searched{pts} and {len(ok)} met every SLO; "
        "this is the cheapest of them"
    )
    if len(ok) < 2 or c.usd_per_month is None or ok[1].usd_per_month is None:
        return text + "."
    usd = c.usd_per_month
    nxt, more = ok[1], ok[1].usd_per_month - usd
    name = nxt.label or nxt.id
    if abs(more) < 0.5:
        ties = sum(abs((x.usd_per_month or 0) - usd) < 0.5 for x in ok) - 1
        others = f"{ties} other candidates" if ties > 1 else "the next one"

        def why(x: PlanCandidate) -> str:
            h = x.headroom_pct
            return (
                f"{'-' if h is None else f'{h:.0f}%'} headroom, "
                f"{fmt.usd_small(x.usd_per_1m_total_tokens)} per 1M tokens"
            )

        return (
            f"{text}, at the same price as {others} ({fmt.usd(usd)} per month); {TIE_RULE}: "
            f"{why(c)} here against {why(nxt)} for the next, {name}."
        )
    share = more / usd * 100 if usd else None
    pct = "" if share is None else f" (+{share:.1f}%)" if share < 10 else f" (+{share:.0f}%)"
    return f"{text}; the next cheapest, {name}, costs {fmt.usd(more)} more per month{pct}."


def summary_paragraphs(inp: ReportInput, a: Assumptions) -> list[str]:
    """The executive summary, one string per paragraph."""
    rec = inp.doc.recommended_candidate
    peak = inp.doc.peak_rate_rps
    if rec is None and inp.kind == "plan":
        return _failure_paragraphs(inp) + [s for s in [_calibration_sentence(a)] if s]
    c = rec or inp.doc.candidates[0]
    out = []
    if inp.kind == "run":
        verdict = "It meets its latency SLOs. " if rec is not None else "It does NOT meet its latency SLOs. "
        if not _has_slo(c.summary):
            verdict = ""
        out.append(
            f"This report covers one simulated fleet (a `fleetcast run`), not a plan search: "
            f"{fleet_text(c)} serving {_model_text(c)}. {verdict}"
            "No alternatives were compared and no headroom was measured; run `fleetcast plan` for that."
        )
    else:
        out.append(f"We recommend {fleet_text(c)} serving {_model_text(c)}.")
        out += [f"Warning: {w}" for w in plan_warnings(inp.doc)]  # on the first screen, before the detail
    out.append(
        f"It costs {fmt.usd(c.usd_per_month)} per month ({fmt.usd_small(c.usd_per_hour)} per hour), "
        f"which is {fmt.usd_small(c.usd_per_1m_output_tokens)} per million output tokens "
        f"({fmt.usd_small(c.usd_per_1m_total_tokens)} per million tokens including prompts)."
    )
    out.append(_service_sentence(c, peak if inp.kind == "plan" else None))
    util = _utilization_sentence(c, peak if inp.kind == "plan" else None)
    if util:
        out.append(util)
    split = disagg_paragraph(c.summary)
    if split:
        out.append(split)
    scaled = autoscale_paragraph(c.summary)
    if scaled:
        out.append(scaled)
    if inp.kind == "plan":
        out.append(ranking_sentence(inp, c))
        layouts = layout_sentence(inp.doc.candidates)
        if layouts:
            out.append(layouts)
        scaled_plan = plan_autoscale_sentence(inp.doc.autoscale)
        if scaled_plan:
            out.append(scaled_plan)
    if inp.kind == "plan":  # the statistics behind the answer, the window, one replica down, warnings
        out += confidence_sentences(inp.doc, c)
        out += [x for x in (window_sentence(inp.doc), failure_sentence(c)) if x]
    if a.own_vs_rent is not None:
        out.append(own_rent_sentence(a.own_vs_rent))
    growth = c.growth or []
    if growth:
        last = growth[-1]
        g = int(last.replicas or 0) * gpus_per_replica(c)
        out.append(
            f"Over the forecast horizon demand reaches {fmt.rate(last.rate_rps)} by month "
            f"{last.month}, which needs {g:,} GPU{'s' if g != 1 else ''} at "
            f"{fmt.usd(last.usd_per_month)} per month."
        )
    cal = _calibration_sentence(a)
    if cal:
        out.append(cal)
    return out


def key_numbers(inp: ReportInput) -> list[tuple[str, str]]:
    """(label, value) cards shown under the summary."""
    c = inp.doc.recommended_candidate
    if c is None:
        cands = inp.doc.candidates
        return [
            ("candidates tried", str(len(cands))),
            ("met the SLO", "0"),
            ("did not fit", str(sum(x.status == "does-not-fit" for x in cands))),
            ("missed the SLO", str(sum(x.status == "cannot-meet-slo" for x in cands))),
        ]
    mbu_frac = c.summary.utilization.fleet.mbu if c.summary is not None else None
    mbu = None if mbu_frac is None else mbu_frac * 100
    return [
        ("GPUs", gpus_text(c)),
        ("per month", fmt.usd(c.usd_per_month)),
        ("per 1M output tokens", fmt.usd_small(c.usd_per_1m_output_tokens)),
        ("SLO attained", fmt.pct(c.attainment_pct)),
        ("p99 TTFT, all classes pooled", fmt.latency(c.p99_ttft_s)),
        ("p99 TPOT, all classes pooled", fmt.latency(c.p99_tpot_s)),
        ("headroom", fmt.pct(c.headroom_pct, 0)),
        ("memory-bandwidth use", fmt.pct(mbu, 0)),
    ]
