# C types for fleet.py when Cython compiles it (setup.py); fleet.py is the reference.
cimport cython

from sim.request cimport Request
from sim.wake cimport wake

cdef class Fleet:
    cdef public object scenario, workload, progress, env, window, done, router, _arrival_cols
    cdef public bint exact_steps, _arrivals_done
    cdef public double tick_s
    cdef public list class_names, _priority, replicas, _offsets, _chain_keys, _chain_ends, eligible
    cdef public long long num_classes, active, _next_rid
    cdef public object first_token, finish_s, out_tokens, cached, preempt, replica_of, status
    cdef public dict _key_cache, _max_len
    cpdef long long max_model_len(self, pool)
    @cython.locals(lo="long long", hi="long long", n_full="long long", j="long long", i="long long", end="long long")
    cpdef block_keys(self, long long rid, long long block_size)
    @cython.locals(rid="long long")
    cpdef finish(self, Request req, rep)
    cpdef reject(self, Request req, rep)
    cpdef _leave(self)
    @cython.locals(now=double, rid="long long", n="long long", every="long long", t=double, cls="long long", req=Request)
    cpdef _arrive(self, ev)
