# C types for replica.py when Cython compiles it (setup.py); replica.py is the reference.
cimport cython

from sim.engine.step_plan cimport StepPlan
from sim.engine.request cimport Request
from sim.engine.decode_group cimport DecodeGroup, Segment, new_segment
from sim.engine.kvcache cimport KVCache
from sim.engine.ledger cimport Ledger
from sim.engine.prefix_keys cimport PrefixKeys
from sim.engine.wake cimport Wake, WakeQueue, wake_q
from sim.engine.front_end cimport FrontEnd
from sim.records cimport itl_bucket_one
from sim.perf.perf_model cimport PerfModel

cpdef long long outstanding_key(rep)

cdef class Replica:
    # fields: generated from __slots__ in replica.py by tools/pxd_layout.py (do not edit)
    cdef public Ledger ledger
    cdef public PrefixKeys keys
    cdef public object env
    cdef public WakeQueue wq
    cdef public object name, pool, engine
    cdef public PerfModel perf
    cdef public object spec, group
    cdef public FrontEnd fe
    cdef public object policy, stats, waiting
    cdef public long long index, block_size, max_num_batched_tokens, max_num_seqs, max_model_len, outstanding, _seq, batch_tokens, _tick
    cdef public dict running, prefilling, _seg_coeffs, _dec_cpu_s
    cdef public KVCache kv
    cdef public DecodeGroup dec
    cdef public Segment seg
    cdef public double t, _w0, _w1, _tick_t, _idle_until, tick_s, _busy_s, _cpu_s, _flops, _bytes, _kv_block_s
    cdef public long long _steps, _streamed
    cdef public list outstanding_heaps
    cdef public long long[:] _itl
    cdef public list ts_rows
    cdef public bint _interruptible, failed, _stretch_ok, chunked_prefill
    cdef public Segment _run_seg
    cdef public long long _run_k, _run_steps, _cut_steps
    cdef public double _cut_t_end
    cdef public StepPlan _step_plan
    cdef public long long _step_n
    cdef public double _step_d, _step_t_end
    cdef public long long _step_prefill
    cdef public double _step_attn
    cdef public long long _step_ctx
    cdef public object _ev, _on_decode_end, _on_mixed_end, _schedule
    @cython.locals(total="long long")
    cpdef enqueue(self, Request req)
    cpdef _outstanding_changed(self)
    cpdef long long blocks_released_by(self, Request req)
    @cython.locals(seg=Segment, k="long long", steps="long long", t_end=double, old=Wake)
    cpdef _wake(self)
    cpdef _start_idle(self, double until)
    @cython.locals(dec=DecodeGroup, k="long long", n="long long", seg=Segment, steps="long long", t_end=double)
    cpdef _start_decode(self, bint stretch)
    @cython.locals(dec=DecodeGroup, kv=KVCache, steps="long long", free="long long", tick=double, t_end=double, cut="long long")
    cpdef _stretch(self, Segment seg, long long k)
    @cython.locals(plan=StepPlan)
    cpdef _plan(self, ev=*)
    @cython.locals(dec=DecodeGroup, kv=KVCache, bs="long long", req=Request, hit="long long", limit="long long", prefill_tokens="long long", attn=double, new_blocks="long long", c="long long", q="long long", n="long long", ctx="long long", d=double, t_end=double)
    cpdef _start_mixed(self, StepPlan plan)
    @cython.locals(dec=DecodeGroup, kv=KVCache, plan=StepPlan, n="long long", d=double, t_end=double, req=Request, q="long long", new="long long", sent=double)
    cpdef _mixed_end(self, ev)
    @cython.locals(dec=DecodeGroup, seg=Segment, k="long long", steps="long long", t_end=double, req=Request)
    cpdef _decode_end(self, ev)
    @cython.locals(seg=Segment, k="long long", steps="long long", j="long long")
    cpdef stream_to(self, double now)
    @cython.locals(streamed="long long")
    cpdef _stream_run(self, Segment seg, long long k, long long upto)
    @cython.locals(fe=FrontEnd, n="long long", j="long long", t=double)
    cpdef _stream_steps(self, Segment seg, long long first, long long last)
    @cython.locals(dec=DecodeGroup, first_end=double)
    cpdef _complete_steps(self, Segment seg, long long k, long long steps, double t_end)
    cpdef _idle_timeout(self, ev)
    cpdef _idle_interrupted(self, ev)
    cpdef _sampled(self, Request req, double t, double sent)
    @cython.locals(itl="long long[:]")
    cpdef _itl_after_stall(self, double t_end)
    cpdef _register_blocks(self, Request req)
    @cython.locals(private="long long")
    cpdef _release(self, Request req)
    @cython.locals(req=Request)
    cpdef _preempt(self, victims)
    @cython.locals(t=double)
    cpdef _finish(self, Request req)
    @cython.locals(itl="long long[:]", nb="long long", cls="long long", n="long long")
    cpdef _itl_add(self, list ncls, long long bucket, long long times)
    @cython.locals(kv=KVCache, prefill="long long", attn=double, n="long long", ctx="long long")
    cpdef _account_step(self, double t_end, double d, long long chunks)
    @cython.locals(w0=double, w1=double, last="long long", t_first=double, lo="long long", hi="long long", m="long long", ctx_sum="long long", dur=double, dec=DecodeGroup, kv=KVCache, used="long long", first="long long", cpu=object, itl="long long[:]", nb="long long")
    cpdef _account_decode(self, Segment seg, long long k, long long steps, double t_last)
    @cython.locals(tick_s=double)
    cpdef _sample(self)
