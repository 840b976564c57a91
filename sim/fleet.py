"""Build the SimPy world of a scenario, run it, return the records."""

from __future__ import annotations

import gc
import math
from array import array
from typing import Callable

import numpy as np
import pandas as pd

from sim.catalog import load_catalog
from sim.errors import FleetcastError, ScenarioError
from sim.perf import PerfModel, plan_memory
from sim.profiles import coefficients_for
from sim.records import REQUEST_COLUMNS, TIMESERIES_COLUMNS, derive_latencies
from sim.replica import Replica
from sim.request import DECODING, Request
from sim.result import ReplicaStats, SimResult
from sim.rng import stream
from sim.routers import make_router
from sim.scenario import Scenario
from sim.traffic import Workload
from sim.wake import URGENT, Environment, wake

__all__ = ["Fleet", "simulate", "build_pool_models"]

OK, REJECTED, TIMEOUT = 0, 1, 3
_STATUS = np.array(["ok", "rejected", "error", "timeout", "cancelled"], dtype=object)
_KEY_MULT = 0x9E3779B97F4A7C1  # spreads (chunk key, block index) into one int key
_MASK64 = (1 << 64) - 1  # keys are unsigned 64-bit ints


def build_pool_models(scenario: Scenario, catalog=None) -> list[tuple]:
    """(gpu, model, quant, perf model, memory plan, KV blocks) per pool; a pool
    whose model does not fit is a ScenarioError naming the pool."""
    catalog = catalog or load_catalog([scenario.base_dir / f for f in scenario.catalog])
    where = str(scenario.path) if scenario.path else "<scenario>"
    out = []
    for i, pool in enumerate(scenario.fleet):
        gpu = catalog.gpu(pool.gpu)
        model = catalog.model(pool.model)
        quant = catalog.quant(pool.quantization.weights, pool.quantization.kv_cache)
        eng = pool.engine
        coeffs = coefficients_for(pool, scenario.base_dir, gpu)
        perf = PerfModel(gpu, model, quant, pool.tensor_parallel, coeffs)
        try:
            mem = plan_memory(gpu, model, quant, pool.tensor_parallel, eng.gpu_memory_utilization,
                              eng.block_size, eng.max_num_batched_tokens)
        except FleetcastError as exc:
            raise ScenarioError(f"{where}, field fleet.{i} (pool '{pool.name}'): {exc}") from None
        # vLLM v1 takes one block out of the pool as its "null block" (BlockPool.null_block, a
        # placeholder for skipped blocks): a server reporting N blocks holds N - 1 (measured: vLLM
        # refused 16 blocks of 128 for max_model_len 2048; with 12 it ran 3 sequences of ~3 blocks)
        blocks = (eng.num_gpu_blocks_override or mem.num_kv_blocks) - 1
        max_len = eng.max_model_len or model.max_position_embeddings
        if blocks * eng.block_size < max_len:
            raise ScenarioError(
                f"{where}, field fleet.{i} (pool '{pool.name}'): the KV cache holds {blocks * eng.block_size:,} "
                f"tokens, less than one sequence of max_model_len {max_len:,} (vLLM refuses to start). Set "
                f"engine.max_model_len to at most {blocks * eng.block_size:,}, or add tensor_parallel / a smaller "
                f"quantization to make room."
            )
        out.append((gpu, model, quant, perf, mem, blocks))
    return out


class Fleet:
    """The pools, the router and the arrival process of one run."""

    def __init__(self, scenario: Scenario, workload: Workload, *, exact_steps: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.scenario = scenario
        self.workload = workload
        self.exact_steps = exact_steps
        self.progress = progress
        self.env = Environment()
        tr = scenario.traffic
        self.window = (float(tr.warmup_s), float(tr.duration_s - tr.cooldown_s))
        self.tick_s = scenario.sim.timeseries_interval_s or max(0.1, tr.duration_s / 1000.0)
        self.class_names = list(workload.class_names)
        self.num_classes = len(self.class_names)
        self._priority = [c.priority for c in tr.classes]
        n = len(workload)
        # per-request outcomes in array.array (a store is several times cheaper than a numpy
        # scalar store, and these are written once or twice per request); numpy views in _result
        self.first_token = array("d", [math.nan]) * n
        self.finish_s = array("d", [math.nan]) * n
        self.out_tokens = array("q", [0]) * n
        self.cached = array("q", [0]) * n
        self.preempt = array("q", [0]) * n
        self.replica_of = array("q", [-1]) * n
        self.status = array("b", [TIMEOUT]) * n
        self.active = 0
        self._arrivals_done = False
        self.done = self.env.event()
        self.replicas: list[Replica] = []
        self._offsets = workload.prefix_offsets.tolist()
        self._chain_keys = workload.prefix_keys.tolist()
        self._chain_ends = workload.prefix_end_tok.tolist()
        self._key_cache: dict[tuple, list | None] = {}
        self._build()

    def max_model_len(self, pool) -> int:
        return self._max_len[pool.name]

    def _build(self) -> None:
        # Imported here, not at the top: in the compiled build sim.replica loads sim.fleet for its
        # C type, and sim.policies loads sim.replica, so a top-level import would be circular.
        from sim.policies import make_policy

        sc = self.scenario
        self._max_len = {}
        models = build_pool_models(sc)
        by_class: dict[str, list[Replica]] = {c: [] for c in self.class_names}
        for pool, (gpu, model, quant, perf, mem, blocks) in zip(sc.fleet, models):
            self._max_len[pool.name] = pool.engine.max_model_len or model.max_position_embeddings
            for j in range(pool.replicas):
                name = f"{pool.name}/{j}"
                stats = ReplicaStats(pool=pool.name, name=name, gpu=pool.gpu, tp=pool.tensor_parallel,
                                     kv_blocks_total=blocks, peak_flops=perf.peak_flops,
                                     hbm_bw_bytes_s=perf.hbm_bw_bytes_s)
                rep = Replica(self, len(self.replicas), name, pool,
                              perf, blocks, make_policy(pool.policy.name, pool.policy.params), stats)
                self.replicas.append(rep)
                for cname in pool.classes or self.class_names:
                    by_class[cname].append(rep)
        self.eligible = [by_class[c] for c in self.class_names]
        self.router = make_router(sc.router.name, sc.router.params, stream(sc.seed, "routing"))
        if hasattr(self.router, "track"):
            for reps in self.eligible:
                self.router.track(reps)

    # -- hooks used by replicas ---------------------------------------------------
    def block_keys(self, rid: int, block_size: int) -> list | None:
        """Prefix-cache key of each full prompt block covered by the request's prefix chain.

        Block i's key is ``(key of the chunk holding its last token) * M + i``
        in 64-bit arithmetic; identical chains give identical keys, so they
        are cached per chain (synthetic prefixes repeat a handful of chains).
        """
        lo, hi = self._offsets[rid], self._offsets[rid + 1]
        if hi == lo:
            return None
        chain_keys, chain_ends = self._chain_keys, self._chain_ends
        if hi - lo == 1:  # the usual chain: one chunk
            cache_key = (block_size, chain_keys[lo], chain_ends[lo])
        elif hi - lo == 2:
            cache_key = (block_size, chain_keys[lo], chain_keys[lo + 1], chain_ends[lo], chain_ends[lo + 1])
        else:
            cache_key = None
        if cache_key is not None:
            hit = self._key_cache.get(cache_key)
            if hit is not None:
                return hit
        keys, ends = chain_keys[lo:hi], chain_ends[lo:hi]
        n_full = ends[-1] // block_size
        out, j = [], 0
        for i in range(n_full):
            end = (i + 1) * block_size
            while ends[j] < end:
                j += 1
            out.append((keys[j] * _KEY_MULT + i) & _MASK64)
        out = out or None
        if cache_key is not None:
            self._key_cache[cache_key] = out
        return out

    def finish(self, req: Request, rep: Replica) -> None:
        rid = req.rid
        self.first_token[rid] = req.first_token_s
        self.finish_s[rid] = rep.t
        self.out_tokens[rid] = req.generated
        self.cached[rid] = req.cached_tokens
        self.preempt[rid] = req.preemptions
        self.status[rid] = OK
        self._leave()

    def reject(self, req: Request, rep: Replica) -> None:
        self.replica_of[req.rid] = rep.index
        self.status[req.rid] = REJECTED
        self._leave()

    def _leave(self) -> None:
        self.active -= 1
        if self._arrivals_done and self.active == 0 and not self.done.triggered:
            self.done.succeed()

    def fail_replica_at(self, replica_name: str, at_s: float) -> None:
        """At ``at_s`` the replica disappears: the router stops choosing it and
        its waiting and running requests are retried from scratch on the other
        eligible replicas (latency still counts from their first arrival)."""
        by_name = {r.name: r for r in self.replicas}
        if replica_name not in by_name:
            raise ScenarioError(f"replica-failure names unknown replica '{replica_name}'; "
                                f"replicas: {', '.join(sorted(by_name))}")
        self.env.process(self._fail(by_name[replica_name], float(at_s)))

    def _fail(self, rep: Replica, at_s: float):
        yield self.env.timeout(at_s)
        for reps in self.eligible:  # in place: the arrival process holds these lists
            reps[:] = [r for r in reps if r is not rep]
        for reps, name in zip(self.eligible, self.class_names):
            if not reps:
                raise ScenarioError(f"replica-failure of '{rep.name}' leaves class '{name}' without replicas")
        for req in rep.fail():
            new = self.router.choose(self.eligible[req.cls], req.rid, None, self.env.now)
            self.replica_of[req.rid] = new.index
            new.enqueue(req)

    # -- processes ----------------------------------------------------------------
    def _arrivals(self) -> None:
        """Start the arrival process: one ``Wake`` per distinct arrival time (a
        callback, not a SimPy process: it runs once per request)."""
        wl = self.workload
        offsets, keys = self._offsets, self._chain_keys
        prefix_key = [keys[lo] if hi > lo else None for lo, hi in zip(offsets, offsets[1:])]
        n = len(wl)
        # plain lists: no numpy scalar per arrival
        self._arrival_cols = (wl.arrival_s.tolist(), wl.class_idx.tolist(), wl.prompt_tokens.tolist(),
                              wl.output_tokens.tolist(), prefix_key, n, max(1, n // 200))
        self._next_rid = 0
        wake(self.env, 0.0, self._arrive, URGENT)

    def _arrive(self, ev) -> None:
        """Route every request arriving now, then wait for the next arrival time."""
        env = self.env
        now = env.now
        times, classes, prompts, outputs, prefix_key, n, every = self._arrival_cols
        prio, eligible = self._priority, self.eligible
        rid = self._next_rid
        while rid < n:
            t = times[rid]
            if t > now:
                self._next_rid = rid
                wake(env, t - now, self._arrive)
                return
            cls = classes[rid]
            req = Request(rid, cls, prompts[rid], outputs[rid], t, prio[cls], rid, None)
            rep = self.router.choose(eligible[cls], rid, prefix_key[rid], now)
            self.replica_of[rid] = rep.index
            self.active += 1
            rep.enqueue(req)
            if self.progress is not None and rid % every == 0:
                self.progress(rid, n)
            rid += 1
        self._next_rid = n
        self._arrivals_done = True
        if self.active == 0 and not self.done.triggered:
            self.done.succeed()

    def _deadline(self, end_s: float):
        yield self.env.timeout(end_s)
        if not self.done.triggered:
            self.done.succeed()

    def run(self) -> SimResult:
        tr = self.scenario.traffic
        self._arrivals()
        self.env.process(self._deadline(tr.duration_s + self.scenario.sim.drain_s))
        # The engine leaves no garbage cycles behind (a replica's pending Wake refers back to
        # it only until the next wake-up replaces it), so the cyclic collector only costs
        # time here: off while the events run.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            self.env.run(until=self.done)
        finally:
            if gc_was_on:
                gc.enable()
        end_s = self.env.now
        if self.progress is not None:
            self.progress(len(self.workload), len(self.workload))
        return self._result(end_s)

    def _result(self, end_s: float) -> SimResult:
        wl = self.workload
        for rep in self.replicas:  # requests cut off by the drain limit
            rep.settle(end_s)
            for req in list(rep.running) + list(rep.waiting):
                g = rep.dec.computed_of(req) - req.c_join + req.g_join if req.state == DECODING else req.generated
                self.first_token[req.rid] = req.first_token_s
                self.out_tokens[req.rid] = g
                self.preempt[req.rid] = req.preemptions
            rep.t = max(rep.t, end_s)
            rep._sample()
        names = np.array([r.name for r in self.replicas] + [""], dtype=object)
        replica_of = np.frombuffer(self.replica_of, dtype=np.int64)
        first_token = np.frombuffer(self.first_token, dtype=np.float64).copy()
        finish_s = np.frombuffer(self.finish_s, dtype=np.float64).copy()
        # per-request latency outside the engine (PerfCoefficients.t_request_s): shifts TTFT and E2E
        lat = np.array([r.perf.coeffs.t_request_s for r in self.replicas] + [0.0])
        if lat.any():
            first_token = first_token + lat[replica_of]
            finish_s = finish_s + lat[replica_of]
        requests = pd.DataFrame({
            "request_id": np.arange(len(wl), dtype=np.int64),
            "class": np.array(self.class_names, dtype=object)[wl.class_idx],
            "arrival_s": wl.arrival_s,
            "first_token_s": first_token,
            "finish_s": finish_s,
            "prompt_tokens": wl.prompt_tokens.astype(np.int64),
            "output_tokens": np.frombuffer(self.out_tokens, dtype=np.int64).copy(),
            "cached_prompt_tokens": np.frombuffer(self.cached, dtype=np.int64).copy(),
            "replica": names[replica_of],
            "preemptions": np.frombuffer(self.preempt, dtype=np.int64).copy(),
            "status": _STATUS[np.frombuffer(self.status, dtype=np.int8)],
        }).astype(REQUEST_COLUMNS)
        rows: list = []
        for rep in self.replicas:
            name = rep.name
            rows += [(t, name, running, waiting, kv, batch) for t, running, waiting, kv, batch in rep.ts_rows]
        ts = pd.DataFrame(rows, columns=list(TIMESERIES_COLUMNS)).astype(TIMESERIES_COLUMNS)
        itl = sum((rep.itl for rep in self.replicas), np.zeros_like(self.replicas[0].itl))
        return SimResult(requests=derive_latencies(requests), timeseries=ts, class_names=self.class_names,
                         itl_hist=itl, window=self.window, end_s=float(end_s),
                         replicas=[rep.stats for rep in self.replicas])


def simulate(scenario: Scenario, *, exact_steps: bool = False,
             progress: Callable[[int, int], None] | None = None, workload: Workload | None = None) -> SimResult:
    """Run ``scenario``; ``workload`` replaces the generated one (validation replays).
    The scenario's ``events:`` apply: surges add arrivals to the generated
    workload (not to a given one), replica failures apply either way."""
    from sim.events import scenario_workload, schedule_failures

    if workload is None:
        workload = scenario_workload(scenario)  # generate_workload + surge arrivals
    fleet = Fleet(scenario, workload, exact_steps=exact_steps, progress=progress)
    schedule_failures(fleet, scenario)
    return fleet.run()
