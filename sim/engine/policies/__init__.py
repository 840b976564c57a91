"""Batching policies, registered by name (see ``base.BatchingPolicy``)."""

from __future__ import annotations

from sim.engine.policies.base import BatchingPolicy, StepPlan
from sim.engine.policies.continuous import ContinuousBatching
from sim.engine.policies.prefill_first import PrefillFirst
from sim.engine.policies.priority import PriorityBatching
from sim.engine.policies.static import StaticBatching
from sim.errors import FleetcastError, unknown_name

__all__ = ["POLICIES", "BatchingPolicy", "StepPlan", "make_policy"]

POLICIES: dict[str, type] = {
    cls.name: cls for cls in (ContinuousBatching, PrefillFirst, StaticBatching, PriorityBatching)
}


def make_policy(name: str, params: dict | None = None) -> BatchingPolicy:
    if name not in POLICIES:
        raise FleetcastError(unknown_name("batching policy", name, POLICIES))
    return POLICIES[name](params)
