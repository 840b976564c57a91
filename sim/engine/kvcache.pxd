# C types for kvcache.py when Cython compiles it (setup.py); kvcache.py is the reference.
cimport cython

cdef class _Chain:
    # fields: generated from __slots__ in kvcache.py by tools/pxd_layout.py (do not edit)
    cdef public long long count, place, n
    cdef public bint owns
    cdef public list chain, keys

cdef class KVCache:
    # fields: generated from __slots__ in kvcache.py by tools/pxd_layout.py (do not edit)
    cdef public long long num_blocks, block_size, num_empty, hit_blocks, query_blocks, dormant, shared
    cdef public bint caching
    cdef public long long lru_start, lru_head
    cdef public dict refcount, chains, pending, evictable
    cdef public list lru
    cpdef list evictable_keys(self)
    cpdef allocate(self, long long n)
    @cython.locals(evictable=dict, lru=list, refcount=dict, start="long long", head="long long", place="long long", rec=_Chain, chain=list)
    cpdef _evict(self, long long n)
    @cython.locals(evictable=dict, lru=list, out=list, start="long long", place="long long", i=Py_ssize_t, j=Py_ssize_t, rec=_Chain, chain=list)
    cpdef _compact(self)
    @cython.locals(refcount=dict, evictable=dict, chain=list, i=Py_ssize_t)
    cpdef _dissolve(self, _Chain rec)
    cpdef clear(self)
    @cython.locals(refcount=dict, evictable=dict, lru=list, i=Py_ssize_t, rc="long long", place="long long", rec=_Chain)
    cpdef release(self, list keys, long long private_blocks)
    @cython.locals(rec=_Chain, m="long long")
    cpdef tuple match_chain(self, list chain, long long limit)
    @cython.locals(rec=_Chain)
    cpdef list hold(self, list chain, long long hit)
    @cython.locals(rec=_Chain, refcount=dict, i=Py_ssize_t)
    cpdef list promote(self, list keys, list chain)
    @cython.locals(rec=_Chain)
    cpdef long long freed_by(self, list keys)
    @cython.locals(rec=_Chain, refcount=dict, evictable=dict)
    cpdef bint register_next(self, list keys, list new, list chain)
    @cython.locals(refcount=dict, evictable=dict, hits="long long", evictable_hits="long long", rec=_Chain)
    cpdef tuple match(self, list keys)
    @cython.locals(refcount=dict, evictable=dict, rec=_Chain)
    cpdef acquire(self, list keys)
    @cython.locals(refcount=dict, evictable=dict)
    cpdef bint register_all(self, list keys)
    cpdef bint register(self, object key)
