"""How to reproduce a report: the shell lines that regenerate its results.

The lines run as written in a POSIX shell: they start with ``cd`` into the
folder the results were made from (``plan.json`` records it as ``cwd`` beside
the ``command`` it ran), then re-simulate with the recorded seed into the same
results folder, then render the report again.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from sim.report.load import ReportInput

__all__ = ["reproduce_commands", "REPORT_FORMATS_ARG"]

REPORT_FORMATS_ARG = "--format html,pdf,xlsx"


def _out_of(command: str) -> str | None:
    """The ``--out`` value of a recorded command line, as written."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for i, w in enumerate(words):
        if w == "--out" and i + 1 < len(words):
            return words[i + 1]
        if w.startswith("--out="):
            return w.split("=", 1)[1]
    return None


def _plan_lines(inp: ReportInput) -> list[str]:
    sc = inp.doc.scenario
    cwd, command = inp.doc.cwd, inp.doc.command
    if cwd and command and _out_of(command):
        return [
            f"cd {shlex.quote(str(cwd))}",
            command,
            f"fleetcast report {shlex.quote(_out_of(command))} {REPORT_FORMATS_ARG}",  # type: ignore[arg-type]  # checked above
        ]
    # an older plan folder that did not record where it ran: absolute paths where known
    results = inp.path.resolve()
    path = sc.path or "scenario.yaml"
    lines = [f"cd {shlex.quote(str(results.parent))}"]
    if not Path(path).is_absolute():
        lines.insert(0, f"# the plan did not record its folder; {path} is relative to where `fleetcast plan` ran")
    lines += [
        f"fleetcast plan {shlex.quote(str(path))} --out {shlex.quote(results.name)}",
        f"fleetcast report {shlex.quote(results.name)} {REPORT_FORMATS_ARG}",
    ]
    return lines


def _run_lines(inp: ReportInput) -> list[str]:
    sc = inp.doc.scenario
    seed = sc.seed
    seed_arg = f" --seed {seed}" if seed is not None else ""
    results = inp.path.resolve()
    recorded = sc.path
    scenario = (
        shlex.quote(str(recorded))
        if recorded and Path(recorded).is_absolute()
        else f"{shlex.quote(results.name)}/scenario.yaml"
    )  # the run folder's own copy
    rerun = shlex.quote(results.name + "-rerun")
    return [
        f"cd {shlex.quote(str(results.parent))}",
        f"fleetcast run {scenario}{seed_arg} --out {rerun}",
        f"fleetcast report {rerun} {REPORT_FORMATS_ARG}",
    ]


def reproduce_commands(inp: ReportInput) -> list[str]:
    """Shell lines, one per line, to run as written: ``cd``, re-simulate, report."""
    version = inp.doc.fleetcast_version or "(version not recorded)"
    body = _plan_lines(inp) if inp.kind == "plan" else _run_lines(inp)
    return [f"# fleetcast {version}; same seed, same results", *body]
