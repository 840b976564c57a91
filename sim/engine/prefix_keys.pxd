# C types for prefix_keys.py when Cython compiles it (setup.py); prefix_keys.py is the reference.
cimport cython

cdef class PrefixKeys:
    # fields: generated from __slots__ in prefix_keys.py by tools/pxd_layout.py (do not edit)
    cdef public const long long[:] _offsets, _chain_keys
    cdef public const int[:] _chain_ends
    cdef public dict _key_cache, _base, _last
    @cython.locals(lo="long long")
    cpdef first_key(self, long long rid)
    @cython.locals(lo="long long", hi="long long", n_full="long long", j="long long", i="long long", end="long long", base=list, base_key=tuple, start="unsigned long long", u="unsigned long long", last=tuple)
    cpdef block_keys(self, long long rid, long long block_size)
