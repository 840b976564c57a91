# C types for decode_group.py when Cython compiles it (setup.py); decode_group.py is the reference.
cimport cython

from sim.engine.request cimport Request

cdef class DecodeGroup:
    # fields: generated from __slots__ in decode_group.py by tools/pxd_layout.py (do not edit)
    cdef public long long block_size, k, n, ctx, joins, heap_n
    cdef public list cnt
    cdef public object heap_arr
    cdef public long long[:] heap
    cdef public list ncls
    cdef public dict members
    cdef public double last_t
    cdef public bint stalled
    @cython.locals(key="long long", i="long long", parent="long long", heap="long long[:]")
    cpdef join(self, Request req)
    cpdef _grow(self)
    @cython.locals(heap="long long[:]", n="long long", top="long long", last="long long", i="long long", c="long long")
    cpdef long long _pop_min(self)
    @cython.locals(done="long long")
    cpdef leave(self, Request req)
    cpdef long long computed_of(self, Request req)
    cpdef long long need_now(self)
    cpdef bint needs_block_now(self, Request req)
    @cython.locals(members=dict, key="long long", mask="long long")
    cpdef next_finish_k(self)
    cpdef bint finished_any(self)
    @cython.locals(req=Request, members=dict, limit="long long", mask="long long")
    cpdef list pop_finished(self)
    @cython.locals(bs="long long", full="long long", rest="long long", need="long long", p="long long", lo="long long", cnt=list, s="long long")
    cpdef long long blocks_needed(self, long long steps)
    @cython.locals(n="long long", bs="long long", cycles="long long", rem="long long", k0="long long", need="long long", s="long long")
    cpdef long long steps_until_exhaustion(self, long long free)
    cpdef advance(self, long long steps)

cdef class Segment:
    # fields: generated from __slots__ in decode_group.py by tools/pxd_layout.py (do not edit)
    cdef public double t0, a, b, f0, f1, y0, y1
    cdef public long long k0, c0, n
    cpdef long long ctx_sum(self, long long m)
    @cython.locals(m="long long")
    cpdef double t_end(self, long long k)
    cpdef double duration(self, long long k)
    @cython.locals(y=double, qa=double, qb=double, m=double, c="long long", k="long long")
    cpdef long long first_step_ending_at_or_after(self, double x)

cpdef Segment new_segment(double t0, long long k0, long long c0, long long n, double a, double b, tuple flops, tuple bytes_)
cpdef _set_segment(Segment seg, double t0, long long k0, long long c0, long long n, double a, double b, tuple flops, tuple bytes_)
