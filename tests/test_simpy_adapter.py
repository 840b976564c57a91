"""What the engine's SimPy adapter (``sim/engine/wake.py``) assumes of SimPy, pinned.

The adapter keeps its own queue of engine events beside SimPy's and merges
the two by SimPy's event key. For that it reads and writes three private
attributes of ``simpy.Environment``: ``_now`` (the clock), ``_eid`` (the
counter event ids are drawn from) and ``_queue`` (a heap of ``(time,
priority, event id, event)`` tuples). pyproject.toml pins SimPy to the
release line these tests were checked on; if a SimPy release changes any of
this, these tests fail before the engine silently reorders events.
"""

from __future__ import annotations

import heapq
import itertools
import re
from pathlib import Path

import simpy
from simpy.events import NORMAL, URGENT

from sim.engine.wake import Environment, wake

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _pinned_range() -> tuple[tuple[int, ...], tuple[int, ...]]:
    spec = re.search(r'"simpy>=([\d.]+),<([\d.]+)"', PYPROJECT.read_text(encoding="utf-8"))
    assert spec, "pyproject.toml must pin simpy as \"simpy>=X,<Y\" (the adapter relies on its internals)"
    return tuple(map(int, spec.group(1).split("."))), tuple(map(int, spec.group(2).split(".")))


def test_installed_simpy_is_in_the_pinned_range():
    lo, hi = _pinned_range()
    installed = tuple(int(x) for x in re.findall(r"\d+", simpy.__version__)[:3])
    assert lo <= installed < hi, f"simpy {simpy.__version__} is outside the pinned range {lo}..{hi}"


def test_priorities_order_urgent_first():
    assert URGENT < NORMAL  # the adapter compares priorities with <, as SimPy's heap does


def test_schedule_pushes_time_priority_eid_event_onto_the_queue_heap():
    env = simpy.Environment(initial_time=1.0)
    assert env._now == 1.0 and isinstance(env._queue, list) and not env._queue
    assert isinstance(env._eid, itertools.count)
    taken = next(env._eid)  # ids come from this counter, one per scheduled event
    ev = env.timeout(2.5)
    assert env._queue == [(3.5, NORMAL, taken + 1, ev)]
    urgent = simpy.Event(env)
    env.schedule(urgent, URGENT, 2.5)
    assert heapq.nsmallest(1, env._queue)[0] == (3.5, URGENT, taken + 2, urgent)
    assert env.peek() == 3.5


def test_step_pops_the_heap_and_sets_the_clock():
    env = simpy.Environment()
    late, early = env.timeout(5.0), env.timeout(2.0)
    env.step()
    assert env._now == 2.0 and early.processed and not late.processed
    assert [entry[3] for entry in env._queue] == [late]


def test_the_adapter_shares_the_clock_and_the_id_counter():
    env = Environment()
    seen = []
    env.timeout(1.0)  # SimPy event id n
    w = wake(env, 1.0, lambda w: seen.append(env.now))  # id n + 1: after the timeout at the same time
    assert w.eid == env._queue[0][2] + 1 and w.at == 1.0
    assert env.peek() == 1.0
    env.run()
    assert seen == [1.0] and env.now == env._now == 1.0


def test_a_wake_scheduled_from_a_simpy_callback_counts_from_that_event_s_time():
    # The WakeQueue keeps its own copy of the clock: a wake made while SimPy's step runs its
    # callbacks must count from that event's time (1.5 + 0.5 = 2.0), not from the last Wake's.
    env = Environment()
    seen = []
    wake(env, 0.25, lambda w: seen.append(("wake", env.now)))
    ev = env.timeout(1.5)
    ev.callbacks.append(lambda e: wake(env, 0.5, lambda w: seen.append(("from simpy", env.now))))
    env.run()
    assert seen == [("wake", 0.25), ("from simpy", 2.0)]
    assert env.wq.now == env.now == 2.0
