"""The scenario's ``pricing:`` section: what renting and what owning cost.

``pricing:`` maps GPU names to a rented price in USD per GPU-hour (over the
catalog's ``price_usd_per_hour``), as it always has; its one reserved key,
``own:``, holds what buying the GPUs instead would cost (``OwnershipSpec``):
the purchase price per GPU (over the catalog's ``purchase_usd``), the
amortisation period, hosting/maintenance, the data centre's PUE and the price
of electricity. The report compares the two (``sim.analysis.ownership``).

Each default below is an assumption with the basis named in its description;
``OWN_DEFAULT_BASIS`` repeats it for the report's assumptions table.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OwnershipSpec", "PricingSpec", "OWN_DEFAULT_BASIS"]

_Price = Annotated[float, Field(ge=0, le=1e6)]

#: field -> where its default comes from (shown beside the value in reports).
OWN_DEFAULT_BASIS = {
    "amortization_months": "assumption: 3-year straight-line write-off of GPU servers, a common (conservative) "
    "depreciation period; set pricing.own.amortization_months",
    "hosting_pct_per_year": "assumption: rack space, networking and a hardware support contract at ~10% of the "
    "purchase price per year; set 0 to leave out",
    "pue": "assumption: a modern colocation hall; the Uptime Institute Global Data Center Survey 2023 reports an "
    "industry-average PUE of 1.58, large new facilities run at 1.1-1.4",
    "grid_g_co2_per_kwh": "U.S. EIA, 'How much carbon dioxide is produced per kilowatthour of U.S. electricity "
    "generation?' (FAQ): about 0.81 lb CO2 per kWh in 2023, all US generation (~367 g); CO2 only, not CO2e; set "
    "pricing.grid_g_co2_per_kwh for your grid",
    "usd_per_kwh": "assumption: between the US average retail electricity prices for industrial (~$0.08) and "
    "commercial (~$0.13) customers in 2023 (U.S. EIA, Electric Power Monthly)",
}


class OwnershipSpec(BaseModel):
    """What owning the GPUs costs: the purchase amortised over a period, plus
    hosting and electricity (GPU board power x measured busy fraction x PUE)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    amortization_months: float = Field(
        36.0,
        gt=0,
        le=240,
        description=(
            "Months over which the purchase is written off, straight line. Default 36 (an assumption: a 3-year "
            "write-off, a common conservative depreciation period for GPU servers)."
        ),
    )
    hosting_pct_per_year: float = Field(
        10.0,
        ge=0,
        le=200,
        description=(
            "Hosting and maintenance per year, percent of the purchase price. Default 10 (an assumption: rack space, "
            "networking, hardware support); 0 leaves it out."
        ),
    )
    pue: float = Field(
        1.3,
        ge=1.0,
        le=5.0,
        description=(
            "Power usage effectiveness of the data centre: facility power / IT power. Default 1.3 (an assumption; the "
            "Uptime Institute's 2023 survey average is 1.58)."
        ),
    )
    usd_per_kwh: float = Field(
        0.10,
        ge=0,
        le=10,
        description=(
            "Electricity price, USD per kWh. Default 0.10 (an assumption between the US EIA's 2023 average industrial "
            "and commercial retail prices)."
        ),
    )
    purchase_usd_per_gpu: dict[str, Annotated[float, Field(gt=0, le=1e8)]] = Field(
        default_factory=dict,
        description=(
            "Purchase price of one GPU including its server share, USD, by GPU name; overrides the catalog's "
            "purchase_usd (an assumption where no list price exists)."
        ),
    )


class PricingSpec(BaseModel):
    """Prices: each GPU name maps to a rented price in USD per GPU-hour (over
    the catalog's typical on-demand price); the reserved key ``own`` holds what
    owning the GPUs would cost instead."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, _Price]
    grid_g_co2_per_kwh: float = Field(
        367.0,
        ge=0,
        le=2000,
        description=(
            "Carbon intensity of the electricity, grams CO2 per kWh, for the carbon figures. Default 367 (the US "
            "average of 2023, U.S. EIA: ~0.81 lb CO2 per kWh of generation; CO2 only)."
        ),
    )
    own: OwnershipSpec = Field(
        default_factory=OwnershipSpec,
        description=(
            "What buying the GPUs would cost (purchase, amortisation, hosting, PUE, electricity), for the report's "
            "own-vs-rent comparison; every other key of pricing: is a GPU name and its USD per GPU-hour."
        ),
    )

    @property
    def usd_per_gpu_hour(self) -> dict[str, float]:
        """GPU name -> rented USD per GPU-hour set in the scenario."""
        return {str(k): float(v) for k, v in (self.__pydantic_extra__ or {}).items()}

    def rent_usd_per_gpu_hour(self, gpu: str, default: float) -> float:
        """The scenario's price for ``gpu``, else ``default`` (the catalog's)."""
        return self.usd_per_gpu_hour.get(gpu, default)
