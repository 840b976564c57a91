"""``prefill-first``: vLLM v0's default scheduler (no chunked prefill, no mixing).

A step either prefills whole prompts of waiting requests (as many as fit the
token budget, the sequence limit and the KV cache) or decodes every running
request; prefills win whenever one can be admitted, so decodes stall while a
burst is being prefilled.
"""

from __future__ import annotations

from sim.engine.policies.base import IDLE, Budget, NoParams, StepPlan, admit_waiting, preempt_for
from sim.engine.request import FcfsQueue

__all__ = ["PrefillFirst"]


class PrefillFirst:
    name = "prefill-first"
    Params = NoParams

    def __init__(self, params: dict | None = None) -> None:
        self.params = self.Params.model_validate(params or {})

    def make_queue(self):
        return FcfsQueue()

    def wake_on_arrival(self, rep) -> bool:
        return True

    def schedule(self, rep) -> StepPlan:
        if len(rep.waiting):
            budget = Budget(rep.engine.max_num_batched_tokens, rep.kv.free)
            chunks: list = []
            admitted = admit_waiting(rep, budget, chunks, whole_prompts=True)
            if admitted:
                return StepPlan(admit=tuple(admitted), chunks=tuple(chunks))
        dec = rep.dec
        if not dec.n:
            return IDLE
        budget = Budget(rep.engine.max_num_batched_tokens, rep.kv.free, rep.running.__reversed__)
        preempt_for(rep, dec.need_now(), budget)
        victims = tuple(budget.victims)
        return StepPlan(preempt=victims, decode=dec.n > len(victims), repeatable=not victims)
