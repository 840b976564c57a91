# C types for request.py when Cython compiles it (setup.py); request.py is the reference.
cdef class Request:
    # fields: generated from __slots__ in request.py by tools/pxd_layout.py (do not edit)
    cdef public long long rid, cls, prompt, output, priority, seq
    cdef public double arrival_s
    cdef public object block_keys
    cdef public long long generated, computed, state, preemptions, cached_tokens
    cdef public list keys
    cdef public double first_token_s, last_token_s, enqueue_s
    cdef public long long k_join, c_join, g_join, phase, join_id, remote_tokens

cpdef Request new_request(long long rid, long long cls, long long prompt, long long output, double arrival_s, long long priority, long long seq, block_keys)
cpdef _fill(Request req, long long rid, long long cls, long long prompt, long long output, double arrival_s, long long priority, long long seq, block_keys)
