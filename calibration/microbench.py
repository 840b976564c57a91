"""Micro-benchmark of this machine's CPU as a catalog "GPU" entry.

``python -m calibration.microbench`` prints peak FLOP/s (fp32 numpy GEMM;
bf16/int8 torch GEMM when torch is importable) and memory bandwidth (numpy
copy of 512 MiB: read + write bytes / time), best of several repeats, all
cores. The numbers in calibration/catalog-cpu.yaml were measured with it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np


def _best(fn, repeats: int = 5) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure() -> dict:
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.copy()
    out: dict[str, Any] = {"cores": os.cpu_count(), "gemm_n": n}
    out["fp32_flops"] = 2 * n**3 / _best(lambda: a @ b)
    src = np.ones(64 * 1024 * 1024, dtype=np.float64)  # 512 MiB
    dst = np.empty_like(src)
    out["copy_bytes_s"] = 2 * src.nbytes / _best(lambda: np.copyto(dst, src))
    try:
        import torch

        x = torch.randn(n, n, dtype=torch.bfloat16)
        out["bf16_flops"] = 2 * n**3 / _best(lambda: x @ x, 3)
        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
