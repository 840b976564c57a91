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
  softmax, a cumulative sum and a scatter back), each sampled row costs
  ``SORT_ROW_S`` in proportion to its vocabulary, carried to the GPU by its SM count x clock
  (``sort_row_s``, ``sort_path``).
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

- ``SORT_ROW_S`` = 3.812 ms for 256 rows x 131,072 vocabulary (the PyTorch sort-based top-k/top-p
  masking, 1.25 GB of memory: vllm-project/vllm PR #32558, description table, row ``topk_whole``):
  14.89 µs per row of 131,072 entries, on an H100 SXM (the PR does not name its GPU in the text read
  here: an H100 is assumed), in proportion to the vocabulary. The top-p path (sort, softmax,
  cumulative sum, scatter) is taken to cost the same. **How it carries to another GPU**: PyTorch
  sorts a ``(rows, vocab)`` tensor along its last dimension, when the rows are 128 or more and the
  vocabulary under 1,000,000 entries, with CUB's segmented radix sort, one thread block per row
  (``aten/src/ATen/native/cuda/SortStable.cu`` ``do_launch_stable_sort_kernel`` ->
  ``segmented_sort_pairs`` -> ``at::cuda::cub::segmented_sort_pairs``; pytorch/pytorch @ 061531e8,
  BSD-3-Clause): the rows are spread over the streaming multiprocessors and each is ranked in shared
  memory, so the time scales with the GPU's SM count x clock, not its HBM bandwidth.
  ``SORT_REF_FP32_FLOPS`` (the H100 SXM's plain FP32 rate, 67.0 TFLOPS = 132 SMs x 128 lanes x 2 x
  1.98 GHz, sim/catalog/gpus.yaml) is that product's proxy: a B200 (148 SMs, 80.0 TFLOPS) sorts a
  row in 67.0 / 80.0 of the H100's time, where its bandwidth (8.0 against 3.35 TB/s) would say
  0.42 of it. A GPU whose catalog entry has no ``fp32`` rate keeps the bandwidth rule
  (``SORT_BYTES_PER_ELEM``, the same figure as bytes at the H100 SXM's 3.35 TB/s: 380.6 bytes per
  element). Below 128 rows PyTorch sorts the whole tensor at once (``segmented_sort_pairs_by_full_sort``,
  two device-wide radix sorts, memory-bound); that path is not modelled apart (the per-row figure
  above is used at every batch).
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
- ``T_ROW_PENALTIES_S``: with penalties, a further cost per sampled row **on the step's critical
  path** (added to the step, like the rows' GPU time, never overlapped by async scheduling).
  **Fitted** by ``calibration/penalties_seq_fit.py`` on a declared training split (the ML.ENERGY
  configurations of the models ``calibration/public/ml_energy/configs.csv`` marks ``train``, less the
  B200 one-GPU gpqa sets: calibration/README.md, Protocol item 2), reported on the held-back models.
  Its *form* is read from the runs, not fitted: the measured time per output token grows with the
  running sequences faster than the replay's step, by 20-30 µs per sequence on 10 of the 24 sets
  with two caps of 200 or more (median 35.8 µs; ``calibration/penalties_slopes.py``), on one GPU and
  on eight, on an H100 and on a B200 alike (Llama-3.1-8B: 29.0 and 23.8 µs; calibration/README.md,
  "ML.ENERGY v3: the sampler on the critical path"), and by 29-37 µs per sequence at caps 32-256
  where the engine core's CPU work is a fraction of the GPU step (H100 Llama-3.1-8B): a cost that
  async scheduling overlapped could not show there, and one that does not scale with the GPU. The
  runs are vLLM 0.11.1 with async scheduling; the constant applies to any version whose requests
  use penalties (none other is measured). What it is is not identified from the aggregates: vLLM
  0.11.1's per-step wait for the previous step's sampled tokens before the penalties run
  (``InputBatch.update_async_output_token_ids``), the per-request repair and output-token tensor
  that follow it before the sampler's kernels can start, or sampler kernels bound by latency rather
  than bandwidth; a profile of that server would tell them apart.

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
    "SORT_ROW_S",
    "SORT_REF_VOCAB",
    "SORT_REF_FP32_FLOPS",
    "SORT_BYTES_PER_ELEM",
    "T_ROW_PENALTIES_S",
    "PENALTY_BYTES_PER_ELEM",
    "PENALTY_CPU_CTX_TOK_S",
    "sort_path",
    "sort_row_s",
    "sampler_costs",
]

Sampling = Literal["greedy", "top_p", "top_p_penalties"]
SAMPLING_MODES: tuple[str, ...] = ("greedy", "top_p", "top_p_penalties")

SORT_ROW_S = 3.812e-3 / 256
"""GPU seconds per sampled row of ``SORT_REF_VOCAB`` entries of vLLM's PyTorch sort-based top-k/top-p
masking on an H100 SXM (module doc: 14.89 µs)."""
SORT_REF_VOCAB = 131_072
"""The vocabulary of ``SORT_ROW_S``'s measurement."""
SORT_REF_FP32_FLOPS = 67.0e12
"""The H100 SXM's plain FP32 rate (sim/catalog/gpus.yaml): the proxy of its SM count x clock, by which
the segmented sort's time carries to another GPU (module doc)."""
SORT_BYTES_PER_ELEM = SORT_ROW_S * 3.35e12 / SORT_REF_VOCAB
"""The same figure as effective GPU bytes per (row x vocabulary entry) at the H100 SXM's 3.35 TB/s
(380.6): the rule for a GPU without an ``fp32`` rate (module doc)."""
T_ROW_PENALTIES_S = 35e-6
"""Seconds per sampled row on the step's critical path with penalties, fitted (module doc)."""
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
    row_s = sort_row_s(gpu, model.vocab_size) if sort_path(vllm_version, flashinfer_sampler) else 0.0
    ctx_s = 0.0
    if sampling == "top_p_penalties":
        row_s += model.vocab_size * PENALTY_BYTES_PER_ELEM / (bw * e_memory) + T_ROW_PENALTIES_S
        ctx_s = PENALTY_CPU_CTX_TOK_S / HOST_CPU_SPEEDUP
    return row_s, ctx_s


def sort_row_s(gpu: GPU, vocab_size: int) -> float:
    """GPU seconds of PyTorch's sort-based top-k/top-p masking per sampled row of ``vocab_size``
    entries on ``gpu``: by its FP32 rate (SM count x clock), or by its bandwidth where the catalog
    gives no ``fp32`` rate (module doc)."""
    fp32 = gpu.peak_flops.get("fp32")
    if fp32:
        return SORT_ROW_S * vocab_size / SORT_REF_VOCAB * SORT_REF_FP32_FLOPS / fp32
    return vocab_size * SORT_BYTES_PER_ELEM / gpu.hbm_bw_bytes_s
