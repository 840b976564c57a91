"""Paged KV-cache block accounting with a prefix cache (vLLM v1 style).

Blocks are counted, not materialised: a replica has ``num_blocks`` blocks of
``block_size`` tokens. A request holds ``ceil(computed_tokens / block_size)``
blocks; the leading ones may be *cached* blocks identified by a key (its
prefix chain), shared by every running request with the same prefix. When the
last holder of a cached block leaves, the block becomes *evictable*: still
free for allocation, but its content can be hit until it is evicted (least
recently freed first). New allocations take never-used ("empty") blocks
first, then evict.

The evictable blocks are a plain dict (insertion order: least recently freed
first) from key to its place in ``lru``, the list of keys in the order they
became evictable; eviction takes ``lru``'s oldest entry whose key is still
evictable at that place (an entry of a key hit again, and so taken back, is
skipped). That is the order an ``OrderedDict`` with ``popitem(last=False)``
gives, at the cost of a dict store and a list append per block instead of an
ordered-dict node. Entries eviction has passed are dropped once they are over
half of ``lru`` (and over 1,024); when the entries it has not reached are more
than twice the evictable blocks + 1,024 (keys hit again while no eviction
comes), ``lru`` is rebuilt from the dict (its order). So ``lru`` stays within a
small multiple of the evictable blocks + 1,024.

Whole chains are held in O(1): requests that hold *every* key of the same
chain list (the fleet hands one list object to all requests with the same
prefix chain) are counted per chain, and the chain holds one reference on each
of its keys while that count is above zero (a "chain holder"). So ``refcount``
counts partial holders plus active chains; a key's true number of holders is
``holders(key)``. Zero crossings, and so eviction and its order, are the same
as with one reference per request.
"""

from __future__ import annotations

from itertools import repeat
from operator import add

__all__ = ["KVCache", "OutOfBlocks"]


class OutOfBlocks(RuntimeError):
    """An allocation asked for more blocks than are free (an engine bug)."""


class KVCache:
    """Block pool of one replica."""

    __slots__ = {
        "num_blocks": "long long",
        "block_size": "long long",
        "num_empty": "long long",
        "hit_blocks": "long long",
        "query_blocks": "long long",
        "caching": "bint",
        "lru_start": "long long",
        "lru_head": "long long",
        "refcount": "dict",
        "chains": "dict",
        "evictable": "dict",
        "lru": "list",
    }

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool) -> None:
        self.num_blocks = int(num_blocks)
        self.block_size = int(block_size)
        self.caching = bool(enable_prefix_caching)
        self.num_empty = self.num_blocks  # blocks holding nothing
        self.refcount: dict[int, int] = {}  # cached key -> running holders (> 0)
        self.evictable: dict[int, int] = {}  # cached, no holder (oldest first) -> its place in lru
        self.lru: list[int] = []  # evictable keys as they came (place lru_start + i); skipped if taken back
        self.lru_start = 0  # place of lru[0]
        self.lru_head = 0  # place of the oldest entry eviction has not looked at
        self.hit_blocks = 0  # prefix-cache hits (blocks), like vllm:prefix_cache_hits
        self.query_blocks = 0  # blocks looked up
        self.chains: dict[int, list] = {}  # id(chain list) -> [requests holding all of it, the list]

    def clear(self) -> None:
        """Forget everything: every block empty, nothing cached (the memory of a failed
        replica, including blocks a step in flight had taken). Hit counters stay."""
        self.num_empty = self.num_blocks
        self.refcount.clear()
        self.evictable.clear()
        self.lru.clear()
        self.lru_start = self.lru_head = 0
        self.chains.clear()

    @property
    def free(self) -> int:
        """Blocks an allocation can take (empty + evictable)."""
        return self.num_empty + len(self.evictable)

    @property
    def used(self) -> int:
        """Blocks held by running requests."""
        return self.num_blocks - self.num_empty - len(self.evictable)

    # -- allocation ---------------------------------------------------------
    def allocate(self, n: int) -> None:
        """Take ``n`` private blocks: empty ones first, then evict LRU cached ones."""
        if n <= 0:
            return
        if n > self.num_empty + len(self.evictable):  # inline: KVCache.free
            raise OutOfBlocks(f"asked for {n} blocks, {self.free} free")
        take = n if n <= self.num_empty else self.num_empty
        self.num_empty -= take
        if n > take:
            self._evict(n - take)

    def _evict(self, n: int) -> None:
        """Evict the ``n`` least recently freed evictable blocks (there are as many)."""
        evictable, lru = self.evictable, self.lru
        start, head = self.lru_start, self.lru_head
        for _ in range(n):
            while True:
                key = lru[head - start]
                place = evictable.get(key, -1)
                head += 1
                if place == head - 1:  # still evictable, and this is its entry
                    del evictable[key]
                    break
        self.lru_head = head
        if head - start > 1024 and 2 * (head - start) > len(lru):  # drop the entries passed
            del lru[: head - start]
            self.lru_start = head

    def _compact(self) -> None:
        """Rebuild ``lru`` from the evictable keys alone, in their order (the entries eviction
        would skip go; each live entry is at or after ``lru_head``)."""
        evictable = self.evictable
        lru = self.lru = list(evictable)
        for i in range(len(lru)):  # overwriting a value keeps the dict's order
            evictable[lru[i]] = i
        self.lru_start = self.lru_head = 0

    def release(self, keys: list, private_blocks: int) -> None:
        """A request lets go of its cached ``keys`` (a list ``hold`` returned) and ``private_blocks``."""
        self.num_empty += private_blocks
        if not keys:
            return
        entry = self.chains.get(id(keys))
        if entry is not None and entry[1] is keys:  # a whole-chain holder
            entry[0] -= 1
            if entry[0]:
                return
            del self.chains[id(keys)]  # the last one: the chain lets go of its references
        # Reverse order: the tail of a chain is evicted before its head. One dictionary call per key
        # that loses its last holder (pop), two for one still held (pop, store the count less one).
        refcount, evictable, lru = self.refcount, self.evictable, self.lru
        place = self.lru_start + len(lru)
        for i in range(len(keys) - 1, -1, -1):  # compiled: a C loop
            key = keys[i]
            rc = refcount.pop(key)
            if rc != 1:
                refcount[key] = rc - 1
            else:  # evictable at the next place of lru
                evictable[key] = place
                lru.append(key)
                place += 1
        if place - self.lru_head > 2 * len(evictable) + 1024:  # entries not yet passed
            self._compact()

    # -- prefix cache -------------------------------------------------------
    def match_chain(self, chain: list, limit: int) -> tuple[int, int]:
        """``match(chain[:limit])``, in O(1) when someone holds the whole chain."""
        entry = self.chains.get(id(chain))
        if entry is not None and entry[1] is chain:
            return (limit if limit < len(chain) else len(chain)), 0
        return self.match(chain[:limit])

    def hold(self, chain: list, hit: int) -> list:
        """Hold ``chain[:hit]`` (all cached, as ``match`` found); returns the keys
        list to hand back to ``release``: ``chain`` itself when all of it is held."""
        if hit < len(chain):
            keys = chain[:hit]
            self.acquire(keys)
            return keys
        entry = self.chains.get(id(chain))
        if entry is not None and entry[1] is chain:
            entry[0] += 1
        else:
            self.acquire(chain)  # the chain's own references
            self.chains[id(chain)] = [1, chain]
        return chain

    def promote(self, keys: list, chain: list) -> list:
        """A request that registered the last blocks of ``chain`` and so holds one
        reference per key of all of it (its ``keys``, equal to ``chain``) becomes
        its whole-chain holder: its references become the chain's. Returns
        ``chain``, the keys list to release from now on. (Nobody else can hold
        the whole chain: its last blocks were not cached until now.)"""
        if id(chain) in self.chains:
            raise RuntimeError("promote: the chain already has whole-chain holders")  # an engine bug
        self.chains[id(chain)] = [1, chain]
        return chain

    def freed_by(self, keys: list) -> int:
        """Cached blocks that lose their last holder if the request holding
        ``keys`` (a list ``hold`` returned) let go now."""
        entry = self.chains.get(id(keys))
        if entry is not None and entry[1] is keys and entry[0] > 1:
            return 0  # other whole-chain holders keep every key
        # One of a key's references is this request's (its own, or its chain's when it is the
        # chain's only holder); a count of 1 means nobody else holds the key.
        refcount = self.refcount
        return [refcount[key] for key in keys].count(1)

    def holders(self, key: int) -> int:
        """Requests holding ``key`` (0 when it is not held)."""
        n = self.refcount.get(key, 0)
        for count, chain in self.chains.values():
            if count > 1 and key in chain:
                n += count - 1
        return n

    def match(self, keys: list) -> tuple[int, int]:
        """How many leading block ``keys`` are cached: (hit blocks, of which evictable)."""
        refcount, evictable = self.refcount, self.evictable
        hits = evictable_hits = 0
        for key in keys:  # compiled: a C loop, one dictionary test per key
            if key in refcount:
                hits += 1
            elif key in evictable:
                hits += 1
                evictable_hits += 1
            else:
                break
        return hits, evictable_hits

    def acquire(self, keys: list) -> None:
        """Hold the cached ``keys`` (all present, as ``match`` found)."""
        refcount, evictable = self.refcount, self.evictable
        if all(map(refcount.__contains__, keys)):  # the usual case: all held (loops in C)
            refcount.update(zip(keys, map(add, map(refcount.__getitem__, keys), repeat(1))))
            return
        for key in keys:
            if key in evictable:
                del evictable[key]
                refcount[key] = 1
            else:
                refcount[key] += 1

    def register_all(self, keys: list) -> bool:
        """``register`` each of ``keys`` if none of them is cached yet (else nothing, False)."""
        refcount, evictable = self.refcount, self.evictable
        # plain loops: compiled, each test and store is one C call (map and zip go through
        # a method wrapper per key)
        for key in keys:
            if key in refcount or key in evictable:
                return False
        for key in keys:
            refcount[key] = 1
        return True

    def register(self, key: int) -> bool:
        """Turn one private, fully computed block into cached block ``key``.

        False when the key is already cached (someone computed it too): the
        block then stays private, as in vLLM.
        """
        if key in self.refcount or key in self.evictable:
            return False
        self.refcount[key] = 1
        return True
