"""A request inside a replica, and the waiting queues policies choose from."""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

__all__ = ["Request", "new_request", "FcfsQueue", "PriorityQueue", "WAITING", "RUNNING", "DECODING", "DONE"]

WAITING, RUNNING, DECODING, DONE = 0, 1, 2, 3


class Request:
    """Mutable engine-side state of one request (one per arrival, dropped at finish).

    Tokens follow vLLM's accounting: ``num_tokens = prompt + generated`` and
    ``computed`` catches up with it; when a step brings ``computed`` level with
    ``num_tokens`` a new token is sampled.
    """

    __slots__ = {
        "rid": "long long",
        "cls": "long long",
        "prompt": "long long",
        "output": "long long",
        "priority": "long long",
        "seq": "long long",
        "arrival_s": "double",
        "block_keys": "object",
        "generated": "long long",
        "computed": "long long",
        "state": "long long",
        "preemptions": "long long",
        "cached_tokens": "long long",
        "keys": "list",
        "first_token_s": "double",
        "last_token_s": "double",
        "enqueue_s": "double",
        "k_join": "long long",
        "c_join": "long long",
        "g_join": "long long",
        "phase": "long long",
        "join_id": "long long",
        "remote_tokens": "long long",
    }
    # set by _fill (annotations only: no class attributes beside __slots__)
    rid: int
    cls: int
    prompt: int
    output: int
    priority: int
    seq: int
    arrival_s: float
    # Any, not list | None: read only where a caller checked it is a list (the hot path has no check)
    block_keys: Any
    generated: int
    computed: int
    state: int
    preemptions: int
    cached_tokens: int
    keys: list
    first_token_s: float
    last_token_s: float
    enqueue_s: float
    remote_tokens: int
    # set by DecodeGroup.join, not here
    k_join: int
    c_join: int
    g_join: int
    phase: int
    join_id: int

    def __init__(
        self,
        rid: int,
        cls: int,
        prompt: int,
        output: int,
        arrival_s: float,
        priority: int,
        seq: int,
        block_keys: list | None,
    ) -> None:
        _fill(self, rid, cls, prompt, output, arrival_s, priority, seq, block_keys)

    @property
    def num_tokens(self) -> int:
        return self.prompt + self.generated


def new_request(
    rid: int, cls: int, prompt: int, output: int, arrival_s: float, priority: int, seq: int, block_keys: list | None
) -> Request:
    """``Request(rid, cls, prompt, output, arrival_s, priority, seq, block_keys)``; compiled, a C call
    that skips a class call's argument parsing (the arrival path makes one request per arrival)."""
    req = Request.__new__(Request)
    _fill(req, rid, cls, prompt, output, arrival_s, priority, seq, block_keys)
    return req


def _fill(
    req: Request,
    rid: int,
    cls: int,
    prompt: int,
    output: int,
    arrival_s: float,
    priority: int,
    seq: int,
    block_keys: list | None,
) -> None:
    """A new request's fields (``Request.__init__``, ``new_request``)."""
    req.rid = rid  # workload index (the record's request_id)
    req.cls = cls  # class index
    req.prompt = prompt  # prompt tokens
    req.output = output  # output tokens to generate
    req.arrival_s = arrival_s
    req.priority = priority  # higher = more important
    req.seq = seq  # arrival order at the replica (tie-breaker)
    req.block_keys = block_keys  # prefix-cache key per full prompt block (None: no shared prefix)
    req.generated = 0  # output tokens sampled so far
    req.computed = 0  # tokens whose KV is computed (valid when not DECODING)
    req.keys = []  # cached block keys held (a prefix of block_keys)
    req.state = WAITING
    req.preemptions = 0
    req.cached_tokens = 0  # prompt tokens hit in the prefix cache at first admission
    req.first_token_s = float("nan")
    req.last_token_s = float("nan")
    req.enqueue_s = arrival_s  # when it (re-)entered the waiting queue
    # prompt tokens whose KV another replica computed (disaggregated prefill, sim.engine.disagg):
    # admission allocates their blocks instead of computing them, then sets computed to it and this to 0
    req.remote_tokens = 0
    # decode-group bookkeeping, set by DecodeGroup.join (read only while DECODING):
    # k_join, c_join, g_join, phase, join_id (which join its finish-heap entry belongs to)


class FcfsQueue(deque):
    """First come, first served; preempted requests go back to the front.

    A ``deque`` (length and iteration run in C: the engine asks every step)."""

    __slots__ = ()

    push = deque.append
    push_front = deque.appendleft

    def peek(self) -> Request:
        return self[0]

    def drop_first(self, n: int) -> None:
        """Take the first ``n`` out (the requests a step admits; no list of them is made)."""
        while n > 0:  # not range(n): n is a Python int here, and a range object costs more than the pops
            self.popleft()
            n -= 1


class PriorityQueue:
    """Highest ``priority`` first, then arrival order (vLLM's priority policy)."""

    __slots__ = ("_h",)

    def __init__(self) -> None:
        self._h: list[tuple[int, int, Request]] = []

    def __len__(self) -> int:
        return len(self._h)

    def __iter__(self):
        # In service order; sorting a copy is fine: only read when scheduling.
        return (item[2] for item in sorted(self._h, key=lambda it: (it[0], it[1])))

    def push(self, req: Request) -> None:
        heapq.heappush(self._h, (-req.priority, req.seq, req))

    push_front = push  # a preempted request keeps its place by (priority, arrival)

    def peek(self) -> Request:
        return self._h[0][2]

    def drop_first(self, n: int) -> None:
        """Take the first ``n`` out (the requests a step admits)."""
        for _ in range(n):
            heapq.heappop(self._h)
