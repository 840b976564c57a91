"""The sampler's share of a step: vLLM's top-k/top-p sort and sampling penalties.

After the LM head, every scheduled request is sampled (vLLM V1 samples each request of the step,
a partial prefill chunk included, and drops the token it does not need). How long that takes
depends on what the requests ask for, which the engine cannot see from the batch shape, so a pool
says it (``engine.sampling``):

- ``greedy`` or unset: an argmax over the logits, part of the LM head's measured time; nothing
  added (fleetcast's model before this module, and what ``vllm bench serve`` sends: temperature 0).
- ``top_p``: the requests sample with top-p or top-k (a client's ``top_p``/``top_k``, or the
  defaults vLLM takes from the model's ``generation_config.json`` when the client sends none, as
  Llama-3.1-Instruct's ``top_p`` 0.9 and Qwen3's ``top_k`` 20 / ``top_p`` 0.95). Where vLLM masks
  them with its PyTorch path (``apply_top_k_top_p``: a full sort of every row's logits, then a
  softmax, a cumulative sum and a scatter back), each sampled row costs ``vocab ·
  SORT_BYTES_PER_ELEM`` bytes of GPU memory traffic (``sort_path``).
- ``top_p_penalties``: also repetition, frequency or presence penalties. vLLM then builds, every
  step, bin counts of each request's prompt and output tokens over the vocabulary and applies the
  three penalties to the logits (``vllm/v1/sample/ops/penalties.py`` ``apply_all_penalties`` ->
  ``vllm/model_executor/layers/utils.py`` ``apply_penalties``): ``PENALTY_BYTES_PER_ELEM`` bytes
  per vocabulary entry and row on the GPU; and on the CPU it converts every request's output
  token list into a padded int64 tensor (``_convert_to_tensors`` -> ``make_tensor_with_pad``, one
  Python list per request, padded to the longest): ``PENALTY_CPU_CTX_TOK_S`` per cached context
  token of the step's decodes (``sim.perf.perf_model.PerfModel`` adds it beside the decode
  attention's cost per context token: serially, or under async scheduling as the larger of the
  two, since vLLM 0.11.1 builds these tensors after waiting for the previous step's sampled tokens,
  PR #26467, while the forward pass runs).

Constants:

- ``SORT_BYTES_PER_ELEM`` = 3.812 ms for 256 rows x 131,072 vocabulary (the PyTorch sort-based
  top-k/top-p masking, 1.25 GB of memory: vllm-project/vllm PR #32558, description table, row
  ``topk_whole``), expressed as bytes at the H100 SXM's 3.35 TB/s: 3.812e-3 · 3.35e12 / (256 ·
  131,072) = 380.6 bytes per element. The PR does not name its GPU in the text read here: an H100
  is assumed, and another GPU's time is these bytes at its own HBM bandwidth (a radix sort is
  memory-bound). The top-p path (sort, softmax, cumulative sum, scatter) is taken to cost the same.
- ``PENALTY_BYTES_PER_ELEM`` = 85, counted from ``apply_penalties``: two bin-count tensors
  (prompt, output) of int64 zeroed, read and turned into bool masks (2 x 17), the repetition
  penalty kernel reading the logits and both masks and writing the logits (10), the frequency
  penalty's int64 counts times a float (8 + 4 + 12) and the presence penalty's mask times a float
  (1 + 4 + 12); run at ``e_memory`` of the HBM bandwidth.
- ``PENALTY_CPU_CTX_TOK_S`` = 25 ns: the same numpy work (a list of Python ints per request into a
  padded int64 array, then a copy of it, as ``pin_memory`` does) timed on the testbed's CPU
  (``calibration/penalties_cpu_bench.py``, 10 shapes of 8-512 requests with 19k-441k output tokens,
  a 212-token prompt each: 10-75 ns per context token, median 25 ns; the large padded arrays cost
  the most, so the figure is noisy on a shared 2-core machine), taken per context token (the step
  model knows the decodes' whole context, not its output part), on a GPU host's CPU by
  ``HOST_CPU_SPEEDUP`` (1.0, ``sim.perf.cpu_side``).

Which vLLM sorts (``sort_path``): the V1 sampler runs FlashInfer's top-k/top-p kernel (no sort)
where ``engine.flashinfer_sampler`` says so (``sim.perf.memory.sampler_copies``), the Triton
kernel from ``SAMPLER_TRITON_SINCE`` (0.18.0) or with no version named, and the PyTorch sort
otherwise (V0's sampler sorts too: ``_apply_top_k_top_p``). The FlashInfer and Triton kernels'
time is not modelled (nothing added: ``top_p`` costs what ``greedy`` does there).
"""

from __future__ import annotations

from typing import Literal

from sim.catalog import GPU, ModelSpec
from sim.perf.cpu_side import HOST_CPU_SPEEDUP
from sim.perf.memory import SAMPLER_SORT_FP32_COPIES, sampler_copies

__all__ = [
    "Sampling",
    "SAMPLING_MODES",
    "SORT_BYTES_PER_ELEM",
    "PENALTY_BYTES_PER_ELEM",
    "PENALTY_CPU_CTX_TOK_S",
    "sort_path",
    "sampler_costs",
]

Sampling = Literal["greedy", "top_p", "top_p_penalties"]
SAMPLING_MODES: tuple[str, ...] = ("greedy", "top_p", "top_p_penalties")

SORT_BYTES_PER_ELEM = 3.812e-3 * 3.35e12 / (256 * 131_072)
"""Effective GPU bytes per (row x vocabulary entry) of vLLM's PyTorch sort-based top-k/top-p masking
(module doc: 380.6)."""
PENALTY_BYTES_PER_ELEM = 85.0
"""GPU bytes per (row x vocabulary entry) of vLLM's penalties (module doc, counted)."""
PENALTY_CPU_CTX_TOK_S = 25e-9
"""Engine-core CPU seconds per cached context token of a step's decodes when penalties are on
(module doc, measured on the testbed)."""


def sort_path(vllm_version: tuple[int, ...] | None, flashinfer_sampler: bool | None) -> bool:
    """Whether this vLLM masks top-k/top-p with the PyTorch sort (module doc)."""
    return sampler_copies(vllm_version, flashinfer_sampler) == SAMPLER_SORT_FP32_COPIES


def sampler_costs(
    gpu: GPU,
    model: ModelSpec,
    vllm_version: tuple[int, ...] | None,
    flashinfer_sampler: bool | None,
    sampling: str | None,
    e_memory: float,
) -> tuple[float, float]:
    """(GPU seconds per sampled row, CPU seconds per cached context token of the decodes) that the
    sampler adds to a step on ``gpu`` (one GPU of the TP group: every rank samples the whole
    vocabulary). (0, 0) for greedy or unset sampling."""
    if sampling is None or sampling == "greedy":
        return 0.0, 0.0
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {sampling!r}")
    bw = gpu.hbm_bw_bytes_s
    row_s = model.vocab_size * SORT_BYTES_PER_ELEM / bw if sort_path(vllm_version, flashinfer_sampler) else 0.0
    ctx_s = 0.0
    if sampling == "top_p_penalties":
        row_s += model.vocab_size * PENALTY_BYTES_PER_ELEM / (bw * e_memory)
        ctx_s = PENALTY_CPU_CTX_TOK_S / HOST_CPU_SPEEDUP
    return row_s, ctx_s
