"""Build the SimPy world of a scenario, run it, return the records."""

from __future__ import annotations

import gc
from array import array
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from sim.engine.autoscaler import Autoscaler, PoolScaler, check_cold_start, cold_start_s
from sim.engine.disagg import Handoff, TransferPath
from sim.engine.dp_group import DPGroup
from sim.engine.eligible import drop_failed
from sim.engine.front_end import FrontEnd
from sim.engine.inputs import failure_schedule, scenario_workload
from sim.engine.ledger import Ledger
from sim.engine.policies import make_policy
from sim.engine.prefix_keys import PrefixKeys
from sim.engine.replica import Replica
from sim.engine.request import DECODING, Request, new_request
from sim.engine.result import ReplicaStats, SimResult
from sim.engine.routers import LeastOutstanding, make_router
from sim.engine.wake import URGENT, Environment, WakeQueue, wake, wake_q
from sim.errors import ScenarioError
from sim.perf.pool_model import PoolModel, build_pool_models
from sim.perf.speculative import pool_speculation
from sim.records import TIMESERIES_COLUMNS, latency_columns
from sim.rng import stream
from sim.scenario.spec import Scenario
from sim.workload.closed_loop import ClosedLoop
from sim.workload.generate import Workload

__all__ = ["Fleet", "simulate", "rank_names"]

_STATUS = np.array(["ok", "rejected", "error", "timeout", "cancelled"], dtype=object)


def rank_names(pool) -> list[str]:
    """The engine ranks of a pool in index order: ``<pool>/<i>`` per replica, or with
    data_parallel > 1 ``<pool>/<i>.dp<r>`` per rank (each its own scheduler and KV cache). An
    autoscaled pool has ``autoscale.max_replicas`` of them (the first ``replicas`` active at 0)."""
    if pool.data_parallel == 1:
        return [f"{pool.name}/{j}" for j in range(pool.max_replicas)]
    return [f"{pool.name}/{j}.dp{r}" for j in range(pool.replicas) for r in range(pool.data_parallel)]


class Fleet:
    """The pools, the router and the arrival process of one run."""

    __slots__ = {
        "scenario": "object",
        "workload": "object",
        "progress": "object",
        "env": "object",
        "wq": "WakeQueue",
        "window": "object",
        "router": "object",
        "_lo": "LeastOutstanding",
        "_arrival_cols": "object",
        "_arr_t": "const double[:]",
        "_arr_cls": "const short[:]",
        "_arr_prompt": "const int[:]",
        "_arr_out": "const int[:]",
        "_arr_n": "long long",
        "_arr_every": "long long",
        "_on_arrive": "object",
        "handoff": "object",
        "autoscaler": "object",
        "closed_loop": "object",
        "exact_steps": "bint",
        "tick_s": "double",
        "class_names": "list",
        "_priority": "list",
        "replicas": "list",
        "eligible": "list",
        "pools": "list",
        "front_ends": "list",
        "groups": "list",
        "num_classes": "long long",
        "_next_rid": "long long",
        "_sent": "long long",
        "ledger": "Ledger",
        "keys": "PrefixKeys",
    }

    def __init__(
        self,
        scenario: Scenario,
        workload: Workload,
        *,
        failures: Sequence[tuple[str, float]] = (),
        exact_steps: bool = False,
        progress: Callable[[int, int], None] | None = None,
        closed_loop: ClosedLoop | None = None,
        api_server: bool = True,
        pools: list[PoolModel] | None = None,
    ) -> None:
        self.scenario = scenario
        self.closed_loop: Any = closed_loop  # a ClosedLoop, or None: requests arrive at their arrival_s
        self.workload = workload
        self.exact_steps = exact_steps
        self.progress = progress
        self.env = Environment()
        self.wq: WakeQueue = self.env.wq  # its wake-up queue and clock (sim.engine.wake): the arrival loop reads them
        tr = scenario.traffic
        self.window = (float(tr.warmup_s), float(tr.duration_s - tr.cooldown_s))
        self.tick_s = scenario.timeseries_interval_s
        self.class_names = list(workload.class_names)
        self.num_classes = len(self.class_names)
        self._priority = [c.priority for c in tr.classes]
        self.ledger = Ledger(len(workload), self.env.event())
        self.keys = PrefixKeys(workload)
        self.replicas: list[Replica] = []
        # Any, not Handoff | None: it exists exactly when some pool has a prefill or decode role,
        # which the code below relies on and mypy cannot see
        self.handoff: Any = None  # sim.engine.disagg.Handoff of a disaggregated fleet
        self.autoscaler: Autoscaler | None = None  # sim.engine.autoscaler.Autoscaler when some pool autoscales
        self.pools: list[PoolModel] = []  # per pool (fleet order) what its replicas run on
        self.front_ends: list[FrontEnd | None] = []  # per replica: its API server (None: not simulated)
        self.groups: list[DPGroup] = []  # the lock-step groups of data-parallel MoE replicas
        self._build(api_server, pools)
        for replica_name, at_s in failures:
            self.fail_replica_at(replica_name, at_s)

    def _build(self, api_server: bool, pools: list[PoolModel] | None) -> None:
        """The pools' replicas, with an API server in front of each unless ``api_server`` is False;
        ``pools``: the scenario's ``build_pool_models`` where the caller already built them."""
        sc = self.scenario
        catalog = sc.load_catalog()
        self.pools = build_pool_models(sc) if pools is None else pools
        by_class: dict[str, list[Replica]] = {c: [] for c in self.class_names}
        decode_by_class: dict[str, list[Replica]] = {c: [] for c in self.class_names}
        disagg = sc.kv_transfer is not None
        if disagg:  # prefill replicas report to the hand-off, which passes requests on to decode replicas
            self.handoff = Handoff(
                self.env,
                self.ledger,
                self.replicas,
                [decode_by_class[c] for c in self.class_names],
                [by_class[c] for c in self.class_names],
                None,
                None,
                self.workload.packed("output_tokens"),
                {},
                self.class_names,
            )
        for pool, pm in zip(sc.fleet, self.pools):
            perf = pm.perf
            spec = pool_speculation(
                pool, catalog, pm.gpu, pm.model, pm.quant, perf, self.class_names, sc.traffic.classes
            )
            for j, name in enumerate(rank_names(pool)):
                stats = ReplicaStats(
                    pool=pool.name,
                    name=name,
                    gpu=pool.gpu,
                    tp=pool.tensor_parallel,
                    kv_blocks_total=pm.kv_blocks,
                    peak_flops=perf.peak_flops,
                    hbm_bw_bytes_s=perf.hbm_bw_bytes_s,
                )
                rep = Replica(
                    self.env,
                    len(self.replicas),
                    name,
                    pool,
                    perf,
                    pm.kv_blocks,
                    make_policy(pool.policy.name, pool.policy.params),
                    stats,
                    self.handoff if pool.role == "prefill" else self.ledger,
                    self.keys,
                    num_classes=self.num_classes,
                    window=self.window,
                    tick_s=self.tick_s,
                    max_model_len=pm.max_model_len,
                    exact_steps=self.exact_steps,
                    spec=spec,
                )
                self.replicas.append(rep)
                cpu = pm.cpu  # the API-server process in front of the replica (sim.engine.front_end)
                has_fe = (
                    api_server
                    and pool.role != "decode"
                    and (cpu.fe_request_s > 0 or cpu.fe_prompt_tok_s > 0 or cpu.fe_token_s > 0)
                )
                fe = (
                    FrontEnd(
                        cpu.fe_request_s,
                        cpu.fe_prompt_tok_s,
                        cpu.fe_token_s,
                        self.window,
                        pool.engine.api_server_count,  # vLLM --api-server-count
                        cpu.first_tokens_last,  # where a step's first tokens come in its outputs
                    )
                    if has_fe
                    else None
                )
                self.front_ends.append(fe)
                rep.fe = fe  # the replica hands it each step's new tokens to stream
                if pool.autoscale is not None and j >= pool.replicas:
                    continue  # inactive until the autoscaler adds it
                for cname in pool.classes or self.class_names:
                    (decode_by_class if pool.role == "decode" else by_class)[cname].append(rep)
            if pool.data_parallel > 1 and pm.model.moe_layers > 0:
                # the ranks of each replica step together through the MoE layers (sim.engine.dp_group);
                # an idle rank runs vLLM's dummy batch: a one-token decode forward
                dp, ranks = pool.data_parallel, self.replicas[-len(rank_names(pool)) :]
                dummy_s = perf.step_time_s(0, 0.0, 1, 1)
                for j in range(0, len(ranks), dp):
                    self.groups.append(DPGroup(ranks[j : j + dp], dummy_s))
        self.eligible = [by_class[c] for c in self.class_names]
        self.router = make_router(sc.router.name, sc.router.params, stream(sc.seed, "routing"), self.keys)
        self._lo: LeastOutstanding | None = None  # set when the arrivals start (_arrivals)
        if hasattr(self.router, "track"):
            for reps in self.eligible:
                self.router.track(reps)
        if disagg:
            self._build_handoff(catalog)
        self._build_autoscaler()

    def _build_autoscaler(self) -> None:
        """A ``PoolScaler`` per autoscaled pool, over its replicas and its classes' eligible lists."""
        sc, scalers, first = self.scenario, [], 0
        for i, (pool, pm) in enumerate(zip(sc.fleet, self.pools)):
            n = len(rank_names(pool))
            if pool.autoscale is not None:
                cold_s = cold_start_s(pool.autoscale.cold_start, pm.memory.weight_bytes_per_gpu)
                check_cold_start(sc, i, cold_s)
                lists = [self.eligible[self.class_names.index(c)] for c in pool.classes or self.class_names]
                scalers.append(PoolScaler(self.env, pool, self.replicas[first : first + n], lists, self.router, cold_s))
            first += n
        if scalers:
            self.autoscaler = Autoscaler(self.env, scalers)

    def _build_handoff(self, catalog) -> None:
        """The decode router (its own stream, ``"decode-routing"``) and the transfer cost of
        every (prefill pool, decode pool) pair."""
        sc, handoff = self.scenario, self.handoff
        assert sc.kv_transfer is not None  # _build calls this for a disaggregated fleet only
        handoff.router = make_router(sc.router.name, sc.router.params, stream(sc.seed, "decode-routing"), self.keys)
        handoff.prefill_router = self.router
        if hasattr(handoff.router, "track"):
            for reps in handoff.eligible:
                handoff.router.track(reps)
        link = catalog.link(sc.kv_transfer.link)
        for p, pm in zip(sc.fleet, self.pools):
            for d in sc.fleet:
                if p.role == "prefill" and d.role == "decode":
                    handoff.paths[p.name, d.name] = TransferPath(
                        pm.model, pm.quant, p.tensor_parallel, d.tensor_parallel, link, sc.kv_transfer.overlap
                    )

    def fail_replica_at(self, replica_name: str, at_s: float) -> None:
        """At ``at_s`` the replica disappears: the router stops choosing it and
        its waiting and running requests are retried from scratch on the other
        eligible replicas (latency still counts from their first arrival)."""
        ranks = [r for r in self.replicas if r.name == replica_name or r.name.startswith(replica_name + ".dp")]
        if not ranks:
            raise ScenarioError(
                f"replica-failure names unknown replica '{replica_name}'; "
                f"replicas: {', '.join(sorted(r.name for r in self.replicas))}"
            )
        self.env.process(self._fail(ranks, float(at_s)))  # a data-parallel replica fails whole: all its ranks

    def _fail(self, ranks: list, at_s: float):
        yield self.env.timeout(at_s)
        drop_failed(self.eligible, ranks, self.class_names)
        if self.handoff is not None:
            self.handoff.drop(ranks)
        for rep in ranks:
            if rep.pool.role == "decode":  # the client retries through the proxy: prefill again, then decode
                for req in rep.fail():
                    self.handoff.restart(req)
                continue
            for req in rep.fail():
                new = self.router.choose(self.eligible[req.cls], req.rid, None, self.env.now)
                self.ledger.replica_of[req.rid] = new.index
                new.enqueue(req)

    # -- processes ----------------------------------------------------------------
    def _arrivals(self) -> None:
        """Start the arrival process: one ``Wake`` per distinct arrival time (a
        callback, not a SimPy process: it runs once per request); a closed-loop client's
        sends instead (``_closed_loop_start``); conversations whose turns a turn's end releases,
        ``_released_start``."""
        if self.closed_loop is not None:
            self._closed_loop_start()
            return
        if self.workload.after_rid is not None:
            self._released_start()
            return
        wl = self.workload
        n = len(wl)
        self._arr_n, self._arr_every = n, max(1, n // 200)  # requests; progress every this many
        # the columns _arrive reads, in the workload's dtypes (Workload: float64, int16, int32, int32;
        # no copy unless a column has another): compiled, C arrays indexed without a Python number
        # per request; a disaggregated fleet's arrivals go to prefill replicas, which generate one token
        self._arr_t = _column(wl.arrival_s, np.float64)
        self._arr_cls = _column(wl.class_idx, np.int16)
        self._arr_prompt = _column(wl.prompt_tokens, np.int32)
        self._arr_out = _column(np.ones(n, dtype=np.int32) if self.handoff is not None else wl.output_tokens, np.int32)
        # the least-outstanding router, called directly by _arrive (compiled, a C call; it ignores the
        # prefix key, so none is computed for it); None: another router. Read from ``router`` here, at
        # the start of the run, not when the fleet is built: a caller may replace the router meanwhile
        self._lo = self.router if type(self.router) is LeastOutstanding else None
        self._next_rid = 0
        self._on_arrive: Any = self._arrive  # bound once (Fleet._drop_cycles lets go of it)
        wake(self.env, 0.0, self._on_arrive, URGENT)

    def _arrive(self, ev) -> None:
        """Route every request arriving now, then wait for the next arrival time."""
        wq = self.wq
        now = wq.now
        times, classes, prompts, outputs = self._arr_t, self._arr_cls, self._arr_prompt, self._arr_out
        n, every = self._arr_n, self._arr_every
        prio, eligible, ledger, keys = self._priority, self.eligible, self.ledger, self.keys
        rid = self._next_rid
        while rid < n:
            t = times[rid]
            if t > now:
                self._next_rid = rid
                wake_q(wq, t - now, self._on_arrive)
                return
            cls = classes[rid]
            req = new_request(rid, cls, prompts[rid], outputs[rid], t, prio[cls], rid, None)
            if self._lo is not None:
                rep = self._lo.choose(eligible[cls], rid, None, now)
            else:
                rep = self.router.choose(eligible[cls], rid, keys.first_key(rid), now)
            ledger.arrive(rid, rep.index)
            self._admit(rep, req, now)
            if self.progress is not None and rid % every == 0:
                self.progress(rid, n)
            rid += 1
        self._next_rid = n
        ledger.arrivals_over()

    def _admit(self, rep: Replica, req: Request, now: float) -> None:
        """Hand a routed request to its replica's API server: straight into the engine when the
        front end is free, else after the wait behind other requests' front-end work
        (sim.engine.front_end)."""
        fe = self.front_ends[rep.index]
        if fe is not None:
            rep.stream_to(now)  # the tokens its replica streamed by now come first (Replica.stream_to)
            wait = fe.admit(now, req.prompt)
        else:
            wait = 0.0
        if wait > 0.0:
            # routed here: outstanding at this replica from now on, so routers and the autoscaler
            # see the requests queued in its front end (Fleet.enter hands the count to enqueue)
            rep.outstanding += 1
            rep._outstanding_changed()
            wake(self.env, wait, _Enter(self, rep, req))
        else:
            rep.enqueue(req)

    def _sent_cols(self, sent_s: array) -> tuple:
        """The columns a client-driven run (a closed loop, released conversation turns) sends from:
        the send times ``sent_s`` (written as requests are sent), which replace the workload's
        ``arrival_s`` (in a copy; the caller's workload is not changed), its class, prompt and output
        columns, the count, the progress stride and each request's API-server admission work
        (``_seen_end``; Fleet._request_table adds it)."""
        wl = self.workload = replace(self.workload, arrival_s=np.frombuffer(sent_s, dtype=np.float64))
        n = len(wl)
        outputs = memoryview(array("q", [1]) * n) if self.handoff is not None else wl.packed("output_tokens")
        return (
            memoryview(sent_s),
            wl.packed("class_idx"),
            wl.packed("prompt_tokens"),
            outputs,
            n,
            max(1, n // 200),
            array("d", [0.0]) * n,
        )

    def _closed_loop_start(self) -> None:
        """``closed_loop.clients`` requests at 0, then the next one (workload order) ``think_s``
        after each request leaves (sim.workload.closed_loop). The send times are the run's outcome:
        they replace the workload's ``arrival_s`` (a copy; the caller's workload is not changed)."""
        wl = self.workload
        n = len(wl)
        sent_s = array("d", [np.nan]) * n  # each request's send time, written when it is sent
        self._arrival_cols = self._sent_cols(sent_s)
        self._next_rid = 0
        self.ledger.on_leave = self._closed_loop_left
        if n == 0:
            self.ledger.arrivals_over()
            return
        wake(self.env, 0.0, self._closed_loop_first, URGENT)

    def _closed_loop_first(self, ev) -> None:
        for _ in range(self.closed_loop.clients):
            self._send_next()

    def _closed_loop_left(self, rid) -> None:
        """A request left: its client sends the next one after its think time, counted from when
        the client saw it end (``_seen_end``)."""
        wake(self.env, self._seen_end(rid, float(self.closed_loop.think_s)), self._closed_loop_next)

    def _seen_end(self, rid, think_s: float) -> float:
        """The delay from now (request ``rid`` leaves the engine) to ``think_s`` after its client
        saw it end: after the time outside the engine that ``_request_table`` adds to the records (a
        uniform shift of the request's schedule, not simulated as a delay): its API-server admission
        work (recorded when it was sent) and ``t_request_s``."""
        cols: Any = self._arrival_cols
        delay_s = think_s + cols[6][rid]
        seen = self.ledger.finish_s[rid] - self.env.now  # its last token's wait for the API server
        if seen > 0.0:
            delay_s += seen
        i = self.ledger.replica_of[rid]
        if i >= 0:
            delay_s += self.replicas[i].perf.coeffs.t_request_s
        return delay_s

    def _closed_loop_next(self, ev) -> None:
        self._send_next()

    def _send_next(self) -> None:
        """Send the workload's next unsent request now (nothing when all are sent)."""
        rid = self._next_rid
        if rid >= self._arrival_cols[4]:
            return
        self._send(rid, self.env.now)
        self._next_rid = rid + 1
        if rid + 1 == self._arrival_cols[4]:
            self.ledger.arrivals_over()

    def _send(self, rid: int, t: float) -> None:
        """Send request ``rid`` now, stamped as arriving at ``t`` (now, or its own arrival time
        that the wake-up reached to within rounding); its API-server admission work is kept for
        ``_seen_end``."""
        times, classes, prompts, outputs, n, every, admission_s = self._arrival_cols[:7]
        now = self.env.now
        times[rid] = t
        cls = classes[rid]
        req = Request(rid, cls, prompts[rid], outputs[rid], t, self._priority[cls], rid, None)
        rep = self.router.choose(self.eligible[cls], rid, self.keys.first_key(rid), now)
        self.ledger.arrive(rid, rep.index)
        fe = self.front_ends[rep.index]
        if fe is not None:
            admission_s[rid] = fe.admission_s(req.prompt)
        self._admit(rep, req, now)
        if self.progress is not None and rid % every == 0:
            self.progress(rid, n)

    def _released_start(self) -> None:
        """Conversations with ``gap_from: completion`` (sim.workload.session_spec): a request with
        ``after_rid`` -1 is sent at its ``arrival_s``; one with ``after_rid`` = r is sent ``think_s``
        after its client saw r end (``_seen_end``: the closed-loop client's rule, one turn at a
        time), and its send time replaces its placeholder ``arrival_s`` (in a copy, as a closed
        loop's). A turn whose previous turn never ends in the run is never sent (its record stays
        without an arrival time)."""
        wl = self.workload
        n = len(wl)
        after = wl.after_rid
        assert after is not None and wl.think_s is not None  # _arrivals' condition; they go together
        released = after >= 0
        times = np.array(wl.arrival_s, dtype=np.float64)
        times[released] = np.nan  # written when sent
        sent_s = array("d", times.tobytes())
        nxt = np.full(n, -1, dtype=np.int64)
        nxt[after[released]] = np.flatnonzero(released)
        self._arrival_cols = self._sent_cols(sent_s) + (
            memoryview(array("q", nxt.tobytes())),  # the request each one's end releases, -1: none
            wl.packed("think_s"),
            memoryview(array("q", np.flatnonzero(~released).astype(np.int64).tobytes())),  # sent at arrival_s, in order
        )
        self._next_rid = 0  # the next of those to send
        self._sent = 0
        self.ledger.on_leave = self._released_left
        self._on_arrive = self._released_arrive
        if n == 0:
            self.ledger.arrivals_over()
            return
        wake(self.env, 0.0, self._on_arrive, URGENT)

    def _released_arrive(self, ev) -> None:
        """Send every request of its own time due now, then wait for the next one's time."""
        env = self.env
        now = env.now
        cols: Any = self._arrival_cols
        times, opens = cols[0], cols[9]
        i = self._next_rid
        while i < len(opens):
            rid = opens[i]
            t = times[rid]
            if t > now:
                self._next_rid = i
                wake(env, t - now, self._on_arrive)
                return
            self._send(rid, t)
            self._count_sent()
            i += 1
        self._next_rid = i

    def _released_left(self, rid) -> None:
        """A request left: the turn its end releases (if any) is sent after its think time."""
        cols: Any = self._arrival_cols
        nxt = cols[7][rid]
        if nxt >= 0:
            wake(self.env, self._seen_end(rid, cols[8][nxt]), _Release(self, nxt))

    def release(self, rid: int) -> None:
        """Send the released request ``rid`` now."""
        self._send(rid, self.env.now)
        self._count_sent()

    def _count_sent(self) -> None:
        self._sent += 1
        if self._sent == self._arrival_cols[4]:
            self.ledger.arrivals_over()

    def enter(self, rep: Replica, req: Request) -> None:
        """A request whose API-server work is done reaches its replica's engine (another
        eligible replica, chosen again, if its own failed in the meantime). It has counted as
        outstanding at its replica since ``_admit``; ``enqueue`` counts it from here on (a failed
        replica's count was reset by ``Replica.fail``)."""
        if rep.failed:
            rep = self.router.choose(self.eligible[req.cls], req.rid, None, self.env.now)
            self.ledger.replica_of[req.rid] = rep.index
        else:
            rep.outstanding -= 1
            rep._outstanding_changed()
        rep.enqueue(req)

    def _deadline(self, end_s: float):
        yield self.env.timeout(end_s)
        if not self.ledger.done.triggered:
            self.ledger.done.succeed()

    def run(self) -> SimResult:
        tr = self.scenario.traffic
        self._arrivals()
        self.env.process(self._deadline(tr.duration_s + self.scenario.sim.drain_s))
        # The events make no garbage cycles (a replica's pending Wake refers back to it only
        # until the next wake-up replaces it; _drop_cycles breaks what is left at the end), so
        # the cyclic collector only costs time here: off while the events run.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            self.env.run(until=self.ledger.done)
        finally:
            if gc_was_on:
                gc.enable()
        end_s = self.env.now
        if self.progress is not None:
            self.progress(len(self.workload), len(self.workload))
        result = self._result(end_s)
        self._drop_cycles()
        return result

    def _drop_cycles(self) -> None:
        """Break the reference cycles a finished run leaves, so that reference counting frees the
        fleet as soon as the caller drops it and no full garbage collection is needed: the events
        still pending (the deadline, autoscaler and failure processes wait on events whose callbacks
        resume them; a replica's pending Wake and its bound step-end callbacks call back into it), and a disaggregated fleet's
        hand-off, which holds the replicas whose ledger it is; a closed-loop client's callback on the ledger."""
        env = self.env
        for entry in env._queue:
            entry[3].callbacks = None
        env._queue.clear()
        env.wakes.clear()
        for rep in self.replicas:
            rep._ev = rep._on_decode_end = rep._on_mixed_end = None
        for group in self.groups:  # ranks -> group -> ranks
            group.clear()
        self.ledger.on_leave = None  # a closed-loop client's bound method (fleet -> ledger -> fleet)
        self._on_arrive = None  # the arrival callback, bound once (fleet -> bound method -> fleet)
        if self.handoff is not None:
            self.handoff.replicas = []
            self.handoff.eligible = []
            self.handoff.prefill_eligible = []
            self.handoff.router = self.handoff.prefill_router = None

    def _result(self, end_s: float) -> SimResult:
        wl, ledger = self.workload, self.ledger
        for rep in self.replicas:  # requests cut off by the drain limit
            rep.settle(end_s)
            if rep.ledger is not ledger:  # a prefill replica: the client saw none of its tokens
                rep.t = max(rep.t, end_s)
                rep._sample()
                continue
            for req in list(rep.running) + list(rep.waiting):
                g = rep.dec.computed_of(req) - req.c_join + req.g_join if req.state == DECODING else req.generated
                ledger.first_token[req.rid] = req.first_token_s
                ledger.out_tokens[req.rid] = g
                ledger.preempt[req.rid] = req.preemptions
            rep.t = max(rep.t, end_s)
            rep._sample()
        for rep, fe in zip(self.replicas, self.front_ends):
            if fe is not None:
                rep.stats.front_end_busy_s = fe.busy_per_server_s()  # per API server: utilization = this / window
        requests = self._request_table()
        ts = self._timeseries()
        itl = sum((rep.itl for rep in self.replicas), np.zeros_like(self.replicas[0].itl))
        scaled = self.autoscaler.record(float(end_s), self.window) if self.autoscaler is not None else None
        return SimResult(
            requests=requests,
            timeseries=ts,
            class_names=self.class_names,
            itl_hist=itl,
            window=self.window,
            end_s=float(end_s),
            replicas=[rep.final_stats() for rep in self.replicas],
            notes=list(wl.notes),
            autoscale=scaled,
            pools=list(self.pools),
        )

    def _timeseries(self) -> pd.DataFrame:
        """The replicas' time-series rows (``TIMESERIES_COLUMNS``), built column by column (a
        frame built from row tuples converts every column through Python objects)."""
        cols: list[list] = [[], [], [], [], []]  # t_s, running, waiting, kv_usage, batch_tokens
        names: list = []
        for rep in self.replicas:
            rows = rep.ts_rows
            if rows:
                for col, values in zip(cols, zip(*rows)):
                    col += values
                names += [rep.name] * len(rows)
        t_s, running, waiting, kv_usage, batch_tokens = cols
        return pd.DataFrame(
            {
                "t_s": np.array(t_s, dtype=np.float64),
                "replica": pd.array(names, dtype=TIMESERIES_COLUMNS["replica"]),
                "running": np.array(running, dtype=np.int64),
                "waiting": np.array(waiting, dtype=np.int64),
                "kv_usage": np.array(kv_usage, dtype=np.float64),
                "batch_tokens": np.array(batch_tokens, dtype=np.int64),
            },
            columns=list(TIMESERIES_COLUMNS),
        )

    def _request_table(self) -> pd.DataFrame:
        """The per-request records (``REQUEST_COLUMNS`` + latencies) built with one copy at
        most per column: the ledger's int64 columns and the workload's arrival times are
        used in place (a 10-million-request run holds each column once)."""
        wl, ledger = self.workload, self.ledger
        replica_of = np.frombuffer(ledger.replica_of, dtype=np.int64)
        first_token = np.frombuffer(ledger.first_token, dtype=np.float64)
        finish_s = np.frombuffer(ledger.finish_s, dtype=np.float64)
        # per-request latency outside the engine (PerfCoefficients.t_request_s): shifts TTFT and E2E
        lat = np.array([r.perf.coeffs.t_request_s for r in self.replicas] + [0.0])
        if lat.any():
            first_token = first_token + lat[replica_of]
            finish_s = finish_s + lat[replica_of]
        # and the API server's admission work (sim.engine.front_end: per request + tokenization)
        fe_s = np.array([fe.request_s if fe is not None else 0.0 for fe in self.front_ends] + [0.0])
        tok_s = np.array([fe.prompt_tok_s if fe is not None else 0.0 for fe in self.front_ends] + [0.0])
        if fe_s.any() or tok_s.any():  # the replica a request arrived at: a disaggregated one's prefill replica
            entry = self.handoff.columns()[0] if self.handoff is not None else replica_of
            adm = fe_s[entry] + tok_s[entry] * self.workload.prompt_tokens
            first_token = first_token + adm
            finish_s = finish_s + adm
        output_tokens = np.frombuffer(ledger.out_tokens, dtype=np.int64)
        arrival_s = wl.arrival_s
        cols = {
            "request_id": np.arange(len(wl), dtype=np.int64),
            "class": _strings(self.class_names, wl.class_idx),
            "arrival_s": arrival_s,
            "first_token_s": first_token,
            "finish_s": finish_s,
            "prompt_tokens": wl.prompt_tokens.astype(np.int64),
            "output_tokens": output_tokens,
            "cached_prompt_tokens": np.frombuffer(ledger.cached, dtype=np.int64),
            # a request that never reached a replica (replica_of -1) gets the name ""
            "replica": _strings(
                [r.name for r in self.replicas] + [""], np.where(replica_of < 0, len(self.replicas), replica_of)
            ),
            "preemptions": np.frombuffer(ledger.preempt, dtype=np.int64),
            "status": _strings(list(_STATUS), np.frombuffer(ledger.status, dtype=np.int8)),
        }
        # DISAGG_COLUMNS, in a disaggregated run only: where the prompt ran and the KV-transfer wait
        # (a co-located run's records stay as they were: 9 bytes per request less, 90 MB at 10 million)
        if self.handoff is not None:
            prefill_of, transfer_s = self.handoff.columns()
            cols["prefill_replica"] = _strings(
                [r.name for r in self.replicas] + [""], np.where(prefill_of < 0, len(self.replicas), prefill_of)
            )
            cols["kv_transfer_s"] = transfer_s
        cols.update(latency_columns(arrival_s, first_token, finish_s, output_tokens))
        return pd.DataFrame(cols, copy=False)


class _Enter:
    """Wake-up callback: a request leaves its API server's queue for the engine."""

    __slots__ = {"fleet": "Fleet", "rep": "Replica", "req": "Request"}

    def __init__(self, fleet: Fleet, rep: Replica, req: Request) -> None:
        self.fleet, self.rep, self.req = fleet, rep, req

    def __call__(self, ev) -> None:
        self.fleet.enter(self.rep, self.req)


class _Release:
    """Wake-up callback: a conversation's turn released by its previous turn's end is sent."""

    __slots__ = {"fleet": "Fleet", "rid": "long long"}

    def __init__(self, fleet: Fleet, rid: int) -> None:
        self.fleet, self.rid = fleet, rid

    def __call__(self, ev) -> None:
        self.fleet.release(self.rid)


def _column(values, dtype) -> memoryview:
    """A workload column as a read-only memoryview of ``dtype`` (the column itself when it has it)."""
    arr: Any = np.ascontiguousarray(values, dtype=dtype)
    return memoryview(arr).toreadonly()


def _strings(names: list, codes: np.ndarray) -> pd.Categorical:
    """``names[codes]`` as a categorical column: a code of one or two bytes per row where
    a string column costs ~12 (the records' ``string`` dtype when written, see
    ``write_parquet_atomic``)."""
    return pd.Categorical.from_codes(codes, categories=names)


def simulate(
    scenario: Scenario,
    *,
    exact_steps: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workload: Workload | None = None,
    closed_loop: ClosedLoop | None = None,
    api_server: bool = True,
    pools: list[PoolModel] | None = None,
) -> SimResult:
    """Run ``scenario``; ``workload`` replaces the generated one (validation replays).
    The scenario's ``events:`` apply: surges add arrivals to the generated
    workload (not to a given one), replica failures apply either way.
    ``closed_loop`` sends the workload's requests from a closed-loop client instead of at
    their ``arrival_s`` (sim.workload.closed_loop; the records' ``arrival_s`` are the send times).
    ``api_server=False``: the requests reach the engines without an API-server process in front
    (sim.engine.front_end), as with vLLM's offline ``LLM`` class fed token ids; the engine's own
    per-step CPU work stays. ``pools``: the scenario's ``build_pool_models`` where the caller already
    built them (``fleetcast run`` reads its memory warnings from them first), else built here."""
    if workload is None:
        workload = scenario_workload(scenario)  # generate_workload + surge arrivals
    # The run leaves no reference cycles (Fleet._drop_cycles): the fleet's replicas, events and the
    # workload's unused columns are freed by reference counting when this returns, before the caller
    # summarizes and writes the records (a full collection cost a fifth of a 10,000-request run). The
    # cyclic collector stays off until then: turned on with the fleet alive, its first pass would
    # walk every object the run made.
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        fleet = Fleet(
            scenario,
            workload,
            failures=failure_schedule(scenario),
            exact_steps=exact_steps,
            progress=progress,
            closed_loop=closed_loop,
            api_server=api_server,
            pools=pools,
        )
        result = fleet.run()
        del fleet, workload
    finally:
        if gc_was_on:
            gc.enable()
    return result
