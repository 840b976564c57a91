"""Request lengths from a published histogram (an aggregate row's ``<which>_hist_edges`` and
``<which>_hist_counts``; docs/run-logs.md, "Saturated bursts").

A benchmark that publishes per configuration only a histogram of its output lengths (ML.ENERGY's
``output_length_distribution``: numpy ``histogram`` bin edges and counts) gives the lengths up to
the bin. The replay takes one length per counted request: bin i's ``c`` requests get lengths at the
midpoints of ``c`` equal slices of [edge i, edge i+1], rounded and kept inside the bin, so the
lengths follow the histogram exactly at its resolution and their mean is within half a bin of the
source's; the order is shuffled with the row's seed (the order the requests reach the server).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sim.errors import FleetcastError
from sim.workload.distributions import MAX_TOKENS

__all__ = ["hist_lengths"]

_DOC = 'docs/run-logs.md, "Saturated bursts"'


def _numbers(path: Path, line: int, rec: dict, fld: str, *, integer: bool) -> list[float]:
    text = rec.get(fld, "")
    out = []
    for tok in text.split():
        try:
            v = float(tok)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or v < 0 or (integer and v != int(v)):
            what = "integers >= 0" if integer else "numbers >= 0"
            raise FleetcastError(
                f"{path}, line {line}, field {fld}: must be space-separated {what}, got {tok!r} ({_DOC})"
            )
        out.append(v)
    if not out:
        raise FleetcastError(f"{path}, line {line}, field {fld}: empty ({_DOC})")
    return out


def hist_lengths(path: Path, line: int, rec: dict, which: str, n: int, rng: np.random.Generator) -> tuple:
    """``n`` lengths of ``which`` from the row's histogram (module doc) and their description; the
    counts must add up to ``n`` (one length per request sent)."""
    edges = _numbers(path, line, rec, f"{which}_hist_edges", integer=False)
    counts = [int(c) for c in _numbers(path, line, rec, f"{which}_hist_counts", integer=True)]
    where = f"{path}, line {line}, field {which}_hist"
    if len(edges) != len(counts) + 1:
        raise FleetcastError(
            f"{where}_counts: {len(counts)} counts for {len(edges)} edges; a histogram has one count per bin "
            f"(edges - 1) ({_DOC})"
        )
    if any(b <= a for a, b in zip(edges, edges[1:])) or edges[0] < 1 or edges[-1] > MAX_TOKENS:
        raise FleetcastError(f"{where}_edges: must increase strictly from >= 1 to <= {MAX_TOKENS:,} tokens ({_DOC})")
    if sum(counts) != n:
        raise FleetcastError(
            f"{where}_counts: the counts add up to {sum(counts)}, but the row sends {n} requests; one length "
            f"per request ({_DOC})"
        )
    parts = []
    for lo, hi, c in zip(edges, edges[1:], counts):
        if c:
            mid = lo + (np.arange(c) + 0.5) * (hi - lo) / c
            parts.append(np.clip(np.rint(mid), math.ceil(lo), max(math.ceil(lo), math.floor(hi))))
    values = rng.permutation(np.concatenate(parts)).astype(np.int32)
    return values, f"histogram of {len(counts)} bins over [{edges[0]:g}, {edges[-1]:g}]"
