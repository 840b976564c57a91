"""A compare variant: a name and scenario overrides (``NAME:KEY=VALUE[,KEY=VALUE...]``).

Parsing only (no pandas, no engine), so that ``fleetcast compare`` refuses a bad
``--variant`` before it imports what the comparison runs on (``sim.analysis.compare``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sim.errors import FleetcastError

__all__ = ["Variant", "BASELINE", "STRESSES", "parse_variant"]

BASELINE = "baseline"
STRESSES = ("surge", "bursty", "failure")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
_PAIR_SPLIT = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_.\-]*\s*=)")  # a comma that starts the next KEY=


@dataclass(frozen=True)
class Variant:
    """A named set of scenario overrides."""

    name: str  # shown in tables and files
    overrides: tuple[str, ...]  # "dotted.key=value" strings, applied in order


def parse_variant(text: str) -> Variant:
    """``NAME:KEY=VALUE[,KEY=VALUE...]`` -> ``Variant``. A comma inside a
    value is kept when what follows it is not ``KEY=`` (``[a,b]`` works).
    Bad syntax is a ``FleetcastError`` naming the variant."""
    if ":" not in text:
        raise FleetcastError(
            f"--variant '{text}': expected NAME:KEY=VALUE[,KEY=VALUE...], e.g. fast:fleet.0.replicas=4 (no ':' found)"
        )
    name, rest = text.split(":", 1)
    name = name.strip()
    if not _NAME.match(name):
        raise FleetcastError(f"--variant '{text}': variant name '{name}' must be 1-64 letters, digits or _ . + -")
    if name == BASELINE:
        raise FleetcastError(f"--variant '{text}': the name '{BASELINE}' is reserved for the unchanged scenario")
    pairs = [p.strip() for p in _PAIR_SPLIT.split(rest)] if rest.strip() else []
    if not pairs:
        raise FleetcastError(f"variant '{name}': no KEY=VALUE overrides after '{name}:'")
    for p in pairs:
        key = p.split("=", 1)[0].strip()
        if "=" not in p or not key:
            raise FleetcastError(f"variant '{name}': '{p}' is not KEY=VALUE (e.g. fleet.0.policy.name=priority)")
        if not re.match(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$", key):
            raise FleetcastError(
                f"variant '{name}': key '{key}' is not a dotted scenario field path (e.g. fleet.0.engine.max_num_seqs)"
            )
    return Variant(name, tuple(pairs))
