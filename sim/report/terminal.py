"""Terminal rendering with rich.

``render_summary``: a ``sim.analysis.metrics.summarize`` dict in three blocks
that read well at 100 columns: latency and SLO per class (and a line naming
every SLO missed), fleet throughput and utilization per pool, KV capacity and
cost. Missing values print as "-"; SLO misses are red and marked "MISS". A table
wider than the terminal is turned on its side (``sim.report.fit_table``), never cut. When
the output is not a terminal, ``make_console`` gives a wide console without
colour, so piped tables are never cut. ``render_compare``: a ``fleetcast compare`` result, one table per variant.
"""

from __future__ import annotations

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from sim.analysis.compare import METRIC_BY_NAME
from sim.analysis.contracts import CompareRow, GroupStats, RunSummary, WindowSummary
from sim.report.autoscale_text import autoscale_lines, replica_count
from sim.report.compare import ci_cells
from sim.report.console import make_console
from sim.report.disagg_text import disagg_lines
from sim.report.fit_table import Fitting
from sim.report.power_text import power_lines

__all__ = ["render_summary", "render_compare", "slo_misses", "make_console"]

MISS = "bold red"
MET = "green"


def _num(x, scale: float = 1.0, fmt: str = "{:,.1f}") -> str:
    return "-" if x is None else fmt.format(x * scale)


def _ms(x) -> str:
    if x is None:
        return "-"
    ms = x * 1e3
    return f"{ms:,.2f}" if ms < 10 else f"{ms:,.1f}" if ms < 1000 else f"{ms:,.0f}"


def _pct(x) -> str:
    return _num(x, 100.0, "{:.1f}")


def _latency_cell(group: GroupStats, metric: str, label: str) -> Text:
    """Value in ms; when the class has a target at this percentile and misses it, red
    and marked "MISS" (so plain text says so too)."""
    value = getattr(getattr(group, metric), label)
    row = (group.slo or {}).get(f"{metric}:{label}")
    if row is None:
        return Text(_ms(value))
    return Text(_ms(value), style=MET) if row.met else Text(f"{_ms(value)} MISS", style=MISS)


_METRIC_WORDS = {"ttft_s": "TTFT", "tpot_s": "TPOT", "e2e_s": "E2E", "itl_s": "ITL"}


def slo_misses(summary: WindowSummary) -> list[str]:
    """One phrase per SLO a class misses, in words: "code: attainment 97.8% < 99%",
    "chat: TTFT p99 1,234 ms > 1,000 ms"."""
    out = []
    for name, g in summary.classes.items():
        for row in (g.slo or {}).values():
            if not row.met:
                got = "none" if row.achieved_s is None else f"{_ms(row.achieved_s)} ms"
                out.append(
                    f"{name}: {_METRIC_WORDS.get(row.metric, row.metric)} {row.percentile} "
                    f"{got} > {_ms(row.target_s)} ms"
                )
        att, target = g.attainment_pct, g.attainment_target_pct
        if target is not None and (att is None or att < target):
            out.append(f"{name}: attainment {_num(att, 1.0, '{:.1f}')}% < {target:g}%")
    return out


def _slo_line(summary: WindowSummary) -> Text:
    misses = slo_misses(summary)
    if not misses:
        return Text("SLO: every class meets its SLO.", style=MET)
    return Text("SLO MISSED: " + "; ".join(misses) + ".", style=MISS)


def _latency_table(summary: WindowSummary) -> Table:
    w = summary.window
    t = Table(
        title=f"Latency and SLO (window {w.start_s:,.0f}-{w.end_s:,.0f} s, {w.length_s:,.0f} s)", title_justify="left"
    )
    t.add_column("class", no_wrap=True, max_width=16)
    for head in (
        "TTFT p50\nms",
        "TTFT p99\nms",
        "TPOT p50\nms",
        "TPOT p99\nms",
        "ITL p99\nms",
        "E2E p99\nms",
        "attain\n%",
        "goodput\nreq/s",
    ):
        t.add_column(head, justify="right")
    rows = list(summary.classes.items()) + [("all", summary.overall)]
    for i, (name, g) in enumerate(rows):
        att, target = g.attainment_pct, g.attainment_target_pct
        att_style = "" if target is None else MET if (att or 0) >= target else MISS
        slo_met = g.slo_met
        name_style = "bold" if name == "all" else ""
        if slo_met is False:
            name_style += " red"
        t.add_row(
            Text(name, style=name_style.strip()),
            _latency_cell(g, "ttft_s", "p50"),
            _latency_cell(g, "ttft_s", "p99"),
            _latency_cell(g, "tpot_s", "p50"),
            _latency_cell(g, "tpot_s", "p99"),
            _latency_cell(g, "itl_s", "p99"),
            _latency_cell(g, "e2e_s", "p99"),
            Text(_num(att, 1.0, "{:.1f}") + (" MISS" if att_style == MISS else ""), style=att_style),
            Text(_num(g.goodput_rps, 1.0, "{:,.2f}")),
            end_section=(i == len(rows) - 2),
        )
    c = summary.overall.counts.model_dump()
    failed = {k: v for k, v in c.items() if k not in ("ok", "total") and v}
    t.caption = (
        f"{c['total']:,} requests in window, {c['ok']:,} ok"
        + "".join(f", {v:,} {k}" for k, v in failed.items())
        + "; MISS (red) = SLO missed"
    )
    return t


def _fleet_table(summary: WindowSummary) -> Table:
    o = summary.overall
    util = summary.utilization
    pools_u = {k: u.model_dump() for k, u in util.pools.items()}
    pools_c = {k: c.model_dump() for k, c in summary.cost.pools.items()}
    span = o.completion_span_s
    t = Table(
        title=(
            f"Throughput {_num(o.requests_per_s, 1, '{:,.2f}')} req/s, "
            f"{_num(o.output_tokens_per_s, 1, '{:,.0f}')} output tok/s, "
            f"{_num(o.total_tokens_per_s, 1, '{:,.0f}')} total tok/s over the "
            f"{_num(span, 1, '{:,.1f}')} s in which they completed (arrival window: "
            f"{_num(o.window_output_tokens_per_s, 1, '{:,.0f}')} output tok/s)"
        ),
        title_justify="left",
    )
    for head in (
        "pool",
        "GPU",
        "replicas\n(GPUs)",
        "busy\n%",
        "busy min-\nmax %",
        "MFU\n%",
        "MBU\n%",
        "KV used\n%",
        "out\ntok/s",
        "$/hour",
    ):
        t.add_column(head, justify="left" if head in ("pool", "GPU") else "right", max_width=14)
    names = list(dict.fromkeys([*pools_c, *pools_u]))
    rows = [(n, pools_u.get(n) or {}, pools_c.get(n) or {}) for n in names]
    if len(names) != 1:
        fleet_c = {"usd_per_hour": summary.cost.fleet_usd_per_hour, "output_tokens_per_s": o.output_tokens_per_s}
        if pools_c:
            fleet_c["replicas"] = sum(c["replicas"] for c in pools_c.values())
            fleet_c["gpus"] = sum(c["gpus"] for c in pools_c.values())
        rows.append(("fleet", util.fleet.model_dump(), fleet_c))
    for i, (name, u, c) in enumerate(rows):
        shape = (
            f"{replica_count(c['replicas'])} ({replica_count(c['gpus'])})"
            if "replicas" in c
            else str(u.get("replicas", "-"))
        )
        spread = "-" if u.get("busy_frac_min") is None else f"{_pct(u['busy_frac_min'])}-{_pct(u['busy_frac_max'])}"
        t.add_row(
            Text(name, style="bold" if name == "fleet" else ""),
            c.get("gpu", ""),
            shape,
            _pct(u.get("busy_frac")),
            spread,
            _pct(u.get("mfu")),
            _pct(u.get("mbu")),
            _pct(u.get("kv_usage")),
            _num(c.get("output_tokens_per_s"), 1, "{:,.0f}"),
            _num(c.get("usd_per_hour"), 1, "{:,.2f}"),
            end_section=(name != "fleet" and i == len(rows) - 2),
        )
    if not util.pools:
        t.caption = "no replica counters (testbed run): utilization not available"
    return t


def _cost_block(summary: WindowSummary) -> Text:
    c, e = summary.cost, summary.energy
    lines = [
        (
            "fleet cost",
            f"${_num(c.fleet_usd_per_hour, 1, '{:,.2f}')}/hour, ${_num(c.usd_per_month, 1, '{:,.0f}')}/month",
        ),
        (
            "per 1M tokens",
            f"${_num(c.usd_per_1m_output_tokens, 1, '{:,.3f}')} output, "
            f"${_num(c.usd_per_1m_total_tokens, 1, '{:,.3f}')} total",
        ),
        (
            "energy",
            f"{_num(e.kwh_per_1m_output_tokens, 1, '{:,.2f}')} kWh per 1M "
            "output tokens (upper bound at TDP, GPU board power only)",
        ),
    ]
    lit = summary.little
    if lit.L is not None:
        lines.append(
            ("Little's law", f"L={lit.L:,.2f}, lambda*W={_num(lit.lambda_W, 1, '{:,.2f}')}, gap {_pct(lit.rel_gap)}%")
        )
    run = summary if isinstance(summary, RunSummary) else None  # a bare summarize() has no run blocks
    lines += power_lines(run.power if run is not None else None)
    lines += disagg_lines(run)
    lines += autoscale_lines(run)
    for pool, source in sorted((run.profiles if run is not None else {}).items()):
        lines.append(("perf model", f"pool {pool}: {source}"))
    text = Text()
    for i, (k, v) in enumerate(lines):
        text.append(f"{k:>14}: ", style="bold")
        text.append(v + ("\n" if i < len(lines) - 1 else ""))
    return text


def _kv_table(summary: WindowSummary) -> Table | None:
    """Each pool's KV capacity and the per-GPU memory it came from (GiB), as vLLM logs it."""
    kv = {k: c.model_dump() for k, c in summary.kv_capacity.items()} if isinstance(summary, RunSummary) else {}
    if not kv:
        return None
    t = Table(title="KV cache per replica (memory per GPU, GiB)", title_justify="left")
    for head in (
        "pool",
        "num_gpu_\nblocks",
        "KV\ntokens",
        "device",
        "x util",
        "weights",
        "activ.\npeak",
        "non-\ntorch",
        "CUDA\ngraphs",
        "KV",
    ):
        t.add_column(head, justify="left" if head == "pool" else "right")
    for name, c in kv.items():
        m = c.get("memory_per_gpu") or {}
        t.add_row(
            name,
            f"{c['num_gpu_blocks']:,}",
            f"{c['kv_tokens']:,}",
            *(
                _num(m.get(k), 1, "{:,.2f}")
                for k in (
                    "device_gib",
                    "budget_gib",
                    "weights_gib",
                    "activation_peak_gib",
                    "non_torch_gib",
                    "cudagraph_gib",
                    "kv_cache_gib",
                )
            ),
        )
    t.caption = "; ".join(sorted({f"{c['source']}" for c in kv.values()}))
    return t


def render_summary(summary: WindowSummary) -> Group:
    """Latency/SLO table, throughput/utilization table, KV capacity and cost lines (those
    of a run, ``RunSummary``, add its KV capacity, pools' step-time sources and the
    disaggregated / autoscaled lines)."""
    kv = _kv_table(summary)
    return Group(
        Fitting(_latency_table(summary)),
        _slo_line(summary),
        Text(""),
        Fitting(_fleet_table(summary)),
        Text(""),
        *((Fitting(kv), Text("")) if kv is not None else ()),
        _cost_block(summary),
    )


# ------------------------------------------------------------------ compare
def _fmt_compare(x, scale: float) -> str:
    if x is None:
        return "–"
    v = x * scale
    a = abs(v)
    if a >= 10_000:  # keep columns narrow: 39.8k (ms)
        return f"{v / 1000:,.1f}k" if a < 1e6 else f"{v / 1e6:,.1f}M"
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.2g}"


def _verdict(row: CompareRow) -> tuple[str, str]:
    """(text, style) of the better/worse column: coloured when significant,
    dim when not."""
    d = row.direction
    if d is None:
        return "", "dim"
    if d == "same":
        return "same", "dim"
    if row.significant:
        return d, "green" if d == "better" else "red"
    return d, "dim"


def render_compare(result):
    """Rich renderable: one table per variant, rows class x metric."""
    doc = result.contract()
    R = doc.replications
    parts = []
    head = f"{doc.scenario.name}: {R} replication(s), seeds {doc.seeds[0]}..{doc.seeds[-1]} (common random numbers)" + (
        f", stress: {', '.join(doc.stress)}" if doc.stress else ""
    )
    parts.append(Text(head, style="bold"))
    for vname in [v for v in doc.variants if v != "baseline"]:
        t = Table(
            title=f"{vname} vs baseline: {', '.join(doc.variants[vname])}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for col, just in (
            ("class", "left"),
            ("metric", "left"),
            ("baseline", "right"),
            ("variant", "right"),
            ("diff", "right"),
            ("95% CI", "right"),
            ("sig", "center"),
            ("", "left"),
        ):
            t.add_column(col, justify=just, no_wrap=True)
        last = None
        for row in (r for r in doc.rows if r.variant == vname):
            m = METRIC_BY_NAME[row.metric]
            new_class = row.class_ != last
            if last is not None and new_class:
                t.add_section()
            last = row.class_
            ci, sig = ci_cells(row, _fmt_compare, m.scale)
            verdict, style = _verdict(row)
            diff = row.diff_mean
            t.add_row(
                row.class_ if new_class else "",
                f"{m.label} {m.unit}" if not m.unit.startswith("$/") else m.unit,
                _fmt_compare(row.baseline_mean, m.scale),
                _fmt_compare(row.variant_mean, m.scale),
                Text(("+" if diff and diff > 0 else "") + _fmt_compare(diff, m.scale), style=style),
                ci,
                sig,
                Text(verdict, style=style),
            )
        parts.append(t)
    if doc.note:
        parts.append(Text(doc.note, style="yellow"))
    parts.append(
        Text(
            "diff = variant - baseline, mean of the per-replication differences; 95% CI: paired t; "
            "sig ✓ = the CI excludes 0 (else better/worse is only the sign, dim). Lower "
            "latency and cost, higher goodput and attainment are better.",
            style="dim",
        )
    )
    return Group(*parts)
