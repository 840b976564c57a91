"""Prefix sharing from block hashes (Mooncake ``hash_ids``).

Hash ids are chained (a block's id names its content and everything before
it), so a request's leading blocks whose ids appeared in an earlier request
are a prefix it shares. From those: the share of requests with a shared
prefix, its typical length, how many distinct prefixes (chain roots) there
are and how popularity falls with rank (a Zipf exponent from the rank-count
slope on log-log axes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["PrefixFit", "fit_prefix", "MIN_SHARED_FRACTION"]

#: Below this fraction of requests sharing a prefix, no prefix is written.
MIN_SHARED_FRACTION = 0.05


@dataclass
class PrefixFit:
    shared_fraction: float  # requests whose first block was seen before
    tokens: int  # median shared prefix, tokens (requests that share)
    num_distinct: int  # distinct chain roots among the sharing requests
    zipf_s: Optional[float]  # None: uniform popularity
    note: str


def shared_blocks(offsets: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Leading blocks of each request whose ids appeared in an earlier request."""
    n = offsets.size - 1
    lens = offsets[1:] - offsets[:-1]
    owner = np.repeat(np.arange(n), lens)
    _, first = np.unique(ids, return_index=True)
    first_owner = np.empty(ids.size, dtype=np.int64)
    # each chunk's first occurrence, mapped back through the sort of ids
    inv = np.unique(ids, return_inverse=True)[1].ravel()
    first_owner[:] = owner[first][inv]
    seen = first_owner < owner
    pos = np.arange(ids.size) - np.repeat(offsets[:-1], lens)
    # the first unseen block's position (or the chain's length) is the shared run
    stop = np.where(seen, np.iinfo(np.int64).max, pos)
    out = lens.copy()
    has = lens > 0
    out[has] = np.minimum(np.minimum.reduceat(stop, offsets[:-1][has]), lens[has])
    return out


def fit_prefix(offsets: np.ndarray, ids: np.ndarray, prompt: np.ndarray, block_tokens: int) -> Optional[PrefixFit]:
    """The class's prefix sharing, or None when too few requests share one."""
    if ids.size == 0:
        return None
    blocks = shared_blocks(offsets, ids)
    sharing = blocks > 0
    frac = float(sharing.mean())
    if frac < MIN_SHARED_FRACTION:
        return PrefixFit(frac, 0, 0, None, f"{frac:.1%} of requests share a prefix (< {MIN_SHARED_FRACTION:.0%}): none")
    tokens = np.minimum(blocks[sharing] * block_tokens, prompt[sharing] - 1)
    med = int(max(np.median(tokens), 1))
    roots = ids[offsets[:-1][sharing]]
    _, counts = np.unique(roots, return_counts=True)
    counts = np.sort(counts)[::-1].astype(float)
    zipf: Optional[float] = None
    if counts.size >= 3:
        r = np.log(np.arange(1, counts.size + 1))
        slope = float(np.polyfit(r, np.log(counts), 1)[0])
        zipf = round(-slope, 3) if -slope > 0.05 else None
    note = (
        f"{frac:.1%} of requests share a prefix of median {med:,} tokens ({block_tokens}-token blocks); "
        f"{counts.size:,} distinct prefixes, popularity "
        + (f"Zipf s={zipf:g} (log-log rank-count slope)" if zipf else "about uniform")
        + (
            "; every generated request of the class gets a prefix (the format has no sharing fraction)"
            if frac < 0.95
            else ""
        )
    )
    return PrefixFit(frac, med, int(counts.size), zipf if zipf is None or zipf <= 10 else 10.0, note)
