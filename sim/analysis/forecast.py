"""One forecast: simulate a scenario and summarize it (what ``run`` does)."""

from __future__ import annotations

from collections.abc import Callable

from sim.analysis.autoscale_metrics import autoscale_summary, mean_replicas
from sim.analysis.cpu_side_summary import cpu_side_summary, front_end_warnings
from sim.analysis.disagg_metrics import disagg_summary
from sim.analysis.metrics import ClassSlo, PoolCost, rejection_warnings, summarize
from sim.analysis.power_metrics import power_summary
from sim.engine.fleet import simulate
from sim.engine.result import SimResult
from sim.perf.pool_model import PoolModel
from sim.scenario.spec import Scenario

__all__ = ["forecast", "summary_of", "class_slos", "pool_costs"]


def class_slos(scenario: Scenario) -> list[ClassSlo]:
    out = []
    for c in scenario.traffic.classes:
        if c.slo is None:
            out.append(ClassSlo(name=c.name, targets={}, attainment_pct=None))
            continue
        targets = {m: dict(getattr(c.slo, m)) for m in ("ttft_s", "tpot_s", "e2e_s") if getattr(c.slo, m)}
        out.append(ClassSlo(name=c.name, targets=targets, attainment_pct=c.slo.attainment_pct))
    return out


def pool_costs(scenario: Scenario, catalog=None, mean_replicas: dict[str, float] | None = None) -> list[PoolCost]:
    """Price and power per pool; ``mean_replicas`` (autoscaled pool -> its mean provisioned
    count over the window) replaces ``replicas`` where given, so cost integrates replicas over time."""
    catalog = catalog or scenario.load_catalog()
    out = []
    for pool in scenario.fleet:
        gpu = catalog.gpu(pool.gpu)
        price = scenario.pricing.rent_usd_per_gpu_hour(pool.gpu, gpu.price_usd_per_hour)
        out.append(
            PoolCost(
                pool=pool.name,
                gpu=pool.gpu,
                replicas=(mean_replicas or {}).get(pool.name, pool.replicas),
                gpus_per_replica=pool.gpus_per_replica,
                usd_per_gpu_hour=float(price),
                watts_per_gpu=getattr(gpu, "power_w", None),
            )
        )
    return out


def timeline_bin_s(scenario: Scenario) -> float:
    """The autoscale timeline's bin: a diurnal day's 24th ("an hour of the day"), else a 24th of the run."""
    arrival = scenario.traffic.arrival
    return (arrival.day_length_s if arrival.process == "diurnal" else scenario.traffic.duration_s) / 24.0


def summary_of(scenario: Scenario, result: SimResult) -> dict:
    """The JSON-ready summary of ``result`` (a ``simulate`` result: its ``pools`` give the
    step-time sources and KV capacity), with the scenario's provenance."""
    costs = pool_costs(scenario, mean_replicas=mean_replicas(result))
    summary = summarize(result, class_slos(scenario), costs)
    summary["scenario"] = {
        "name": scenario.name,
        "seed": scenario.seed,
        "path": str(scenario.path) if scenario.path else None,
    }
    # the pool models the run was built on (SimResult.pools): nothing is rebuilt here
    summary["profiles"] = {p.name: p.source for p in result.pools}
    summary["kv_capacity"] = {p.name: p.kv_capacity() for p in result.pools}
    summary["sim"] = {"end_s": result.end_s, "requests": int(len(result.requests))}
    summary["cpu_side"] = cpu_side_summary(result)
    disagg = disagg_summary(scenario, result)
    if disagg is not None:  # only then: a co-located run keeps its summary as it was
        summary["disaggregated"] = disagg
    scaled = autoscale_summary(
        result, costs, {p.name: p.max_replicas for p in scenario.fleet}, class_slos(scenario), timeline_bin_s(scenario)
    )
    if scaled is not None:  # only then: a fixed fleet's summary stays as it was
        summary["autoscale"] = scaled
    summary["power"] = power_summary(scenario, result, summary["overall"]["output_tokens_per_s"])
    warnings = rejection_warnings(summary) + front_end_warnings(summary["cpu_side"])
    if warnings:  # only then: a run without rejections keeps its summary as it was
        summary["warnings"] = warnings
    return summary


def forecast(
    scenario: Scenario,
    *,
    exact_steps: bool = False,
    progress: Callable[[int, int], None] | None = None,
    pools: list[PoolModel] | None = None,
) -> tuple[SimResult, dict]:
    """``simulate`` the scenario and summarize it; ``pools``, if given, are its ``build_pool_models``
    (already built by the caller: the run uses them instead of building them again)."""
    result = simulate(scenario, exact_steps=exact_steps, progress=progress, pools=pools)
    return result, summary_of(scenario, result)
