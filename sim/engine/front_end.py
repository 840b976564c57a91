"""A vLLM server's API-server process as a service centre in front of its engine.

One API-server process (vLLM's default ``--api-server-count 1``) does the server's front-end
work on one asyncio loop (one core): ``request_s`` when a request arrives (HTTP, chat template,
admission, hand-off to the engine core) plus ``prompt_tok_s`` per prompt token (tokenization),
and ``token_s`` for each token it streams back (detokenization, output processing, the SSE
chunk); ``sim.perf.cpu_side`` says where the numbers come from. ``FrontEnd`` books that work
FIFO (Lindley's recursion, a single server) *when it arrives*:

- a request's admission work arrives with the request: it starts at ``max(arrival, when the
  work booked before it ends)``, and the request reaches the engine once it is done;
- the streaming work arrives as the engine produces tokens: vLLM's API server receives each
  engine step's outputs as one batch when the step ends and processes it in order
  (``vllm/v1/engine/async_llm.py``, ``output_handler``: ``output_processor.process_outputs``
  detokenizes and queues each request's output, ``VLLM_V1_OUTPUT_PROC_CHUNK_SIZE`` = 128 outputs
  at a time with ``await asyncio.sleep(0)`` between chunks; each request's stream task then formats
  and writes its SSE chunk, woken in the batch's order). The replica reports each step's new tokens when it ends, or a
  fast-forwarded decode run's step by step when the run is booked (``stream``); each step's work
  is booked as a batch arriving at the step's end (Lindley's recursion over the steps), so an admission
  that arrives while a batch is processed waits for it (between 128-output chunks vLLM would take
  it: not modelled, exact up to 128 outputs a step per server).
- **when a first token is sent**: ``stream`` returns it. V1's scheduler lists a step's running
  requests before the newly scheduled ones (``vllm/v1/core/sched/scheduler.py``: the running
  requests' ``num_scheduled_tokens`` entries, then the waiting ones'; the outputs follow that
  order; 0.8.0 walks its ``running`` list, new requests appended, the same order), so a new
  request's first token reaches its HTTP stream only after the API server has
  processed every output of its step: ``(decodes + first tokens) · token_s`` after the step ends,
  or after the backlog. V0 (before 0.8) lists prefills first (``vllm/core/scheduler.py``: "Put
  prefills first due to Attention backend ordering assumption"), so there a first token waits
  only for the step's first tokens (``new_last`` False; ``CpuSide.first_tokens_last``). The last
  token of a longer request is sent no earlier than its step's batch starts (``last_start_s``: the
  backlog, which a closed-loop client also waits for); where it lies inside the batch depends on
  how ``token_s`` splits between the output processor (the whole chunk first) and the stream task
  (in order), which was not measured, so that part is left out (a lower bound).

So the front end still limits a server to what one core can do (admission work plus every
streamed token's work; a backlog of either delays the admissions behind it; saturated, the
streaming work of admitted requests waits behind the admissions that arrived before it, as in
the event loop, so admissions get through at ``r = λ / (λ · a + s · r)`` per second for
arrivals ``λ``, admission work ``a`` and streaming work ``s`` a request, slightly above
``1 / (a + s)``, while the work booked grows at ``B = λ a + s r`` seconds a second, so a
request's last token, booked when it was admitted, is sent ``B`` times later again and requests
end, as clients see them, at ``λ / B²`` while the backlog grows; tests/test_cpu_side.py works one
case by hand), but a request's
streaming work is no longer booked ahead of the requests that arrive while it is streaming:
booked at admission (fleetcast before this change), a burst of requests with long outputs
waited ``token_s · output`` each behind its predecessors' whole future streaming (86 ms per
request at 1,024 output tokens), which spread a closed loop's clients out one engine step
apart, as no server does.

The admission part every request pays is not simulated as a delay: the fleet adds it to TTFT
and E2E after the run (``Fleet._request_table``, ``admission_s``), like
``PerfCoefficients.t_request_s``; only the *wait* behind other work delays entry. For the
constant ``request_s`` that is exact (a uniform shift of the schedule); the tokenization part
differs between prompts, so a long prompt reaches the simulated engine earlier, relative to
short ones, than it would the real one (by ``prompt_tok_s · prompt``: 0.3 s for a 120k-token
prompt at the measured 2.65 µs per token). A step's streaming work is booked when the step
ends, so an admission during a step does not see that step's share (at most the step's
tokens' work when the streaming alone exceeds the core; none otherwise).

Several API servers (vLLM ``--api-server-count N``, from 0.9.0, vLLM PR #17546;
``engine.api_server_count``): vLLM's parent process opens one listening socket and hands it to N
API-server processes (``vllm/entrypoints/cli/serve.py`` ``run_multi_api_server``:
``setup_server(args, reuse_port=N > 1)``, then ``APIServerProcessManager`` with that ``sock``);
each runs the whole front end (tokenization, admission, detokenization and streaming) of the
requests whose connections it accepts, and the engine core returns each request's outputs to the
API server that sent it. Which process accepts a connection is the operating system's pick among
those waiting in ``accept``: no round robin in vLLM. fleetcast takes the one whose booked work ends
first (a shared FIFO queue of N servers: Lindley's recursion on the earliest-free server), so the
front end's throughput limit is N times one server's. That is the balanced end of what the kernel
does: a busy process still accepts between its callbacks, and a client's kept-alive connection
keeps its requests on one process; an uneven split only lowers the limit below N times. The
streaming work of a step's tokens is spread evenly over the N servers (each request's output goes
back to the server that admitted it; balanced, as above).
"""

from __future__ import annotations

__all__ = ["FrontEnd"]


class FrontEnd:
    """One server's API-server processes: FIFO front-end work on ``servers`` service centres
    and their busy time in a window."""

    __slots__ = {
        "request_s": "double",
        "prompt_tok_s": "double",
        "token_s": "double",
        "busy_s": "double",
        "w0": "double",
        "w1": "double",
        "servers": "long long",
        "new_last": "bint",
        "last_start_s": "double",
        "_free": "list",
    }

    def __init__(
        self,
        request_s: float,
        prompt_tok_s: float,
        token_s: float,
        window: tuple[float, float],
        servers: int = 1,
        new_last: bool = True,
    ) -> None:
        if not (request_s >= 0.0 and prompt_tok_s >= 0.0 and token_s >= 0.0):
            raise ValueError(f"front-end times must be >= 0 seconds, got {request_s!r}, {prompt_tok_s!r}, {token_s!r}")
        if not (isinstance(servers, int) and servers >= 1):
            raise ValueError(f"a front end has at least 1 API server, got {servers!r}")
        self.request_s = request_s  # seconds of front-end work per request
        self.prompt_tok_s = prompt_tok_s  # seconds of front-end work per prompt token (tokenization)
        self.token_s = token_s  # seconds of front-end work per output token
        self.servers = servers  # API-server processes (vLLM --api-server-count)
        self.new_last = new_last  # a step's first tokens come last in its outputs (V1), else first (V0)
        self.last_start_s = 0.0  # when the processing of the last booked step's batch starts (latest server)
        self._free = [0.0] * servers  # per API server: when its booked work ends
        self.busy_s = 0.0  # booked work inside the measured window, all servers together
        self.w0, self.w1 = window  # the measured window (simulated seconds)

    def admission_s(self, prompt_tokens: int) -> float:
        """Front-end seconds before a request of ``prompt_tokens`` reaches the engine."""
        return self.request_s + self.prompt_tok_s * prompt_tokens

    def admit(self, now_s: float, prompt_tokens: int) -> float:
        """Book one request's admission work, arriving at ``now_s``, on the API server free
        earliest; returns how long it waits behind earlier work before its own starts (0 when a
        server is free)."""
        free = self._free
        k = 0
        if self.servers > 1:
            for j in range(1, self.servers):
                if free[j] < free[k]:
                    k = j
        start = free[k] if free[k] > now_s else now_s
        end = start + self.request_s + self.prompt_tok_s * prompt_tokens
        free[k] = end
        lo = start if start > self.w0 else self.w0
        hi = end if end < self.w1 else self.w1
        if hi > lo:
            self.busy_s += hi - lo
        return start - now_s

    def stream(self, t_s: float, tokens: int, new_tokens: int) -> float:
        """Book the streaming work of one engine step ending at ``t_s`` (called then, or when a
        fast-forwarded decode run books its steps in order), which hands the API servers ``tokens``
        outputs, ``new_tokens`` of them first tokens. The step's outputs arrive as one batch when
        it ends and are processed in order (vLLM's ``output_handler``), spread evenly over the
        servers. Returns when the step's first tokens are sent: after the whole batch where new
        requests' outputs come last (``new_last``, V1), after the new ones alone where they come
        first (V0)."""
        work = self.token_s * tokens
        if self.servers > 1:
            work /= self.servers
        self.last_start_s = t_s
        if work <= 0.0:
            return t_s
        free = self._free
        sent = t_s
        for k in range(self.servers):
            s0 = free[k] if free[k] > t_s else t_s  # Lindley: after the work booked before it
            end = s0 + work
            free[k] = end
            if end - work > self.last_start_s:
                self.last_start_s = end - work
            lo = s0 if s0 > self.w0 else self.w0
            hi = end if end < self.w1 else self.w1
            if hi > lo:  # its busy time inside the window, in proportion to the batch's overlap
                self.busy_s += work * (hi - lo) / (end - s0)
            done = end if self.new_last else end - work + self.token_s * new_tokens / self.servers
            if done > sent:
                sent = done
        return sent

    def utilization(self) -> float:
        """Share of the measured window the API servers were busy, on average over them (0..1)."""
        span = self.w1 - self.w0
        return self.busy_s / (span * self.servers) if span > 0 else 0.0

    def busy_per_server_s(self) -> float:
        """Booked work inside the window per API server (seconds; ``busy_s / servers``)."""
        return self.busy_s / self.servers if self.servers > 1 else self.busy_s
