"""vLLM version strings: parse one, pick the nearest of those measured.

Pure string work, apart from ``data`` (which reads the parquet tables with pyarrow):
the scenario validates ``engine.vllm_version`` with ``parse_version``, and a scenario
that is refused must not pay for pyarrow's import (issue 26: refusals under 0.5 s CPU).

Versions are read as vLLM builds them, not by PEP 440's order alone (packaging.python.org,
"Version specifiers"). vLLM builds a release from a release branch cut 1-2 days before the
release, and tags its candidates there (vllm-project/vllm ``RELEASE.md``, "Release branch"): a
pre-release of X (``0.9.2rc1``, ``a``/``b`` likewise) holds X's changes, so it is X in every
version rule. A development build of X (``0.10.0.dev3``, a nightly from main before X's branch
was cut) may lack any of X's changes, so it sorts before X and after the release before it, on
the older side of every window whose edge is X. A post-release (``0.9.1.post1``) or a local
build (``0.9.1+cu126``) of X is X.
"""

from __future__ import annotations

import re

__all__ = ["parse_version", "nearest_version"]

# PEP 440's public version (release, pre, post, dev) and local label, as its appendix
# writes them, case-insensitive; the release has two parts at least (MAJOR.MINOR)
_VERSION = re.compile(
    r"^(?P<release>\d+(?:\.\d+)+)"
    r"(?P<pre>[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?\d*)?"
    r"(?P<post>-\d+|[-_.]?(?:post|rev|r)[-_.]?\d*)?"
    r"(?P<dev>[-_.]?dev[-_.]?\d*)?"
    r"(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?$",
    re.IGNORECASE,
)


class _Before(int):
    """A release's patch number as one of its development builds holds it: ``_Before(2, ".dev3")``
    sorts after 1 and before 2, so ``(0, 9, _Before(2, ".dev3")) < (0, 9, 2)``. Arithmetic is the
    int's (a development build's distance to its release is 0); it prints as written (``2.dev3``)."""

    suffix: str

    def __new__(cls, value: int, suffix: str) -> _Before:
        self = super().__new__(cls, value)
        self.suffix = suffix
        return self

    def _key(self) -> float:
        return int(self) - 0.5

    @staticmethod
    def _other(other: object) -> float | None:
        if isinstance(other, _Before):
            return other._key()
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return float(other)
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Before) and int(self) == int(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return int.__hash__(self)

    def __lt__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self._key() < o

    def __le__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self._key() <= o

    def __gt__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self._key() > o

    def __ge__(self, other: object) -> bool:
        o = self._other(other)
        return NotImplemented if o is None else self._key() >= o

    def __str__(self) -> str:
        return f"{int(self)}{self.suffix}"

    __repr__ = __str__

    def __reduce__(self):
        return (_Before, (int(self), self.suffix))


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``'0.24.0'`` -> (0, 24, 0), read as vLLM builds its versions (module doc): a pre-release
    is its release (``'0.9.2rc1'`` -> (0, 9, 2)), a development build sorts before its release
    (``'0.9.2.dev364+gb1235c3e1'`` < (0, 9, 2), > (0, 9, 1)), a post-release or local build is
    its release (``'0.9.1.post1'``, ``'0.9.1+cu126'`` -> (0, 9, 1)); a fourth release part above 0
    (``0.9.1.1``) is after 0.9.1 and before 0.9.2, so 0.9.1 too. Anything else (``'latest'``,
    ``'0.x'``, ``'v0.9.1'``) -> None."""
    m = _VERSION.match(str(text).strip())
    if m is None:
        return None
    parts = [int(p) for p in m.group("release").split(".")]
    major, minor, patch = (parts + [0])[:3]
    before = m.group("dev") and not m.group("pre") and not m.group("post") and not any(parts[3:])
    if before:  # a development build of major.minor.patch: before it
        suffix = str(text).strip()[len(m.group("release")) :]
        return major, minor, _Before(patch, suffix)
    return major, minor, patch


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
