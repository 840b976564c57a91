"""``build_report``: a plan or run folder in, ``report.{html,pdf,xlsx}`` out,
each written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sim.errors import FleetcastError, unknown_name
from sim.outpaths import check_out_folder, out_error, out_lock
from sim.report.assumptions import collect_assumptions
from sim.report.figures import build_figures
from sim.report.html_page import render_html
from sim.report.load import ReportInput, load_results
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


def _write_all(blobs: dict[str, bytes], out_dir: Path) -> dict[str, Path]:
    """Write every ``report.<format>`` into ``out_dir`` as one step: each into a temp file first,
    renamed in only when all are written; on any error (a full disk, a read-only mount) the temp
    files, and ``out_dir`` when this call created it, are removed and the error names ``out_dir``."""
    made = not out_dir.exists()
    temps: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for fmt_name, data in blobs.items():
            fd, tmp_name = tempfile.mkstemp(prefix=f".report.{fmt_name}.", dir=out_dir)
            temps.append(Path(tmp_name))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp_name, 0o644)
        paths = {}
        for (fmt_name, _), tmp in zip(blobs.items(), temps):
            paths[fmt_name] = out_dir / f"report.{fmt_name}"
            os.replace(tmp, paths[fmt_name])
        return paths
    except OSError as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        if made:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise out_error(out_dir, exc.strerror or str(exc), "the report") from None


def build_report(
    results: str | Path,
    formats: Iterable[str] = FORMATS,
    out: str | Path | None = None,
    *,
    pdf_engine: str = "auto",
    loaded: ReportInput | None = None,
) -> dict[str, Path]:
    """Render ``results`` (plan or run folder) into ``out``/report.{html,pdf,xlsx}.

    ``out`` is checked (a folder one can write, not another writer's now) before
    anything is rendered; every format is rendered in memory first and only
    then written (temp files + renames), so a failure leaves no half-written
    report and no folder it created. Returns format ->
    path; ``pdf_engine``: "auto" | "chromium" | "matplotlib"; ``loaded``: ``results`` already read
    by ``load_results`` (the CLI reads it before importing the renderers).
    """
    formats = parse_formats(formats)
    inp = loaded if loaded is not None else load_results(results)
    out_dir = check_out_folder(Path(out) if out is not None else default_out_dir(inp.path), "the report")
    with out_lock(out_dir, "the report"):
        return _render_and_write(inp, formats, out_dir, pdf_engine)


def _render_and_write(inp: ReportInput, formats: tuple[str, ...], out_dir: Path, pdf_engine: str) -> dict[str, Path]:
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
    return _write_all(blobs, out_dir)
