"""One pool's step-time tables, built from measured vLLM kernels.

``build_tables`` turns the kernel data of one system into what
``sim.perf.perf_model.PerfModel`` reads on its hot path (docs/design.md, section 5):

- ``lin_s[T]``: the linear part of a step of ``T`` tokens (T = 0 .. max tokens):
  per layer the qkv, o, gate_up and down GEMMs at this TP rank's shape, times
  the layers; the TP all-reduces (2 per layer + 1 after the vocabulary-parallel
  embedding) from the all-reduce table; the elementwise kernels the data lacks
  (residual + RMSNorm, SiLU·mul, rotary, KV-cache write) as bytes / (bandwidth ·
  e_memory); for MoE models the routed experts from the measured fused-MoE table
  (``moe_perf``, at the ``dp·T`` tokens of all data-parallel ranks, this layout's
  MoE TP/EP sizes) where it has the model's shape, else by the roofline, plus
  the shared experts and leading dense layers as GEMMs, plus the data-parallel
  exchange (``sim.perf.kernels.layout``). Made non-decreasing in T (a running maximum
  over measurement noise);
- ``lm_head_s[s]``: the LM head for ``s`` sampled sequences (vLLM computes
  logits only at each scheduled sequence's last position), 16-bit;
- ``decode_s`` = (per step, per sequence, per context token): decode attention
  of all layers, fitted on the generation-attention table, so a decode-only
  step stays affine in its total context;
- ``prefill_s`` = (per step, per chunk, per token, per ``prefill_attn`` unit):
  prefill attention of all layers, fitted on the context-attention table
  (prompts without a cached prefix: the unit Σ q_i·(k_i + q_i/2) carries the
  cached part).

A part the data cannot give (a weight dtype without its GEMM kernel, a KV dtype
or head shape without attention rows) is left empty and the performance model
uses its roofline for that part; ``meta["source"]`` says which.

GEMM lookup: linear interpolation in m (tokens) over the measured m grid
(beyond its end: scaled by m); in n and k, each grid neighbour's latency is
scaled by the FLOP ratio (n/n_grid)·(k/k_grid), then the neighbours are
interpolated linearly (beyond the grid: scaled from the end point).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.catalog import GPU, ModelSpec, QuantSpec
from sim.perf.kernels import data as kd
from sim.perf.kernels.fit import bracket, interp_extrap, nonneg_rel_lstsq
from sim.perf.kernels.layout import ep_gpus, expert_load_imbalance, moe_exchange_s
from sim.perf.kernels.versions import parse_version

__all__ = ["KernelTables", "TableInputs", "build_tables", "GEMM_DTYPES", "GRAPH_MAX_TOKENS", "FORMAT"]

FORMAT = 8
"""Version of the build; part of the cache key (bump when the build changes)."""
GRAPH_MAX_TOKENS = 512
"""Steps up to this many tokens run in CUDA graphs (vLLM's largest default capture
size): their all-reduces take the table's graph timings, longer steps the eager ones."""
GEMM_DTYPES = {"bf16": "bfloat16", "fp16": "bfloat16", "fp8": "fp8"}
"""fleetcast weight scheme -> gemm_dtype of the GEMM table (fp16 runs at bf16's speed).
int8 (W8A8) and int4 (AWQ/GPTQ, Marlin) have no kernel rows in the data."""
KV_DTYPES = {"auto": "bfloat16", "fp8": "fp8"}
MOE_DTYPES = {
    "bf16": ("bfloat16",),
    "fp16": ("bfloat16",),
    "fp8": ("fp8", "fp8_block"),
    "int4-awq": ("int4_wo",),
    "int4-gptq": ("int4_wo",),
}
"""fleetcast weight scheme -> moe_dtype rows of the fused-MoE table, in order of preference
(fp8: per-tensor rows, else DeepSeek-style block-scaled ones), after ``MOE_PREFERRED_KERNEL``."""
MOE_PREFERRED_KERNEL = "triton"
"""A fused-MoE kernel whose name holds this is taken first, over all of a scheme's dtypes: vLLM's
Triton ``fused_moe`` is the kernel every fp8 MoE checkpoint can run (the only one before FlashInfer's
MoE kernels, vLLM 0.9/0.10, and the fallback for checkpoints they do not take, such as per-channel
FP8-dynamic ones). On h100_sxm/h200_sxm (vLLM 0.24.0 data) the ``fp8`` rows are FlashInfer CUTLASS
only (ModelOpt per-tensor), 2.6x the bf16 Triton latency at 16 tokens (Llama-4-Scout's shape, MoE
TP 4): a Hopper fp8 pool then takes the Triton ``fp8_block`` rows. Systems without Triton rows
(Blackwell, the older ``vllm_fused_moe`` collections) keep ``MOE_DTYPES``' order. Which backend a
pool prefers by vLLM version and layout: ``preferred_moe_kernel``."""
FLASHINFER_EP_FROM = (0, 15, 0)
"""From this vLLM release a Hopper fp8 MoE layer under expert parallelism runs FlashInfer CUTLASS by
default. Before it (vllm/model_executor/layers/quantization/fp8.py ``get_fp8_moe_backend``, vLLM
0.10-0.14) FlashInfer ran only with ``VLLM_USE_FLASHINFER_MOE_FP8=1`` (default off), block-scaled
checkpoints took DeepGEMM when installed and enabled (at >= 128 tokens; no DeepGEMM rows in the data,
the Triton rows stand in), everything else the Triton ``fused_moe``, with or without expert
parallelism. vLLM PR #33490 (2026-01-31): "in 0.15.0 release the default fp8 MoE backend is changed
to FLASHINFER_CUTLASS, previously on Hopper the default was TRITON"; the fused-MoE oracle then settled
on "On Hopper for Block Fp8, prefer Triton for TP and FI CUTLASS for EP"
(vllm/model_executor/layers/fused_moe/oracle/fp8.py ``_get_priority_backends``, commit 001a058b)."""
FLASHINFER_TRTLLM_PART = "flashinfer_trtllm"
"""The fused-MoE backend vLLM runs by default for fp8 on a data-center Blackwell GPU (SM100) from
``FLASHINFER_EP_FROM`` on. The fp8 MoE oracle (vllm/model_executor/layers/fused_moe/oracle/fp8.py
``_get_priority_backends``; Apache-2.0; read in a stored copy whose release is not recorded, so not
checked line by line against 0.15-0.19) lists FLASHINFER_TRTLLM first, before FLASHINFER_CUTLASS,
DEEPGEMM and TRITON, and moves a backend ahead of it only on Hopper (compute capability 9.0: Triton for
block-fp8 TP, FlashInfer CUTLASS for EP); vLLM's backend-ordering test of ``select_fp8_moe_backend``
states "Blackwell (SM100+): FlashInfer > DeepGEMM". aiconfigurator-core's b200_sxm/gb200/b300_sxm vLLM 0.24.0 collections, which
run vLLM's own layer, recorded ``vllm_fp8moe_flashinfer_trtllm_*`` for fp8_block. Before 0.15 FlashInfer
MoE ran only with ``VLLM_USE_FLASHINFER_MOE_FP8=1`` (``FLASHINFER_EP_FROM``). A system whose data has no
such rows (rtx_pro_6000_server: SM120, which TRT-LLM's MoE kernels do not build for) keeps the Hopper
choice (``preferred_moe_kernel`` without ``sm100``)."""
MOE_DISTRIBUTION = "balanced"
"""Routing of the fused-MoE rows used without expert parallelism: tokens spread evenly over the
experts (the table also has power-law skews)."""
EP_DISTRIBUTION = "power_law_1.2"
"""Routing of the fused-MoE rows used under expert parallelism, where the most loaded GPU sets the
pace. aiconfigurator-core's collector draws these rows' per-expert token counts from a power law of
exponent alpha over the experts and gives EP rank 0 -- the rank measured -- the largest load
(ai-dynamo/aiconfigurator @ 095f58a5, ``collector/helper.py`` ``_generate_power_law_distribution``:
"with EP rank 0 having max load"; Apache-2.0), so a row at ``n`` tokens and ``moe_ep_size`` g is the
busiest of g GPUs holding ``num_experts/g`` experts each: the imbalance as a function of the tokens
per step and the experts per GPU, measured with the kernel. Alpha 1.2 is the skew aiconfigurator's
own estimator assumes for MoE models (``aic-core/.../sdk/models/moe.py``: ``_power_law_alpha = 1.2``,
``ModelConfig.workload_distribution = "power_law"`` by default), the one its silicon references are
checked against. These rows bound the compute-bound side (most tokens on one GPU); the balanced rows
at the tokens times ``sim.perf.kernels.layout.expert_load_imbalance`` (uniform routing) bound the
memory-bound side (most distinct experts touched): ``_moe_measured`` takes the slower of the two."""
_MS = 1e-3  # seconds per millisecond (the tables' unit)


@dataclass(frozen=True)
class TableInputs:
    """Everything a build depends on besides the data files (the cache key hashes it)."""

    system: str
    model: ModelSpec
    quant: QuantSpec
    tp: int
    max_tokens: int
    vllm_version: str | None
    gpu: GPU
    e_compute: float  # roofline parts (MoE experts) at the linear dtype
    e_memory: float  # elementwise traffic, MoE expert weights
    e_comm: float  # all-reduce fallback when the data has no row for this tp; the DP exchange
    t_allreduce_s: float
    dp: int = 1  # data-parallel ranks of the replica (the MoE layers see dp·T tokens)
    ep: bool = False  # expert parallelism: whole experts over the tp·dp GPUs instead of slices


@dataclass(frozen=True)
class KernelTables:
    """The fast form of one pool (empty arrays: that part comes from the roofline)."""

    lin_s: np.ndarray  # [T] seconds, T = 0..max_tokens
    lm_head_s: np.ndarray  # [s] seconds, s = 0..max_tokens sampled sequences
    gemm_s: np.ndarray  # [T] the layers' GEMMs only (checks, reports)
    comm_s: np.ndarray  # [T] the all-reduces only
    decode_s: np.ndarray  # (per step, per sequence, per context token) seconds
    prefill_s: np.ndarray  # (per step, per chunk, per token, per prefill_attn unit) seconds
    meta: dict  # source (one line), versions {table: version}, notes, system

    @property
    def source(self) -> str:
        return self.meta["source"]


class _GemmGrid:
    """The GEMM table of one dtype as a dense (m, n, k) grid of latencies (ms)."""

    def __init__(self, m: np.ndarray, n: np.ndarray, k: np.ndarray, lat_ms: np.ndarray):
        self.ms, self.ns, self.ks = np.unique(m), np.unique(n), np.unique(k)
        im, jn, lk = np.searchsorted(self.ms, m), np.searchsorted(self.ns, n), np.searchsorted(self.ks, k)
        total = np.zeros((len(self.ms), len(self.ns), len(self.ks)))
        count = np.zeros_like(total)
        np.add.at(total, (im, jn, lk), lat_ms)  # duplicates (none seen): their mean
        np.add.at(count, (im, jn, lk), 1.0)
        with np.errstate(invalid="ignore"):
            self.lat = np.where(count > 0, total / np.maximum(count, 1.0), np.nan)

    def column_ms(self, n: float, k: float) -> np.ndarray:
        """Latency at (n, k) for every grid m: FLOP-scaled grid neighbours, interpolated."""
        acc = np.zeros(len(self.ms))
        wsum = np.zeros(len(self.ms))
        for jn, wn in bracket(self.ns, n):
            for lk, wk in bracket(self.ks, k):
                col = self.lat[:, jn, lk] * ((n / self.ns[jn]) * (k / self.ks[lk]))
                ok = np.isfinite(col)
                acc[ok] += (wn * wk) * col[ok]
                wsum[ok] += wn * wk
        if not (wsum > 0).all():
            raise LookupError(f"no GEMM rows near n={n:g}, k={k:g}")
        return acc / wsum

    def at_ms(self, m: np.ndarray, n: float, k: float) -> np.ndarray:
        """Latency for each m (tokens >= 1): linear in m on the grid, scaled by m beyond it."""
        col = self.column_ms(n, k)
        out = np.interp(m, self.ms, col)
        over = m > self.ms[-1]
        out[over] = col[-1] * (m[over] / self.ms[-1])
        return out


def _pick_kernel(sources: np.ndarray, mask: np.ndarray) -> str | None:
    """The kernel with the most rows under ``mask`` (ties: first by name)."""
    names, counts = np.unique(sources[mask].astype(str), return_counts=True)
    if not len(names):
        return None
    return str(names[int(np.argmax(counts))])


def _gemm_grid(root: Path, system: str, version: str, dtype: str) -> tuple[_GemmGrid, str] | None:
    t = kd.read_table(root, system, "gemm_perf", version, ["gemm_dtype", "kernel_source", "m", "n", "k", "latency"])
    mask = t["gemm_dtype"] == dtype
    kernel = _pick_kernel(t["kernel_source"], mask)
    if kernel is None:
        return None
    mask &= t["kernel_source"] == kernel
    return _GemmGrid(t["m"][mask], t["n"][mask], t["k"][mask], t["latency"][mask]), kernel


def _layer_gemms(model: ModelSpec, tp: int) -> list[tuple[str, float, float]]:
    """(name, n, k) of one layer's GEMMs on one TP rank (MoE: attention + router only)."""
    h, hd = model.hidden_size, model.head_dim
    qh, kvh = model.num_heads / tp, math.ceil(model.num_kv_heads / tp)
    out = [("qkv", (qh + 2 * kvh) * hd, h), ("o", h, qh * hd)]
    if model.num_experts > 1:
        out.append(("router", model.num_experts, h))  # replicated on every rank
    else:
        out += [("gate_up", 2 * model.intermediate_size / tp, h), ("down", h, model.intermediate_size / tp)]
    return out


def _mla_gemms(model: ModelSpec, tp: int) -> list[tuple[str, float, float]]:
    """(name, n, k) of one MLA attention's GEMMs on one TP rank: the down-projections of the
    query (when compressed) and of the KV latent + rotary key (replicated on every rank), the
    query up-projection, the latent's up-projection to per-head keys and values (in decode
    vLLM applies it as two batched matmuls on the query and output instead: the same
    FLOPs), and the output projection."""
    h, H = model.hidden_size, model.num_heads / tp
    qk = model.qk_nope_head_dim + model.qk_rope_head_dim
    latent = model.kv_lora_rank + model.qk_rope_head_dim
    if model.q_lora_rank:
        out = [("q_a_kv_a", model.q_lora_rank + latent, h), ("q_b", H * qk, model.q_lora_rank)]
    else:
        out = [("kv_a", latent, h), ("q", H * qk, h)]
    return out + [
        ("kv_b", H * (model.qk_nope_head_dim + model.v_head_dim), model.kv_lora_rank),
        ("o", h, H * model.v_head_dim),
    ]


def _model_gemms(model: ModelSpec, tp: int) -> list[tuple[str, float, float, int]]:
    """(name, n, k, layers) of every GEMM of an MoE or MLA model besides the routed experts:
    attention (MLA or not) in every layer, the router and the shared experts in each MoE
    layer, the dense MLP in the leading dense layers."""
    h, L = model.hidden_size, model.num_layers
    attn = _mla_gemms(model, tp) if model.is_mla else _layer_gemms(model, tp)[:2]
    out = [(name, n, k, L) for name, n, k in attn]
    Lm = model.moe_layers
    if model.num_experts > 1:
        out.append(("router", model.num_experts, h, Lm))
        if model.shared_expert_intermediate_size:
            s = model.shared_expert_intermediate_size / tp
            out += [("shared_gate_up", 2 * s, h, Lm), ("shared_down", h, s, Lm)]
    dense = L - Lm
    if dense:
        out += [
            ("gate_up", 2 * model.intermediate_size / tp, h, dense),
            ("down", h, model.intermediate_size / tp, dense),
        ]
    return out


def elementwise_bytes_per_token(model: ModelSpec, quant: QuantSpec, tp: int) -> float:
    """HBM bytes per token per GPU of the kernels between the GEMMs: two fused
    residual-add + RMSNorm per layer (read x and residual, write both), SiLU·mul
    (read 2w, write w), rotary on q and k (read + write), the KV-cache write
    (read k, v; write them at the KV dtype), plus embedding lookup and final norm."""
    ab, h, hd, L = quant.activation_bytes, model.hidden_size, model.head_dim, model.num_layers
    width = (
        model.num_experts_active * model.moe_intermediate_size if model.num_experts > 1 else model.intermediate_size
    ) / tp
    if model.is_mla:  # rotary on the queries' and the key's rope parts; the latent + rope key written
        width += model.shared_expert_intermediate_size / tp
        rope, latent = model.qk_rope_head_dim, model.kv_lora_rank + model.qk_rope_head_dim
        per_layer = (
            ab * (8 * h + 3 * width + 2 * (model.num_heads / tp + 1) * rope + latent) + latent * quant.kv_bytes_per_elem
        )
        return L * per_layer + ab * 3 * h
    width += model.shared_expert_intermediate_size / tp
    qh, kvh = model.num_heads / tp, math.ceil(model.num_kv_heads / tp)
    per_layer = ab * (8 * h + 3 * width + 2 * (qh + kvh) * hd + 2 * kvh * hd) + 2 * kvh * hd * quant.kv_bytes_per_elem
    return L * per_layer + ab * 3 * h


def _moe_experts_s(inp: TableInputs, T: np.ndarray) -> np.ndarray:
    """Roofline time of the routed expert MLPs for steps of T tokens per rank (one GPU): the
    dp ranks' dp·T tokens over tp·dp GPUs, the experts they are expected to touch; with expert
    parallelism the most loaded GPU's FLOPs (``expert_load_imbalance`` at dp·T tokens)."""
    m, q, gpu, tp, dp = inp.model, inp.quant, inp.gpu, inp.tp, inp.dp
    peak = gpu.peak_flops[q.compute_dtype_on(gpu)]
    flops = 2.0 * m.moe_layers * m.num_experts_active * m.params_per_expert / tp * T
    g = ep_gpus(m, tp, dp, inp.ep)
    if g > 1:
        k, e = m.num_experts_active, m.num_experts
        flops = flops * np.array([expert_load_imbalance(float(n) * dp, k, e, g) for n in T])
    miss = 1.0 - m.num_experts_active / m.num_experts
    weight = m.moe_layers * m.num_experts * m.params_per_expert * q.weight_bytes_per_param / (tp * dp)
    touched = weight * (1.0 - miss ** (T.astype(np.float64) * dp))
    return np.maximum(flops / (peak * inp.e_compute), touched / (gpu.hbm_bw_bytes_s * inp.e_memory))


def moe_sizes(tp: int, dp: int, ep: bool) -> tuple[int, int]:
    """(moe_tp_size, moe_ep_size) of the fused-MoE rows of a layout: the experts are sliced over
    the tp·dp GPUs, or spread whole over them with expert parallelism (vLLM flattens the data-
    parallel ranks into the MoE layer's group)."""
    return (1, tp * dp) if ep else (tp * dp, 1)


def preferred_moe_kernel(
    weights: str, vllm_version: str | None, ep: bool, sm100: bool = False
) -> tuple[str, tuple[str, ...]]:
    """(kernel-name part, moe_dtype rows in order) of the fused-MoE backend vLLM runs by default: on a
    data-center Blackwell GPU (``sm100``) FlashInfer TRT-LLM for fp8 from vLLM 0.15, block-scaled rows
    first (``FLASHINFER_TRTLLM_PART``); on a GPU whose data has Triton rows (Hopper) FlashInfer CUTLASS,
    block-scaled rows first, for fp8 under expert parallelism from vLLM 0.15 (``FLASHINFER_EP_FROM``);
    the Triton ``fused_moe`` otherwise (and when no version is named)."""
    dtypes = MOE_DTYPES[weights]
    v = parse_version(vllm_version) if vllm_version is not None else None
    if weights == "fp8" and sm100 and v is not None and v >= FLASHINFER_EP_FROM:
        return FLASHINFER_TRTLLM_PART, ("fp8_block", "fp8")
    if weights == "fp8" and ep and v is not None and v >= FLASHINFER_EP_FROM:
        return "flashinfer_cutlass", ("fp8_block", "fp8")
    return MOE_PREFERRED_KERNEL, dtypes


def nearest_moe_layout(layouts: list[tuple[int, int]], mtp: int, mep: int) -> tuple[int, int]:
    """Of the measured (moe_tp, moe_ep) layouts of one kernel, the one to derive (mtp, mep) from: the
    nearest GPU count tp x ep (in ratio), then the same kind (expert-parallel or sliced), then the
    larger count. Per GPU both the FLOPs and the expert weight bytes of balanced routing are the
    layer's total over tp x ep, whichever way the experts are split, so the latency is scaled by the
    GPU-count ratio (``_moe_measured``)."""
    g = mtp * mep

    def key(lay: tuple[int, int]) -> tuple[float, bool, int]:
        h = lay[0] * lay[1]
        return (abs(math.log(h / g)), (lay[1] > 1) != (mep > 1), -h)

    return min(layouts, key=key)


def _moe_curve(t: dict, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token counts, mean latency in seconds at each) of the rows under ``mask``."""
    tokens, lat = t["num_tokens"][mask].astype(np.float64), t["latency"][mask] * _MS
    xs = np.unique(tokens)
    return xs, np.array([math.fsum(lat[tokens == x]) / int((tokens == x).sum()) for x in xs])


def _read_curve(xs: np.ndarray, ys: np.ndarray, n: np.ndarray) -> np.ndarray:
    """A latency curve at ``n`` tokens: linear between its points, scaled by tokens beyond the last."""
    out = np.interp(n, xs, ys)
    over = n > xs[-1]
    out[over] = ys[-1] * (n[over] / xs[-1])
    return out


_MOE_COLS = [
    "moe_dtype",
    "kernel_source",
    "num_tokens",
    "hidden_size",
    "inter_size",
    "topk",
    "num_experts",
    "moe_tp_size",
    "moe_ep_size",
    "distribution",
    "latency",
]


def _moe_table(root: Path, system: str, version: str) -> dict:
    return kd.read_table(root, system, "moe_perf", version, _MOE_COLS)


def _moe_shape_rows(t: dict, m: ModelSpec) -> np.ndarray:
    return (
        (t["hidden_size"] == m.hidden_size)
        & (t["inter_size"] == m.moe_intermediate_size)
        & (t["topk"] == m.num_experts_active)
        & (t["num_experts"] == m.num_experts)
    )


def _moe_versions_by_distance(root: Path, system: str, wanted: str | None, skip: str) -> list[str]:
    """The system's other fused-MoE collections, nearest ``wanted`` first (``nearest_version``'s order)."""
    left = [v for v in kd.versions(root, system, "moe_perf") if v != skip]
    out = []
    while left:
        v = kd.nearest_version(left, wanted)
        assert v is not None  # left is not empty
        out.append(v)
        left.remove(v)
    return out


def _preferred_moe_rows(t: dict, inp: TableInputs, part: str, order: tuple[str, ...], notes: list) -> tuple | None:
    """(dtype, kernel, row mask, GPU-count scale, derived layout or "") of the preferred backend's
    balanced rows for the model's shape in table ``t``: at the layout, else at its nearest measured
    layout (``nearest_moe_layout``, with a note); None when the backend has no rows for the shape."""
    mtp, mep = moe_sizes(inp.tp, inp.dp, inp.ep)
    base = _moe_shape_rows(t, inp.model) & (t["distribution"] == MOE_DISTRIBUTION)
    layout = (t["moe_tp_size"] == mtp) & (t["moe_ep_size"] == mep)
    preferred = np.char.find(t["kernel_source"].astype(str), part) >= 0
    for dtype in order:  # the backend vLLM runs: its rows at this layout, else derived from its nearest layout
        mask = base & (t["moe_dtype"] == dtype) & preferred
        kernel = _pick_kernel(t["kernel_source"], mask)
        if kernel is None:
            continue
        mask &= t["kernel_source"] == kernel
        if (mask & layout).any():
            return dtype, kernel, mask & layout, 1.0, ""
        lays = sorted({(int(a), int(b)) for a, b in zip(t["moe_tp_size"][mask], t["moe_ep_size"][mask])})
        a, b = nearest_moe_layout(lays, mtp, mep)
        notes.append(
            f"MoE experts: {kernel} has no rows at moe tp {mtp} / ep {mep}; its moe tp {a} / ep {b} rows "
            f"scaled by the GPU count {a * b}/{mtp * mep}"
        )
        return dtype, kernel, mask & (t["moe_tp_size"] == a) & (t["moe_ep_size"] == b), a * b / (mtp * mep), f"{a}/{b}"
    return None


def _moe_measured(
    root: Path, inp: TableInputs, version: str | None, T: np.ndarray, notes: list
) -> tuple[np.ndarray, str] | None:
    """Routed experts of all MoE layers for steps of T tokens per rank from the fused-MoE table
    (latency per layer over the tokens of all ranks, linear between measured token counts,
    scaled by tokens beyond the last), or None with a note when it lacks the shape. The rows
    are balanced routing; with expert parallelism the most loaded GPU sets the pace: the balanced
    table read at the tokens times ``expert_load_imbalance`` (uniform routing: its load is that many
    times the mean, which the balanced rows give every GPU), or, where the same kernel has
    ``EP_DISTRIBUTION`` rows at this layout, the slower of that and those rows (skewed routing, its
    busiest GPU measured). Neither bound alone holds: a skewed router puts more tokens on the
    busiest GPU (the compute-bound prefill pays it) but touches fewer distinct experts (the
    memory-bound decode reads fewer weights, so the power-law rows run below the balanced ones
    there)."""
    m, q = inp.model, inp.quant
    mtp, mep = moe_sizes(inp.tp, inp.dp, inp.ep)
    shape = (
        f"hidden {m.hidden_size}, expert width {m.moe_intermediate_size}, top-{m.num_experts_active} of "
        f"{m.num_experts}, moe tp {mtp} / ep {mep}"
    )
    if version is None or q.weights not in MOE_DTYPES:
        notes.append(f"MoE experts: roofline (no fused-MoE rows for {q.weights} weights)")
        return None
    t0 = t = _moe_table(root, inp.system, version)
    choices = [preferred_moe_kernel(q.weights, inp.vllm_version, inp.ep)]
    if inp.gpu.architecture == "blackwell":  # FlashInfer TRT-LLM first where the data has its rows (SM100)
        choices.insert(0, preferred_moe_kernel(q.weights, inp.vllm_version, inp.ep, sm100=True))
    found, used = None, version
    for part, order in dict.fromkeys(choices):
        found = _preferred_moe_rows(t0, inp, part, order, notes)
        if found is None and part != MOE_PREFERRED_KERNEL:
            # a backend chosen by version (FlashInfer) that the nearest collection did not measure:
            # its rows from the collection nearest ``vllm_version`` that has them, before any other backend
            for other in _moe_versions_by_distance(root, inp.system, inp.vllm_version, version):
                t_other = _moe_table(root, inp.system, other)
                found = _preferred_moe_rows(t_other, inp, part, order, notes)
                if found is not None:
                    notes.append(
                        f"MoE experts: the vLLM {version} collection has no {part} rows for this shape; "
                        f"the vLLM {other} ones"
                    )
                    t, used = t_other, other
                    break
        if found is not None:
            break
    shape_rows = _moe_shape_rows(t, inp.model)
    base = shape_rows & (t["distribution"] == MOE_DISTRIBUTION)
    layout = (t["moe_tp_size"] == mtp) & (t["moe_ep_size"] == mep)
    if found is None:  # another backend's rows at this layout
        for dtype in MOE_DTYPES[q.weights]:
            mask = base & (t["moe_dtype"] == dtype) & layout
            kernel = _pick_kernel(t["kernel_source"], mask)
            if kernel is not None:
                found = (dtype, kernel, mask & (t["kernel_source"] == kernel), 1.0, "")
                break
    if found is not None:
        dtype, kernel, mask, scale, derived = found
        n = T.astype(np.float64) * inp.dp
        g = ep_gpus(m, inp.tp, inp.dp, inp.ep)
        skewed = np.zeros(0, dtype=bool)
        if g > 1 and not derived:  # the busiest GPU, measured (EP_DISTRIBUTION), at this very layout
            skewed = (
                shape_rows
                & (t["distribution"] == EP_DISTRIBUTION)
                & (t["moe_dtype"] == dtype)
                & (t["kernel_source"] == kernel)
                & layout
            )
        xs, ys = _moe_curve(t, mask)
        routing = ""
        if g > 1:  # the busiest GPU under uniform routing: the balanced rows at its load
            k, e = m.num_experts_active, m.num_experts
            out = _read_curve(xs, ys, n * np.array([expert_load_imbalance(float(x), k, e, g) for x in n]))
            if skewed.any():  # ... or under skewed routing, measured, whichever is slower
                out = np.maximum(out, _read_curve(*_moe_curve(t, skewed), n))
                routing = f", the slower of uniform and {EP_DISTRIBUTION} routing's busiest GPU"
        else:
            out = _read_curve(xs, ys, n)
        what = f"fused MoE {dtype} ({kernel}" + (f", from moe tp/ep {derived}" if derived else "") + routing + ")"
        if used != version:  # another collection's rows: named here (the caller names the nearest one's)
            what += f" (vLLM {used})"
        return out * (scale * m.moe_layers), what
    notes.append(f"MoE experts: roofline (no {'/'.join(MOE_DTYPES[q.weights])} fused-MoE rows for {shape})")
    return None


def _comm_s(root: Path, inp: TableInputs, version: str | None, T: np.ndarray, notes: list) -> np.ndarray:
    """All-reduces of steps of T tokens: (2 per layer + 1) × latency(T · hidden elements), plus, for a
    model whose q/k RMSNorm spans all heads (``qk_norm_all_reduce``), one per layer of the per-token
    q and k variances (T × 2 fp32 values: the size of 4·T bf16 elements)."""
    m, tp = inp.model, inp.tp
    count = 2 * m.num_layers + 1
    if tp == 1:
        return np.zeros(len(T))
    elems = T.astype(np.float64) * m.hidden_size
    var_elems = T.astype(np.float64) * 4.0  # [T, 2] fp32: 8·T bytes, the size of 4·T bf16 elements
    n_var = m.num_layers if m.qk_norm_all_reduce else 0
    rows = None
    if version is not None:
        t = kd.read_table(
            root,
            inp.system,
            "custom_allreduce_perf",
            version,
            ["allreduce_dtype", "num_gpus", "message_size", "latency", "backend"],
        )
        rows = (t["num_gpus"] == tp) & (t["allreduce_dtype"] == "bfloat16")
    if rows is None or not rows.any():
        notes.append(f"all-reduce: roofline (no tp={tp} all-reduce rows)")
        link = inp.gpu.interconnect_bw_bytes_s * inp.e_comm
        ring = 2.0 * (tp - 1) / tp / link  # seconds per byte of the message
        return count * (inp.t_allreduce_s + elems * inp.quant.activation_bytes * ring) + n_var * (
            inp.t_allreduce_s + var_elems * 2.0 * ring
        )
    out = np.zeros(len(T))
    backends = set(t["backend"][rows].astype(str))
    for backend, sel in (("vllm_graph", T <= GRAPH_MAX_TOKENS), ("vllm_eager", T > GRAPH_MAX_TOKENS)):
        use = backend if backend in backends else sorted(backends)[0]
        r = rows & (t["backend"] == use)
        order = np.argsort(t["message_size"][r], kind="stable")
        xs, ys = t["message_size"][r][order].astype(np.float64), t["latency"][r][order] * _MS
        out[sel] = count * interp_extrap(elems[sel], xs, ys)
        if n_var:
            out[sel] += n_var * interp_extrap(var_elems[sel], xs, ys)
    return out


def _attention_rows(
    t: dict, kv_dtype: str, qh: float, kvh: int, hd: int
) -> tuple[np.ndarray, str | None, float] | None:
    """Rows of one head shape and KV dtype (window 0, beam 1) of one kernel; when the
    exact query-head count is absent, the nearest one with the same KV heads and
    head size. Returns (mask, kernel, measured query heads)."""
    base = (
        (t["kv_cache_dtype"] == kv_dtype)
        & (t["num_key_value_heads"] == kvh)
        & (t["head_dim"] == hd)
        & (t["window_size"] == 0)
        & (t["beam_width"] == 1)
    )
    heads = np.unique(t["num_heads"][base])
    if not len(heads):
        return None
    h = min(heads.tolist(), key=lambda x: (abs(x - qh), -x))
    mask = base & (t["num_heads"] == h)
    kernel = _pick_kernel(t["kernel_source"], mask)
    return mask & (t["kernel_source"] == kernel), kernel, float(h)


_ATT_COLS = [
    "kernel_source",
    "batch_size",
    "isl",
    "num_heads",
    "num_key_value_heads",
    "head_dim",
    "beam_width",
    "kv_cache_dtype",
    "step",
    "window_size",
    "latency",
]
_ATT_DEFAULTS = {"window_size": 0, "beam_width": 1}  # older collections: full attention, no beams


def _attention_table(root: Path, inp: TableInputs, version: str, table: str, phase: str, notes: list):
    """(table, row mask, kernel, measured query heads, query heads per GPU) of the model's
    attention shape per GPU, or None (with a note) when the data has no such rows."""
    m = inp.model
    if m.is_mla:
        if phase == "decode":
            notes.append("MLA attention: roofline (the MLA module tables, which include its projections, are not used)")
        return None
    qh, kvh, kv_dtype = m.num_heads / inp.tp, math.ceil(m.num_kv_heads / inp.tp), KV_DTYPES[inp.quant.kv_cache]
    t = kd.read_table(root, inp.system, table, version, _ATT_COLS, _ATT_DEFAULTS)
    found = _attention_rows(t, kv_dtype, qh, kvh, m.head_dim)
    if found is None:
        notes.append(f"{phase} attention: roofline (no {kv_dtype} KV rows for {kvh} KV heads x {m.head_dim})")
        return None
    return (t, *found, qh)


def _decode_fit(root: Path, inp: TableInputs, version: str, notes: list) -> tuple[np.ndarray, str] | None:
    got = _attention_table(root, inp, version, "generation_attention_perf", "decode", notes)
    if got is None:
        return None
    t, mask, kernel, h, qh = got
    m, kvh = inp.model, math.ceil(inp.model.num_kv_heads / inp.tp)
    B = t["batch_size"][mask].astype(np.float64)
    C = B * (t["step"][mask] + t["isl"][mask]).astype(np.float64)  # contexts incl. the new token
    keep = C <= 2**21  # the fit's range: up to 2M context tokens per step
    B, C, y = B[keep], C[keep], t["latency"][mask][keep] * _MS
    a, b, g = nonneg_rel_lstsq([np.ones_like(B), B, C], y)
    # never below streaming this layer's KV at the spec bandwidth (the physical floor)
    floor = 2 * kvh * m.head_dim * inp.quant.kv_bytes_per_elem / inp.gpu.hbm_bw_bytes_s
    g = max(g, floor)
    if h != qh:
        notes.append(f"decode attention measured at {h:g} query heads for {qh:g}")
    L = m.num_layers
    return np.array([a * L, b * L, g * L]), kernel


def _prefill_fit(root: Path, inp: TableInputs, version: str, notes: list) -> tuple[np.ndarray, str] | None:
    got = _attention_table(root, inp, version, "context_attention_perf", "prefill", notes)
    if got is None:
        return None
    t, mask, kernel, h, qh = got
    m = inp.model
    mask &= t["step"] == 0
    B = t["batch_size"][mask].astype(np.float64)
    q = t["isl"][mask].astype(np.float64)
    y = t["latency"][mask] * _MS
    coef = nonneg_rel_lstsq([np.ones_like(B), B, B * q, B * q * q / 2.0], y)
    scale = qh / h  # compute-bound: scales with the query heads
    if h != qh:
        notes.append(f"prefill attention measured at {h:g} query heads for {qh:g}, scaled by {scale:g}")
    L = m.num_layers
    return np.array([coef[0] * L, coef[1] * L, coef[2] * L * scale, coef[3] * L * scale]), kernel


def _versions(root: Path, system: str, wanted: str | None) -> dict[str, str | None]:
    return {name: kd.nearest_version(kd.versions(root, system, name), wanted) for name in kd.TABLES}


def build_tables(root: Path, inp: TableInputs) -> KernelTables:
    """Build one pool's tables from the data under ``root`` (see the module doc)."""
    m, q, tp = inp.model, inp.quant, inp.tp
    vers = _versions(root, inp.system, inp.vllm_version)
    notes: list[str] = []
    T = np.arange(1, inp.max_tokens + 1, dtype=np.int64)
    Tf = T.astype(np.float64)
    empty = np.zeros(0)

    def padded(x: np.ndarray) -> np.ndarray:
        return np.concatenate([[0.0], x])

    gemm_s = lm_s = lin_s = comm = empty
    gemm_kernel = moe_kernel = None
    dtype = GEMM_DTYPES.get(q.weights) if q.compute_dtype_on(inp.gpu) == q.compute_dtype else None
    if vers["gemm_perf"] is not None:
        bf16 = _gemm_grid(root, inp.system, vers["gemm_perf"], "bfloat16")
        lin_grid = (
            (bf16 if dtype == "bfloat16" else _gemm_grid(root, inp.system, vers["gemm_perf"], dtype)) if dtype else None
        )
        if bf16 is not None:
            lm_s = padded(bf16[0].at_ms(Tf, m.vocab_size / tp, m.hidden_size) * _MS)
        if lin_grid is None:
            notes.append(f"linear layers: roofline (no {q.weights} GEMM kernel for this GPU in the data)")
        else:
            grid, gemm_kernel = lin_grid
            if m.num_experts == 1 and not m.is_mla:
                layer = np.zeros(len(T))
                for _name, n, k in _layer_gemms(m, tp):
                    g = bf16[0] if _name == "router" else grid  # type: ignore[index]  # assumes a bf16 table (not checked)
                    layer += g.at_ms(Tf, n, k)
                gemm_s = padded(layer * m.num_layers * _MS)
            else:
                total = np.zeros(len(T))
                for _name, n, k, layers in _model_gemms(m, tp):
                    g = bf16[0] if _name == "router" else grid  # type: ignore[index]  # assumes a bf16 table (not checked)
                    total += g.at_ms(Tf, n, k) * layers
                gemm_s = padded(total * _MS)
            comm = padded(_comm_s(root, inp, vers["custom_allreduce_perf"], T, notes))
            elem = Tf * (elementwise_bytes_per_token(m, q, tp) / (inp.gpu.hbm_bw_bytes_s * inp.e_memory))
            lin = gemm_s[1:] + comm[1:] + elem
            if m.num_experts > 1:
                got = _moe_measured(root, inp, vers["moe_perf"], T, notes)
                if got is None:
                    lin = lin + _moe_experts_s(inp, T)
                else:
                    lin = lin + got[0]
                    moe_kernel = got[1]
                fixed, per_tok = moe_exchange_s(m, q, inp.gpu, inp.e_comm, inp.t_allreduce_s, tp, inp.dp)
                if inp.dp > 1:
                    lin = lin + (fixed + per_tok * Tf)
                    notes.append(
                        f"data-parallel MoE exchange: roofline (all-gather + reduce-scatter over {inp.dp} ranks)"
                    )
            lin_s = padded(np.maximum.accumulate(lin))
    else:
        notes.append("linear layers: roofline (no GEMM table)")
    if len(lm_s):
        lm_s = np.maximum.accumulate(lm_s)
    dec = pre = None
    if vers["generation_attention_perf"] is not None:
        dec = _decode_fit(root, inp, vers["generation_attention_perf"], notes)
    if vers["context_attention_perf"] is not None:
        pre = _prefill_fit(root, inp, vers["context_attention_perf"], notes)
    main = vers["gemm_perf"] if gemm_kernel else (vers["generation_attention_perf"] or vers["context_attention_perf"])
    parts = []
    if gemm_kernel:
        parts.append(f"GEMM {dtype} ({gemm_kernel})")
    if moe_kernel:
        named = moe_kernel.endswith(")") and " (vLLM " in moe_kernel  # rows of another collection than the nearest
        parts.append(moe_kernel + (f" (vLLM {vers['moe_perf']})" if vers["moe_perf"] != main and not named else ""))
    if dec or pre:
        parts.append(f"attention {(dec or pre)[1]} (KV {KV_DTYPES[q.kv_cache]})")  # type: ignore[index]  # one is set
    if tp > 1 and gemm_kernel and not any(n.startswith("all-reduce") for n in notes):
        ar = vers["custom_allreduce_perf"]
        parts.append("all-reduce" + (f" (vLLM {ar})" if ar != main else ""))
    what = ", ".join(parts) if parts else "none usable"
    source = f"measured vLLM {main} kernels on {inp.system} ({kd.PACKAGE} {kd.package_version()}, {kd.LICENSE}): {what}"
    if notes:
        source += "; " + "; ".join(notes)
    meta = {"source": source, "system": inp.system, "versions": vers, "notes": notes, "format": FORMAT}
    return KernelTables(
        lin_s=lin_s,
        lm_head_s=lm_s,
        gemm_s=gemm_s,
        comm_s=comm,
        decode_s=dec[0] if dec else empty,
        prefill_s=pre[0] if pre else empty,
        meta=meta,
    )
