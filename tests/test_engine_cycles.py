"""A finished run leaves no reference cycles of the engine's objects, so reference counting
frees a fleet as soon as its caller drops it (``simulate`` runs no full garbage collection,
which at 10,000 requests cost about a fifth of the run)."""

from __future__ import annotations

import gc
from collections import Counter
from pathlib import Path

import pytest

from sim.engine.fleet import Fleet
from sim.engine.inputs import failure_schedule, scenario_workload
from sim.scenario.spec import load_scenario
from sim.workload.closed_loop import ClosedLoop

ROOT = Path(__file__).resolve().parents[1]
ENGINE_TYPES = {"Environment", "Fleet", "Replica", "Request", "KVCache", "Ledger", "Handoff", "Process", "Wake", "DPGroup"}


def _engine_objects_in_cycles(scenario, closed_loop=None) -> Counter:
    """Run a fleet with the cycle collector off, drop it, and count the engine objects only the
    cycle collector could free (``gc.DEBUG_SAVEALL`` keeps what it found in ``gc.garbage``)."""
    gc.collect()
    gc.disable()
    try:
        fleet = Fleet(
            scenario, scenario_workload(scenario), failures=failure_schedule(scenario), closed_loop=closed_loop
        )
        result = fleet.run()
        del fleet
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = Counter(type(o).__name__ for o in gc.garbage if type(o).__name__ in ENGINE_TYPES)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert len(result.requests) > 0
    return found


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("quickstart", ["traffic.duration_s=120"]),
        ("disaggregated", ["traffic.duration_s=30"]),  # prefill replicas report to the hand-off
        ("autoscaling", ["traffic.duration_s=120"]),  # autoscaler processes still waiting at the end
        ("moe-data-parallel", ["traffic.duration_s=30"]),  # lock-step groups: ranks -> group -> ranks
    ],
)
def test_a_finished_run_leaves_no_engine_object_to_the_cycle_collector(name, overrides):
    sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml", overrides)
    assert _engine_objects_in_cycles(sc) == Counter()


def test_a_run_cut_by_its_deadline_leaves_none_either():
    """Requests still in flight at the drain limit: replicas hold pending wake-ups."""
    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.yaml",
        ["traffic.duration_s=100", "sim.drain_s=0", "traffic.arrival.rate_rps=200"],
    )
    assert _engine_objects_in_cycles(sc) == Counter()


def test_a_closed_loop_run_leaves_none_either():
    """The closed-loop client's callback on the ledger refers back to the fleet."""
    sc = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["traffic.duration_s=120"])
    assert _engine_objects_in_cycles(sc, ClosedLoop(clients=8, think_s=0.0)) == Counter()
