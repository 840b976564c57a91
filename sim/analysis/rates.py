"""The planned rate: the scenario's own peak, and its traffic rescaled to a rate."""

from __future__ import annotations

import copy

from sim.analysis.profile_curve import profile_curve
from sim.errors import FleetcastError
from sim.scenario.spec import Scenario

__all__ = ["base_rate_rps", "with_rate"]


def base_rate_rps(scenario: Scenario) -> float:
    """The scenario's own (peak) arrival rate, requests/s (surges not included): a diurnal
    curve's peak, a rate-profiled process's mean x its highest factor (the classes' own
    processes summed bin by bin), else the mean rate."""
    traffic = scenario.traffic
    if (curve := profile_curve(traffic.model_dump(mode="json"), str(scenario.path or "<scenario>"))) is not None:
        return curve.peak_rps
    a = traffic.arrival
    if a.process == "diurnal":
        return float(max(r for _, r in a.rate_points))
    if a.process == "trace":
        if a.target_rate_rps is None:
            raise FleetcastError(
                "a trace-driven scenario needs plan.demand (or arrival.target_rate_rps): "
                "the planner scales the trace to the demand rate"
            )
        return float(a.target_rate_rps)
    return float(traffic.total_rate_rps())  # type: ignore[arg-type]  # not a trace here: a poisson, gamma or constant process


def with_rate(data: dict, rate_rps: float) -> dict:
    """Scenario mapping ``data`` with its traffic scaled to ``rate_rps`` total
    (a diurnal curve or rate-profiled traffic so that its peak is ``rate_rps``; every rate
    multiplied by the same ratio, so the shape and the class mix are kept)."""
    data = copy.deepcopy(data)
    traffic = data["traffic"]
    a = traffic["arrival"]
    classes = traffic["classes"]
    if (curve := profile_curve(traffic)) is not None:
        ratio = rate_rps / curve.peak_rps
        if a["process"] == "by_class":
            for c in classes:
                c["arrival"]["rate_rps"] = c["arrival"]["rate_rps"] * ratio
        elif a.get("rate_rps") is not None:
            a["rate_rps"] = a["rate_rps"] * ratio
        else:
            for c in classes:
                c["rate_rps"] = c["rate_rps"] * ratio
        return data
    if a["process"] == "diurnal":
        peak = max(r for _, r in a["rate_points"])
        a["rate_points"] = [[h, r * rate_rps / peak] for h, r in a["rate_points"]]
    elif a["process"] == "trace":
        a["target_rate_rps"], a["time_scale"] = float(rate_rps), None
    elif a["process"] == "by_class":  # each class's own process, scaled together
        total = sum(c["arrival"]["rate_rps"] for c in classes)
        for c in classes:
            c["arrival"]["rate_rps"] = c["arrival"]["rate_rps"] * rate_rps / total
    elif all(c.get("rate_rps") is not None for c in classes):
        total = sum(c["rate_rps"] for c in classes)
        for c in classes:
            c["rate_rps"] = c["rate_rps"] * rate_rps / total
        a["rate_rps"] = None
    else:
        a["rate_rps"] = float(rate_rps)
    return data
