"""Roofline efficiencies from a GPU's own achievable rates (catalog ``achievable_*`` fields).

A GPU without measured kernels used to run at the fraction of its datasheet peak that a
sibling of its architecture reaches (``architectures.yaml``); fractions of a sibling's peak
do not carry across power envelopes (issue 24: a 450 W RTX 4090 reaches more of its peak than
a 350 W L40S). With achievable rates measured on the GPU itself (a published microbenchmark,
or ``fleetcast calibrate microbench``), the rule is

    e_compute = KAPPA_COMPUTE[dtype] * achievable_flops[dtype] / peak_flops[dtype]
    e_memory  = KAPPA_MEMORY * achievable_bw_bytes_s / hbm_bw_bytes_s

where kappa is the fraction of the achievable rate that vLLM's layer-sized GEMMs reach on
GPUs with measured kernels: the geometric mean over aiconfigurator-core's GPUs with a
published achievable rate, from ``bench/achievable_loo.py`` (which also holds each GPU out in
turn and reports the error; calibration/README.md, "Achievable rates").
"""

from __future__ import annotations

__all__ = ["KAPPA_COMPUTE", "KAPPA_MEMORY", "achievable_efficiencies"]

KAPPA_COMPUTE = {"bf16": 0.927, "fp8": 0.736}
"""Measured throughput of compute-bound vLLM GEMMs / the GPU's achievable GEMM rate, per dtype
(other dtypes use bf16's); bench/achievable_loo.py."""
KAPPA_MEMORY = 0.919
"""Measured bytes/s of bandwidth-bound vLLM GEMMs / the GPU's achievable copy bandwidth."""
_SOURCE = "bench/achievable_loo.py over aiconfigurator-core's GPUs with published achievable rates"


def achievable_efficiencies(gpu, dtype: str) -> tuple[dict[str, float], str]:
    """``({"e_compute": ..., "e_memory": ...}, text)`` from ``gpu``'s (a ``catalog.GPU``)
    achievable rates at the linear layers' ``dtype``; only the efficiencies it has rates for
    (empty without), each at most 1."""
    out: dict[str, float] = {}
    said = []
    rates = gpu.achievable_flops or {}
    if dtype in rates:
        kappa = KAPPA_COMPUTE.get(dtype, KAPPA_COMPUTE["bf16"])
        out["e_compute"] = min(1.0, kappa * rates[dtype] / gpu.peak_flops[dtype])
        said.append(
            f"e_compute {out['e_compute']:.3f} = {kappa:g} x achievable {rates[dtype] / 1e12:g} / peak "
            f"{gpu.peak_flops[dtype] / 1e12:g} TFLOPS at {dtype}"
        )
    if gpu.achievable_bw_bytes_s:
        out["e_memory"] = min(1.0, KAPPA_MEMORY * gpu.achievable_bw_bytes_s / gpu.hbm_bw_bytes_s)
        said.append(
            f"e_memory {out['e_memory']:.3f} = {KAPPA_MEMORY:g} x achievable {gpu.achievable_bw_bytes_s / 1e9:g} / "
            f"peak {gpu.hbm_bw_bytes_s / 1e9:g} GB/s"
        )
    if not out:
        return out, ""
    return out, (
        f"achievable rates of {gpu.name} ({'; '.join(said)}; kappa: {_SOURCE}; rates: the catalog entry's "
        "sources, `fleetcast catalog`)"
    )
