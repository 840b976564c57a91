# C types for __init__.py when Cython compiles it (setup.py); __init__.py is the reference.
cimport cython

cdef class LeastOutstanding:
    # fields: generated from __slots__ in __init__.py by tools/pxd_layout.py (do not edit)
    cdef public dict _tracked, _heaps
    @cython.locals(key="long long", heap=list, by_index=dict, st=tuple)
    cpdef choose(self, list replicas, long long rid, prefix_key, double now)
