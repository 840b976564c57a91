"""Read a results folder (a ``fleetcast plan`` folder or a ``fleetcast run``
folder) into one ``ReportInput`` the renderers share.

A plan folder holds ``plan.json`` (+ ``points.parquet``, ``runs/recommended/``);
a run folder holds ``summary.json``, ``requests.parquet``, ``timeseries.parquet``,
``itl_histogram.parquet`` and ``scenario.yaml``. A single run is presented as a
plan with one candidate, so every renderer has one code path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.errors import FleetcastError
from sim.infiles import MAX_YAML_BYTES, parse_yaml, read_text_limited

__all__ = ["RunData", "ReportInput", "load_results", "RUN_FILES", "gpus_per_replica"]

#: files every run folder has (the parquet ones are read lazily by figures).
RUN_FILES = ("summary.json", "scenario.yaml")
#: sections a run's summary.json must hold (each a mapping) for a report to say anything.
SUMMARY_KEYS = ("overall", "classes")


@dataclass(frozen=True)
class RunData:
    """One run folder: its summary and per-request / time-series tables."""

    path: Path
    summary: dict
    scenario_yaml: str
    requests: pd.DataFrame | None  # REQUEST_COLUMNS + derived; None when missing
    timeseries: pd.DataFrame | None  # TIMESERIES_COLUMNS; None when missing


@dataclass(frozen=True)
class ReportInput:
    """Everything a report shows, whatever folder it came from."""

    kind: str  # "plan" | "run"
    path: Path  # the RESULTS folder as given
    plan: dict  # plan.json (synthesized from the run for kind "run")
    run: RunData | None  # the recommended (or the only) run; None when absent
    points: pd.DataFrame | None  # points.parquet of a plan
    scenario: dict = field(default_factory=dict)  # the scenario YAML, parsed

    @property
    def candidates(self) -> list[dict]:
        return list(self.plan.get("candidates") or [])

    @property
    def recommended(self) -> dict | None:
        rid = self.plan.get("recommended")
        return next((c for c in self.candidates if c.get("id") == rid), None) if rid else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FleetcastError(f"results file {path} could not be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FleetcastError(f"results file {path} must hold a JSON object, got {type(data).__name__}")
    return data


def _read_parquet(path: Path) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise FleetcastError(f"results file {path} is not a readable Parquet table: {exc}") from None


def read_run(path: Path) -> RunData:
    """A run folder; raises ``FleetcastError`` naming a missing file."""
    path = Path(path)
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise FleetcastError(f"run folder {path} lacks {', '.join(missing)}; a run folder is what "
                             "`fleetcast run SCENARIO --out DIR` writes")
    summary = _read_json(path / "summary.json")
    lacking = [k for k in SUMMARY_KEYS if not isinstance(summary.get(k), dict)]
    if lacking:
        raise FleetcastError(f"results file {path / 'summary.json'} is not a fleetcast run summary: it lacks "
                             f"{', '.join(lacking)}; a run folder is what `fleetcast run SCENARIO --out DIR` writes")
    return RunData(path=path, summary=summary,
                   scenario_yaml=read_text_limited(path / "scenario.yaml", MAX_YAML_BYTES, "results file"),
                   requests=_read_parquet(path / "requests.parquet"),
                   timeseries=_read_parquet(path / "timeseries.parquet"))


def _parse_yaml(text: str, where: str) -> dict:
    """The run's scenario, within a scenario file's limits; a bomb or a broken file is refused
    (a report of an empty scenario would say nothing true)."""
    if not text:
        return {}
    data, _ = parse_yaml(text, where)
    if not isinstance(data, dict):
        raise FleetcastError(f"{where}: holds a {type(data).__name__}, not a scenario mapping; the run folder is "
                             f"damaged: re-run `fleetcast run`")
    return data


def _candidate_from_run(run: RunData, scenario: dict) -> dict:
    """The plan-candidate dict of a single run (one pool shown; pools listed in the label)."""
    s = run.summary
    cost, overall = s.get("cost") or {}, s.get("overall") or {}
    pools = scenario.get("fleet") or [{}]
    first = pools[0]
    label = " + ".join(f"{p.get('replicas')}x {p.get('gpu')} (TP{p.get('tensor_parallel', 1)}"
                       + (f" x DP{p['data_parallel']})" if int(p.get("data_parallel") or 1) > 1 else ")")
                       for p in pools)
    return {
        "id": "run", "label": label, "gpu": first.get("gpu"), "model": first.get("model"),
        "quantization": first.get("quantization") or {}, "tensor_parallel": first.get("tensor_parallel", 1),
        "data_parallel": first.get("data_parallel", 1),
        "policy": (first.get("policy") or {}).get("name"), "engine": first.get("engine") or {},
        "status": "ok" if overall.get("slo_met") else "cannot-meet-slo",
        "reason": None if overall.get("slo_met") else "the simulated fleet misses at least one SLO",
        "replicas": sum(int(p.get("replicas") or 0) for p in pools),
        "gpus": sum(int(r.get("gpus") or 0) for r in (cost.get("pools") or {}).values()),
        "usd_per_hour": cost.get("fleet_usd_per_hour"), "usd_per_month": cost.get("usd_per_month"),
        "usd_per_1m_output_tokens": cost.get("usd_per_1m_output_tokens"),
        "usd_per_1m_total_tokens": cost.get("usd_per_1m_total_tokens"),
        "headroom_pct": None, "attainment_pct": overall.get("attainment_pct"),
        "p99_ttft_s": (overall.get("ttft_s") or {}).get("p99"),
        "p99_tpot_s": (overall.get("tpot_s") or {}).get("p99"),
        "summary": s, "boundary": None, "growth": None, "load_curve": [],
    }


def _plan_from_run(run: RunData, scenario: dict) -> dict:
    s = run.summary
    sc = s.get("scenario") or {}
    cand = _candidate_from_run(run, scenario)
    return {
        "kind": "run", "fleetcast_version": s.get("fleetcast_version"),
        "scenario": {"name": sc.get("name") or scenario.get("name"), "seed": sc.get("seed", scenario.get("seed")),
                     "path": sc.get("path"), "yaml": run.scenario_yaml},
        "demand": {"peak_rate_rps": (s.get("little") or {}).get("lambda_per_s")},
        "candidates": [cand], "recommended": "run" if cand["status"] == "ok" else None,
        "tried": 1, "profiles": s.get("profiles") or {},
    }


def load_results(path: str | Path) -> ReportInput:
    """Detect and read a plan or run folder; ``FleetcastError`` when it is neither."""
    path = Path(path)
    if not path.exists():
        raise FleetcastError(f"results folder not found: {path}. Expected a plan folder "
                             "(with plan.json, from `fleetcast plan`) or a run folder "
                             "(with summary.json, from `fleetcast run`).")
    if not path.is_dir():
        raise FleetcastError(f"{path} is a file; `fleetcast report` takes a folder: a plan folder "
                             "(with plan.json) or a run folder (with summary.json).")
    if (path / "plan.json").is_file():
        plan = _read_json(path / "plan.json")
        if plan.get("kind") != "plan" or not isinstance(plan.get("candidates"), list):
            raise FleetcastError(f"{path / 'plan.json'} is not a fleetcast plan: expected "
                                 '"kind": "plan" and a "candidates" list')
        rec_dir = path / "runs" / "recommended"
        run = read_run(rec_dir) if (rec_dir / "summary.json").is_file() else None
        sc_yaml = (plan.get("scenario") or {}).get("yaml") or (run.scenario_yaml if run else "")
        return ReportInput(kind="plan", path=path, plan=plan, run=run,
                           points=_read_parquet(path / "points.parquet"), scenario=_parse_yaml(sc_yaml, f"{path / 'plan.json'}, scenario.yaml"))
    if (path / "summary.json").is_file():
        run = read_run(path)
        scenario = _parse_yaml(run.scenario_yaml, str(path / "scenario.yaml"))
        return ReportInput(kind="run", path=path, plan=_plan_from_run(run, scenario), run=run,
                           points=None, scenario=scenario)
    raise FleetcastError(f"{path} is neither a plan folder (no plan.json, written by `fleetcast plan`) "
                         "nor a run folder (no summary.json, written by `fleetcast run --out DIR`).")


def gpus_per_replica(c: dict) -> int:
    """GPUs of one replica: the candidate's own count per replica where it has both, else
    tensor_parallel x data_parallel (an MoE pool's data-parallel ranks are GPUs too)."""
    if c.get("gpus") and c.get("replicas"):
        return max(int(c["gpus"]) // int(c["replicas"]), 1)
    return int(c.get("tensor_parallel") or 1) * int(c.get("data_parallel") or 1)
