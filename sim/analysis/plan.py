"""``fleetcast plan``: the fewest replicas of each candidate proven to meet
every SLO at the demand, ranked by cost.

Statistics (``sim.analysis.replications``): every search point runs
up to ``plan.replications`` independent replications, sequentially (2 first, one
more while the verdict is open; ``plan.json`` ``search`` counts them) (seed, seed + 1, ...: the
same arrivals for every candidate, replica count and rate) over a window
long enough that each class with an SLO has ``plan.tail_samples / (1 - q)``
requests for its highest percentile ``q``; a point meets the SLO when every
SLO item's 95% interval over the replications is within its target.

Window (``sim.analysis.peak``): time-varying demand is measured at its
binding part (the peak hour of a diurnal curve, widened or the whole cycle
when the samples need it; surges at their highest combined rate); the
choice is ``plan.json`` ``window``, a user-placed window that misses the
peak is a warning, and the recommended fleet is also simulated over the
scenario's own time axis for SLO attainment hour by hour (``timeline``).

Search, intervals, failures, headroom and growth: ``sim.analysis.plan_search``.
Headroom: ``headroom_pct = 100 * (r / demand - 1)`` where ``r`` is the highest
tested rate at which the found fleet is proven to meet every SLO (a lower
bound); its interval's upper end uses the lowest rate proven to miss.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd

from sim import __version__
from sim.analysis.candidates import Candidate, enumerate_candidates
from sim.analysis.forecast import class_slos, forecast
from sim.analysis.metrics import attainment_by_time
from sim.analysis.peak import PlanWindow, apply_window, plan_window, window_warnings
from sim.analysis.plan_autoscale import autoscale_comparison
from sim.analysis.plan_progress import (
    PlanTracker,
    count_in_worker,
    drain,
    finish_in_worker,
    probe_in_worker,
    worker_init,
)
from sim.analysis.plan_search import (
    CandidateSearch,
    count_candidate,
    finish_candidate,
    probe_candidate,
    search_counts,
)
from sim.analysis.power_budget import apply_power_budget, with_site_pue
from sim.analysis.rates import base_rate_rps, with_rate
from sim.analysis.replications import CONFIDENCE, class_needs, replication_seeds
from sim.analysis.total_cost import apply_total_cost, ranks_by_total_cost
from sim.errors import FleetcastError, ScenarioError
from sim.perf.step_source import perf_sources
from sim.procs import worker_pool
from sim.scenario.plan_spec import PlanSpec
from sim.scenario.spec import Scenario, dump_scenario, scenario_from_dict

#: Requests one search point may simulate over its replications: a plan runs dozens of points
#: per candidate, so this keeps a candidate within minutes (bench/sim_speed.py: ~50k req/s).
MAX_PLAN_POINT_REQUESTS = 5_000_000

__all__ = [
    "Candidate",
    "PlanOutcome",
    "enumerate_candidates",
    "run_plan",
    "with_rate",
    "base_rate_rps",
    "CandidateSearch",
    "TIMELINE_MAX_REQUESTS",
    "risk_warnings",
    "HEADROOM_WARN_PCT",
]

#: the hour-by-hour run of the recommended fleet is skipped above this many expected requests
TIMELINE_MAX_REQUESTS = 2_000_000


@dataclass
class PlanOutcome:
    """What ``run_plan`` found: the ``plan.json`` document and every point."""

    doc: dict
    points: pd.DataFrame
    error: str | None = None  # an input error (exit 2); doc still says what was tried
    recommended_scenario: Scenario | None = None
    closest: str | None = field(default=None)  # when nothing meets the SLO


#: a recommended fleet with less proven headroom than this (percent over the peak) is flagged
HEADROOM_WARN_PCT = 10.0


def risk_warnings(c: dict, peak_rps: float) -> list[str]:
    """What a planner must not miss about the recommended fleet: SLOs proven with (almost) no
    headroom over the peak, and SLOs that collapse with one replica down."""
    out = []
    h, iv = c.get("headroom_pct"), c.get("headroom_interval_pct") or [None, None]
    if h is not None and h < HEADROOM_WARN_PCT:
        up = "not found" if iv[1] is None else f"{iv[1]:.1f}%"
        out.append(
            f"the recommended fleet ({c['id']} x {c['replicas']}) is proven to meet every SLO at only "
            f"{h:.1f}% above the forecast peak of {peak_rps:.4g} req/s (headroom interval {h:.1f}% to {up}): "
            f"demand above the forecast is unproven; add a replica or plan for a higher peak"
        )
    f = c.get("failure") or {}
    if c.get("failures_down", 0) == 0 and f.get("verdict") in ("missed", "undecided"):
        att = (f.get("stats") or {}).get("attainment_pct")
        level = f"SLO attainment falls to {att:.1f}%" if att is not None else "nothing serves"
        out.append(
            f"with one replica down ({f.get('running', 0)} of {c['replicas']} running) the recommended "
            f"fleet {'misses' if f['verdict'] == 'missed' else 'is not proven to meet'} its SLO: {level}; "
            f"set plan.failures.replicas_down: 1 to size for a failure"
        )
    return out


# ------------------------------------------------------------------ driver
def _rank_key(c: dict):
    """ok first, then cheapest; equal cost: more proven headroom (none searched: 0), then $ per 1M
    tokens; then the pruned by their least cost, the ones that cannot meet the SLO, the misfits."""
    order = {"ok": 0, "pruned": 1, "cannot-meet-slo": 2, "does-not-fit": 3}[c["status"]]
    if c["status"] == "ok":  # pricing.own set: the owned total, energy included (sim.analysis.total_cost)
        cost = c["total_usd_per_month"] if c.get("total_usd_per_month") is not None else c["usd_per_month"]
        return (order, cost, -(c["headroom_pct"] or 0), c["usd_per_1m_total_tokens"] or math.inf)
    if c["status"] == "pruned":
        return (order, c["usd_per_month_at_least"], 0, 0)
    return (order, -(c["attainment_pct"] or 0.0), 0, 0)


WINDOW_TEXT = {
    "stationary": "steady demand: any window sees the same rate",
    "surge-plateau": "the highest combined surge rate, simulated as steady load (never milder than the surge)",
    "peak-hour": "the peak hour of the daily curve (one twenty-fourth of the scenario's day)",
    "peak-bin": "the busiest bin of the traffic's rate profile (arrival.profile; the classes' own processes summed "
    "bin by bin)",
    "peak-window": "a window centred on the peak hour, widened until every class has its samples",
    "whole-cycle": "the whole daily cycle (the peak hour alone cannot give every class its samples)",
    "user": "placed by plan.window_start_s",
}


def _window_doc(win: PlanWindow, desc: dict) -> dict:
    return {
        **desc,
        "peak_s": win.peak_s,
        "text": WINDOW_TEXT[desc["kind"]],
        "day_length_s": win.diurnal.day_length_s if win.diurnal is not None else None,
        "surge_multiplier": win.multiplier if win.kind == "surge-plateau" else None,
    }


def _check_samples(win: PlanWindow, needs, spec: PlanSpec, rates: list[float], where: str) -> None:
    """With plan.duration_s fixed: every class must get its samples at every decision rate."""
    if spec.duration_s is None or not needs:
        return
    rate = min(rates)  # samples grow with the rate: the lowest decides
    length, mean, _ = win.length_s(rate)
    short = [(n.samples / (mean * n.share), n) for n in needs if length * mean * n.share + 1e-9 < n.samples]
    if short:
        must, n = max(short, key=lambda x: x[0])
        got = length * mean * n.share
        raise FleetcastError(
            f"{where}, field plan.duration_s: {spec.duration_s:g} s leaves a {length:g} s window per replication; "
            f"at {mean:.4g} req/s class '{n.name}' ({100 * n.share:.0f}% of the arrivals) gets about {got:.0f} "
            f"requests, but its {n.label} needs {n.samples} (plan.tail_samples {spec.tail_samples:g} / "
            f"(1 - {n.q_pct / 100:g})). The window must be at least {must:,.1f} s: set plan.duration_s to "
            f"{must + win.warmup_s + win.cooldown_s:,.1f} s or more, or omit it to derive it."
        )


def _statistics(spec: PlanSpec, seeds: list[int], needs) -> dict:
    return {
        "replications": spec.replications,
        "seeds": seeds,
        "confidence": CONFIDENCE,
        "tail_samples": spec.tail_samples,
        "rule": "each class with an SLO gets at least tail_samples / (1 - q) requests per replication, q its "
        "highest SLO percentile (the attainment target counts as one)",
        "needs": [
            {
                "class": n.name,
                "share": n.share,
                "percentile_pct": n.q_pct,
                "from": n.label,
                "samples_per_replication": n.samples,
            }
            for n in needs
        ],
        "decision": "a point meets the SLO when, for every class and SLO item, the 95% Student-t interval over "
        "the replications lies within the target (latency: upper end at or under; attainment: lower "
        "end at or over); it misses when an interval lies wholly outside",
        "crn": "replication r uses seed scenario seed + r for every candidate, replica count and rate",
        "monotonicity": "SLO attainment is assumed never to get worse with more replicas (same arrivals) nor "
        "better at a higher rate, so counts are searched by bracketing (from the queueing "
        "estimate: gallop, then bisect) and months between two of the same count share it",
    }


def _timeline(
    base_full: dict, scenario: Scenario, cand: Candidate, spec: PlanSpec, win: PlanWindow, replicas: int, peak: float
) -> dict | None:
    """The recommended fleet over the scenario's own time axis, bin by bin."""
    data = with_rate(CandidateSearch(base_full, scenario.path, cand, spec, win, [scenario.seed]).data, peak)
    data["fleet"][spec.pool]["replicas"] = int(replicas)
    data["events"] = [ev for ev in data.get("events") or [] if ev.get("kind") == "surge"]
    tr = data["traffic"]
    duration = float(tr["duration_s"])
    if win.diurnal is not None:
        bin_s, unit = win.diurnal.day_length_s / 24.0, "hour"
    elif win.profile is not None and win.profile.bin_s <= duration / 2:
        bin_s, unit = win.profile.bin_s, "hour" if win.profile.bin_s == 3600.0 else "bin"
    elif duration >= 7200:
        bin_s, unit = 3600.0, "hour"
    else:
        bin_s, unit = duration / 12.0, "slice"
    expected = (
        duration
        * peak
        * (
            win._mean(0.0, win.diurnal.day_length_s)
            if win.diurnal is not None
            else win.profile.mean_over_period()
            if win.profile is not None and win.on_curve
            else win.multiplier
        )
    )
    if expected > TIMELINE_MAX_REQUESTS:
        return {
            "skipped": f"about {expected:,.0f} requests over the scenario's {duration:,.0f} s; more than "
            f"{TIMELINE_MAX_REQUESTS:,}",
            "rows": [],
        }
    sc = scenario_from_dict(data, path=scenario.path)
    result, summary = forecast(sc)
    return {
        "bin_s": bin_s,
        "unit": unit,
        "duration_s": duration,
        "replicas": int(replicas),
        "attainment_pct": summary["overall"]["attainment_pct"],
        "slo_met": summary["overall"]["slo_met"],
        "rows": attainment_by_time(result, class_slos(sc), bin_s),
        "skipped": None,
    }


def cheapest_ids(records: list[dict]) -> list[str]:
    """The ``ok`` candidates of the lowest monthly cost (ties included): the ones searched to
    the end, since the ranking between equal costs needs their headroom."""
    ok = [c for c in records if c["status"] == "ok"]
    if not ok:
        return []
    best = min(c["usd_per_month"] for c in ok)
    return [c["id"] for c in ok if math.isclose(c["usd_per_month"], best, rel_tol=1e-9)]


def not_searched_text(c: dict, best: dict) -> str:
    """Why an ``ok`` candidate was searched for its count only, with the costs that decided it."""
    return (
        f"searched for its count only: {c['replicas']} replicas proven at the peak cost "
        f"${c['usd_per_month']:,.0f}/month, more than the ${best['usd_per_month']:,.0f}/month of "
        f"{best['id']} x {best['replicas']} (the cheapest proven), so it cannot be recommended; "
        f"its count interval, headroom, load curve and growth months were not searched"
    )


def _search_all(
    cands: list[Candidate],
    spec: PlanSpec,
    win: PlanWindow,
    seeds: list[int],
    peak: float,
    rates: list[float],
    args: tuple[dict, Any],
    workers: int | None,
    progress: Callable[[int, int, str], None] | None,
    power_check: Callable[[list[dict]], None],
    finish_all: bool = False,
) -> tuple[list[dict], list[dict]]:
    """Round one: every candidate's first point (``probe_candidate``); the cheapest fleet
    proven there (one replica meeting the SLO) is the bound. Stage one: every candidate's
    count (``count_candidate``, with that bound: pruned as soon as its fewest possible
    count costs more). Stage two: the cheapest (ties included) searched to the end
    (``finish_candidate``); every other ``ok`` candidate keeps ``searched: "count"`` and says
    why in ``not_searched``. The bound depends on the points only, never on timing, so
    the same plan simulates the same points with any number of workers. With a power budget
    (``plan.power``) nothing is pruned -- the bound's fleet may not fit the racks -- and stage two
    goes on to the next cheapest while every candidate it finished breaks the budget
    (``power_check``, sim.analysis.power_budget). ``finish_all`` (the plan ranks by the owned total,
    sim.analysis.total_cost): nothing is pruned and every ``ok`` candidate is searched to the end, since
    rent bounds no owned cost. Records in candidate order."""
    workers = max(1, min(workers or 1, len(cands)))
    tracker = PlanTracker([c.id for c in cands], progress)
    tracker.report()
    probed: dict[str, tuple[list[dict], dict, dict | None]] = {}
    counted: dict[str, tuple[dict, list[dict], dict]] = {}
    finished: dict[str, tuple[dict, list[dict]]] = {}

    def bound_of() -> dict | None:
        bounds = [probed[c.id][2] for c in cands if probed[c.id][2] is not None]
        return min(bounds, key=lambda b: b["usd_per_month"]) if bounds else None  # type: ignore[index]  # not None

    def n_sims(*pts: list[dict]) -> int:
        return sum(p["replications"] for x in pts for p in x)

    def next_cheapest() -> list[str]:
        """The cheapest candidates not finished yet -- none once a finished one is ``ok`` after
        the power check (the recommendation is among the finished ones)."""
        done = [finished[i][0] for i in finished]
        power_check(done)
        if any(r["status"] == "ok" for r in done):
            return []
        pending = [counted[c.id][0] for c in cands if c.id not in finished]
        ids = [r["id"] for r in pending if r["status"] == "ok"] if finish_all else cheapest_ids(pending)
        tracker.finish(ids)
        return ids

    if workers == 1:
        for c in cands:
            probed[c.id] = probe_candidate(*args, c, spec, win, seeds, peak, on_sim=tracker.sim)
            if not probed[c.id][0]:  # it does not fit: nothing more to simulate
                tracker.done(c.id, 0)
        bound = bound_of() if spec.power is None and not finish_all else None
        for c in cands:
            counted[c.id] = count_candidate(
                *args, c, spec, win, seeds, peak, on_sim=tracker.sim, cache=probed[c.id][1], bound=bound
            )
            tracker.done(c.id, n_sims(probed[c.id][0], counted[c.id][1]))
        while ids := next_cheapest():
            for c in (c for c in cands if c.id in ids):
                rec, _, cache = counted[c.id]
                finished[c.id] = finish_candidate(
                    *args, c, spec, win, seeds, peak, rates, rec, cache, on_sim=lambda i: tracker.sim(i, 2)
                )
                tracker.done(c.id, n_sims(finished[c.id][1]), stage=2)
    else:
        events: multiprocessing.Queue = multiprocessing.Queue()
        reader = threading.Thread(target=drain, args=(events, tracker), daemon=True)
        reader.start()
        stopped = True  # until the pool is left normally: an interrupt must not wait on the queue
        try:
            with worker_pool(workers, init=worker_init, initargs=(events,)) as pool:  # Ctrl-C: stopped at once
                futs = {pool.submit(probe_in_worker, *args, c, spec, win, seeds, peak): c for c in cands}
                for fut in as_completed(futs):
                    probed[futs[fut].id] = fut.result()
                    if not probed[futs[fut].id][0]:  # it does not fit: nothing more to simulate
                        tracker.done(futs[fut].id, 0)
                bound = bound_of() if spec.power is None and not finish_all else None
                futs = {
                    pool.submit(count_in_worker, *args, c, spec, win, seeds, peak, probed[c.id][1], bound): c
                    for c in cands
                }
                for fut in as_completed(futs):
                    i = futs[fut].id
                    counted[i] = fut.result()
                    tracker.done(i, n_sims(probed[i][0], counted[i][1]))
                while ids := next_cheapest():
                    futs = {
                        pool.submit(
                            finish_in_worker,
                            *args,
                            c,
                            spec,
                            win,
                            seeds,
                            peak,
                            rates,
                            counted[c.id][0],
                            counted[c.id][2],
                        ): c
                        for c in cands
                        if c.id in ids
                    }
                    for fut in as_completed(futs):
                        finished[futs[fut].id] = fut.result()
                        tracker.done(futs[fut].id, n_sims(finished[futs[fut].id][1]), stage=2)
            stopped = False
        finally:
            if stopped:  # a killed worker may hold the queue's write lock: neither put nor wait on it
                events.cancel_join_thread()
            else:
                events.put(None)
                reader.join(timeout=5)
    records, points = [], []
    ok_finished = [r for r, _ in finished.values() if r["status"] == "ok"]
    best = min(ok_finished, key=_rank_key, default=None)  # the recommended
    for c in cands:  # candidate order, whatever finished first
        rec, pts, _ = counted[c.id]
        points += probed[c.id][0] + pts
        if c.id in finished:
            rec = finished[c.id][0]
            points += finished[c.id][1]
        elif rec["status"] == "ok" and best is not None:
            rec = {**rec, "not_searched": not_searched_text(rec, best)}
        records.append(rec)
    return records, points


def run_plan(
    scenario: Scenario, *, workers: int | None = None, progress: Callable[[int, int, str], None] | None = None
) -> PlanOutcome:
    """Search every candidate of ``scenario.plan`` (defaults when absent); ``progress(done,
    total, text)`` gets simulations done, the estimated total and the candidates in flight."""
    spec = scenario.plan or PlanSpec()
    demand = spec.demand
    doc: dict[str, Any] = {
        "kind": "plan",
        "fleetcast_version": __version__,
        "scenario": {
            "name": scenario.name,
            "seed": scenario.seed,
            "path": str(scenario.path) if scenario.path else None,
            "yaml": dump_scenario(scenario),
        },
        "demand": None,
        "candidates": [],
        "recommended": None,
        "tried": 0,
        "profiles": perf_sources(scenario),
        "max_replicas": spec.max_replicas,
        "pool": spec.pool,
        "duration_s": None,
        "statistics": None,
        "window": None,
        "failures": spec.failures.model_dump() if spec.failures else None,
        "warnings": [],
        "timeline": None,
        "autoscale": None,
        "headroom_definition": "100 * (highest tested rate at which the found fleet is proven to meet every SLO "
        "/ demand - 1); interval up to the lowest tested rate proven to miss",
        "error": None,
    }
    try:
        peak = demand.peak() if demand else base_rate_rps(scenario)
        doc["demand"] = {**(demand.model_dump(exclude_none=True) if demand else {}), "peak_rate_rps": peak}
        if demand and demand.is_growth:
            doc["demand"]["monthly_rates_rps"] = demand.monthly_rates()
        if not any(
            c.slo is not None and (c.slo.ttft_s or c.slo.tpot_s or c.slo.e2e_s) for c in scenario.traffic.classes
        ):
            raise FleetcastError(
                "no traffic class has an SLO target: add traffic.classes[].slo (e.g. "
                "{ttft_s: {p99: 2.0}, tpot_s: {p99: 0.1}}) so the plan has something to meet"
            )
        cands = enumerate_candidates(scenario, spec)
        base = scenario.model_dump(mode="json", exclude={"plan"})
        with_site_pue(base, spec.power)
        needs = class_needs(scenario.traffic, spec.tail_samples)
        win = plan_window(
            base,
            needs,
            duration_s=spec.duration_s,
            window_start_s=spec.window_start_s,
            where=str(scenario.path) if scenario.path else "<scenario>",
        )
        seeds = replication_seeds(int(scenario.seed), spec.replications)
        rates = demand.monthly_rates() if demand else []
        _check_samples(win, needs, spec, rates or [peak], str(scenario.path) if scenario.path else "<scenario>")
        first, desc = apply_window(with_rate(base, peak), win, peak)
        doc["window"] = _window_doc(win, desc)
        doc["duration_s"] = first["traffic"]["duration_s"]
        doc["statistics"] = _statistics(spec, seeds, needs)
        doc["warnings"] = window_warnings(win, desc, spec.window_start_s)
        if any(ev.kind == "replica-failure" for ev in scenario.events):
            doc["warnings"].append(
                "events of kind replica-failure are not simulated by the plan (replica counts "
                "vary); plan.failures sizes for failures, and every candidate reports what "
                "one replica down does"
            )
        try:
            scenario_from_dict(first, path=scenario.path)
        except ScenarioError as exc:
            raise FleetcastError(
                f"the plan's simulation settings are invalid (check plan.duration_s against "
                f"traffic.warmup_s/cooldown_s, and plan.demand): {exc}"
            ) from None
        point_requests = max(rates or [peak]) * doc["duration_s"] * spec.replications
        if point_requests > MAX_PLAN_POINT_REQUESTS:
            raise FleetcastError(
                f"each search point would simulate about {point_requests:,.3g} requests (peak "
                f"{max(rates or [peak]):,.4g} req/s x {doc['duration_s']:,.1f} s per replication x "
                f"{spec.replications} replications), more than the {MAX_PLAN_POINT_REQUESTS:,} a plan point may "
                f"(MAX_PLAN_POINT_REQUESTS; a plan simulates dozens of points per candidate); plan a share of the "
                f"traffic (a lower plan.demand, then scale the replica count), or lower plan.tail_samples or "
                f"plan.duration_s"
            )
    except FleetcastError as exc:
        doc["error"] = str(exc)
        return PlanOutcome(doc=doc, points=pd.DataFrame(), error=str(exc))

    power_check = partial(apply_power_budget, budget=spec.power, default_pue=scenario.pricing.own.pue)
    by_total = ranks_by_total_cost(scenario)
    records, points = _search_all(
        cands, spec, win, seeds, peak, rates, (base, scenario.path), workers, progress, power_check, by_total
    )
    power_check(records)  # the ones searched to the end have their power; the rest keep none
    for rec in records:
        rec.pop("power_intervals", None)  # kept in rec["power"]["intervals"]
    if by_total:
        warn = apply_total_cost(records, scenario, scenario.load_catalog())
        doc["ranking"] = (
            "by rent per month (plan.rank_by own, but " + warn + ")"
            if warn
            else "by the total cost of owning each fleet per month (plan.rank_by own, prices from pricing.own): "
            "amortisation + hosting + electricity at its measured power (sim.analysis.total_cost)"
        )
        if warn:
            doc["warnings"].append(warn)
    records.sort(key=_rank_key)
    doc["candidates"] = records
    doc["tried"] = len(points)
    doc["simulations"] = int(sum(p["replications"] for p in points))
    doc["search"] = {
        **search_counts(points, spec.replications, [c.id for c in cands]),
        "candidates_pruned": sum(c["status"] == "pruned" for c in records),
        "candidates_counted_only": sum(c["status"] == "ok" and c["searched"] == "count" for c in records),
    }
    ok = [c for c in records if c["status"] == "ok"]
    out = PlanOutcome(doc=doc, points=pd.DataFrame(points))
    if ok:
        best = ok[0]
        doc["recommended"] = best["id"]
        doc["warnings"] += risk_warnings(best, peak)
        cand = next(c for c in cands if c.id == best["id"])
        out.recommended_scenario = CandidateSearch(base, scenario.path, cand, spec, win, seeds).scenario(
            best["replicas"], peak
        )
        if doc["window"]["kind"] != "stationary":
            doc["timeline"] = _timeline(base, scenario, cand, spec, win, best["replicas"], peak)
        search = CandidateSearch(base, scenario.path, cand, spec, win, [scenario.seed])
        if search.autoscale is not None:
            doc["autoscale"] = autoscale_comparison(
                search.data, search.autoscale, spec.pool, best["replicas"], peak, scenario.path, TIMELINE_MAX_REQUESTS
            )
    else:
        close = [c for c in records if c["status"] == "cannot-meet-slo"]
        out.closest = close[0]["id"] if close else None
    return out
