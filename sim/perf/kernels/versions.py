"""vLLM version strings: parse one, pick the nearest of those measured.

Pure string work, apart from ``data`` (which reads the parquet tables with pyarrow):
the scenario validates ``engine.vllm_version`` with ``parse_version``, and a scenario
that is refused must not pay for pyarrow's import (issue 26: refusals under 0.5 s CPU).
"""

from __future__ import annotations

import re

__all__ = ["parse_version", "nearest_version"]

_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-]?(?:post|rc|dev|a|b)\d*)?$")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``'0.24.0'`` -> (0, 24, 0); a release suffix (``.post1``, ``rc2``) is ignored;
    anything else (``'latest'``, ``'0.x'``) -> None."""
    m = _VERSION.match(str(text).strip())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def nearest_version(available: list[str], wanted: str | None) -> str | None:
    """The available version nearest ``wanted`` (None: the newest). Distance is taken
    on (major, minor, patch) in that order of weight; a tie goes to the newer one."""
    if not available:
        return None
    if wanted is None:
        return available[-1]
    w = parse_version(wanted)
    if w is None:
        raise ValueError(f"not a version: {wanted!r}")

    def key(v: str) -> tuple:
        p = parse_version(v)
        dist = tuple(abs(a - b) for a, b in zip(p, w))  # type: ignore[arg-type]  # versions() lists parseable names
        first = next((i for i, d in enumerate(dist) if d), 3)  # the most significant part that differs
        return (-first, dist[first] if first < 3 else 0, tuple(-x for x in p))  # type: ignore[union-attr]  # as above

    return min(available, key=key)
