"""The per-class lists of replicas the router chooses from, when replicas fail.

The arrival process and the routers hold these lists, so they change in place.
"""

from __future__ import annotations

from sim.errors import ScenarioError

__all__ = ["drop_failed"]


def drop_failed(eligible: list[list], ranks: list, class_names: list[str], kind: str = "replicas") -> None:
    """Take the failed ``ranks`` out of every list of ``eligible`` (one per class, in place);
    a class left with no replica is a ``ScenarioError`` naming it (``kind``: what it lacks)."""
    for reps in eligible:
        reps[:] = [r for r in reps if r not in ranks]
    for reps, name in zip(eligible, class_names):
        if not reps:
            raise ScenarioError(f"replica-failure of '{ranks[0].name}' leaves class '{name}' without {kind}")
