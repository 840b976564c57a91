"""``plan.power``: does a candidate's fleet fit the racks and the site it would run in?

Per candidate the plan's found fleet (its first replication's ``summary.power``) gives servers and
their peak IT power (the highest of 24 bins of the window). Servers per rack = floor(rack_kw / a
server's peak kW); racks needed = ceil(servers / servers per rack); the site needs IT peak x PUE. A
candidate over any limit becomes ``does-not-fit`` with ``limiting: power`` and the limit named, and
the plan ranks the next one first.
"""

from __future__ import annotations

import math
from typing import Any

from sim.scenario.plan_spec import PlanPowerSpec

__all__ = ["candidate_power", "apply_power_budget", "with_site_pue"]


def candidate_power(power: dict, budget: PlanPowerSpec | None, pue: float) -> dict:
    """What the fleet of one candidate draws and needs under ``budget`` (``power``: its
    ``summary.power``); ``limit`` names the first budget it breaks (None: it fits)."""
    servers = int(power["servers"])
    server_peak = float(power["server_peak_kw"] or 0.0)
    it_peak, it_avg = float(power["it_peak_kw"]), float(power["it_avg_kw"])
    out: dict[str, Any] = {
        "servers": servers,
        "server_peak_kw": server_peak,
        "it_peak_kw": it_peak,
        "facility_peak_kw": it_peak * pue,
        "facility_avg_kw": it_avg * pue,
        "pue": pue,
        "servers_per_rack": None,
        "racks_needed": None,
        "rack_peak_kw": None,
        "limit": None,
    }
    if budget is None:
        return out
    limits = []
    if budget.rack_kw is not None:
        per_rack = int(math.floor(budget.rack_kw / server_peak + 1e-9)) if server_peak > 0 else servers
        out["servers_per_rack"] = per_rack
        if per_rack < 1:
            limits.append(
                f"power: one server draws {server_peak:,.1f} kW at peak, more than a rack's {budget.rack_kw:g} kW"
            )
        else:
            racks = int(math.ceil(servers / per_rack))
            out["racks_needed"] = racks
            out["rack_peak_kw"] = min(per_rack, servers) * server_peak
            if budget.racks is not None and racks > budget.racks:
                limits.append(f"power: needs {racks} racks of {budget.rack_kw:g} kW, {budget.racks} available")
    if budget.site_kw is not None and it_peak * pue > budget.site_kw:
        limits.append(
            f"power: needs {it_peak * pue:,.1f} kW at the site at peak ({it_peak:,.1f} kW IT x PUE {pue:g}), "
            f"{budget.site_kw:g} kW available"
        )
    out["limit"] = "; ".join(limits) or None
    return out


def apply_power_budget(records: list[dict], budget: PlanPowerSpec | None, default_pue: float) -> None:
    """Give every candidate that met its SLO its ``power``; reject those over ``budget``."""
    pue = budget.pue if budget is not None and budget.pue is not None else default_pue
    for rec in records:
        summary = rec.get("summary") or {}
        if rec["status"] != "ok" or not summary.get("power"):
            continue
        rec["power"] = candidate_power(summary["power"], budget, pue)
        if rec.get("power_intervals"):
            rec["power"]["intervals"] = rec["power_intervals"]
        if rec["power"]["limit"] is not None:
            rec.update(status="does-not-fit", limiting="power", reason=rec["power"]["limit"])


def with_site_pue(base: dict, budget: PlanPowerSpec | None) -> None:
    """``plan.power.pue`` is the site's PUE for every figure of the plan: the simulated
    scenarios (``base``, the plan's scenario without ``plan``) carry it as ``pricing.own.pue``, so
    their summaries, the recommended run and own-vs-rent all use it."""
    if budget is not None and budget.pue is not None:
        base.setdefault("pricing", {}).setdefault("own", {})["pue"] = budget.pue
