# C types for continuous.py when Cython compiles it (setup.py); continuous.py is the reference.
cimport cython

from sim.engine.decode_group cimport DecodeGroup
from sim.engine.policies.base cimport Budget, admit_waiting, blocks_for, new_budget, preempt_for
from sim.engine.kvcache cimport KVCache
from sim.engine.replica cimport Replica
from sim.engine.request cimport Request
from sim.engine.step_plan cimport new_step_plan

cdef class ContinuousBatching:
    # fields: generated from __slots__ in continuous.py by tools/pxd_layout.py (do not edit)
    cdef public object params
    cpdef make_queue(self)
    cpdef bint wake_on_arrival(self, rep)
    cpdef victim_order(self, rep)
    @cython.locals(dec=DecodeGroup, kv=KVCache, free="long long", n_dec="long long", v=Request, req=Request, q="long long", budget=Budget, victims=list)
    cpdef schedule(self, Replica rep)
