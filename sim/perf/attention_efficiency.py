"""Attention's own roofline efficiency, for GPUs without measured kernels.

vLLM's prefill attention (FlashAttention) reaches a smaller fraction of the 16-bit peak than its
layer-sized GEMMs: on every GPU of aiconfigurator-core's vLLM tables, about 0.56 of the GEMMs'
efficiency (calibration/README.md, "GPUs without kernel data: achievable rates"). A roofline pool
(no measured kernels, no profile) therefore runs prefill attention at

    e_attn_compute = RHO_ATTN_COMPUTE * e_compute(bf16)

where ``e_compute(bf16)`` is the efficiency its 16-bit linear layers run at (the GPU's achievable
rate, its architecture sibling's fit, or the default). The ratio form carries across GPUs better
than a fraction of a peak or of an achievable rate: a clock or power limit slows a GPU's GEMMs and
its attention alike. Decode attention gets no coefficient: its ratio to the GEMMs' bandwidth
efficiency differs between GPUs (0.72-0.78 on A100/H100/H200, 0.92-1.14 on B200, RTX PRO 6000 and
L40S), and one shared value predicts every held-out GPU worse than the linear layers' efficiency
does (``bench/achievable_loo.py``), so ``e_attn_memory`` stays 0 (= ``e_memory``) unless a profile
or a catalog ``perf_defaults`` sets it.
"""

from __future__ import annotations

__all__ = ["RHO_ATTN_COMPUTE", "TRAINING_SYSTEMS", "attention_efficiencies"]

TRAINING_SYSTEMS = ("a100_sxm", "h100_sxm", "h200_sxm", "b200_sxm", "rtx_pro_6000_server", "l40s")
"""aiconfigurator-core systems whose vLLM GEMM and attention tables fit the ratio (every system the
catalog names as a GPU's ``kernel_data``)."""
RHO_ATTN_COMPUTE = 0.558
"""Prefill attention's FLOP/s / the GEMMs' FLOP/s at bf16, on the same GPU: geometric mean over
TRAINING_SYSTEMS of each GPU's own ratio (geometric means over its causal prefill attention
kernels, prompts >= 1,024 tokens, and over its compute-bound GEMMs); bench/achievable_loo.py fits
it and holds each GPU out in turn."""
_SOURCE = "bench/achievable_loo.py over aiconfigurator-core's vLLM attention and GEMM tables of " + ", ".join(
    TRAINING_SYSTEMS
)


def attention_efficiencies(e_compute_bf16: float) -> tuple[dict[str, float], str]:
    """``({"e_attn_compute": ...}, text)``: prefill attention's efficiency on a roofline pool whose
    16-bit linear layers run at ``e_compute_bf16``, and where it comes from."""
    e = min(1.0, RHO_ATTN_COMPUTE * e_compute_bf16)
    return {"e_attn_compute": e}, (
        f"attention e_attn_compute {e:.3f} = {RHO_ATTN_COMPUTE:g} x the 16-bit linear e_compute "
        f"{e_compute_bf16:.3f} (vLLM prefill attention vs GEMMs, {_SOURCE}); decode attention at e_memory"
    )
