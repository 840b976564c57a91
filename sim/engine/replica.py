"""One serving instance, driven by SimPy events.

The loop: ask the batching policy for a ``StepPlan``, advance time by the
performance model, apply the plan. Each step is one engine event (a ``Wake``,
see ``sim.engine.wake``: it runs in SimPy's event order, and its callback applies the
step and plans the next) rather than a SimPy process: a generator resume and
an ``Interrupt`` per arrival cost more than a typical step's own work. A decode-only plan the policy marks ``repeatable`` is
fast-forwarded: the whole run of identical steps up to the next interesting
moment (a member finishing, the KV cache running short, a time-series tick) is
one event; an arrival the policy wants to see cuts it at the end of the step
in progress (a new event; the old one goes stale). ``exact_steps`` takes one
step per event instead; both use the same closed-form step times
(``decode_group.Segment``), so their records are identical.

Time: the replica keeps its own clock ``t`` (step ends from the closed form)
and records use it; SimPy's event queue orders the replicas and arrivals.

Hot path (about three and a half events per request): ITL counts live in one flat
``array('q')`` (``_itl[class * NUM_ITL_BUCKETS + bucket]``, a C array when compiled; exposed
as a 2-D array by ``itl``), the
members-by-class vector of the decode group is a list, and a fast-forwarded run
only searches for its KV-exhaustion or tick step when that bound can bind.
When the engine is compiled (``setup.py``), ``replica.pxd`` gives this class
and the locals of its hot methods C types; this file stays the reference.
"""

from __future__ import annotations

from array import array
from heapq import heappush
from typing import Any

import numpy as np

from sim.engine.decode_group import DecodeGroup, Segment, new_segment
from sim.engine.kvcache import KVCache
from sim.engine.ledger import Ledger
from sim.engine.prefix_keys import PrefixKeys
from sim.engine.request import DECODING, DONE, RUNNING, WAITING, Request
from sim.engine.result import ReplicaStats
from sim.engine.step_plan import DECODE_RUN
from sim.engine.wake import URGENT, Environment, Wake, WakeQueue, wake_q
from sim.records import ITL_EDGES_S, itl_bucket, itl_bucket_one

__all__ = ["Replica", "outstanding_key", "LOAD_KEY_SHIFT"]

NUM_ITL_BUCKETS = len(ITL_EDGES_S) - 1
LOAD_KEY_SHIFT = 20  # load key: outstanding << LOAD_KEY_SHIFT | replica index (indices below 2**20)


def outstanding_key(rep: Replica) -> int:
    """The load key a replica publishes: fewest outstanding first, then lowest index."""
    return (rep.outstanding << LOAD_KEY_SHIFT) | rep.index


class Replica:
    __slots__ = {
        "ledger": "Ledger",
        "keys": "PrefixKeys",
        "env": "object",
        "wq": "WakeQueue",
        "name": "object",
        "pool": "object",
        "engine": "object",
        "perf": "PerfModel",
        "spec": "object",
        "group": "object",
        "fe": "FrontEnd",
        "policy": "object",
        "stats": "object",
        "waiting": "object",
        "index": "long long",
        "block_size": "long long",
        "max_num_batched_tokens": "long long",
        "max_num_seqs": "long long",
        "max_model_len": "long long",
        "outstanding": "long long",
        "_seq": "long long",
        "batch_tokens": "long long",
        "_tick": "long long",
        "running": "dict",
        "prefilling": "dict",
        "_seg_coeffs": "dict",
        "_dec_cpu_s": "dict",
        "kv": "KVCache",
        "dec": "DecodeGroup",
        "seg": "Segment",
        "t": "double",
        "_w0": "double",
        "_w1": "double",
        "_tick_t": "double",
        "_idle_until": "double",
        "tick_s": "double",
        "_busy_s": "double",
        "_cpu_s": "double",
        "_flops": "double",
        "_bytes": "double",
        "_kv_block_s": "double",
        "_steps": "long long",
        "_streamed": "long long",
        "outstanding_heaps": "list",
        "_itl": "long long[:]",
        "ts_rows": "list",
        "_interruptible": "bint",
        "failed": "bint",
        "_stretch_ok": "bint",
        "chunked_prefill": "bint",
        "_run_seg": "Segment",
        "_run_k": "long long",
        "_run_steps": "long long",
        "_cut_steps": "long long",
        "_cut_t_end": "double",
        "_step_plan": "StepPlan",
        "_step_n": "long long",
        "_step_d": "double",
        "_step_t_end": "double",
        "_step_prefill": "long long",
        "_step_attn": "double",
        "_step_ctx": "long long",
        "_ev": "object",
        "_on_decode_end": "object",
        "_on_mixed_end": "object",
        "_schedule": "object",
    }

    def __init__(
        self,
        env: Environment,
        index: int,
        name: str,
        pool,
        perf,
        num_kv_blocks: int,
        policy,
        stats: ReplicaStats,
        ledger: Ledger,
        keys: PrefixKeys,
        *,
        num_classes: int,
        window: tuple[float, float],
        tick_s: float,
        max_model_len: int,
        exact_steps: bool = False,
        spec=None,
    ) -> None:
        self.env = env
        self.wq: WakeQueue = env.wq  # its wake-up queue and clock (sim.engine.wake)
        self.ledger = ledger  # where finished and rejected requests are recorded
        self.keys = keys  # prefix-cache block keys of the workload's requests
        self.index = index
        self.name = name
        self.pool = pool
        self.engine = pool.engine
        self.block_size = pool.engine.block_size
        # engine knobs the policies read every step (plain attributes: C fields when compiled)
        self.max_num_batched_tokens = pool.engine.max_num_batched_tokens
        self.max_num_seqs = pool.engine.max_num_seqs
        self.chunked_prefill = pool.engine.enable_chunked_prefill
        self.max_model_len = max_model_len
        self.tick_s = tick_s
        self.perf = perf
        self.spec = spec  # sim.perf.speculative.Speculation of a speculative pool, else None
        self.group: Any = None  # sim.engine.dp_group.DPGroup of a data-parallel MoE rank, else None
        # the API server in front (sim.engine.front_end.FrontEnd; the fleet sets it), which streams
        # each step's new tokens as the step ends; None: no API server simulated
        self.fe: Any = None
        self._streamed = 0  # steps of the decode run in flight already streamed (stream_to)
        self.policy = policy
        self._schedule = policy.schedule  # bound once: _plan calls it every step
        self.stats = stats
        # the counters of ``stats`` (ReplicaStats), accumulated here (C fields when compiled: the
        # dataclass's attributes cost a dictionary look-up per step) and written by ``final_stats``
        self._busy_s = self._cpu_s = self._flops = self._bytes = self._kv_block_s = 0.0
        self._steps = 0
        self.kv = KVCache(num_kv_blocks, self.block_size, pool.engine.enable_prefix_caching)
        self.waiting = policy.make_queue()
        self.running: dict[Request, None] = {}  # admission order
        self.prefilling: dict[Request, None] = {}  # running, not yet decoding
        self.dec = DecodeGroup(self.block_size, num_classes)
        self.seg: Segment | None = None  # timing anchor of the current decode-only run
        self.t = 0.0
        self.outstanding = 0  # waiting + running + in its API server's queue (routers read it; Fleet._admit)
        # heaps subscribed to this replica's load (least-outstanding routing subscribes them):
        # the replica publishes its ``outstanding_key`` to each whenever ``outstanding`` changes
        self.outstanding_heaps: list[list] = []
        self._seq = 0
        self._interruptible = False
        # the decode run in flight (C fields when compiled: no tuple per step): its segment (None: no
        # run in flight), first step and steps; Any: read only while a run is in flight
        self._run_seg: Any = None
        self._run_k = self._run_steps = 0
        self.batch_tokens = 0
        self._itl = array("q", [0]) * (num_classes * NUM_ITL_BUCKETS)  # ITL counts [class * buckets + bucket]
        self._w0, self._w1 = window
        self.ts_rows: list[tuple] = []
        self._tick = 0
        self._tick_t = 0.0  # time of the next time-series tick: _tick * tick_s
        self.failed = False
        self._seg_coeffs: dict[int, tuple] = {}  # decode-step coefficients by batch size
        self._dec_cpu_s: dict[int, float] = {}  # a decode-only step's engine-core CPU seconds by batch size
        self._stretch_ok = not exact_steps  # fast-forward decode runs
        # steps and end time of the decode run in flight, once cut if an arrival cut it
        self._cut_steps, self._cut_t_end = 0, 0.0
        # the mixed step in flight: its plan, decode members, duration, end time and the
        # performance model's step arguments (prefill tokens, attention work, decodes, their context)
        self._step_plan: Any = None
        self._step_n, self._step_d, self._step_t_end = 0, 0.0, 0.0
        self._step_prefill, self._step_attn, self._step_ctx = 0, 0.0, 0
        self._idle_until = 0.0
        # the step-end callbacks, bound once (a bound method per step cost an attribute look-up and
        # an allocation); they refer back to the replica: Fleet._drop_cycles lets go of them
        self._on_decode_end: Any = self._decode_end
        self._on_mixed_end: Any = self._mixed_end
        # the pending wake-up (the engine loop starts at time 0, like a SimPy process)
        self._ev: Wake | None = wake_q(self.wq, 0.0, self._plan, URGENT)

    # -- arrivals ---------------------------------------------------------------
    def enqueue(self, req: Request) -> None:
        """A routed request joins this replica's waiting queue."""
        total = req.prompt + req.output
        if total > self.max_model_len or -(-total // self.block_size) > self.kv.num_blocks:
            self.ledger.reject(req, self.index)
            return
        req.seq = self._seq
        self._seq += 1
        req.enqueue_s = self.wq.now  # the clock (Environment.now without the property call)
        if self.kv.caching:
            req.block_keys = self.keys.block_keys(req.rid, self.block_size)
        else:
            req.block_keys = None
        self.waiting.push(req)
        self.outstanding += 1
        self._outstanding_changed()
        if self._interruptible and self.policy.wake_on_arrival(self):
            self._wake()

    def fail(self) -> list[Request]:
        """Stop serving; hand back every waiting and running request, reset to
        start over (their generated tokens are lost, as for a client retry)."""
        self.failed = True
        self._interruptible = False
        if self._ev is not None:  # the pending wake-up is now stale
            self._ev.callback = None
        self._ev = None
        self.settle(self.env.now)
        orphans = list(self.running) + list(self.waiting)
        for req in list(self.running):
            self._release(req)
        self.kv.clear()  # blocks the step in flight took for its chunks are gone too
        self.waiting = self.policy.make_queue()
        for req in orphans:
            req.state = WAITING
            req.computed = req.generated = 0
            req.keys = []
            req.first_token_s = req.last_token_s = float("nan")
        self.outstanding = 0
        self._outstanding_changed()
        return orphans

    def _outstanding_changed(self) -> None:
        if self.outstanding_heaps:
            key = (self.outstanding << LOAD_KEY_SHIFT) | self.index  # inline: sim.engine.replica.outstanding_key
            for heap in self.outstanding_heaps:
                heappush(heap, key)

    def kv_used_at(self, now: float) -> int:
        """Blocks in use at ``now``, counting decode steps finished mid-run."""
        used = self.kv.used
        if self._run_seg is not None:
            seg, k, steps = self._run_seg, self._run_k, self._run_steps
            done = seg.first_step_ending_at_or_after(now) - k
            if seg.t_end(k + done) <= now:
                done += 1
            done = min(done, steps)
            if done > 0:
                used += self.dec.blocks_needed(done)
        return used

    def settle(self, now: float) -> None:
        """Complete the decode steps of an in-flight run that ended by ``now`` (a failure, the
        end of the simulation), as exact stepping would have: counted, and their tokens added."""
        if self._run_seg is not None:
            seg, k, steps = self._run_seg, self._run_k, self._run_steps
            done = min(
                steps,
                seg.first_step_ending_at_or_after(now) - k + (seg.t_end(seg.first_step_ending_at_or_after(now)) <= now),
            )
            if done > 0:
                self._complete_steps(seg, k, done, seg.t_end(k + done - 1))
            self._run_seg = None

    def blocks_released_by(self, req: Request) -> int:
        """Free blocks gained if ``req`` let go of everything now."""
        computed = self.dec.computed_of(req) if req.state == DECODING else req.computed
        private = -(-computed // self.block_size) - len(req.keys)
        return private + self.kv.freed_by(req.keys) if req.keys else private

    # -- the engine loop -----------------------------------------------------------
    # Each step is one ``Wake`` event whose callback applies the step and plans
    # the next (no generator, no Interrupt exception: these run a few times per
    # request). ``self._ev`` is the pending wake-up; a callback for any other
    # event is stale (a decode run cut short by an arrival, a failed replica).
    def _plan(self, ev=None) -> None:
        """Ask the policy for the next step and start it."""
        if ev is not None and ev is not self._ev:
            return
        schedule = self._schedule
        while True:
            plan = schedule(self)
            if plan is DECODE_RUN:  # the steady state
                self._start_decode(self._stretch_ok)
                return
            if plan.preempt:
                self._preempt(plan.preempt)
            if plan.idle_until is not None:
                self._start_idle(plan.idle_until)
                return
            if plan.chunks:
                self._start_mixed(plan)
                return
            if plan.decode:
                self._start_decode(plan.repeatable and self._stretch_ok)
                return

    def _wake(self) -> None:
        """An arrival the policy wants to see now: end an idle wait at once, or
        cut the decode run in flight at the end of the step in progress."""
        self._interruptible = False
        wq = self.wq
        old = self._ev
        if old is not None:  # superseded: its time still comes, but _run_wakes calls nothing
            old.callback = None
        if self._run_seg is None:  # idle
            self._ev = wake_q(wq, 0.0, self._idle_interrupted, URGENT)
            return
        seg, k = self._run_seg, self._run_k
        steps = min(self._run_steps, seg.first_step_ending_at_or_after(wq.now) - k + 1)
        t_end = seg.t_end(k + steps - 1)
        self._cut_steps, self._cut_t_end = steps, t_end
        self._ev = wake_q(wq, max(0.0, t_end - wq.now), self._on_decode_end)

    def _start_idle(self, until: float) -> None:
        self.batch_tokens = 0
        self._interruptible = True
        if until == float("inf"):
            self._ev = None  # until an arrival
        else:
            self._idle_until = until
            self._ev = wake_q(self.wq, max(0.0, until - self.wq.now), self._idle_timeout)
        if self.group is not None:
            self.group.ready(self, -1.0)

    def _idle_timeout(self, ev) -> None:
        if ev is not self._ev:
            return
        self.t = max(self.t, self._idle_until)
        self._interruptible = False
        self._sample()
        self._plan()

    def _idle_interrupted(self, ev) -> None:
        if ev is not self._ev:
            return
        self.t = max(self.t, self.env.now)
        self._sample()
        self._plan()

    def _start_decode(self, stretch: bool) -> None:
        dec = self.dec
        k = dec.k
        if self.group is not None:
            self.seg = None  # a lock-step rank's steps last the group's pace: anchor each at its start
        seg = self.seg
        if seg is None:
            n = dec.n
            if self.spec is not None:  # token-steps of a speculative pool (sim.perf.speculative)
                coeffs = self.spec.segment_coeffs(n, dec.ncls)
            else:
                coeffs = self._seg_coeffs.get(n)
            if coeffs is None:
                perf = self.perf
                a, b = perf.decode_affine(n)
                f0, y0 = perf.step_flops(0, 0.0, n, 0), perf.step_bytes(0, 0.0, n, 0)
                coeffs = self._seg_coeffs[n] = (
                    a,
                    b,
                    (f0, perf.step_flops(0, 0.0, n, 1) - f0),
                    (y0, perf.step_bytes(0, 0.0, n, 1) - y0),
                )
            a, b, f, y = coeffs
            seg = self.seg = new_segment(self.t, k, dec.ctx, n, a, b, f, y)
        if stretch:
            self._stretch(seg, k)  # sets _cut_steps and _cut_t_end
            steps, t_end = self._cut_steps, self._cut_t_end
        else:
            steps, t_end = 1, seg.t_end(k)
            self._cut_steps, self._cut_t_end = steps, t_end
        self.batch_tokens = dec.n
        self._run_seg, self._run_k, self._run_steps = seg, k, steps
        self._interruptible = steps > 1
        if self.group is not None:  # the group starts it (_group_go) when every rank is ready
            self.group.ready(self, seg.duration(k))
            return
        self._ev = wake_q(self.wq, max(0.0, t_end - self.wq.now), self._on_decode_end)

    def stream_to(self, now: float) -> None:
        """Hand the API server the tokens of the decode run in flight whose steps ended by ``now``
        (before it books an admission at ``now``), so that its work is booked in the order exact
        stepping books it: a fast-forwarded run books the rest when it completes."""
        if self._run_seg is None or self.fe is None:
            return
        seg, k, steps = self._run_seg, self._run_k, self._run_steps
        j = seg.first_step_ending_at_or_after(now)
        self._stream_run(seg, k, min(steps, j - k + (seg.t_end(j) <= now)))

    def _stream_run(self, seg: Segment, k: int, upto: int) -> None:
        """Book the tokens of the decode run's steps (from step ``k``) that are not streamed yet,
        up to its ``upto``-th step."""
        streamed = self._streamed
        if upto > streamed:
            self._stream_steps(seg, k + streamed, k + upto - 1)
            self._streamed = upto

    def _stream_steps(self, seg: Segment, first: int, last: int) -> None:
        """Book the tokens of decode steps ``first`` .. ``last`` with the API server, one step at a time, with the same arguments exact stepping passes: a
        token's send time (``FrontEnd.last_start_s``) then comes from the same float operations
        in a fast-forwarded run as step by step (a closed form over the run differed by an ulp)."""
        fe, n = self.fe, self.dec.n
        for j in range(first, last + 1):
            t = seg.t_end(j)
            fe.stream(t, n, 0)

    def _decode_end(self, ev) -> None:
        if ev is not self._ev:
            return
        dec = self.dec
        seg, k = self._run_seg, self._run_k
        steps, t_end = self._cut_steps, self._cut_t_end
        self._interruptible = False
        self._run_seg = None
        self._complete_steps(seg, k, steps, t_end)
        self.t = t_end
        if dec.finished_any():
            for req in dec.pop_finished():
                self._finish(req)
        if self._tick_t <= t_end:
            self._sample()
        self._plan()

    def _complete_steps(self, seg: Segment, k: int, steps: int, t_end: float) -> None:
        """Decode steps k .. k+steps-1 of a run are done (the last ends at ``t_end``):
        count them, then grow the decode group and its KV blocks by as many tokens."""
        dec = self.dec
        self._account_decode(seg, k, steps, t_end)
        if self.fe is not None:  # the API server streams the run's tokens (those stream_to has not)
            self._stream_run(seg, k, steps)
            self._streamed = 0
        if dec.stalled:
            first_end = seg.t_end(k)
            if self._w0 <= first_end <= self._w1:
                self._itl_add(dec.ncls, itl_bucket_one(seg.duration(k)), -1)
                self._itl_after_stall(first_end)
            dec.stalled = False
        dec.last_t = t_end
        self.kv.allocate(dec.blocks_needed(steps))
        dec.advance(steps)

    def _stretch(self, seg: Segment, k: int) -> None:
        """Steps of a fast-forwarded decode run from step ``k`` and the end of its
        last step, into ``_cut_steps`` and ``_cut_t_end``: up to the first member's finish, the last step the free KV
        blocks allow, and the step ending at or after the next time-series tick,
        whichever comes first."""
        dec = self.dec
        steps = dec.next_finish_k() - k + 1  # type: ignore[operator]  # members decode here, so one finishes next
        # Exhaustion binds only if these steps may need more blocks than are
        # free; a member needs at most one block per block_size steps.
        kv = self.kv
        free = kv.num_empty + len(kv.evictable) + kv.dormant  # inline: KVCache.free
        if free < dec.n * -(-steps // self.block_size):
            steps = min(steps, dec.steps_until_exhaustion(free))
        # The tick binds only if the run would reach it (step ends are monotone).
        tick = self._tick_t
        t_end = seg.t_end(k + steps - 1)
        if t_end >= tick:
            cut = seg.first_step_ending_at_or_after(tick) - k + 1
            if cut < steps:
                steps = cut
                t_end = seg.t_end(k + steps - 1)
        self._cut_steps, self._cut_t_end = steps, t_end

    def _start_mixed(self, plan) -> None:
        dec, kv, bs = self.dec, self.kv, self.block_size
        new_blocks = 0
        if plan.admit:
            self.waiting.drop_first(len(plan.admit))
            for req, hit in plan.admit:
                if hit:
                    req.keys = kv.hold(req.block_keys, hit)
                    req.computed = hit * bs
                    kv.hit_blocks += hit
                if req.block_keys:  # a prefix-cache query of num_tokens - 1 tokens
                    limit = (req.prompt + req.generated - 1) // bs  # inline: Request.num_tokens
                    kv.query_blocks += min(len(req.block_keys), limit)
                if req.remote_tokens:  # KV pulled from a prefill replica: its blocks are allocated, not computed
                    c, q = req.computed, req.remote_tokens - req.computed
                    new_blocks += -(-(c + q) // bs) - (-(-c // bs))  # inline: sim.engine.policies.base.blocks_for
                    req.computed = req.remote_tokens
                    req.remote_tokens = 0
                elif req.preemptions == 0:
                    req.cached_tokens = hit * bs
                req.state = RUNNING
                self.running[req] = None
                self.prefilling[req] = None
        prefill_tokens, attn = 0, 0.0
        for req, q in plan.chunks:
            c = req.computed
            prefill_tokens += q
            attn += q * (c + q / 2)
            new_blocks += -(-(c + q) // bs) - (-(-c // bs))  # inline: sim.engine.policies.base.blocks_for
        n = dec.n if plan.decode else 0
        ctx = dec.ctx if n else 0
        if n:
            new_blocks += dec.need_now()
        kv.allocate(new_blocks)
        if n and self.spec is not None:
            d = self.spec.mixed_step_s(prefill_tokens, attn, n, ctx, len(plan.chunks), dec.ncls)
        else:
            # positional arguments: no keyword dictionary per call
            d = self.perf.step_time_s(prefill_tokens, attn, n, ctx, len(plan.chunks))
        t_end = self.t + d
        self.batch_tokens = prefill_tokens + n
        self._step_plan, self._step_n, self._step_d, self._step_t_end = plan, n, d, t_end
        self._step_prefill, self._step_attn, self._step_ctx = prefill_tokens, attn, ctx
        if self.group is not None:  # the group starts it (_group_go) when every rank is ready
            self.group.ready(self, d)
            return
        self._ev = wake_q(self.wq, max(0.0, t_end - self.wq.now), self._on_mixed_end)

    def _mixed_end(self, ev) -> None:
        if ev is not self._ev:
            return
        dec, kv = self.dec, self.kv
        plan, n, d, t_end = self._step_plan, self._step_n, self._step_d, self._step_t_end
        self.seg = None
        self._account_step(t_end, d, len(plan.chunks))
        if n:
            if self._w0 <= t_end <= self._w1:
                if dec.stalled:
                    self._itl_after_stall(t_end)
                else:
                    self._itl_add(dec.ncls, itl_bucket_one(d), 1)
            dec.stalled = False
            dec.last_t = t_end
            dec.advance(1)
        elif dec.n:
            dec.stalled = True  # members waited a step without a token
        self.t = t_end
        sent = t_end  # when this step's first tokens reach their streams
        if self.fe is not None:  # the API server streams the step's new tokens (sim.engine.front_end)
            new = 0
            for req, q in plan.chunks:
                if req.computed + q == req.prompt + req.generated:  # the chunk completes the prompt: a token
                    new += 1
            sent = self.fe.stream(t_end, n + new, new)
        for req, q in plan.chunks:
            req.computed += q
            if req.block_keys and kv.caching:
                self._register_blocks(req)
            if req.computed == req.prompt + req.generated:  # inline: Request.num_tokens
                self._sampled(req, t_end, sent)
        if dec.finished_any():
            for req in dec.pop_finished():
                self._finish(req)
        self._sample()
        self._plan()

    # -- lock step (sim.engine.dp_group) ----------------------------------------------
    def _group_go(self, t0: float, dur: float, own: float, t_end: float) -> None:
        """The group starts this rank's planned step at ``t0``: it lasts the group's ``dur``
        seconds (``own``: its own duration) and ends at ``t_end``."""
        self.t = t0
        if self._run_seg is not None:  # a decode step: its segment, anchored at t0, takes dur
            seg, k = self._run_seg, self._run_k
            if dur != own or seg.t0 != t0:
                seg = self.seg = Segment(
                    t0, k, seg.c0, seg.n, seg.a + (dur - own), seg.b, (seg.f0, seg.f1), (seg.y0, seg.y1)
                )
                self._run_seg, self._run_steps = seg, 1
            self._cut_steps, self._cut_t_end = 1, t_end
            self._ev = wake_q(self.wq, max(0.0, t_end - self.wq.now), self._on_decode_end)
            return
        self._step_d, self._step_t_end = dur, t_end
        self._ev = wake_q(self.wq, max(0.0, t_end - self.wq.now), self._on_mixed_end)

    def _group_dummy(self, t0: float, t_end: float) -> None:
        """Nothing to run while another rank of the group steps: a dummy batch from ``t0`` to
        ``t_end`` (an arrival meanwhile waits for the next step)."""
        self._interruptible = False
        self.t = t0
        self._idle_until = t_end
        self.batch_tokens = 0
        self._ev = wake_q(self.wq, max(0.0, t_end - self.wq.now), self._dummy_end)

    def _dummy_end(self, ev) -> None:
        if ev is not self._ev:
            return
        t_end = self._idle_until
        if self._w0 <= t_end <= self._w1:
            self._busy_s += t_end - self.t  # the GPU is in the step (the collectives), not idle
        self.t = t_end
        self._sample()
        self._plan()

    # -- state changes ------------------------------------------------------------
    def _sampled(self, req: Request, t: float, sent: float) -> None:
        """A prefill (or recompute) completed and produced a token at ``t``; a first token reaches
        the client's stream at ``sent`` (the API server's processing of the step's outputs,
        sim.engine.front_end; ``t`` without one)."""
        req.generated += 1
        if req.generated == 1:
            req.first_token_s = sent
        elif req.last_token_s == req.last_token_s and self._w0 <= t <= self._w1:  # gap across a preemption
            self._itl[req.cls * NUM_ITL_BUCKETS + itl_bucket_one(t - req.last_token_s)] += 1
        req.last_token_s = t
        if req.generated >= req.output:
            self._finish(req)
        else:
            del self.prefilling[req]
            self.dec.join(req)
            self.seg = None

    def _itl_after_stall(self, t_end: float) -> None:
        """Gaps of the first decode step after steps without decodes (prefill-first):
        each member's gap runs from its previous token, not from the step start."""
        last_t = self.dec.last_t
        gaps, classes = [], []
        for req in self.running:
            if req.state == DECODING:
                prev = req.last_token_s if req.last_token_s > last_t else last_t
                gaps.append(t_end - prev)
                classes.append(req.cls)
        itl = self._itl
        for cls, b in zip(classes, itl_bucket(np.array(gaps)).tolist()):
            itl[cls * NUM_ITL_BUCKETS + b] += 1

    def _register_blocks(self, req: Request) -> None:
        keys, kv = req.keys, self.kv
        full = min(req.computed // self.block_size, len(req.block_keys))
        if len(keys) >= full:
            return
        new = req.block_keys[len(keys) : full]
        if kv.register_next(keys, new, req.block_keys):  # the usual case: nobody computed these blocks meanwhile
            keys.extend(new)
            if full == len(req.block_keys):  # it now holds the whole chain
                req.keys = kv.promote(keys, req.block_keys)
            return
        while len(keys) < full:
            key = req.block_keys[len(keys)]
            if not kv.register(key):
                req.block_keys = req.block_keys[: len(keys)]  # chain broken: keep the rest private
                return
            keys.append(key)

    def _release(self, req: Request) -> None:
        if req.state == DECODING:
            self.dec.leave(req)
            self.seg = None
        bk = req.block_keys
        if bk and len(bk) > req.prompt // self.block_size:  # keys past the prompt (a conversation turn's output)
            self._register_blocks(req)  # the full blocks its decode filled are cached, as vLLM's are
        private = -(-req.computed // self.block_size) - len(req.keys)
        self.kv.release(req.keys, private)
        req.keys = []
        del self.running[req]
        self.prefilling.pop(req, None)

    def _preempt(self, victims) -> None:
        for req in victims:
            if req.state == DECODING and self.dec.last_t > req.last_token_s:
                req.last_token_s = self.dec.last_t  # its last token came from the group's last step
            self._release(req)
            req.preemptions += 1
            req.computed = 0
            req.state = WAITING
            req.enqueue_s = self.t
            self.waiting.push_front(req)

    def _finish(self, req: Request) -> None:
        self._release(req)
        req.state = DONE
        self.outstanding -= 1
        self._outstanding_changed()
        # the last token reaches the client once the API server gets to its step's outputs: a
        # first token when it is sent (``_sampled``), a later one no earlier than the start of its
        # step's batch (the backlog; its place inside the batch is not modelled)
        t = self.t
        if req.generated == 1:
            t = req.first_token_s
        elif self.fe is not None and self.fe.last_start_s > t:
            t = self.fe.last_start_s
        self.ledger.finish(req, t)

    # -- accounting -------------------------------------------------------------
    @property
    def itl(self) -> np.ndarray:
        """ITL histogram of this replica, ``int64[num_classes, buckets]``."""
        return np.array(self._itl, dtype=np.int64).reshape(-1, NUM_ITL_BUCKETS)

    def _itl_add(self, ncls: list, bucket: int, times: int) -> None:
        """Count ``times`` gaps in ``bucket`` for each decode-group member (``ncls``: members by class)."""
        itl, nb = self._itl, NUM_ITL_BUCKETS
        for cls, n in enumerate(ncls):
            if n:
                itl[cls * nb + bucket] += times * n

    def final_stats(self) -> ReplicaStats:
        """``stats`` with the counters of the steps run so far (the fleet calls it at the end)."""
        st = self.stats
        st.busy_s, st.flops, st.bytes, st.kv_block_s = self._busy_s, self._flops, self._bytes, self._kv_block_s
        st.steps, st.cpu_s = self._steps, self._cpu_s
        return st

    def _account_step(self, t_end: float, d: float, chunks: int) -> None:
        """Stats of the mixed step in flight (``_step_*``), which ends at ``t_end`` after ``d`` seconds."""
        if not self._w0 <= t_end <= self._w1:
            return
        self._busy_s += d
        prefill, attn, n, ctx = self._step_prefill, self._step_attn, self._step_n, self._step_ctx
        if n and self.spec is not None:  # a speculative pool's decoders: one E-th of an engine step
            self._cpu_s += self.spec.mixed_step_cpu_s(prefill, n, chunks, self.dec.ncls)
        else:
            self._cpu_s += self.perf.step_cpu_s(n, chunks, prefill)
        self._steps += 1
        self._flops += self.perf.step_flops(prefill, attn, n, ctx)
        self._bytes += self.perf.step_bytes(prefill, attn, n, ctx)
        kv = self.kv
        self._kv_block_s += (kv.num_blocks - kv.num_empty - len(kv.evictable) - kv.dormant) * d  # inline: KVCache.used

    def _account_decode(self, seg: Segment, k: int, steps: int, t_last: float) -> None:
        """Stats and ITL of decode steps k .. k+steps-1 (the last ends at ``t_last``)
        that end inside the window."""
        w0, w1 = self._w0, self._w1
        last = k + steps - 1
        t_first = seg.t_end(k) if steps > 1 else t_last
        if t_first >= w0 and t_last <= w1:  # the usual case: all inside
            lo, hi = k, last
        else:
            lo = max(k, seg.first_step_ending_at_or_after(w0))
            hi = min(last, seg.first_step_ending_at_or_after(w1) - 1)
            if hi + 1 <= last and seg.t_end(hi + 1) <= w1:
                hi += 1
            if hi < lo:
                return
            t_last = seg.t_end(hi)
        m = hi - lo + 1
        ctx_sum = seg.ctx_sum(hi - seg.k0 + 1) - seg.ctx_sum(lo - seg.k0)
        dur = t_last - seg.t_end(lo - 1)
        dec = self.dec
        self._busy_s += dur
        if self.spec is not None:  # token-steps: one E-th of a verification step's CPU work each
            self._cpu_s += m * self.spec.token_step_cpu_s(seg.n, dec.ncls)
        else:
            cpu = self._dec_cpu_s.get(seg.n)
            if cpu is None:
                cpu = self._dec_cpu_s[seg.n] = self.perf.step_cpu_s(seg.n, 0, 0)
            self._cpu_s += m * cpu
        self._steps += m
        self._flops += m * seg.f0 + seg.f1 * ctx_sum
        self._bytes += m * seg.y0 + seg.y1 * ctx_sum
        kv = self.kv
        used = kv.num_blocks - kv.num_empty - len(kv.evictable) - kv.dormant  # inline: KVCache.used
        if lo > k:
            used += dec.blocks_needed(lo - k)
        self._kv_block_s += (used + dec.n * m / (2 * self.block_size)) * dur
        first = itl_bucket_one(seg.duration(lo))
        if m == 1 or first == itl_bucket_one(seg.duration(hi)):
            self._itl_add(dec.ncls, first, m)
        else:
            durs = seg.a + seg.b * (seg.c0 + seg.n * (np.arange(lo, hi + 1) - seg.k0))
            counts = np.bincount(itl_bucket(durs), minlength=NUM_ITL_BUCKETS).tolist()
            itl, nb = self._itl, NUM_ITL_BUCKETS
            for cls, n in enumerate(dec.ncls):
                if n:
                    for bucket, c in enumerate(counts):
                        if c:
                            itl[cls * nb + bucket] += n * c

    def _sample(self) -> None:
        """Time-series rows for every tick the clock has passed."""
        tick_s = self.tick_s
        while self._tick_t <= self.t:
            self.ts_rows.append(
                (
                    self._tick_t,
                    len(self.running),
                    len(self.waiting),
                    self.kv.used / self.kv.num_blocks,
                    self.batch_tokens,
                )
            )
            self._tick += 1
            self._tick_t = self._tick * tick_s
