"""``fleetcast plan``: the fewest replicas of each candidate that meet every
SLO at the demand, ranked by cost.

Search (per candidate, one process each): SLO attainment is taken as
monotone in the replica count (more replicas, same seed, same arrivals: never
worse), so the count is found by exponential search (1, 2, 4, ... capped at
``plan.max_replicas``) then bisection; the found count ``n`` and ``n - 1``
are both simulated, which proves the boundary at this seed. Every point is
cached by (replicas, rate).

Headroom: ``headroom_pct = 100 * (r_max / demand - 1)`` where ``r_max`` is
the highest arrival rate at which the found fleet was simulated and still
met every SLO (a lower bound: the load-curve points above the demand, then
``plan.headroom_steps`` bisection steps between the best met and the first
missed rate). 0 means the fleet has no tested spare capacity.

Growth forecasts: each month's fleet is the fewest replicas meeting the SLO
at that month's rate, searched upwards from the previous (lower-rate) month.
"""

from __future__ import annotations

import copy
import math
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import pandas as pd

from sim import __version__
from sim.analysis.candidates import Candidate, enumerate_candidates
from sim.analysis.forecast import forecast, pool_costs
from sim.analysis.metrics import HOURS_PER_MONTH, cost_and_class_columns
from sim.engine.fleet import build_pool_models
from sim.engine.step_source import perf_sources
from sim.errors import FleetcastError, ScenarioError
from sim.procs import die_with_parent
from sim.scenario.plan_spec import PlanSpec
from sim.scenario.spec import Scenario, dump_scenario, scenario_from_dict

__all__ = ["Candidate", "PlanOutcome", "enumerate_candidates", "run_plan", "with_rate", "base_rate_rps",
           "CandidateSearch"]


@dataclass
class PlanOutcome:
    """What ``run_plan`` found: the ``plan.json`` document and every point."""

    doc: dict
    points: pd.DataFrame
    error: str | None = None  # an input error (exit 2); doc still says what was tried
    recommended_scenario: Scenario | None = None
    closest: str | None = field(default=None)  # when nothing meets the SLO


# ------------------------------------------------------------ rate scaling
def base_rate_rps(scenario: Scenario) -> float:
    """The scenario's own (peak) arrival rate, requests/s."""
    traffic = scenario.traffic
    a = traffic.arrival
    if a.process == "diurnal":
        return float(max(r for _, r in a.rate_points))
    if a.process == "trace":
        if a.target_rate_rps is None:
            raise FleetcastError("a trace-driven scenario needs plan.demand (or arrival.target_rate_rps): "
                                 "the planner scales the trace to the demand rate")
        return float(a.target_rate_rps)
    return float(traffic.total_rate_rps())


def with_rate(data: dict, rate_rps: float) -> dict:
    """Scenario mapping ``data`` with its traffic scaled to ``rate_rps`` total."""
    data = copy.deepcopy(data)
    traffic = data["traffic"]
    a = traffic["arrival"]
    classes = traffic["classes"]
    if a["process"] == "diurnal":
        peak = max(r for _, r in a["rate_points"])
        a["rate_points"] = [[h, r * rate_rps / peak] for h, r in a["rate_points"]]
    elif a["process"] == "trace":
        a["target_rate_rps"], a["time_scale"] = float(rate_rps), None
    elif all(c.get("rate_rps") is not None for c in classes):
        total = sum(c["rate_rps"] for c in classes)
        for c in classes:
            c["rate_rps"] = c["rate_rps"] * rate_rps / total
        a["rate_rps"] = None
    else:
        a["rate_rps"] = float(rate_rps)
    return data


# --------------------------------------------------------------- search
def _slo_misses(summary: dict) -> str:
    """The first few SLO items a summary misses, as text."""
    misses = []
    for cname, c in summary["classes"].items():
        for item in (c.get("slo") or {}).values():
            if not item["met"]:
                got = "none served" if item["achieved_s"] is None else f"{item['achieved_s']:.4g} s"
                misses.append(f"class {cname} {item['metric']} {item['percentile']} {got} > target {item['target_s']:g} s")
        tgt = c.get("attainment_target_pct")
        if tgt is not None and (c.get("attainment_pct") or 0.0) < tgt:
            misses.append(f"class {cname} attainment {c.get('attainment_pct') or 0.0:.1f}% < {tgt:g}%")
    return "; ".join(misses[:4]) + (f" (and {len(misses) - 4} more)" if len(misses) > 4 else "")


def _p99(summary: dict, metric: str, cls: str | None = None) -> float | None:
    group = summary["overall"] if cls is None else summary["classes"][cls]
    return group[metric]["p99"]


class CandidateSearch:
    """Simulates one candidate at (replicas, rate) points, cached."""

    def __init__(self, base_data: dict, path, cand: Candidate, spec: PlanSpec) -> None:
        self.cand, self.spec, self.path = cand, spec, path
        data = copy.deepcopy(base_data)
        pool = data["fleet"][spec.pool]
        same_hw = (pool["gpu"], pool["model"], pool["quantization"], pool["tensor_parallel"]) == (
            cand.gpu, cand.model, cand.quantization, cand.tensor_parallel)
        if pool.get("policy", {}).get("name") != cand.policy:
            pool["policy"] = {"name": cand.policy, "params": {}}
        pool.update(gpu=cand.gpu, model=cand.model, quantization=dict(cand.quantization),
                    tensor_parallel=cand.tensor_parallel, engine={**pool.get("engine", {}), **cand.engine})
        if not same_hw:  # a calibration profile belongs to its hardware/model/quantization
            pool["profile"] = None
        self.data = data
        self.cache: dict[tuple[int, float], dict] = {}
        self.points: list[dict] = []

    def scenario(self, replicas: int, rate_rps: float) -> Scenario:
        data = with_rate(self.data, rate_rps)
        data["fleet"][self.spec.pool]["replicas"] = int(replicas)
        return scenario_from_dict(data, path=self.path)

    def check_fits(self, rate_rps: float) -> str | None:
        """None when the candidate builds; else the ScenarioError's message."""
        try:
            build_pool_models(self.scenario(1, rate_rps))
        except ScenarioError as exc:
            return str(exc)
        return None

    def met(self, replicas: int, rate_rps: float, role: str) -> bool:
        return bool(self.summary(replicas, rate_rps, role)["overall"]["slo_met"])

    def summary(self, replicas: int, rate_rps: float, role: str) -> dict:
        key = (int(replicas), round(float(rate_rps), 9))
        if key not in self.cache:
            _, summary = forecast(self.scenario(replicas, rate_rps))
            self.cache[key] = summary
            self.points.append(self._row(replicas, rate_rps, role, summary))
        return self.cache[key]

    def _row(self, replicas: int, rate_rps: float, role: str, s: dict) -> dict:
        row = {"candidate": self.cand.id, "replicas": int(replicas), "rate_rps": float(rate_rps), "role": role,
               "slo_met": bool(s["overall"]["slo_met"]), "attainment_pct": s["overall"]["attainment_pct"],
               "p99_ttft_s": _p99(s, "ttft_s"), "p99_tpot_s": _p99(s, "tpot_s"), "p99_e2e_s": _p99(s, "e2e_s")}
        row.update(cost_and_class_columns(s))
        return row

    def fewest(self, rate_rps: float, lo: int = 0, role: str = "search") -> int | None:
        """Fewest replicas in (lo, max_replicas] meeting the SLO at ``rate_rps``
        (``lo`` is known or assumed to miss); None if even the cap misses.
        Gallops up (lo+1, lo+3, lo+7, ...), then bisects; the answer's
        predecessor is always simulated (unless it is ``lo`` = 0)."""
        cap = self.spec.max_replicas
        if lo >= cap:
            return None
        step, n = 1, min(lo + 1, cap)
        while not self.met(n, rate_rps, role):
            lo = n
            if n >= cap:
                return None
            step *= 2
            n = min(lo + step, cap)
        hi = n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.met(mid, rate_rps, role):
                hi = mid
            else:
                lo = mid
        return hi


def search_candidate(base_data: dict, path, cand: Candidate, spec: PlanSpec, demand_rps: float,
                     monthly_rates: list[float]) -> tuple[dict, list[dict]]:
    """Everything ``plan.json`` says about one candidate, plus its points."""
    s = CandidateSearch(base_data, path, cand, spec)
    rec: dict[str, Any] = {**{k: v for k, v in asdict(cand).items()}, "status": "ok", "reason": None,
                           "replicas": None, "gpus": None, "usd_per_hour": None, "usd_per_month": None,
                           "usd_per_1m_output_tokens": None, "usd_per_1m_total_tokens": None,
                           "headroom_pct": None, "attainment_pct": None, "p99_ttft_s": None, "p99_tpot_s": None,
                           "summary": None, "boundary": None, "growth": None, "load_curve": None, "profile": None}
    misfit = s.check_fits(demand_rps)
    if misfit is not None:
        # the candidate's own words: drop the "<file>, field fleet.N (pool 'x'): " location prefix
        rec.update(status="does-not-fit", reason=misfit.split("): ", 1)[-1] if "): " in misfit else misfit)
        return rec, s.points

    sc1 = s.scenario(1, demand_rps)
    rec["profile"] = perf_sources(sc1)[sc1.fleet[spec.pool].name]
    n = s.fewest(demand_rps)
    if n is None:
        top = s.summary(spec.max_replicas, demand_rps, "search")
        rec.update(status="cannot-meet-slo", summary=top, attainment_pct=top["overall"]["attainment_pct"],
                   p99_ttft_s=_p99(top, "ttft_s"), p99_tpot_s=_p99(top, "tpot_s"),
                   reason=f"misses the SLO at {demand_rps:.4g} req/s even with {spec.max_replicas} replicas "
                          f"(plan.max_replicas): {_slo_misses(top) or 'see summary'}")
        return rec, s.points
    summ = s.summary(n, demand_rps, "search")
    boundary = None
    if n > 1:
        b = s.summary(n - 1, demand_rps, "boundary")
        boundary = {"replicas": n - 1, "slo_met": bool(b["overall"]["slo_met"]), "summary": b}
    cost = summ["cost"]
    pool_cost = cost["pools"][sc1.fleet[spec.pool].name]
    rec.update(replicas=n, gpus=pool_cost["gpus"], usd_per_hour=cost["fleet_usd_per_hour"],
               usd_per_month=cost["usd_per_month"], usd_per_1m_output_tokens=cost["usd_per_1m_output_tokens"],
               usd_per_1m_total_tokens=cost["usd_per_1m_total_tokens"],
               attainment_pct=summ["overall"]["attainment_pct"], p99_ttft_s=_p99(summ, "ttft_s"),
               p99_tpot_s=_p99(summ, "tpot_s"), summary=summ, boundary=boundary)
    curve = []
    for pct in spec.load_curve_pct:
        r = demand_rps * pct / 100.0
        x = s.summary(n, r, "load_curve")
        curve.append({"load_pct": pct, "rate_rps": r, "p99_ttft_s": _p99(x, "ttft_s"),
                      "p99_tpot_s": _p99(x, "tpot_s"), "slo_met": bool(x["overall"]["slo_met"])})
    rec["load_curve"] = curve
    rec["headroom_pct"] = _headroom(s, n, demand_rps, curve)
    if monthly_rates:
        rec["growth"] = _growth(s, n, demand_rps, monthly_rates)
    return rec, s.points


def _headroom(s: CandidateSearch, n: int, demand: float, curve: list[dict]) -> float:
    met_rates = [p["rate_rps"] for p in curve if p["slo_met"] and p["rate_rps"] >= demand] + [demand]
    lo = max(met_rates)
    missed = [p["rate_rps"] for p in curve if not p["slo_met"] and p["rate_rps"] > lo]
    if s.spec.headroom_steps > 0:
        hi = min(missed) if missed else max(lo * 1.25, demand * n / (n - 1) if n > 1 else 2 * demand)
        doublings = 0
        while not missed and doublings < 4 and s.met(n, hi, "headroom"):
            lo, hi, doublings = hi, hi * 2, doublings + 1
        for _ in range(s.spec.headroom_steps):
            mid = (lo + hi) / 2
            if s.met(n, mid, "headroom"):
                lo = mid
            else:
                hi = mid
    return round(100.0 * (lo / demand - 1.0), 3)


def _growth(s: CandidateSearch, n_peak: int, peak: float, rates: list[float]) -> list[dict]:
    found: dict[int, int | None] = {}
    prev = 0  # the previous (lower-rate) month's count; one fewer misses there, so here too
    for m in sorted(range(len(rates)), key=lambda i: rates[i]):
        r = rates[m]
        if math.isclose(r, peak, rel_tol=1e-9):
            found[m] = n_peak
        elif prev and s.met(prev, r, "growth"):
            found[m] = prev
        else:
            found[m] = s.fewest(r, lo=prev, role="growth")  # prev misses at r (or is 0)
        prev = found[m] or prev
    out = []
    for m, r in enumerate(rates):
        usd_h = sum(p.replicas * p.gpus_per_replica * p.usd_per_gpu_hour
                    for p in pool_costs(s.scenario(found[m], r))) if found[m] else None
        out.append({"month": m + 1, "rate_rps": r, "replicas": found[m],
                    "usd_per_month": usd_h * HOURS_PER_MONTH if usd_h is not None else None})
    return out


# ------------------------------------------------------------------ driver
def _rank_key(c: dict):
    order = {"ok": 0, "cannot-meet-slo": 1, "does-not-fit": 2}[c["status"]]
    if c["status"] == "ok":
        return (order, c["usd_per_month"], c["usd_per_1m_total_tokens"] or math.inf, -(c["headroom_pct"] or 0))
    return (order, -(c["attainment_pct"] or 0.0), 0, 0)


def run_plan(scenario: Scenario, *, workers: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> PlanOutcome:
    """Search every candidate of ``scenario.plan`` (defaults when absent)."""
    spec = scenario.plan or PlanSpec()
    demand = spec.demand
    doc: dict[str, Any] = {
        "kind": "plan", "fleetcast_version": __version__,
        "scenario": {"name": scenario.name, "seed": scenario.seed,
                     "path": str(scenario.path) if scenario.path else None, "yaml": dump_scenario(scenario)},
        "demand": None, "candidates": [], "recommended": None, "tried": 0,
        "profiles": perf_sources(scenario),
        "max_replicas": spec.max_replicas, "pool": spec.pool, "duration_s": None,
        "headroom_definition": "100 * (highest tested rate the found fleet sustains within every SLO / demand - 1)",
        "error": None,
    }
    try:
        peak = demand.peak() if demand else base_rate_rps(scenario)
        doc["demand"] = {**(demand.model_dump(exclude_none=True) if demand else {}), "peak_rate_rps": peak}
        if demand and demand.is_growth:
            doc["demand"]["monthly_rates_rps"] = demand.monthly_rates()
        if not any(c.slo is not None and (c.slo.ttft_s or c.slo.tpot_s or c.slo.e2e_s) for c in scenario.traffic.classes):
            raise FleetcastError("no traffic class has an SLO target: add traffic.classes[].slo (e.g. "
                                 "{ttft_s: {p99: 2.0}, tpot_s: {p99: 0.1}}) so the plan has something to meet")
        cands = enumerate_candidates(scenario, spec)
        base = scenario.model_dump(mode="json", exclude={"plan"})
        if spec.duration_s is not None:
            base["traffic"]["duration_s"] = spec.duration_s
        doc["duration_s"] = base["traffic"]["duration_s"]
        try:
            scenario_from_dict(with_rate(base, peak), path=scenario.path)
        except ScenarioError as exc:
            raise FleetcastError(f"the plan's simulation settings are invalid (check plan.duration_s against "
                                 f"traffic.warmup_s/cooldown_s, and plan.demand): {exc}") from None
    except FleetcastError as exc:
        doc["error"] = str(exc)
        return PlanOutcome(doc=doc, points=pd.DataFrame(), error=str(exc))

    rates = demand.monthly_rates() if demand else []
    records, points = [], []
    workers = max(1, min(workers or 1, len(cands)))
    done = 0
    if progress:
        progress(0, len(cands))
    if workers == 1:
        results = (search_candidate(base, scenario.path, c, spec, peak, rates) for c in cands)
        for rec, pts in results:
            records.append(rec)
            points += pts
            done += 1
            if progress:
                progress(done, len(cands))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent) as pool:
            futs = [pool.submit(search_candidate, base, scenario.path, c, spec, peak, rates) for c in cands]
            for fut in as_completed(futs):
                done += 1
                if progress:
                    progress(done, len(cands))
            for fut in futs:  # candidate order, whatever finished first
                rec, pts = fut.result()
                records.append(rec)
                points += pts
    records.sort(key=_rank_key)
    doc["candidates"] = records
    doc["tried"] = len(points)
    ok = [c for c in records if c["status"] == "ok"]
    out = PlanOutcome(doc=doc, points=pd.DataFrame(points))
    if ok:
        best = ok[0]
        doc["recommended"] = best["id"]
        cand = next(c for c in cands if c.id == best["id"])
        out.recommended_scenario = CandidateSearch(base, scenario.path, cand, spec).scenario(best["replicas"], peak)
    else:
        close = [c for c in records if c["status"] == "cannot-meet-slo"]
        out.closest = close[0]["id"] if close else None
    return out
