"""Performance model: how long one engine step takes, and how memory is split.

Pure functions of (GPU, model, quantization, tensor parallelism, step); no
SimPy, no I/O on the hot path. docs/design.md, "Performance model", is the spec:
a step is split into parts (linear layers, prefill attention, decode
attention), each costing ``max(FLOPs / (peak · e_compute), bytes / (bw ·
e_memory))``; the parts are SUMMED (so a decode-only step is affine in its
total context), then tensor-parallel all-reduces and fixed overheads are
added. Everything is per GPU of the TP group, which runs in lock step.

With measured kernels (``kernels=``, a ``sim.perf.kernels.tables.KernelTables``)
the linear layers, all-reduces and attention come from tables and fitted
coefficients instead (docs/design.md, "Measured kernels"); the CPU overheads
stay coefficients, and a part the tables lack keeps the roofline below.

Modelling choices of the roofline (each one a documented approximation):
- Linear FLOPs are ``2 · P_compute · T`` with T = prefill tokens + decodes
  and P_compute the active parameters minus the input-embedding table (a
  lookup, not a matmul). The LM head is charged for all T tokens (vLLM only
  samples the last token of a prefill, so this overestimates prefill by
  vocab·hidden/P, ~7% for Llama-3.1-8B; calibration absorbs it).
- Weights are read once per step: everything but the input-embedding table.
  MoE: with T tokens and top-k routing over E experts, the expected number of
  distinct experts touched per layer is ``E · (1 - (1 - k/E)^T)`` (uniform
  independent routing); only those experts' bytes are read.
- Embeddings, LM head, norms and routers are 16-bit in every scheme; the
  quantization's bytes/param applies to attention and MLP/expert matrices.
- Activations: each per-token tensor of a layer is written once and read once
  (norm and SiLU·mul fused as in vLLM), fp32 logits, plus the new KV entries.
- KV heads are split over TP ranks; when tp > num_kv_heads vLLM replicates
  them, so a GPU holds ``ceil(kv_heads / tp)`` heads.
- Prefill attention reads KV once per 128-query tile (FlashAttention), so its
  bytes are ``prefill_attn / 128 · kv_bytes_per_token``; attention always runs
  at 16-bit peak (vLLM attention kernels compute in fp16/bf16), at its own
  efficiencies ``e_attn_compute`` / ``e_attn_memory`` where set (else the linear
  layers').
- TP: two ring all-reduces per layer of ``T · hidden · 2`` bytes, moving
  ``2 (tp-1)/tp`` of it over the interconnect, plus ``t_allreduce_s`` each.
- A software stack's own fixed GPU costs, where a rule sets them (``sim.perf.rocm_stack``;
  0 elsewhere): ``t_layer_s`` per layer per step, added to the linear layers' time; and
  vLLM's PagedAttention V1 decode kernel
  (``e_attn_v1``), which reads each query head's K/V (no sharing across a GQA group) and
  which vLLM picks over V2 when ``num_seqs · heads_per_gpu > 512``
  (``PAGED_V1_SEQ_HEADS``; vllm/attention/ops/paged_attn.py ``forward_decode``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sim.catalog import GPU, ModelSpec, QuantSpec
from sim.errors import FleetcastError
from sim.perf.kernels.layout import ep_gpus, expert_load_imbalance, moe_exchange_s

__all__ = [
    "PerfCoefficients",
    "PerfModel",
    "roofline_floor_s",
    "attention_units",
    "ATTN_QUERY_TILE",
    "PAGED_V1_SEQ_HEADS",
]

ATTN_QUERY_TILE = 128
"""Queries per FlashAttention tile: KV is re-read once per tile during prefill."""
_LOGIT_BYTES = 4  # vLLM computes logits in fp32
PAGED_V1_SEQ_HEADS = 512
"""vLLM's PagedAttention decode runs its V1 kernel (one thread block per query head and sequence,
no context partitions) when ``num_seqs * num_heads > 512`` (or the context fits one 512-token
partition), V2 otherwise: ``use_v1`` in ``PagedAttention.forward_decode``,
vllm/attention/ops/paged_attn.py (v0.6.1)."""


@dataclass(frozen=True)
class PerfCoefficients:
    """Efficiencies and overheads of one (hardware, engine, quantization).

    Defaults are conservative published figures, to be replaced by
    ``calibration.fit`` with measured ones:

    - ``e_compute`` 0.55: large bf16 GEMMs reach ~70-80% of dense peak, whole
      transformer passes less: Megatron-LM (Narayanan et al., SC'21) sustains
      52% of A100 peak, PaLM (Chowdhery et al., 2022) reports 46.2% MFU.
    - ``e_memory`` 0.75: streaming kernels reach ~90% of spec HBM bandwidth;
      Databricks "LLM Inference Performance Engineering: Best Practices"
      (2023) reports ~55-60% end-to-end decode MBU *including* overheads,
      which here sit in t_step_s/t_seq_s instead.
    - ``e_comm`` 0.7: nccl-tests all-reduce bus bandwidth on NVLink reaches
      ~75-85% of the per-direction link rate for large messages, less for the
      small ones decode sends.
    - ``t_step_s`` 1 ms, ``t_seq_s`` 20 µs: vLLM v1 CPU work per step
      (scheduling, input preparation, graph launch) and per sequence
      (sampling, detokenization); order-of-magnitude assumptions.
    - ``t_allreduce_s`` 10 µs: latency of one small NCCL all-reduce inside a
      node (vLLM's custom all-reduce is a few µs).
    - ``e_attn_compute`` / ``e_attn_memory`` 0: the attention kernels' own efficiencies
      (FLOPs at the 16-bit peak; KV and Q/O bytes at the bandwidth); 0 runs attention at
      ``e_compute`` / ``e_memory``. Pools without measured kernels and without a profile get
      ``e_attn_compute`` from ``sim.perf.attention_efficiency`` (vLLM's measured prefill
      attention reaches about 0.56 of the GEMMs' efficiency).
    - ``t_request_s`` 0: latency every request pays outside the engine's steps
      (HTTP parsing, the API server → engine-core hand-off, first output
      processing). It adds to TTFT and E2E but takes no engine time, so it is
      applied to the records after the run (a constant entry delay shifts the
      whole schedule and changes nothing else). Only testbed calibrations fit
      it (single-request TTFT at two prompt lengths); 0 elsewhere.
    """

    e_compute: float = 0.55  # achieved / peak FLOP/s of compute-bound parts, 0 < e <= 1
    e_memory: float = 0.75  # achieved / peak HBM bandwidth of memory-bound parts
    e_comm: float = 0.7  # achieved / peak interconnect bandwidth of all-reduces
    t_step_s: float = 1.0e-3  # fixed overhead per engine step
    t_seq_s: float = 20e-6  # overhead per sequence in the step
    t_prefill_tok_s: float = 0.0  # CPU overhead per prefill token
    source: str = "fleetcast defaults: published figures, uncalibrated (see PerfCoefficients)"
    t_allreduce_s: float = 10e-6  # latency per all-reduce (tp > 1)
    t_request_s: float = 0.0  # per-request latency outside engine steps (API server, hand-offs); no engine time
    e_attn_compute: float = 0.0  # achieved / 16-bit peak FLOP/s of attention kernels; 0: e_compute's value
    e_attn_memory: float = 0.0  # achieved / peak bandwidth of attention's KV (and Q/O) traffic; 0: e_memory's value
    t_layer_s: float = 0.0  # GPU seconds per layer per step a software stack adds (sim.perf.rocm_stack); 0: none
    e_attn_v1: float = 0.0  # PagedAttention V1 decode: per-query-head K/V bytes / peak bandwidth; 0: not modelled

    def __post_init__(self) -> None:
        for name in ("e_compute", "e_memory", "e_comm"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise FleetcastError(
                    f"performance coefficient {name} must be in (0, 1], "
                    f"got {getattr(self, name)!r} (from {self.source})"
                )
        for name in ("e_attn_compute", "e_attn_memory", "e_attn_v1"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FleetcastError(
                    f"performance coefficient {name} must be in (0, 1] (or 0: the linear layers' "
                    f"efficiency), got {getattr(self, name)!r} (from {self.source})"
                )
        for name in ("t_step_s", "t_seq_s", "t_prefill_tok_s", "t_allreduce_s", "t_request_s", "t_layer_s"):
            if not getattr(self, name) >= 0.0:
                raise FleetcastError(
                    f"performance coefficient {name} must be >= 0 seconds, "
                    f"got {getattr(self, name)!r} (from {self.source})"
                )


class ModelShape:
    """Byte/FLOP constants of (model, quantization, tp) shared by perf and memory.

    ``tp`` is the attention's tensor-parallel size (one data-parallel rank). The routed
    experts are kept apart (``routed_bytes_total``) because a data-parallel layout spreads
    them over more GPUs than the rest (``sim.perf.perf_model.PerfModel``, ``plan_memory``)."""

    def __init__(self, model: ModelSpec, quant: QuantSpec, tp: int):
        if isinstance(tp, bool) or not float(tp).is_integer() or tp < 1 or model.num_heads % int(tp):
            valid = [t for t in range(1, 65) if model.num_heads % t == 0]
            raise FleetcastError(
                f"tp={tp!r} does not divide the {model.num_heads} attention heads of "
                f"model '{model.name}'; valid tp values: {', '.join(map(str, valid))}."
            )
        m, wb, ab = model, quant.weight_bytes_per_param, quant.activation_bytes
        L, h = m.num_layers, m.hidden_size
        embed_in = m.vocab_size * h if not m.tie_word_embeddings else 0  # a lookup, not read whole
        self.expert_bytes = m.params_per_expert * wb  # one expert (or the dense MLP), one layer
        if m.num_experts == 1:
            other16 = m.params_embedding + L * (m.params_dense_per_layer - m.params_attention_per_layer) + h
            base = other16 * 2 + L * m.params_attention_per_layer * wb
            self.moe_layers = L  # the dense MLP counts as one always-touched "expert" per layer
        else:  # + the leading dense MLPs and the shared experts: quantized, read every step
            always = m.first_dense_layers * m.params_dense_mlp + m.moe_layers * m.params_shared_expert
            base = m.params_16bit * 2 + (L * m.params_attention_per_layer + always) * wb
            self.moe_layers = m.moe_layers
        self.routed_bytes_total = self.moe_layers * m.num_experts * self.expert_bytes
        self.weight_bytes_total = base + self.routed_bytes_total
        self.weight_read_base = base - embed_in * 2  # read every step, besides experts
        self.flops_per_token = 2.0 * (m.params_active - embed_in)
        if m.is_mla:  # one latent (+ rotary key) per token and layer, on every rank: not split over TP
            self.kv_heads_per_gpu = 1
            self.kv_bytes_per_token_per_gpu = m.kv_bytes_per_token(quant.kv_bytes_per_elem)
        else:
            self.kv_heads_per_gpu = math.ceil(m.num_kv_heads / tp)
            self.kv_bytes_per_token_per_gpu = 2 * L * self.kv_heads_per_gpu * m.head_dim * quant.kv_bytes_per_elem
        width = m.num_experts_active * (m.moe_intermediate_size if m.num_experts > 1 else m.intermediate_size)
        width += m.shared_expert_intermediate_size
        if m.is_mla:  # q heads, the latent + rotary key, the attention output heads
            H = m.num_heads
            q, kv = H * (m.qk_nope_head_dim + m.qk_rope_head_dim), (m.kv_lora_rank + m.qk_rope_head_dim) / 2
            o = H * m.v_head_dim
        else:
            q, kv = m.num_heads * m.head_dim, m.num_kv_heads * m.head_dim
            o = q
        self.mlp_width_per_gpu = width / tp  # intermediate activations one token produces per GPU
        self.act_bytes_per_token = (
            2 * ab * L * (4 * h + (q + 2 * kv + o + 3 * width) / tp)
            + 2 * _LOGIT_BYTES * m.vocab_size / tp
            + self.kv_bytes_per_token_per_gpu
        )


def attention_units(model: ModelSpec, tp: int) -> tuple[float, float]:
    """(decode, prefill) attention FLOPs per (query, cached key) pair on one GPU of a TP group.

    Multi-head: ``4·L·heads·head_dim/tp`` for both (QK^T and PV). MLA decodes in vLLM's
    absorbed form, over the latent: ``2·L·heads/tp·(2·kv_lora_rank + qk_rope_head_dim)``; its
    prefill runs FlashAttention on decompressed keys and values:
    ``2·L·heads/tp·(qk_nope + qk_rope + v_head_dim)``."""
    L, H = model.num_layers, model.num_heads
    if not model.is_mla:
        u = 4.0 * L * H * model.head_dim / tp
        return u, u
    dec = 2.0 * L * H * (2 * model.kv_lora_rank + model.qk_rope_head_dim) / tp
    pre = 2.0 * L * H * (model.qk_nope_head_dim + model.qk_rope_head_dim + model.v_head_dim) / tp
    return dec, pre


class PerfModel:
    """Step times of one engine (a TP group of ``tp`` GPUs) serving one model.

    With ``dp`` > 1 the engine is one of ``dp`` data-parallel ranks of a replica: its
    attention and dense layers are its own, its MoE layers run together with the other
    ranks'. Every rank is taken to carry a batch like its own (symmetric load), so the
    routed experts see ``dp·T`` tokens spread over ``tp·dp`` GPUs (per GPU the same FLOPs
    as ``T`` tokens over ``tp``, but more distinct experts touched), and every MoE layer
    adds a dispatch and a combine across the ranks. ``ep`` (expert parallelism) shards
    whole experts instead of slicing each: the same bytes per GPU in the roofline, but the
    routed experts' FLOPs are those of the most loaded GPU (``expert_load_imbalance`` times
    the mean at the step's ``dp·T`` tokens); the measured MoE kernels differ by layout too.

    The hot methods take plain numbers and allocate nothing: they run about a
    million times per simulation. Compiled (setup.py), this is a ``cdef class`` whose fields
    have the C types below (``perf_model.pxd``), so the hot methods read them without a
    dictionary look-up; the public attributes that reach outputs keep their Python values.
    """

    __slots__ = {
        "gpu": "object",
        "model": "object",
        "quant": "object",
        "coeffs": "object",
        "source": "object",
        "compute_dtype": "object",
        "peak_flops": "object",
        "hbm_bw_bytes_s": "object",
        "kernels": "object",
        "_lin": "object",
        "_lm": "object",
        "_affine": "dict",
        "tp": "long long",
        "dp": "long long",
        "_ep_gpus": "long long",
        "_n_lin": "long long",
        "ep": "bint",
        "cpu_overlap": "bint",
        "_mla": "bint",
        "_kdec": "bint",
        "_kpre": "bint",
        "clock_ratio": "double",
        "_t_step_s": "double",
        "_t_seq_s": "double",
        "_t_prefill_tok_s": "double",
        "_peak_max": "double",
        "_inv_flops_lin": "double",
        "_inv_flops_attn": "double",
        "_inv_bw": "double",
        "_inv_bw_attn": "double",
        "_lin_flops_tok": "double",
        "_w_base": "double",
        "_w_experts": "double",
        "_miss": "double",
        "_routed_flops_s_tok": "double",
        "_act_tok": "double",
        "_attn_flops_unit": "double",
        "_attn_flops_prefill": "double",
        "_kv_tok": "double",
        "_qo_bytes_tok": "double",
        "_b_decode": "double",
        "_dec_step": "double",
        "_dec_seq": "double",
        "_pre_step": "double",
        "_pre_chunk": "double",
        "_pre_tok": "double",
        "_pre_unit": "double",
        "_lin_last": "double",
        "_lm_last": "double",
        "_lin_slope": "double",
        "_lm_slope": "double",
        "_comm_fixed": "double",
        "_comm_tok": "double",
        "_layer_fixed": "double",
        "_b_v1": "double",
        "_v1_heads": "long long",
        "_sampler_row_s": "double",
        "_eager_s": "double",
        "_graph_max_tokens": "long long",
        "_eager_over_s": "double",
    }

    def __init__(
        self,
        gpu: GPU,
        model: ModelSpec,
        quant: QuantSpec,
        tp: int = 1,
        coeffs: PerfCoefficients | None = None,
        kernels=None,
        dp: int = 1,
        ep: bool = False,
        cpu_overlap: bool = False,
        clock_ratio: float = 1.0,
        sampler_row_s: float = 0.0,
        penalty_ctx_s: float = 0.0,
        eager_prefill_s: float = 0.0,
        graph_max_tokens: int = 0,
        eager_over_s: float = 0.0,
    ):
        """``kernels``: a ``sim.perf.kernels.tables.KernelTables`` of this (GPU, model, quant,
        tp, dp, ep): its parts replace the roofline's (an empty part keeps the roofline).
        ``cpu_overlap``: vLLM schedules asynchronously (``sim.perf.cpu_side``): the CPU
        overheads overlap the step's GPU time instead of adding to it.
        ``clock_ratio``: the SM clock under a power limit (``sim.perf.power_cap``), in (0, 1]: the
        compute-bound FLOP rates scale by it (x 1.0 is exact: no limit changes nothing).
        ``sampler_row_s``, ``penalty_ctx_s``: the sampler's GPU seconds per sampled row and its CPU
        seconds per cached context token of the decodes (``sim.perf.sampler``; 0: greedy or unset).
        ``eager_prefill_s``: GPU seconds every step with a prefill adds, launching its kernels outside a
        CUDA graph (vLLM V0, ``sim.perf.eager``; 0: graphs, or a source that already holds it).
        ``graph_max_tokens``, ``eager_over_s``: a step of more scheduled tokens than the largest captured
        CUDA graph runs without one and adds ``eager_over_s`` (vLLM V1, ``sim.perf.eager``; 0: no limit)."""
        c = coeffs or PerfCoefficients()
        s = ModelShape(model, quant, tp)
        tp, dp = int(tp), int(dp)
        self.gpu, self.model, self.quant, self.tp, self.coeffs = gpu, model, quant, tp, c
        self.dp, self.ep = dp, bool(ep)
        # the CPU-side coefficients the hot methods read (C fields when compiled: a dataclass attribute is a dict look-up)
        self._t_step_s, self._t_seq_s, self._t_prefill_tok_s = c.t_step_s, c.t_seq_s, c.t_prefill_tok_s
        self.cpu_overlap = bool(cpu_overlap)
        self.clock_ratio = s_clk = float(clock_ratio)
        self.source = c.source  # where the step times come from (sim.perf.step_source says more)
        self.compute_dtype = quant.compute_dtype_on(gpu)
        peak_lin = gpu.peak_flops[self.compute_dtype]
        peak_attn = gpu.peak_flops.get("bf16") or gpu.peak_flops.get("fp16") or peak_lin
        L, h = model.num_layers, model.hidden_size
        self.peak_flops = peak_lin * tp  # replica, at the linear layers' dtype
        self.hbm_bw_bytes_s = gpu.hbm_bw_bytes_s * tp  # replica
        self._peak_max = max(peak_lin, peak_attn) * tp
        self._inv_flops_lin = 1.0 / (peak_lin * c.e_compute * s_clk)
        self._inv_flops_attn = 1.0 / (peak_attn * (c.e_attn_compute or c.e_compute) * s_clk)
        self._inv_bw = 1.0 / (gpu.hbm_bw_bytes_s * c.e_memory)
        self._inv_bw_attn = 1.0 / (gpu.hbm_bw_bytes_s * (c.e_attn_memory or c.e_memory))
        # per GPU:
        self._lin_flops_tok = s.flops_per_token / tp
        self._w_base = s.weight_read_base / tp
        self._w_experts = s.moe_layers * model.num_experts * s.expert_bytes / (tp * dp)  # all experts, all layers
        self._miss = 1.0 - model.num_experts_active / model.num_experts  # P(expert not picked), 0 if dense
        # expert parallelism: the most loaded GPU's routed-expert FLOPs set the pace (1 GPU: no imbalance)
        self._ep_gpus = ep_gpus(model, tp, dp, ep)
        self._routed_flops_s_tok = (
            2.0 * s.moe_layers * model.num_experts_active * model.params_per_expert / tp * self._inv_flops_lin
        )
        self._act_tok = s.act_bytes_per_token
        self._attn_flops_unit, self._attn_flops_prefill = attention_units(model, tp)
        self._mla = model.is_mla
        self._kv_tok = s.kv_bytes_per_token_per_gpu
        if model.is_mla:
            qo = model.num_heads * (model.qk_nope_head_dim + model.qk_rope_head_dim + model.v_head_dim) / 2
        else:
            qo = model.num_heads * model.head_dim
        self._qo_bytes_tok = 2.0 * quant.activation_bytes * L * qo / tp
        self._b_decode = max(self._attn_flops_unit * self._inv_flops_attn, self._kv_tok * self._inv_bw_attn)
        # a stack's fixed GPU costs (roofline linear layers only; sim.perf.rocm_stack)
        self._layer_fixed = L * c.t_layer_s
        # measured kernels (sim/perf/kernels): plain lists and floats, so the hot path allocates nothing
        self.kernels = kernels
        self._lin = self._lm = None
        self._dec_step = self._dec_seq = self._pre_step = self._pre_chunk = self._pre_tok = self._pre_unit = 0.0
        self._kdec = self._kpre = False
        if kernels is not None:
            if len(kernels.lin_s):
                self._lin, self._lm = kernels.lin_s.tolist(), kernels.lm_head_s.tolist()
                if s_clk < 1.0:  # a power limit: each GEMM's compute-bound share runs at the lower clock
                    lm_flops = 2.0 * model.vocab_size * h / tp
                    self._lin = _clocked(self._lin, max(self._lin_flops_tok - lm_flops, 0.0) / peak_lin, s_clk)
                    self._lm = _clocked(self._lm, lm_flops / peak_lin, s_clk)
                self._n_lin = len(self._lin)
                last = self._n_lin - 1
                self._lin_last, self._lm_last = self._lin[last], self._lm[last]
                # beyond the table: the slope of its upper half continues (a local plateau near the end,
                # where a GEMM happens to run faster at a round size, must not flatten it), never below
                # the layers' FLOPs at the linear dtype's peak
                back = last // 2
                floor = max(self._lin_flops_tok - 2.0 * model.vocab_size * h / tp, 0.0) / peak_lin
                self._lin_slope = max((self._lin[last] - self._lin[last - back]) / back if back else 0.0, floor)
                self._lm_slope = max((self._lm[last] - self._lm[last - back]) / back if back else 0.0, 0.0)
            if len(kernels.decode_s):
                self._kdec = True
                self._dec_step, self._dec_seq, self._b_decode = (float(x) for x in kernels.decode_s)
                if s_clk < 1.0:  # decode attention is memory-bound: only its FLOPs at the lower clock can bind
                    self._b_decode = max(self._b_decode, self._attn_flops_unit * self._inv_flops_attn)
            if len(kernels.prefill_s):
                self._kpre = True
                self._pre_step, self._pre_chunk, self._pre_tok, self._pre_unit = (float(x) for x in kernels.prefill_s)
                self._pre_unit /= s_clk  # prefill attention is compute-bound (FlashAttention): at the clock
        # PagedAttention V1 (decode on vLLM's PagedAttention: sim.perf.rocm_stack, sim.perf.attention_backend):
        # never faster than the decode attention it replaces (roofline or measured)
        self._v1_heads = 0
        self._b_v1 = self._b_decode
        if c.e_attn_v1 > 0.0 and not model.is_mla:
            self._v1_heads = model.num_heads // tp
            qhead_bytes_tok = 2.0 * L * self._v1_heads * model.head_dim * quant.kv_bytes_per_elem
            self._b_v1 = max(self._b_decode, qhead_bytes_tok / (gpu.hbm_bw_bytes_s * c.e_attn_v1))
        if tp > 1:
            # + one per layer of the q/k variances where the q/k norm spans all heads (MiniMax-M2)
            self._comm_fixed = (2 + int(model.qk_norm_all_reduce)) * L * c.t_allreduce_s
            self._comm_tok = (
                2 * L * h * quant.activation_bytes * 2.0 * (tp - 1) / tp / (gpu.interconnect_bw_bytes_s * c.e_comm)
            )
        else:
            self._comm_fixed = self._comm_tok = 0.0
        if dp > 1:  # MoE dispatch + combine across the ranks (sim.perf.kernels.layout.moe_exchange_s)
            fixed, per_tok = moe_exchange_s(model, quant, gpu, c.e_comm, c.t_allreduce_s, tp, dp)
            self._comm_fixed += fixed
            self._comm_tok += per_tok
        # the sampler (sim.perf.sampler): GPU time per sampled row; the penalties' CPU time per context
        # token sits beside decode attention's, added (serial) or the larger of the two (async scheduling:
        # built while the forward runs, after the previous step's tokens arrive), so a decode run stays
        # affine in its context
        self._sampler_row_s = float(sampler_row_s)
        self._eager_s = float(eager_prefill_s)
        self._graph_max_tokens = int(graph_max_tokens)
        self._eager_over_s = float(eager_over_s)
        if penalty_ctx_s > 0.0:
            b = self._b_decode
            self._b_decode = (penalty_ctx_s if penalty_ctx_s > b else b) if self.cpu_overlap else b + penalty_ctx_s
        self._affine: dict[int, tuple[float, float]] = {}

    def _weight_bytes(self, T: int) -> float:
        """Weight bytes one GPU reads in a step of T tokens (touched experts only)."""
        return self._w_base + self._w_experts * (1.0 - self._miss ** (T * self.dp))

    def step_time_s(
        self,
        prefill_tokens: int,
        prefill_attn: float,
        num_decodes: int,
        decode_ctx_tokens: int,
        num_prefill_seqs: int = 0,
        queries_per_decode: int = 1,
    ) -> float:
        """Seconds one engine step takes.

        prefill_tokens: Σ q_i new tokens of the prefill chunks; prefill_attn:
        Σ q_i·(k_i + q_i/2) with k_i tokens already cached; num_decodes: decode
        sequences (one token each); decode_ctx_tokens: Σ c_j of their contexts;
        num_prefill_seqs: prefill chunks (for the per-sequence overhead);
        queries_per_decode: positions each decode sequence runs and samples (1; k+1 when
        speculative decoding verifies k proposed tokens, ``sim.perf.speculative``): the
        linear layers and LM head see ``num_decodes · queries_per_decode`` rows and decode
        attention computes that many queries over the same cached keys (read once); the CPU
        side charges its step and sequence parts once and each decode's ``k`` proposed
        tokens as scheduled tokens (``t_prefill_tok_s``), like prefill tokens.
        """
        rows = num_decodes * queries_per_decode
        # the CPU side (sim.perf.cpu_side): serial with the GPU, or overlapped with it below; a decode's
        # first scheduled token is in t_seq_s, its speculative ones are scheduled tokens like prefill's
        # (the coefficients' t_step_s, t_seq_s, t_prefill_tok_s, copied to fields by __init__)
        cpu = (
            self._t_step_s
            + self._t_seq_s * (num_decodes + num_prefill_seqs)
            + self._t_prefill_tok_s * (prefill_tokens + rows - num_decodes)
        )
        t = 0.0 if self.cpu_overlap else cpu
        T = prefill_tokens + rows
        if T > 0:
            lin = self._lin
            if lin is not None:  # measured kernels: tables over tokens and sampled sequences
                seqs = rows + num_prefill_seqs
                if T < self._n_lin:
                    t += lin[int(T)]  # int(): compiled, the token counts are C doubles (perf_model.pxd)
                else:
                    t += self._lin_last + self._lin_slope * (T - self._n_lin + 1)
                if seqs < self._n_lin:
                    t += self._lm[int(seqs)]  # type: ignore[index]  # set with _lin, which is not None here
                else:
                    t += self._lm_last + self._lm_slope * (seqs - self._n_lin + 1)
            else:
                f = self._lin_flops_tok * T * self._inv_flops_lin
                if self._ep_gpus > 1:  # the most loaded GPU's extra routed-expert FLOPs
                    m = self.model
                    imb = expert_load_imbalance(T * self.dp, m.num_experts_active, m.num_experts, self._ep_gpus)
                    f += self._routed_flops_s_tok * T * (imb - 1.0)
                b = (self._weight_bytes(T) + self._act_tok * T) * self._inv_bw
                t += (f if f > b else b) + self._comm_fixed + self._comm_tok * T
                t += self._layer_fixed
            if 0 < self._graph_max_tokens < T:  # past the largest captured CUDA graph (sim.perf.eager)
                t += self._eager_over_s
        if prefill_tokens > 0:
            t += self._eager_s  # an eager step's kernel launches (sim.perf.eager; 0 under CUDA graphs)
            if self._kpre:
                t += (
                    self._pre_step
                    + self._pre_chunk * num_prefill_seqs
                    + self._pre_tok * prefill_tokens
                    + self._pre_unit * prefill_attn
                )
            else:
                f = self._attn_flops_prefill * prefill_attn * self._inv_flops_attn
                b = (
                    prefill_attn * self._kv_tok / ATTN_QUERY_TILE + prefill_tokens * self._qo_bytes_tok
                ) * self._inv_bw_attn
                t += f if f > b else b
        if num_decodes > 0 and self._kdec:
            t += self._dec_step + self._dec_seq * num_decodes
        if self._sampler_row_s > 0.0:  # every scheduled request is sampled (sim.perf.sampler)
            t += self._sampler_row_s * (rows + num_prefill_seqs)
        if self.cpu_overlap and cpu > t:  # async scheduling: max(CPU, GPU before decode attention)
            t = cpu
        if queries_per_decode != 1:
            return t + decode_ctx_tokens * self.decode_b_s(queries_per_decode)
        return t + decode_ctx_tokens * self.decode_ctx_b_s(num_decodes)

    def step_cpu_s(
        self, num_decodes: int, num_prefill_seqs: int, prefill_tokens: int, queries_per_decode: int = 1
    ) -> float:
        """Engine-core CPU seconds of a step (``sim.perf.cpu_side.step_cpu_s``): its share of
        ``step_time_s``, whether added (serial) or overlapped (async scheduling)."""
        return (
            self._t_step_s
            + self._t_seq_s * (num_decodes + num_prefill_seqs)
            + self._t_prefill_tok_s * (prefill_tokens + num_decodes * queries_per_decode - num_decodes)
        )

    def decode_b_s(self, queries_per_decode: int) -> float:
        """Seconds per cached context token of decode attention with ``queries_per_decode``
        queries per sequence: the keys are read once, the FLOPs grow with the queries, so
        ``max(b_1, q · attention FLOPs per pair at peak)`` (b_1: the one-query cost, roofline or
        measured)."""
        f = queries_per_decode * self._attn_flops_unit * self._inv_flops_attn
        return f if f > self._b_decode else self._b_decode

    def decode_ctx_b_s(self, num_decodes: int) -> float:
        """Seconds per cached context token of one-query decode attention in a step of
        ``num_decodes`` decodes: vLLM's PagedAttention V1 kernel's (``_b_v1``) where the pool decodes
        with PagedAttention (``e_attn_v1`` set) and ``num_decodes · heads_per_gpu > 512``
        (``PAGED_V1_SEQ_HEADS``), else ``_b_decode``. The one place that switch is written."""
        if self._v1_heads and num_decodes * self._v1_heads > PAGED_V1_SEQ_HEADS:
            return self._b_v1
        return self._b_decode

    def decode_affine(self, num_decodes: int) -> tuple[float, float]:
        """(a_s, b_s): a decode-only step with total context C takes a_s + b_s·C."""
        ab = self._affine.get(num_decodes)
        if ab is None:
            ab = self._affine[num_decodes] = (
                self.step_time_s(0, 0.0, num_decodes, 0),
                self.decode_ctx_b_s(num_decodes),
            )
        return ab

    def step_flops(
        self,
        prefill_tokens: int,
        prefill_attn: float,
        num_decodes: int,
        decode_ctx_tokens: int,
        num_prefill_seqs: int = 0,
        queries_per_decode: int = 1,
    ) -> float:
        """FLOPs of the step over the whole replica (all tp GPUs), for MFU."""
        T = prefill_tokens + num_decodes * queries_per_decode
        dec_pairs = decode_ctx_tokens * queries_per_decode
        if self._mla:
            per_gpu = (
                self._lin_flops_tok * T + self._attn_flops_prefill * prefill_attn + self._attn_flops_unit * dec_pairs
            )
        else:
            per_gpu = self._lin_flops_tok * T + self._attn_flops_unit * (prefill_attn + dec_pairs)
        return per_gpu * self.tp

    def step_bytes(
        self,
        prefill_tokens: int,
        prefill_attn: float,
        num_decodes: int,
        decode_ctx_tokens: int,
        num_prefill_seqs: int = 0,
        queries_per_decode: int = 1,
    ) -> float:
        """HBM bytes the step moves over the whole replica (all tp GPUs), for MBU."""
        T = prefill_tokens + num_decodes * queries_per_decode
        per_gpu = decode_ctx_tokens * self._kv_tok
        if T > 0:
            per_gpu += self._weight_bytes(T) + self._act_tok * T
        if prefill_tokens > 0:
            per_gpu += prefill_attn * self._kv_tok / ATTN_QUERY_TILE + prefill_tokens * self._qo_bytes_tok
        return per_gpu * self.tp


def _clocked(table: list, flops_s_per_row: float, s_clk: float) -> list:
    """A measured kernel table (seconds at 0..n-1 rows) at SM clock ratio ``s_clk`` < 1: a row whose
    GEMM reaches MFU ``u`` (its FLOPs at peak / its time) has ``u / u_max`` of its time clock-bound
    (``u_max``: the table's best, a fully compute-bound GEMM), so its time becomes
    ``t · max(1, (u / u_max) / s_clk)``: the largest rows slow by ``1/s_clk``, memory-bound ones not."""
    u = [flops_s_per_row * i / t if t > 0 else 0.0 for i, t in enumerate(table)]
    u_max = max(u) if u else 0.0
    if u_max <= 0:
        return list(table)
    return [t * max(1.0, ui / u_max / s_clk) for t, ui in zip(table, u)]


def roofline_floor_s(
    perf: PerfModel,
    prefill_tokens: int,
    prefill_attn: float,
    num_decodes: int,
    decode_ctx_tokens: int,
    num_prefill_seqs: int = 0,
) -> float:
    """Physical floor of a step: its FLOPs at peak or its bytes at peak bandwidth.

    Efficiency 1, no overheads, no communication, and the fastest peak the
    step uses for all its FLOPs: no honest prediction can be below this.
    """
    args = (prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens, num_prefill_seqs)
    return max(perf.step_flops(*args) / perf._peak_max, perf.step_bytes(*args) / perf.hbm_bw_bytes_s)
