# C types for kvcache.py when Cython compiles it (setup.py); kvcache.py is the reference.
cimport cython

cdef class KVCache:
    # fields: generated from __slots__ in kvcache.py by tools/pxd_layout.py (do not edit)
    cdef public long long num_blocks, block_size, num_empty, hit_blocks, query_blocks
    cdef public bint caching
    cdef public long long lru_start, lru_head
    cdef public dict refcount, chains, evictable
    cdef public list lru
    cpdef allocate(self, long long n)
    @cython.locals(evictable=dict, lru=list, start="long long", head="long long", place="long long")
    cpdef _evict(self, long long n)
    @cython.locals(evictable=dict, lru=list, i=Py_ssize_t)
    cpdef _compact(self)
    cpdef clear(self)
    @cython.locals(refcount=dict, evictable=dict, lru=list, i=Py_ssize_t, rc="long long", place="long long")
    cpdef release(self, list keys, long long private_blocks)
    cpdef tuple match_chain(self, list chain, long long limit)
    cpdef list hold(self, list chain, long long hit)
    cpdef list promote(self, list keys, list chain)
    cpdef long long freed_by(self, list keys)
    @cython.locals(refcount=dict, hits="long long", evictable_hits="long long")
    cpdef tuple match(self, list keys)
    cpdef acquire(self, list keys)
    @cython.locals(refcount=dict)
    cpdef bint register_all(self, list keys)
    cpdef bint register(self, object key)
