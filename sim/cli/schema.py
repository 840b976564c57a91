"""``fleetcast schema``: the scenario format reference (Markdown)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.report.scenario_reference import scenario_reference

__all__ = ["register"]


def _cmd_schema(args: argparse.Namespace) -> int:
    text = scenario_reference()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def register(subparsers) -> None:
    """Add the ``schema`` subcommand."""
    s = subparsers.add_parser("schema", help="print the scenario format reference (Markdown)")
    s.add_argument("--out", help="write to this file instead of stdout")
    s.set_defaults(func=_cmd_schema)
