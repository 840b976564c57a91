"""``fleetcast report``: turn a plan or run folder into a procurement report."""

from __future__ import annotations

import argparse

from sim.infiles import out_arg
from sim.report.console import make_console
from sim.report.load import load_results

__all__ = ["register"]


def _cmd_report(args: argparse.Namespace) -> int:
    loaded = load_results(args.results)  # a bad folder is refused before the renderers are imported
    from sim.report.build import build_report, parse_formats

    paths = build_report(args.results, parse_formats(args.format), args.out, pdf_engine=args.pdf_engine, loaded=loaded)
    console = make_console()
    for fmt_name, path in paths.items():
        console.print(f"{fmt_name:>4}: {path}", highlight=False)
    return 0


def register(subparsers) -> None:
    """Add the ``report`` subcommand to ``fleetcast``'s subparsers."""
    r = subparsers.add_parser(
        "report",
        help="write a procurement report (HTML, PDF, XLSX) from a plan or run folder",
        description="Write a procurement report from RESULTS: a plan folder (from `fleetcast plan`, "
        "with plan.json) or a run folder (from `fleetcast run`, with summary.json).",
    )
    r.add_argument("results", help="plan folder or run folder")
    r.add_argument(
        "--format", default="html,pdf,xlsx", help="comma-separated formats out of html, pdf, xlsx (default: all three)"
    )
    r.add_argument("--out", type=out_arg, help="output folder (default: reports/<results folder name>)")
    r.add_argument(
        "--pdf-engine",
        choices=("auto", "chromium", "matplotlib"),
        default="auto",
        help="auto: print the HTML with headless Chromium when installed, else matplotlib pages",
    )
    r.set_defaults(func=_cmd_report)
