# C types for records.py when Cython compiles it (setup.py); records.py is the reference.
cimport cython
cimport libc.math as math

@cython.locals(idx="long long")
cpdef long long itl_bucket_one(double gap_s)
