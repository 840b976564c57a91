"""``continuous``: vLLM v1's scheduler.

One token budget per step (``max_num_batched_tokens``): running requests
first (each decode takes one token; partially prefilled prompts take the next
chunk), then waiting requests first come first served while the budget, the
sequence limit and the KV cache allow, chunking the last prompt that only
partly fits (when ``enable_chunked_prefill``). When the KV cache runs out, the
newest running request is preempted and recomputed later; a step that
preempts admits nobody new.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.engine.policies.base import (
    DECODE_RUN,
    IDLE,
    NoParams,
    StepPlan,
    admit_waiting,
    blocks_for,
    new_budget,
    preempt_for,
)
from sim.engine.request import DECODING, FcfsQueue
from sim.engine.step_plan import new_step_plan

if TYPE_CHECKING:  # pragma: no cover
    from sim.engine.replica import Replica

__all__ = ["ContinuousBatching"]


class ContinuousBatching:
    name = "continuous"
    Params = NoParams

    __slots__ = {"params": "object"}

    def __init__(self, params: dict | None = None) -> None:
        self.params = self.Params.model_validate(params or {})

    def make_queue(self):
        return FcfsQueue()

    def wake_on_arrival(self, rep: Replica) -> bool:
        return True

    def victim_order(self, rep: Replica):
        """Preemption candidates, first to go first: the newest running request."""
        return reversed(rep.running)

    def schedule(self, rep: Replica) -> StepPlan:
        dec, kv = rep.dec, rep.kv
        free = kv.num_empty + len(kv.evictable) + kv.dormant  # inline: KVCache.free
        if not rep.prefilling and not len(rep.waiting) and dec.n and dec.need_now() <= free:
            return DECODE_RUN  # the steady state: every running request decodes
        budget = new_budget(rep.max_num_batched_tokens, free, self.victim_order, rep)
        if dec.n:
            preempt_for(rep, dec.need_now(), budget)
        victims = budget.victims
        n_dec = dec.n  # members that decode this step: all but the preempted ones
        for v in victims:
            if v.state == DECODING:
                n_dec -= 1
        budget.tokens -= n_dec
        chunks: list = []
        for req in rep.prefilling:
            if budget.tokens <= 0:
                break
            if req in victims:
                continue
            q = min(req.prompt + req.generated - req.computed, budget.tokens)  # inline: Request.num_tokens
            if not preempt_for(rep, blocks_for(rep, req.computed, q), budget, protect=req):
                break
            chunks.append((req, q))
            budget.tokens -= q
        if victims:
            chunks = [(r, q) for r, q in chunks if r not in victims]
            admitted: list = []
        else:
            admitted = admit_waiting(rep, budget, chunks, whole_prompts=not rep.chunked_prefill)
        if chunks:
            # new_step_plan: StepPlan(...) without a keyword call (compiled, a C call)
            return new_step_plan(tuple(victims), tuple(admitted), tuple(chunks), n_dec > 0, False, None)
        if n_dec:
            return new_step_plan(tuple(victims), (), (), True, not victims, None)
        if victims:
            return new_step_plan(tuple(victims), (), (), False, False, None)
        return IDLE
