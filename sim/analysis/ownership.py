"""Own vs rent: what the same fleet costs bought outright instead of rented.

Per pool of a run's summary (GPU type, GPU count, rented $/GPU-hour, measured
busy fraction), with ``pricing.own`` (``OwnershipSpec``) and the catalog's
``purchase_usd`` and ``power_w``:

- purchase      = GPUs x purchase price per GPU (server share included)
- amortisation  = purchase / ``amortization_months``                  per month
- hosting       = purchase x ``hosting_pct_per_year`` / 100 / 12      per month
- power, kW     = GPUs x (mean W per GPU + host W per GPU) / 1000 x ``pue``
                  (no ``power`` block: GPUs x ``power_w`` / 1000 x busy fraction x ``pue``)
- electricity   = power kW x ``HOURS_PER_MONTH`` x ``usd_per_kwh``    per month
- own           = amortisation + hosting + electricity                per month
- rent          = GPUs x rented $/GPU-hour x ``HOURS_PER_MONTH``       per month
- $ per 1M output tokens = $/month x 10^6 / (output tokens/s x 3,600 x ``HOURS_PER_MONTH``)

The power rule, for a summary with a ``power`` block (every simulated run since issue 27): each
GPU draws its mean power under the ML.ENERGY-fitted curve (``sim.perf.power``; ``power.pools.*
.gpu_avg_w_per_gpu``) plus its share of the server's host power, and ``pue`` adds the facility's
cooling and losses. For a summary without one (older runs, testbed runs): a GPU draws its board
power (TDP) while its replica runs an engine step and nothing while idle; the measured busy fraction
(share of the window with a step running) scales it, hosts left out. Tokens/s is the
run's measured output rate, as if the measured load ran all month (the same
assumption the rented $ per 1M tokens makes, so the two compare like for like).
Break-even: the months after which buying (purchase + hosting + electricity)
has cost less than renting, ``purchase / (rent - hosting - electricity)``.

An autoscaled pool is bought at its ``max_replicas`` (owned GPUs cannot be handed back when
the load falls) but rented at its mean provisioned count; its power counts the mean count
(spares powered off).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.analysis.metrics import HOURS_PER_MONTH
from sim.catalog import Catalog
from sim.scenario.pricing_spec import OwnershipSpec

__all__ = ["PoolOwnership", "OwnVsRent", "own_vs_rent", "own_vs_rent_from_summary"]


@dataclass(frozen=True)
class PoolOwnership:
    """One pool's inputs to the comparison."""

    pool: str
    gpu: str
    gpus: int
    purchase_usd_per_gpu: float
    purchase_source: str  # "catalog purchase_usd (...)" or "scenario pricing.own.purchase_usd_per_gpu"
    power_w_per_gpu: float
    busy_frac: float  # measured, clamped to [0, 1]
    rent_usd_per_gpu_hour: float
    # an autoscaled pool rents its mean provisioned GPUs but must own its maximum (owned GPUs
    # cannot be given back at night); None: rents what it owns
    rent_gpus: float | None = None
    # summaries with a ``power`` block: power_w_per_gpu is the measured-curve mean (busy_frac 1.0)
    # and the host's share per GPU is added; else the TDP x busy rule
    host_w_per_gpu: float = 0.0
    measured_power: bool = False

    @property
    def rented_gpus(self) -> float:
        """GPUs rented on average: ``rent_gpus``, else ``gpus``."""
        return self.gpus if self.rent_gpus is None else self.rent_gpus


@dataclass(frozen=True)
class OwnVsRent:
    """Monthly costs of owning and of renting the same fleet, and which is cheaper."""

    pools: tuple[PoolOwnership, ...]
    own: OwnershipSpec
    output_tokens_per_s: float | None
    purchase_usd: float
    own_amortization_usd_per_month: float
    own_hosting_usd_per_month: float
    own_power_kw: float
    own_electricity_usd_per_month: float
    own_usd_per_month: float
    rent_usd_per_month: float
    own_usd_per_1m_output_tokens: float | None
    rent_usd_per_1m_output_tokens: float | None
    cheaper: str  # "own" | "rent" | "same"
    saving_usd_per_month: float  # >= 0: how much less the cheaper option costs
    saving_pct: float  # of the dearer option's monthly cost
    breakeven_months: float | None  # None when owning never pays off


def _per_1m(usd_per_month: float, tok_s: float | None) -> float | None:
    if not tok_s or tok_s <= 0:
        return None
    return usd_per_month * 1e6 / (tok_s * 3600.0 * HOURS_PER_MONTH)


def own_vs_rent(pools: list[PoolOwnership], own: OwnershipSpec, output_tokens_per_s: float | None) -> OwnVsRent:
    """The comparison for ``pools`` (see the module docstring for every formula)."""
    purchase = sum(p.gpus * p.purchase_usd_per_gpu for p in pools)
    amort = purchase / own.amortization_months
    hosting = purchase * own.hosting_pct_per_year / 100.0 / 12.0
    # power: the GPUs in service (an autoscaled pool's owned spares are taken as powered off)
    kw = (
        sum(
            p.rented_gpus * (p.power_w_per_gpu * min(max(p.busy_frac, 0.0), 1.0) + p.host_w_per_gpu) / 1000.0
            for p in pools
        )
        * own.pue
    )
    electricity = kw * HOURS_PER_MONTH * own.usd_per_kwh
    own_month = amort + hosting + electricity
    rent_month = sum(p.rented_gpus * p.rent_usd_per_gpu_hour for p in pools) * HOURS_PER_MONTH
    diff = rent_month - own_month
    cheaper = "same" if abs(diff) < 0.005 else "own" if diff > 0 else "rent"
    dearer = max(own_month, rent_month)
    opex = hosting + electricity
    return OwnVsRent(
        pools=tuple(pools),
        own=own,
        output_tokens_per_s=output_tokens_per_s,
        purchase_usd=purchase,
        own_amortization_usd_per_month=amort,
        own_hosting_usd_per_month=hosting,
        own_power_kw=kw,
        own_electricity_usd_per_month=electricity,
        own_usd_per_month=own_month,
        rent_usd_per_month=rent_month,
        own_usd_per_1m_output_tokens=_per_1m(own_month, output_tokens_per_s),
        rent_usd_per_1m_output_tokens=_per_1m(rent_month, output_tokens_per_s),
        cheaper=cheaper,
        saving_usd_per_month=abs(diff),
        saving_pct=100.0 * abs(diff) / dearer if dearer else 0.0,
        breakeven_months=purchase / (rent_month - opex) if rent_month > opex else None,
    )


def own_vs_rent_from_summary(summary: dict, own: OwnershipSpec, catalog: Catalog) -> OwnVsRent | None:
    """The comparison for the fleet a ``summarize`` dict describes; None when a
    pool's GPU has no purchase price or no power figure."""
    cost = summary.get("cost") or {}
    util = (summary.get("utilization") or {}).get("pools") or {}
    scaled = ((summary.get("autoscale") or {}).get("pools")) or {}
    pools = []
    for name, row in (cost.get("pools") or {}).items():
        gpu = catalog.gpu(row["gpu"])
        set_price = own.purchase_usd_per_gpu.get(row["gpu"])
        price = set_price if set_price is not None else gpu.purchase_usd
        if not price or not gpu.power_w:
            return None
        source = (
            "scenario pricing.own.purchase_usd_per_gpu"
            if set_price is not None
            else f"catalog purchase_usd: {catalog.source_of('gpu', row['gpu']).get('purchase_usd', '')}"
        )
        busy = (util.get(name) or {}).get("busy_frac")
        a = scaled.get(name)
        owned = int(a["max_replicas"]) * int(row["gpus_per_replica"]) if a else int(row["gpus"])
        measured = ((summary.get("power") or {}).get("pools") or {}).get(name) or {}
        mean_w = measured.get("gpu_avg_w_per_gpu")
        host_w = (
            measured["host_w_per_server"] * measured["servers"] / measured["gpus"]
            if mean_w is not None and measured.get("gpus")
            else 0.0
        )
        pools.append(
            PoolOwnership(
                pool=name,
                gpu=row["gpu"],
                gpus=owned,
                purchase_usd_per_gpu=float(price),
                purchase_source=source,
                power_w_per_gpu=float(gpu.power_w) if mean_w is None else float(mean_w),
                busy_frac=(1.0 if busy is None else float(busy)) if mean_w is None else 1.0,
                rent_usd_per_gpu_hour=float(row["usd_per_gpu_hour"]),
                rent_gpus=float(row["gpus"]) if a else None,
                host_w_per_gpu=float(host_w),
                measured_power=mean_w is not None,
            )
        )
    if not pools:
        return None
    return own_vs_rent(pools, own, (summary.get("overall") or {}).get("output_tokens_per_s"))
