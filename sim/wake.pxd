# C types for wake.py when Cython compiles it (setup.py); wake.py is the reference.
cdef class Wake:
    cdef public object callback

cpdef Wake wake(env, double delay, callback, long long priority=*)
