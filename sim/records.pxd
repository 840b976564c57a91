# C types for records.py when Cython compiles it (setup.py); records.py is the reference.
cimport cython

@cython.locals(idx="long long")
cpdef long long itl_bucket_one(double gap_s)
