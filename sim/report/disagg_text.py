"""A disaggregated fleet in a planner's words: what the prefill/decode split buys and costs.

Read from ``summary.json`` ``disaggregated`` (``sim.analysis.disagg_metrics``); the report's
executive summary, the terminal summary and ``fleetcast plan``'s report quote it.
"""

from __future__ import annotations

from sim.report import fmt

__all__ = ["disagg_paragraph", "disagg_lines"]


def _share(x) -> str:
    return fmt.pct(None if x is None else min(x, 1.0) * 100, 0)


def disagg_paragraph(summary: dict) -> str | None:
    """One paragraph for the report; None for a co-located fleet."""
    d = (summary or {}).get("disaggregated")
    if not d:
        return None
    p, q = d["prefill"], d["decode"]
    x = d.get("kv_transfer_s") or {}
    o = (summary.get("overall") or {})
    itl = (o.get("itl_s") or {}).get("p99")
    overlap = ("sent layer by layer while the prompt is computed, so only what the prompt's compute does not hide "
               "is waited for" if d.get("overlap") == "layerwise" else "sent after the prompt is computed")
    return (
        f"Prefill and decode run on separate GPUs (disaggregated serving): {p['gpus']} GPU"
        f"{'s' if p['gpus'] != 1 else ''} compute prompts and {q['gpus']} generate tokens (prefill:decode "
        f"{d['gpu_ratio']}). What the split buys: the decode GPUs never stop to compute a prompt, so the time "
        f"between output tokens stays at a plain decode step (p99 {fmt.latency(itl)} here) however long the "
        f"prompts arriving meanwhile, and each pool can be sized and tuned for its own work. What it costs: "
        f"each request's KV cache crosses {d['link']} ({fmt.si(d['link_bandwidth_bytes_s'])}B/s per GPU), "
        f"{overlap}: a median {fmt.latency(x.get('p50'))} and p99 {fmt.latency(x.get('p99'))} added to the "
        f"time to first token; and the prefill GPUs are a pool of their own that must keep up with the prompt "
        f"load alone. Here the prefill GPUs run steps {_share(p['utilization'].get('busy_frac'))} of the time "
        f"({_share(p['utilization'].get('mfu'))} of their compute) and the decode GPUs "
        f"{_share(q['utilization'].get('busy_frac'))} ({_share(q['utilization'].get('mbu'))} of their memory "
        f"bandwidth): the busier pool is the one to grow first. Whether the split pays is a comparison with the "
        f"same GPUs co-located (fleetcast compare with a variant setting every role to both and kv_transfer to "
        f"null, or a plan with plan.candidates.disaggregated)."
    )


def disagg_lines(summary: dict) -> list[tuple[str, str]]:
    """(label, text) lines for the terminal summary; none for a co-located fleet."""
    d = (summary or {}).get("disaggregated")
    if not d:
        return []
    p, q = d["prefill"], d["decode"]
    x = d.get("kv_transfer_s") or {}
    return [
        ("disaggregated", f"prefill {', '.join(p['pools'])} ({p['gpus']} GPUs) : decode {', '.join(q['pools'])} "
                          f"({q['gpus']} GPUs) = {d['gpu_ratio']}; KV over {d['link']}, overlap {d['overlap']}"),
        ("KV transfer", f"p50 {fmt.latency(x.get('p50'))}, p99 {fmt.latency(x.get('p99'))} (part of TTFT); busy "
                        f"prefill {_share(p['utilization'].get('busy_frac'))}, decode "
                        f"{_share(q['utilization'].get('busy_frac'))}"),
    ]
