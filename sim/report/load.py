"""Read a results folder (a ``fleetcast plan`` folder or a ``fleetcast run``
folder) into one ``ReportInput`` the renderers share.

A plan folder holds ``plan.json`` (+ ``points.parquet``, ``runs/recommended/``);
a run folder holds ``summary.json``, ``requests.parquet``, ``timeseries.parquet``,
``itl_histogram.parquet`` and ``scenario.yaml``. A single run is presented as a
plan with one candidate, so every renderer has one code path.

Both JSON files are read through their contracts (``sim.analysis.contracts``): a file
that does not fit is a ``FleetcastError`` naming the file and the field, and renderers
read typed fields (``inp.doc``, ``inp.run.summary``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sim.analysis.contracts import PlanCandidate, PlanDoc, RunSummary, read_contract
from sim.analysis.contracts.plan import PlanScenario
from sim.errors import FleetcastError
from sim.infiles import MAX_YAML_BYTES, parse_yaml, read_text_limited

__all__ = ["RunData", "ReportInput", "load_results", "RUN_FILES", "gpus_per_replica"]

#: files every run folder has (the parquet ones are read lazily by figures).
RUN_FILES = ("summary.json", "scenario.yaml")
#: sections a run's summary.json must hold (each a mapping) for a report to say anything.


@dataclass(frozen=True)
class RunData:
    """One run folder: its summary and per-request / time-series tables."""

    path: Path
    summary: RunSummary
    scenario_yaml: str
    requests: pd.DataFrame | None  # REQUEST_COLUMNS + derived; None when missing
    timeseries: pd.DataFrame | None  # TIMESERIES_COLUMNS; None when missing


@dataclass(frozen=True)
class ReportInput:
    """Everything a report shows, whatever folder it came from."""

    kind: str  # "plan" | "run"
    path: Path  # the RESULTS folder as given
    doc: PlanDoc  # plan.json (synthesized from the run for kind "run")
    run: RunData | None  # the recommended (or the only) run; None when absent
    points: pd.DataFrame | None  # points.parquet of a plan
    scenario: dict = field(default_factory=dict)  # the scenario YAML, parsed

    @property
    def candidates(self) -> list[PlanCandidate]:
        return list(self.doc.candidates)

    @property
    def recommended(self) -> PlanCandidate | None:
        return self.doc.recommended_candidate


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
        raise FleetcastError(
            f"run folder {path} lacks {', '.join(missing)}; a run folder is what "
            "`fleetcast run SCENARIO --out DIR` writes"
        )
    return RunData(
        path=path,
        summary=read_contract(RunSummary, path / "summary.json", "run summary (summary.json)"),
        scenario_yaml=read_text_limited(path / "scenario.yaml", MAX_YAML_BYTES, "results file"),
        requests=_read_parquet(path / "requests.parquet"),
        timeseries=_read_parquet(path / "timeseries.parquet"),
    )


def _parse_yaml(text: str, where: str) -> dict:
    """The run's scenario, within a scenario file's limits; a bomb or a broken file is refused
    (a report of an empty scenario would say nothing true)."""
    if not text:
        return {}
    data, _ = parse_yaml(text, where)
    if not isinstance(data, dict):
        raise FleetcastError(
            f"{where}: holds a {type(data).__name__}, not a scenario mapping; the run folder is "
            f"damaged: re-run `fleetcast run`"
        )
    return data


def _candidate_from_run(run: RunData, scenario: dict) -> PlanCandidate:
    """The plan candidate of a single run (one pool shown; pools listed in the label)."""
    s = run.summary
    pools = scenario.get("fleet") or [{}]
    first = pools[0]
    label = " + ".join(
        f"{p.get('replicas')}x {p.get('gpu')} (TP{p.get('tensor_parallel', 1)}"
        + (f" x DP{p['data_parallel']})" if int(p.get("data_parallel") or 1) > 1 else ")")
        for p in pools
    )
    met = s.overall.slo_met
    return PlanCandidate(
        id="run",
        label=label,
        gpu=first.get("gpu"),
        model=first.get("model"),
        quantization=first.get("quantization") or {},
        tensor_parallel=first.get("tensor_parallel", 1),
        data_parallel=first.get("data_parallel", 1),
        policy=(first.get("policy") or {}).get("name"),
        engine=first.get("engine") or {},
        status="ok" if met else "cannot-meet-slo",
        reason=None if met else "the simulated fleet misses at least one SLO",
        replicas=sum(int(p.get("replicas") or 0) for p in pools),
        gpus=sum(int(r.gpus) for r in s.cost.pools.values()),
        usd_per_hour=s.cost.fleet_usd_per_hour,
        usd_per_month=s.cost.usd_per_month,
        usd_per_1m_output_tokens=s.cost.usd_per_1m_output_tokens,
        usd_per_1m_total_tokens=s.cost.usd_per_1m_total_tokens,
        headroom_pct=None,
        attainment_pct=s.overall.attainment_pct,
        p99_ttft_s=s.overall.ttft_s.p99,
        p99_tpot_s=s.overall.tpot_s.p99,
        summary=s,
        boundary=None,
        growth=None,
        load_curve=[],
    )


def _plan_from_run(run: RunData, scenario: dict) -> PlanDoc:
    s = run.summary
    cand = _candidate_from_run(run, scenario)
    return PlanDoc(
        kind="run",
        fleetcast_version=s.fleetcast_version,
        scenario=PlanScenario(
            name=s.scenario.name or scenario.get("name"),
            seed=s.scenario.seed,
            path=s.scenario.path,
            yaml=run.scenario_yaml,
        ),
        demand={"peak_rate_rps": s.little.lambda_per_s},
        candidates=[cand],
        recommended="run" if cand.status == "ok" else None,
        tried=1,
        profiles=s.profiles,
    )


def load_results(path: str | Path) -> ReportInput:
    """Detect and read a plan or run folder; ``FleetcastError`` when it is neither."""
    path = Path(path)
    if not path.exists():
        raise FleetcastError(
            f"results folder not found: {path}. Expected a plan folder "
            "(with plan.json, from `fleetcast plan`) or a run folder "
            "(with summary.json, from `fleetcast run`)."
        )
    if not path.is_dir():
        raise FleetcastError(
            f"{path} is a file; `fleetcast report` takes a folder: a plan folder "
            "(with plan.json) or a run folder (with summary.json)."
        )
    if (path / "plan.json").is_file():
        plan = read_contract(PlanDoc, path / "plan.json", "plan (plan.json)")
        if plan.kind != "plan":
            raise FleetcastError(
                f'{path / "plan.json"}, field kind: expected "plan", got {plan.kind!r}; it is not a fleetcast plan'
            )
        rec_dir = path / "runs" / "recommended"
        run = read_run(rec_dir) if (rec_dir / "summary.json").is_file() else None
        sc_yaml = plan.scenario.yaml or (run.scenario_yaml if run else "")
        return ReportInput(
            kind="plan",
            path=path,
            doc=plan,
            run=run,
            points=_read_parquet(path / "points.parquet"),
            scenario=_parse_yaml(sc_yaml, f"{path / 'plan.json'}, scenario.yaml"),
        )
    if (path / "summary.json").is_file():
        run = read_run(path)
        scenario = _parse_yaml(run.scenario_yaml, str(path / "scenario.yaml"))
        return ReportInput(
            kind="run", path=path, doc=_plan_from_run(run, scenario), run=run, points=None, scenario=scenario
        )
    raise FleetcastError(
        f"{path} is neither a plan folder (no plan.json, written by `fleetcast plan`) "
        "nor a run folder (no summary.json, written by `fleetcast run --out DIR`)."
    )


def gpus_per_replica(c: PlanCandidate) -> int:
    """GPUs of one replica: the candidate's own count per replica where it has both, else
    tensor_parallel x data_parallel (an MoE pool's data-parallel ranks are GPUs too)."""
    if c.gpus and c.replicas:
        return max(int(c.gpus) // int(c.replicas), 1)
    return int(c.tensor_parallel or 1) * int(c.data_parallel or 1)
