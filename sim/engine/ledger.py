"""The per-request outcomes of one run, written as requests leave.

A replica reports here when a request finishes or is rejected; the arrival
process notes which replica each request went to. The ledger also counts the
requests in the system and fires ``done`` (a SimPy event) once the last
arrival has come and every request has left. It knows nothing of fleets or
routers: a replica holds the ledger, not the fleet.

Outcomes live in ``array.array`` (a store is several times cheaper than a
numpy scalar store, and each is written once or twice per request); the fleet
reads them as numpy views when the run ends.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

from sim.engine.request import Request

__all__ = ["Ledger", "OK", "REJECTED", "TIMEOUT"]

# status codes (indices into the record's status names; see fleet._STATUS)
OK, REJECTED, TIMEOUT = 0, 1, 3


class Ledger:
    """Outcome columns of ``n`` requests, by request id."""

    __slots__ = {
        "first_token": "object",
        "finish_s": "object",
        "out_tokens": "object",
        "cached": "object",
        "preempt": "object",
        "replica_of": "object",
        "status": "object",
        "done": "object",
        "on_leave": "object",
        "active": "long long",
        "arrivals_done": "bint",
        # writable views of the columns above (compiled: typed memoryviews, each write one C store)
        "_first_token_v": "double[:]",
        "_finish_s_v": "double[:]",
        "_out_tokens_v": "long long[:]",
        "_cached_v": "long long[:]",
        "_preempt_v": "long long[:]",
        "_replica_of_v": "long long[:]",
        "_status_v": "signed char[:]",
    }

    def __init__(self, n: int, done) -> None:
        self.first_token = array("d", [math.nan]) * n
        self.finish_s = array("d", [math.nan]) * n
        self.out_tokens = array("q", [0]) * n
        self.cached = array("q", [0]) * n
        self.preempt = array("q", [0]) * n
        self.replica_of = array("q", [-1]) * n
        self.status = array("b", [TIMEOUT]) * n
        self._first_token_v: Any = memoryview(self.first_token)  # Any: typeshed types a memoryview of ints
        self._finish_s_v: Any = memoryview(self.finish_s)
        self._out_tokens_v = memoryview(self.out_tokens)
        self._cached_v = memoryview(self.cached)
        self._preempt_v = memoryview(self.preempt)
        self._replica_of_v = memoryview(self.replica_of)
        self._status_v = memoryview(self.status)
        self.active = 0  # requests arrived and not yet finished or rejected
        self.arrivals_done = False
        self.done = done
        self.on_leave: Any = None  # a closed-loop client's callback (rid) when a request leaves; None: open loop

    def arrive(self, rid: int, replica_index: int) -> None:
        """Request ``rid`` entered the system at replica ``replica_index``."""
        self._replica_of_v[rid] = replica_index
        self.active += 1

    def arrivals_over(self) -> None:
        """The last request has arrived: the run is done once the system is empty."""
        self.arrivals_done = True
        if self.active == 0 and not self.done.triggered:
            self.done.succeed()

    def finish(self, req: Request, t: float) -> None:
        """``req`` generated its last token at ``t``."""
        rid = req.rid
        self._first_token_v[rid] = req.first_token_s
        self._finish_s_v[rid] = t
        self._out_tokens_v[rid] = req.generated
        self._cached_v[rid] = req.cached_tokens
        self._preempt_v[rid] = req.preemptions
        self._status_v[rid] = OK
        self._leave()
        if self.on_leave is not None:
            self.on_leave(rid)

    def reject(self, req: Request, replica_index: int) -> None:
        """``req`` can never fit replica ``replica_index`` (vLLM rejects it)."""
        self.replica_of[req.rid] = replica_index
        self.status[req.rid] = REJECTED
        self._leave()
        if self.on_leave is not None:
            self.on_leave(req.rid)

    def _leave(self) -> None:
        self.active -= 1
        if self.arrivals_done and self.active == 0 and not self.done.triggered:
            self.done.succeed()
