"""How to reproduce a report: the commands that regenerate its results."""

from __future__ import annotations

import shlex

from sim.report.load import ReportInput

__all__ = ["reproduce_commands"]


def reproduce_commands(inp: ReportInput) -> list[str]:
    """Shell commands, one per line: re-simulate with the recorded seed, then report.

    A plan folder may record its own ``command``; otherwise ``fleetcast plan``
    is given the scenario path it recorded.
    """
    sc = inp.plan.get("scenario") or {}
    path = sc.get("path") or "scenario.yaml"
    seed = sc.get("seed")
    out = shlex.quote(inp.path.name)
    if inp.kind == "plan":
        cmd = inp.plan.get("command") or f"fleetcast plan {shlex.quote(str(path))} --out {out}"
    else:
        seed_arg = f" --seed {seed}" if seed is not None else ""
        cmd = f"fleetcast run {shlex.quote(str(path))}{seed_arg} --out {out}"
    lines = [f"# fleetcast {inp.plan.get('fleetcast_version') or '(version not recorded)'}", cmd,
             f"fleetcast report {out} --format html,pdf,xlsx"]
    if inp.kind == "run":
        lines[2:2] = ["# or, from the run folder's own copy of the scenario:",
                      f"fleetcast run {out}/scenario.yaml{seed_arg} --out {out}"]
    return lines
