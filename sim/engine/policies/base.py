"""The batching-policy contract and the pieces policies share.

A policy's ``schedule(replica) -> StepPlan`` is a pure function of the
replica's state: it reads queues, the decode group and the KV cache, and says
what the next engine step does. The replica applies the plan and advances time
by the performance model; no policy code runs inside the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from sim.engine.request import DECODING, Request
from sim.engine.step_plan import DECODE_RUN, IDLE, StepPlan
from sim.scenario.params import NoParams

if TYPE_CHECKING:  # pragma: no cover
    from sim.engine.replica import Replica

__all__ = [
    "StepPlan",
    "BatchingPolicy",
    "NoParams",
    "IDLE",
    "DECODE_RUN",
    "preempt_for",
    "admit_waiting",
    "blocks_for",
    "Budget",
    "new_budget",
]


class BatchingPolicy(Protocol):
    """A batching policy (one small class each, registered by name)."""

    name: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def make_queue(self): ...  # the waiting queue the replica keeps

    def schedule(self, rep: Replica) -> StepPlan: ...

    def wake_on_arrival(self, rep: Replica) -> bool: ...


def blocks_for(rep: Replica, computed: int, tokens: int) -> int:
    """New blocks to compute ``tokens`` more tokens on top of ``computed``."""
    bs = rep.block_size
    return -(-(computed + tokens) // bs) - (-(-computed // bs))


class Budget:
    """What is left of one step while a policy plans it. ``order`` (a
    zero-argument callable, or with ``rep`` given one called with ``rep``: no
    ``functools.partial`` per step) gives the preemption candidates, first to go
    first; it is only called when a preemption is needed."""

    __slots__ = {
        "tokens": "long long",
        "free": "long long",
        "victims": "list",
        "_order": "object",
        "_rep": "object",
        "_it": "object",
    }

    # set by _set_budget (annotations only: no class attributes beside __slots__)
    tokens: int
    free: int
    victims: list
    _order: Any
    _rep: Any
    _it: Any

    def __init__(self, tokens: int, free: int, order=None, rep=None) -> None:
        _set_budget(self, tokens, free, order, rep)

    def candidates(self):
        if self._it is None:
            self._it = iter(self._order() if self._rep is None else self._order(self._rep))
        return self._it


def new_budget(tokens: int, free: int, order=None, rep=None) -> Budget:
    """``Budget(tokens, free, order, rep)``; compiled, a C call that skips a class call's argument
    parsing (a policy makes one per planned step that is not a plain decode run)."""
    budget = Budget.__new__(Budget)
    _set_budget(budget, tokens, free, order, rep)
    return budget


def _set_budget(budget: Budget, tokens: int, free: int, order, rep) -> None:
    """A budget's fields (``Budget.__init__``, ``new_budget``)."""
    budget.tokens = tokens  # token budget left
    budget.free = free  # free KV blocks left
    budget.victims = []
    budget._order = order
    budget._rep = rep
    budget._it = None


def preempt_for(rep: Replica, need: int, budget: Budget, protect=None) -> bool:
    """Preempt from the budget's candidates (newest / lowest priority first) until
    ``need`` blocks fit in ``budget.free``. Returns False if ``protect`` itself had to go."""
    if need > budget.free:
        dec = rep.dec
        order = budget.candidates()
        while need > budget.free:
            victim = next(order, None)
            if victim is None:
                return False
            if victim in budget.victims:
                continue
            budget.victims.append(victim)
            budget.free += rep.blocks_released_by(victim)
            if victim is protect:
                return False
            if victim.state == DECODING and dec.needs_block_now(victim):
                need -= 1  # a preempted member does not decode this step
    budget.free -= need
    return True


def admit_waiting(rep: Replica, budget: Budget, chunks: list, whole_prompts: bool, max_seqs: int | None = None) -> list:
    """Admit from the head of the waiting queue while budget, slots and KV allow."""
    admitted: list[tuple[Request, int]] = []  # (request, prefix-cache hit blocks)
    if max_seqs is None:
        max_seqs = rep.max_num_seqs
    num_running = len(rep.running) - len(budget.victims)
    bs = rep.block_size
    for req in rep.waiting:
        if budget.tokens <= 0 or num_running >= max_seqs:
            break
        hit = 0
        evictable_hits = 0
        if req.computed == 0 and req.block_keys:
            limit = (req.prompt + req.generated - 1) // bs  # inline: Request.num_tokens (num_tokens - 1)
            hit, evictable_hits = rep.kv.match_chain(req.block_keys, limit)
        held = max(req.computed, hit * bs)  # tokens whose blocks it holds (computed, or cached hits)
        done = max(held, req.remote_tokens)  # remote KV (disaggregated prefill) is not computed here
        remaining = req.prompt + req.generated - done  # inline: Request.num_tokens (num_tokens - done)
        q = min(remaining, budget.tokens)
        if whole_prompts and q < remaining:
            if admitted or remaining <= rep.max_num_batched_tokens:
                break
            # A prompt longer than the whole budget (vLLM refuses such configs
            # without chunked prefill): compute it alone in one oversize step
            # rather than let it block the queue forever.
            q = remaining
        need = blocks_for(rep, held, done - held + q) + evictable_hits
        if need > budget.free:
            break
        admitted.append((req, hit))
        chunks.append((req, q))
        budget.tokens -= q
        budget.free -= need
        num_running += 1
    return admitted
