# C types for plan.py when Cython compiles it (setup.py); plan.py is the reference.
cdef class StepPlan:
    cdef public tuple preempt, admit, chunks
    cdef public bint decode, repeatable
    cdef public object idle_until
