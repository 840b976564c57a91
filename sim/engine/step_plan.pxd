# C types for plan.py when Cython compiles it (setup.py); plan.py is the reference.
cdef class StepPlan:
    # fields: generated from __slots__ in step_plan.py by tools/pxd_layout.py (do not edit)
    cdef public tuple preempt, admit, chunks
    cdef public bint decode, repeatable
    cdef public object idle_until
