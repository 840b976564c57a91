"""calibration.b200_floor_diag: the diagnosis's arithmetic, worked by hand."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from calibration.b200_floor_diag import attention_s, is_diag_set, itl_spread, per_token_ms, set_summary


def test_per_token_ms_is_batch_over_throughput():
    # ML.ENERGY v3, Qwen3-8B gpqa on one B200 at cap 8: batch 7.998, 251.012 tok/s -> 31.86 ms
    assert per_token_ms(7.998, 251.012) == pytest.approx(31.863, abs=1e-3)
    assert math.isnan(per_token_ms(8.0, 0.0))
    assert math.isnan(per_token_ms(float("nan"), 10.0))


def test_set_summary_median_range_and_slope():
    # excess 30, 28, 26 ms at batches 8, 16, 32: slope by least squares
    # mean x = 56/3, mean y = 28; sxy = (8-56/3)(2) + 0 + (32-56/3)(-2) = -48; sxx = 917.33...
    rows = [
        {"measured_batch": 8.0, "excess_ms": 30.0},
        {"measured_batch": 16.0, "excess_ms": 28.0},
        {"measured_batch": 32.0, "excess_ms": 26.0},
    ]
    s = set_summary(rows)
    assert s["median_ms"] == 28.0 and s["min_ms"] == 26.0 and s["max_ms"] == 30.0
    sxx = (8 - 56 / 3) ** 2 + (16 - 56 / 3) ** 2 + (32 - 56 / 3) ** 2
    assert s["slope_us_per_seq"] == pytest.approx(-48.0 / sxx * 1e3)
    assert math.isnan(set_summary(rows[:1])["slope_us_per_seq"])


def test_is_diag_set_reads_one_gpu_gpqa_only():
    assert is_diag_set("b200-qwen3-8b-gpqa-x1")
    assert is_diag_set("h100-sxm-qwen3-30b-a3b-thinking-2507-gpqa-x1")
    assert not is_diag_set("b200-qwen3-235b-a22b-thinking-2507-gpqa-x8")
    assert not is_diag_set("b200-qwen3-8b-lm-arena-chat-x1")
    assert not is_diag_set("b200-qwen3-8b-gpqa-x12")


def test_attention_uses_the_kernel_terms_not_the_penalties_cpu():
    # measured rows: 0.1 ms per step, 2 µs per sequence, 5 ns per context token; the PerfModel's
    # folded per-token term (_b_decode) is larger (the penalties' CPU) and must not be used
    perf = SimpleNamespace(_kdec=True, kernels=SimpleNamespace(decode_s=np.array([1e-4, 2e-6, 5e-9])), _b_decode=25e-9)
    # 8 decodes over 40,000 tokens: 1e-4 + 8 x 2e-6 + 40,000 x 5e-9 = 0.000316 s
    assert attention_s(perf, 8, 40_000) == pytest.approx(3.16e-4)
    # no decode rows: the roofline, max(FLOPs, bytes) per token
    roof = SimpleNamespace(
        _kdec=False, kernels=None, _attn_flops_unit=4.0, _inv_flops_attn=1e-12, _kv_tok=1000.0, _inv_bw_attn=1e-12
    )
    assert attention_s(roof, 8, 1000) == pytest.approx(1000 * 1e-9)


def test_itl_spread_groups_by_gpu_server_size_and_task():
    def row(gpu, n, task, cap, p50, p90):
        return {
            "gpu_model": gpu,
            "num_gpus": str(n),
            "task": task,
            "max_num_seqs": str(cap),
            "median_itl_ms": str(p50),
            "p90_itl_ms": str(p90),
        }

    configs = [
        row("B200", 1, "gpqa", 8, 32.0, 48.0),  # 1.5
        row("B200", 1, "gpqa", 16, 40.0, 52.0),  # 1.3
        row("B200", 1, "gpqa", 64, 40.0, 80.0),  # above the cap: left out
        row("B200", 8, "gpqa", 8, 16.0, 16.8),  # 1.05
        row("H100", 1, "lm-arena-chat", 8, 10.0, 10.5),  # 1.05
        row("H100", 1, "sourcegraph-fim", 8, 10.0, 30.0),  # other task: left out
    ]
    got = itl_spread(configs, max_cap=32)
    assert set(got) == {("B200", "one", "gpqa"), ("B200", "several", "gpqa"), ("H100", "one", "lm-arena-chat")}
    b1 = got[("B200", "one", "gpqa")]
    assert b1["n"] == 2 and b1["median"] == pytest.approx(1.4) and b1["min"] == pytest.approx(1.3)
    assert b1["max"] == pytest.approx(1.5)
    assert got[("B200", "several", "gpqa")]["median"] == pytest.approx(1.05)
