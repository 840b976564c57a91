"""Routers: which replica gets an arriving request (one small class each).

``choose(replicas, rid, prefix_key, now) -> replica`` picks among the
replicas eligible for the request's class (``rid``: the workload index;
``prefix_key``: the first key of its prefix chain, or None). Routers see the replicas' live state
(outstanding requests, KV usage) at the arrival time; random choices come
from the scenario's "routing" stream.
"""

from __future__ import annotations

from operator import attrgetter

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sim.errors import FleetcastError, unknown_name

__all__ = ["ROUTERS", "make_router"]

_outstanding = attrgetter("outstanding")


class _NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoundRobin:
    """Cycle through the eligible replicas in order."""

    name = "round-robin"
    Params = _NoParams

    def __init__(self, params: dict, rng: np.random.Generator) -> None:
        self._next: dict[int, int] = {}

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        i = self._next.get(id(replicas), 0)
        self._next[id(replicas)] = (i + 1) % len(replicas)
        return replicas[i]


class Random:
    """Uniformly random replica."""

    name = "random"
    Params = _NoParams

    def __init__(self, params: dict, rng: np.random.Generator) -> None:
        self.rng = rng

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        return replicas[int(self.rng.integers(len(replicas)))]


class LeastOutstanding:
    """Fewest requests queued or running (ties: lowest index)."""

    name = "least-outstanding"
    Params = _NoParams

    def __init__(self, params: dict, rng: np.random.Generator) -> None:
        pass

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        return min(replicas, key=_outstanding)


class LeastKv:
    """Lowest KV-cache usage at the arrival time, then fewest waiting."""

    name = "least-kv"
    Params = _NoParams

    def __init__(self, params: dict, rng: np.random.Generator) -> None:
        pass

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        return min(replicas, key=lambda r: (r.kv_used_at(now) / r.kv.num_blocks, len(r.waiting)))


class PowerOfTwo:
    """Sample two distinct replicas, take the one with fewer outstanding."""

    name = "power-of-two"
    Params = _NoParams

    def __init__(self, params: dict, rng: np.random.Generator) -> None:
        self.rng = rng

    def choose(self, replicas: list, rid: int, prefix_key, now: float):
        if len(replicas) == 1:
            return replicas[0]
        i, j = self.rng.choice(len(replicas), size=2, replace=False)
        a, b = replicas[int(i)], replicas[int(j)]
        return a if a.outstanding <= b.outstanding else b


class AffinityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_imbalance: float = Field(
        2.0, ge=1.0, le=1000.0,
        description="Fall back to least-outstanding when the prefix's home replica has more than "
        "this many times (+1) the outstanding requests of the least loaded one.",
    )


class PrefixAffinity:
    """Cache-aware routing (like SGLang's router): a request with a shared
    prefix goes to the replica whose prefix cache holds the longest part of
    it; a prefix no replica holds yet goes to a home replica chosen by the
    prefix's hash. Overloaded choices fall back to the least loaded replica,
    as do requests without a prefix. Costs one cache lookup per eligible
    replica per arrival."""

    name = "prefix-affinity"
    Params = AffinityParams

    def __init__(self, params: dict, rng: np.random.Generator) -> None:
        self.params = AffinityParams.model_validate(params)

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
                keys = keys_by_bs[rep.block_size] = rep.fleet.block_keys(rid, rep.block_size) or []
            hits = rep.kv.match(keys)[0]
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


def make_router(name: str, params: dict, rng: np.random.Generator):
    if name not in ROUTERS:
        raise FleetcastError(unknown_name("router", name, ROUTERS))
    return ROUTERS[name](params, rng)
