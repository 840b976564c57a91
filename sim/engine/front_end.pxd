# C types for front_end.py when Cython compiles it (setup.py); front_end.py is the reference.
cimport cython

cdef class FrontEnd:
    # fields: generated from __slots__ in front_end.py by tools/pxd_layout.py (do not edit)
    cdef public double request_s, prompt_tok_s, token_s, free_at_s, busy_s, w0, w1
    cpdef double admission_s(self, long long prompt_tokens)
    @cython.locals(start=double, end=double, lo=double, hi=double)
    cpdef double admit(self, double now_s, long long prompt_tokens, long long output_tokens)
    cpdef double utilization(self)
