"""What a running plan says about itself: the candidates in flight, simulations
done of an estimated total, and (from those) the time left.

``PlanTracker`` takes one event per simulation (``sim``) and per finished
candidate (``done``) and calls ``progress(done, total, text)`` with simulations
as the unit. The total is an estimate that is revised as candidates finish:
a running candidate is expected to need the mean of the finished candidates
that were simulated at all (``PRIOR_SIMULATIONS`` before any has finished),
and, once past that, half as much again as it has run (so a big candidate at
the end does not read "100%, 0 s left" while it runs on). In a process pool the workers send
their events through a queue (``worker_init`` / ``search_in_worker``) that a
thread of the parent drains (``drain``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sim.analysis.plan_search import search_candidate

__all__ = ["PlanTracker", "PRIOR_SIMULATIONS", "worker_init", "search_in_worker", "drain"]

#: simulations a candidate is expected to need before any has finished (plan-example, seed 11:
#: 864 simulations over its 11 candidates that fit the model, about 79 each)
PRIOR_SIMULATIONS = 75

_EVENTS = None  # a worker process's queue (worker_init)


class PlanTracker:
    """Counts simulations per candidate and reports them through ``progress``."""

    def __init__(self, ids: list[str], progress: Callable[..., None] | None) -> None:
        self.ids, self.progress = list(ids), progress
        self.sims = {i: 0 for i in ids}
        self.finished: dict[str, int] = {}
        self.lock = threading.Lock()

    def sim(self, cand_id: str) -> None:
        with self.lock:
            if cand_id in self.finished:  # a worker's late event; done() has the count
                return
            self.sims[cand_id] += 1
            self._report()

    def done(self, cand_id: str, simulations: int) -> None:
        with self.lock:
            self.sims[cand_id] = simulations
            self.finished[cand_id] = simulations
            self._report()

    def estimate(self) -> int:
        """Simulations expected in all: done ones plus the expected rest of each open candidate."""
        ran = [v for v in self.finished.values() if v > 0]
        per = sum(ran) / len(ran) if ran else PRIOR_SIMULATIONS
        # a candidate already past the mean is a big one: expect it to run half as much again
        return int(
            sum(self.finished.values())
            + sum(max(per, 1.5 * self.sims[i] + 1) for i in self.ids if i not in self.finished)
        )

    def text(self) -> str:
        running = [i for i in self.ids if i not in self.finished and self.sims[i] > 0]
        head = f"candidates done: {len(self.finished)} of {len(self.ids)}"
        return head + (f"; on {', '.join(running[:2])}" + (" ..." if len(running) > 2 else "") if running else "")

    def report(self) -> None:
        with self.lock:
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            done = sum(self.sims.values())
            total = done if len(self.finished) == len(self.ids) else max(self.estimate(), done + 1)
            self.progress(done, total, self.text())


def worker_init(events, init: Callable[[], None] | None = None) -> None:
    """Process-pool initializer: keep the queue the worker's events go to."""
    global _EVENTS
    _EVENTS = events
    if init is not None:
        init()


def search_in_worker(*args):
    """``search_candidate`` in a worker, its simulations sent to the parent's queue."""
    events = _EVENTS
    on_sim = (lambda cand_id: events.put(("sim", cand_id))) if events is not None else None
    return search_candidate(*args, on_sim=on_sim)


def drain(events, tracker: PlanTracker) -> None:
    """Parent thread: pass the workers' events to ``tracker`` until a ``None`` arrives."""
    while True:
        ev = events.get()
        if ev is None:
            return
        tracker.sim(ev[1])
