"""Scenario events: surges add arrivals only inside their window and leave
the base arrivals untouched (common random numbers), the merged workload's
arrays (prefix CSR included) stay consistent, and bad events are errors that
name the field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.engine.fleet import simulate
from sim.engine.inputs import failure_schedule, scenario_workload
from sim.errors import ScenarioError
from sim.scenario.events import ReplicaFailureEvent, SurgeEvent, check_events
from sim.workload.generate import Workload, generate_workload
from sim.workload.surges import merge_workloads
from tests.factories import make_scenario

TWO_CLASSES = [
    {"name": "chat", "share": 0.6, "prompt_tokens": {"dist": "uniform", "min": 16, "max": 900},
     "output_tokens": {"dist": "fixed", "value": 20}, "prefix": {"tokens": 64, "num_distinct": 3}},
    {"name": "code", "share": 0.4, "prompt_tokens": {"dist": "fixed", "value": 300},
     "output_tokens": {"dist": "uniform", "min": 1, "max": 50}},
]


def surge_scenario(events=None, **traffic):
    ev = events if events is not None else [{"kind": "surge", "start_s": 40, "end_s": 60, "factor": 4}]
    return make_scenario(traffic={"duration_s": 100, "arrival": {"process": "poisson", "rate_rps": 10},
                                  "classes": TWO_CLASSES, **traffic}, events=ev)


def rows(w: Workload) -> set[tuple]:
    """Each request as a hashable tuple, prefix chain included."""
    return {(float(w.arrival_s[r]), int(w.class_idx[r]), int(w.prompt_tokens[r]), int(w.output_tokens[r]),
             tuple(w.chain(r)[0].tolist()), tuple(w.chain(r)[1].tolist())) for r in range(len(w))}


def test_surge_adds_arrivals_only_in_window_and_keeps_base():
    sc = surge_scenario()
    base = generate_workload(sc.traffic, sc.seed, sc.base_dir)
    w = scenario_workload(sc)
    assert np.all(np.diff(w.arrival_s) >= 0)
    base_rows, all_rows = rows(base), rows(w)
    assert base_rows <= all_rows  # every base request is there, unchanged
    extra = all_rows - base_rows
    times = np.array([r[0] for r in extra])
    assert times.min() >= 40 and times.max() < 60
    # rate x4 in the window: ~3 x 10 rps x 20 s = 600 extra arrivals
    assert len(extra) == pytest.approx(600, rel=0.15)
    # same class mix as the base
    code_share = np.mean([r[1] == 1 for r in extra])
    assert code_share == pytest.approx(0.4, abs=0.07)
    # lengths follow the class distributions (code prompts are fixed at 300)
    assert {r[2] for r in extra if r[1] == 1} == {300}
    # extra chat requests share the base's 3 full-length prefixes (same keys)
    full = {k for r in base_rows for k, e in zip(r[4], r[5]) if e == 64}
    assert len(full) == 3
    assert {k for r in extra for k, e in zip(r[4], r[5]) if e == 64} == full


def test_surge_is_deterministic_and_independent_of_other_streams():
    a = scenario_workload(surge_scenario())
    b = scenario_workload(surge_scenario())
    for name in ("arrival_s", "class_idx", "prompt_tokens", "output_tokens", "prefix_offsets", "prefix_keys",
                 "prefix_end_tok"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    # a second surge elsewhere leaves the first one's arrivals alone (own sub-stream per event)
    two = scenario_workload(surge_scenario([{"kind": "surge", "start_s": 40, "end_s": 60, "factor": 4},
                                            {"kind": "surge", "start_s": 80, "end_s": 90, "factor": 2}]))
    assert rows(a) <= rows(two)


def test_merge_keeps_prefix_csr_consistent():
    sc = surge_scenario()
    base = generate_workload(sc.traffic, sc.seed, sc.base_dir)
    w = scenario_workload(sc)
    assert w.prefix_offsets[0] == 0 and w.prefix_offsets[-1] == len(w.prefix_keys) == len(w.prefix_end_tok)
    assert np.all(np.diff(w.prefix_offsets) >= 0)
    for r in range(len(w)):  # a chain never covers the whole prompt and belongs to a prefixed class
        keys, ends = w.chain(r)
        if len(keys):
            assert w.class_idx[r] == 0 and ends[-1] < w.prompt_tokens[r]
    # merging with an empty workload is the identity
    empty = Workload(np.zeros(0), np.zeros(0, np.int16), np.zeros(0, np.int32), np.zeros(0, np.int32),
                     np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32), list(base.class_names))
    same = merge_workloads(base, empty)
    assert rows(same) == rows(base) and len(same) == len(base)


def test_surge_on_gamma_and_diurnal_traffic():
    g = surge_scenario(arrival={"process": "gamma", "rate_rps": 10, "cv": 3})
    w = scenario_workload(g)
    base = generate_workload(g.traffic, g.seed, g.base_dir)
    assert rows(base) <= rows(w) and len(w) > len(base)
    d = surge_scenario(arrival={"process": "diurnal", "rate_points": [[0, 5], [12, 20]], "day_length_s": 100})
    w = scenario_workload(d)
    base = generate_workload(d.traffic, d.seed, d.base_dir)
    extra = np.setdiff1d(w.arrival_s, base.arrival_s)
    assert extra.size > 0 and extra.min() >= 40 and extra.max() < 60


def test_surge_runs_in_simulate():
    sc = make_scenario(events=[{"kind": "surge", "start_s": 5, "end_s": 10, "factor": 3}])
    res = simulate(sc)
    assert len(res.requests) == len(scenario_workload(sc))
    assert len(res.requests) > len(generate_workload(sc.traffic, sc.seed, sc.base_dir))


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("event, needle", [
    ({"kind": "surge", "start_s": 50, "end_s": 40, "factor": 3}, "must be after start_s"),
    ({"kind": "surge", "start_s": 10, "end_s": 40, "factor": 1}, "greater than 1"),
    ({"kind": "surge", "start_s": -1, "end_s": 40, "factor": 2}, "greater than or equal to 0"),
    ({"kind": "surge", "start_s": 1, "end_s": 4, "factor": 2, "rate": 3}, "unknown key"),
    ({"kind": "surg", "start_s": 1, "end_s": 4, "factor": 2}, "Did you mean 'surge'"),
    ({"start_s": 1, "end_s": 4, "factor": 2}, "missing `kind:`"),
    ({"kind": "replica-failure", "replica": "p", "at_s": 3}, "events.0"),
    ({"kind": "replica-failure", "replica": "p/0"}, "required field is missing"),
])
def test_event_validation_errors(event, needle):
    with pytest.raises(ScenarioError, match="events.0") as info:
        make_scenario(events=[event])
    assert needle in str(info.value)


def test_events_that_do_not_fit_the_scenario():
    late = make_scenario(events=[{"kind": "surge", "start_s": 10, "end_s": 25, "factor": 2}])  # duration 20
    with pytest.raises(ScenarioError, match=r"events\.0: surge window 10-25 s must lie within"):
        check_events(late)
    with pytest.raises(ScenarioError, match=r"events\.0"):
        scenario_workload(late)
    ghost = make_scenario(events=[{"kind": "replica-failure", "replica": "p/3", "at_s": 5}])
    with pytest.raises(ScenarioError, match=r"events\.0\.replica: unknown replica 'p/3'.*p/0"):
        check_events(ghost)
    last = make_scenario(events=[{"kind": "replica-failure", "replica": "p/0", "at_s": 5}])  # the only replica
    with pytest.raises(ScenarioError, match="every replica serving class 'chat' fails"):
        check_events(last)
    twice = make_scenario(pool={"replicas": 3}, events=[{"kind": "replica-failure", "replica": "p/0", "at_s": 5},
                                                        {"kind": "replica-failure", "replica": "p/0", "at_s": 7}])
    with pytest.raises(ScenarioError, match=r"events\.1\.replica: replica 'p/0' already fails"):
        check_events(twice)


def test_events_parse_to_models():
    sc = make_scenario(pool={"replicas": 2}, events=[{"kind": "surge", "start_s": 1, "end_s": 4, "factor": 2.5},
                                                     {"kind": "replica-failure", "replica": "p/1", "at_s": 3}])
    assert isinstance(sc.events[0], SurgeEvent) and sc.events[0].factor == 2.5
    assert isinstance(sc.events[1], ReplicaFailureEvent) and sc.events[1].replica == "p/1"
    check_events(sc)
    assert make_scenario().events == []


def test_failures_reach_the_engine_as_a_schedule():
    sc = make_scenario(pool={"replicas": 3}, events=[{"kind": "replica-failure", "replica": "p/2", "at_s": 7.5},
                                                     {"kind": "surge", "start_s": 1, "end_s": 4, "factor": 2},
                                                     {"kind": "replica-failure", "replica": "p/0", "at_s": 3}])
    assert failure_schedule(sc) == [("p/2", 7.5), ("p/0", 3.0)]
    assert failure_schedule(make_scenario()) == []


def test_replica_failure_retries_in_flight_requests_elsewhere():
    sc = make_scenario(pool={"replicas": 2}, events=[{"kind": "replica-failure", "replica": "p/0", "at_s": 8}])
    base = simulate(make_scenario(pool={"replicas": 2})).requests
    res = simulate(sc)
    req = res.requests
    after = req[(req["arrival_s"] > 8.0) & (req["status"] == "ok")]
    assert len(after) and (after["replica"] != "p/0").all()
    # requests that were still on p/0 at the failure finished on p/1, after it
    caught = base[(base.replica == "p/0") & (base.arrival_s < 8) & (base.finish_s > 8)].request_id
    assert len(caught) > 0
    moved = req.set_index("request_id").loc[caught]
    assert (moved.replica == "p/1").all() and (moved.status == "ok").all() and (moved.finish_s > 8).all()
    assert (req["status"] == "ok").all()  # nothing was lost
    # fast-forward and exact stepping give identical requests and time series with a failure too:
    # exact values, no tolerance (the ITL histogram and replica counters: the next test)
    exact = simulate(sc, exact_steps=True)
    pd.testing.assert_frame_equal(req, exact.requests, check_exact=True)
    pd.testing.assert_frame_equal(res.timeseries, exact.timeseries, check_exact=True)


def test_replica_failure_fast_forward_keeps_itl_and_step_counts():
    """A failure cuts a fast-forwarded decode run: the steps that ended before it are counted
    (ITL samples, step counters) as exact stepping counts them, one event per step."""
    sc = make_scenario(pool={"replicas": 2}, events=[{"kind": "replica-failure", "replica": "p/0", "at_s": 8}])
    fast, exact = simulate(sc), simulate(sc, exact_steps=True)
    assert exact.itl_hist.sum() > 0
    assert [(r.name, r.steps) for r in fast.replicas] == [(r.name, r.steps) for r in exact.replicas]
    assert fast.itl_hist.dtype == exact.itl_hist.dtype and np.array_equal(fast.itl_hist, exact.itl_hist)