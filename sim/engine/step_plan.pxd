# C types for plan.py when Cython compiles it (setup.py); plan.py is the reference.
cdef class StepPlan:
    # fields: generated from __slots__ in step_plan.py by tools/pxd_layout.py (do not edit)
    cdef public tuple preempt, admit, chunks
    cdef public bint decode, repeatable
    cdef public object idle_until

cpdef StepPlan new_step_plan(tuple preempt, tuple admit, tuple chunks, bint decode, bint repeatable, idle_until)
cpdef _set_plan(StepPlan plan, tuple preempt, tuple admit, tuple chunks, bint decode, bint repeatable, idle_until)
