"""Own vs rent in words and tables, shared by the HTML, PDF and XLSX writers.

The numbers come from ``sim.analysis.ownership``; this module only says them:
the summary sentence (which is cheaper and by how much), the side-by-side
table, and the assumptions behind it with their sources.
"""

from __future__ import annotations

from sim.analysis.ownership import OwnVsRent, own_vs_rent_from_summary
from sim.catalog import Catalog
from sim.report import fmt
from sim.scenario.pricing_spec import OWN_DEFAULT_BASIS, OwnershipSpec

__all__ = [
    "compute_own_vs_rent",
    "own_rent_sentence",
    "own_rent_rows",
    "own_rent_assumptions",
    "POWER_RULE",
    "MEASURED_POWER_RULE",
]

POWER_RULE = (
    "GPU board power (catalog power_w, TDP) × the measured busy fraction (share of the time an engine "
    "step runs; idle GPUs counted at 0 W, stepping GPUs at TDP) × PUE; host CPUs and networking are "
    "not in power_w"
)

MEASURED_POWER_RULE = (
    "each GPU's mean power over the window from its engine steps (idle + active + FLOP and HBM-traffic terms "
    "fitted to ML.ENERGY Benchmark v3, sim.perf.power) plus its share of the server's host power "
    "(CPUs, memory, NICs, fans), × PUE"
)


def compute_own_vs_rent(summary: dict | None, scenario: dict, catalog: Catalog, notes: list[str]) -> OwnVsRent | None:
    """The comparison for a run summary with the scenario's ``pricing.own``; None (and a
    note) when it cannot be made."""
    if not summary or not (summary.get("cost") or {}).get("pools"):
        return None
    raw = (scenario.get("pricing") or {}).get("own") or {}
    try:
        own = OwnershipSpec.model_validate(raw)
    except ValueError as exc:
        notes.append(f"pricing.own could not be read ({exc}); the own-vs-rent comparison uses its defaults")
        own = OwnershipSpec()
    try:
        result = own_vs_rent_from_summary(summary, own, catalog)
    except Exception as exc:  # a GPU missing from the catalog the report could load
        notes.append(f"own vs rent not computed: {exc}")
        return None
    if result is None:
        notes.append(
            "own vs rent not computed: a GPU of the fleet has no purchase price or power figure in "
            "the catalog (add purchase_usd / power_w, or pricing.own.purchase_usd_per_gpu)"
        )
    return result


def _gpu_text(r: OwnVsRent) -> str:
    return " + ".join(
        f"{p.gpus:,} × {p.gpu}"
        + ("" if p.rent_gpus is None else f", the autoscaled pool's maximum, rented {p.rent_gpus:,.2f} on average")
        for p in r.pools
    )


def own_rent_sentence(r: OwnVsRent) -> str:
    """One paragraph: both monthly costs, both per 1M output tokens, the cheaper one and by how much."""
    months = f"{r.own.amortization_months:g}"
    own_tok, rent_tok = fmt.usd_small(r.own_usd_per_1m_output_tokens), fmt.usd_small(r.rent_usd_per_1m_output_tokens)
    head = (
        f"Bought instead of rented, the same GPUs ({_gpu_text(r)}, {fmt.usd(r.purchase_usd)} with their "
        f"servers) would cost {fmt.usd(r.own_usd_per_month)} per month written off over {months} months, "
        f"including hosting and electricity ({own_tok} per million output tokens), against "
        f"{fmt.usd(r.rent_usd_per_month)} per month rented ({rent_tok})."
    )
    if r.cheaper == "same":
        return head + " Both cost the same."
    who = "Owning" if r.cheaper == "own" else "Renting"
    tail = f" {who} is cheaper by {fmt.usd(r.saving_usd_per_month)} per month ({fmt.pct(r.saving_pct, 0)})"
    if r.cheaper == "own" and r.breakeven_months is not None:
        tail += f"; the purchase pays for itself after {r.breakeven_months:,.1f} months of use"
    elif r.cheaper == "rent" and r.breakeven_months is not None:
        tail += (
            f"; owning would only pay off after {r.breakeven_months:,.1f} months, beyond the {months}-month write-off"
        )
    return head + tail + "."


def own_rent_rows(r: OwnVsRent) -> list[tuple[str, float | None, float | None]]:
    """(item, own, rent) rows in USD; None where the item does not apply."""
    return [
        ("purchase (GPUs with their servers)", r.purchase_usd, None),
        (f"amortisation per month ({r.own.amortization_months:g} months)", r.own_amortization_usd_per_month, None),
        ("hosting and maintenance per month", r.own_hosting_usd_per_month, None),
        (f"electricity per month ({r.own_power_kw:,.2f} kW with PUE)", r.own_electricity_usd_per_month, None),
        ("rented GPU-hours per month", None, r.rent_usd_per_month),
        ("total per month", r.own_usd_per_month, r.rent_usd_per_month),
        ("per 1M output tokens", r.own_usd_per_1m_output_tokens, r.rent_usd_per_1m_output_tokens),
    ]


def _basis(own: OwnershipSpec, name: str) -> str:
    default = OwnershipSpec.model_fields[name].default
    if getattr(own, name) != default:
        return f"set in the scenario (pricing.own.{name})"
    return OWN_DEFAULT_BASIS[name]


def own_rent_assumptions(r: OwnVsRent) -> list[tuple[str, str, str]]:
    """(assumption, value, source) rows."""
    o = r.own
    rows = []
    for p in r.pools:
        rows += [
            (f"purchase per GPU, {p.gpu}", fmt.usd(p.purchase_usd_per_gpu), p.purchase_source),
            (
                f"rented price per GPU-hour, {p.gpu}",
                fmt.usd_small(p.rent_usd_per_gpu_hour),
                "scenario pricing / catalog price_usd_per_hour (an assumption, not a quote)",
            ),
        ]
        if p.measured_power:
            rows += [
                (
                    f"mean power per GPU, pool {p.pool}",
                    f"{p.power_w_per_gpu:,.0f} W",
                    "the simulation's engine steps under the ML.ENERGY-fitted GPU curve (summary.json power)",
                ),
                (
                    f"host power per GPU, pool {p.pool}",
                    f"{p.host_w_per_gpu:,.0f} W",
                    "the server's non-GPU draw shared over its GPUs (summary.json power.pools.*.host_basis)",
                ),
            ]
        else:
            rows += [
                (f"board power per GPU, {p.gpu}", f"{p.power_w_per_gpu:,.0f} W", "catalog power_w (datasheet TDP)"),
                (
                    f"measured busy fraction, pool {p.pool}",
                    fmt.pct(100 * min(max(p.busy_frac, 0.0), 1.0), 0),
                    "the simulation: share of the measured window with an engine step running",
                ),
            ]
    rows += [
        ("amortisation period", f"{o.amortization_months:g} months", _basis(o, "amortization_months")),
        (
            "hosting and maintenance",
            f"{o.hosting_pct_per_year:g}% of the purchase per year",
            _basis(o, "hosting_pct_per_year"),
        ),
        ("PUE", f"{o.pue:g}", _basis(o, "pue")),
        ("electricity", f"${o.usd_per_kwh:g} per kWh", _basis(o, "usd_per_kwh")),
        (
            ("power rule", "measured curve + host × PUE", MEASURED_POWER_RULE)
            if any(p.measured_power for p in r.pools)
            else ("power rule", "TDP × busy × PUE", POWER_RULE)
        ),
        (
            "tokens",
            f"{fmt.num(r.output_tokens_per_s, 0)} output tokens/s",
            "the simulated fleet's measured output rate at the forecast peak, as if it ran all month (both "
            "sides use the same rate)",
        ),
        ("hours per month", "730", "fleetcast's cost convention (sim.analysis.metrics.HOURS_PER_MONTH)"),
    ]
    return rows
