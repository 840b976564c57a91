"""vLLM 0.6's ROCm build on an AMD CDNA3 GPU (MI300X): what that software stack ran at.

The catalog's achievable rates of the MI300X (``gpus.yaml``: BF16 668 TFLOPS MAMF with TunableOp
on, a 4.11 TB/s copy) are what the card reaches with today's tuned libraries. vLLM 0.6.1 built from
``Dockerfile.rocm`` (the LLM-Inference-Bench runs, calibration/public/llm-inference-bench/) reached
far less, and its step scales differently from the roofline's in four ways
(calibration/README.md, "LLM-Inference-Bench MI300X: vLLM 0.6's ROCm stack"):

1. **Its 16-bit GEMMs are compute-bound at ~103 TFLOPS**, 8 % of the 1,307 TFLOPS peak, not 620.
   Measured on the same stack by the same source: ``Plots/Fig_22/all_results_TTFT_ITL.csv``
   (argonne-lcf/LLM-Inference-Bench @ 4211f5d, BSD-3-Clause), AMD MI300X GPU ×1, vLLM,
   Meta-Llama-3-8B, input 1,024, output 1, batch 16: 2.4897 s. With no chunked prefill and
   ``max_num_batched_tokens`` = 8,192 that is two prefill steps of 8 × 1,024 tokens, so, per step
   (the roofline's own terms: ``ModelShape.flops_per_token`` 15.0098e9 FLOPs per token;
   8 × 1,024 × 512 = 4,194,304 causal query-key pairs of 524,288 FLOPs at the prefill-attention
   ratio ``RHO_ATTN_COMPUTE`` 0.558; V0 0.6's CPU side 1.68 ms + 8 × 29 µs + 8,192 × 1.54 µs =
   14.53 ms)::

       2.4897 / 2 = 14.53e-3 + (8192 × 15.0098e9 + 4,194,304 × 524,288 / 0.558) / R
       R = 1.2690e14 / 1.23031 = 103.1e12 FLOP/s   (``GEMM_RATE_FLOPS``)

   That is not a batch-latency entry of the corpus (those generate 128–2,048 tokens); it is the
   source's own time-to-first-token measurement. The rate applies to every 16-bit linear layer,
   prefill and decode: decode is then compute-bound from ~29 sequences on (8B at TP1), which is
   what the measured latencies show (linear in the batch from 16 to 256, at the same per-token
   cost as the prefill: calibration/README.md). Documented context, no constant taken from it:
   Nscale measured up to 7.2× higher vLLM throughput on MI300X after tuning its GEMMs (rocBLAS /
   hipBLASLt, gradlib; blog "Nscale Benchmarks: AMD MI300X GPUs with GEMM tuning improves
   throughput and latency by up to 7.2x", 2024); AMD's vLLM guide recommends the same
   tuning (PyTorch TunableOp / hipBLASLt). Untuned, that stack ran far below the card's peak.
2. **Decode attention is vLLM's PagedAttention kernel**, not FlashAttention: the ROCm backend
   (vllm/attention/backends/rocm_flash_attn.py, read in vllm-project/vllm @ 00df3429, a 2024
   snapshot before 0.6.1; v0.6.1's own file was not read here) runs Triton (default) or CK flash
   attention for prefill and ``PagedAttention.forward_decode`` for decode, whose V1 kernel (one
   thread block per query head and sequence, each reading its KV head's keys and values: no sharing
   across a GQA group) is chosen over the partitioned V2 when ``num_seqs × heads > 512``
   (``PAGED_V1_SEQ_HEADS``, vllm/attention/ops/paged_attn.py).
   The measured step jumps exactly there (Llama-3-8B at TP1 between batch 16 and 32, TP2 between
   32 and 64, TP4 between 64 and 128, TP8 between 128 and 256, for contexts over 512). V1's rate
   is ``E_ATTN_V1`` of the peak bandwidth, over the per-query-head bytes; V2 keeps the roofline.
   (A speculative-decoding step, several queries per sequence, keeps V2's cost: not modelled.)
3. **A fixed GPU cost per layer per step**, ``T_LAYER_S``: at batch 1 a Llama-3-8B step takes
   ~10 ms at every TP size, against 4 ms of weights at TP1 and 0.5 ms at TP8.
4. **Tensor-parallel all-reduces far below the link**: ``E_COMM`` of the 448 GB/s per-direction
   Infinity Fabric peak. Without it the TP2-TP8 sets lack a cost per sequence per step that
   grows with the model's layers × hidden size (~70 µs for Llama-3-8B, ~500 µs for Llama-3-70B)
   and that TP1 does not have. The fitted value (3.5 %, ~16 GB/s) is far below the link; no
   measurement of RCCL on that stack was found. It is a ring all-reduce's cost in form only, the
   mechanism is not identified. Checked: upstream vLLM 0.6.x disables its custom all-reduce on AMD
   GPUs (``ParallelConfig._verify_args``, vllm/config.py: "Disabled the custom all-reduce kernel
   because it is not supported on AMD GPUs"; enabled on ROCm only by PR #14125, 2025), so every
   all-reduce is RCCL's. On the 8-GPU xGMI mesh (one 64 GB/s link to each of 7 peers: AMD ROCm
   blog "Understanding RCCL Bandwidth and xGMI Performance on AMD Instinct MI300X", 2025) a TP-k
   ring over its k - 1 links would cost ``2 S / (k · 64 GB/s)``, falling 1 : 1/2 : 1/4 from TP2 to
   TP8, while this term grows 1 : 1.5 : 1.75 and the measured per-sequence TP cost stays about
   flat: neither law fits, so TP8 is left +18-22 % slow (calibration/README.md).

``E_ATTN_V1``, ``T_LAYER_S`` and ``E_COMM`` have no published measurement: they are fitted by
``calibration/rocm_stack_fit.py`` on a declared training split of the corpus (``TRAINING_SETS``;
calibration/README.md, Protocol item 2) and reported on the rest.

The rule applies to a pool without measured kernels or a profile, on a ``cdna3`` GPU, at vLLM
0.6.x (the release line measured) and 16-bit linear layers; any other version (or none named)
keeps the catalog's achievable rates.
"""

from __future__ import annotations

from sim.perf.attention_efficiency import RHO_ATTN_COMPUTE
from sim.perf.kernels.versions import parse_version

__all__ = [
    "ARCHITECTURES",
    "VERSIONS",
    "GEMM_RATE_FLOPS",
    "E_ATTN_V1",
    "T_LAYER_S",
    "E_COMM",
    "TRAINING_SETS",
    "stack_coefficients",
]

ARCHITECTURES = ("cdna3",)
"""GPU architectures (catalog ``architecture``) the rule covers."""
VERSIONS = ((0, 6, 0), (0, 7, 0))
"""vLLM releases the rule covers: ``[first, end)``; the measured runs are v0.6.1."""
GEMM_RATE_FLOPS = 103.1e12
"""16-bit GEMM FLOP/s of vLLM 0.6.1's ROCm build on one MI300X, from the source's TTFT
measurement (module doc, item 1)."""
E_ATTN_V1 = 0.293
"""PagedAttention V1 decode: per-query-head K/V bytes per second / the peak HBM bandwidth; fitted
(``calibration/rocm_stack_fit.py``)."""
T_LAYER_S = 164e-6
"""GPU seconds per layer per step the stack adds; fitted (``calibration/rocm_stack_fit.py``)."""
E_COMM = 0.0349
"""All-reduce bytes per second / the interconnect's per-direction peak under tensor parallelism;
fitted (``calibration/rocm_stack_fit.py``)."""
TRAINING_SETS = ("llm-inference-bench/mi300x-llama-3.1-8b-tp2", "llm-inference-bench/mi300x-llama-3-70b-tp4")
"""The declared training split of the three fitted constants (calibration/README.md, Protocol item 2)."""
_SOURCE = (
    "vLLM 0.6 ROCm stack on CDNA3 (sim/perf/rocm_stack.py): GEMMs at {rate:.1f} TFLOPS from "
    "LLM-Inference-Bench's MI300X TTFT (Plots/Fig_22, BSD-3-Clause); PagedAttention V1 over "
    "num_seqs x heads > 512 at {v1:g} of peak bandwidth per query head, {layer:.0f} us per layer per step, "
    "all-reduces at {comm:g} of the interconnect's peak: fitted on {train} (calibration/README.md, Protocol item 2)"
)


def stack_coefficients(gpu, dtype: str, vllm_version: str | None) -> tuple[dict[str, float], str]:
    """``(coefficients, text)`` the stack sets for a roofline pool on ``gpu`` (a ``catalog.GPU``) whose
    linear layers run at ``dtype`` under ``vllm_version``; ``({}, "")`` where the rule does not apply
    (other architecture, measured kernels, other or no version, not 16-bit)."""
    v = parse_version(vllm_version) if vllm_version else None
    if (
        v is None
        or not VERSIONS[0] <= v < VERSIONS[1]
        or getattr(gpu, "architecture", None) not in ARCHITECTURES
        or getattr(gpu, "kernel_data", None)
        or dtype not in ("fp16", "bf16")
        or dtype not in gpu.peak_flops
    ):
        return {}, ""
    e = min(1.0, GEMM_RATE_FLOPS / gpu.peak_flops[dtype])
    out = {
        "e_compute": e,
        "e_attn_compute": min(1.0, RHO_ATTN_COMPUTE * e),
        "e_attn_v1": E_ATTN_V1,
        "t_layer_s": T_LAYER_S,
        "e_comm": E_COMM,
    }
    return out, _SOURCE.format(
        rate=GEMM_RATE_FLOPS / 1e12,
        v1=E_ATTN_V1,
        layer=T_LAYER_S * 1e6,
        comm=E_COMM,
        train=", ".join(TRAINING_SETS),
    )
