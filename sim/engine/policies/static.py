"""``static``: the naive baseline — wait for a batch, run it to completion.

Collects ``batch_size`` requests (or, after ``timeout_s`` since the oldest
waiting one arrived, whatever is there), prefills all their prompts in one
step, then decodes until every request of the batch has finished; nothing new
joins a running batch. Padding is not modelled (finished sequences drop out of
the step), so this is an optimistic bound on static batching's cost.
"""

from __future__ import annotations

from sim.engine.policies.base import IDLE, Budget, StepPlan, admit_waiting, preempt_for
from sim.engine.request import FcfsQueue
from sim.scenario.params import StaticParams

__all__ = ["StaticBatching"]


class StaticBatching:
    name = "static"
    Params = StaticParams

    def __init__(self, params: dict | None = None) -> None:
        self.params = self.Params.model_validate(params or {})

    def make_queue(self):
        return FcfsQueue()

    def wake_on_arrival(self, rep) -> bool:
        return not rep.running

    def schedule(self, rep) -> StepPlan:
        dec = rep.dec
        if rep.running:
            budget = Budget(0, rep.kv.free, rep.running.__reversed__)
            preempt_for(rep, dec.need_now(), budget)
            victims = tuple(budget.victims)
            if dec.n > len(victims):
                return StepPlan(preempt=victims, decode=True, repeatable=not victims)
            return StepPlan(preempt=victims)
        if not len(rep.waiting):
            return IDLE
        due = rep.waiting.peek().enqueue_s + self.params.timeout_s
        size = min(self.params.batch_size, rep.engine.max_num_seqs)
        if len(rep.waiting) >= size or rep.t >= due:
            budget = Budget(1 << 62, rep.kv.free)
            chunks: list = []
            admitted = admit_waiting(rep, budget, chunks, whole_prompts=True, max_seqs=size)
            if admitted:
                return StepPlan(admit=tuple(admitted), chunks=tuple(chunks))
        return StepPlan(idle_until=due) if due > rep.t else IDLE
