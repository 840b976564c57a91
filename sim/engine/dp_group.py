"""The data-parallel ranks of one MoE model instance, stepping in lock step.

vLLM serves a MoE model with ``--data-parallel-size N`` as N engine cores (each its own
scheduler, batch and KV cache) whose MoE layers exchange tokens every forward pass, so the
ranks run each step together (vLLM ``vllm/v1/engine/core.py``, ``DPEngineCoreProc.run_busy_loop``):
while any rank has unfinished requests every rank steps; a rank with nothing scheduled runs
``execute_dummy_batch`` (``vllm/v1/worker/gpu_worker.py``: ``model_runner._dummy_run(1, ...)``,
a one-token decode forward) to take part in the collectives; when no rank has work all pause.
The all-to-all inside every MoE layer makes the slowest rank set the pace.

``DPGroup`` is that barrier. Each rank plans its step as usual and reports its own duration
(``ready``; a negative duration: nothing to run). When every rank has reported, the group
starts one step on all of them at the same time ``t0``: it lasts ``D = max`` of the ranks' own
durations, and of ``dummy_s`` (the one-token dummy step) when some rank is idle; every rank's
step ends at ``t0 + D`` (``Replica._group_go``, ``Replica._group_dummy``). When every rank is
idle the group waits; the first rank that gets work starts a step, the others running dummy
batches (started after every event of that instant that comes first, so ranks woken by arrivals
at the same time all run their requests in it). A request reaching a rank during a step waits
for the next one, as in vLLM.

Simplifications (docs/design.md, "Parallel layouts"): a rank's own duration is still costed
with every rank carrying a batch like its own (the step-time model's symmetric load), and
the group's step is the maximum of those durations; the ranks of a group take one step per
event (no fast-forward of decode runs).
"""

from __future__ import annotations

from sim.engine.wake import wake

__all__ = ["DPGroup"]


class DPGroup:
    """The lock-step barrier of the ``ranks`` (consecutive fleet indices) of one data-parallel
    MoE replica; ``dummy_s``: seconds of an idle rank's dummy step."""

    __slots__ = ("ranks", "dummy_s", "first", "env", "_own_s", "_reported", "_left", "_starting")

    def __init__(self, ranks: list, dummy_s: float) -> None:
        self.ranks = list(ranks)
        self.dummy_s = float(dummy_s)
        self.first = self.ranks[0].index
        self.env = self.ranks[0].env
        self._starting = False  # a step out of the all-idle state is due at this instant
        n = len(self.ranks)
        self._own_s = [-1.0] * n  # each rank's own duration of its planned step; < 0: idle
        self._reported = [False] * n  # reported in the current round
        self._left = n  # ranks still to report before the round's step can start (0: all idle, waiting)
        for rank in self.ranks:
            rank.group = self
            rank._stretch_ok = False  # a decode run cannot be fast-forwarded on its own clock

    def ready(self, rank, own_s: float) -> None:
        """``rank`` has planned its next step of ``own_s`` seconds (< 0: it has nothing to run). A
        rank may report again in the same round (an arrival woke it from idle): the last report counts."""
        i = rank.index - self.first
        self._own_s[i] = own_s
        if self._left:
            if self._reported[i]:
                return
            self._reported[i] = True
            self._left -= 1
            if self._left:
                return
            if max(self._own_s) >= 0.0:
                self._launch()
            # else every rank idles on its own wake-up (an arrival, a batching timeout)
        elif own_s >= 0.0 and not self._starting:  # the group was idle: this rank's work starts a step
            self._starting = True
            wake(self.env, 0.0, self._start)

    def _start(self, ev) -> None:
        """The step out of the all-idle state, once every event of this instant before it has run
        (other ranks woken by arrivals at the same time report first)."""
        self._starting = False  # (a data-parallel replica fails whole: then none of its ranks steps again)
        if not self._left and self.ranks and not self.ranks[0].failed and max(self._own_s) >= 0.0:
            self._launch()

    def _launch(self) -> None:
        """Start one step on every rank: the busy ones run theirs, the idle ones a dummy batch;
        all end at ``t0 + max(durations)``."""
        ranks, own = self.ranks, self._own_s
        t0 = max(r.t for r, d in zip(ranks, own) if d >= 0.0)
        dur = max(own)
        if min(own) < 0.0 and self.dummy_s > dur:
            dur = self.dummy_s
        t_end = t0 + dur
        n = len(ranks)
        self._reported = [False] * n
        self._left = n
        for r, d in zip(ranks, own):
            if d >= 0.0:
                r._group_go(t0, dur, d, t_end)
            else:
                r._group_dummy(t0, t_end)

    def clear(self) -> None:
        """Drop the references to the ranks (a finished run: ranks -> group -> ranks)."""
        for rank in self.ranks:
            rank.group = None
        self.ranks = []
