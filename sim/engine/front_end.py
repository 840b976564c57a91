"""A vLLM server's API-server process as a service centre in front of its engine.

One API-server process (vLLM's default ``--api-server-count 1``) does each request's
front-end work one at a time (an asyncio loop on one core): ``request_s`` when the request
arrives (HTTP, chat template, admission, hand-off to the engine core) plus ``prompt_tok_s``
per prompt token (tokenization), and ``token_s`` for each token it streams back (detokenization, output processing, the SSE chunk);
``sim.perf.cpu_side`` says where the numbers come from. ``FrontEnd`` books that work FIFO
(Lindley's recursion, a single deterministic-service server): a request's work starts at
``max(arrival, when the previous request's work ends)`` and lasts
``request_s + prompt_tok_s · prompt + token_s · output``; the request reaches the engine once
its admission part (``request_s + prompt_tok_s · prompt``) is done. So the front end limits a
server to ``1 / (request_s + prompt_tok_s · prompt + token_s · output)`` requests per second whatever the GPU does, and queues requests when a burst exceeds that.

Booking a request's streaming work at its admission (rather than as its tokens appear)
keeps the total work and so the throughput limit exact, and moves the streaming work of
earlier requests ahead of the admission of later ones: an upper bound on the admission wait
inside a burst. The admission part every request pays is not simulated as a delay: the fleet adds it to TTFT
and E2E after the run (``Fleet._request_table``, ``admission_s``), like
``PerfCoefficients.t_request_s``; only the *wait* behind other requests delays entry. For the
constant ``request_s`` that is exact (a uniform shift of the schedule); the tokenization part
differs between prompts, so a long prompt reaches the simulated engine earlier, relative to
short ones, than it would the real one (by ``prompt_tok_s · prompt``: 0.3 s for a 120k-token
prompt at the measured 2.65 µs per token).
"""

from __future__ import annotations

__all__ = ["FrontEnd"]


class FrontEnd:
    """One server's API-server process: FIFO front-end work and its busy time in a window."""

    __slots__ = {
        "request_s": "double",
        "prompt_tok_s": "double",
        "token_s": "double",
        "free_at_s": "double",
        "busy_s": "double",
        "w0": "double",
        "w1": "double",
    }

    def __init__(self, request_s: float, prompt_tok_s: float, token_s: float, window: tuple[float, float]) -> None:
        if not (request_s >= 0.0 and prompt_tok_s >= 0.0 and token_s >= 0.0):
            raise ValueError(f"front-end times must be >= 0 seconds, got {request_s!r}, {prompt_tok_s!r}, {token_s!r}")
        self.request_s = request_s  # seconds of front-end work per request
        self.prompt_tok_s = prompt_tok_s  # seconds of front-end work per prompt token (tokenization)
        self.token_s = token_s  # seconds of front-end work per output token
        self.free_at_s = 0.0  # when the work booked so far ends
        self.busy_s = 0.0  # booked work inside the measured window
        self.w0, self.w1 = window  # the measured window (simulated seconds)

    def admission_s(self, prompt_tokens: int) -> float:
        """Front-end seconds before a request of ``prompt_tokens`` reaches the engine."""
        return self.request_s + self.prompt_tok_s * prompt_tokens

    def admit(self, now_s: float, prompt_tokens: int, output_tokens: int) -> float:
        """Book one request arriving at ``now_s``; returns how long it waits behind earlier
        requests' front-end work before its own starts (0 when the front end is free)."""
        start = self.free_at_s if self.free_at_s > now_s else now_s
        end = start + self.request_s + self.prompt_tok_s * prompt_tokens + self.token_s * output_tokens
        self.free_at_s = end
        lo = start if start > self.w0 else self.w0
        hi = end if end < self.w1 else self.w1
        if hi > lo:
            self.busy_s += hi - lo
        return start - now_s

    def utilization(self) -> float:
        """Share of the measured window the front end was busy (0..1)."""
        span = self.w1 - self.w0
        return self.busy_s / span if span > 0 else 0.0
