# C types for ledger.py when Cython compiles it (setup.py); ledger.py is the reference.
cimport cython

from sim.engine.request cimport Request

cdef class Ledger:
    # fields: generated from __slots__ in ledger.py by tools/pxd_layout.py (do not edit)
    cdef public object first_token, finish_s, out_tokens, cached, preempt, replica_of, status, done, on_leave
    cdef public long long active
    cdef public bint arrivals_done
    cdef public double[:] _first_token_v, _finish_s_v
    cdef public long long[:] _out_tokens_v, _cached_v, _preempt_v, _replica_of_v
    cdef public signed char[:] _status_v
    cpdef arrive(self, long long rid, long long replica_index)
    cpdef arrivals_over(self)
    @cython.locals(rid="long long")
    cpdef finish(self, Request req, double t)
    cpdef reject(self, Request req, long long replica_index)
    cpdef _leave(self)
