"""User-facing errors.

Every error a planner can cause with bad input is a ``FleetcastError``: the
CLI prints its message (one paragraph that names the file, line and field and
says what would be valid) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["FleetcastError", "ScenarioError", "did_you_mean", "unknown_name"]


class FleetcastError(Exception):
    """An error caused by the user's input; its message is shown as is."""

    exit_code = 2


class ScenarioError(FleetcastError):
    """A scenario file (or a file it refers to) is invalid."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest valid name, or ''."""
    close = difflib.get_close_matches(str(name), list(valid), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """Message for an unknown catalog/policy name, listing the valid ones."""
    valid = sorted(valid)
    return (
        f"unknown {kind} '{name}'.{did_you_mean(name, valid)} "
        f"Valid {kind} names: {', '.join(valid)}."
    )
