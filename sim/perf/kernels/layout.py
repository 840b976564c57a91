"""What a data-parallel or expert-parallel MoE layout adds, by formula: the exchange and the imbalance.

The kernel data measures DeepEP's all-to-all only (8 GPUs, one node), which vLLM
uses only when asked to; its default exchange for data-parallel MoE is an
all-gather before the experts and a reduce-scatter after them. Both the
roofline performance model (``sim.perf.perf_model``) and the measured step-time
tables (``sim.perf.kernels.tables``) cost it here, the same way, and take the
expert-parallel load imbalance (``expert_load_imbalance``) from here.
"""

from __future__ import annotations

import math

from sim.catalog import GPU, ModelSpec, QuantSpec

__all__ = ["moe_exchange_s", "expert_load_imbalance", "ep_gpus"]


def ep_gpus(model: ModelSpec, tp: int, dp: int, ep: bool) -> int:
    """GPUs the routed experts are spread over whole (vLLM's expert-parallel group: the replica's
    ``tp·dp`` GPUs), or 1 when each GPU holds a slice of every expert (no expert parallelism, or
    a dense model): then every GPU sees every token and there is no imbalance across GPUs."""
    return int(tp) * int(dp) if ep and model.num_experts > 1 else 1


def expert_load_imbalance(tokens: float, top_k: int, num_experts: int, gpus: int) -> float:
    """Expected (most loaded GPU) / (mean GPU) routed token-expert assignments of one MoE layer
    whose ``num_experts`` experts are spread whole over ``gpus`` GPUs (``num_experts/gpus`` per
    GPU), for a step of ``tokens`` tokens each sent to ``top_k`` experts; 1 with one GPU.

    Balls into bins: the step throws ``m = tokens·top_k`` assignments into ``n = gpus`` GPUs.
    Raab & Steger, "'Balls into Bins' — A Simple and Tight Analysis" (RANDOM 1998, LNCS 1518,
    pp. 159-170), Theorem 1: for ``m >= n·ln n`` the fullest bin holds
    ``m/n + sqrt(2·(m/n)·ln n)·(1 + o(1))``; its leading terms give
    ``1 + sqrt(2·ln(n) / (m/n))`` times the mean. A token puts at most ``min(top_k,
    num_experts/gpus)`` of its assignments on one GPU (the experts that GPU holds), so no GPU
    holds more than ``tokens·min(top_k, num_experts/gpus)``: the factor is capped at
    ``gpus·min(top_k, num_experts/gpus)/top_k`` (exact for one token). This is uniform,
    independent routing: a lower bound on real routers, whose expert popularity is skewed
    (docs/design.md, "Parallel layouts")."""
    if gpus <= 1 or tokens <= 0:
        return 1.0
    mean = tokens * top_k / gpus
    cap = gpus * min(top_k, num_experts / gpus) / top_k
    f = 1.0 + math.sqrt(2.0 * math.log(gpus) / mean)
    return f if f < cap else cap


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
