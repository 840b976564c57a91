# C types for front_end.py when Cython compiles it (setup.py); front_end.py is the reference.
cimport cython

cdef class FrontEnd:
    # fields: generated from __slots__ in front_end.py by tools/pxd_layout.py (do not edit)
    cdef public double request_s, prompt_tok_s, token_s, busy_s, w0, w1
    cdef public long long servers
    cdef public bint new_last
    cdef public double last_start_s
    cdef public list _free
    cpdef double admission_s(self, long long prompt_tokens)
    @cython.locals(k=Py_ssize_t, j=Py_ssize_t, start=double, end=double, lo=double, hi=double)
    cpdef double admit(self, double now_s, long long prompt_tokens)
    @cython.locals(k=Py_ssize_t, work=double, sent=double, s0=double, end=double, lo=double, hi=double, done=double)
    cpdef double stream(self, double t_s, long long tokens, long long new_tokens)
    cpdef double utilization(self)
    cpdef double busy_per_server_s(self)
