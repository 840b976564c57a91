"""Fit ``sim.perf.cpu_side.V0_TP_STEP_S``: what vLLM's V0 engine adds to each step under tensor
parallelism (the driver's per-step broadcast of the model input to the other ranks).

Training split (declared in calibration/README.md, "LLM-Inference-Bench"): the batch-1 rows of
``calibration/public/llm-inference-bench/h100-llama-3.1-8b-tp2`` and ``-tp4`` (vLLM 0.6.1, one
sequence, 128-2,048 tokens in and out). At batch 1 a step is one decode (the prefill is one step
of the same few hundred to two thousand tokens), so the replay's shortfall divided by the output
length is the missing time per step. The rows are replayed with the term set to zero; per TP size
the median shortfall per step is taken, and ``a + b·(tp - 1)`` is fitted to the medians by least
squares. Every other row of the corpus (other batches, Mistral-7B, Llama-3-70B, MI300X) is not
used and is reported by ``bench/public_gpu.py``.

    python -m calibration.v0_tp_fit
"""

from __future__ import annotations

import statistics

import numpy as np

import sim.perf.cpu_side as cpu_side
from calibration.public_corpus import CORPUS, discover, overriding, replay_entry

__all__ = ["TRAINING_SETS", "training_entries", "fit", "main"]

TRAINING_SETS = ("llm-inference-bench/h100-llama-3.1-8b-tp2", "llm-inference-bench/h100-llama-3.1-8b-tp4")


def training_entries(root=CORPUS) -> list:
    """The batch-1 rows of the training sets."""
    return [e for e in discover(root) if f"{e.source}/{e.set}" in TRAINING_SETS and (e.row or "").startswith("b1-")]


def fit(root=CORPUS) -> tuple[float, float, dict[int, float]]:
    """``(a, b, {tp: median shortfall per step})`` from the training rows replayed without the term."""
    per_tp: dict[int, list[float]] = {}
    with overriding(cpu_side, V0_TP_STEP_S=(0.0, 0.0)):
        for e in training_entries(root):
            r = replay_entry(e)
            out_tok = int(str(e.row).rsplit("-l", 1)[1])  # a table row: b<batch>-l<length>
            gap_s = r["measured"]["batch_latency_s"] - r["forecast"]["batch_latency_s"]
            per_tp.setdefault(int(r["tensor_parallel"]), []).append(gap_s / out_tok)
    med = {tp: statistics.median(v) for tp, v in sorted(per_tp.items())}
    x = np.array([[1.0, tp - 1.0] for tp in med])
    (a, b), *_ = np.linalg.lstsq(x, np.array(list(med.values())), rcond=None)
    return float(a), float(b), med


def main() -> int:
    a, b, med = fit()
    for tp, m in med.items():
        print(f"TP{tp}: median shortfall {m * 1e3:.3f} ms per step (batch 1, {len(TRAINING_SETS)} training sets)")
    print(f"V0_TP_STEP_S = ({a * 1e3:.2f}e-3, {b * 1e3:.2f}e-3)  # a + b·(tp - 1) seconds per step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
