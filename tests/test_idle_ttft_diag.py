"""calibration/idle_ttft_diag.py: the source table agrees with the converted stages, and the shift test
recovers a shift it was built with (hand-set synthetic figures)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from calibration.idle_ttft_diag import QUANTILES, read_source, shift_fit

ROOT = Path(__file__).resolve().parents[1] / "calibration" / "public" / "inference-perf"


def test_source_table_matches_the_converted_stage_rows():
    # idle_ttft.csv and each set's stages.stages.csv are both copied from the source's lifecycle files
    src = read_source()
    for folder, conf in (("vllm", "vllm"), ("vllm-v0_engine", "vllm+v0_engine")):
        with open(ROOT / folder / "stages.stages.csv", newline="") as f:
            rows = {r["name"]: r for r in csv.DictReader(f)}
        for stage in (0, 1):
            row = src[(conf, stage)]
            assert abs(row["ttft_median_s"] - float(rows[f"stage-{stage}"]["ttft_p50_s"])) < 1e-6
            assert abs(row["ttft_p90_s"] - float(rows[f"stage-{stage}"]["ttft_p90_s"])) < 1e-6
    # the figures the README quotes: the idle first token is slower than at 31 req/s in the vllm set
    assert src[("vllm", 0)]["ttft_median_s"] == 0.0310269
    assert src[("vllm", 1)]["ttft_min_s"] < src[("vllm", 0)]["ttft_min_s"]


def test_shift_fit_recovers_a_shift_paid_by_every_request():
    rng = np.random.default_rng(3)
    lone = np.full(40, 23.0)
    busy = rng.uniform(23.5, 30.5, 20)
    share = 0.35
    # "measured": the same mixture with every request 6 ms later, no spread
    n = 200_000
    is_busy = rng.random(n) < share
    meas = np.percentile(np.where(is_busy, rng.choice(busy, n), 23.0) + 6.0, [p for _, p in QUANTILES])
    rms_a, x_a, sd_a, _ = shift_fit(lone, busy, share, meas, lone_only=False)
    rms_b, _, _, _ = shift_fit(lone, busy, share, meas, lone_only=True)
    assert abs(x_a - 6.0) <= 0.25 and sd_a <= 0.5 and rms_a < 0.3
    assert rms_b > 2 * rms_a  # a lone-only shift cannot move the busy requests' low quantiles
