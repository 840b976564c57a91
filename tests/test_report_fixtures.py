"""Plan / run folders for the report tests, built from REAL simulations.

Until ``fleetcast plan`` lands, ``build_plan_folder`` assembles a plan folder
that follows the fixed contract (plan.json, points.parquet,
runs/recommended/) from short ``sim.analysis.forecast.forecast`` runs: a few
candidate fleets at the peak rate, a load curve of the cheapest fleet, a
does-not-fit candidate from ``memory.plan_memory``'s own error, and a growth
table. The same simulations serve an easy SLO (some candidates pass) and an
impossible one (none passes), because the SLO only changes the summary.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd
import yaml

from sim import __version__
from sim.catalog import load_catalog
from sim.cli.common import run_folder_files, write_run_folder
from sim.errors import FleetcastError
from sim.analysis.forecast import summary_of
from sim.engine.memory import plan_memory
from sim.scenario.spec import scenario_from_dict
from tests.factories import scenario_dict

PEAK_RPS = 4.0
EASY_SLO = {"ttft_s": {"p99": 2.0}, "tpot_s": {"p99": 0.06}, "attainment_pct": 95}
IMPOSSIBLE_SLO = {"ttft_s": {"p99": 0.001}, "tpot_s": {"p99": 0.001}, "attainment_pct": 99}
#: (gpu, replicas, tensor_parallel) simulated at the peak rate.
CANDIDATES = (("l4", 1, 1), ("l40s", 1, 1), ("h100-sxm", 1, 1), ("h100-sxm", 2, 1))
#: (gpu, tp, gpu_memory_utilization) that cannot hold the model.
NO_FIT = ("rtx-4090", 1, 0.5)
LOAD_RATES = (1.0, 2.0, 4.0, 8.0, 16.0)


def tiny_scenario(gpu: str = "h100-sxm", replicas: int = 1, tp: int = 1, rate: float = PEAK_RPS,
                  slo: dict | None = None, seed: int = 11) -> dict:
    """A 20 s, two-class scenario (as a dict) on one pool."""
    slo = EASY_SLO if slo is None else slo
    data = scenario_dict(name="report-fixture", seed=seed)
    data["fleet"][0].update(gpu=gpu, replicas=replicas, tensor_parallel=tp, name="pool")
    data["traffic"] = {
        "duration_s": 20, "warmup_s": 3, "arrival": {"process": "poisson", "rate_rps": rate},
        "classes": [
            {"name": "chat", "share": 0.7, "slo": slo,
             "prompt_tokens": {"dist": "uniform", "min": 16, "max": 1500},
             "output_tokens": {"dist": "uniform", "min": 2, "max": 200}},
            {"name": "batch", "share": 0.3, "slo": slo,
             "prompt_tokens": {"dist": "uniform", "min": 500, "max": 3000},
             "output_tokens": {"dist": "fixed", "value": 40}},
        ]}
    return data


@functools.lru_cache(maxsize=None)
def _simulate(gpu: str, replicas: int, tp: int, rate: float):
    """One simulation (cached: the SLO does not change what happens)."""
    from sim.engine.fleet import simulate

    return simulate(scenario_from_dict(tiny_scenario(gpu, replicas, tp, rate)))


def run_files(gpu: str, replicas: int, tp: int, rate: float, slo: dict) -> dict:
    """The files of a run folder, as `fleetcast run` writes them."""
    scenario = scenario_from_dict(tiny_scenario(gpu, replicas, tp, rate, slo))
    result = _simulate(gpu, replicas, tp, rate)
    return run_folder_files(scenario, result, summary_of(scenario, result), wall_s=0.0, exact_steps=False)


def build_run_folder(out: Path, slo: dict | None = None, gpu: str = "h100-sxm", replicas: int = 1) -> Path:
    write_run_folder(out, run_files(gpu, replicas, 1, PEAK_RPS, EASY_SLO if slo is None else slo))
    return out


def _p99(summary: dict, metric: str):
    return summary["overall"][metric]["p99"]


def _candidate(gpu: str, replicas: int, tp: int, slo: dict) -> dict:
    s = run_files(gpu, replicas, tp, PEAK_RPS, slo)["summary.json"]
    cost, met = s["cost"], s["overall"]["slo_met"]
    missed = [f"{cls} {row['percentile']} {row['metric']} {row['achieved_s']:.3g} s > {row['target_s']:g} s"
              for cls, c in s["classes"].items() for row in c["slo"].values()
              if not row["met"] and row["achieved_s"] is not None]
    curve = []
    for rate in LOAD_RATES:
        p = run_files(gpu, replicas, tp, rate, slo)["summary.json"] if gpu == "h100-sxm" and replicas == 1 else None
        if p is not None:
            curve.append({"rate_rps": rate, "p99_ttft_s": _p99(p, "ttft_s"), "p99_tpot_s": _p99(p, "tpot_s"),
                          "slo_met": p["overall"]["slo_met"]})
    return {
        "id": f"{gpu}-tp{tp}-x{replicas}", "label": f"{replicas}x {gpu} TP{tp}", "gpu": gpu,
        "model": "llama-3.1-8b", "quantization": {"weights": "bf16", "kv_cache": "auto"},
        "tensor_parallel": tp, "policy": "continuous", "engine": {"max_model_len": 8192},
        "status": "ok" if met else "cannot-meet-slo",
        "reason": None if met else "misses " + "; ".join(missed or ["the attainment target"]),
        "replicas": replicas, "gpus": replicas * tp, "usd_per_hour": cost["fleet_usd_per_hour"],
        "usd_per_month": cost["usd_per_month"], "usd_per_1m_output_tokens": cost["usd_per_1m_output_tokens"],
        "usd_per_1m_total_tokens": cost["usd_per_1m_total_tokens"],
        "headroom_pct": 100.0 if met else None, "attainment_pct": s["overall"]["attainment_pct"],
        "p99_ttft_s": _p99(s, "ttft_s"), "p99_tpot_s": _p99(s, "tpot_s"), "summary": s,
        "boundary": None, "growth": None, "load_curve": curve,
    }


def _no_fit_candidate() -> dict:
    gpu, tp, util = NO_FIT
    cat = load_catalog()
    try:
        plan_memory(cat.gpu(gpu), cat.model("llama-3.1-8b"), cat.quant("bf16", "auto"), tp,
                    gpu_memory_utilization=util)
        reason = "unexpectedly fits"
    except FleetcastError as exc:
        reason = str(exc)
    return {"id": f"{gpu}-tp{tp}", "label": f"{gpu} TP{tp}", "gpu": gpu, "model": "llama-3.1-8b",
            "quantization": {"weights": "bf16", "kv_cache": "auto"}, "tensor_parallel": tp,
            "policy": "continuous", "engine": {"gpu_memory_utilization": util}, "status": "does-not-fit",
            "reason": reason, "replicas": None, "gpus": None, "usd_per_hour": None, "usd_per_month": None,
            "usd_per_1m_output_tokens": None, "usd_per_1m_total_tokens": None, "headroom_pct": None,
            "attainment_pct": None, "p99_ttft_s": None, "p99_tpot_s": None, "summary": None,
            "boundary": None, "growth": None, "load_curve": []}


def build_plan_folder(out: Path, slo: dict | None = None) -> Path:
    """A plan folder per the contract; with ``IMPOSSIBLE_SLO`` no candidate is ok."""
    slo = EASY_SLO if slo is None else slo
    cands = [_candidate(g, r, tp, slo) for g, r, tp in CANDIDATES] + [_no_fit_candidate()]
    ok = sorted((c for c in cands if c["status"] == "ok"), key=lambda c: c["usd_per_month"])
    rest = [c for c in cands if c["status"] != "ok"]
    rec = ok[0] if ok else None
    if rec is not None:
        rec["growth"] = [{"month": m, "rate_rps": PEAK_RPS * 1.25 ** m,
                          "replicas": rec["replicas"] * (1 + m // 3),
                          "usd_per_month": rec["usd_per_month"] * (1 + m // 3)} for m in range(0, 12, 2)]
    scenario_yaml = yaml.safe_dump(tiny_scenario(slo=slo), sort_keys=False)
    plan = {"kind": "plan", "fleetcast_version": __version__,
            "scenario": {"name": "report-fixture", "seed": 11, "path": "scenarios/report-fixture.yaml",
                         "yaml": scenario_yaml},
            "demand": {"peak_rate_rps": PEAK_RPS, "horizon_months": 12, "monthly_growth_pct": 25.0},
            "candidates": ok + rest, "recommended": rec["id"] if rec else None,
            "tried": len(cands), "profiles": {"pool": "fleetcast defaults: published figures, uncalibrated "
                                                       "(see PerfCoefficients)"}}
    points = pd.DataFrame([{"candidate": c["id"], "replicas": c["replicas"], **p}
                           for c in cands for p in c["load_curve"]]
                          + [{"candidate": c["id"], "replicas": c["replicas"], "rate_rps": PEAK_RPS,
                              "p99_ttft_s": c["p99_ttft_s"], "p99_tpot_s": c["p99_tpot_s"],
                              "slo_met": c["status"] == "ok"} for c in cands if c["summary"]])
    files: dict = {"plan.json": plan, "points.parquet": points}
    write_run_folder(out, files)
    if rec is not None:
        write_run_folder(out / "runs" / "recommended",
                         run_files(rec["gpu"], rec["replicas"], rec["tensor_parallel"], PEAK_RPS, slo))
    return out


def test_fixture_plan_follows_contract(tmp_path):
    folder = build_plan_folder(tmp_path / "plan")
    plan = json.loads((folder / "plan.json").read_text())
    keys = {"id", "label", "gpu", "model", "quantization", "tensor_parallel", "policy", "engine", "status",
            "reason", "replicas", "gpus", "usd_per_hour", "usd_per_month", "usd_per_1m_output_tokens",
            "usd_per_1m_total_tokens", "headroom_pct", "attainment_pct", "p99_ttft_s", "p99_tpot_s",
            "summary", "boundary", "growth", "load_curve"}
    assert plan["kind"] == "plan" and plan["recommended"] and plan["tried"] == len(plan["candidates"])
    assert all(keys <= set(c) for c in plan["candidates"])
    assert {c["status"] for c in plan["candidates"]} >= {"ok", "does-not-fit"}
    assert (folder / "points.parquet").is_file() and (folder / "runs/recommended/summary.json").is_file()
