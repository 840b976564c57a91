"""Load with Locust, in-process (``Environment`` + local runner, not the CLI).

Two shapes:

- **open loop** (``mode="open"``): one dispatcher user fires every request at
  its scheduled ``arrival_s`` in its own greenlet; latency counts from that
  intended send time, so a late send (client overload) shows up as latency
  instead of hiding it (no coordinated omission).
- **closed loop** (``mode="closed"``): ``users`` users, each sending its next
  request as soon as its previous one finished (calibration sweeps).

Every request streams ``/v1/completions`` through ``testbed.sse_client`` (one
timestamp per token chunk) and is reported to Locust's stats as a custom
``request`` event. Both loops are bounded in count (the request list) and
time (``time_limit_s``). A ``watchdog`` (server alive?) is polled each second;
when it names a reason, or on Ctrl-C, the run stops. Requests in flight at the
stop are recorded as ``cancelled`` (never dropped); open-loop requests not yet
sent are recorded as ``cancelled`` too.

Importing this module imports Locust, which monkey-patches the standard
library with gevent: import it before starting threads or sockets.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # MonkeyPatchWarning when ssl was imported first
    import gevent
    import gevent.pool
    from locust import User, constant, task
    from locust.env import Environment
    from locust.exception import StopUser

from testbed.prompts import RequestSpec
from testbed.sse_client import StreamResult, completion_payload, stream_completion

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    """Records of one load run (times in seconds from ``t0``)."""

    requests: list[dict]  # one per request: sim.records.REQUEST_COLUMNS
    itl: list[tuple[int, int, float]]  # (request_id, token_index, t_s) per token chunk
    t0: float  # clock() at the run start (time 0)
    duration_s: float
    completed: bool
    reason: str
    errors: dict[str, int] = field(default_factory=dict)  # error message -> count
    send_lag_s: dict = field(default_factory=dict)  # open loop: actual - intended send time (p50/p99/max)
    not_sent: int = 0  # closed loop: requests never issued (time limit / stop)
    locust_stats: dict = field(default_factory=dict)
    abort: BaseException | None = None  # Ctrl-C / SystemExit caught here: the caller re-raises it after saving


class _Controller:
    """Shared state of one run: the request list, results, stop flag."""

    def __init__(self, specs, host, port, model, t0, clock, request_timeout_s, env, journal=None, replica="vllm-0"):
        self.specs, self.host, self.port, self.model = specs, host, port, model
        self.t0, self.clock, self.timeout_s, self.env = t0, clock, request_timeout_s, env
        self.journal, self.replica = journal, replica  # journal(record): called as each request ends
        self.results: dict[int, tuple[RequestSpec, float, StreamResult]] = {}
        self.pool = gevent.pool.Group()
        self.next_idx = 0
        self.done = 0
        self.stopping = False
        self.send_lags: list[float] = []  # open loop: actual - intended send time

    def send(self, spec: RequestSpec) -> None:
        """Send one request (blocks this greenlet until it ends)."""
        res = StreamResult()
        intended = spec.arrival_s if not math.isnan(spec.arrival_s) else self.clock() - self.t0
        self.results[spec.request_id] = (spec, intended, res)
        payload = completion_payload(self.model, spec.prompt_ids.tolist(), spec.output_tokens)
        try:
            stream_completion(self.host, self.port, payload, timeout_s=self.timeout_s, clock=self.clock, result=res)
        finally:
            self.done += 1
        if self.journal is not None and res.status not in ("pending", "cancelled"):
            self.journal(_record(spec, intended, res, self.t0, self.replica))
        if not math.isnan(spec.arrival_s) and not math.isnan(res.sent_t):
            self.send_lags.append(res.sent_t - self.t0 - spec.arrival_s)
        e2e_ms = (res.last_token_t - self.t0 - intended) * 1000 if res.chunk_t else 0.0
        exc = None if res.status == "ok" else RuntimeError(res.error or res.status)
        self.env.events.request.fire(
            request_type="POST",
            name=spec.class_name,
            response_time=e2e_ms,
            response_length=res.output_tokens,
            exception=exc,
            context={"request_id": spec.request_id},
        )

    def dispatch_all(self) -> None:
        """Open loop: fire each request at ``t0 + arrival_s``."""
        for i, spec in enumerate(self.specs):
            if self.stopping:
                return
            delay = self.t0 + spec.arrival_s - self.clock()
            if delay > 0:
                gevent.sleep(delay)
            if self.stopping:
                return
            self.next_idx = i + 1
            self.pool.spawn(self.send, spec)

    def take_next(self) -> RequestSpec | None:
        if self.stopping or self.next_idx >= len(self.specs):
            return None
        spec = self.specs[self.next_idx]
        self.next_idx += 1
        return spec


def _user_classes(ctl: _Controller, mode: str):
    class Dispatcher(User):
        wait_time = constant(0)

        @task
        def dispatch(self):
            ctl.dispatch_all()
            ctl.pool.join()
            raise StopUser()

    class ClosedLoopUser(User):
        wait_time = constant(0)

        @task
        def one_request(self):
            spec = ctl.take_next()
            if spec is None:
                raise StopUser()
            ctl.send(spec)

    return [Dispatcher] if mode == "open" else [ClosedLoopUser]


def _record(spec: RequestSpec, intended: float, res: StreamResult | None, t0: float, replica: str) -> dict:
    status = "cancelled" if res is None or res.status in ("pending", "cancelled") else res.status
    if status == "ok" and res.output_tokens != spec.output_tokens:  # type: ignore[union-attr]  # status "ok" means a result
        status = "error"
        res.error = f"stream ended after {res.output_tokens} of {spec.output_tokens} tokens"  # type: ignore[union-attr]  # as above
    got = res is not None and res.chunk_t
    return {
        "request_id": spec.request_id,
        "class": spec.class_name,
        "arrival_s": intended,
        "first_token_s": res.first_token_t - t0 if got else math.nan,  # type: ignore[union-attr]  # got means a result
        "finish_s": res.last_token_t - t0 if got and status == "ok" else math.nan,  # type: ignore[union-attr]  # as above
        "prompt_tokens": (
            res.prompt_tokens if res is not None and res.prompt_tokens is not None else spec.prompt_tokens
        ),
        "output_tokens": res.output_tokens if res is not None else 0,
        "cached_prompt_tokens": res.cached_prompt_tokens if res is not None else 0,
        "replica": replica,
        "preemptions": 0,  # not visible per request from the client; see server_metrics
        "status": status,
    }


def run_load(
    specs: list[RequestSpec],
    host: str,
    port: int,
    *,
    mode: str = "open",
    users: int = 1,
    model: str = "model",
    time_limit_s: float | None = None,
    request_timeout_s: float = 600.0,
    watchdog: Callable[[], str | None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    replica: str = "vllm-0",
    clock: Callable[[], float] = time.perf_counter,
    t0: float | None = None,
    journal: Callable[[dict], None] | None = None,
) -> LoadResult:
    """Drive ``specs`` against the server at ``host:port``; see the module doc. ``journal``
    receives each request's record as it ends (ok or error), so a hard kill of this
    process loses only the requests in flight."""
    if mode not in ("open", "closed"):
        raise ValueError(f"mode must be 'open' or 'closed', not {mode!r}")
    if time_limit_s is None:
        last = max((s.arrival_s for s in specs if not math.isnan(s.arrival_s)), default=0.0)
        time_limit_s = last + request_timeout_s + 5.0
    env = Environment(user_classes=[])
    t0 = clock() if t0 is None else t0
    ctl = _Controller(specs, host, port, model, t0, clock, request_timeout_s, env, journal, replica)
    env.user_classes = _user_classes(ctl, mode)
    runner = env.create_local_runner()
    n_users = 1 if mode == "open" else max(1, min(int(users), len(specs)))
    runner.start(n_users, spawn_rate=100)  # all users within <= 1 s; higher rates make Locust warn
    abort: BaseException | None
    completed, reason, abort = False, "", None
    next_check = t0 + 1.0
    try:
        while True:
            gevent.sleep(0.1)
            if progress is not None:
                progress(ctl.done, len(specs))
            if ctl.done >= len(specs):
                completed, reason = True, "all requests finished"
                break
            if clock() - t0 > time_limit_s:
                reason = f"time limit of {time_limit_s:g} s reached"
                break
            if watchdog is not None and clock() >= next_check:
                next_check = clock() + 1.0
                why = watchdog()
                if why:
                    reason = why
                    break
    except KeyboardInterrupt as exc:
        reason, abort = "interrupted (Ctrl-C)", exc
    except BaseException as exc:  # SIGTERM's SystemExit, a bug: keep the records, then re-raise
        reason, abort = f"aborted by {type(exc).__name__}: {exc}", exc
    finally:
        ctl.stopping = True
        ctl.pool.kill(block=True, timeout=5)
        runner.quit()
    duration = clock() - t0
    result = _collect(ctl, specs, mode, t0, duration, completed, reason, replica, env)
    result.abort = abort
    return result


def _collect(ctl, specs, mode, t0, duration, completed, reason, replica, env) -> LoadResult:
    itl: list[tuple[int, int, float]]  # (request_id, cumulative output tokens, seconds since t0)
    errors: dict[str, int]  # error text -> count
    rows, itl, errors, not_sent = [], [], {}, 0
    for spec in specs:
        entry = ctl.results.get(spec.request_id)
        if entry is None:
            if mode == "closed":
                not_sent += 1  # never issued: not part of the measured run
                continue
            rows.append(_record(spec, spec.arrival_s, None, t0, replica))
            continue
        _spec, intended, res = entry
        row = _record(spec, intended, res, t0, replica)
        rows.append(row)
        if res.error and row["status"] != "ok":
            errors[res.error] = errors.get(res.error, 0) + 1
        itl.extend((spec.request_id, k, t - t0) for k, t in zip(res.chunk_tokens, res.chunk_t))
    if completed and any(r["status"] != "ok" for r in rows):
        reason = "all requests finished (some with errors)"
    total = env.stats.total
    stats = {
        "num_requests": total.num_requests,
        "num_failures": total.num_failures,
        "avg_response_time_ms": total.avg_response_time,
    }
    lags = sorted(ctl.send_lags)
    lag = {"p50": lags[len(lags) // 2], "p99": lags[int(0.99 * (len(lags) - 1))], "max": lags[-1]} if lags else {}
    return LoadResult(rows, itl, t0, duration, completed, reason, errors, lag, not_sent, stats)
