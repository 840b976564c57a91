"""Routers: which replica gets an arriving request (one small class each).

``choose(replicas, rid, prefix_key, now) -> replica`` picks among the
replicas eligible for the request's class (``rid``: the workload index;
``prefix_key``: the first key of its prefix chain, or None). Routers see the replicas' live state
(outstanding requests, KV usage) at the arrival time; random choices come
from the scenario's "routing" stream.
"""

from __future__ import annotations

import heapq
from operator import attrgetter

import numpy as np

from sim.engine.prefix_keys import PrefixKeys
from sim.engine.replica import LOAD_KEY_SHIFT, outstanding_key
from sim.errors import FleetcastError, unknown_name
from sim.scenario.params import AffinityParams, NoParams

__all__ = ["ROUTERS", "make_router"]

_outstanding = attrgetter("outstanding")
_MASK = (1 << LOAD_KEY_SHIFT) - 1  # the replica index in a load key


class RoundRobin:
    """Cycle through the eligible replicas in order."""

    name = "round-robin"
    Params = NoParams

    def __init__(self, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None) -> None:
        self._next: dict[int, int] = {}

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        # modulo the current length: a replica failure shrinks the list in place
        i = self._next.get(id(replicas), 0) % len(replicas)
        self._next[id(replicas)] = (i + 1) % len(replicas)
        return replicas[i]


class Random:
    """Uniformly random replica."""

    name = "random"
    Params = NoParams

    def __init__(self, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None) -> None:
        self.rng = rng

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        return replicas[int(self.rng.integers(len(replicas)))]


class LeastOutstanding:
    """Fewest requests queued or running (ties: lowest index)."""

    # A fleet's eligible lists are ``track``-ed: each distinct list gets a heap
    # that its replicas publish their ``outstanding_key`` to whenever their count
    # changes (the router subscribes it in ``Replica.outstanding_heaps``); entries that no longer
    # match the replica's count are dropped when they reach the top. A choice is
    # then O(log n) instead of a scan of the list. Untracked lists are scanned,
    # and a tracked list whose length changed (a replica failed) is re-tracked.

    name = "least-outstanding"
    Params = NoParams

    __slots__ = {"_tracked": "dict", "_heaps": "dict"}

    def __init__(self, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None) -> None:
        self._tracked: dict[int, tuple] = {}  # id(list) -> (list, length, heap, replica by index)
        self._heaps: dict[tuple, tuple] = {}  # replica indices -> (heap, replica by index)

    def track(self, replicas: list) -> None:
        """Keep a heap for ``replicas`` (a list kept in replica-index order, as
        the fleet keeps its eligible lists: the heap breaks ties by index). A list of one
        replica gets no heap: ``choose`` returns its replica (its replica publishes nothing to
        keep up)."""
        if len(replicas) == 1:
            self._tracked[id(replicas)] = (replicas, 1, None, None)
            return
        members = tuple(rep.index for rep in replicas)
        shared = self._heaps.get(members)
        if shared is None:
            heap = sorted(map(outstanding_key, replicas))
            shared = self._heaps[members] = (heap, {rep.index: rep for rep in replicas})
            for rep in replicas:
                rep.outstanding_heaps.append(heap)
        self._tracked[id(replicas)] = (replicas, len(replicas), *shared)

    def retrack(self, replicas: list) -> None:
        """``replicas`` changed in place (an autoscaler added or removed a replica, possibly
        keeping its length): track it afresh now."""
        st = self._tracked.get(id(replicas))
        if st is None or st[0] is not replicas:
            self.track(replicas)
        else:
            self._retrack(replicas, st)

    def _retrack(self, replicas: list, old: tuple) -> None:
        """``replicas`` changed: track it afresh, and stop feeding a heap no list uses."""
        self.track(replicas)
        old_heap, old_members = old[2], old[3]
        if old_heap is not None and not any(st[2] is old_heap for st in self._tracked.values()):
            for rep in old_members.values():
                rep.outstanding_heaps[:] = [h for h in rep.outstanding_heaps if h is not old_heap]
            self._heaps = {k: v for k, v in self._heaps.items() if v[0] is not old_heap}

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        st = self._tracked.get(id(replicas))
        if st is None or st[0] is not replicas:
            return min(replicas, key=_outstanding)
        if st[1] != len(replicas):
            self._retrack(replicas, st)
            st = self._tracked[id(replicas)]
        _, _, heap, by_index = st
        if heap is None:  # one replica (track)
            return replicas[0]
        while True:
            key = heap[0]
            rep = by_index.get(key & _MASK)
            if rep is not None and rep.outstanding == key >> LOAD_KEY_SHIFT:
                if len(heap) > 8 * len(replicas) + 64:  # many stale entries: start afresh
                    heap[:] = sorted(map(outstanding_key, by_index.values()))
                return rep
            heapq.heappop(heap)


class LeastKv:
    """Lowest KV-cache usage at the arrival time, then fewest waiting."""

    name = "least-kv"
    Params = NoParams

    def __init__(self, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None) -> None:
        pass

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        return min(replicas, key=lambda r: (r.kv_used_at(now) / r.kv.num_blocks, len(r.waiting)))


class PowerOfTwo:
    """Sample two distinct replicas, take the one with fewer outstanding."""

    name = "power-of-two"
    Params = NoParams

    def __init__(self, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None) -> None:
        self.rng = rng

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        if len(replicas) == 1:
            return replicas[0]
        i, j = self.rng.choice(len(replicas), size=2, replace=False)
        a, b = replicas[int(i)], replicas[int(j)]
        return a if a.outstanding <= b.outstanding else b


class PrefixAffinity:
    """Cache-aware routing (like SGLang's router): a request with a shared
    prefix goes to the replica whose prefix cache holds the longest part of
    it; a prefix no replica holds yet goes to a home replica chosen by the
    prefix's hash. Overloaded choices fall back to the least loaded replica,
    as do requests without a prefix. Costs one cache lookup per eligible
    replica per arrival."""

    name = "prefix-affinity"
    Params = AffinityParams

    def __init__(self, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None) -> None:
        self.params = AffinityParams.model_validate(params)
        self.keys = keys

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        least = min(replicas, key=_outstanding)
        if prefix_key is None:
            return least
        best, best_hits = None, 0
        keys_by_bs: dict[int, list] = {}
        for rep in replicas:
            if not rep.kv.caching:
                continue
            keys = keys_by_bs.get(rep.block_size)
            if keys is None:
                # the fleet always passes its keys (make_router's default None is for routers that need none)
                keys = keys_by_bs[rep.block_size] = self.keys.block_keys(rid, rep.block_size) or []  # type: ignore[union-attr]
            hits = rep.kv.match_chain(keys, len(keys))[0]
            if hits > best_hits or (hits == best_hits and best is not None and rep.outstanding < best.outstanding):
                best, best_hits = rep, hits
        if best is None or best_hits == 0:
            best = replicas[hash(prefix_key) % len(replicas)]
        if best.outstanding > self.params.max_imbalance * (least.outstanding + 1):
            return least
        return best


ROUTERS: dict[str, type] = {
    cls.name: cls for cls in (RoundRobin, Random, LeastOutstanding, LeastKv, PowerOfTwo, PrefixAffinity)
}


def make_router(name: str, params: dict, rng: np.random.Generator, keys: PrefixKeys | None = None):
    """The router ``name``; ``keys`` gives prefix-aware routers the requests' prefix-cache block keys."""
    if name not in ROUTERS:
        raise FleetcastError(unknown_name("router", name, ROUTERS))
    return ROUTERS[name](params, rng, keys)
