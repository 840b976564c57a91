"""vLLM V0's eager steps: the kernel launches a step pays when it runs outside a CUDA graph.

The measured kernel tables (``sim.perf.kernels``) are CUDA-graph timings: aiconfigurator-core's vLLM
collectors capture the GEMMs in a graph and replay it (ai-dynamo/aiconfigurator,
``collector/vllm/collect_gemm.py``: ``benchmark_with_power(..., use_cuda_graph=...)``, Apache-2.0), so a
step built from them carries no launch cost. That is what V1 runs (0.8 on: piecewise CUDA graphs for
mixed batches too). **V0 runs every step with a prefill eagerly**: its model runner takes a graph
runner only when the batch has no prefill and the decode batch fits a captured size ("Currently cuda
graph is only supported by the decode phase"; ``if prefill_meta is None and decode_meta.use_cuda_graph``,
vllm/worker/model_runner.py ``ModelRunner.execute_model``, the same test from 0.3's CUDA-graph PR #1926
to the V0 removal in 0.11). Such a step pays a launch per kernel: ``eager_step_s`` per step with a
prefill, added to the step's GPU time (vLLM V0 only, and only where the step comes from the kernel tables).

The form, additive: aiconfigurator's own layer-wise tooling reads a vLLM step's wall time less its
kernels' GPU time as "the per-kernel launch overhead summed (~5-10 us x N_kernels)" under eager mode and
~10-20 us (one graph launch) under CUDA graphs (``collector/layerwise/common/parse_nsys_wall_vs_gpu.py``
@ 247758e6, module docstring).

The figure per launch, ``EAGER_LAUNCH_S``, is derived from the kernel data's own eager and graph rows
(not fitted): the h100_sxm all-reduce table times vLLM's custom all-reduce both ways
(``custom_allreduce_perf``, backends ``vllm_graph`` / ``vllm_eager``; collector
``collect_all_reduce.py``, ``benchmark_vllm_allreduce``). Its eager loop calls
``tensor_model_parallel_all_reduce(input.clone())`` back to back: three device operations per call (the
clone's copy, the custom all-reduce's copy of an unregistered input into its IPC buffer, the all-reduce
kernel). Up to 1 MiB the eager time is flat, 19.7-20.9 us (median 20.4 us over 14 sizes; TP2, vLLM 0.24.0
collection), while the graph rows climb from 4.2 to 12.4 us: the loop is host-bound, so 20.4 us / 3 launches
= 6.8 us per launch, inside the 5-10 us aiconfigurator quotes. ``tests/test_eager.py`` recomputes it from the installed data.

Kernels per step (``eager_kernels``): per decoder layer of a dense model the ten launches of vLLM's
Llama-style layer (vllm/model_executor/models/llama.py ``LlamaDecoderLayer.forward``): the fused
residual+RMSNorm, the qkv GEMM, the rotary embedding, the KV-cache write (``reshape_and_cache_flash``),
the attention kernel, the o GEMM, the second fused residual+RMSNorm, the gate_up GEMM, SiLU-and-mul and
the down GEMM; plus the two all-reduces per layer under tensor parallelism; plus the embedding, the final
norm and the LM head. MoE layers are counted as dense ones (their router and expert kernels are not
counted): a lower bound there.

**V1 past its largest CUDA graph** (``graph_max_tokens``, 2026-12-08). V1 captures graphs for a list of
batch sizes and pads a step up to the next one; a step of more scheduled tokens than the largest runs
without a graph (vLLM 0.11.0 ``vllm/v1/worker/gpu_model_runner.py``: ``_get_num_input_tokens`` pads only
``if ... num_scheduled_tokens <= self.cudagraph_batch_sizes[-1]``, and ``vllm/v1/cudagraph_dispatcher.py``
``CudagraphDispatcher.dispatch`` returns ``CUDAGraphMode.NONE`` for a size it has no key for). The largest
size by default, read in each release's source: 512 on 0.8.0-0.9.2 (0.8: ``[1, 2, 4] + range(8, 513, 8)``;
0.9: ``SchedulerConfig.cuda_graph_sizes`` default ``[512]``), ``min(2 x max_num_seqs, 512)`` on
0.10.0-0.11.1 (``SchedulerConfig.__post_init__``, "Default set cuda_graph_sizes to [min(max_num_seqs * 2,
512)]"; 0.11.1: ``max_cudagraph_capture_size``). Such a step pays the same ``eager_kernels × EAGER_LAUNCH_S``
as a V0 eager step. Releases after 0.11.1, and a pool that names none, are not read here: no limit (as
before). vLLM V1 only, and only where the kernel tables time the step.
"""

from __future__ import annotations

from sim.catalog import ModelSpec

__all__ = [
    "EAGER_LAUNCH_S",
    "KERNELS_PER_LAYER",
    "KERNELS_PER_STEP",
    "V1_GRAPH_SIZES_READ",
    "eager_kernels",
    "eager_launch_s",
    "eager_step_s",
    "graph_max_tokens",
]

EAGER_LAUNCH_S = 6.8e-6
"""Seconds per kernel launched eagerly (see the module doc: h100_sxm's eager all-reduce rows, 20.4 us per
host-bound call of three device operations)."""
KERNELS_PER_LAYER = 10
"""Launches per dense decoder layer at TP1 (see the module doc)."""
KERNELS_PER_STEP = 3
"""Launches per step outside the layers: embedding, final norm, LM head."""
V1_GRAPH_SIZES_READ = ((0, 8, 0), (0, 11, 1))
"""The V1 releases whose default largest CUDA-graph size was read in their source (first, last; module doc)."""
_TWICE_SEQS_SINCE = (0, 10, 0)
"""From this release the default largest size is min(2 x max_num_seqs, 512); before it, 512."""


def eager_kernels(model: ModelSpec, tp: int) -> int:
    """Kernels one eager forward launches: ``KERNELS_PER_LAYER`` (+ 2 all-reduces when ``tp`` > 1) per
    layer, plus ``KERNELS_PER_STEP``."""
    per_layer = KERNELS_PER_LAYER + (2 if int(tp) > 1 else 0)
    return model.num_layers * per_layer + KERNELS_PER_STEP


def eager_launch_s(model: ModelSpec, tp: int) -> float:
    """Seconds of kernel launches of one step outside a CUDA graph: ``eager_kernels × EAGER_LAUNCH_S``."""
    return eager_kernels(model, tp) * EAGER_LAUNCH_S


def eager_step_s(model: ModelSpec, tp: int, v0: bool) -> float:
    """Launch seconds a step with a prefill adds to the kernel tables' time: V0 only (V1 runs its mixed
    steps under piecewise CUDA graphs), ``eager_launch_s``."""
    return eager_launch_s(model, tp) if v0 else 0.0


def graph_max_tokens(vllm_version: tuple[int, ...] | None, max_num_seqs: int, v0: bool) -> int:
    """The most scheduled tokens a V1 step of this release runs inside a captured CUDA graph by default
    (module doc); 0 (no limit) for V0, an unnamed release or one outside ``V1_GRAPH_SIZES_READ``."""
    if v0 or vllm_version is None:
        return 0
    v = tuple(vllm_version)[:3]
    first, last = V1_GRAPH_SIZES_READ
    if not first <= v <= last:
        return 0
    return min(2 * int(max_num_seqs), 512) if v >= _TWICE_SEQS_SINCE else 512
