"""The report as a printable PDF.

With Chromium available the HTML report is printed (``--print-to-pdf``), so
the PDF looks like the HTML. Without it, matplotlib's ``PdfPages`` writes
text pages (summary, candidates, assumptions, scenario) and the figures.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import textwrap
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from sim.report import fmt
from sim.report.assumptions import Assumptions, grouped_catalog
from sim.report.chromium import find_chromium, run_chromium
from sim.report.figures import RC, ReportFigure
from sim.report.fmt import flatten, si
from sim.report.load import ReportInput
from sim.report.narrative import CANDIDATE_COLUMNS, candidate_rows, headline, key_numbers, summary_paragraphs
from sim.report.own_rent import own_rent_assumptions, own_rent_rows, own_rent_sentence
from sim.report.repro import reproduce_commands

__all__ = ["render_pdf", "pdf_via_chromium", "pdf_via_matplotlib"]

A4 = (8.27, 11.69)  # inches
LINES_PER_PAGE = 72
WIDTH_CHARS = 100


def pdf_via_chromium(html_text: str) -> bytes:
    """Print the HTML with headless Chromium; raises if Chromium is missing or fails."""
    with tempfile.TemporaryDirectory(prefix="fleetcast-pdf-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html_text, encoding="utf-8")
        run_chromium(src, f"--print-to-pdf={out}", "--no-pdf-header-footer")
        data = out.read_bytes() if out.is_file() else b""
    if not data.startswith(b"%PDF"):
        raise subprocess.SubprocessError("chromium wrote no PDF")
    return data


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH_CHARS, initial_indent=indent, subsequent_indent=indent) or [""]


def _text_lines(inp: ReportInput, a: Assumptions) -> list[tuple[str, str]]:
    """(style, text) lines: style 'h1', 'h2' or 'body'."""
    sc = inp.doc.scenario
    out = [("h1", f"Fleet procurement report — {sc.name}"), ("h2", headline(inp)), ("body", "")]
    out.append(("h2", "Executive summary"))
    for p in summary_paragraphs(inp, a):
        out += [("body", s) for s in _wrap(p)] + [("body", "")]
    out += [("body", f"  {k:<24} {v}") for k, v in key_numbers(inp)] + [("body", "")]
    out.append(("h2", "Candidates compared"))
    for r in candidate_rows(inp):
        star = " ★ recommended" if r["recommended"] else ""
        out.append(("body", f"{r['label']}{star}"))
        vals = [f"{c.header}: {c.text(r.get(c.key))}" for c in CANDIDATE_COLUMNS[2:-1]]
        out += [("body", s) for s in _wrap("; ".join(vals), "    ")]
        if r.get("reason"):
            out += [("body", s) for s in _wrap(f"why: {r['reason']}", "    ")]
    if a.own_vs_rent is not None:
        out += [("body", ""), ("h2", "Own vs rent")]
        out += [("body", s) for s in _wrap(own_rent_sentence(a.own_vs_rent))]
        out += [
            (
                "body",
                f"  {item:<46} {fmt.usd(own) if own is not None else '':>12} "
                f"{fmt.usd(rent) if rent is not None else '':>12}",
            )
            for item, own, rent in own_rent_rows(a.own_vs_rent)
            if "1M" not in item
        ]
        out += [("body", s) for k, v, src in own_rent_assumptions(a.own_vs_rent) for s in _wrap(f"{k}: {v} — {src}")]
    out += [("body", ""), ("h2", "Assumptions")]
    for prof in a.profiles:
        out += [("body", s) for s in _wrap(f"pool {prof.pool}: {prof.note}. Coefficients: {prof.source}")]
        out += [("body", f"    {k}: {si(v)}") for k, v in flatten(prof.validation or {})]
    for kind, name, fields, src in grouped_catalog(a.catalog):
        values = ", ".join(f"{f} = {si(v)}" for f, v in fields)
        out += [("body", s) for s in _wrap(f"{kind} {name}: {values}")]
        out += [("body", s) for s in _wrap(f"source: {src}", "    ")]
    out += [("body", s) for n in a.notes for s in _wrap(n)]
    out += [("body", ""), ("h2", "Reproducibility")]
    out += [("body", f"seed {sc.seed}, fleetcast {inp.doc.fleetcast_version}")]
    out += [("body", c) for c in reproduce_commands(inp)] + [("body", ""), ("h2", "Scenario")]
    out += [("body", line) for line in (sc.yaml or "").splitlines()]
    return out


def _text_pages(lines: list[tuple[str, str]]) -> list[Figure]:
    pages: list[Figure] = []
    size = {"h1": 15, "h2": 11, "body": 7.5}
    step = 1.0 / (LINES_PER_PAGE + 6)
    for i in range(0, len(lines), LINES_PER_PAGE):
        fig = Figure(figsize=A4)
        y = 1 - 2.5 * step
        for style, text in lines[i : i + LINES_PER_PAGE]:
            fig.text(
                0.07,
                y,
                text,
                fontsize=size[style],
                family="DejaVu Sans" if style != "body" else "DejaVu Sans Mono",
                weight="bold" if style != "body" else "normal",
                va="top",
                parse_math=False,
            )
            y -= step * {"h1": 2.0, "h2": 1.5}.get(style, 1.0)
        fig.text(0.5, 0.02, f"page {len(pages) + 1}", ha="center", fontsize=7, color="#777777")
        pages.append(fig)
    return pages


def pdf_via_matplotlib(inp: ReportInput, a: Assumptions, figs: list[ReportFigure]) -> bytes:
    """Text pages + one page per figure, deterministic (no creation date)."""
    buf = io.BytesIO()
    with matplotlib.rc_context(RC), PdfPages(buf, metadata={"CreationDate": None, "Creator": "fleetcast"}) as pdf:  # type: ignore[arg-type]  # matplotlib's stubs key rc by the Literal names
        lines = _text_lines(inp, a)
        for page in _text_pages(lines):
            pdf.savefig(page)
        for f in figs:
            f.figure.suptitle(f.title, fontsize=11, fontweight="bold")
            pdf.savefig(f.figure)
            f.figure.suptitle("")
    return buf.getvalue()


def render_pdf(
    inp: ReportInput, a: Assumptions, figs: list[ReportFigure], html_text: str, engine: str = "auto"
) -> tuple[bytes, str]:
    """PDF bytes and the engine used ("chromium" | "matplotlib").

    ``engine`` "auto" prints the HTML with Chromium when one is found, else
    (or when Chromium fails) falls back to matplotlib.
    """
    if engine in ("auto", "chromium") and find_chromium():
        try:
            return pdf_via_chromium(html_text), "chromium"
        except (OSError, subprocess.SubprocessError):
            if engine == "chromium":
                raise
    return pdf_via_matplotlib(inp, a, figs), "matplotlib"
