"""Named random streams from one scenario seed.

One ``numpy.random.SeedSequence`` per scenario seed; each consumer asks for a
stream by name (``"arrivals"``, ``"lengths"``, ``"routing"`` ...). A stream
depends only on (seed, name), never on which other streams were drawn or in
which order, so adding a consumer does not shift the others — that is what
makes policy comparisons use common random numbers. No global RNG anywhere.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["stream"]


def stream(seed: int, name: str, *extra: int) -> np.random.Generator:
    """A ``numpy.random.Generator`` for the stream ``name`` of ``seed``.

    ``extra`` integers (e.g. a class index or a replication number) give
    independent sub-streams of the same name.
    """
    key = (zlib.crc32(name.encode("utf-8")), *(int(e) for e in extra))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int(seed), spawn_key=key)))
