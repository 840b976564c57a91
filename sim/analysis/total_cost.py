"""Ranking by the total cost of owning, energy included (``plan.rank_by: own``).

A rented GPU-hour includes its electricity; an owned fleet pays for it apart. With
``plan.rank_by: own`` (own vs rent is set to own) the plan ranks the candidates that met the
SLO by what owning each found fleet costs a month: amortisation + hosting + electricity
(``sim.analysis.ownership.own_vs_rent_from_summary``: the candidate's measured mean GPU power, its
hosts, the PUE and ``usd_per_kwh``), not by its rent. Every such candidate is then searched to the
end (the rent bound that prunes the others does not bound the owned cost). ``pricing.own`` gives
the prices (defaults otherwise). It is a switch of its own, not implied by ``pricing.own``: that
section also sets the report's own-vs-rent comparison of a plan ranked by rent. The default
(``rent``) changes nothing. A candidate whose GPU has no purchase price keeps the rent ranking for all, with a
warning.
"""

from __future__ import annotations

from sim.analysis.ownership import own_vs_rent_from_summary
from sim.catalog import Catalog
from sim.scenario.spec import Scenario

__all__ = ["ranks_by_total_cost", "apply_total_cost"]


def ranks_by_total_cost(scenario: Scenario) -> bool:
    """True when the plan ranks by the owned total (``plan.rank_by: own``)."""
    return scenario.plan is not None and scenario.plan.rank_by == "own"


def apply_total_cost(records: list[dict], scenario: Scenario, catalog: Catalog) -> str | None:
    """Give each ``ok`` record with a summary ``total_usd_per_month`` (owning it: amortisation +
    hosting + electricity) and ``energy_usd_per_month``; a warning (and no totals) when some
    candidate's total cannot be computed."""
    ok = [r for r in records if r["status"] == "ok" and r.get("summary")]
    totals = {}
    for r in ok:
        ovr = own_vs_rent_from_summary(r["summary"], scenario.pricing.own, catalog)
        if ovr is None:
            return (
                f"the plan ranks by rent, not by the total cost of owning: candidate {r['id']} has no purchase "
                "price (catalog purchase_usd, or pricing.own.purchase_usd_per_gpu) or no power figure"
            )
        totals[r["id"]] = (ovr.own_usd_per_month, ovr.own_electricity_usd_per_month)
    for r in ok:
        r["total_usd_per_month"], r["energy_usd_per_month"] = totals[r["id"]]
    return None
