"""The scenario's ``plan:`` section: what ``fleetcast plan`` searches.

``plan.candidates`` is a cross product (GPU x model x quantization x tensor
parallel size x batching policy x engine knobs) applied to one pool of the
fleet (``plan.pool``); for each candidate the planner finds the fewest
replicas of that pool meeting every class's SLO at ``plan.demand``. Unknown
keys are errors; every field is bounded and documented (``fleetcast schema``
renders these descriptions).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.errors import unknown_name
from sim.scenario.disagg_spec import DisaggCandidates
from sim.scenario.fleet_spec import EngineSpec

__all__ = ["CandidateGrid", "DemandSpec", "FailureSpec", "PlanPowerSpec", "PlanSpec", "WEIGHT_SCHEMES"]

WEIGHT_SCHEMES = ("bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq")
_Weights = Literal["bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq"]
_CFG = ConfigDict(extra="forbid", frozen=True)


class PlanQuantization(BaseModel):
    """One quantization candidate given in full (weights and KV-cache dtype)."""

    model_config = _CFG
    weights: _Weights = Field("bf16", description="Weight format: bf16, fp16, fp8, int8, int4-awq or int4-gptq.")
    kv_cache: Literal["auto", "fp8"] = Field("auto", description="KV-cache dtype: auto (16-bit) or fp8.")


class PlanPowerSpec(BaseModel):
    """Power the fleet must fit in (any subset): per rack, racks, whole site, and the site's PUE."""

    model_config = _CFG
    rack_kw: Optional[float] = Field(
        None, gt=0, le=10_000, description="IT power one rack can take, kW (servers per rack follow at peak power)."
    )
    racks: Optional[int] = Field(None, ge=1, le=1_000_000, description="Racks available (with rack_kw).")
    site_kw: Optional[float] = Field(
        None, gt=0, le=10_000_000, description="Facility power available to the fleet, kW (IT power x PUE)."
    )
    pue: Optional[float] = Field(
        None, ge=1.0, le=5.0, description="Power usage effectiveness of the site (default: pricing.own.pue)."
    )

    @model_validator(mode="after")
    def _racks_need_rack_kw(self) -> PlanPowerSpec:
        if self.racks is not None and self.rack_kw is None:
            raise ValueError("plan.power.racks needs plan.power.rack_kw (the kW one rack can take)")
        return self


class CandidateGrid(BaseModel):
    """Values to try for the planned pool; the candidates are their cross
    product. An omitted key keeps the pool's own value; an empty list is an
    error (no candidates)."""

    model_config = _CFG
    gpu: Optional[list[str]] = Field(
        None, max_length=64, description="GPU types from the catalog, e.g. [h100-sxm, a100-80gb, l40s]."
    )
    model: Optional[list[str]] = Field(
        None, max_length=64, description="Models from the catalog (default: the pool's model)."
    )
    quantization: Optional[list[Union[_Weights, PlanQuantization]]] = Field(
        None,
        max_length=64,
        description="Quantization schemes: a weight format name (KV cache auto) or a mapping {weights, kv_cache}.",
    )
    tensor_parallel: Optional[list[Literal[1, 2, 4, 8, 16]]] = Field(
        None, max_length=5, description="Tensor-parallel sizes (GPUs per replica)."
    )
    policy: Optional[list[str]] = Field(
        None,
        max_length=16,
        description="Batching policy names (continuous, prefill-first, static, priority); params stay the pool's.",
    )
    data_parallel: Optional[list[Annotated[int, Field(ge=1, le=64)]]] = Field(
        None,
        max_length=8,
        description="Data-parallel ranks per replica to try (MoE layouts, as fleet[].data_parallel), e.g. [1, 2].",
    )
    expert_parallel: Optional[list[bool]] = Field(
        None,
        max_length=2,
        description="Expert parallelism off/on to try (as fleet[].expert_parallel), e.g. [false, true].",
    )
    power_limit_w: Optional[
        Union[
            list[Optional[Annotated[float, Field(gt=0, le=10_000)]]],
            dict[str, list[Optional[Annotated[float, Field(gt=0, le=10_000)]]]],
        ]
    ] = Field(
        None,
        description="GPU power limits to try, W (as fleet[].power_limit_w; null: no limit), e.g. [null, 500]; or "
        "per GPU, {h100-sxm: [null, 500]} (a GPU not named keeps the pool's limit). Each must lie in the GPU's "
        "catalog range.",
    )
    engine: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="vLLM engine knobs to try, each a list of values, e.g. {max_num_seqs: [128, 256]}; names as in fleet[].engine.",
    )
    disaggregated: Optional[DisaggCandidates] = Field(
        None,
        description="Also try the pool split into prefill and decode pools (disaggregated serving) at these "
        "prefill:decode ratios, over a catalog KV-transfer link; co-located candidates stay unless colocated: false.",
    )

    @field_validator("engine")
    @classmethod
    def _engine_knobs(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key in v:
            if key not in EngineSpec.model_fields:
                raise ValueError(unknown_name("engine knob", key, EngineSpec.model_fields))
        return v

    def dimensions(self) -> dict[str, list]:
        """The given dimensions (name -> values), engine knobs as ``engine.<knob>``."""
        out: dict[str, list] = {}
        for name in ("gpu", "model", "quantization", "tensor_parallel", "policy", "data_parallel", "expert_parallel"):
            values = getattr(self, name)
            if values is not None:
                out[name] = list(values)
        for knob, values in self.engine.items():
            out[f"engine.{knob}"] = list(values)
        if isinstance(self.power_limit_w, list):
            out["power_limit_w"] = list(self.power_limit_w)
        return out

    def power_limits_for(self, gpu: str, own: float | None) -> list[float | None]:
        """The power limits to try on ``gpu`` (``own``: the pool's, when the grid gives none)."""
        pl = self.power_limit_w
        if pl is None:
            return [own]
        values = pl if isinstance(pl, list) else pl.get(gpu, [own])
        out: list[float | None] = []
        for v in values:
            if v not in out:
                out.append(v)
        return out

    def size(self) -> int:
        """Number of candidates (0 when some dimension is an empty list)."""
        d = self.disaggregated
        layouts = 1 if d is None else len(d.prefill_decode_ratios) + int(d.colocated)
        n = math.prod(len(v) for v in self.dimensions().values()) * layouts
        if isinstance(self.power_limit_w, dict):  # per GPU: each GPU's own count of limits
            if self.gpu:
                n = n // len(self.gpu) * sum(len(self.power_limits_for(g, None)) for g in self.gpu)
            else:  # the pool's GPU, not known here: at most the longest list
                n *= max((len(v) for v in self.power_limit_w.values()), default=1)
        return n


class DemandSpec(BaseModel):
    """The load the fleet must carry: a peak rate, or a monthly growth
    forecast (month m, 1-based, runs at start_rate_rps * (1 + g/100)^(m-1)).
    Omitted entirely: the scenario's own arrival rate. The rate scales the
    scenario's traffic (arrival.rate_rps, or every class's rate_rps in
    proportion, a diurnal curve so its peak is the rate, a trace's
    target_rate_rps)."""

    model_config = _CFG
    peak_rate_rps: Optional[float] = Field(
        None, gt=0, le=1e6, description="Peak arrival rate the fleet must serve within SLO, requests/s."
    )
    start_rate_rps: Optional[float] = Field(
        None, gt=0, le=1e6, description="Growth forecast: the rate in month 1, requests/s."
    )
    monthly_growth_pct: Optional[float] = Field(
        None, ge=-90, le=1000, description="Growth forecast: rate change per month, percent (compounding)."
    )
    months: Optional[int] = Field(None, ge=1, le=120, description="Growth forecast: number of months to plan, 1..120.")

    @model_validator(mode="after")
    def _one_form(self) -> DemandSpec:
        growth = [self.start_rate_rps, self.monthly_growth_pct, self.months]
        if self.peak_rate_rps is not None and any(x is not None for x in growth):
            raise ValueError(
                "give demand.peak_rate_rps or a growth forecast (start_rate_rps, monthly_growth_pct, months), not both"
            )
        if any(x is not None for x in growth) and not all(x is not None for x in growth):
            raise ValueError("a growth forecast needs all of start_rate_rps, monthly_growth_pct and months")
        if self.peak_rate_rps is None and self.start_rate_rps is None:
            raise ValueError("demand needs peak_rate_rps, or start_rate_rps + monthly_growth_pct + months")
        return self

    @property
    def is_growth(self) -> bool:
        return self.start_rate_rps is not None

    def monthly_rates(self) -> list[float]:
        """Rate of each month (growth forecast), requests/s; [] for a peak rate."""
        if not self.is_growth:
            return []
        g = 1.0 + self.monthly_growth_pct / 100.0  # type: ignore[operator]  # _one_form: all three are set
        return [self.start_rate_rps * g**m for m in range(self.months)]  # type: ignore[operator, arg-type]  # as above

    def peak(self) -> float:
        """The highest rate to plan for, requests/s."""
        return float(self.peak_rate_rps) if not self.is_growth else max(self.monthly_rates())  # type: ignore[arg-type]  # _one_form


class FailureSpec(BaseModel):
    """Failure headroom: the SLOs must hold with this much of the fleet down
    (steady state: the fleet is sized so that ``replicas - down`` replicas
    meet every SLO). Give ``replicas_down`` or ``nodes_down``, not both."""

    model_config = _CFG
    replicas_down: Optional[int] = Field(
        None,
        ge=0,
        le=1000,
        description="Replicas that may be down at the peak while every SLO still holds (n + k sizing).",
    )
    nodes_down: Optional[int] = Field(
        None,
        ge=0,
        le=100,
        description="Servers that may be down: each takes floor(gpus_per_node / tensor_parallel) replicas with it (catalog gpus_per_node).",
    )

    @model_validator(mode="after")
    def _one(self) -> FailureSpec:
        if self.replicas_down is not None and self.nodes_down is not None:
            raise ValueError("give failures.replicas_down or failures.nodes_down, not both")
        return self


class PlanSpec(BaseModel):
    """What ``fleetcast plan`` searches: candidates for one pool, the demand,
    the replica cap, and how long each search point simulates."""

    model_config = _CFG
    candidates: CandidateGrid = Field(
        default_factory=CandidateGrid, description="Values to try for the planned pool (cross product)."
    )
    demand: Optional[DemandSpec] = Field(
        None, description="Peak rate or growth forecast; omitted = the scenario's arrival rate."
    )
    max_replicas: int = Field(
        64,
        ge=1,
        le=10_000,
        description="Largest replica count tried; a candidate missing its SLO there is 'cannot-meet-slo'.",
    )
    pool: int = Field(
        0, ge=0, le=1000, description="Index of the fleet pool the candidates replace (other pools stay as they are)."
    )
    duration_s: Optional[float] = Field(
        None,
        gt=0,
        le=1e8,
        description="Simulate each search point for this long (warm-up and cool-down included) instead of the length derived from tail_samples; an error when its window holds fewer samples than a class's highest percentile needs.",
    )
    window_start_s: Optional[float] = Field(
        None,
        ge=0,
        le=1e8,
        description="Place the measured window at this time of the scenario's time axis instead of at the binding part of the demand curve (its peak); a warning when the window then misses the peak.",
    )
    replications: int = Field(
        5,
        ge=2,
        le=50,
        description="Independent replications per search point (seeds seed, seed+1, ...: the same arrivals for every candidate and replica count); SLOs are judged on the 95% interval over them.",
    )
    tail_samples: float = Field(
        3.0,
        ge=1,
        le=100,
        description="Requests each class should have beyond its highest SLO percentile q in each replication: the window holds at least tail_samples / (1 - q) requests per class (p99, 3: 300).",
    )
    failures: Optional[FailureSpec] = Field(
        None,
        description="Failure headroom: size each fleet so its SLOs hold with replicas_down replicas (or nodes_down servers) down.",
    )
    load_curve_pct: list[float] = Field(
        default_factory=lambda: [25.0, 50.0, 75.0, 100.0, 125.0],
        max_length=20,
        description="Loads (percent of the demand) at which the found fleet is also simulated, for p99-vs-load figures.",
    )
    headroom_steps: int = Field(
        4,
        ge=0,
        le=20,
        description="Bisection steps locating the highest rate the found fleet sustains (headroom); 0 = from the load curve only.",
    )

    power: Optional[PlanPowerSpec] = Field(
        None,
        description="Power budgets the recommended fleet must fit: rack_kw, racks, site_kw, pue (any subset); a "
        "candidate that does not fit is rejected with the limit named.",
    )
    rank_by: Literal["rent", "own"] = Field(
        "rent",
        description="What ranks the candidates that meet the SLO: rent (the fleet's rent per month, the default) "
        "or own (owning it per month: amortisation + hosting + electricity at its measured power, with "
        "pricing.own; energy included). With own nothing is pruned: every candidate is searched to its count.",
    )

    @field_validator("load_curve_pct")
    @classmethod
    def _loads(cls, v: list[float]) -> list[float]:
        if any(not (0 < x <= 1000) for x in v):
            raise ValueError(f"load_curve_pct values must be in (0, 1000], got {v}")
        return sorted(set(float(x) for x in v))
