"""Fit the three constants of ``sim.perf.rocm_stack`` that no published measurement gives:
``E_ATTN_V1`` (vLLM's PagedAttention V1 decode kernel, per-query-head bytes at this fraction of
the peak bandwidth), ``T_LAYER_S`` (GPU seconds per layer per step) and ``E_COMM`` (the
all-reduce's fraction of the interconnect's per-direction peak). A fourth term, GPU seconds per
layer per sequence, was tried in the same fit and came out at 0 (3e-24 s): it was dropped.
``GEMM_RATE_FLOPS`` is not fitted: it comes from the source's own TTFT measurement (module doc).

Training split (declared in calibration/README.md, Protocol item 2): every row of
``rocm_stack.TRAINING_SETS`` (LLM-Inference-Bench MI300X Llama-3-8B TP2 and Llama-3-70B TP4, vLLM
0.6.1, batch 1-256, 128-2,048 tokens in and out). The rows are replayed and the constants chosen by
least squares on log(forecast / measured) batch latency, within bounds. Every other row of the corpus
is not used and is reported by ``bench/public_gpu.py``.

    python -m calibration.rocm_stack_fit
"""

from __future__ import annotations

import math
import statistics

import numpy as np
from scipy.optimize import least_squares

import sim.perf.rocm_stack as rs
from calibration.public_corpus import CORPUS, discover, overriding, replay_entry

__all__ = ["NAMES", "training_entries", "fit", "main"]

NAMES = ("E_ATTN_V1", "T_LAYER_S", "E_COMM")
_SCALE = {"E_ATTN_V1": 1.0, "T_LAYER_S": 1e-6, "E_COMM": 1.0}  # fitted in these units
_BOUNDS = {"E_ATTN_V1": (0.02, 1.0), "T_LAYER_S": (0.0, 1000.0), "E_COMM": (0.005, 1.0)}


def training_entries(root=CORPUS) -> list:
    """Every row of the training sets."""
    return [e for e in discover(root) if f"{e.source}/{e.set}" in rs.TRAINING_SETS]


def _errors(x, entries) -> np.ndarray:
    for name, v in zip(NAMES, x):
        setattr(rs, name, float(v) * _SCALE[name])
    out = []
    for e in entries:
        r = replay_entry(e)
        out.append(math.log(r["forecast"]["batch_latency_s"] / r["measured"]["batch_latency_s"]))
    return np.array(out)


def fit(root=CORPUS) -> tuple[dict[str, float], float]:
    """``({name: value}, median |error| % on the training rows)``; the module's constants are restored."""
    entries = training_entries(root)
    with overriding(rs, *NAMES):
        x0 = [getattr(rs, n) / _SCALE[n] for n in NAMES]
        lo, hi = zip(*(_BOUNDS[n] for n in NAMES))
        res = least_squares(_errors, x0, bounds=(lo, hi), args=(entries,), diff_step=0.05)
        err = _errors(res.x, entries)
    med = statistics.median(abs(math.expm1(e)) * 100 for e in err)
    return {n: float(v) * _SCALE[n] for n, v in zip(NAMES, res.x)}, med


def main() -> int:
    values, med = fit()
    for n, v in values.items():
        print(f"{n} = {v:.4g}")
    print(f"training rows ({', '.join(rs.TRAINING_SETS)}): median |error| {med:.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
