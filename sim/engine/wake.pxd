# C types for wake.py when Cython compiles it (setup.py); wake.py is the reference.
cimport cython

cdef class Wake:
    # fields: generated from __slots__ in wake.py by tools/pxd_layout.py (do not edit)
    cdef public double at
    cdef public long long priority, eid
    cdef public object callback

cpdef bint _before(Wake a, Wake b)

@cython.locals(pos=Py_ssize_t, parent=Py_ssize_t, up=Wake)
cpdef _push(list heap, Wake w)

@cython.locals(last=Wake, top=Wake, c=Wake, right=Wake, n=Py_ssize_t, pos=Py_ssize_t, child=Py_ssize_t)
cpdef Wake _pop(list heap)

cdef class WakeQueue:
    # fields: generated from __slots__ in wake.py by tools/pxd_layout.py (do not edit)
    cdef public double now
    cdef public list heap
    cdef public object eid

cpdef Wake wake(env, double delay, callback, long long priority=*)

@cython.locals(w=Wake)
cpdef Wake wake_q(WakeQueue q, double delay, callback, long long priority=*)

@cython.locals(w=Wake, t=double, ran=bint, compiled=bint, wakes=list)
cpdef bint _run_wakes(env, WakeQueue q, list queue)
