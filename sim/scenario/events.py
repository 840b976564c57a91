"""Scenario ``events:`` — what goes wrong during a run: traffic surges and
replica failures.

A ``surge`` adds arrivals on top of the scenario's own ones: the extra
requests come from the separate named stream ``"surge"`` (one sub-seed per
event), with the same class mix, length distributions and shared prefixes,
so the base arrivals stay identical (common random numbers) and are merged
with the extra ones by arrival time. A ``replica-failure`` removes a replica
at a time; the engine (``Fleet.fail_replica_at``) retries its in-flight
requests elsewhere.

This module holds the event specs and their checks only. The engine receives
events as inputs (``sim.engine.inputs``): surges as extra arrivals in the
workload it plays (built by ``sim.workload.surges``), failures as a list of
(replica name, time) given to the ``Fleet``. ``check_events(scenario)``
raises a ``ScenarioError`` naming the event field when an event does not fit
the scenario (a window past the end, an unknown replica).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sim.errors import ScenarioError, unknown_name

# The functions below take a ``sim.scenario.spec.Scenario``; that module imports this one
# (a Scenario holds a list of these events), so the type is named in words, not imported.

__all__ = [
    "SurgeEvent",
    "ReplicaFailureEvent",
    "EventSpec",
    "EVENT_KINDS",
    "check_events",
    "surges_of",
    "failures_of",
]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SurgeEvent(_Event):
    """A traffic surge: from `start_s` to `end_s` the arrival rate is `factor` times the scenario's.

    The extra arrivals have the scenario's class mix, lengths and prefixes;
    the scenario's own arrivals are unchanged."""

    kind: Literal["surge"] = Field(description="Event kind.")
    start_s: float = Field(..., ge=0, le=1e8, description="Start of the surge, seconds from the run start.")
    end_s: float = Field(
        ...,
        gt=0,
        le=1e8,
        description="End of the surge, seconds (must be after start_s and at most traffic.duration_s).",
    )
    factor: float = Field(
        ...,
        gt=1,
        le=1000,
        description="Arrival rate during the surge as a multiple of the normal rate (3 = three times).",
    )

    @model_validator(mode="after")
    def _window(self) -> SurgeEvent:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g})")
        return self


class ReplicaFailureEvent(_Event):
    """A replica fails at `at_s` and is gone for the rest of the run; its requests are retried elsewhere.

    Its waiting and running requests go back to the router, which picks
    among the remaining eligible replicas."""

    kind: Literal["replica-failure"] = Field(description="Event kind.")
    replica: str = Field(
        ..., pattern=r"^[^/]+/\d+$", description="Replica name '<pool>/<index>' (index from 0), e.g. 'h100/0'."
    )
    at_s: float = Field(..., ge=0, le=1e8, description="Time of the failure, seconds from the run start.")


_EVENTS = (SurgeEvent, ReplicaFailureEvent)
EVENT_KINDS = [get_args(m.model_fields["kind"].annotation)[0] for m in _EVENTS]


def _check_kind(value):
    if isinstance(value, dict):
        if "kind" not in value:
            raise ValueError(f"missing `kind:`; valid event kind names: {', '.join(EVENT_KINDS)}")
        if value["kind"] not in EVENT_KINDS:
            raise ValueError(unknown_name("event kind", value["kind"], EVENT_KINDS))
    return value


#: One entry of ``events:``, chosen by its ``kind``.
EventSpec = Annotated[
    Union[SurgeEvent, ReplicaFailureEvent],  # = _EVENTS
    Field(discriminator="kind"),
    BeforeValidator(_check_kind),  # "unknown event kind 'x'. Did you mean ..."
]


# ------------------------------------------------------------------ checks
def check_events(scenario) -> None:
    """Raise ``ScenarioError`` naming ``events.<i>.<field>`` for an event that
    does not fit the scenario: a surge outside ``[0, traffic.duration_s]``, a
    failure of a replica the fleet does not have, or every replica of a class
    failing."""
    where = str(scenario.path) if scenario.path else "<scenario>"
    duration = scenario.traffic.duration_s
    names = [f"{p.name}/{j}" for p in scenario.fleet for j in range(p.replicas)]
    failed: set[str] = set()
    for i, ev in enumerate(scenario.events):
        if isinstance(ev, SurgeEvent):
            if ev.start_s >= duration or ev.end_s > duration:
                raise ScenarioError(
                    f"{where}, field events.{i}: surge window {ev.start_s:g}-{ev.end_s:g} s must lie within "
                    f"traffic.duration_s ({duration:g} s)"
                )
        else:
            if ev.replica not in names:
                shown = names if len(names) <= 20 else names[:20] + ["..."]
                raise ScenarioError(f"{where}, field events.{i}.replica: {unknown_name('replica', ev.replica, shown)}")
            if ev.replica in failed:
                raise ScenarioError(
                    f"{where}, field events.{i}.replica: replica '{ev.replica}' already fails earlier in events"
                )
            failed.add(ev.replica)
    for cname in scenario.traffic.class_names:
        serving = [
            f"{p.name}/{j}"
            for p in scenario.fleet
            if p.classes is None or cname in p.classes
            for j in range(p.replicas)
        ]
        if serving and all(n in failed for n in serving):
            raise ScenarioError(
                f"{where}, field events: every replica serving class '{cname}' fails "
                f"({', '.join(serving)}); leave at least one"
            )


def surges_of(scenario) -> list[tuple[int, SurgeEvent]]:
    """The scenario's surge events with their index in ``events:`` (the index seeds the surge's stream)."""
    return [(i, ev) for i, ev in enumerate(scenario.events) if isinstance(ev, SurgeEvent)]


def failures_of(scenario) -> list[ReplicaFailureEvent]:
    """The scenario's replica-failure events, in file order."""
    return [ev for ev in scenario.events if isinstance(ev, ReplicaFailureEvent)]
