"""A disaggregated fleet in a planner's words: what the prefill/decode split buys and costs.

Read from ``summary.json`` ``disaggregated`` (``sim.analysis.disagg_metrics``); the report's
executive summary, the terminal summary and ``fleetcast plan``'s report quote it.
"""

from __future__ import annotations

from sim.analysis.contracts import PlanCandidate, RunSummary
from sim.report import fmt

__all__ = ["disagg_paragraph", "disagg_lines", "layout_sentence"]


def _share(x) -> str:
    return fmt.pct(None if x is None else min(x, 1.0) * 100, 0)


def disagg_paragraph(summary: RunSummary | None) -> str | None:
    """One paragraph for the report; None for a co-located fleet."""
    d = summary.disaggregated if summary is not None else None
    if summary is None or not d:
        return None
    p, q = d.prefill, d.decode
    x = d.kv_transfer_s
    itl = summary.overall.itl_s.p99
    overlap = (
        "sent layer by layer while the prompt is computed, so only what the prompt's compute does not hide "
        "is waited for"
        if d.overlap == "layerwise"
        else "sent after the prompt is computed"
    )
    pu, qu = p.utilization, q.utilization
    return (
        f"Prefill and decode run on separate GPUs (disaggregated serving): {_gpus(p.gpus)} "
        f"{'computes' if p.gpus == 1 else 'compute'} prompts and {_gpus(q.gpus)} "
        f"{'generates' if q.gpus == 1 else 'generate'} tokens (prefill:decode {d.gpu_ratio}). What the "
        f"split buys: the decode GPUs never stop to compute a prompt, so the time between output tokens stays at "
        f"a plain decode step (p99 {fmt.latency(itl)} here) however long the prompts arriving meanwhile, and "
        f"each pool can be sized and tuned for its own work. What it costs: each request's KV cache crosses "
        f"{d.link} ({fmt.si(d.link_bandwidth_bytes_s)}B/s per GPU), {overlap}: a median "
        f"{fmt.latency(x.p50)} and p99 {fmt.latency(x.p99)} added to the time to first token; and "
        f"the prefill GPUs are a pool of their own that must keep up with the prompt load alone. Prompts are "
        f"compute work: the prefill GPUs use {_share(pu.mfu)} of their compute. Decoding is memory work: "
        f"the decode GPUs use {_share(qu.mbu)} of their memory bandwidth, their KV cache "
        f"{_share(qu.kv_usage)} full. A prefill pool too small shows as a long time to first token "
        f"(prompts queue before the transfer), a decode pool too small as a long time per output token; grow the "
        f"pool whose latency misses, or let fleetcast plan try prefill:decode ratios "
        f"(plan.candidates.disaggregated). Whether the split pays at all is a comparison with the same GPUs "
        f"co-located: fleetcast compare with a variant setting every role to both and kv_transfer to null."
    )


def disagg_lines(summary: RunSummary | None) -> list[tuple[str, str]]:
    """(label, text) lines for the terminal summary; none for a co-located fleet."""
    d = summary.disaggregated if summary is not None else None
    if not d:
        return []
    p, q = d.prefill, d.decode
    x = d.kv_transfer_s
    return [
        (
            "disaggregated",
            f"prefill pool {', '.join(p.pools)} ({_gpus(p.gpus)}) : decode pool "
            f"{', '.join(q.pools)} ({_gpus(q.gpus)}) = {d.gpu_ratio}; KV over {d.link}, "
            f"overlap {d.overlap}",
        ),
        (
            "KV transfer",
            f"p50 {fmt.latency(x.p50)}, p99 {fmt.latency(x.p99)} (part of TTFT); busy "
            f"prefill {_share(p.utilization.busy_frac)}, decode "
            f"{_share(q.utilization.busy_frac)}",
        ),
    ]


def _gpus(n: int) -> str:
    return f"{n:,} GPU" + ("" if n == 1 else "s")


def layout_sentence(candidates: list[PlanCandidate]) -> str | None:
    """A plan that weighed co-located against disaggregated candidates: the cheapest of each
    that meets the SLOs, and what the difference comes from (when every candidate of one kind
    was pruned, the least it was shown to cost); None when it weighed one kind."""
    usd = {c.id: c.usd_per_month for c in candidates if c.status == "ok" and c.usd_per_month is not None}
    co = [c for c in candidates if c.id in usd and not c.prefill_decode]
    split = [c for c in candidates if c.id in usd and c.prefill_decode]

    def said(c: PlanCandidate) -> str:
        return (
            f"{_gpus(int(c.gpus or 0))} at {fmt.usd(c.usd_per_month)} per month (p99 time to first token "
            f"{fmt.latency(c.p99_ttft_s)}, per output token {fmt.latency(c.p99_tpot_s)})"
        )

    if (co or split) and not (co and split) and any(c.prefill_decode for c in candidates):
        # one kind has no proven fleet: say so when its candidates were pruned (they cost more)
        lows = [c for c in candidates if c.status == "pruned" and bool(c.prefill_decode) == bool(co)]
        if not lows:
            return None
        best = min(co or split, key=lambda c: usd[c.id])
        low = min(lows, key=lambda c: c.usd_per_month_at_least or 0.0)
        kind, other = ("split", "co-located") if co else ("co-located", "split")
        return (
            f"Co-located against disaggregated: the cheapest {other} fleet meeting every SLO needs {said(best)}; "
            f"no {kind} fleet was searched to its count: each was pruned once it was shown to need more "
            f"(the cheapest, {low.id}, at least {low.replicas_at_least} replicas, {fmt.usd(low.usd_per_month_at_least)} "
            f"per month or more), so {other} is cheaper here."
        )
    if not co or not split:
        return None
    a = min(co, key=lambda c: usd[c.id])
    b = min(split, key=lambda c: usd[c.id])
    a_usd, b_usd = usd[a.id], usd[b.id]

    head = (
        f"Co-located against disaggregated: the cheapest co-located fleet meeting every SLO needs {said(a)}; the "
        f"cheapest split (prefill:decode {b.prefill_decode}, {b.prefill_replicas} prefill + "
        f"{b.decode_replicas} decode replicas) needs {said(b)}."
    )
    if b_usd < a_usd:
        return (
            head + " The split is cheaper here: with no prompt chunks in their steps the decode GPUs hold the "
            "time-per-token target at a higher load each, which outweighs the KV transfer and the separate "
            "prefill pool."
        )
    if b_usd > a_usd:
        return (
            head + " Co-location is cheaper here: at this load the time-per-token target is met with prompts "
            "and decodes sharing GPUs, so a separate prefill pool (and the KV transfer in every time to first "
            "token) costs more than the steadier decoding saves."
        )
    return head + " They cost the same; the ranking then goes by $ per million tokens."
