"""A closed-loop client: ``clients`` users, each sending its next request when its last one ends.

This is how ``vllm bench serve --max-concurrency N`` (with an unlimited request rate),
``benchmark_serving``'s concurrency sweeps, aiconfigurator's and InferenceX's "concurrency"
points and most load generators' "users" drive a server: at time 0 the first ``clients``
requests are sent; whenever a request leaves (finishes, or is rejected) the next request of the
workload, in workload order, is sent ``think_s`` later. The workload supplies the requests
(classes, prompt and output lengths, prefixes); its ``arrival_s`` is not used -- the send times
are the outcome of the run (``simulate(..., closed_loop=...)`` records them as the requests'
``arrival_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ClosedLoop"]


@dataclass(frozen=True)
class ClosedLoop:
    """``clients`` concurrent users (integer >= 1), ``think_s`` seconds (>= 0) between one
    request's end and the same user's next send."""

    clients: int
    think_s: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.clients, bool) or not isinstance(self.clients, int) or self.clients < 1:
            raise ValueError(f"ClosedLoop.clients must be an integer >= 1, got {self.clients!r}")
        t = float(self.think_s)
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"ClosedLoop.think_s must be a number >= 0 (seconds), got {self.think_s!r}")
