# C types for front_end.py when Cython compiles it (setup.py); front_end.py is the reference.
cimport cython

cdef class FrontEnd:
    # fields: generated from __slots__ in front_end.py by tools/pxd_layout.py (do not edit)
    cdef public double request_s, prompt_tok_s, token_s, busy_s, w0, w1
    cdef public long long servers
    cdef public list _free
    cpdef double admission_s(self, long long prompt_tokens)
    @cython.locals(k=Py_ssize_t, j=Py_ssize_t, start=double, end=double, lo=double, hi=double)
    cpdef double admit(self, double now_s, long long prompt_tokens)
    @cython.locals(k=Py_ssize_t, work=double, span=double, start=double, end=double, lo=double, hi=double)
    cpdef void stream(self, double t0_s, double t1_s, long long tokens)
    cpdef double utilization(self)
    cpdef double busy_per_server_s(self)
