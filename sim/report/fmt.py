"""Number formatting for people: money, latency, percent, counts.

Every formatter takes ``None`` (an undefined value in a summary) and returns
an em dash, so a missing number never prints as ``nan`` or ``None``.
"""

from __future__ import annotations

import math

__all__ = ["DASH", "usd", "usd_small", "latency", "pct", "num", "rate", "si", "flatten"]

DASH = "—"


def _bad(x) -> bool:
    return x is None or isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)


def usd(x) -> str:
    """Whole dollars with thousands separators: ``$12,345``."""
    return DASH if _bad(x) else f"${x:,.0f}"


def usd_small(x) -> str:
    """Dollars with cents (or 3 decimals under $1): ``$2.99``, ``$0.897``."""
    if _bad(x):
        return DASH
    return f"${x:,.3f}" if abs(x) < 1 else f"${x:,.2f}"


def latency(x_s) -> str:
    """Seconds as ms under 1 s, else seconds: ``85 ms``, ``1.42 s``."""
    if _bad(x_s):
        return DASH
    if abs(x_s) < 1:
        ms = x_s * 1e3
        return f"{ms:.1f} ms" if ms < 10 else f"{ms:,.0f} ms"
    return f"{x_s:,.2f} s"


def pct(x, digits: int = 1) -> str:
    """A percentage value (already in %): ``99.2%``."""
    return DASH if _bad(x) else f"{x:,.{digits}f}%"


def num(x, digits: int = 0) -> str:
    return DASH if _bad(x) else f"{x:,.{digits}f}"


def rate(x) -> str:
    """Requests per second: ``12.5 req/s``."""
    return DASH if _bad(x) else f"{x:,.3g} req/s" if x < 10 else f"{x:,.1f} req/s"


_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"))


def si(x) -> str:
    """Any catalog/JSON value for a table cell: big numbers with an SI prefix
    (``989.5 T``), floats to 4 significant digits, other values as text."""
    if isinstance(x, bool) or x is None or not isinstance(x, (int, float)):
        return DASH if x is None else str(x)
    if not math.isfinite(x):
        return DASH
    for scale, prefix in _SI:
        if abs(x) >= scale:
            return f"{x / scale:,.4g} {prefix}"
    if isinstance(x, int) or (abs(x) >= 1000 and x == int(x)):
        return f"{int(x):,}"
    return f"{x:,.4g}" if abs(x) < 1e4 else f"{x:,.0f}"


def flatten(d, prefix: str = "") -> list[tuple[str, object]]:
    """Nested mapping -> ``[("a.b", value), ...]`` in insertion order (lists kept whole)."""
    out: list[tuple[str, object]] = []
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += flatten(v, key + ".")
        else:
            out.append((key, v if not isinstance(v, list) else ", ".join(map(str, v))))
    return out
