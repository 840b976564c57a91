"""Engine events (``Wake``), and the ``Environment`` that runs them beside SimPy's own.

The engine loop of a replica and the arrival process run as callbacks rather
than as SimPy processes: a generator resume, and above all an ``Interrupt``
thrown into a generator, cost more than the work of a typical engine step.
``wake(env, delay, callback)`` schedules a ``Wake`` with the key
``Environment.schedule`` would give an event (time, priority, event id), so
its order against every other event is SimPy's: by time, then priority
(``URGENT`` before ``NORMAL``), then scheduling order.

A ``Wake`` is not a ``simpy.Event``: it carries its key and its callback, and
waits in a queue of its own (``Environment.wakes``). ``Environment.step``
takes the next event of the two queues by SimPy's key, runs Wakes itself (one
callback each, never failed, never stopping the run) and hands every other
event to SimPy's own ``step``; both queues draw event ids from SimPy's
counter, so the order is the one a single SimPy queue would give. A callback
receives its ``Wake``; the replica compares it with the wake-up it is waiting
for, so a superseded one is a no-op (and the replica sets a superseded Wake's
``callback`` to None, which ``_run_wakes`` skips without a call).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush

import simpy
from simpy.events import NORMAL, URGENT

__all__ = ["Wake", "WakeQueue", "Environment", "wake", "wake_q", "NORMAL", "URGENT"]


# Compiled (setup.py), a Wake compares itself in C, so the wake queue holds Wakes;
# as plain Python, a tuple compares faster than a Python __lt__, so it holds SimPy-style tuples.
COMPILED = not __file__.endswith(".py")


class Wake:
    """A scheduled ``callback(wake)`` at time ``at`` (made by ``wake``)."""

    __slots__ = {"at": "double", "priority": "long long", "eid": "long long", "callback": "object"}
    # set by wake(), which skips __init__ (annotations only: no class attributes beside __slots__)
    at: float
    priority: int
    eid: int
    callback: Callable | None  # None once superseded (Replica._wake)

    def __lt__(self, other) -> bool:
        return _before(self, other)


def _before(a: Wake, b: Wake) -> bool:
    """SimPy's queue order: time, then priority, then event id (scheduling order)."""
    if a.at != b.at:
        return a.at < b.at
    if a.priority != b.priority:
        return a.priority < b.priority
    return a.eid < b.eid


def _push(heap: list, w: Wake) -> None:
    """``heappush(heap, w)`` with ``_before`` as the order: compiled, a C comparison per level
    (heapq compares through ``Wake.__lt__``, a Python call each). Keys are unique (event ids),
    so the pop order is the one heapq gives whatever the layout."""
    heap.append(w)
    pos = len(heap) - 1
    while pos > 0:
        parent = (pos - 1) >> 1
        up = heap[parent]
        if not _before(w, up):
            break
        heap[pos] = up
        pos = parent
    heap[pos] = w


def _pop(heap: list) -> Wake:
    """``heappop(heap)`` with ``_before`` as the order (see ``_push``)."""
    last = heap.pop()
    n = len(heap)
    if n == 0:
        return last
    top = heap[0]
    pos = 0
    child = 1
    while child < n:  # move the earlier child up until ``last`` fits
        c = heap[child]
        if child + 1 < n:
            right = heap[child + 1]
            if _before(right, c):
                child += 1
                c = right
        if not _before(c, last):
            break
        heap[pos] = c
        pos = child
        child = 2 * pos + 1
    heap[pos] = last
    return top


class WakeQueue:
    """An ``Environment``'s ``Wake`` heap, its clock (``now``: the environment's ``now``, kept
    equal by ``Environment.step``) and SimPy's event-id counter, in one object whose fields are
    C fields when compiled: ``wake_q`` reads them without an attribute look-up on the environment."""

    __slots__ = {"now": "double", "heap": "list", "eid": "object"}

    def __init__(self, now: float, heap: list, eid) -> None:
        self.now = now
        self.heap = heap
        self.eid = eid


def wake(env: Environment, delay: float, callback: Callable, priority: int = NORMAL) -> Wake:
    """Schedule ``callback(w)`` ``delay`` seconds from now; returns ``w``. Its key is the one
    ``simpy.Environment.schedule`` would give it (the event id from the same counter)."""
    return wake_q(env.wq, delay, callback, priority)


def wake_q(q: WakeQueue, delay: float, callback: Callable, priority: int = NORMAL) -> Wake:
    """``wake`` on an environment's ``WakeQueue`` (``Environment.wq``; the engine's hot path holds it)."""
    w = Wake.__new__(Wake)
    w.at = q.now + delay
    w.priority = priority
    w.eid = next(q.eid)
    w.callback = callback
    if COMPILED:
        _push(q.heap, w)
    else:
        heappush(q.heap, (w.at, priority, w.eid, w))
    return w


class Environment(simpy.Environment):
    """``simpy.Environment`` with a second queue, of ``Wake`` entries, that it runs itself."""

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.wakes: list = []  # heap of Wakes (or their key tuples), apart from SimPy's _queue
        self.wq = WakeQueue(self._now, self.wakes, self._eid)

    @property
    def now(self) -> float:
        # the clock is the WakeQueue's (a C field): _run_wakes advances it without storing SimPy's
        # _now (an instance-dict store per engine event); SimPy's step sets both (step, below)
        return self.wq.now

    def schedule(self, event, priority: int = NORMAL, delay: float = 0) -> None:
        """``simpy.Environment.schedule`` counting from ``now`` (the WakeQueue's clock)."""
        heappush(self._queue, (self.wq.now + delay, priority, next(self._eid), event))

    def peek(self) -> float:
        t = super().peek()
        if self.wakes:
            w = self.wakes[0] if COMPILED else self.wakes[0][3]
            t = min(t, w.at)
        return t

    def step(self) -> None:
        """Run the next event of the two queues, in SimPy's order: a run of Wakes in one
        call (they never fail and never stop the run), any other event by SimPy's step."""
        if not _run_wakes(self, self.wq, self._queue):
            if self._queue:  # the clock SimPy's step sets, before its callbacks run (they may wake)
                self.wq.now = self._queue[0][0]
            simpy.Environment.step(self)


def _run_wakes(env: Environment, q: WakeQueue, queue: list) -> bool:
    """Run the Wakes that come before SimPy's next event; False if there were none."""
    ran = False
    wakes = q.heap
    compiled = COMPILED
    while wakes:
        w = wakes[0] if compiled else wakes[0][3]
        if queue:  # does SimPy's next event come first? (time, priority, event id)
            top = queue[0]
            t = top[0]
            if t < w.at or (t == w.at and (top[1] < w.priority or (top[1] == w.priority and top[2] < w.eid))):
                break
        if compiled:
            _pop(wakes)
        else:
            heappop(wakes)
        q.now = w.at  # the clock (Environment.now); SimPy's own _now is only set by its step
        if w.callback is not None:  # None: superseded (Replica._wake), nothing to run
            w.callback(w)
        ran = True
    return ran
