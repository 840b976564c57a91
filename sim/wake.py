"""Engine events: ``Wake`` entries in SimPy's event queue, and the ``Environment`` that runs them.

The engine loop of a replica and the arrival process run as callbacks rather
than as SimPy processes: a generator resume, and above all an ``Interrupt``
thrown into a generator, cost more than the work of a typical engine step.
``wake(env, delay, callback)`` puts a ``Wake`` into SimPy's own queue exactly
as ``Environment.schedule`` would (same time, priority and event-id key), so
its order against every other event is SimPy's: by time, then priority
(``URGENT`` before ``NORMAL``), then scheduling order.

A ``Wake`` is not a ``simpy.Event``: it only carries its callback. SimPy's
``step`` never sees one, because ``Environment.step`` runs the queue's
leading ``Wake`` entries itself (one callback each, never failed, never
stopping the run) and hands every other event to SimPy's own ``step``. A
callback receives its ``Wake``; the replica compares it with the wake-up it
is waiting for, so a superseded one is a no-op.
"""

from __future__ import annotations

from heapq import heappop, heappush
from typing import Callable

import simpy
from simpy.events import NORMAL, URGENT

__all__ = ["Wake", "Environment", "wake", "NORMAL", "URGENT"]


class Wake:
    """A scheduled ``callback(wake)`` (made by ``wake``)."""

    __slots__ = ("callback",)


def wake(env: "Environment", delay: float, callback: Callable, priority: int = NORMAL) -> Wake:
    """Schedule ``callback(w)`` ``delay`` seconds from now; returns ``w``."""
    w = Wake.__new__(Wake)
    w.callback = callback
    # simpy.Environment.schedule's queue entry: (time, priority, event id, event)
    heappush(env._queue, (env._now + delay, priority, next(env._eid), w))
    return w


class Environment(simpy.Environment):
    """``simpy.Environment`` that runs the ``Wake`` entries of its queue itself."""

    @property
    def now(self) -> float:
        return self._now

    def step(self) -> None:
        queue = self._queue
        if not queue or type(queue[0][3]) is not Wake:
            simpy.Environment.step(self)
            return
        # As simpy.Environment.step does for an event: pop it, set the clock, call back.
        # A Wake never fails and never stops the run, so a run of them takes one call.
        while queue and type(queue[0][3]) is Wake:
            self._now, _, _, w = heappop(queue)
            w.callback(w)
