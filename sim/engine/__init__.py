"""The discrete-event engine: a ``Fleet`` of ``Replica`` objects, each a
vLLM-like engine loop (batching ``policies`` planning ``StepPlan`` steps, a
paged ``KVCache`` with prefix caching, ``DecodeGroup`` closed forms, step
times from the pool's ``sim.perf`` model), a router, and the SimPy adapter
(``wake``): the event loop and its state.
It receives a scenario, a workload and a failure schedule (``inputs``) and
returns a ``SimResult`` (per-request records, time series, ITL histogram).

This package file imports nothing: the compiled build loads its modules
one by one (see setup.py)."""
