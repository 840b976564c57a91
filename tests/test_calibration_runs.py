"""Re-fit every committed testbed profile from its committed sweep runs, and
re-validate it on its committed held-out runs (no server needed).

The simulator is deterministic, so re-validation must reproduce the held-out
errors recorded in the profile (``fleetcast validate --record``) exactly; a
change to the engine or the performance model that moves them fails here and
has to be re-recorded (and calibration/README.md updated) on purpose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration.fit import fit_runs
from calibration.runs import load_run
from calibration.validate import TARGETS, error_table, summarize_errors, validate_run

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "calibration" / "profiles"
RUNS = ROOT / "calibration" / "runs"
TESTBED = sorted(p.stem for p in PROFILES.glob("cpu-*.json"))


def _profile(name: str) -> dict:
    return json.loads((PROFILES / f"{name}.json").read_text())


def test_there_are_committed_testbed_profiles():
    assert {"cpu-tiny-fp32", "cpu-base-fp32"} <= set(TESTBED)


def test_sweep_run_uses_server_reported_engine_settings():
    run = load_run(RUNS / "tiny-fp32" / "sweep" / "c16-p128-o64")
    assert run.mode == "closed" and run.model == "testbed-tiny" and run.dtype == "float32"
    assert run.engine["max_num_seqs"] == 32 and run.engine["max_num_batched_tokens"] == 2048
    assert run.engine["block_size"] == 128 and run.engine["num_gpu_blocks_override"] == run.meta["kv_cache"]["num_blocks"]
    assert len(run.workload) == 32 and (run.workload.output_tokens == 64).all()
    assert run.meta["prompt_salt"] > 0  # prompts unique to the run: no prefix-cache hits from earlier runs
    assert run.requests["cached_prompt_tokens"].fillna(0).sum() == 0


@pytest.mark.parametrize("name", TESTBED)
def test_refit_reproduces_committed_profile(name):
    prof = _profile(name)
    runs = [load_run(ROOT / r) for r in prof["provenance"]["runs"]]
    assert all(r.meta.get("sweep_point") for r in runs)  # fitted on closed-loop sweeps only
    fit, _ = fit_runs(runs)
    for k in fit.fitted:
        assert getattr(fit.coeffs, k) == pytest.approx(prof["coefficients"][k], rel=0.02), k


@pytest.mark.parametrize("name", TESTBED)
def test_heldout_errors_reproduce_the_recorded_ones(name):
    prof = _profile(name)
    val = prof["validation"]
    folders = [ROOT / f for f in val["held_out_folders"]]
    assert folders and not set(map(str, folders)) & {str(ROOT / r) for r in prof["provenance"]["runs"]}
    comps = [validate_run(load_run(f), PROFILES / f"{name}.json") for f in folders]
    assert all(c.run.mode == "open" for c in comps)
    summ = summarize_errors(error_table(comps), "open")
    # exactly the recorded table (both are rounded to 0.01 by summarize_errors): every metric's median and
    # max |error|, run count, target and verdict
    assert set(summ) == set(val["median_abs_error_pct"])
    for metric, rec in val["median_abs_error_pct"].items():
        assert summ[metric] == rec, metric
        assert ("met" in rec) == (metric in TARGETS), metric
