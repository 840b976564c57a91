"""Fit ``sim.perf.attention_backend.E_ATTN_V1_CUDA``: the rate of vLLM's PagedAttention V1 decode
kernel on a CUDA GPU (per-query-head K/V bytes per second over the peak HBM bandwidth), which no
published measurement gives at these shapes.

Training split (declared in calibration/README.md, Protocol item 2): every row of
``attention_backend.TRAINING_SETS`` (LLM-Inference-Bench H100 Mistral-7B-v0.1 TP2, vLLM 0.6.1, batch
1-64, 128-2,048 tokens in and out; its V1 rows are batch 64, 16 heads per GPU). The rows are replayed
and the constant chosen by least squares on log(forecast / measured) batch latency, within bounds.
Rows that never take V1 do not depend on it. Every other row of the corpus is not used and is
reported by ``bench/public_gpu.py``.

    python -m calibration.paged_v1_fit
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from scipy.optimize import least_squares

import sim.perf.attention_backend as ab
from calibration.public_corpus import CORPUS, discover, overriding, replay_entry

__all__ = ["training_entries", "fit", "main"]

_BOUNDS = (0.02, 1.0)


def training_entries(root=CORPUS) -> list:
    """Every row of the training sets."""
    return [e for e in discover(root) if f"{e.source}/{e.set}" in ab.TRAINING_SETS]


def _errors(x, entries) -> np.ndarray:
    ab.E_ATTN_V1_CUDA = float(x[0])
    out = []
    for e in entries:
        r = replay_entry(e)
        out.append(math.log(r["forecast"]["batch_latency_s"] / r["measured"]["batch_latency_s"]))
    return np.array(out)


def fit(root=CORPUS) -> tuple[float, float]:
    """``(E_ATTN_V1_CUDA, median |error| % on the training rows)``; the module's constant is restored."""
    entries = training_entries(root)
    with overriding(ab, "E_ATTN_V1_CUDA"):
        res = least_squares(_errors, [ab.E_ATTN_V1_CUDA or 0.5], bounds=_BOUNDS, args=(entries,), diff_step=0.05)
        err = _errors(res.x, entries)
    return float(res.x[0]), statistics.median(abs(math.expm1(e)) * 100 for e in err)


def main() -> int:
    value, med = fit()
    print(f"E_ATTN_V1_CUDA = {value:.4g}")
    print(f"training rows ({', '.join(ab.TRAINING_SETS)}): median |error| {med:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
