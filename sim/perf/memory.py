"""Memory plan: how many KV-cache blocks vLLM allocates on one GPU of a replica.

Follows vLLM v1's own accounting (``Worker.determine_available_memory`` and
``kv_cache_utils.get_num_blocks``; docs/design.md, "Memory plan and KV blocks"):

    requested  = device memory as the device reports it × gpu_memory_utilization
    available  = requested − weights − profile-run activation peak − non-torch memory
                 [− CUDA-graph estimate, vLLM ≥ 0.21]
    num_blocks = floor(available / (block_size × KV bytes per token on this GPU))

vLLM keeps one of those blocks back as its null block (the scheduler uses
``num_blocks − 1``), and refuses to start when the available memory cannot hold
one ``max_model_len`` sequence (from some release after 0.11, after taking the
null block out first). The profile run, non-torch and CUDA-graph terms are
estimates; each constant below names what it was read from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from sim.catalog import GPU, ModelSpec, QuantSpec, load_catalog
from sim.errors import FleetcastError
from sim.perf.perf_model import ModelShape

__all__ = [
    "MemoryPlan",
    "plan_memory",
    "device_memory_bytes",
    "check_max_model_len",
    "hold_one_sequence",
    "accounting_rule",
    "moe_workspace_bytes",
    "moe_workspace_held",
    "MOE_WORKSPACE_FACTOR",
    "MOE_WORKSPACE_HELD_SINCE",
    "KV_PLAN_UNCERTAINTY_BYTES",
    "MOE_CHUNK_TOKENS",
    "NON_TORCH_BYTES",
    "COMM_BYTES",
    "CUDAGRAPH_ESTIMATE_BYTES",
    "SAMPLER_FP32_COPIES",
    "SAMPLER_SORT_FP32_COPIES",
    "SAMPLER_TRITON_SINCE",
    "SAMPLER_FLASHINFER_FP32_COPIES",
    "FLASHINFER_SAMPLER_V1_SINCE",
    "FLASHINFER_SAMPLER_OPT_IN_SINCE",
    "sampler_copies",
    "FORWARD_PEAK_FACTOR",
]

GiB = 1024**3
_LOGIT_BYTES = 4  # vLLM computes logits in fp32
_TP_CHOICES = (1, 2, 4, 8)

_LLMD = (
    "llm-d-incubation/llm-d-planner accuracy/results/v0.19.0/logs at commit d3121e05 (Apache-2.0): vLLM "
    "0.19.0 start-up logs on H100 80GB, gpu_memory_utilization 0.95"
)
"""Where the constants below were read: the set's models that tests/test_memory.py does not
check (Gemma, Phi, Granite, CodeLlama, Kimi, Llama-4-Scout, gpt-oss, Mistral-Small,
Qwen1.5-MoE); the models it checks (Llama-3.1, Qwen2.5, Qwen3, Mixtral, DeepSeek-V2-Lite) are
out of sample."""
NON_TORCH_BYTES = int(0.25 * GiB)
"""Memory outside torch that appears during vLLM's profile run on one GPU (cuBLAS workspaces,
attention buffers): ``non-torch forward increase memory: 0.24-0.26GiB`` at TP1 (_LLMD: Gemma-2,
Phi-4, CodeLlama-7B)."""
COMM_BYTES = {1: 0, 2: int(1.83 * GiB), 4: int(1.94 * GiB), 8: int(1.94 * GiB), 16: int(1.94 * GiB)}
"""Extra non-torch memory of the tensor-parallel communicators (NCCL, custom all-reduce) per GPU,
by TP size: the logged non-torch increase is 2.07-2.09 GiB at TP2 (Kimi-Dev-72B, gpt-oss-20b,
Mistral-Small-24B-w8a8) and 2.17-2.21 GiB at TP4 (Kimi-Dev-72B, Llama-4-Scout) (_LLMD), less the TP1 0.25;
TP8 and 16 assumed equal to TP4."""
CUDAGRAPH_ESTIMATE_BYTES = {1: int(0.8 * GiB), 2: int(1.3 * GiB)}
"""vLLM's CUDA-graph memory estimate per GPU (TP1, and TP >= 2), which vLLM >= 0.21 takes out of
the KV budget: 0.52-1.13 GiB, median 0.81, at TP1 (Gemma-2, Phi-2/4, Granite-8B, CodeLlama) and
1.09-1.63 GiB at TP2/4 (Kimi, gpt-oss, Mistral-Small, Scout) in ``Estimated CUDA graph memory`` (_LLMD,
where 0.19 logs it without subtracting it)."""
CUDAGRAPH_PROFILED_SINCE = (0, 21, 0)
"""vLLM subtracts its CUDA-graph estimate from this release on ("CUDA graph memory profiling is
enabled (default since v0.21.0)", vLLM 0.33 gpu_worker.py; 0.19 logs "In v0.19, CUDA graph memory
profiling will be enabled by default" and does not). Before, graphs were captured after the KV
cache was sized and lived in the (1 - utilization) headroom."""
NULL_BLOCK_IN_CHECK_AFTER = (0, 11, 0)
"""vLLM 0.11 checks max_model_len against all the available memory; 0.32/0.33 first take the null
block out (kv_cache_planning.py; measured on the CPU testbed, vLLM 0.32: 16 blocks of 128 tokens
refused max_model_len 2048). The release in between that changed it was not identified: every
version after 0.11 is treated as the newer rule."""
FORWARD_PEAK_FACTOR = 1.21
"""Peak torch memory of the profile forward / (tokens x activation bytes x (2 hidden + 3 MLP width
per GPU)): 1.22 for CodeLlama-7B and 1.20 for Granite-3.1-8B (_LLMD: ``torch peak memory
increase`` 0.77 and 0.85 GiB at 8,192 tokens, where the sampler's share is smaller)."""
SAMPLER_FP32_COPIES = 3.8
"""Peak of vLLM's dummy sampler run in fp32 [rows x vocabulary] tensors (logits and what
top-p/top-k sampling derives from them): 3.71 (Gemma-2-2B), 3.74 (Gemma-2-9B), 3.97 (Phi-4) at
1,024 rows (_LLMD). The profile-run peak is the larger of forward and sampler: vLLM frees the
forward's activations before sampling (Llama-3.1-8B logs the same 1.89 GiB at TP1, 2 and 4)."""
_LLMD_BENCH = (
    "llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md, commit 0282dcf6 of 2026-01-27 "
    "(Apache-2.0): vllm/vllm-openai:latest of that date on H100 80GB, gpu_memory_utilization 0.9, the server's "
    "H100 defaults (8,192 batched tokens, 1,024 sequences)"
)
SAMPLER_SORT_FP32_COPIES = 9.6
"""The same peak while vLLM's top-k/top-p masking was the PyTorch sort (``apply_top_k_top_p``: the
sorted logits, their int64 indices, softmax and cumulative sum beside the logits): 9.59 (Qwen3-0.6B,
5.56 GiB) and 9.62 (gpt-oss-20b, 7.38 GiB) at 1,024 rows (_LLMD_BENCH: models outside the catalog;
Llama-3.1-8B and Qwen3-32B of the same file are checks in tests/test_memory.py). The Triton
top-k/top-p kernel that replaced it (vllm-project/vllm PR #33538, "does not use extra memory"; PR
#32558 measured 1.25 GB for the sort against 384 MB at 256 x 131,072) gives ``SAMPLER_FP32_COPIES``."""
SAMPLER_TRITON_SINCE = (0, 18, 0)
"""The first release with the Triton top-k/top-p sampler that this plan relies on: v0.18.0 is the first
release whose API reference lists ``vllm.v1.sample.ops.topk_topp_triton``
(docs.vllm.ai/en/v0.18.0/api/vllm/v1/sample/ops/topk_topp_triton/). The sort path is logged up to
the ``latest`` image of 2026-01-27 (_LLMD_BENCH) and in 0.9.2-0.10 (vllm-project/vllm PR #21429: 5.62
GiB torch peak for Qwen3-235B-A22B-FP8, 9.7 copies of 1,024 x 151,936). That image is taken as 0.14,
the newest release by then as far as this plan can tell (the file does not print it). PR #33538 was
opened on 2026-02-02, so releases 0.15 to 0.17 may have either; for them the plan takes the sort path
and counts the difference as uncertainty (``hold_one_sequence``)."""
SAMPLER_UNIDENTIFIED_FROM = (0, 15, 0)
_VLLM_SDIST = (
    "vllm 0.7.3, 0.8.0, 0.8.5, 0.9.0-0.11.1 source distributions (PyPI, Apache-2.0): vllm/v1/worker/gpu_model_runner.py, "
    "vllm/v1/sample/sampler.py, vllm/v1/sample/ops/topk_topp_sampler.py, docker/Dockerfile, requirements/cuda.txt"
)
SAMPLER_FLASHINFER_FP32_COPIES = SAMPLER_FP32_COPIES
"""The same peak when vLLM's V1 sampler runs FlashInfer's rejection-sampling top-k/top-p kernel, which
sorts nothing. Counted from the code (_VLLM_SDIST; flashinfer-python sdists 0.2.1.post2, 0.2.5, 0.3.1,
Apache-2.0), in [rows x vocabulary] fp32 copies live at the peak: the model-dtype logits of
``compute_logits`` (0.5 for 16-bit models), their fp32 copy (``Sampler.forward``: ``logits.to(float32)``,
1; temperature is applied in place), and two more fp32 tensors of the same shape: 0.8.x
``forward_cuda`` takes ``probs = logits.softmax()`` and FlashInfer 0.2.1's
``top_k_top_p_sampling_from_probs`` (``filter_apply_order="top_k_first"``) allocates ``renorm_probs``
(``top_k_renorm_probs``: ``torch.empty_like(probs)``); 0.9.0-0.11.0 call
``top_k_top_p_sampling_from_logits``, whose FlashInfer 0.2.5-0.3.1 body allocates ``masked_logits``
(``top_k_mask_logits``) and ``probs`` (softmax). 0.5 + 1 + 2 = 3.5 by hand, no sort workspace. The Triton
path of ``SAMPLER_FP32_COPIES`` holds the same set (``probs`` and ``random_sample``'s ``q``; 3.5 by hand)
and logs 3.71-3.97: the constant is that measured one, not the hand count (0.3 copies, 60 KV blocks of
Llama-3.1-70B at TP2 and 1,024 rows, apart)."""
FLASHINFER_SAMPLER_V1_SINCE = (0, 8, 0)
"""From vLLM 0.8.0 the V1 engine (the default) runs the dummy sampler in its profile run
(``GPUModelRunner._dummy_sampler_run``: vllm-project/vllm PR #13594, then #14728; 0.7.3's profile run
runs none) with ``top_p`` 0.9 and ``top_k`` vocabulary - 1 on min(max_num_seqs, max_num_batched_tokens)
rows (``_dummy_run``), and ``TopKTopPSampler`` takes FlashInfer's kernel whenever the ``flashinfer``
package imports and ``VLLM_USE_FLASHINFER_SAMPLER`` is not 0 (PR #11394: "In V1, None means True";
0.8.x required FlashInfer < 0.2.3, PR #14815; 0.9.0-0.11.0 >= 0.2.3, PR #15777). Whether it imports is
the install's: the vllm/vllm-openai images install it (docker/Dockerfile: flashinfer 0.2.1.post2 in
0.8.0-0.8.5, 0.2.5 in 0.9.0/0.9.1, 0.2.6.post1 in 0.9.2, 0.2.8rc1 in 0.10.0, 0.2.11 in 0.10.1, 0.3.0 in
0.10.2, 0.3.1 in 0.11.0); the pip package does not depend on it before 0.11.1 (requirements/cuda.txt;
only the ``vllm[flashinfer]`` extra from 0.10.1)."""
FLASHINFER_SAMPLER_OPT_IN_SINCE = (0, 11, 1)
"""From this release the FlashInfer sampler is opt-in (``VLLM_USE_FLASHINFER_SAMPLER=1``) although
flashinfer-python becomes a CUDA dependency (0.5.2 in requirements/cuda.txt): vllm-project/vllm PR
#26859, "Disable FlashInfer sampler by default", merged 2025-10-15, first in 0.11.1."""
MOE_WORKSPACE_FACTOR = 1.2
"""Torch memory the fused-MoE kernels of the profile forward keep while the dummy sampler runs, per
byte of ``moe_workspace_bytes`` (rows = min(max_num_batched_tokens x dp, MOE_CHUNK_TOKENS) x top-k;
widths max(I, h) + max(2I, h) at the activation dtype, I the expert width on this GPU). MoE models
log torch peaks above the sampler's alone: 2.47 GiB for Qwen1.5-MoE-A2.7B TP1, 2.92 / 2.85 GiB for
Kimi-VL-A3B TP1 / TP2, 3.19 GiB for Llama-4-Scout TP4 (_LLMD), 0.27-0.54 GiB over the sampler
estimate; least squares through the origin on those four gives 1.20. Held out, as checks
(tests/test_memory.py): Qwen3-30B-A3B, Mixtral-8x7B and DeepSeek-V2-Lite. gpt-oss-20b (MXFP4
kernel, peak equal to the sampler's) is left out of the fit: its kernel is another one."""
MOE_CHUNK_TOKENS = 16384
"""vLLM's fused MoE processes at most this many tokens at a time (VLLM_FUSED_MOE_CHUNK_SIZE,
16 x 1024 by default), so its workspaces stop growing there."""
MOE_WORKSPACE_HELD_SINCE = (0, 14, 0)
"""Unquantized (16-bit) MoE weights run vLLM's modular ``TritonExperts`` kernel, whose workspace
buffers persist between calls (so the profile run's sampler runs on top of them), from this
release on: vllm-project/vllm PR #31052 ("[MoE Refactor][9/N] Use modular kernel for unquantized
Triton MoE", merged 2025-12-20, after the 0.13 branch). Before it, ``fused_experts_impl`` took
``cache13`` (rows x max(2I, h)) and ``cache2`` (rows x I) from ``torch.empty`` on every call and
freed them on return (vllm/model_executor/layers/fused_moe/fused_moe.py), so they add to the
forward's peak, not to the sampler's. The fp8 path of 0.10 logs the same (vllm-project/vllm PR #21429:
Qwen3-235B-A22B-FP8 at TP4, torch peak 5.62 GiB, the sampler's alone at ``SAMPLER_SORT_FP32_COPIES``),
so the rule is by release, whatever the weights."""
KV_PLAN_UNCERTAINTY_BYTES = int(0.5 * GiB)
"""How far the plan's available KV memory may be from vLLM's own, per GPU: the tolerance that
tests/test_memory.py holds start-up logs to where the KV cache is a thin remainder of the budget
(Qwen2.5-72B TP2, the RTX 3090 v0 logs). The largest error seen over the 20 logs checked there is
0.22 GiB (RTX 3090, v0, max_model_len 29,000); the 17 H100 0.19 logs are within 0.18 GiB. A
``max_model_len`` that misses by no more than this is started, with a warning that names both
figures (``hold_one_sequence``): a planner is better served by the numbers than by a refusal vLLM
may not make. Not fitted to the two refusals of issue 24."""
_HBM_REPORTED_PER_GIB = 79.19 / 80.0
"""An H100 80GB reports 79.19 GiB (``total_memory=79.19GiB`` in _LLMD): the printed GB are
physical GiB less ~1% the driver keeps."""


def device_memory_bytes(gpu: GPU) -> int:
    """Memory of one GPU as the device reports it (``torch.cuda.mem_get_info`` total): the
    catalog's ``device_memory_bytes``, else the printed capacity read as GiB less 1%
    (``_HBM_REPORTED_PER_GIB``)."""
    if gpu.device_memory_bytes:
        return int(gpu.device_memory_bytes)
    return int(gpu.hbm_bytes / 1e9 * GiB * _HBM_REPORTED_PER_GIB)


def accounting_rule(vllm_version: tuple[int, ...] | None) -> str:
    """One line naming the vLLM accounting a plan follows."""
    v = "the newest vLLM" if vllm_version is None else "vLLM " + ".".join(map(str, vllm_version))
    graphs = _subtracts_cudagraphs(vllm_version)
    return f"{v}: device memory x gpu_memory_utilization - weights - profile-run activation peak - non-torch" + (
        " - CUDA-graph estimate" if graphs else " (CUDA graphs outside the budget)"
    )


def _subtracts_cudagraphs(vllm_version: tuple[int, ...] | None) -> bool:
    return vllm_version is None or tuple(vllm_version) >= CUDAGRAPH_PROFILED_SINCE


@dataclass(frozen=True)
class MemoryPlan:
    """How one GPU of a replica splits its memory (bytes, per GPU), as vLLM accounts it."""

    device_bytes_per_gpu: int  # total as the device reports it
    budget_bytes_per_gpu: int  # device memory × gpu_memory_utilization (vLLM's "requested memory")
    weight_bytes_per_gpu: int  # this GPU's shard of the weights
    activation_bytes_per_gpu: int  # peak of the profile run at max_num_batched_tokens (+ dummy sampler)
    non_torch_bytes_per_gpu: int  # memory outside torch: workspaces, NCCL / custom all-reduce buffers
    cudagraph_bytes_per_gpu: int  # CUDA-graph estimate taken out of the budget (0 before vLLM 0.21)
    available_kv_bytes_per_gpu: int  # what is left for the KV cache ("Available KV cache memory")
    kv_bytes_per_token_per_gpu: float  # KV of one token on this GPU
    kv_bytes_per_block_per_gpu: float  # block_size tokens
    num_kv_blocks: int  # vLLM's num_gpu_blocks (same on every GPU of the replica), null block included
    max_kv_tokens: int  # num_kv_blocks · block_size (vLLM's "GPU KV cache size")
    accounting: str  # which vLLM accounting this follows
    edge_note: str = ""  # set where one max_model_len sequence was held within the plan's uncertainty
    uncertainty_bytes_per_gpu: int = KV_PLAN_UNCERTAINTY_BYTES  # how far vLLM's own figure may be (hold_one_sequence)

    @property
    def runtime_overhead_bytes_per_gpu(self) -> int:
        """Everything besides weights, activations and KV: non-torch + CUDA graphs."""
        return self.non_torch_bytes_per_gpu + self.cudagraph_bytes_per_gpu

    def breakdown_gib(self) -> dict[str, float]:
        """The plan as vLLM logs it, in GiB (for summary.json and the terminal)."""
        keys = ("device", "budget", "weights", "activation_peak", "non_torch", "cudagraph", "kv_cache")
        vals = (
            self.device_bytes_per_gpu,
            self.budget_bytes_per_gpu,
            self.weight_bytes_per_gpu,
            self.activation_bytes_per_gpu,
            self.non_torch_bytes_per_gpu,
            self.cudagraph_bytes_per_gpu,
            max(self.available_kv_bytes_per_gpu, 0),
        )
        return {f"{k}_gib": round(v / GiB, 3) for k, v in zip(keys, vals)}


def moe_workspace_held(vllm_version: tuple[int, ...] | None) -> bool:
    """Whether the fused-MoE workspace outlives the forward (modular kernel, persistent buffers)
    in this vLLM release: from ``MOE_WORKSPACE_HELD_SINCE``, or with no version named."""
    return vllm_version is None or tuple(vllm_version) >= MOE_WORKSPACE_HELD_SINCE


def sampler_copies(vllm_version: tuple[int, ...] | None, flashinfer_sampler: bool | None = None) -> float:
    """fp32 [rows x vocabulary] copies at the peak of vLLM's dummy sampler run in this release:
    ``SAMPLER_FLASHINFER_FP32_COPIES`` where the sampler runs FlashInfer's kernel
    (``flashinfer_sampler`` true: the package installed, as in the vllm/vllm-openai images, and
    ``VLLM_USE_FLASHINFER_SAMPLER`` not 0 before ``FLASHINFER_SAMPLER_OPT_IN_SINCE``, 1 from it);
    otherwise ``SAMPLER_FP32_COPIES`` with the Triton top-k/top-p kernel (``SAMPLER_TRITON_SINCE``, or
    no version named) and ``SAMPLER_SORT_FP32_COPIES`` with the PyTorch sort before it. Unset
    (``None``) is an install without flashinfer before 0.11.1 (the pip package) and vLLM's default
    from 0.11.1 (opt-in): the sort path before 0.18 either way."""
    if flashinfer_sampler:
        return SAMPLER_FLASHINFER_FP32_COPIES
    if vllm_version is None or tuple(vllm_version) >= SAMPLER_TRITON_SINCE:
        return SAMPLER_FP32_COPIES
    return SAMPLER_SORT_FP32_COPIES


def moe_workspace_bytes(
    model: ModelSpec,
    quant: QuantSpec,
    tokens: int,
    tp: int = 1,
    dp: int = 1,
    ep: bool = False,
    held: bool = True,
) -> int:
    """The fused-MoE workspace of a forward of ``tokens`` tokens per rank on one GPU (0 for a
    dense model): rows = min(tokens x dp, MOE_CHUNK_TOKENS) x top-k (the ranks' tokens are
    gathered before the experts), I the expert width on this GPU (sliced over tp x dp GPUs, whole
    with expert parallelism). The modular kernel's buffers (``held``) are max(I, h) + max(2I, h)
    activations wide (``workspace_shapes``: (M, topk, max(N/2, K)) and (M, topk, max(N, K)), N =
    2I); the per-call ones of ``fused_experts_impl`` before it, max(2I, h) + I (``cache13`` and
    ``cache2``)."""
    if model.num_experts == 1:
        return 0
    width = model.moe_intermediate_size if ep else model.moe_intermediate_size / (tp * dp)
    h = model.hidden_size
    rows = min(tokens * dp, MOE_CHUNK_TOKENS) * model.num_experts_active
    cols = max(width, h) + max(2 * width, h) if held else max(2 * width, h) + width
    return math.ceil(rows * cols * quant.activation_bytes)


def _activation_bytes(
    model: ModelSpec,
    quant: QuantSpec,
    s: ModelShape,
    tokens: int,
    rows: int,
    moe_workspace: int = 0,
    held: bool = True,
    copies: float = SAMPLER_FP32_COPIES,
) -> int:
    """Peak torch memory of vLLM's profile run above the weights: the larger of one forward of
    ``tokens`` tokens (peak in the MLP: residual, normed input, gate/up output and activated
    output) and the dummy sampler over ``rows`` rows of fp32 logits (full vocabulary on every
    rank). A ``held`` MoE workspace sits under the sampler (``MOE_WORKSPACE_FACTOR``); one freed
    when the experts return (``fused_experts_impl``) adds to the forward instead."""
    forward = FORWARD_PEAK_FACTOR * tokens * quant.activation_bytes * (2 * model.hidden_size + 3 * s.mlp_width_per_gpu)
    sampler = rows * model.vocab_size * _LOGIT_BYTES * copies
    if moe_workspace and held:
        sampler += MOE_WORKSPACE_FACTOR * moe_workspace
    elif moe_workspace:
        forward += moe_workspace
    return math.ceil(max(forward, sampler))


def _plan(
    gpu: GPU,
    model: ModelSpec,
    quant: QuantSpec,
    tp: int,
    util: float,
    block_size: int,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    vllm_version: tuple[int, ...] | None,
    dp: int = 1,
    ep: bool = False,
    flashinfer_sampler: bool | None = None,
) -> MemoryPlan:
    s = ModelShape(model, quant, tp)
    device = device_memory_bytes(gpu)
    budget = math.ceil(device * util)  # vLLM: ceil(total × utilization)
    if dp == 1:
        weights = math.ceil(s.weight_bytes_total / tp)
    else:  # attention and dense layers replicated per rank, routed experts over all tp x dp GPUs
        weights = math.ceil((s.weight_bytes_total - s.routed_bytes_total) / tp + s.routed_bytes_total / (tp * dp))
    held = moe_workspace_held(vllm_version)
    ws = moe_workspace_bytes(model, quant, max_num_batched_tokens, tp, dp, ep, held)
    rows = min(max_num_batched_tokens, max_num_seqs)
    copies = sampler_copies(vllm_version, flashinfer_sampler)
    act = _activation_bytes(model, quant, s, max_num_batched_tokens, rows, ws, held, copies)
    # terms the plan takes beyond its evidence, counted as uncertainty before refusing a max_model_len:
    # the sampler of releases whose top-k/top-p path is not identified, the MoE workspace factor
    # (fitted at TP <= 4) on more GPUs
    uncertainty = KV_PLAN_UNCERTAINTY_BYTES
    unidentified = vllm_version is not None and SAMPLER_UNIDENTIFIED_FROM <= tuple(vllm_version) < SAMPLER_TRITON_SINCE
    if unidentified and not flashinfer_sampler:
        triton = _activation_bytes(model, quant, s, max_num_batched_tokens, rows, ws, held, SAMPLER_FP32_COPIES)
        uncertainty += act - triton
    if held and ws and int(tp) * int(dp) > 4:
        uncertainty += math.ceil(MOE_WORKSPACE_FACTOR * ws)
    world = int(tp) * int(dp)  # communicators and graphs of the whole replica's group
    non_torch = NON_TORCH_BYTES + COMM_BYTES.get(world, COMM_BYTES[16])
    graphs = CUDAGRAPH_ESTIMATE_BYTES[min(world, 2)] if _subtracts_cudagraphs(vllm_version) else 0
    available = budget - weights - act - non_torch - graphs
    per_block = block_size * s.kv_bytes_per_token_per_gpu
    blocks = max(math.floor(available / per_block), 0)
    return MemoryPlan(
        device,
        budget,
        weights,
        act,
        non_torch,
        graphs,
        available,
        s.kv_bytes_per_token_per_gpu,
        per_block,
        blocks,
        blocks * block_size,
        accounting_rule(vllm_version),
        uncertainty_bytes_per_gpu=uncertainty,
    )


def plan_memory(
    gpu: GPU,
    model: ModelSpec,
    quant: QuantSpec,
    tp: int = 1,
    gpu_memory_utilization: float = 0.9,
    block_size: int = 16,
    max_num_batched_tokens: int = 8192,
    max_num_seqs: int = 256,
    vllm_version: tuple[int, ...] | None = None,
    dp: int = 1,
    ep: bool = False,
    flashinfer_sampler: bool | None = None,
) -> MemoryPlan:
    """Split each GPU's memory into weights, activations, overheads and KV blocks.

    ``dp`` data-parallel ranks of ``tp`` GPUs each: every rank holds the attention and dense
    weights (split over its tp GPUs) and its own KV cache; the routed experts are spread over
    all tp x dp GPUs (sliced, or whole experts with ``ep``). ``num_kv_blocks`` is per rank.
    ``flashinfer_sampler``: whether vLLM's sampler runs FlashInfer's top-k/top-p kernel
    (``sampler_copies``; unset: by release, for an install without flashinfer).

    Raises FleetcastError, saying what would fit (more TP, another quantization), when not
    even one block fits.
    """
    if not 0.0 < gpu_memory_utilization <= 1.0 or block_size < 1 or max_num_batched_tokens < 1:
        raise FleetcastError(
            f"gpu_memory_utilization must be in (0, 1] (got {gpu_memory_utilization}), "
            f"block_size and max_num_batched_tokens >= 1 (got {block_size}, "
            f"{max_num_batched_tokens})."
        )
    args = (
        gpu_memory_utilization,
        block_size,
        max_num_batched_tokens,
        max_num_seqs,
        vllm_version,
        dp,
        ep,
        flashinfer_sampler,
    )
    plan = _plan(gpu, model, quant, tp, *args)
    if plan.num_kv_blocks >= 1:
        return plan
    need = (
        plan.weight_bytes_per_gpu
        + plan.activation_bytes_per_gpu
        + plan.runtime_overhead_bytes_per_gpu
        + plan.kv_bytes_per_block_per_gpu
    )
    tps = [t for t in _TP_CHOICES if model.num_heads % t == 0 and _plan(gpu, model, quant, t, *args).num_kv_blocks >= 1]
    fits_tp = (
        f"fits at {quant.weights} with tp={tps[0]}"
        if tps
        else f"does not fit at {quant.weights} with any tp in {', '.join(map(str, _TP_CHOICES))}"
    )
    ok = [q.weights for q in _alternatives(quant) if _plan(gpu, model, q, tp, *args).num_kv_blocks >= 1]
    fits_q = f"at tp={tp} it fits with weights {', '.join(ok)}" if ok else f"no weight quantization fits at tp={tp}"
    layout = f"tp={tp}" + (f", data_parallel={dp}" + (" with expert parallelism" if ep else "") if dp > 1 else "")
    raise FleetcastError(
        f"model '{model.name}' with {quant.weights} weights and {quant.kv_cache} KV cache does not fit on "
        f"'{gpu.name}' with {layout}: each GPU needs {need / GiB:.1f} GiB (weights "
        f"{plan.weight_bytes_per_gpu / GiB:.1f} + activations {plan.activation_bytes_per_gpu / GiB:.1f} + "
        f"non-torch and CUDA graphs {plan.runtime_overhead_bytes_per_gpu / GiB:.1f} + one KV block) but has "
        f"{plan.budget_bytes_per_gpu / GiB:.1f} GiB ({plan.device_bytes_per_gpu / GiB:.2f} GiB x "
        f"gpu_memory_utilization {gpu_memory_utilization}). It {fits_tp}; {fits_q}."
    )


def check_max_model_len(
    plan: MemoryPlan, max_model_len: int, block_size: int, vllm_version: tuple[int, ...] | None
) -> str | None:
    """vLLM's start-up check: None when one ``max_model_len`` sequence fits the available KV
    memory, else the reason (vLLM's wording, with the longest length that would fit)."""
    blocks = plan.num_kv_blocks
    if vllm_version is None or tuple(vllm_version) > NULL_BLOCK_IN_CHECK_AFTER:
        blocks -= 1  # the null block is taken out before the check
    need = -(-max_model_len // block_size)
    if need <= blocks:
        return None
    return (
        f"to serve one request of max_model_len {max_model_len:,}, "
        f"{need * plan.kv_bytes_per_block_per_gpu / GiB:.2f} GiB of KV cache is needed per GPU, more than "
        f"the {max(blocks, 0) * plan.kv_bytes_per_block_per_gpu / GiB:.2f} GiB available "
        f"({max(blocks, 0):,} blocks of {block_size} tokens); the longest max_model_len that fits is "
        f"{max(blocks, 0) * block_size:,}"
    )


def _sequence_blocks(max_model_len: int, block_size: int, vllm_version: tuple[int, ...] | None) -> int:
    """Blocks vLLM's start-up check asks for: one sequence, plus the null block after 0.11."""
    need = -(-max_model_len // block_size)
    return need + (1 if vllm_version is None or tuple(vllm_version) > NULL_BLOCK_IN_CHECK_AFTER else 0)


def hold_one_sequence(
    plan: MemoryPlan, max_model_len: int, block_size: int, vllm_version: tuple[int, ...] | None
) -> MemoryPlan:
    """The plan, or, where it misses one ``max_model_len`` sequence by less than what separates it
    from what vLLM would start, the plan holding that sequence (``num_kv_blocks`` = the sequence's
    blocks, + the null block after 0.11) with ``edge_note`` saying by how much. In turn:

    - no vLLM version named: the plan follows the newest accounting, which takes the CUDA-graph
      estimate (``CUDAGRAPH_ESTIMATE_BYTES``) out of the budget, while releases before
      ``CUDAGRAPH_PROFILED_SINCE`` leave the graphs in the (1 - utilization) headroom. A pool that
      names no version is not refused for what a supported release starts: as much of the
      estimate is given back as the sequence needs, and the budget split still adds up;
    - any version, what is still missing: no more than the plan's ``uncertainty_bytes_per_gpu``:
      ``KV_PLAN_UNCERTAINTY_BYTES``, the error the plan's estimated terms are checked to against
      vLLM's start-up logs, plus the terms it takes beyond its evidence (the sampler of releases
      from ``SAMPLER_UNIDENTIFIED_FROM`` to before ``SAMPLER_TRITON_SINCE``; the held MoE workspace on
      more than 4 GPUs, where its factor was not fitted). The sequence is held (the available
      memory stays the planned figure; ``edge_note`` gives both).

    Beyond that ``check_max_model_len`` refuses, as vLLM would.
    """
    need = _sequence_blocks(max_model_len, block_size, vllm_version)
    if plan.num_kv_blocks >= need:
        return plan
    per_block = plan.kv_bytes_per_block_per_gpu
    short = math.ceil(need * per_block - plan.available_kv_bytes_per_gpu)
    # no version named: a release before 0.21 leaves the CUDA-graph estimate in the headroom
    give = min(short, plan.cudagraph_bytes_per_gpu) if vllm_version is None else 0
    rest = short - give
    if rest > plan.uncertainty_bytes_per_gpu:
        return plan  # check_max_model_len refuses it
    notes = []
    if give > 0:
        notes.append(
            f"{give / GiB:.2f} GiB of the CUDA-graph estimate given back to hold one max_model_len sequence, "
            f"as vLLM before 0.21 would"
        )
    if rest > 0:
        have = max(plan.available_kv_bytes_per_gpu + give, 0)
        notes.append(
            f"one max_model_len {max_model_len:,} sequence needs {need * per_block / GiB:.2f} GiB of KV per GPU, "
            f"{rest / GiB:.2f} GiB more than the {have / GiB:.2f} GiB planned: within the plan's uncertainty "
            f"({plan.uncertainty_bytes_per_gpu / GiB:.2f} GiB), so it is started with {need:,} blocks; vLLM may "
            f"refuse it if its profile run comes in higher"
        )
    note = "; ".join(notes)
    return replace(
        plan,
        cudagraph_bytes_per_gpu=plan.cudagraph_bytes_per_gpu - give,
        available_kv_bytes_per_gpu=plan.available_kv_bytes_per_gpu + give,
        num_kv_blocks=need,
        max_kv_tokens=need * block_size,
        accounting=plan.accounting + "; " + note,
        edge_note=note,
    )


def _alternatives(quant: QuantSpec) -> list[QuantSpec]:
    """The built-in weight schemes with this KV scheme, most bytes/param first."""

    cat = load_catalog()
    out = [
        replace(cat.quant(w, "auto"), kv_cache=quant.kv_cache, kv_bytes_per_elem=quant.kv_bytes_per_elem)
        for w in cat.weight_schemes()
    ]
    return sorted(out, key=lambda q: (-q.weight_bytes_per_param, q.weights))
