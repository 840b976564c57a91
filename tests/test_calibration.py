"""Calibration: the fit recovers known coefficients, re-fits from the committed
runs and data reproduce the committed profiles, and validation errors stay
within what was measured (no server needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from calibration.fit import RUN_FREE, fit_steps, step
from sim.catalog import load_catalog
from sim.engine.perf import PerfCoefficients, PerfModel

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "calibration" / "profiles"
RUNS = ROOT / "calibration" / "runs"
RAW_SPLITWISE = ROOT.parent / "shared" / "data" / "gpu-measurements" / "splitwise" / "perf_model.csv"


def _profile(name: str) -> dict:
    return json.loads((PROFILES / name).read_text())


def test_fit_recovers_known_coefficients():
    """Synthetic steps from known coefficients: the fit finds them again."""
    cat = load_catalog()
    key = ("h100-sxm", "llama-3.1-8b", "bf16", "auto", 1)
    models = {key: (cat.gpu("h100-sxm"), cat.model("llama-3.1-8b"), cat.quant("bf16", "auto"), 1)}
    truth = PerfCoefficients(e_compute=0.6, e_memory=0.8, t_step_s=2e-3, t_seq_s=5e-5, t_prefill_tok_s=1e-6)
    perf = PerfModel(*models[key][:3], 1, truth)
    obs = []
    for p in (128, 512, 2048, 8192):
        obs.append(step(key, p, p * p / 2, 0, 0, 1, perf.step_time_s(p, p * p / 2, 0, 0, 1)))
    for n in (1, 8, 64, 256):
        for c in (256, 4096):
            obs.append(step(key, 0, 0.0, n, n * c, 0, perf.step_time_s(0, 0.0, n, n * c, 0)))
    fit = fit_steps(obs, models, free=RUN_FREE)
    assert np.max(np.abs(fit.rel_errors())) < 0.01
    for name in ("e_compute", "e_memory", "t_step_s"):
        assert getattr(fit.coeffs, name) == pytest.approx(getattr(truth, name), rel=0.05)


@pytest.mark.skipif(not RAW_SPLITWISE.is_file(), reason="the original Splitwise file is not beside the repo")
def test_shipped_splitwise_medians_are_the_originals():
    from calibration import splitwise

    got = splitwise.load_steps(splitwise.DEFAULT_CSV)
    want = splitwise.load_steps(RAW_SPLITWISE)
    assert len(got) == len(want) == 228
    for col in ("prompt_time", "token_time", "e2e_time", "tokens_generated", "repeats"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-8)


@pytest.mark.parametrize("hardware,name", [("h100-80gb", "h100-splitwise.json"), ("a100-80gb", "a100-splitwise.json")])
def test_splitwise_refit_matches_committed_profile(hardware, name):
    from calibration import splitwise

    prof = _profile(name)
    fit, _ = splitwise.fit_hardware(splitwise.load_steps(), hardware)
    got = replace(fit.coeffs, source="")
    for k, v in prof["coefficients"].items():
        assert getattr(got, k) == pytest.approx(v, rel=0.05, abs=1e-6), k


@pytest.mark.parametrize("name", ["h100-splitwise.json", "a100-splitwise.json"])
def test_splitwise_profiles_errors(name):
    """In-sample and held-out step-time errors as measured (margin 2 points)."""
    prof = _profile(name)
    fe = prof["provenance"]["fit_error"]
    assert fe["decode"]["median_abs_pct"] <= 10  # measured 7.7 (H100), 5.6 (A100)
    assert fe["prefill"]["median_abs_pct"] <= 12  # measured 9.8, 8.8
    held = prof["validation"]["held_out"]
    assert held["train_without_llama2-70b_tp4"]["decode"]["median_abs_pct"] <= 14  # measured 11.1, 9.8
    assert held["train_without_llama2-70b_tp4"]["prefill"]["median_abs_pct"] <= 16  # measured 13.8, 8.5
    assert prof["provenance"]["attribution"].startswith("Splitwise")
    assert "3b5a5941" in prof["provenance"]["attribution"]


def test_profile_source_carries_validation(tmp_path):
    from sim.engine.profiles import coefficients_for, profile_validation, validation_summary
    from sim.scenario.fleet_spec import PoolSpec

    prof = _profile("h100-splitwise.json")
    pool = PoolSpec(name="p", gpu="h100-sxm", replicas=1, model="llama-3.1-70b",
                    profile=str(PROFILES / "h100-splitwise.json"))
    src = coefficients_for(pool, ROOT).source
    assert src.startswith("profile h100-splitwise") and validation_summary(prof) in src
    assert profile_validation(pool, ROOT)["held_out"]
    (tmp_path / "p.json").write_text(json.dumps({"name": "x", "coefficients": {}}))
    bare = PoolSpec(name="p", gpu="h100-sxm", replicas=1, model="llama-3.1-70b", profile="p.json")
    assert coefficients_for(bare, tmp_path).source.endswith("not validated")
    assert profile_validation(bare, tmp_path) is None


def test_prompt_salt_makes_runs_distinct_but_keeps_shared_prefixes_within_a_run():
    """Request r of two runs with the same seed must not share tokens (the server's
    prefix cache would answer the second run from the first); within one run,
    equal chain keys must still give equal prefix tokens."""
    from testbed.prompts import _prompt, new_salt
    from sim.rng import stream

    allowed = np.arange(3, 8000, dtype=np.int32)
    a, b = new_salt(), new_salt()
    assert a != b and a > 0
    p_a, p_b = _prompt(7, 0, 256, allowed, salt=a), _prompt(7, 0, 256, allowed, salt=b)
    assert len(p_a) == len(p_b) == 256 and (p_a[:128] != p_b[:128]).mean() > 0.9
    np.testing.assert_array_equal(p_a, _prompt(7, 0, 256, allowed, salt=a))  # same salt: same run, same tokens
    legacy = allowed[stream(7, "testbed-prompts", 0).integers(0, len(allowed), size=256)]
    np.testing.assert_array_equal(_prompt(7, 0, 256, allowed), legacy)  # salt 0: the seeded prompts as before
    chain = (np.array([11], dtype=np.int64), np.array([128], dtype=np.int32))
    x, y = _prompt(7, 1, 200, allowed, chain, salt=a), _prompt(7, 2, 300, allowed, chain, salt=a)
    np.testing.assert_array_equal(x[:128], y[:128])  # shared prefix within the run
    assert (x[128:200] != y[128:200]).mean() > 0.9
    z = _prompt(7, 1, 200, allowed, chain, salt=b)
    assert (x[:128] != z[:128]).mean() > 0.9  # not across runs
