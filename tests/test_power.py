"""GPU/server/facility power (issue 27): the fitted curve, the exact energy of engine steps, plan
power budgets and their bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration import power_fit
from calibration.public.ml_energy.extract import HELD_BACK_MODELS
from sim.analysis.plan import _rank_key
from sim.analysis.power_budget import apply_power_budget
from sim.analysis.power_metrics import power_summary
from sim.cli import main
from sim.engine.result import ReplicaStats, SimResult
from sim.perf.power import MEASURED, energy_j, gpu_curve
from sim.records import REQUEST_COLUMNS, TIMESERIES_COLUMNS
from sim.scenario.plan_spec import PlanPowerSpec
from sim.scenario.spec import load_scenario
from tests.factories import refused_run

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


# ------------------------------------------------------------------ the fit
def test_split_is_declared_by_model_before_fitting():
    rows = power_fit.load_rows()
    held = {r["model_id"] for r in rows if r["split"] == "held_back"}
    train = {r["model_id"] for r in rows if r["split"] == "train"}
    assert held == set(HELD_BACK_MODELS) and not held & train
    assert {r["gpu_model"] for r in rows if r["split"] == "held_back"} == {"H100", "B200"}


def test_the_shipped_coefficients_are_the_fit_of_the_training_split():
    fits = power_fit.fit(power_fit.load_rows())
    for name, f in fits.items():
        _, active, mfu, mbu, per_log2_gpus, _ = MEASURED[name]
        assert (active, mfu, mbu, per_log2_gpus) == pytest.approx(
            (f.active_w, f.w_per_mfu, f.w_per_mbu, f.w_per_log2_gpus), abs=0.051
        )
    # the forms: B200 as first shipped (no GPU-count term), H100 the form power_cv chose
    assert fits["b200"].w_per_log2_gpus == 0.0 and fits["h100-sxm"].w_per_log2_gpus < 0


def test_the_held_back_table_in_calibration_readme_is_what_the_fit_gives():
    """The README's table is the fit's (rounded as printed); and what the README claims holds:
    the held-back set's mean power within 5% on both GPUs."""
    rows = power_fit.load_rows()
    table = power_fit.held_back_table(rows, power_fit.fit(rows))
    text = (ROOT / "calibration" / "README.md").read_text()
    for t in table:
        row = re.search(rf"^\| {t['gpu']} \| held_back \| (\d+) \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \| "
                        rf"(\d+)% \| ([+-][\d.]+)% \| ([\d.]+)% \| (\d+)% \|$", text, re.M)
        assert row, t["gpu"]
        got = [float(x) for x in row.groups()]
        want = [t["configs"], 100 * t["power_mean_abs_err"], 100 * t["power_median_abs_err"],
                100 * t["power_max_abs_err"], 100 * t["power_within_5pct"], 100 * t["set_mean_power_err"],
                100 * t["energy_mean_abs_err"], 100 * t["energy_within_10pct"]]
        assert got == pytest.approx(want, abs=0.051 + 0.5 * (got[4] != want[4]))
        assert abs(t["set_mean_power_err"]) <= 0.05


def test_llama_8b_on_h100_the_issues_two_figures():
    """ML.ENERGY: Llama-3.1-8B on one H100, 513 W at 16 sequences and 690 W at 256 (held back)."""
    rows = {(r["model_id"], r["gpu_model"], r["max_num_seqs"]): r for r in power_fit.load_rows()}
    r16 = rows[("meta-llama/Llama-3.1-8B-Instruct", "H100", "16")]
    r256 = rows[("meta-llama/Llama-3.1-8B-Instruct", "H100", "256")]
    assert float(r16["avg_power_w"]) == pytest.approx(513, abs=1)
    assert float(r256["avg_power_w"]) == pytest.approx(691, abs=1)
    f = power_fit.fit(power_fit.load_rows())["h100-sxm"]
    assert power_fit.predict_w(f, r16) < power_fit.predict_w(f, r256) < 700  # below TDP, rising with batch


# ------------------------------------------------------------------ exact energy
def test_two_step_energy_by_hand_b200():
    """B200 (measured curve: idle 100 W, active 579.2 W, 1491.1 W per unit MFU, 397.1 W per unit MBU)
    held 0.05 s; step 1: 0.01 s at MFU 0.5, MBU 0.2; step 2: 0.02 s at MFU 0.05, MBU 0.9.
    By hand: 100 x 0.02 + 579.2 x 0.03 + 1491.1 x (0.005 + 0.001) + 397.1 x (0.002 + 0.018)
           = 2 + 17.376 + 8.9466 + 7.942 = 36.2646 J."""
    peak, bw = 2.25e15, 8.0e12
    c = gpu_curve("b200", "blackwell", 1000.0)
    flops = 0.5 * peak * 0.01 + 0.05 * peak * 0.02
    moved = 0.2 * bw * 0.01 + 0.9 * bw * 0.02
    assert energy_j(c, 1, 0.05, 0.03, flops, moved, peak, bw) == pytest.approx(36.2646, rel=1e-9)
    # over the board's limit the mean is capped at TDP x held time: 1000 W x 0.001 s
    assert energy_j(c, 1, 0.001, 0.001, peak * 0.001, 0.0, peak, bw) == pytest.approx(1.0)


def test_unmeasured_gpu_is_its_architectures_curve_scaled_to_tdp_and_says_so():
    h200 = gpu_curve("h200", "hopper", 700.0)
    assert h200.active_w == MEASURED["h100-sxm"][1] and "scaled by TDP" in h200.basis and "hopper" in h200.basis
    l40s = gpu_curve("l40s", "ada", 350.0)
    assert l40s.active_w == pytest.approx(490.0 / 2) and "no ada curve" in l40s.basis
    assert gpu_curve("h100-sxm", "hopper", 700.0).basis.startswith("measured")
    # in a 4-GPU replica: Hopper's (490.0 - 28.6 x log2 4) = 432.8 W, x 350/700 -> 216.4 W
    assert gpu_curve("l40s", "ada", 350.0, 4).active_w == pytest.approx(216.4)


def test_h100_active_power_falls_with_the_replicas_gpus_held_within_the_fit():
    """H100 SXM: active 490.0 W at one GPU, -28.6 W per doubling: 2 GPUs 461.4 W, 8 GPUs
    490.0 - 85.8 = 404.2 W; 16 GPUs are held at 8 (the data's largest server), 0 at 1. B200 has no
    such term (579.2 W at any count)."""
    assert gpu_curve("h100-sxm", "hopper", 700.0, 2).active_w == pytest.approx(461.4)
    assert gpu_curve("h100-sxm", "hopper", 700.0, 8).active_w == pytest.approx(404.2)
    assert gpu_curve("h100-sxm", "hopper", 700.0, 16).active_w == pytest.approx(404.2)
    assert gpu_curve("h100-sxm", "hopper", 700.0, 0).active_w == pytest.approx(490.0)
    assert gpu_curve("b200", "blackwell", 1000.0, 8).active_w == pytest.approx(579.2)
    assert "log2(8 GPUs per replica)" in gpu_curve("h100-sxm", "hopper", 700.0, 8).basis
    # the basis names the count the term used, not the replica's 16
    assert "log2(8 GPUs per replica; 16 held to the fit's 8)" in gpu_curve("h100-sxm", "hopper", 700.0, 16).basis
    # an 8-GPU replica held 0.05 s, busy 0.03 s at MFU 0.2 on every GPU, no bytes. By hand:
    # idle 8 x 70 x 0.02 = 11.2; active 8 x 404.2 x 0.03 = 97.008; 940.0 x 0.2 x 0.03 x 8 = 45.12
    # -> 153.328 J
    peak = 989.5e12
    c8 = gpu_curve("h100-sxm", "hopper", 700.0, 8)
    assert energy_j(c8, 8, 0.05, 0.03, 0.2 * peak * 0.03 * 8, 0.0, peak, 3.35e12) == pytest.approx(153.328)


def _two_step_result(stats: ReplicaStats) -> SimResult:
    req = pd.DataFrame({k: pd.Series(dtype=v) for k, v in REQUEST_COLUMNS.items()})
    ts = pd.DataFrame({k: pd.Series(dtype=v) for k, v in TIMESERIES_COLUMNS.items()})
    return SimResult(req, ts, ["chat"], np.zeros((1, 1), np.int64), (0.0, 10.0), 10.0, [stats])


def test_two_step_run_summary_equals_the_formula(tmp_path):
    """One H100 replica (TP1) over a 10 s window ran two steps: 0.2 s at MFU 0.3 and 0.3 s at MFU
    0.1. H100 curve at one GPU: idle 70 W (10% of 700), active 490.0 W, 940.0 W per unit MFU, 0 per
    MBU. By hand: 70 x 9.5 + 490.0 x 0.5 + 940.0 x (0.06 + 0.03) = 665 + 245 + 84.6 = 994.6 J,
    so 99.46 W. One DGX H100-class server: host (10200 - 8 x 700) / 2 = 2300 W; IT 2.39946 kW;
    PUE 1.3 -> 3.119298 kW; x 730 h = 2277.08754 kWh = 2.27708754 MWh a month; at $0.10/kWh
    $227.708754; at 367 g/kWh 0.835691 t CO2."""
    peak, bw = 989.5e12, 3.35e12
    stats = ReplicaStats("h100", "h100/0", "h100-sxm", 1, 100, busy_s=0.5, flops=0.3 * peak * 0.2 + 0.1 * peak * 0.3,
                         bytes=5e11, steps=2, peak_flops=peak, hbm_bw_bytes_s=bw)
    sc = load_scenario(QUICKSTART).model_copy()
    sc = sc.model_copy(update={"fleet": [sc.fleet[0].model_copy(update={"replicas": 1})]})
    p = power_summary(sc, _two_step_result(stats), None)
    assert p["gpu_avg_kw"] * 1000 == pytest.approx(99.46, rel=1e-9)
    assert p["it_avg_kw"] == pytest.approx(2.39946, rel=1e-9)
    assert p["mwh_per_month"] == pytest.approx(2.27708754, rel=1e-7)
    assert p["energy_usd_per_month"] == pytest.approx(227.708754, rel=1e-7)
    assert p["t_co2_per_month"] == pytest.approx(0.835691, rel=1e-5)
    assert p["servers"] == 1


def test_run_energy_is_the_same_stepping_every_iteration(tmp_path):
    """Energy comes from the engine's step sums; fast-forwarded decode runs and --exact-steps give
    the same sums, so the same energy."""
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["run", str(QUICKSTART), "--set", "traffic.duration_s=60", "--set", "traffic.warmup_s=10",
            "--set", "traffic.cooldown_s=5"]
    assert main([*args, "--out", str(a)]) == 0
    assert main([*args, "--exact-steps", "--out", str(b)]) == 0
    pa = json.loads((a / "summary.json").read_text())["power"]
    pb = json.loads((b / "summary.json").read_text())["power"]
    assert pa["gpu_avg_kw"] == pytest.approx(pb["gpu_avg_kw"], rel=1e-9)
    assert 4 * 0.07 < pa["gpu_avg_kw"] <= 4 * 0.7 * (1 + 1e-12)  # four H100s between idle and TDP (the cap)


# ------------------------------------------------------------------ plan budgets
def _rec(cid: str, usd: float, servers: int, server_peak_kw: float) -> dict:
    power = {"servers": servers, "server_peak_kw": server_peak_kw, "it_peak_kw": servers * server_peak_kw,
             "it_avg_kw": 0.9 * servers * server_peak_kw}
    return {"id": cid, "status": "ok", "reason": None, "limiting": None, "usd_per_month": usd, "headroom_pct": 10.0,
            "usd_per_1m_total_tokens": 1.0, "attainment_pct": 100.0, "summary": {"power": power}}


def test_cheapest_candidate_over_the_rack_budget_gives_way_to_the_next():
    """Rack 40 kW, 10 racks. Cheap: 70 servers of 5.5 kW -> floor(40 / 5.5) = 7 per rack -> 10 racks:
    fits. Cheaper still: 140 servers of 3 kW -> 13 per rack -> ceil(140 / 13) = 11 racks: over."""
    recs = [_rec("mid", 200.0, 70, 5.5), _rec("cheapest", 100.0, 140, 3.0), _rec("dear", 300.0, 10, 12.0)]
    apply_power_budget(recs, PlanPowerSpec(rack_kw=40, racks=10), 1.3)
    recs.sort(key=_rank_key)
    assert [r["id"] for r in recs] == ["mid", "dear", "cheapest"]
    cheapest = recs[-1]
    assert cheapest["status"] == "does-not-fit" and cheapest["limiting"] == "power"
    assert cheapest["reason"] == "power: needs 11 racks of 40 kW, 10 available"
    assert recs[0]["power"]["servers_per_rack"] == 7 and recs[0]["power"]["racks_needed"] == 10


def test_site_budget_counts_pue():
    """60 servers x 5 kW = 300 kW IT; x PUE 1.5 = 450 kW > 400 kW available."""
    recs = [_rec("a", 1.0, 60, 5.0)]
    apply_power_budget(recs, PlanPowerSpec(site_kw=400, pue=1.5), 1.3)
    assert recs[0]["reason"] == "power: needs 450.0 kW at the site at peak (300.0 kW IT x PUE 1.5), 400 kW available"


def test_power_budget_plan_runs_and_names_why(tmp_path, capsys):
    out = tmp_path / "plan"
    # at the scenario's 100 req/s three uncapped H100s sit on the SLO's edge: two replications call
    # them met or undecided depending on the run's noise (three call them met, on main @ 944aaa1 too),
    # so the check runs at 110 req/s, where four GPUs are needed either way
    args = ["plan", str(ROOT / "scenarios" / "power-budget.yaml"), "--out", str(out)]
    assert main(args + ["--set", "plan.demand.peak_rate_rps=110"]) == 0
    doc = json.loads((out / "plan.json").read_text())
    by = {c["id"]: c for c in doc["candidates"]}
    l40s = by["l40s-bf16-tp1-continuous"]
    assert l40s["usd_per_month"] < by["h100-sxm-bf16-tp1-continuous"]["usd_per_month"]  # the cheapest...
    assert l40s["status"] == "does-not-fit" and l40s["limiting"] == "power"  # ...breaks the rack budget
    assert re.fullmatch(r"power: needs \d+ racks of 5 kW, 1 available", l40s["reason"])
    # the scenario also tries the H100s at 500 W (plan.candidates.power_limit_w): the uncapped 4-GPU
    # server (5.1 kW) breaks the 5 kW rack, the capped one fits (tests/test_power_cap.py)
    assert doc["recommended"] == "h100-sxm-bf16-tp1-continuous-pl500"
    text = " ".join(capsys.readouterr().out.split())
    assert "l40s-bf16-tp1-continuous: does-not-fit: power: needs" in text


def test_a_budget_no_candidate_fits_exits_0_naming_each_limit(tmp_path, capsys):
    out = tmp_path / "plan"
    code = main(["plan", str(ROOT / "scenarios" / "power-budget.yaml"), "--out", str(out),
                 "--set", "plan.power.rack_kw=1"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 0 and "Traceback" not in err
    assert "no candidate fits the power budget" in err
    for cid in ("l40s-bf16-tp1-continuous", "h100-sxm-bf16-tp1-continuous"):
        assert re.search(rf"{cid}: power: one server draws [\d.]+ kW at peak, more than a rack's 1 kW", err)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "setting, said",
    [
        ("plan.power.rack_kw=0", "plan.power.rack_kw"),
        ("plan.power.rack_kw=-5", "plan.power.rack_kw"),
        ("plan.power.site_kw=0", "plan.power.site_kw"),
        ("plan.power.racks=0", "plan.power.racks"),
        ("plan.power.pue=0.9", "plan.power.pue"),
        ("pricing.grid_g_co2_per_kwh=-1", "pricing.grid_g_co2_per_kwh"),
    ],
)
def test_bad_power_inputs_are_located_exit_2_nothing_written(tmp_path, capsys, setting, said):
    code, err = refused_run(capsys, tmp_path, ROOT / "scenarios" / "power-budget.yaml", "--set", setting)
    assert code == 2 and said in err and "power-budget.yaml" in err, err


def test_racks_without_rack_kw_is_refused(tmp_path, capsys):
    sc = tmp_path / "sc.yaml"
    text = (ROOT / "scenarios" / "power-budget.yaml").read_text()
    sc.write_text(text.replace("power: {rack_kw: 5, racks: 1, pue: 1.25}", "power: {racks: 3}"))
    code, err = refused_run(capsys, tmp_path, sc)
    assert code == 2 and "plan.power.racks needs plan.power.rack_kw" in err and "sc.yaml" in err
