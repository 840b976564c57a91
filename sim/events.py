"""Scenario ``events:`` — what goes wrong during a run: traffic surges and
replica failures.

A ``surge`` adds arrivals on top of the scenario's own ones: the extra
requests come from the separate named stream ``"surge"`` (one sub-seed per
event), with the same class mix, length distributions and shared prefixes,
so the base arrivals stay identical (common random numbers) and are merged
with the extra ones by arrival time. A ``replica-failure`` removes a replica
at a time; the engine (``Fleet.fail_replica_at``) retries its in-flight
requests elsewhere.

``scenario_workload(scenario)`` is the workload a run of the scenario plays
(generated + surges); ``schedule_failures(fleet, scenario)`` registers the
failures with a built ``Fleet``; ``check_events(scenario)`` raises a
``ScenarioError`` naming the event field when an event does not fit the
scenario (a window past the end, an unknown replica).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from sim.errors import FleetcastError, ScenarioError, unknown_name
from sim.rng import stream

if TYPE_CHECKING:  # pragma: no cover
    from sim.scenario import Scenario
    from sim.traffic import Workload

__all__ = [
    "SurgeEvent", "ReplicaFailureEvent", "EventSpec", "EVENT_KINDS",
    "check_events", "scenario_workload", "add_surge", "merge_workloads", "schedule_failures",
    "failures_of", "failures_supported",
]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SurgeEvent(_Event):
    """A traffic surge: from `start_s` to `end_s` the arrival rate is `factor` times the scenario's.

    The extra arrivals have the scenario's class mix, lengths and prefixes;
    the scenario's own arrivals are unchanged."""

    kind: Literal["surge"] = Field(description="Event kind.")
    start_s: float = Field(..., ge=0, le=1e8, description="Start of the surge, seconds from the run start.")
    end_s: float = Field(..., gt=0, le=1e8, description="End of the surge, seconds (must be after start_s and at most traffic.duration_s).")
    factor: float = Field(..., gt=1, le=1000, description="Arrival rate during the surge as a multiple of the normal rate (3 = three times).")

    @model_validator(mode="after")
    def _window(self) -> "SurgeEvent":
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s:g}) must be after start_s ({self.start_s:g})")
        return self


class ReplicaFailureEvent(_Event):
    """A replica fails at `at_s` and is gone for the rest of the run; its requests are retried elsewhere.

    Its waiting and running requests go back to the router, which picks
    among the remaining eligible replicas."""

    kind: Literal["replica-failure"] = Field(description="Event kind.")
    replica: str = Field(..., pattern=r"^[^/]+/\d+$", description="Replica name '<pool>/<index>' (index from 0), e.g. 'h100/0'.")
    at_s: float = Field(..., ge=0, le=1e8, description="Time of the failure, seconds from the run start.")


_EVENTS = (SurgeEvent, ReplicaFailureEvent)
EVENT_KINDS = [m.model_fields["kind"].annotation.__args__[0] for m in _EVENTS]


def _check_kind(value):
    if isinstance(value, dict):
        if "kind" not in value:
            raise ValueError(f"missing `kind:`; valid event kind names: {', '.join(EVENT_KINDS)}")
        if value["kind"] not in EVENT_KINDS:
            raise ValueError(unknown_name("event kind", value["kind"], EVENT_KINDS))
    return value


#: One entry of ``events:``, chosen by its ``kind``.
EventSpec = Annotated[
    Union[_EVENTS],  # type: ignore[valid-type]
    Field(discriminator="kind"),
    BeforeValidator(_check_kind),  # "unknown event kind 'x'. Did you mean ..."
]


# ------------------------------------------------------------------ checks
def check_events(scenario: "Scenario") -> None:
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
                    f"traffic.duration_s ({duration:g} s)")
        else:
            if ev.replica not in names:
                shown = names if len(names) <= 20 else names[:20] + ["..."]
                raise ScenarioError(
                    f"{where}, field events.{i}.replica: {unknown_name('replica', ev.replica, shown)}")
            if ev.replica in failed:
                raise ScenarioError(f"{where}, field events.{i}.replica: replica '{ev.replica}' already fails earlier in events")
            failed.add(ev.replica)
    for cname in scenario.traffic.class_names:
        serving = [f"{p.name}/{j}" for p in scenario.fleet if p.classes is None or cname in p.classes
                   for j in range(p.replicas)]
        if serving and all(n in failed for n in serving):
            raise ScenarioError(
                f"{where}, field events: every replica serving class '{cname}' fails "
                f"({', '.join(serving)}); leave at least one")


# ------------------------------------------------------------------ surges
def merge_workloads(base: "Workload", extra: "Workload") -> "Workload":
    """``base`` and ``extra`` requests in one workload sorted by arrival
    (stable: on a tie the base request comes first); every array, the prefix
    CSR included, is permuted consistently."""
    from sim.traffic import Workload

    arrival = np.concatenate([base.arrival_s, extra.arrival_s])
    order = np.argsort(arrival, kind="stable")
    lens = np.concatenate([np.diff(base.prefix_offsets), np.diff(extra.prefix_offsets)])
    starts = np.concatenate([base.prefix_offsets[:-1], extra.prefix_offsets[:-1] + len(base.prefix_keys)])
    keys = np.concatenate([base.prefix_keys, extra.prefix_keys])
    ends = np.concatenate([base.prefix_end_tok, extra.prefix_end_tok])
    new_lens = lens[order]
    offsets = np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int64)
    # chunk k of new request i sits at starts[order[i]] + k in the concatenated arrays
    gather = np.repeat(starts[order] - offsets[:-1], new_lens) + np.arange(offsets[-1], dtype=np.int64)
    return Workload(
        arrival_s=np.ascontiguousarray(arrival[order], dtype=np.float64),
        class_idx=np.concatenate([base.class_idx, extra.class_idx])[order].astype(np.int16),
        prompt_tokens=np.concatenate([base.prompt_tokens, extra.prompt_tokens])[order].astype(np.int32),
        output_tokens=np.concatenate([base.output_tokens, extra.output_tokens])[order].astype(np.int32),
        prefix_offsets=offsets,
        prefix_keys=np.ascontiguousarray(keys[gather], dtype=np.int64),
        prefix_end_tok=np.ascontiguousarray(ends[gather], dtype=np.int32),
        class_names=list(base.class_names),
        notes=list(base.notes) + list(extra.notes),
    )


def _surge_traffic(traffic, ev: SurgeEvent):
    """A TrafficSpec for the extra arrivals of ``ev``: the scenario's classes
    (as shares) at ``factor - 1`` times its rate, over the surge window."""
    from sim.traffic_spec import DiurnalArrival, TrafficSpec

    a = traffic.arrival
    length = ev.end_s - ev.start_s
    if isinstance(a, DiurnalArrival):
        arrival = {"process": "diurnal", "day_length_s": a.day_length_s,
                   "start_hour": (a.start_hour + 24.0 * ev.start_s / a.day_length_s) % 24.0,
                   "rate_points": [[h, r * (ev.factor - 1.0)] for h, r in a.rate_points]}
    else:
        arrival = {"process": a.process, "rate_rps": traffic.total_rate_rps() * (ev.factor - 1.0)}
        if a.process == "gamma":
            arrival["cv"] = a.cv
    shares = traffic.shares()
    classes = []
    for c, cls in enumerate(traffic.classes):
        data = cls.model_dump(exclude={"share", "rate_rps"}, exclude_none=True)
        if len(traffic.classes) > 1:
            data["share"] = float(shares[c])
        classes.append(data)
    if len(classes) > 1:  # shares must sum to 1 exactly after the float round trip
        classes[-1]["share"] = 1.0 - sum(c["share"] for c in classes[:-1])
    return TrafficSpec.model_validate({"duration_s": length, "arrival": arrival, "classes": classes})


def _bootstrap_surge(base: "Workload", ev: SurgeEvent, rng: np.random.Generator) -> "Workload":
    """Extra arrivals for a trace: Poisson at ``factor - 1`` times the trace's
    rate inside the window, each a copy (class, lengths, prefix chain) of a
    random trace request of the window."""
    from sim.traffic import Workload

    pool = np.flatnonzero((base.arrival_s >= ev.start_s) & (base.arrival_s < ev.end_s))
    length = ev.end_s - ev.start_s
    rate = pool.size / length * (ev.factor - 1.0)
    n = int(rng.poisson(rate * length)) if pool.size else 0
    times = np.sort(rng.uniform(ev.start_s, ev.end_s, n))
    rows = pool[rng.integers(0, pool.size, n)] if n else np.zeros(0, dtype=np.int64)
    lens = np.diff(base.prefix_offsets)[rows]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    gather = np.repeat(base.prefix_offsets[rows] - offsets[:-1], lens) + np.arange(offsets[-1], dtype=np.int64)
    return Workload(arrival_s=times, class_idx=base.class_idx[rows], prompt_tokens=base.prompt_tokens[rows],
                    output_tokens=base.output_tokens[rows], prefix_offsets=offsets,
                    prefix_keys=base.prefix_keys[gather], prefix_end_tok=base.prefix_end_tok[gather],
                    class_names=list(base.class_names))


def add_surge(base: "Workload", traffic, ev: SurgeEvent, seed: int, index: int, base_dir) -> "Workload":
    """``base`` plus the extra arrivals of surge event number ``index``.

    The extra requests come from sub-seed ``stream(seed, "surge", index)``
    only, so ``base``'s requests are unchanged (and the same for every variant
    of a comparison). Synthetic traffic: generated like the scenario's own
    (classes, lengths, prefixes) at ``factor - 1`` times the rate; a trace:
    resampled from the trace's requests inside the window.
    """
    from sim.traffic import generate_workload

    rng = stream(seed, "surge", index)
    if traffic.is_trace:
        extra = _bootstrap_surge(base, ev, rng)
    else:
        sub_seed = int(rng.integers(0, 2**63 - 1))
        extra = generate_workload(_surge_traffic(traffic, ev), sub_seed, base_dir)
        extra.arrival_s = extra.arrival_s + ev.start_s
        keep = extra.arrival_s < ev.end_s  # float shift may round onto the end
        if not keep.all():
            from sim.traffic import Workload

            n = int(keep.sum())  # arrivals are sorted: the kept ones are a prefix
            extra = Workload(extra.arrival_s[:n], extra.class_idx[:n], extra.prompt_tokens[:n],
                             extra.output_tokens[:n], extra.prefix_offsets[: n + 1],
                             extra.prefix_keys[: extra.prefix_offsets[n]],
                             extra.prefix_end_tok[: extra.prefix_offsets[n]], list(extra.class_names))
    extra.notes = [f"surge {index}: {len(extra)} extra arrival(s) in {ev.start_s:g}-{ev.end_s:g} s (x{ev.factor:g})"]
    return merge_workloads(base, extra)


def scenario_workload(scenario: "Scenario") -> "Workload":
    """The workload a run of ``scenario`` plays: its generated arrivals plus
    the extra arrivals of its surge events."""
    from sim.traffic import generate_workload

    workload = generate_workload(scenario.traffic, scenario.seed, scenario.base_dir)
    surges = [(i, ev) for i, ev in enumerate(scenario.events) if isinstance(ev, SurgeEvent)]
    if surges:
        check_events(scenario)
    for i, ev in surges:
        workload = add_surge(workload, scenario.traffic, ev, scenario.seed, i, scenario.base_dir)
    return workload


# ---------------------------------------------------------------- failures
def failures_of(scenario: "Scenario") -> list[ReplicaFailureEvent]:
    """The scenario's replica-failure events, in file order."""
    return [ev for ev in scenario.events if isinstance(ev, ReplicaFailureEvent)]


def failures_supported() -> bool:
    """Whether the engine has the ``Fleet.fail_replica_at`` hook."""
    from sim.fleet import Fleet

    return hasattr(Fleet, "fail_replica_at")


def schedule_failures(fleet, scenario: "Scenario") -> None:
    """Register the scenario's replica failures with ``fleet`` (before
    ``fleet.run()``) through ``fleet.fail_replica_at(replica_name, at_s)``."""
    failures = failures_of(scenario)
    if not failures:
        return
    check_events(scenario)
    hook = getattr(fleet, "fail_replica_at", None)
    if hook is None:
        raise FleetcastError(
            "replica-failure events need the engine hook Fleet.fail_replica_at, which this build of "
            "fleetcast does not have yet; remove the replica-failure events (or use surge events)")
    for ev in failures:
        hook(ev.replica, float(ev.at_s))
