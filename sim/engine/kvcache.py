"""Paged KV-cache block accounting with a prefix cache (vLLM v1 style).

Blocks are counted, not materialised: a replica has ``num_blocks`` blocks of
``block_size`` tokens. A request holds ``ceil(computed_tokens / block_size)``
blocks; the leading ones may be *cached* blocks identified by a key (its
prefix chain), shared by every running request with the same prefix. When the
last holder of a cached block leaves, the block becomes *evictable*: still
free for allocation, but its content can be hit until it is evicted (least
recently freed first). New allocations take never-used ("empty") blocks
first, then evict.

Eviction order is ``lru``, a list of entries in the order they became
evictable (entry ``i`` at place ``lru_start + i``). An entry is either one key,
evictable while ``evictable`` (a dict: key -> its place) still gives that
place, or a chain record (``_Chain``, below) standing for the chain's keys in
reverse order, the tail first, as if each had its own entry there. Eviction
takes entries from ``lru_head`` on and skips what is no longer evictable at
that place (a key hit again, and so taken back). That is the order an
``OrderedDict`` with ``popitem(last=False)`` of every evictable key gives (the
per-key definition, ``evictable_keys()``). Entries eviction has passed are
dropped once they are over half of ``lru`` (and over 1,024); when the entries
it has not reached are more than twice the evictable blocks + 1,024 (keys hit
again while no eviction comes), ``lru`` is rebuilt from its live entries, in
order. So ``lru`` stays within a small multiple of the evictable blocks + 1,024.

Whole chains are held in O(1): requests that hold *every* key of the same
chain list (the fleet hands one list object to all requests with the same
prefix chain) are counted per chain in its ``_Chain`` record (``chains``: id of
the list -> record), and the chain holds one reference on each of its keys
while that count is above zero (a "chain holder"). So ``refcount`` counts
partial holders plus active chains; a key's true number of holders is
``holders(key)``. Zero crossings, and so eviction and its order, are the same
as with one reference per request.

A chain whose keys nobody else holds when it becomes whole-held (by
promotion) *owns* them: ``refcount`` maps each of its keys to the record
itself instead of a count of 1. When its last holder leaves, the record is
appended to ``lru`` as one entry (``dormant`` counts its keys as evictable) and
stays in ``chains``: holding the chain again is O(1), and the per-key
dictionary entries are touched only when eviction reaches them (each then
leaves ``refcount``; the record leaves ``chains`` at the first). Anything else
that touches an owned key (a partial holder, another list with the same keys)
first turns the record back into per-key counts (``_dissolve``): while it is
held, each key gets a count of 1; while dormant, each remaining key becomes
evictable at the record's own place, which eviction then checks key by key.
A request that registers its chain from the first block (no hits) owns the keys
as it registers them (``register_next``; a *pending* record, ``pending``: id of
its keys list -> record), so its promotion is O(1); otherwise ``promote`` makes
the chain own its keys when their counts are all 1 (looked up only while some
key's count is above 1, ``shared``).
"""

from __future__ import annotations

__all__ = ["KVCache", "OutOfBlocks"]


class OutOfBlocks(RuntimeError):
    """An allocation asked for more blocks than are free (an engine bug)."""


class _Chain:
    """Whole-chain holders of one chain list (see the module docstring)."""

    __slots__ = {
        "count": "long long",  # requests holding all of it (0: dormant, its keys evictable)
        "place": "long long",  # its entry in lru while dormant, else -1
        "n": "long long",  # leading keys not yet passed by eviction (owned ones: still cached)
        "owns": "bint",  # its keys map to this record in refcount
        "chain": "list",
        "keys": "list",  # while pending: the registering request's keys list (chain[:n]), else None
    }

    def __init__(self, chain: list) -> None:
        self.count = 1
        self.place = -1
        self.n = len(chain)
        self.owns = False
        self.chain = chain
        self.keys: list | None = None  # a list only while pending


class KVCache:
    """Block pool of one replica."""

    __slots__ = {
        "num_blocks": "long long",
        "block_size": "long long",
        "num_empty": "long long",
        "hit_blocks": "long long",
        "query_blocks": "long long",
        "dormant": "long long",
        "shared": "long long",
        "caching": "bint",
        "lru_start": "long long",
        "lru_head": "long long",
        "refcount": "dict",
        "chains": "dict",
        "pending": "dict",
        "evictable": "dict",
        "lru": "list",
    }

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool) -> None:
        self.num_blocks = int(num_blocks)
        self.block_size = int(block_size)
        self.caching = bool(enable_prefix_caching)
        self.num_empty = self.num_blocks  # blocks holding nothing
        self.refcount: dict = {}  # cached key -> running holders (> 0), or the _Chain owning it
        self.evictable: dict[int, int] = {}  # cached key, no holder, not owned -> its place in lru
        self.lru: list = []  # keys and dormant _Chain records as they came (place lru_start + i)
        self.lru_start = 0  # place of lru[0]
        self.lru_head = 0  # place of the oldest entry eviction has not passed
        self.dormant = 0  # evictable keys owned by dormant chains (not in ``evictable``)
        self.shared = 0  # keys whose count in refcount is 2 or more
        self.hit_blocks = 0  # prefix-cache hits (blocks), like vllm:prefix_cache_hits
        self.query_blocks = 0  # blocks looked up
        self.chains: dict[int, _Chain] = {}  # id(chain list) -> its record
        # id(keys list) -> the record of a chain its request is registering from its first block
        # (no hits): it owns those keys from the start, so promoting it is O(1)
        self.pending: dict[int, _Chain] = {}

    def clear(self) -> None:
        """Forget everything: every block empty, nothing cached (the memory of a failed
        replica, including blocks a step in flight had taken). Hit counters stay."""
        self.num_empty = self.num_blocks
        self.refcount.clear()
        self.evictable.clear()
        self.lru.clear()
        self.lru_start = self.lru_head = 0
        self.dormant = self.shared = 0
        self.chains.clear()
        self.pending.clear()

    @property
    def free(self) -> int:
        """Blocks an allocation can take (empty + evictable)."""
        return self.num_empty + len(self.evictable) + self.dormant

    @property
    def used(self) -> int:
        """Blocks held by running requests."""
        return self.num_blocks - self.num_empty - len(self.evictable) - self.dormant

    def evictable_keys(self) -> list:
        """The evictable keys in eviction order (oldest first): the per-key definition."""
        out = []
        evictable, lru, start = self.evictable, self.lru, self.lru_start
        for i in range(self.lru_head - start, len(lru)):
            e, place = lru[i], start + i
            if isinstance(e, _Chain):
                if e.place == place:
                    for j in range(e.n - 1, -1, -1):
                        key = e.chain[j]
                        if (self.refcount.get(key) is e) if e.owns else evictable.get(key, -1) == place:
                            out.append(key)
            elif evictable.get(e, -1) == place:
                out.append(e)
        return out

    # -- allocation ---------------------------------------------------------
    def allocate(self, n: int) -> None:
        """Take ``n`` private blocks: empty ones first, then evict LRU cached ones."""
        if n <= 0:
            return
        if n > self.num_empty + len(self.evictable) + self.dormant:  # inline: KVCache.free
            raise OutOfBlocks(f"asked for {n} blocks, {self.free} free")
        take = n if n <= self.num_empty else self.num_empty
        self.num_empty -= take
        if n > take:
            self._evict(n - take)

    def _evict(self, n: int) -> None:
        """Evict the ``n`` least recently freed evictable blocks (there are as many)."""
        evictable, lru = self.evictable, self.lru
        start, head = self.lru_start, self.lru_head
        while n:
            e = lru[head - start]
            if not isinstance(e, _Chain):
                place = evictable.get(e, -1)
                head += 1
                if place == head - 1:  # still evictable, and this is its entry
                    del evictable[e]
                    n -= 1
                continue
            rec = e
            if rec.place != head:  # held again since, or dissolved at a later place: a stale entry
                head += 1
                continue
            chain = rec.chain
            if rec.owns:
                if rec.n == len(chain) and self.chains.get(id(chain)) is rec:
                    del self.chains[id(chain)]  # no longer whole
                refcount = self.refcount
                while n and rec.n:
                    rec.n -= 1
                    del refcount[chain[rec.n]]
                    self.dormant -= 1
                    n -= 1
            else:  # dissolved: its keys evictable at its place, unless taken back since
                while n and rec.n:
                    rec.n -= 1
                    key = chain[rec.n]
                    if evictable.get(key, -1) == head:
                        del evictable[key]
                        n -= 1
            if not rec.n:
                head += 1
        self.lru_head = head
        if head - start > 1024 and 2 * (head - start) > len(lru):  # drop the entries passed
            del lru[: head - start]
            self.lru_start = head

    def _compact(self) -> None:
        """Rebuild ``lru`` from its live entries alone, in their order (the entries eviction
        would skip go; each live entry is at or after ``lru_head``)."""
        evictable, lru, start = self.evictable, self.lru, self.lru_start
        out: list = []
        for i in range(self.lru_head - start, len(lru)):
            e, place = lru[i], start + i
            if isinstance(e, _Chain):
                rec = e
                if rec.place != place:
                    continue
                rec.place = len(out)
                if not rec.owns:
                    chain = rec.chain
                    for j in range(rec.n):
                        if evictable.get(chain[j], -1) == place:
                            evictable[chain[j]] = rec.place  # overwriting a value keeps the dict's order
                out.append(rec)
            elif evictable.get(e, -1) == place:
                evictable[e] = len(out)
                out.append(e)
        self.lru = out
        self.lru_start = self.lru_head = 0

    def _dissolve(self, rec: _Chain) -> None:
        """``rec`` stops owning its keys: per-key counts of 1 while it is held; while dormant, its
        remaining keys become evictable at its place (and it leaves ``chains``)."""
        refcount, chain = self.refcount, rec.chain
        rec.owns = False
        if rec.count:
            for i in range(rec.n):
                refcount[chain[i]] = 1
            return
        evictable = self.evictable
        for i in range(rec.n - 1, -1, -1):
            key = chain[i]
            del refcount[key]
            evictable[key] = rec.place
        self.dormant -= rec.n
        if self.chains.get(id(chain)) is rec:
            del self.chains[id(chain)]

    def release(self, keys: list, private_blocks: int) -> None:
        """A request lets go of its cached ``keys`` (a list ``hold`` returned) and ``private_blocks``."""
        self.num_empty += private_blocks
        if not keys:
            return
        rec = self.chains.get(id(keys))
        if rec is not None and rec.chain is keys:  # a whole-chain holder
            rec.count -= 1
            if rec.count:
                return
            if rec.owns:  # dormant: one entry of lru for all its keys, tail first
                rec.place = self.lru_start + len(self.lru)
                self.lru.append(rec)
                self.dormant += rec.n
                if rec.place + 1 - self.lru_head > 2 * (len(self.evictable) + self.dormant) + 1024:
                    self._compact()
                return
            del self.chains[id(keys)]  # the last one: the chain lets go of its references
        elif self.pending:
            rec = self.pending.get(id(keys))
            if rec is not None and rec.keys is keys:  # it leaves before registering all of its chain
                del self.pending[id(keys)]
                if rec.owns:
                    self._dissolve(rec)
        # Reverse order: the tail of a chain is evicted before its head. One dictionary call per key
        # that loses its last holder (pop), two for one still held (pop, store the count less one).
        refcount, evictable, lru = self.refcount, self.evictable, self.lru
        place = self.lru_start + len(lru)
        for i in range(len(keys) - 1, -1, -1):  # compiled: a C loop
            key = keys[i]
            rc = refcount.pop(key)
            if rc != 1:
                refcount[key] = rc - 1
                if rc == 2:
                    self.shared -= 1
            else:  # evictable at the next place of lru
                evictable[key] = place
                lru.append(key)
                place += 1
        if place - self.lru_head > 2 * (len(evictable) + self.dormant) + 1024:  # entries not yet passed
            self._compact()

    # -- prefix cache -------------------------------------------------------
    def match_chain(self, chain: list, limit: int) -> tuple[int, int]:
        """``match(chain[:limit])``, in O(1) when the chain is held whole or dormant whole."""
        rec = self.chains.get(id(chain))
        if rec is not None and rec.chain is chain:
            m = limit if limit < len(chain) else len(chain)
            return m, (0 if rec.count else m)
        return self.match(chain[:limit])

    def hold(self, chain: list, hit: int) -> list:
        """Hold ``chain[:hit]`` (all cached, as ``match`` found); returns the keys
        list to hand back to ``release``: ``chain`` itself when all of it is held."""
        if hit < len(chain):
            keys = chain[:hit]
            self.acquire(keys)
            return keys
        rec = self.chains.get(id(chain))
        if rec is not None and rec.chain is chain:
            if not rec.count:  # dormant and whole: its keys are held again (its lru entry goes stale)
                rec.place = -1
                self.dormant -= rec.n
            rec.count += 1
        else:
            self.acquire(chain)  # the chain's own references
            self.chains[id(chain)] = _Chain(chain)
        return chain

    def promote(self, keys: list, chain: list) -> list:
        """A request that registered the last blocks of ``chain`` and so holds one
        reference per key of all of it (its ``keys``, equal to ``chain``) becomes
        its whole-chain holder: its references become the chain's. Returns
        ``chain``, the keys list to release from now on. (Nobody else can hold
        the whole chain: its last blocks were not cached until now.) When nobody
        else holds any of its keys, the chain owns them (its keys' counts are 1: looked up only while some key's count is above 1)."""
        if id(chain) in self.chains:
            raise RuntimeError("promote: the chain already has whole-chain holders")  # an engine bug
        rec = self.pending.get(id(keys)) if self.pending else None
        if rec is not None and rec.keys is keys:
            del self.pending[id(keys)]
            rec.keys = None
            if rec.owns:  # it registered all of the chain and owns it already
                self.chains[id(chain)] = rec
                return chain
        rec = self.chains[id(chain)] = _Chain(chain)
        refcount = self.refcount
        if self.shared:  # (else every count is 1, so each of its keys' is)
            for i in range(len(chain)):
                if refcount[chain[i]] != 1:
                    return chain
        for i in range(len(chain)):
            refcount[chain[i]] = rec
        rec.owns = True
        return chain

    def freed_by(self, keys: list) -> int:
        """Cached blocks that lose their last holder if the request holding
        ``keys`` (a list ``hold`` returned) let go now."""
        rec = self.chains.get(id(keys))
        if rec is not None and rec.chain is keys:
            if rec.count > 1:
                return 0  # other whole-chain holders keep every key
            if rec.owns:
                return len(keys)  # nobody else holds its keys
        elif self.pending:
            rec = self.pending.get(id(keys))
            if rec is not None and rec.keys is keys and rec.owns:
                return len(keys)  # its own registered keys, nobody else's
        # One of a key's references is this request's (its own, or its chain's when it is the
        # chain's only holder); a count of 1 means nobody else holds the key.
        refcount = self.refcount
        return [refcount[key] for key in keys].count(1)

    def holders(self, key: int) -> int:
        """Requests holding ``key`` (0 when it is not held)."""
        v = self.refcount.get(key, 0)
        if isinstance(v, _Chain):
            rec = v
            return rec.count  # its only holders are the chain's
        n = v
        for rec in self.chains.values():
            if rec.count > 1 and not rec.owns and key in rec.chain:
                n += rec.count - 1
        return n

    def match(self, keys: list) -> tuple[int, int]:
        """How many leading block ``keys`` are cached: (hit blocks, of which evictable)."""
        refcount, evictable = self.refcount, self.evictable
        hits = evictable_hits = 0
        for key in keys:  # compiled: a C loop, one dictionary look-up per key
            v = refcount.get(key)
            if v is not None:
                hits += 1
                if isinstance(v, _Chain):
                    rec = v
                    if not rec.count:  # owned by a dormant chain
                        evictable_hits += 1
            elif key in evictable:
                hits += 1
                evictable_hits += 1
            else:
                break
        return hits, evictable_hits

    def acquire(self, keys: list) -> None:
        """Hold the cached ``keys`` (all present, as ``match`` found)."""
        refcount, evictable = self.refcount, self.evictable
        for key in keys:
            v = refcount.get(key)
            if isinstance(v, _Chain):  # owned by a chain: per-key counts first
                self._dissolve(v)
                v = refcount.get(key)
            if v is None:
                del evictable[key]
                refcount[key] = 1
            else:
                refcount[key] = v + 1
                if v == 1:
                    self.shared += 1

    def register_all(self, keys: list) -> bool:
        """``register`` each of ``keys`` if none of them is cached yet (else nothing, False)."""
        refcount, evictable = self.refcount, self.evictable
        # plain loops: compiled, each test and store is one C call (map and zip go through
        # a method wrapper per key); no look-up in an empty ``evictable`` (keys of dormant
        # chains are in refcount)
        if evictable:
            for key in keys:
                if key in refcount or key in evictable:
                    return False
        else:
            for key in keys:
                if key in refcount:
                    return False
        for key in keys:
            refcount[key] = 1
        return True

    def register_next(self, keys: list, new: list, chain: list) -> bool:
        """``register_all(new)`` for the request holding ``keys`` (a prefix of ``chain``), ``new``
        its next blocks. A request that registers its chain from its first block (``keys``
        empty, or all registered so) owns them as its chain will (a pending record), so
        ``promote`` is O(1). False (nothing registered) when one of ``new`` is cached."""
        if keys:
            rec = self.pending.get(id(keys)) if self.pending else None
            if rec is None or rec.keys is not keys or not rec.owns:
                return self.register_all(new)
        else:
            rec = None
        refcount, evictable = self.refcount, self.evictable
        for key in new:
            if key in refcount or (evictable and key in evictable):
                if rec is not None:  # registered one at a time from now on: per-key counts
                    del self.pending[id(keys)]
                    rec.keys = None
                    self._dissolve(rec)
                return False
        if rec is None:
            rec = _Chain(chain)
            rec.n = 0
            rec.owns = True
            rec.keys = keys
            self.pending[id(keys)] = rec
        for key in new:
            refcount[key] = rec
        rec.n += len(new)
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
