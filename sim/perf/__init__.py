"""The performance model: how long one engine step takes and how a GPU's memory
is split, for a (GPU, model, quantization, parallel layout); no SimPy, no I/O
on the hot path.

``perf_model`` (``PerfModel``: the roofline, or measured ``kernels`` tables
where installed, plus CPU overheads from ``PerfCoefficients``), ``profiles``
(calibrated coefficients), ``step_source`` (which of those a pool uses),
``memory`` (vLLM's memory plan and KV blocks), ``speculative`` (step times of
a speculating pool) and ``pool_model`` (``PoolModel``: all of it for one pool,
built once per run and carried in ``SimResult.pools``). The engine imports
this package, never the reverse.

This package file imports nothing: the compiled build loads its modules
one by one (see setup.py)."""
