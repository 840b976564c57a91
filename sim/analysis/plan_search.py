"""One candidate's search: the fewest replicas proven to meet every SLO,
with intervals on the count and the headroom, the failure line, and the
growth months.

Every point is up to ``plan.replications`` simulations, run sequentially
(``early_verdict``: 2 first, more while the verdict is open); the search
moves on the point's verdict: ``met`` only when every SLO item's 95%
interval is within its target. SLO attainment is taken as monotone in the
replica count (more replicas, same arrivals: never worse) and in the rate
(never better at a higher one), so the count is bracketed: one replica
first, then from the queueing estimate (``_queueing_guess``) a gallop up
(+1, +2, +4, ...), a gallop down when the estimate met, and bisection
(``fewest``); growth months are split at the middle one (``_growth``).
Points are cached by (replicas, rate).

- Count interval ``[n_low, n]``: ``n`` is the fewest proven to meet;
  ``n_low - 1`` the largest count below it proven to miss (searched down
  from ``n - 1`` through undecided counts, at most ``_DOWN_STEPS``).
- Headroom interval ``[lo, hi]`` (percent over the demand): ``lo`` from the
  highest tested rate proven met, ``hi`` from the lowest proven missed
  (None when none was found); bisection steps alternate between the two ends.
- Failures: with ``plan.failures`` the fleet is ``n_slo + k`` replicas (the
  SLOs proven at ``n_slo``, i.e. with ``k`` down); every candidate also gets
  the point of one replica down (``n - 1``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from sim.analysis.candidates import Candidate, split_replicas
from sim.analysis.forecast import forecast, pool_costs
from sim.analysis.metrics import HOURS_PER_MONTH, cost_and_class_columns
from sim.analysis.peak import PlanWindow, apply_window
from sim.analysis.rates import with_rate
from sim.analysis.replications import (
    EARLY_MET_CONFIDENCE,
    EARLY_MISSED_CONFIDENCE,
    MIN_MET_REPLICATIONS,
    MIN_REPLICATIONS,
    early_verdict,
    misses_text,
    point_stats,
)
from sim.errors import ScenarioError
from sim.perf.pool_model import PoolModel, build_pool_models
from sim.scenario.plan_spec import PlanSpec
from sim.scenario.spec import Scenario, scenario_from_dict

__all__ = [
    "CandidateSearch",
    "search_candidate",
    "probe_candidate",
    "count_candidate",
    "finish_candidate",
    "Pruned",
    "replicas_down",
    "search_counts",
]

_DOWN_STEPS = 4  # counts below n searched for a proven miss (the count interval)
_UNLOADED = 1e-3  # the latency-floor check runs one replica at this fraction of the per-replica demand


class Pruned(Exception):
    """Raised by ``fewest``'s ``floor`` when the fewest count still possible costs too much."""

    def __init__(self, at_least: int) -> None:
        super().__init__(at_least)
        self.at_least = at_least


class CandidateSearch:
    """Simulates one candidate at (replicas, rate) points, each over every seed, cached."""

    def __init__(
        self, base_data: dict, path, cand: Candidate, spec: PlanSpec, win: PlanWindow, seeds: list[int]
    ) -> None:
        self.cand, self.spec, self.path, self.win, self.seeds = cand, spec, path, win, list(seeds)
        data = copy.deepcopy(base_data)
        pool = data["fleet"][spec.pool]
        # the search sizes a fixed fleet for the peak; an autoscaled pool is compared afterwards
        # (sim.analysis.plan_autoscale)
        self.autoscale = pool.pop("autoscale", None)
        same_hw = (
            pool["gpu"],
            pool["model"],
            pool["quantization"],
            pool["tensor_parallel"],
            pool.get("data_parallel", 1),
            pool.get("expert_parallel", False),
        ) == (cand.gpu, cand.model, cand.quantization, cand.tensor_parallel, cand.data_parallel, cand.expert_parallel)
        if pool.get("policy", {}).get("name") != cand.policy:
            pool["policy"] = {"name": cand.policy, "params": {}}
        pool.update(
            gpu=cand.gpu,
            model=cand.model,
            quantization=dict(cand.quantization),
            tensor_parallel=cand.tensor_parallel,
            data_parallel=cand.data_parallel,
            expert_parallel=cand.expert_parallel,
            engine={**pool.get("engine", {}), **cand.engine},
        )
        if cand.power_limit_w is not None or "power_limit_w" in pool:
            pool["power_limit_w"] = cand.power_limit_w
        if not same_hw:  # a calibration profile belongs to its hardware/model/quantization
            pool["profile"] = None
        if cand.prefill_decode:  # the pool split in two: prefill at plan.pool, decode right after it
            data["fleet"][spec.pool : spec.pool + 1] = [
                {**copy.deepcopy(pool), "name": f"{pool['name']}-{role}", "role": role}
                for role in ("prefill", "decode")
            ]
            data["kv_transfer"] = {"link": cand.link, "overlap": cand.overlap}
        self.data = data
        self.cache: dict[tuple[int, float], dict] = {}
        self.pools: list[PoolModel] = []  # set by check_fits
        self.points: list[dict] = []
        self.on_sim: Callable[[str], None] | None = None  # called with the candidate id after each simulation

    def scenario(self, replicas: int, rate_rps: float, replication: int = 0) -> Scenario:
        """The scenario of one replication of a point (its window applied)."""
        data, _ = apply_window(with_rate(self.data, rate_rps), self.win, rate_rps)
        if self.cand.prefill_decode:
            pre, dec = split_replicas(int(replicas), self.cand.prefill_decode)
            data["fleet"][self.spec.pool]["replicas"] = pre
            data["fleet"][self.spec.pool + 1]["replicas"] = dec
        else:
            data["fleet"][self.spec.pool]["replicas"] = int(replicas)
        data["seed"] = self.seeds[replication]
        return scenario_from_dict(data, path=self.path)

    def check_fits(self, rate_rps: float) -> str | None:
        """None when the candidate builds (its pool models are then ``self.pools``); else
        the ScenarioError's message."""
        try:
            self.pools = build_pool_models(self.scenario(1, rate_rps))
        except ScenarioError as exc:
            return str(exc)
        return None

    def point(self, replicas: int, rate_rps: float, role: str) -> dict:
        """``point_stats`` of (replicas, rate) over the replications run (sequential:
        ``MIN_REPLICATIONS`` first, one more while the verdict is open, at most
        one per seed; ``early_verdict``), plus ``summary`` (replication 0) and ``window``."""
        key = (int(replicas), round(float(rate_rps), 9))
        if key not in self.cache:
            if replicas < 1:
                self.cache[key] = {"verdict": "missed", "items": [], "summary": None, "none_running": True}
                return self.cache[key]
            _, desc = apply_window(with_rate(self.data, rate_rps), self.win, rate_rps)
            sums: list[dict] = []
            for r in range(len(self.seeds)):
                sums.append(forecast(self.scenario(replicas, rate_rps, r))[1])
                if self.on_sim is not None:
                    self.on_sim(self.cand.id)
                if len(sums) < len(self.seeds) and early_verdict(sums):
                    break
            stats = {**point_stats(sums), "summary": sums[0], "window": desc}
            self.cache[key] = stats
            self.points.append(self._row(replicas, rate_rps, role, stats, sums))
        return self.cache[key]

    def usd_per_month(self, replicas: int, rate_rps: float) -> float:
        """The fleet's rent per month at ``replicas`` (no simulation: catalog prices x GPUs)."""
        return HOURS_PER_MONTH * sum(
            p.replicas * p.gpus_per_replica * p.usd_per_gpu_hour for p in pool_costs(self.scenario(replicas, rate_rps))
        )

    def met(self, replicas: int, rate_rps: float, role: str) -> bool:
        return self.point(replicas, rate_rps, role)["verdict"] == "met"

    def _row(self, replicas: int, rate_rps: float, role: str, st: dict, sums: list[dict]) -> dict:
        att = st["attainment_interval_pct"]
        row = {
            "candidate": self.cand.id,
            "replicas": int(replicas),
            "rate_rps": float(rate_rps),
            "role": role,
            "verdict": st["verdict"],
            "slo_met": st["verdict"] == "met",
            "replications": len(sums),
            "window_kind": st["window"]["kind"],
            "window_s": st["window"]["window_s"],
            "requests_per_replication": float(np.mean(st["requests_per_replication"])),
            "attainment_pct": st["attainment_pct"],
            "attainment_ci_low_pct": att[0],
            "attainment_ci_high_pct": att[1],
            "p99_ttft_s": st["p99_ttft_s"],
            "p99_tpot_s": st["p99_tpot_s"],
            "p99_e2e_s": st["p99_e2e_s"],
        }
        cols = [cost_and_class_columns(s) for s in sums]
        class_verdict: dict[str, str] = {}
        for it in st["items"]:
            v = class_verdict.get(it["class"], "met")
            class_verdict[it["class"]] = (
                "missed"
                if "missed" in (v, it["verdict"])
                else ("undecided" if "undecided" in (v, it["verdict"]) else "met")
            )
        for k in cols[0]:
            if k.endswith(".slo_met"):
                row[k] = class_verdict.get(k[: -len(".slo_met")], "met") == "met"
            else:
                vals = [c[k] for c in cols if c[k] is not None]
                row[k] = float(np.mean(vals)) if vals else None
        return row

    def fewest(
        self,
        rate_rps: float,
        lo: int = 0,
        role: str = "search",
        hi: int | None = None,
        guess: int | None = None,
        floor: Callable[[int], None] | None = None,
    ) -> int | None:
        """Fewest replicas in (lo, hi] proven to meet the SLO at ``rate_rps``
        (``lo`` is known or assumed not to; ``hi``, when given, is known to; else
        the cap, unproven); None if even the cap does not. Starts at ``guess``
        (the queueing estimate, or lo + 1), gallops up (+1, +2, +4, ...) until a
        count meets, then down from the lowest met (-1, -2, -4, ...) until one
        misses, then bisects: with a good guess, two points (n and n - 1). ``floor``, when
        given, is called with the fewest count still possible each time a count is found
        not to meet (every count this search tests and finds not met lies below the count
        it returns); it may raise ``Pruned`` to stop the search there."""
        floor = floor or (lambda m: None)
        top = self.spec.max_replicas if hi is None else hi
        if lo >= top:
            return None
        n = start = min(max(guess if guess is not None else lo + 1, lo + 1), top)
        step = 1
        while hi is None or n < hi:  # gallop up until a count meets (hi, when given, is known to)
            if self.met(n, rate_rps, role):
                hi = n
                break
            lo = n
            if n >= top:
                return None
            floor(lo + 1)
            n, step = min(lo + step, top), step * 2
        step = 1
        while hi == start and hi - lo > 1:  # the guess met: gallop down until a count misses
            m = max(hi - step, lo + 1)
            if not self.met(m, rate_rps, role):
                lo = m
                floor(lo + 1)
                break
            hi = start = m
            step *= 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.met(mid, rate_rps, role):
                hi = mid
            else:
                lo = mid
                floor(lo + 1)
        return hi


def replicas_down(spec: PlanSpec, cand: Candidate, scenario: Scenario) -> tuple[int, str | None]:
    """(replicas the fleet must be able to lose, words) from ``plan.failures``."""
    f = spec.failures
    if f is None or not (f.replicas_down or f.nodes_down):
        return 0, None
    if f.replicas_down:
        return int(f.replicas_down), f"{f.replicas_down} replica{'s' if f.replicas_down != 1 else ''} down"
    per_node = scenario.load_catalog().gpu(cand.gpu).gpus_per_node
    per_node = max(1, per_node // (cand.tensor_parallel * cand.data_parallel)) if per_node else 1
    k = f.nodes_down * per_node  # type: ignore[operator]  # called only with nodes_down set
    return k, (
        f"{f.nodes_down} server{'s' if f.nodes_down != 1 else ''} down ({per_node} replica"
        f"{'s' if per_node != 1 else ''} of TP {cand.tensor_parallel} per {cand.gpu} server)"
    )


def search_counts(points: list[dict], replications: int, ids: list[str]) -> dict:
    """``plan.json`` ``search``: points and simulations run, per candidate and in all,
    and what the early stops saved against ``replications`` per point."""

    def counts(pts: list[dict]) -> dict:
        sims = int(sum(p["replications"] for p in pts))
        return {
            "points": len(pts),
            "simulations": sims,
            "saved_by_early_stop": replications * len(pts) - sims,
            "early_stops": sum(1 for p in pts if p["replications"] < replications),
        }

    return {
        **counts(points),
        "replications_min": MIN_REPLICATIONS,
        "replications_max": int(replications),
        "early_met_replications": MIN_MET_REPLICATIONS,
        "early_met_confidence": EARLY_MET_CONFIDENCE,
        "early_missed_confidence": EARLY_MISSED_CONFIDENCE,
        "rule": "each point starts with replications_min replications and adds one while its verdict is open "
        "(at most replications_max); it stops early once its early_missed_confidence interval lies "
        "outside a target, or once it has early_met_replications and its early_met_confidence "
        "interval is within every target; the verdict is the 95% rule over the replications run",
        "by_candidate": [{"candidate": i, **counts([p for p in points if p["candidate"] == i])} for i in ids],
    }


def _stats_view(st: dict) -> dict:
    """What plan.json keeps of a point (no per-replication summaries)."""
    keys = (
        "verdict",
        "replications",
        "items",
        "attainment_pct",
        "attainment_interval_pct",
        "p99_ttft_s",
        "p99_tpot_s",
        "p99_e2e_s",
        "requests_per_replication",
        "window",
    )
    return {k: st.get(k) for k in keys}


def search_candidate(
    base_data: dict,
    path,
    cand: Candidate,
    spec: PlanSpec,
    win: PlanWindow,
    seeds: list[int],
    demand_rps: float,
    monthly_rates: list[float],
    on_sim: Callable[[str], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Everything ``plan.json`` says about one candidate searched to the end (``count_candidate``
    then ``finish_candidate``), plus its points; ``on_sim`` (progress) is called with the
    candidate id after each simulation."""
    rec, points, cache = count_candidate(base_data, path, cand, spec, win, seeds, demand_rps, on_sim)
    if rec["status"] != "ok":
        return rec, points
    rec, more = finish_candidate(base_data, path, cand, spec, win, seeds, demand_rps, monthly_rates, rec, cache, on_sim)
    return rec, points + more


def _blank(cand: Candidate) -> dict[str, Any]:
    return {
        **{k: v for k, v in asdict(cand).items() if k != "power_limit_w" or v is not None},
        "status": "ok",
        "reason": None,
        "limiting": None,
        "searched": "full",
        "not_searched": None,
        "replicas_at_least": None,
        "usd_per_month_at_least": None,
        "replicas": None,
        "replicas_interval": None,
        "replicas_for_slo": None,
        "failures_down": 0,
        "failures_text": None,
        "gpus": None,
        "usd_per_hour": None,
        "usd_per_month": None,
        "usd_per_1m_output_tokens": None,
        "usd_per_1m_total_tokens": None,
        "headroom_pct": None,
        "headroom_interval_pct": None,
        "attainment_pct": None,
        "attainment_interval_pct": None,
        "p99_ttft_s": None,
        "p99_tpot_s": None,
        "slo_stats": None,
        "summary": None,
        "boundary": None,
        "failure": None,
        "growth": None,
        "load_curve": None,
        "profile": None,
    }


def probe_candidate(
    base_data: dict,
    path,
    cand: Candidate,
    spec: PlanSpec,
    win: PlanWindow,
    seeds: list[int],
    demand_rps: float,
    on_sim: Callable[[str], None] | None = None,
) -> tuple[list[dict], dict, dict | None]:
    """A candidate's first point: one replica at the demand (the first point of its count
    search). Returns (points, the point cache, and when that point met the SLO the proven
    fleet as a bound ``{"id", "replicas", "usd_per_month"}`` for ``count_candidate``)."""
    s = CandidateSearch(base_data, path, cand, spec, win, seeds)
    s.on_sim = on_sim
    if s.check_fits(demand_rps) is not None:
        return s.points, s.cache, None
    if s.point(1, demand_rps, "search")["verdict"] != "met":
        return s.points, s.cache, None
    k, _ = replicas_down(spec, cand, s.scenario(1, demand_rps))
    return s.points, s.cache, {"id": cand.id, "replicas": 1 + k, "usd_per_month": s.usd_per_month(1 + k, demand_rps)}


def count_candidate(
    base_data: dict,
    path,
    cand: Candidate,
    spec: PlanSpec,
    win: PlanWindow,
    seeds: list[int],
    demand_rps: float,
    on_sim: Callable[[str], None] | None = None,
    cache: dict | None = None,
    bound: dict | None = None,
) -> tuple[dict, list[dict], dict]:
    """The first stage of a candidate: whether it fits, the fewest replicas proven at the
    demand (with ``plan.failures`` on top), its cost, the point one replica fewer and
    the point with one replica down. Returns (record, the points it ran, the point cache
    for ``finish_candidate``; ``cache`` seeds it). The record says ``searched: "count"``
    until it is finished. With ``bound`` (a proven fleet of another candidate,
    ``probe_candidate``) the count search stops as soon as the fewest count still possible
    costs more than the bound: the record is then ``status: "pruned"`` with that count
    (``replicas_at_least``) and its cost (``usd_per_month_at_least``), both proven lower
    bounds on what the full search would have found."""
    s = CandidateSearch(base_data, path, cand, spec, win, seeds)
    s.on_sim = on_sim
    if cache:
        s.cache = dict(cache)
    rec = _blank(cand)
    misfit = s.check_fits(demand_rps)
    if misfit is not None:
        # the candidate's own words: drop the "<file>, field fleet.N (pool 'x'): " location prefix
        rec.update(
            status="does-not-fit", limiting="memory", reason=misfit.split("): ", 1)[-1] if "): " in misfit else misfit
        )
        return rec, s.points, s.cache

    sc1 = s.scenario(1, demand_rps)
    rec["profile"] = s.pools[spec.pool].source  # check_fits built sc1's pools
    k, k_text = replicas_down(spec, cand, sc1)
    probe = s.point(1, demand_rps, "search")

    def floor(m: int) -> None:  # m is the fewest count still possible: prune when even that costs too much
        if bound is not None and s.usd_per_month(m + k, demand_rps) > bound["usd_per_month"] * (1 + 1e-9):
            raise Pruned(m)

    try:
        if probe["verdict"] == "met":
            n0: int | None = 1
        else:
            floor(2)
            n0 = s.fewest(demand_rps, lo=1, guess=_queueing_guess(probe, demand_rps), floor=floor)
    except Pruned as p:
        usd = s.usd_per_month(p.at_least + k, demand_rps)
        rec.update(
            status="pruned",
            searched="pruned",
            replicas_at_least=p.at_least + k,
            usd_per_month_at_least=usd,
            failures_down=k,
            failures_text=k_text,
            reason=_pruned_text(p.at_least, k, usd, bound),  # type: ignore[arg-type]  # pruned only with a bound
        )
        return rec, s.points, s.cache
    if n0 is None:
        top = s.point(spec.max_replicas, demand_rps, "search")
        limiting, why = _limit(s, top, demand_rps)
        rec.update(
            status="cannot-meet-slo",
            limiting=limiting,
            summary=top["summary"],
            slo_stats=_stats_view(top),
            attainment_pct=top["attainment_pct"],
            attainment_interval_pct=top["attainment_interval_pct"],
            p99_ttft_s=top["p99_ttft_s"],
            p99_tpot_s=top["p99_tpot_s"],
            reason=f"not proven to meet the SLO at {demand_rps:.4g} req/s even with {spec.max_replicas} "
            f"replicas (plan.max_replicas): {misses_text(top) or 'see summary'}. Limit: {why}",
        )
        return rec, s.points, s.cache
    n = n0 + k
    st = s.point(n, demand_rps, "search" if k == 0 else "failure")
    boundary = None
    if n0 > 1:
        b = s.point(n0 - 1, demand_rps, "boundary")
        boundary = {
            "replicas": n0 - 1 + k,
            "running": n0 - 1,
            "verdict": b["verdict"],
            "slo_met": False,
            "stats": _stats_view(b),
            "summary": b["summary"],
        }
    one_down = s.point(n - 1, demand_rps, "one-down")
    cost = st["summary"]["cost"]
    planned = [p.name for p in sc1.fleet[spec.pool : spec.pool + (2 if cand.prefill_decode else 1)]]
    rec.update(
        searched="count",
        replicas=n,
        replicas_for_slo=n0,
        failures_down=k,
        failures_text=k_text,
        gpus=sum(cost["pools"][name]["gpus"] for name in planned),
        usd_per_hour=cost["fleet_usd_per_hour"],
        usd_per_month=cost["usd_per_month"],
        usd_per_1m_output_tokens=st["usd_per_1m_output_tokens"],
        usd_per_1m_total_tokens=st["usd_per_1m_total_tokens"],
        attainment_pct=st["attainment_pct"],
        attainment_interval_pct=st["attainment_interval_pct"],
        power_intervals=st["power_intervals"],
        p99_ttft_s=st["p99_ttft_s"],
        p99_tpot_s=st["p99_tpot_s"],
        slo_stats=_stats_view(st),
        summary=st["summary"],
        boundary=boundary,
        failure={
            "replicas_down": 1,
            "running": n - 1,
            "verdict": one_down["verdict"],
            "stats": _stats_view(one_down) if n > 1 else None,
            "text": _one_down_text(n, one_down),
        },
    )
    if cand.prefill_decode:  # the replicas as run: n split at the ratio (n = 1 runs as 1 + 1)
        pre, dec = split_replicas(n, cand.prefill_decode)
        rec.update(replicas=pre + dec, prefill_replicas=pre, decode_replicas=dec)
    return rec, s.points, s.cache


def finish_candidate(
    base_data: dict,
    path,
    cand: Candidate,
    spec: PlanSpec,
    win: PlanWindow,
    seeds: list[int],
    demand_rps: float,
    monthly_rates: list[float],
    rec: dict,
    cache: dict,
    on_sim: Callable[[str], None] | None = None,
) -> tuple[dict, list[dict]]:
    """The second stage of an ``ok`` candidate from ``count_candidate`` (its ``cache``
    reused): the count interval, the load curve, the headroom interval and the growth
    months. Returns (the record, ``searched: "full"``, and the points this stage ran)."""
    s = CandidateSearch(base_data, path, cand, spec, win, seeds)
    s.on_sim = on_sim
    s.cache = dict(cache)
    rec = dict(rec)
    n0, k = rec["replicas_for_slo"], rec["failures_down"]
    n = n0 + k
    n_low = _count_low(s, n0, demand_rps)
    curve = []
    for pct in spec.load_curve_pct:
        r = demand_rps * pct / 100.0
        x = s.point(n, r, "load_curve")
        curve.append(
            {
                "load_pct": pct,
                "rate_rps": r,
                "p99_ttft_s": x["p99_ttft_s"],
                "p99_tpot_s": x["p99_tpot_s"],
                "attainment_pct": x["attainment_pct"],
                "verdict": x["verdict"],
                "slo_met": x["verdict"] == "met",
            }
        )
    lo, hi = _headroom(s, n, demand_rps, curve)
    rec.update(
        searched="full",
        not_searched=None,
        replicas_interval=[n_low + k, n],
        load_curve=curve,
        headroom_pct=lo,
        headroom_interval_pct=[lo, hi],
    )
    if monthly_rates:
        rec["growth"] = _growth(s, n0, k, demand_rps, monthly_rates)
    return rec, s.points


def _pruned_text(m: int, k: int, usd: float, bound: dict) -> str:
    """Why a candidate was pruned: ``m`` the fewest count still possible (``m - 1`` tested and
    not proven to meet), ``k`` replicas for plan.failures, ``usd`` the cost of ``m + k``."""
    return (
        f"not proven to meet the SLO at the peak with {m - 1} replica{'s' if m != 2 else ''}, so it "
        f"needs at least {m + k}" + (f" (with {k} for plan.failures)" if k else "") + f", costing at least "
        f"${usd:,.0f}/month, more than the ${bound['usd_per_month']:,.0f}/month of {bound['id']} x "
        f"{bound['replicas']} (proven at its first point); its count was not searched further, since it "
        "cannot be the cheapest"
    )


def _queueing_guess(probe: dict, rate_rps: float) -> int | None:
    """The count a saturated single replica suggests: ``ceil(rate / served)``, ``served``
    the requests per second it completed in the window (replication 0); None when it
    kept up (then the search walks up from 2)."""
    served = ((probe.get("summary") or {}).get("overall") or {}).get("window_requests_per_s")
    if not served or served >= 0.95 * rate_rps:
        return None
    return max(2, math.ceil(rate_rps / served - 1e-9))


def _count_low(s: CandidateSearch, n0: int, rate: float) -> int:
    """1 + the largest count below ``n0`` proven to miss (searched downwards)."""
    m = n0 - 1
    for _ in range(_DOWN_STEPS):
        if m < 1 or s.point(m, rate, "count-interval")["verdict"] == "missed":
            return m + 1
        m -= 1
    return m + 1  # not proven within the steps: the interval's low end is at most this


def _one_down_text(n: int, st: dict) -> str:
    if n <= 1:
        return "with its only replica down nothing serves: every request fails until it is back"
    word = {
        "met": "still meets every SLO (proven on the 95% interval)",
        "missed": "misses its SLO",
        "undecided": "is not proven to meet its SLO",
    }[st["verdict"]]
    att = st["attainment_interval_pct"]
    extra = (
        f"; SLO attainment {st['attainment_pct']:.1f}% (95% CI {att[0]:.1f}-{att[1]:.1f}%)"
        if att[0] is not None
        else ""
    )
    miss = misses_text(st, limit=2)
    return f"with one replica down ({n - 1} of {n} running) the fleet {word}{extra}" + (f": {miss}" if miss else "")


def _limit(s: CandidateSearch, top: dict, demand: float) -> tuple[str, str]:
    """Why no size meets the SLO: KV memory (rejections), the latency floor of an
    unloaded replica (compute), or plan.max_replicas."""
    warn = (top["summary"] or {}).get("warnings") or []
    if warn:
        return "memory", "KV-cache memory: " + warn[0]
    light = s.point(1, demand / s.spec.max_replicas * _UNLOADED, "latency-floor")
    if light["verdict"] == "missed":
        return "latency-floor", (
            f"compute: even one replica at {100 * _UNLOADED:g}% of its share of the load "
            f"(no queueing) misses: {misses_text(light, limit=2)}; no fleet size can meet it"
        )
    return "replicas", (
        f"capacity: an unloaded replica meets the targets, so more than {s.spec.max_replicas} "
        "replicas may; raise plan.max_replicas"
    )


def _headroom(s: CandidateSearch, n: int, demand: float, curve: list[dict]) -> tuple[float, float | None]:
    """(lo, hi) headroom in percent: highest rate proven met, lowest proven missed."""
    lo, hi, und = demand, None, []
    if s.point(n, demand, "headroom")["verdict"] != "met":
        return 0.0, None
    for p in curve:
        if p["rate_rps"] <= demand:
            continue
        if p["verdict"] == "met":
            lo = max(lo, p["rate_rps"])
        elif p["verdict"] == "missed":
            hi = p["rate_rps"] if hi is None else min(hi, p["rate_rps"])
        else:
            und.append(p["rate_rps"])
    x, doublings = max([lo] + und) * 1.25, 0
    while hi is None and doublings < 4:
        v = s.point(n, x, "headroom")["verdict"]
        if v == "met":
            lo = x
        elif v == "missed":
            hi = x
        else:
            und.append(x)
        x, doublings = x * 2, doublings + 1
    for step in range(s.spec.headroom_steps):
        und = [u for u in und if lo < u and (hi is None or u < hi)]
        if step % 2 == 1 and und and hi is not None:  # refine the upper end
            a, b = max(und), hi
        elif und or hi is not None:  # refine the lower end
            a, b = lo, (min(und) if und else hi)
        else:
            break
        mid = (a + b) / 2
        v = s.point(n, mid, "headroom")["verdict"]
        if v == "met":
            lo = max(lo, mid)
        elif v == "missed":
            hi = mid if hi is None else min(hi, mid)
        else:
            und.append(mid)
    pct = lambda r: round(100.0 * (r / demand - 1.0), 3)  # noqa: E731
    return pct(lo), (pct(hi) if hi is not None else None)


def _growth(s: CandidateSearch, n_peak: int, k: int, peak: float, rates: list[float]) -> list[dict]:
    """Each month's fleet: the fewest proven at its rate. Counts never fall as the rate
    rises (the monotonicity the search assumes), so the months are split at the middle
    one (by rate): its count is searched between the bounds its neighbours allow,
    starting at the queueing estimate ``ceil(n_peak * rate / peak)``, and every month
    between two months of the same count gets that count without a simulation."""
    order = sorted(range(len(rates)), key=lambda i: rates[i])
    found: dict[int, int | None] = {}
    below = [m for m in order if rates[m] < peak and not math.isclose(rates[m], peak, rel_tol=1e-9)]
    for m in order:
        if m not in below:
            found[m] = n_peak

    def solve(months: list[int], lo_n: int, hi_n: int) -> None:
        """Counts of ``months`` (rising rates), each in [lo_n, hi_n]; hi_n is proven at a higher rate."""
        if not months:
            return
        if lo_n >= hi_n:
            found.update((m, hi_n) for m in months)
            return
        mid = len(months) // 2
        r = rates[months[mid]]
        guess = min(hi_n, max(lo_n, math.ceil(n_peak * r / peak - 1e-9)))
        c = s.fewest(r, lo=lo_n - 1, role="growth", hi=hi_n, guess=guess)
        if c is None:  # none in [lo_n, hi_n) proven at this lower rate: hi_n, proven at a higher one, holds
            c = hi_n  # by the monotonicity this search assumes (the docstring)
        found[months[mid]] = c
        solve(months[:mid], lo_n, c)
        solve(months[mid + 1 :], c, hi_n)

    solve(below, 1, n_peak)
    out = []
    for m, r in enumerate(rates):
        n = found[m] + k if found[m] else None  # type: ignore[operator]  # found[m] is truthy here
        usd_h = (
            sum(p.replicas * p.gpus_per_replica * p.usd_per_gpu_hour for p in pool_costs(s.scenario(n, r)))
            if n
            else None
        )
        out.append(
            {
                "month": m + 1,
                "rate_rps": r,
                "replicas": n,
                "usd_per_month": usd_h * HOURS_PER_MONTH if usd_h is not None else None,
            }
        )
    return out
