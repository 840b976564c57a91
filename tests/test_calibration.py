"""Calibration: the fit recovers known coefficients, re-fits from the committed
runs and data reproduce the committed profiles, and validation errors stay
within what was measured (no server needed)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration.fit import RUN_FREE, fit_steps, step
from sim.catalog import load_catalog
from sim.perf.perf_model import PerfCoefficients, PerfModel

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "calibration" / "profiles"
RUNS = ROOT / "calibration" / "runs"
# every repeat of 36 configurations of the original Splitwise perf_model.csv (tests/data/README.md)
RAW_SPLITWISE_SAMPLE = ROOT / "tests" / "data" / "splitwise-perf_model-sample.csv"


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


def test_shipped_splitwise_medians_are_the_originals():
    """calibration/data/splitwise-medians.csv holds, per configuration, the median of the original file's
    repeated rows (checked on the bundled excerpt of the original, medians taken here with plain pandas),
    and every row's tokens_generated follows its documented definition."""
    from calibration import splitwise

    keys = ["model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]
    times = ["prompt_time", "token_time", "e2e_time"]
    shipped = splitwise.load_steps(splitwise.DEFAULT_CSV)
    assert len(shipped) == 228  # the original's distinct configurations
    assert not shipped.duplicated(keys).any()
    raw = pd.read_csv(RAW_SPLITWISE_SAMPLE)
    grouped = raw.groupby(keys)
    want = grouped[times].median().join(grouped.size().rename("repeats")).reset_index()
    assert len(want) == 36 and len(raw) == 300
    both = want.merge(shipped, on=keys, how="left", suffixes=("_raw", ""), validate="one_to_one")
    assert both["repeats"].notna().all()  # every sampled configuration is in the shipped file
    assert (both["repeats"] == both["repeats_raw"]).all()
    for col in times:  # the shipped file keeps 9 significant digits
        np.testing.assert_allclose(both[col], both[f"{col}_raw"], rtol=1e-8, err_msg=col)
    # calibration/data/README.md: tokens_generated = min(token_size, round((e2e - prompt) / token_time)), at least 1
    n_gen = ((shipped["e2e_time"] - shipped["prompt_time"]) / shipped["token_time"]).clip(lower=1)
    np.testing.assert_array_equal(shipped["tokens_generated"], np.minimum(n_gen, shipped["token_size"]).round())
    assert (shipped["tokens_generated"] >= 1).all() and (shipped["tokens_generated"] <= shipped["token_size"]).all()


@pytest.mark.parametrize("hardware,name", [("h100-80gb", "h100-splitwise.json"), ("a100-80gb", "a100-splitwise.json")])
def test_splitwise_refit_matches_committed_profile(hardware, name):
    from calibration import splitwise

    prof = _profile(name)
    fit, _ = splitwise.fit_hardware(splitwise.load_steps(), hardware)
    got = replace(fit.coeffs, source="")
    for k, v in prof["coefficients"].items():
        assert getattr(got, k) == pytest.approx(v, rel=0.05, abs=1e-6), k


@pytest.mark.parametrize("hardware,name", [("h100-80gb", "h100-splitwise.json"), ("a100-80gb", "a100-splitwise.json")])
def test_splitwise_profiles_errors(hardware, name):
    """The step-time errors a Splitwise profile records are what its coefficients give on the shipped data
    (re-computed here, not copied from a run), and calibration earns its keep: the fitted coefficients
    beat fleetcast's uncalibrated defaults (``PerfCoefficients()``: published efficiency figures) in sample
    and on the held-out Llama-2-70B TP4 rows, for prefill and for decode."""
    from types import SimpleNamespace

    from calibration import splitwise

    prof = _profile(name)
    steps = splitwise.load_steps()
    rows = steps[steps["hardware"] == hardware]
    fitted = SimpleNamespace(coeffs=PerfCoefficients(**prof["coefficients"]))
    defaults = SimpleNamespace(coeffs=PerfCoefficients())
    in_sample = splitwise._errors(fitted, rows)
    recorded = prof["provenance"]["fit_error"]
    for kind in ("prefill", "decode"):
        assert in_sample[kind]["n"] == recorded[kind]["n"]
        for stat, value in recorded[kind].items():  # recorded to 0.01 points
            assert in_sample[kind][stat] == pytest.approx(value, abs=0.011), (kind, stat)
    is_tp4 = (rows["model"] == "llama2-70b") & (rows["tensor_parallel"] == 4)
    refit, _ = splitwise.fit_hardware(steps, hardware, lambda r: ~((r["model"] == "llama2-70b")
                                                                   & (r["tensor_parallel"] == 4)))
    held = splitwise._errors(refit, rows[is_tp4])
    held_recorded = prof["validation"]["held_out"]["train_without_llama2-70b_tp4"]
    default_in, default_held = splitwise._errors(defaults, rows), splitwise._errors(defaults, rows[is_tp4])
    for kind in ("prefill", "decode"):
        # the re-fit ends where the optimizer stops: to a few hundredths of a point of the recorded fit
        assert held[kind]["median_abs_pct"] == pytest.approx(held_recorded[kind]["median_abs_pct"], abs=0.1)
        assert in_sample[kind]["median_abs_pct"] < default_in[kind]["median_abs_pct"], kind
        assert held[kind]["median_abs_pct"] < default_held[kind]["median_abs_pct"], kind
    assert prof["provenance"]["attribution"].startswith("Splitwise")
    assert "3b5a5941" in prof["provenance"]["attribution"]


def test_profile_source_carries_validation(tmp_path):
    from sim.perf.profiles import coefficients_for, profile_validation, validation_summary
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
