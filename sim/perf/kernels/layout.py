"""The communication of a data-parallel MoE layout, by the roofline.

The kernel data measures DeepEP's all-to-all only (8 GPUs, one node), which vLLM
uses only when asked to; its default exchange for data-parallel MoE is an
all-gather before the experts and a reduce-scatter after them. Both the
roofline performance model (``sim.perf.perf_model``) and the measured step-time
tables (``sim.perf.kernels.tables``) cost it here, the same way.
"""

from __future__ import annotations

from sim.catalog import GPU, ModelSpec, QuantSpec

__all__ = ["moe_exchange_s"]


def moe_exchange_s(
    model: ModelSpec, quant: QuantSpec, gpu: GPU, e_comm: float, t_latency_s: float, tp: int, dp: int
) -> tuple[float, float]:
    """(seconds per step, seconds per token of one rank) of the MoE layers' exchange across
    ``dp`` data-parallel ranks of ``tp`` GPUs: per MoE layer a dispatch (each GPU gathers the
    other ranks' tokens, ``(dp - 1)·T·hidden`` activations, its share ``1/tp`` of them) and a
    combine (the same back), each paying ``t_latency_s`` (the all-reduce latency
    coefficient), at the interconnect's one-direction bandwidth × ``e_comm``. Every rank is
    taken to carry as many tokens as this one. (0, 0) for one rank or a dense model."""
    layers = model.moe_layers
    if dp <= 1 or layers == 0:
        return 0.0, 0.0
    link = gpu.interconnect_bw_bytes_s * e_comm
    per_tok = 2 * layers * model.hidden_size * quant.activation_bytes * (dp - 1) / tp / link
    return 2 * layers * t_latency_s, per_tok
