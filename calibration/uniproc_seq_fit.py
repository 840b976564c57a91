"""Fit ``sim.perf.cpu_side.T_SEQ_UNIPROC_S``: the engine core's CPU per scheduled sequence per step of a
V1 vLLM server on one GPU (the model runner in the engine core's thread; ``sim.perf.cpu_side`` says why
the CPU testbed's 29.0 µs does not carry over).

Training split (declared in calibration/README.md, Protocol item 2): the 7 entries of
``calibration/public/inference-perf/vllm`` (Llama-3.1-8B on one H100, vLLM 0.11.0, max_num_seqs 128;
4 rate stages of 1 to 92 requests/s and 3 client-capped stages, closed loops of 440 clients that keep
the batch at 128: the per-sequence term sets their throughput). The same set is already the training
split of inference-perf's ``client_overhead_s``. The entries are replayed with the constant on a grid
of 0.5 µs from 0 to the testbed's 29.0 µs; the value whose replay has the smallest median |E2E p50
error| over them is taken (ties: the smaller). Every other entry of the corpus, the other three
inference-perf configurations included, is not used and is reported by ``bench/public_gpu.py``.

    python -m calibration.uniproc_seq_fit
"""

from __future__ import annotations

import statistics

import sim.perf.cpu_side as cpu_side
from calibration.public_corpus import CORPUS, discover, grid_fit

__all__ = ["TRAINING_SET", "training_entries", "fit", "main"]

TRAINING_SET = "inference-perf/vllm"
GRID_S = tuple(i * 0.5e-6 for i in range(59))  # 0 .. 29.0 µs


def training_entries(root=CORPUS) -> list:
    """The entries of the training set (rate and client-capped stages)."""
    return [e for e in discover(root) if f"{e.source}/{e.set}" == TRAINING_SET]


def fit(root=CORPUS, grid=GRID_S) -> tuple[float, dict[float, float]]:
    """``(t_seq_s, {t_seq_s: median |E2E p50 error| %})`` over the training entries."""
    return grid_fit(cpu_side, "T_SEQ_UNIPROC_S", grid, training_entries(root), _median_e2e_p50)


def _median_e2e_p50(results: list[dict]) -> float:
    return statistics.median(abs(r["error_pct"]["e2e_p50_s"]) for r in results)


def main() -> int:
    best, scores = fit()
    for t, v in scores.items():
        print(f"t_seq_s {t * 1e6:5.1f} µs: median |E2E p50 error| {v:5.1f} % ({TRAINING_SET})")
    print(f"T_SEQ_UNIPROC_S = {best * 1e6:.1f}e-6")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
