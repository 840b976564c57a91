"""The report as ONE self-contained HTML file: inline CSS, inline SVG figures,
no scripts, no external URLs; prints well (A4, section page breaks).
"""

from __future__ import annotations

import re
from html import escape

from sim.report import fmt
from sim.report.assumptions import Assumptions, grouped_catalog
from sim.report.facilities import FACILITY_HEADERS, facility_rows, facility_sentences, power_profile
from sim.report.figures import ReportFigure, to_svg
from sim.report.fmt import flatten, si
from sim.report.load import ReportInput
from sim.report.narrative import (
    CANDIDATE_COLUMNS,
    TIE_RULE,
    candidate_rows,
    candidate_slo_rows,
    headline,
    key_numbers,
    label_parts,
    summary_paragraphs,
)
from sim.report.own_rent import own_rent_assumptions, own_rent_rows, own_rent_sentence
from sim.report.plan_stats import (
    confidence_sentences,
    failure_sentence,
    plan_warnings,
    slo_interval_rows,
    timeline_rows,
    window_sentence,
)
from sim.report.repro import reproduce_commands

__all__ = ["render_html", "SECTION_IDS"]

SECTIONS = {
    "summary": "Summary",
    "slo": "SLOs",
    "confidence": "Confidence",
    "candidates": "Candidates",
    "own-vs-rent": "Own vs rent",
    "facilities": "Facilities",
    "figures": "Figures",
    "assumptions": "Assumptions",
    "reproducibility": "Reproducibility",
}
SECTION_IDS = tuple(SECTIONS)

CSS = """
:root{--ink:#1d2733;--muted:#5b6675;--line:#d8dde3;--ok:#1e7d45;--bad:#b8322f;--accent:#1f5fa8;--bg:#f5f7fa}
*{box-sizing:border-box}
body{font:14px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
 margin:0;background:#fff}
main{max-width:1100px;margin:0 auto;padding:28px 36px 60px}
header{border-bottom:3px solid var(--accent);padding-bottom:14px;margin-bottom:8px}
h1{font-size:26px;margin:0 0 4px}
.headline{font-size:18px;font-weight:600;margin:6px 0}
.headline.ok{color:var(--ok)} .headline.bad{color:var(--bad)}
.meta{color:var(--muted);font-size:12.5px}
nav{font-size:13px;margin:10px 0 0} nav a{color:var(--accent);margin-right:14px;text-decoration:none}
h2{font-size:19px;margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:22px 0 6px}
p{margin:0 0 10px;max-width:900px}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:10px;margin:16px 0 6px}
.card{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 12px}
.card .v{font-size:20px;font-weight:700} .card .l{color:var(--muted);font-size:12px}
table{border-collapse:collapse;width:100%;font-size:12.5px;margin:6px 0 12px}
th,td{border-bottom:1px solid var(--line);padding:5px 7px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.nw{white-space:nowrap}
tr.rec td{background:#fff6d6;font-weight:600}
.st-ok{color:var(--ok);font-weight:600} .st-bad{color:var(--bad);font-weight:600} .st-nofit{color:var(--muted)}
.why{color:var(--muted);font-size:12px}
@media (max-width:960px){table.cands{font-size:11.5px} table.cands th,table.cands td{padding:4px 3px}}
tr.haswhy td{border-bottom:0} tr.whyrow td{padding-top:0}
tr.total td{font-weight:600}
figure{margin:8px 0 20px;page-break-inside:avoid;break-inside:avoid}
figure svg{width:100%;height:auto;display:block}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:10px;font-size:11.5px;
 overflow:auto;white-space:pre-wrap}
code{font-size:12.5px;background:var(--bg);padding:1px 4px;border-radius:3px}
.warn{border-left:4px solid var(--bad);background:#fdf0ef;padding:8px 12px;margin:10px 0}
.src{color:var(--muted);font-size:11.5px}
@page{size:A4;margin:12mm 11mm}
@media print{body{font-size:12px} main{padding:0;max-width:none} nav{display:none}
 h2{break-after:avoid;margin-top:18px} h3{break-after:avoid} tr,figure{break-inside:avoid}
 table{font-size:10.5px} th,td{padding:3px 5px} .src{font-size:9.5px}
 #figures,#assumptions{break-before:page} pre.yaml{columns:2;column-gap:16px;font-size:9.5px}
 .cards{grid-template-columns:repeat(4,1fr)}}
"""


def _e(x) -> str:
    return escape("" if x is None else str(x))


def _src(text) -> str:
    """Source text for a table cell: escaped, URLs allowed to break after each '/'."""
    return re.sub(r"\S+://\S+", lambda m: m.group(0).replace("/", "/<wbr>"), _e(text))


def _table(
    headers: list[str],
    rows: list[list[str]],
    numeric: frozenset[int] | set[int] = frozenset(),
    row_class: list[str] | None = None,
) -> str:
    """``rows`` hold already-escaped cell HTML."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        cells = "".join(f'<td class="n">{c}</td>' if j in numeric else f"<td>{c}</td>" for j, c in enumerate(r))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _summary(inp: ReportInput, a: Assumptions) -> str:
    paras = "".join(
        f'<p class="warn">{_e(p)}</p>' if p.startswith("Warning: ") else f"<p>{_e(p)}</p>"
        for p in summary_paragraphs(inp, a)
    )
    cards = "".join(
        f'<div class="card"><div class="v">{_e(v)}</div><div class="l">{_e(k)}</div></div>' for k, v in key_numbers(inp)
    )
    return f'<section id="summary"><h2>Executive summary</h2>{paras}<div class="cards">{cards}</div></section>'


def _slo(inp: ReportInput) -> str:
    c = inp.recommended or (inp.candidates[0] if inp.kind == "run" else None)
    rows, forecast = candidate_slo_rows(c) if c else ([], "forecast")
    if not rows:
        body = (
            "<p>No latency SLO is defined in the scenario.</p>"
            if c
            else "<p>No fleet met the SLO; the per-candidate results are in the table below.</p>"
        )
    else:
        out = []
        for r in rows:
            is_att = r["metric"] == "attainment_pct"
            name = "requests meeting every target" if is_att else f"{r['percentile']} {r['metric'][:-2].upper()}"
            f = (lambda v: fmt.pct(v)) if is_att else fmt.latency
            met = '<span class="st-ok">met</span>' if r.get("met") else '<span class="st-bad">missed</span>'
            out.append([_e(r["class"]), _e(name), _e(f(r.get("target_s"))), _e(f(r.get("achieved_s"))), met])
        body = _table(["class", "target", "limit", forecast, ""], out, numeric={2, 3})
    return f'<section id="slo"><h2>Service-level objectives</h2>{body}</section>'


def _label_html(parts: list[str], recommended: bool) -> str:
    """Label parts joined by " · ", each unbreakable: lines break only between parts."""
    text = " · ".join(f'<span class="nw">{_e(p)}</span>' for p in parts)
    return text + (" ★" if recommended else "")


def _confidence(inp: ReportInput) -> str:
    """Replications, intervals and samples; the window; one replica down; hour by hour."""
    if inp.kind != "plan":
        return ""
    out = ['<section id="confidence"><h2>Confidence, demand window and failures</h2>']
    if not inp.doc.statistics:
        return "".join(out) + (
            "<p>This plan folder holds no replication statistics (it was made by an older "
            "fleetcast): each size was judged on one simulation. Re-run fleetcast plan for "
            "95% intervals.</p></section>"
        )
    out += [f'<p class="warn">Warning: {_e(w)}</p>' for w in plan_warnings(inp.doc)]
    c = inp.recommended
    if c is not None:
        out += [f"<p>{_e(x)}</p>" for x in confidence_sentences(inp.doc, c)]
    w = window_sentence(inp.doc)
    out += [f"<p>{_e(w)}</p>"] if w else []
    if c is not None:
        f = failure_sentence(c)
        out += [f"<p><b>{_e(f)}</b></p>"] if f else []
        rows = slo_interval_rows(c)
        if rows:
            out.append("<h3>SLO targets at the recommended size, over the replications</h3>")
            out.append(
                _table(
                    [
                        "class",
                        "target",
                        "limit",
                        "mean",
                        "95% interval",
                        "verdict",
                        "requests per run (min)",
                        "requests in all",
                    ],
                    [
                        [
                            _e(r["class"]),
                            _e(r["item"]),
                            _e(r["target"]),
                            _e(r["mean"]),
                            _e(r["interval"]),
                            _e(r["verdict"]),
                            _e(f"{r['samples_min']:,}"),
                            _e(f"{r['samples_total']:,}"),
                        ]
                        for r in rows
                    ],
                    numeric={2, 3, 6, 7},
                )
            )
    tl = timeline_rows(inp.doc)
    t = inp.doc.timeline
    if tl and t is not None:
        unit = t.unit or "hour"
        out.append(
            f"<h3>SLO attainment {_e(unit)} by {_e(unit)}</h3>"
            f"<p>The recommended fleet ({t.replicas} replicas) over the scenario's own "
            f"{t.duration_s or 0:,.0f} s at the forecast peak (one run, seed of replication 0); each "
            f"{_e(unit)} is {t.bin_s or 0:,.0f} s of simulated time.</p>"
        )
        out.append(
            _table(
                ["", "from", "to", "requests", "SLO attained", "p99 TTFT"],
                [
                    [
                        _e(r["label"]),
                        _e(f"{r['from_s']:,.0f} s"),
                        _e(f"{r['to_s']:,.0f} s"),
                        _e(f"{r['requests']:,}"),
                        _e(fmt.pct(r["attainment_pct"])),
                        _e(fmt.latency(r["p99_ttft_s"])),
                    ]
                    for r in tl
                ],
                numeric={1, 2, 3, 4, 5},
            )
        )
    elif t is not None and t.skipped:
        out.append(f"<p>Hour-by-hour attainment was not simulated: {_e(t.skipped)}.</p>")
    out.append("</section>")
    return "".join(out)


def _candidates(inp: ReportInput) -> str:
    """The sized candidates (meet or miss the SLO) in one table, each miss followed by a
    full-width row saying why; the ones that do not fit in memory in a second table."""
    parts, shared = label_parts(inp)
    cols = [c for c in CANDIDATE_COLUMNS if c.key != "reason"]
    numeric = {i for i, c in enumerate(cols) if c.excel != "General"}
    body, nofit = [], []
    for r in candidate_rows(inp):
        label = _label_html(parts.get(r.get("id")) or [str(r["label"])], r["recommended"])  # type: ignore[arg-type]  # a candidate always has an id
        if r.get("status") == "does-not-fit":
            nofit.append(f'<tr><td>{label}</td><td class="why">{_e(r.get("reason") or "")}</td></tr>')
            continue
        cells = []
        for i, col in enumerate(cols):
            text = _e(col.text(r.get(col.key)))
            if col.key == "status_text":
                cls = {"ok": "st-ok", "cannot-meet-slo": "st-bad"}.get(str(r.get("status")), "st-nofit")
                text = f'<span class="{cls}">{text}</span>'
            elif col.key == "label":
                text = label
            cells.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        classes = " ".join(c for c, on in (("rec", r["recommended"]), ("haswhy", bool(r.get("reason")))) if on)
        body.append(f'<tr class="{classes}">{"".join(cells)}</tr>' if classes else f"<tr>{''.join(cells)}</tr>")
        if r.get("reason"):
            body.append(
                f'<tr class="whyrow"><td></td><td colspan="{len(cols) - 1}" class="why">'
                f"why: {_e(r['reason'])}</td></tr>"
            )
    n_ok = sum(r.status == "ok" for r in inp.candidates)
    common = f" All candidates share: {_e(' · '.join(shared))}." if shared else ""
    intro = (
        f"<p>{len(inp.candidates)} candidate configuration(s) searched, {n_ok} meeting every SLO, ranked "
        f"cheapest first ({_e(TIE_RULE)}); ★ marks the recommendation.{common} Latency and attainment are at "
        "the forecast peak with the fewest replicas that meet every SLO (for a miss: at the largest fleet "
        "searched); the p99 columns pool every class (each class against its own target: SLOs and "
        "Confidence above).</p>"
    )
    n_count = sum(c.status == "ok" and c.searched == "count" for c in inp.candidates)
    if n_count:
        intro += (
            f"<p>{n_count} of them cost more at their proven count than the cheapest, so they were searched for "
            "that count only: their count interval and headroom are not known (shown as –) and their rows say "
            "why, with both costs.</p>"
        )
    n_pruned = sum(c.status == "pruned" for c in inp.candidates)
    if n_pruned:
        intro += (
            f"<p>{n_pruned} were pruned: their count search stopped once even the fewest replicas they could "
            "still need cost more than a fleet already proven, so they cannot be the cheapest; they show no "
            "count or cost of their own, and their rows say the least count, its cost and the fleet it was "
            "compared with.</p>"
        )
    if inp.points is not None:
        intro += f"<p class='src'>{len(inp.points):,} simulated points in total (XLSX sheet “Points”).</p>"
    head = "".join(f"<th>{_e(c.header)}</th>" for c in cols)
    out = [f'<section id="candidates"><h2>Candidates compared</h2>{intro}']
    if body:
        out.append(f'<table class="cands"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
    if nofit:
        out.append(
            f"<h3>Configurations that do not fit in GPU memory ({len(nofit)})</h3>"
            "<table><thead><tr><th>candidate</th><th>why</th></tr></thead>"
            f"<tbody>{''.join(nofit)}</tbody></table>"
        )
    out.append("</section>")
    return "".join(out)


def _own_rent(a: Assumptions) -> str:
    r = a.own_vs_rent
    if r is None:
        return ""
    rows = [
        [
            _e(item),
            _e(fmt.usd_small(o) if "1M" in item else fmt.usd(o)) if o is not None else "",
            _e(fmt.usd_small(x) if "1M" in item else fmt.usd(x)) if x is not None else "",
        ]
        for item, o, x in own_rent_rows(r)
    ]
    cls = ["total" if item.startswith(("total", "per 1M")) else "" for item, _, _ in own_rent_rows(r)]
    table = _table(["", "own (buy)", "rent (cloud)"], rows, {1, 2}, cls)
    assumptions = _table(
        ["assumption", "value", "source"],
        [
            [_e(k), f'<span class="nw">{_e(v)}</span>', f'<span class="src">{_src(s)}</span>']
            for k, v, s in own_rent_assumptions(r)
        ],
    )
    return (
        f'<section id="own-vs-rent"><h2>Own vs rent</h2><p>{_e(own_rent_sentence(r))}</p>{table}'
        f"<h3>What the comparison assumes</h3>{assumptions}</section>"
    )


def _facilities(inp: ReportInput) -> str:
    rows = facility_rows(inp)
    fig = power_profile(inp)
    if not rows and fig is None:
        return ""
    paras = "".join(f"<p>{_e(t)}</p>" for t in facility_sentences(inp))
    parts, _ = label_parts(inp)
    rec = inp.recommended.id if inp.recommended is not None else None
    table = _table(
        FACILITY_HEADERS,
        [[_label_html(parts.get(cid) or [cid], cid == rec)] + [_e(x) for x in cells] for cid, cells in rows],
        set(range(2, len(FACILITY_HEADERS))),
    )
    figure = (
        f'<figure id="power-profile"><h3>Power over the window</h3>{to_svg(fig)}<figcaption>Facility power '
        f"(GPUs from the ML.ENERGY-fitted curve, hosts, x PUE) in 24 bins of the measured window, with the plan's "
        f"budget lines where plan.power sets them.</figcaption></figure>"
        if fig is not None
        else ""
    )
    return f'<section id="facilities"><h2>Facilities: power, racks, energy, carbon</h2>{paras}{table}{figure}</section>'


def _figures(figs: list[ReportFigure]) -> str:
    parts = [
        f'<figure id="{f.id}"><h3>{_e(f.title)}</h3>{to_svg(f.figure)}<figcaption>{_e(f.caption)}</figcaption></figure>'
        for f in figs
    ]
    return f'<section id="figures"><h2>Figures</h2>{"".join(parts)}</section>'


def _assumptions(inp: ReportInput, a: Assumptions) -> str:
    out = ['<section id="assumptions"><h2>Assumptions</h2>']
    demand = {k: v for k, v in (inp.doc.demand or {}).items() if not isinstance(v, (dict, list))}
    if demand and inp.kind == "plan":
        out.append("<h3>Demand</h3>")
        out.append(_table(["item", "value"], [[_e(k), _e(si(v))] for k, v in demand.items()], {1}))
    out.append("<h3>Performance model calibration</h3>")
    for p in a.profiles:
        cls = "warn" if not p.validation else ""
        out.append(
            f'<div class="{cls}"><p><b>pool {_e(p.pool)}:</b> {_e(p.note)}. '
            f'<span class="src">Coefficients: {_e(p.source)}</span></p></div>'
        )
        if p.validation:
            out.append(_table(["validation", "value"], [[_e(k), _e(si(v))] for k, v in flatten(p.validation)], {1}))
    if not a.profiles:
        out.append("<p>The results do not say which coefficients were used.</p>")
    out.append(
        "<h3>Catalog numbers used</h3><p>Every hardware, model and quantization number the forecast "
        "used, with its source. GPU prices are assumptions, not quotes.</p>"
    )
    rows = [
        [
            _e(kind),
            f'<span class="nw">{_e(name)}</span>',
            "<br>".join(f"{_e(f)} = <b>{_e(si(v))}</b>" for f, v in fields),
            f'<span class="src">{_src(src)}</span>',
        ]
        for kind, name, fields, src in grouped_catalog(a.catalog)
    ]
    out.append(_table(["kind", "name", "numbers", "source"], rows))
    out += [f'<p class="warn">{_e(n)}</p>' for n in a.notes]
    window = inp.run.summary.window if inp.run else None
    if window is not None:
        out.append(
            f"<p>Measured window: arrivals from {window.start_s:,.0f} s to "
            f"{window.end_s:,.0f} s of simulated time; warm-up and cool-down are excluded.</p>"
        )
    out.append("</section>")
    return "".join(out)


def _repro(inp: ReportInput) -> str:
    sc = inp.doc.scenario
    rows = [
        ["scenario", _e(sc.name)],
        ["seed", _e(sc.seed)],
        ["fleetcast version", _e(inp.doc.fleetcast_version)],
        ["results", _e(inp.kind + " folder")],
    ]
    cmds = "\n".join(reproduce_commands(inp))
    return (
        f'<section id="reproducibility"><h2>Reproducibility</h2>{_table(["item", "value"], rows)}'
        "<h3>Commands</h3><p>Run these lines as written in a shell with <code>fleetcast</code> on the PATH "
        "(they start by changing into the folder the results were made in); the same seed gives the same "
        "results.</p>"
        f'<pre id="repro-commands">{_e(cmds)}</pre>'
        f'<h3>Scenario</h3><pre class="yaml">{_e(sc.yaml or "(scenario text not recorded)")}</pre></section>'
    )


def render_html(inp: ReportInput, a: Assumptions, figs: list[ReportFigure]) -> str:
    """The complete HTML document (deterministic for the same input)."""
    sc = inp.doc.scenario
    title = f"Fleet procurement report — {sc.name or inp.path.name}"
    ok = inp.recommended is not None
    facilities = _facilities(inp)
    has_facilities = bool(facilities)
    nav = "".join(
        f'<a href="#{i}">{t}</a>'
        for i, t in SECTIONS.items()
        if (i != "own-vs-rent" or a.own_vs_rent is not None) and (i != "facilities" or has_facilities)
    )
    meta = (
        f"From a {'plan search' if inp.kind == 'plan' else 'single simulation run'} · scenario "
        f"{_e(sc.name)} · seed {_e(sc.seed)} · fleetcast {_e(inp.doc.fleetcast_version)}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body><main><header><h1>{_e(title)}</h1>"
        f'<div class="headline {"ok" if ok else "bad"}">{_e(headline(inp))}</div>'
        f'<div class="meta">{meta}</div><nav>{nav}</nav></header>'
        + _summary(inp, a)
        + _slo(inp)
        + _confidence(inp)
        + _candidates(inp)
        + _own_rent(a)
        + facilities
        + _figures(figs)
        + _assumptions(inp, a)
        + _repro(inp)
        + "</main></body></html>\n"
    )
