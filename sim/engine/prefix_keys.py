"""Prefix-cache block keys of each request, from the workload's prefix chains.

A workload describes each request's shared prefix as a chain of chunks (a key
and the token where the chunk ends; ``Workload.prefix_*`` in CSR form). The KV
cache matches prompts block by block, so a replica needs one key per full
block the chain covers; a prefix-aware router needs the same keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sim.workload.generate import Workload

__all__ = ["PrefixKeys"]

_KEY_MULT = 0x9E3779B97F4A7C1  # spreads (chunk key, block index) into one int key
_MASK64 = (1 << 64) - 1  # keys are unsigned 64-bit ints


class PrefixKeys:
    """Block keys of the requests of one workload (cached per distinct chain)."""

    # _offsets, _chain_keys, _chain_ends: read-only memoryviews of the workload's columns (int64,
    # int64, int32: compiled, typed memoryviews indexed in C; no copy when the columns have these dtypes)
    __slots__ = {
        "_offsets": "const long long[:]",
        "_chain_keys": "const long long[:]",
        "_chain_ends": "const int[:]",
        "_key_cache": "dict",
        "_base": "dict",
        "_last": "dict",
    }

    def __init__(self, workload: Workload) -> None:
        self._offsets = _column(workload.prefix_offsets, np.int64)
        self._chain_keys = _column(workload.prefix_keys, np.int64)
        self._chain_ends = _column(workload.prefix_end_tok, np.int32)
        self._key_cache: dict[tuple, list | None] = {}
        # (block_size, chunk key) -> the keys of blocks 0, 1, ... of a one-chunk chain of that key: a
        # chain ending at token e has the first e // block_size of them (one list per chain: a slice)
        self._base: dict[tuple, list] = {}
        # chunk key -> (block_size, end token, keys) of a one-chunk chain's last look-up: one int key
        # instead of building and hashing a tuple per request (a replica asks at every arrival)
        self._last: dict[int, tuple] = {}

    def first_key(self, rid: int):
        """The first chunk key of request ``rid``'s chain, or None without a prefix (routing
        looks at it; computed per arrival, so no per-request list is held)."""
        lo = self._offsets[rid]
        return self._chain_keys[lo] if self._offsets[rid + 1] > lo else None

    def block_keys(self, rid: int, block_size: int) -> list | None:
        """Prefix-cache key of each full prompt block covered by the request's prefix chain.

        Block i's key is ``(key of the chunk holding its last token) * M + i``
        in 64-bit arithmetic; identical chains give identical keys, so they
        are cached per chain (synthetic prefixes repeat a handful of chains).
        """
        lo, hi = self._offsets[rid], self._offsets[rid + 1]
        if hi == lo:
            return None
        chain_keys, chain_ends = self._chain_keys, self._chain_ends
        cache_key: tuple | None
        if hi - lo == 1:  # the usual chain: one chunk
            last = self._last.get(chain_keys[lo])
            if last is not None and last[0] == block_size and last[1] == chain_ends[lo]:
                return last[2]
            cache_key = (block_size, chain_keys[lo], chain_ends[lo])
        elif hi - lo == 2:
            cache_key = (block_size, chain_keys[lo], chain_keys[lo + 1], chain_ends[lo], chain_ends[lo + 1])
        else:
            cache_key = None
        if cache_key is not None:
            hit = self._key_cache.get(cache_key)
            if hit is not None:
                if hi - lo == 1:
                    self._last[chain_keys[lo]] = (block_size, chain_ends[lo], hit)
                return hit
        if hi - lo == 1:  # every block's last token is in the one chunk: the first n_full of its keys
            n_full = chain_ends[lo] // block_size
            base_key = (block_size, chain_keys[lo])
            base = self._base.get(base_key)
            if base is None:
                base = self._base[base_key] = []
            if len(base) < n_full:
                key = chain_keys[lo]
                start = (key * _KEY_MULT) & _MASK64  # block i's key: (start + i) & _MASK64
                u = len(base)
                if start <= _MASK64 - n_full:  # no wrap-around: start + i (C integers when compiled)
                    while u < n_full:
                        base.append(start + u)
                        u += 1
                else:
                    base.extend([(key * _KEY_MULT + i) & _MASK64 for i in range(u, n_full)])
            out1 = base[:n_full] or None  # no full block: None, cached and returned as such
            self._key_cache[cache_key] = out1  # type: ignore[index]  # set above for a one-chunk chain
            self._last[chain_keys[lo]] = (block_size, chain_ends[lo], out1)
            return out1
        keys, ends = chain_keys[lo:hi], chain_ends[lo:hi]
        n_full = ends[-1] // block_size
        out, j = [], 0
        for i in range(n_full):
            end = (i + 1) * block_size
            while ends[j] < end:
                j += 1
            out.append((keys[j] * _KEY_MULT + i) & _MASK64)
        out = out or None  # type: ignore[assignment]  # no full block: None, cached and returned as such
        if cache_key is not None:
            self._key_cache[cache_key] = out
        return out


def _column(values, dtype) -> memoryview:
    """A workload column as a read-only memoryview of ``dtype`` (the column itself when it has it)."""
    arr: Any = np.ascontiguousarray(values, dtype=dtype)
    return memoryview(arr).toreadonly()
