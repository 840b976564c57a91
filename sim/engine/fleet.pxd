# C types for fleet.py when Cython compiles it (setup.py); fleet.py is the reference.
cimport cython

from sim.engine.front_end cimport FrontEnd
from sim.engine.ledger cimport Ledger
from sim.engine.prefix_keys cimport PrefixKeys
from sim.engine.replica cimport Replica
from sim.engine.request cimport Request, new_request
from sim.engine.routers cimport LeastOutstanding
from sim.engine.wake cimport WakeQueue, wake, wake_q

cdef class Fleet:
    # fields: generated from __slots__ in fleet.py by tools/pxd_layout.py (do not edit)
    cdef public object scenario, workload, progress, env
    cdef public WakeQueue wq
    cdef public object window, router
    cdef public LeastOutstanding _lo
    cdef public object _arrival_cols
    cdef public const double[:] _arr_t
    cdef public const short[:] _arr_cls
    cdef public const int[:] _arr_prompt, _arr_out
    cdef public long long _arr_n, _arr_every
    cdef public object _on_arrive, handoff, autoscaler, closed_loop
    cdef public bint exact_steps
    cdef public double tick_s
    cdef public list class_names, _priority, replicas, eligible, pools, front_ends, groups
    cdef public long long num_classes, _next_rid, _sent
    cdef public Ledger ledger
    cdef public PrefixKeys keys
    @cython.locals(now=double, rid="long long", n="long long", every="long long", t=double, cls="long long", req=Request, ledger=Ledger, keys=PrefixKeys, rep=Replica, times="const double[:]", classes="const short[:]", prompts="const int[:]", outputs="const int[:]")
    cpdef _arrive(self, ev)
    @cython.locals(fe=FrontEnd, wait=double)
    cpdef _admit(self, Replica rep, Request req, double now)
    cpdef enter(self, Replica rep, Request req)

cdef class _Enter:
    # fields: generated from __slots__ in fleet.py by tools/pxd_layout.py (do not edit)
    cdef public Fleet fleet
    cdef public Replica rep
    cdef public Request req

cdef class _Release:
    # fields: generated from __slots__ in fleet.py by tools/pxd_layout.py (do not edit)
    cdef public Fleet fleet
    cdef public long long rid
