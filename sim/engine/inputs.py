"""What the engine receives from a scenario besides its fleet: the workload
it plays and the replica failures it applies.

Both are plain inputs. Surges are extra arrivals already merged into the
workload (``sim.workload.surges``); failures are ``(replica name, time)``
pairs handed to the ``Fleet``, which removes the replica at that time and
retries its requests elsewhere. Nothing here reaches into a running fleet.
"""

from __future__ import annotations

from sim.scenario.events import check_events, failures_of, surges_of
from sim.scenario.spec import Scenario
from sim.workload.generate import Workload
from sim.workload.surges import with_surges

__all__ = ["scenario_workload", "failure_schedule"]


def scenario_workload(scenario: Scenario) -> Workload:
    """The workload a run of ``scenario`` plays: its generated arrivals plus
    the extra arrivals of its surge events."""
    surges = surges_of(scenario)
    if surges:
        check_events(scenario)
    return with_surges(scenario.traffic, scenario.seed, scenario.base_dir, surges)


def failure_schedule(scenario: Scenario) -> list[tuple[str, float]]:
    """The scenario's replica failures as ``(replica name, at_s)`` in file order."""
    failures = failures_of(scenario)
    if failures:
        check_events(scenario)
    return [(ev.replica, float(ev.at_s)) for ev in failures]
