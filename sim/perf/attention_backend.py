"""The attention backend vLLM picks by the model's features and its version: decode on PagedAttention.

vLLM's V0 attention selector (``vllm/attention/selector.py``, ``which_attn_to_use``) refuses its
FlashAttention-2 backend for a model with a sliding window ("Cannot use FlashAttention-2 backend due
to sliding window") and falls back to XFormers. The fallback came with vLLM PR #3648 ("[Kernel] Use
flash-attn for decoding", May 2024: the paged KV cache's prefill did not honour the window) and went
with PR #9403 ("[Kernel] Support sliding window in flash attention backend", merged after v0.6.3, so
first released in **v0.6.4**). Before #3648 every CUDA model decoded on PagedAttention.

XFormers decodes with vLLM's own PagedAttention kernels (``PagedAttention.forward_decode``,
``vllm/attention/ops/paged_attn.py``): the partitioned V2 kernel, or the unpartitioned V1 kernel
when ``num_seqs × num_heads > 512`` (``sim.perf.perf_model.PAGED_V1_SEQ_HEADS``). So a CUDA pool
serving a sliding-window model at vLLM < 0.6.4 decodes like the MI300X stack of
``sim.perf.rocm_stack``: the same ``e_attn_v1`` coefficient and the same switch in ``PerfModel``
(``decode_ctx_b_s``), V2 keeping the decode attention the pool has otherwise (measured tables or
roofline; calibration/README.md: those rows are in line with Llama-3-8B's FlashAttention rows).

V1 reads each query head's keys and values in its own thread block (no sharing across a GQA
group). Its rate on a CUDA GPU, ``E_ATTN_V1_CUDA`` (per-query-head K/V bytes per second over the
peak HBM bandwidth), has no published measurement at these shapes: it is fitted by
``calibration/paged_v1_fit.py`` on the declared training split ``TRAINING_SETS``
(calibration/README.md, Protocol item 2) and reported on the rest. It is far above the MI300X
stack's 0.293 because an H100's 50 MB L2 serves the GQA group's repeated reads; it is a rate of
the H100 rows measured, not a law carried to other GPUs.

Not modelled: V1 is not taken for contexts over 8,192 tokens (``max_seq_len <= 8192``; the step
model does not carry the batch's longest context); a window shorter than the context (KV blocks
outside it are freed and not read: the contexts of the measured rows stay within Mistral's 4,096).
"""

from __future__ import annotations

from sim.perf.kernels.versions import parse_version

__all__ = [
    "CUDA_ARCHITECTURES",
    "FLASH_SLIDING_WINDOW_VERSION",
    "E_ATTN_V1_CUDA",
    "TRAINING_SETS",
    "decode_backend",
    "paged_decode_coefficients",
]

CUDA_ARCHITECTURES = ("ampere", "ada", "hopper", "blackwell")
"""GPU architectures (catalog ``architecture``) of vLLM's CUDA build, whose selector this is."""
FLASH_SLIDING_WINDOW_VERSION = (0, 6, 4)
"""First vLLM release whose FlashAttention backend serves a sliding window (PR #9403)."""
E_ATTN_V1_CUDA = 0.518
"""PagedAttention V1 decode on a CUDA GPU: per-query-head K/V bytes per second / the peak HBM
bandwidth; fitted (``calibration/paged_v1_fit.py``)."""
TRAINING_SETS = ("llm-inference-bench/h100-mistral-7b-tp2",)
"""The declared training split of ``E_ATTN_V1_CUDA`` (calibration/README.md, Protocol item 2)."""
_SOURCE = (
    "decode on XFormers' PagedAttention (vLLM < 0.6.4 refuses FlashAttention-2 for a sliding window: "
    "vllm/attention/selector.py, PR #9403; sim/perf/attention_backend.py): V1 over num_seqs x heads > 512 "
    "at {v1:g} of peak bandwidth per query head, fitted on {train} (calibration/README.md, Protocol item 2)"
)


def decode_backend(gpu, model, vllm_version: str | None) -> str:
    """``"xformers"`` where vLLM's CUDA build decodes ``model`` on PagedAttention through XFormers
    (a sliding window at a version before FlashAttention served one), else ``""`` (not decided here:
    the pool's measured tables or roofline)."""
    v = parse_version(vllm_version) if vllm_version else None
    if (
        v is None
        or v >= FLASH_SLIDING_WINDOW_VERSION
        or getattr(gpu, "architecture", None) not in CUDA_ARCHITECTURES
        or not getattr(model, "sliding_window", 0)
    ):
        return ""
    return "xformers"


def paged_decode_coefficients(gpu, model, vllm_version: str | None) -> tuple[dict[str, float], str]:
    """``(coefficients, text)`` for a pool whose decode runs on vLLM's PagedAttention by this rule;
    ``({}, "")`` elsewhere (no version named, FlashAttention with a window, no window, not CUDA)."""
    if not decode_backend(gpu, model, vllm_version) or E_ATTN_V1_CUDA <= 0.0:
        return {}, ""
    return {"e_attn_v1": E_ATTN_V1_CUDA}, _SOURCE.format(v1=E_ATTN_V1_CUDA, train=", ".join(TRAINING_SETS))
