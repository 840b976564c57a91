"""The engine's fast paths against the plain definitions they replace.

Each fast path (bulk prefix-cache refcounts, the least-outstanding heap, the
sliced block-need sum) must give exactly what the one-at-a-time definition
gives, on random operation sequences.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from heapq import heappush

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sim.engine.decode_group import DecodeGroup
from sim.engine.kvcache import KVCache
from sim.engine.replica import outstanding_key
from sim.engine.routers import LeastOutstanding


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
_ops = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1), st.sampled_from(["hold", "grow", "drop"]),
                          st.integers(1, 4)), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(_ops)
# two, then three whole-chain holders; all of them leave (the chain's keys become evictable)
@example([(0, 0, "hold", 4), (0, 0, "grow", 4), (1, 0, "hold", 4), (2, 0, "hold", 4), (0, 0, "drop", 1),
          (1, 0, "drop", 1), (2, 0, "drop", 1)])
# a partial holder beside whole-chain holders, leaving last
@example([(0, 1, "hold", 4), (0, 1, "grow", 2), (1, 1, "hold", 1), (0, 1, "grow", 2), (2, 1, "hold", 4),
          (3, 1, "hold", 4), (2, 1, "drop", 1), (0, 1, "drop", 1), (3, 1, "drop", 1), (1, 1, "drop", 1)])
def test_prefix_cache_fast_paths_match_per_key_definition(ops):
    """Whole-chain holders (by hold and by promotion), bulk refcounts and bulk registration against one
    reference per request per key: same hits, holders, eviction order."""
    chains = [[(c * 100 + i) for i in range(4)] for c in range(2)]  # one list object per chain, as the fleet shares
    kv, ref = KVCache(10_000, 16, True), RefKV()
    held: dict[int, tuple[int, list]] = {}  # slot -> (chain, keys list as the engine keeps it)
    for slot, chain, action, length in ops:
        if action == "hold" and slot not in held:
            limit = 4 if length > 1 else 2  # mostly the whole chain
            got = kv.match_chain(chains[chain], limit)
            assert got == ref.match(chains[chain][:limit])
            keys = kv.hold(chains[chain], got[0]) if got[0] else []
            ref.acquire(chains[chain][:got[0]])
            held[slot] = (chain, keys)
        elif action == "grow" and slot in held:
            c, keys = held[slot]
            new = chains[c][len(keys):len(keys) + length]
            if not new:
                continue
            if kv.register_all(new):
                for key in new:
                    assert ref.register(key)
                keys.extend(new)
                if len(keys) == len(chains[c]):  # it now holds the whole chain, as the engine promotes it
                    held[slot] = (c, kv.promote(keys, chains[c]))
            else:  # someone holds or caches one of them: one at a time, as the engine does
                for key in new:
                    ok = kv.register(key)
                    assert ok == ref.register(key)
                    if not ok:
                        break
                    keys.append(key)
        elif action == "drop" and slot in held:
            c, keys = held.pop(slot)
            kv.release(keys, 0)
            ref.release(chains[c][:len(keys)])
        for chain in chains:
            for key in chain:
                assert kv.holders(key) == ref.refcount.get(key, 0)
        for held_chain, keys in held.values():  # what a preemption of each holder would free
            assert kv.freed_by(keys) == sum(1 for key in keys if ref.refcount[key] == 1)
            # the keys of this holder's own chain that someone holds (not whichever chain a loop left behind)
            own = set(chains[held_chain])
            # (refcount also keeps the keys a dormant chain owns: evictable, so not held)
            assert ((set(kv.refcount) - set(kv.evictable_keys())) & own) == (set(ref.refcount) & own)
        assert kv.evictable_keys() == list(ref.evictable)  # eviction order too
        assert kv.free == kv.num_empty + len(ref.evictable)


def test_eviction_order_matches_an_ordered_dict():
    """Evictable blocks against an OrderedDict with popitem(last=False): keys freed, hit again and
    evicted in random order, long enough that the list of evictable keys is rebuilt many times."""
    rng = random.Random(7)
    kv, ref = KVCache(0, 16, True), RefKV()
    longest = made = 0
    for _ in range(30_000):
        key, op = rng.randrange(300), rng.random()
        if key in ref.refcount:
            if op < 0.5:
                kv.release([key], 0)
                ref.release([key])
                made += 1
        elif key in ref.evictable:
            if op < 0.5:
                assert kv.match([key]) == (1, 1)
                kv.acquire([key])
                ref.acquire([key])
        else:
            assert kv.register(key) and ref.register(key)
        if op > 0.9 and ref.evictable:
            n, empty = rng.randint(1, len(ref.evictable)), kv.num_empty
            kv.allocate(empty + n)  # the empty blocks, then n evictions
            kv.release([], empty + n)  # they come back empty: the evicted keys are gone
            for _ in range(n):
                ref.evictable.popitem(last=False)
        assert list(kv.evictable) == list(ref.evictable)
        assert kv.free == len(ref.evictable) + kv.num_empty
        longest = max(longest, len(kv.lru))
    # entries passed are dropped and lru rebuilt: within 2 x (2 x 300 keys + 1,024) + 1,024 (+1 per call)
    assert made > 9_000 and longest <= 2 * (2 * 300 + 1024 + 1) + 1024 + 1


def test_evictable_list_is_rebuilt_when_blocks_are_hit_again_without_evictions():
    """A chain freed and hit again 200 times with nothing evicted: the list of evictable keys stays
    within 2 x its 50 keys + 1,024 (+ one release) instead of 10,050 entries, and the order stays the
    per-key definition's (a chain's tail first: keys 49 .. 0)."""
    kv = KVCache(0, 16, True)
    chain = list(range(50))
    assert kv.register_all(chain)
    kv.release(chain, 0)
    for _ in range(200):
        kv.acquire(chain)
        kv.release(chain, 0)
        assert len(kv.lru) <= 2 * 50 + 1024 + 50
    assert list(kv.evictable) == list(range(49, -1, -1))
    kv.allocate(10)  # evicts the ten least recently freed: 49 .. 40
    assert list(kv.evictable) == list(range(39, -1, -1))
    assert kv.match(chain) == (40, 40) and kv.match(chain[40:]) == (0, 0)


class _Rep:
    def __init__(self, index: int) -> None:
        self.index = index
        self.outstanding = 0
        self.outstanding_heaps: list = []

    def change(self, delta: int) -> None:
        self.outstanding = max(0, self.outstanding + delta)
        for heap in self.outstanding_heaps:  # as Replica does when its count changes
            heappush(heap, outstanding_key(self))


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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["join", "leave", "step", "pop"]), st.integers(0, 10_000)), max_size=300))
def test_decode_group_finish_heap_matches_a_scan(ops):
    """The finish heap (an array heap with lazy deletion, grown past its first 64 entries
    here) against the definition: a member whose last token comes from step ``f`` (joined at
    ``k`` with ``output - generated`` tokens to go, ``f = k + output - generated - 1``) is
    finished once ``f < k``; ``pop_finished`` lists them by (f, join order)."""
    from sim.engine.request import Request

    dec = DecodeGroup(16, 1)
    finish: dict = {}  # member -> (finish step, join order): the definition's state
    joined = 0
    for op, x in ops:
        if op == "join":
            req = Request(joined, 0, 10, 2 + x % 40, 0.0, 0, joined, None)  # a member has a token to go
            req.computed, req.generated = 10, 1
            dec.join(req)
            finish[req] = (dec.k + req.output - req.generated - 1, joined)
            joined += 1
        elif op == "leave" and finish:
            req = sorted(finish, key=finish.__getitem__)[x % len(finish)]
            dec.leave(req)
            del finish[req]
        elif op == "step":
            dec.advance(1 + x % 3)
        else:
            due = sorted((f, j, r) for r, (f, j) in finish.items() if f < dec.k)
            assert dec.finished_any() == bool(due)
            out = dec.pop_finished()
            assert [id(r) for r in out] == [id(r) for _, _, r in due]
            for r in out:
                dec.leave(r)
                del finish[r]
        expect = min((f for f, _ in finish.values()), default=None)
        assert dec.next_finish_k() == expect
