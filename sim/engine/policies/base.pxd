# C types for base.py when Cython compiles it (setup.py); base.py is the reference.
cimport cython

from sim.engine.decode_group cimport DecodeGroup
from sim.engine.replica cimport Replica
from sim.engine.request cimport Request

cdef class Budget:
    # fields: generated from __slots__ in base.py by tools/pxd_layout.py (do not edit)
    cdef public long long tokens, free
    cdef public list victims
    cdef public object _order, _rep, _it
    cpdef candidates(self)

@cython.locals(bs="long long")
cpdef long long blocks_for(Replica rep, long long computed, long long tokens)
@cython.locals(dec=DecodeGroup, victim=Request)
cpdef bint preempt_for(Replica rep, long long need, Budget budget, protect=*)
@cython.locals(num_running="long long", bs="long long", req=Request, hit="long long", evictable_hits="long long", limit="long long", held="long long", done="long long", remaining="long long", q="long long", need="long long")
cpdef list admit_waiting(Replica rep, Budget budget, list chunks, bint whole_prompts, max_seqs=*)
cpdef Budget new_budget(long long tokens, long long free, order=*, rep=*)
cpdef _set_budget(Budget budget, long long tokens, long long free, order, rep)
