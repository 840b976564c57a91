"""User-facing errors.

Every error a planner can cause with bad input is a ``FleetcastError``: the
CLI prints its message (one paragraph that names the file, line and field and
says what would be valid) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = ["FleetcastError", "ScenarioError", "closest_name", "did_you_mean", "unknown_name"]


class FleetcastError(Exception):
    """An error caused by the user's input; its message is shown as is."""

    exit_code = 2


class ScenarioError(FleetcastError):
    """A scenario file (or a file it refers to) is invalid."""


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[-_.\s]+", name.lower()) if w]


def closest_name(name: str, valid: Iterable[str]) -> str | None:
    """The valid name ``name`` most likely meant, or None. Ranked by meaning before spelling:
    a name whose first word is the same (``h200-sxm`` -> ``h200``, not the one-letter-off
    ``h100-sxm``: the first word names the thing, the rest a variant), then the number of
    shared words, then difflib's similarity (at least 0.5 unless a word is shared), then, as
    difflib's ``get_close_matches``, the larger name."""
    name = str(name)
    words = _words(name)
    best, best_key = None, None
    for v in valid:
        vw = _words(str(v))
        ratio = difflib.SequenceMatcher(None, name.lower(), str(v).lower()).ratio()
        key = (bool(words and vw and words[0] == vw[0]), len(set(words) & set(vw)), ratio, str(v))  # ties: as difflib
        if best_key is None or key > best_key:
            best, best_key = v, key
    if best_key is None or not (best_key[0] or best_key[2] >= 0.5):
        return None
    return best


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """Return ' Did you mean 'x'?' for the closest valid name (``closest_name``), or ''."""
    close = closest_name(name, valid)
    return f" Did you mean '{close}'?" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> str:
    """Message for an unknown catalog/policy name, listing the valid ones."""
    valid = sorted(valid)
    return f"unknown {kind} '{name}'.{did_you_mean(name, valid)} Valid {kind} names: {', '.join(valid)}."
