"""``build_report``: a plan or run folder in, ``report.{html,pdf,xlsx}`` out,
each written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sim.errors import FleetcastError, unknown_name
from sim.report.assumptions import collect_assumptions
from sim.report.figures import build_figures
from sim.report.html_page import render_html
from sim.report.load import load_results
from sim.report.pdf import render_pdf
from sim.report.xlsx import render_xlsx

__all__ = ["FORMATS", "build_report", "parse_formats", "default_out_dir"]

FORMATS = ("html", "pdf", "xlsx")


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """'html,pdf' -> ('html', 'pdf'); unknown names are a FleetcastError."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for f in (s.strip().lower() for s in items):
        if not f:
            continue
        if f not in FORMATS:
            raise FleetcastError(unknown_name("report format", f, FORMATS))
        if f not in out:
            out.append(f)
    if not out:
        raise FleetcastError(f"no report format given; choose from {', '.join(FORMATS)}")
    return tuple(out)


def default_out_dir(results: Path) -> Path:
    """reports/<results folder name>/ under the working directory."""
    return Path("reports") / Path(results).resolve().name


def _write_atomic(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def build_report(results: str | Path, formats: Iterable[str] = FORMATS, out: str | Path | None = None,
                 *, pdf_engine: str = "auto") -> dict[str, Path]:
    """Render ``results`` (plan or run folder) into ``out``/report.{html,pdf,xlsx}.

    Every format is rendered in memory first and only then written (temp file
    + rename), so a failure leaves no half-written report. Returns format ->
    path; ``pdf_engine``: "auto" | "chromium" | "matplotlib".
    """
    formats = parse_formats(formats)
    inp = load_results(results)
    out_dir = Path(out) if out is not None else default_out_dir(inp.path)
    if out_dir.exists() and not out_dir.is_dir():
        raise FleetcastError(f"--out {out_dir} is a file; give a folder for the report")
    a = collect_assumptions(inp.doc, inp.scenario)
    figs = build_figures(inp)
    html_text = render_html(inp, a, figs)
    blobs: dict[str, bytes] = {}
    if "html" in formats:
        blobs["html"] = html_text.encode("utf-8")
    if "pdf" in formats:
        blobs["pdf"], _engine = render_pdf(inp, a, figs, html_text, engine=pdf_engine)
    if "xlsx" in formats:
        blobs["xlsx"] = render_xlsx(inp, a)
    paths = {}
    for fmt_name, data in blobs.items():
        paths[fmt_name] = out_dir / f"report.{fmt_name}"
        _write_atomic(data, paths[fmt_name])
    return paths
