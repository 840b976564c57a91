"""What a running plan says about itself: the stage and candidates in flight,
simulations done of an estimated total, and (from those) the time left.

A plan runs in two stages (``sim.analysis.plan``): every candidate's count
(``count_candidate``), then the cheapest candidates searched to the end
(``finish_candidate``). ``PlanTracker`` takes one event per simulation (``sim``,
with its stage) and per finished candidate and stage (``done``), and calls
``progress(done, total, text)`` with simulations as the unit. The total is an
estimate revised as candidates finish: a candidate still counting is expected
to need the mean count of the finished candidates that were simulated at all
(``PRIOR_SIMULATIONS`` before any has finished) and, once past that, half as much
again as it has run (so a big candidate at the end does not read "100%, 0 s
left" while it runs on); the second stage is expected to need
``FINISH_SIMULATIONS`` per candidate it finishes (one before the first stage
ends), the same rule applying once past it. In a process pool the workers send
their events through a queue (``worker_init`` / ``probe_in_worker`` / ``count_in_worker`` /
``finish_in_worker``) that a thread of the parent drains (``drain``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sim.analysis.plan_search import count_candidate, finish_candidate, probe_candidate

__all__ = [
    "PlanTracker",
    "PRIOR_SIMULATIONS",
    "FINISH_SIMULATIONS",
    "worker_init",
    "probe_in_worker",
    "count_in_worker",
    "finish_in_worker",
    "drain",
]

#: simulations a candidate's count is expected to need before any has finished (plan-example,
#: seed 11: 80 simulations for the counts of its 13 candidates that fit the model, most pruned)
PRIOR_SIMULATIONS = 6
#: simulations the second stage is expected to need per candidate it finishes (plan-example,
#: seed 11: 53 and 37 for the two candidates of the cheapest cost)
FINISH_SIMULATIONS = 50

_EVENTS = None  # a worker process's queue (worker_init)


class PlanTracker:
    """Counts simulations per candidate and stage and reports them through ``progress``."""

    def __init__(self, ids: list[str], progress: Callable[..., None] | None) -> None:
        self.ids, self.progress = list(ids), progress
        self.sims = {i: 0 for i in ids}  # stage one
        self.finished: dict[str, int] = {}
        self.finishing: list[str] | None = None  # stage two's candidates, once known
        self.sims2: dict[str, int] = {}
        self.finished2: dict[str, int] = {}
        self.lock = threading.Lock()

    def sim(self, cand_id: str, stage: int = 1) -> None:
        with self.lock:
            if stage == 1:
                if cand_id in self.finished:  # a worker's late event; done() has the count
                    return
                self.sims[cand_id] += 1
            else:
                if self.finishing is None or cand_id in self.finished2 or cand_id not in self.sims2:
                    return
                self.sims2[cand_id] += 1
            self._report()

    def done(self, cand_id: str, simulations: int, stage: int = 1) -> None:
        with self.lock:
            if stage == 1:
                self.sims[cand_id] = simulations
                self.finished[cand_id] = simulations
            else:
                self.sims2[cand_id] = simulations
                self.finished2[cand_id] = simulations
            self._report()

    def finish(self, ids: list[str]) -> None:
        """The first stage is over; ``ids`` are searched to the end (called again with the next
        cheapest when a power budget rejected the ones before)."""
        with self.lock:
            self.finishing = (self.finishing or []) + [i for i in ids if i not in (self.finishing or [])]
            self.sims2.update({i: 0 for i in ids if i not in self.sims2})
            self._report()

    def estimate(self) -> int:
        """Simulations expected in all: done ones plus the expected rest of each open candidate."""
        ran = [v for v in self.finished.values() if v > 0]
        per = sum(ran) / len(ran) if ran else PRIOR_SIMULATIONS
        # a candidate already past the mean is a big one: expect it to run half as much again
        one = sum(self.finished.values()) + sum(
            max(per, 1.5 * self.sims[i] + 1) for i in self.ids if i not in self.finished
        )
        if self.finishing is None:
            return int(one + FINISH_SIMULATIONS)
        two = sum(
            self.finished2[i] if i in self.finished2 else max(FINISH_SIMULATIONS, 1.5 * self.sims2[i] + 1)
            for i in self.finishing
        )
        return int(one + two)

    def done_count(self) -> int:
        return sum(self.sims.values()) + sum(self.sims2.values())

    def complete(self) -> bool:
        return self.finishing is not None and len(self.finished2) == len(self.finishing)

    def text(self) -> str:
        if self.finishing is not None:
            running = [i for i in self.finishing if i not in self.finished2]
            head = (
                f"candidates counted: {len(self.ids)} of {len(self.ids)}; headroom and growth of the cheapest: "
                f"{len(self.finished2)} of {len(self.finishing)} done"
            )
        else:
            running = [i for i in self.ids if i not in self.finished and self.sims[i] > 0]
            head = f"candidates counted: {len(self.finished)} of {len(self.ids)}"
        return head + (f"; on {', '.join(running[:2])}" + (" ..." if len(running) > 2 else "") if running else "")

    def report(self) -> None:
        with self.lock:
            self._report()

    def _report(self) -> None:
        if self.progress is not None:
            done = self.done_count()
            total = done if self.complete() else max(self.estimate(), done + 1)
            self.progress(done, total, self.text())


def worker_init(events, init: Callable[[], None] | None = None) -> None:
    """Process-pool initializer: keep the queue the worker's events go to."""
    global _EVENTS
    _EVENTS = events
    if init is not None:
        init()


def _on_sim(stage: int):
    events = _EVENTS
    return (lambda cand_id: events.put(("sim", cand_id, stage))) if events is not None else None


def probe_in_worker(*args):
    """``probe_candidate`` in a worker, its simulations sent to the parent's queue."""
    return probe_candidate(*args, on_sim=_on_sim(1))


def count_in_worker(*args):
    """``count_candidate`` in a worker (``args`` end with its cache and the bound), its
    simulations sent to the parent's queue."""
    *rest, cache, bound = args
    return count_candidate(*rest, on_sim=_on_sim(1), cache=cache, bound=bound)


def finish_in_worker(*args):
    """``finish_candidate`` in a worker, its simulations sent to the parent's queue."""
    return finish_candidate(*args, on_sim=_on_sim(2))


def drain(events, tracker: PlanTracker) -> None:
    """Parent thread: pass the workers' events to ``tracker`` until a ``None`` arrives."""
    while True:
        ev = events.get()
        if ev is None:
            return
        tracker.sim(ev[1], ev[2])
