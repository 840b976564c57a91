"""The comparison report section: ``compare.html``.

One self-contained HTML file (inline CSS, inline SVG from matplotlib, no
external URLs): the paired-difference table of every variant and per-class
latency CDF overlays (baseline vs each variant; TTFT and E2E; the window's ok
requests of replication 0).
"""

from __future__ import annotations

import html
import io
import re

import numpy as np

from sim.analysis.compare import METRIC_BY_NAME
from sim.analysis.contracts import CompareDoc, CompareRow

__all__ = ["render_compare_html", "compare_section", "cdf_svg", "ci_cells"]

_MAX_POINTS = 400  # points per CDF line

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1.05em}
table.cmp{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
table.cmp th,table.cmp td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:right}
table.cmp th{background:#f4f4f4}table.cmp td.l,table.cmp th.l{text-align:left}
tr.first td{border-top:2px solid #999}
.better{color:#1a7f37;font-weight:600}.worse{color:#c62828;font-weight:600}.ns{color:#888}
.note{color:#666;font-size:.85em}.figs{display:flex;flex-wrap:wrap;gap:1em}.figs svg{max-width:100%;height:auto}
code{background:#f4f4f4;padding:0 .2em}
"""


def _fmt(x, scale: float) -> str:
    if x is None:
        return "–"
    v = x * scale
    a = abs(v)
    return f"{v:,.0f}" if a >= 1000 else f"{v:,.1f}" if a >= 100 else f"{v:,.2f}" if a >= 1 else f"{v:.3g}"


def ci_cells(row: CompareRow, fmt, scale: float) -> tuple[str, str]:
    """(confidence interval, significance mark) of one comparison row, as text; ``fmt(x, scale)`` formats a value."""
    if row.n == 0:
        return "no data", "–"
    if row.ci_low is None:
        return f"undefined (N={row.n})", "n/a"
    return f"[{fmt(row.ci_low, scale)}, {fmt(row.ci_high, scale)}]", "✓" if row.significant else "–"


def cdf_svg(series: dict[str, np.ndarray], title: str, xlabel: str) -> str:
    """Inline SVG of empirical CDFs, one line per named sample (seconds ->
    plotted in ms, log x when the range is wide)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "fleetcast", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
        lo, hi = np.inf, 0.0
        for i, (name, values) in enumerate(series.items()):
            v = np.sort(np.asarray(values, dtype=float)[np.isfinite(values)]) * 1e3
            if v.size == 0:
                continue
            y = np.arange(1, v.size + 1) / v.size
            if v.size > _MAX_POINTS:  # keep the SVG small: the curve at evenly spaced ranks
                idx = np.unique(np.linspace(0, v.size - 1, _MAX_POINTS).round().astype(int))
                v, y = v[idx], y[idx]
            ax.step(
                v,
                y,
                where="post",
                label=f"{name} (n={v.size})",
                lw=1.6 if i == 0 else 1.2,
                color="black" if i == 0 else f"C{i - 1}",
            )
            pos = v[v > 0]
            if pos.size:
                lo, hi = min(lo, pos[0]), max(hi, pos[-1])
        if hi > 0 and lo < np.inf and hi / lo > 50:
            ax.set_xscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of requests ≤ x")
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no completed requests", ha="center", va="center", transform=ax.transAxes)
        buf = io.StringIO()
        fig.savefig(
            buf,
            format="svg",
            bbox_inches="tight",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
        plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE (it names a URL)
    # inline SVG in HTML needs no namespace declarations: no URL left in the file
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg, count=0)
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    return svg.replace("xlink:href", "href")


def _table(doc: CompareDoc, vname: str) -> str:
    out = [
        '<table class="cmp"><tr><th class="l">class</th><th class="l">metric</th><th>baseline</th>'
        "<th>variant</th><th>diff</th><th>diff %</th><th>95% CI of diff</th><th>significant</th>"
        '<th class="l">verdict</th></tr>'
    ]
    last = None
    for row in (r for r in doc.rows if r.variant == vname):
        m = METRIC_BY_NAME[row.metric]
        first = row.class_ != last
        last = row.class_
        ci, sig = ci_cells(row, _fmt, m.scale)
        cls = (row.direction if row.direction in ("better", "worse") else "") if row.significant else "ns"
        diff = row.diff_mean
        rel = "–" if row.diff_rel_pct is None else f"{row.diff_rel_pct:+.1f}%"
        out.append(
            f'<tr{" class=first" if first else ""}><td class="l">{html.escape(row.class_)}</td>'
            f'<td class="l">{html.escape(m.label)} ({html.escape(m.unit)})</td>'
            f"<td>{_fmt(row.baseline_mean, m.scale)}</td><td>{_fmt(row.variant_mean, m.scale)}</td>"
            f'<td class="{cls}">{"+" if diff and diff > 0 else ""}{_fmt(diff, m.scale)}</td>'
            f"<td>{rel}</td>"
            f'<td>{ci}</td><td>{sig}</td><td class="l {cls}">{html.escape(row.direction or "")}</td></tr>'
        )
    out.append("</table>")
    return "\n".join(out)


def compare_section(result) -> str:
    """The comparison as an HTML fragment (``<section>``), for embedding in
    a larger report."""
    doc = result.contract()
    R = doc.replications
    parts = [
        '<section class="compare">',
        "<h2>Variant comparison</h2>",
        f"<p>Scenario <code>{html.escape(doc.scenario.name)}</code>, {R} replication(s) with common "
        f"random numbers (replication r uses seed {doc.base_seed} + r for every variant)"
        + (f", under stress: {html.escape(', '.join(doc.stress))}" if doc.stress else "")
        + ". Diff = variant − baseline, paired per replication; the 95% confidence interval is a paired t "
        "interval; a difference is significant when it excludes 0. Lower latency and cost, higher "
        "goodput and attainment are better.</p>",
    ]
    if doc.note:
        parts.append(f'<p class="note">{html.escape(doc.note)}</p>')
    for vname, overrides in doc.variants.items():
        if vname == "baseline":
            continue
        parts.append(f"<h3>{html.escape(vname)} vs baseline</h3>")
        parts.append(f'<p class="note">overrides: <code>{html.escape(", ".join(overrides))}</code></p>')
        parts.append(_table(doc, vname))
    parts.append("<h2>Latency distributions (replication 0)</h2>")
    for cname in doc.classes:
        sel = {v: (df if cname == "all" else df[df["class"] == cname]) for v, df in result.records.items()}
        figs = [
            cdf_svg({v: d[col].to_numpy() for v, d in sel.items()}, f"{cname}: {label}", f"{label} (ms)")
            for col, label in (("ttft_s", "TTFT"), ("e2e_s", "E2E latency"))
        ]
        parts.append(f'<h3>class {html.escape(cname)}</h3><div class="figs">{"".join(figs)}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def render_compare_html(result) -> str:
    """``compare.html``: a complete, self-contained page."""
    title = f"fleetcast compare — {html.escape(result.contract().scenario.name)}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>\n{compare_section(result)}\n</body></html>\n"
    )
