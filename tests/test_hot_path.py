"""The engine's fast paths against the plain definitions they replace.

Each fast path (bulk prefix-cache refcounts, the least-outstanding heap, the
sliced block-need sum) must give exactly what the one-at-a-time definition
gives, on random operation sequences.
"""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.decode_group import DecodeGroup
from sim.kvcache import KVCache
from sim.routers import LeastOutstanding


class RefKV:
    """Per-key prefix cache: the definition KVCache's bulk paths must match."""

    def __init__(self) -> None:
        self.refcount: dict = {}
        self.evictable: OrderedDict = OrderedDict()

    def match(self, keys):
        hits = ev = 0
        for key in keys:
            if key in self.refcount:
                hits += 1
            elif key in self.evictable:
                hits += 1
                ev += 1
            else:
                break
        return hits, ev

    def acquire(self, keys):
        for key in keys:
            if key in self.evictable:
                del self.evictable[key]
                self.refcount[key] = 1
            else:
                self.refcount[key] += 1

    def register(self, key) -> bool:
        if key in self.refcount or key in self.evictable:
            return False
        self.refcount[key] = 1
        return True

    def release(self, keys):
        for key in reversed(keys):
            rc = self.refcount[key] - 1
            if rc:
                self.refcount[key] = rc
            else:
                del self.refcount[key]
                self.evictable[key] = None


# an operation: (request slot, chain, action, length)
_ops = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.sampled_from(["hold", "grow", "drop"]),
                          st.integers(1, 6)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(_ops)
def test_prefix_cache_bulk_paths_match_per_key_definition(ops):
    chains = [[(c * 100 + i) for i in range(8)] for c in range(3)]
    kv, ref = KVCache(10_000, 16, True), RefKV()
    held: dict[int, tuple[int, list]] = {}  # slot -> (chain, keys held: a prefix of the chain)
    for slot, chain, action, length in ops:
        if action == "hold" and slot not in held:
            keys = chains[chain][:length]
            got = kv.match(keys)
            assert got == ref.match(keys)
            hit = keys[:got[0]]
            kv.acquire(hit)
            ref.acquire(hit)
            held[slot] = (chain, list(hit))
        elif action == "grow" and slot in held:
            c, keys = held[slot]
            new = chains[c][len(keys):len(keys) + length]
            if kv.register_all(new):
                for key in new:
                    assert ref.register(key)
                keys.extend(new)
            else:  # someone holds or caches one of them: one at a time, as the engine does
                for key in new:
                    ok = kv.register(key)
                    assert ok == ref.register(key)
                    if not ok:
                        break
                    keys.append(key)
        elif action == "drop" and slot in held:
            _, keys = held.pop(slot)
            kv.release(keys, 0)
            ref.release(keys)
        assert kv.refcount == ref.refcount
        assert list(kv.evictable) == list(ref.evictable)  # eviction order too


class _Rep:
    def __init__(self, index: int) -> None:
        self.index = index
        self.outstanding = 0
        self.outstanding_heaps: list = []

    def change(self, delta: int) -> None:
        from heapq import heappush

        self.outstanding = max(0, self.outstanding + delta)
        for heap in self.outstanding_heaps:
            heappush(heap, (self.outstanding << 20) | self.index)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.lists(st.tuples(st.integers(0, 11), st.integers(-2, 3)), max_size=300),
       st.integers(0, 300))
def test_least_outstanding_heap_matches_a_scan(n, changes, fail_at):
    reps = [_Rep(i) for i in range(n)]
    eligible = list(reps)
    router = LeastOutstanding({}, None)
    router.track(eligible)
    for step, (i, delta) in enumerate(changes):
        if step == fail_at and len(eligible) > 1:  # a replica fails: the list shrinks in place
            eligible[:] = eligible[1:]
        reps[i % n].change(delta)
        assert router.choose(eligible, step, None, 0.0) is min(eligible, key=lambda r: r.outstanding)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 32), st.lists(st.integers(0, 5), min_size=32, max_size=32), st.integers(0, 10_000),
       st.integers(0, 200))
def test_block_need_sum_matches_step_by_step(bs, counts, k, steps):
    dec = DecodeGroup(bs, 1)
    dec.cnt = counts[:bs]
    dec.n = sum(dec.cnt)
    dec.k = k
    expect = sum(dec.cnt[(-(k + s)) % bs] for s in range(steps))  # the definition, one step at a time
    assert dec.blocks_needed(steps) == expect
