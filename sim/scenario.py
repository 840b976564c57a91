"""The scenario file: pydantic models, loading, overrides.

A scenario is YAML validated into ``Scenario`` (unknown keys are errors,
every field is bounded and documented — ``fleetcast schema`` renders these
descriptions into docs/scenario-reference.md). Errors name the file, the line
and the field path, and say what would be valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sim.errors import ScenarioError, unknown_name
from sim.events import EventSpec
from sim.traffic_spec import TrafficSpec
from sim.yamlio import apply_overrides, format_validation_error, load_yaml_with_lines

__all__ = [
    "QuantizationSpec",
    "EngineSpec",
    "PolicySpec",
    "RouterSpec",
    "PoolSpec",
    "SimSettings",
    "Scenario",
    "load_scenario",
    "scenario_from_dict",
]

WeightScheme = Literal["bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantizationSpec(_Strict):
    """Quantization of one pool's model."""

    weights: WeightScheme = Field(
        "bf16",
        description="Weight format: bf16, fp16, fp8, int8 (W8A8), int4-awq or int4-gptq (W4A16).",
    )
    kv_cache: Literal["auto", "fp8"] = Field(
        "auto", description="KV-cache dtype: auto (16-bit, like the activations) or fp8."
    )


class EngineSpec(_Strict):
    """vLLM engine arguments, named as vLLM names them."""

    max_num_seqs: int = Field(256, ge=1, le=4096, description="Most sequences in one engine step.")
    max_num_batched_tokens: int = Field(
        8192, ge=16, le=1_048_576, description="Token budget of one engine step (prefill chunks + decodes)."
    )
    block_size: Literal[8, 16, 32, 64, 128] = Field(16, description="Tokens per paged KV-cache block.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0.05, le=1.0, description="Fraction of GPU memory vLLM may use (weights + activations + KV cache)."
    )
    enable_chunked_prefill: bool = Field(
        True, description="Split long prompts over several steps and mix them with decodes (vLLM v1 default)."
    )
    enable_prefix_caching: bool = Field(
        True, description="Reuse KV blocks of identical prompt prefixes (vLLM v1 default)."
    )
    max_model_len: int | None = Field(
        None, ge=16, le=1_048_576, description="Longest prompt + output accepted; default: the model's context length."
    )
    num_gpu_blocks_override: int | None = Field(
        None, ge=1, description="Force this many KV blocks instead of planning them from memory (as vLLM's flag)."
    )

    @model_validator(mode="after")
    def _budget_covers_seqs(self) -> "EngineSpec":
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= max_num_seqs "
                f"({self.max_num_seqs}), as vLLM requires"
            )
        if (
            not self.enable_chunked_prefill
            and self.max_model_len is not None
            and self.max_num_batched_tokens < self.max_model_len
        ):
            raise ValueError(
                f"without chunked prefill max_num_batched_tokens ({self.max_num_batched_tokens}) must be "
                f">= max_model_len ({self.max_model_len}), as vLLM requires"
            )
        return self


class PolicySpec(_Strict):
    """A batching policy by name, with its parameters."""

    name: str = Field("continuous", description="Batching policy: continuous, prefill-first, static, priority.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the policy (see its doc).")


class RouterSpec(_Strict):
    """A router by name, with its parameters."""

    name: str = Field(
        "least-outstanding",
        description="Router: round-robin, random, least-outstanding, least-kv, power-of-two, prefix-affinity.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the router (see its doc).")


class PoolSpec(_Strict):
    """A pool of identical serving replicas."""

    name: str = Field(..., min_length=1, max_length=64, description="Pool name (used in reports and replica names).")
    gpu: str = Field(..., description="GPU type from the catalog (fleetcast catalog lists them).")
    replicas: int = Field(..., ge=1, le=100_000, description="Serving instances in this pool.")
    tensor_parallel: Literal[1, 2, 4, 8, 16] = Field(1, description="GPUs per replica (tensor parallel size).")
    model: str = Field(..., description="Model from the catalog.")
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec, description="Weight and KV formats.")
    engine: EngineSpec = Field(default_factory=EngineSpec, description="vLLM engine knobs.")
    policy: PolicySpec = Field(default_factory=PolicySpec, description="Batching policy of every replica.")
    classes: list[str] | None = Field(
        None, description="Traffic classes this pool serves (default: all). The router only picks eligible replicas."
    )
    profile: str | None = Field(
        None,
        description="Calibration profile (a JSON file path, relative to the scenario) with the performance "
        "coefficients; default: the built-in conservative coefficients.",
    )


class SimSettings(_Strict):
    """How the simulation runs (not what it simulates)."""

    drain_s: float = Field(
        300.0, ge=0, le=86_400, description="After the last arrival, keep simulating at most this long; "
        "requests still unfinished then are recorded as status 'timeout'."
    )
    timeseries_interval_s: float | None = Field(
        None, gt=0, description="Sampling interval of the per-replica time series; default: duration/1000, at least 0.1 s."
    )


from sim.plan_spec import PlanSpec  # noqa: E402  (the plan: section, used by `fleetcast plan`)


class Scenario(_Strict):
    """A fleet, the traffic it serves, and what it costs."""

    name: str = Field("scenario", description="Short name of the scenario.")
    description: str = Field("", description="Free text shown in reports.")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of every random stream: same seed, same records.")
    catalog: list[str] = Field(
        default_factory=list, description="Extra catalog YAML files (relative to the scenario) adding GPUs/models."
    )
    fleet: list[PoolSpec] = Field(..., min_length=1, description="Pools of replicas.")
    router: RouterSpec = Field(default_factory=RouterSpec, description="How requests are spread over replicas.")
    traffic: TrafficSpec = Field(..., description="Arrivals, classes, lengths and SLOs.")
    pricing: dict[str, float] = Field(
        default_factory=dict, description="USD per GPU-hour by GPU name, overriding the catalog's typical price."
    )
    sim: SimSettings = Field(default_factory=SimSettings, description="Simulation settings.")
    plan: PlanSpec | None = Field(
        None, description="What `fleetcast plan` searches: candidate GPUs/quantization/TP/policies for one pool, "
        "the demand (peak rate or monthly growth) and the replica cap; ignored by `fleetcast run`."
    )
    events: list[EventSpec] = Field(
        default_factory=list, max_length=1000,
        description="What goes wrong during the run: traffic surges (kind: surge, start_s, end_s, factor) and "
        "replica failures (kind: replica-failure, replica, at_s); applied in every run of the scenario.",
    )

    @model_validator(mode="after")
    def _pools_and_classes(self) -> "Scenario":
        names = [p.name for p in self.fleet]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(sorted(dup))}")
        declared = [c.name for c in self.traffic.classes]
        served: set[str] = set()
        for pool in self.fleet:
            for cname in pool.classes or declared:
                if cname not in declared:
                    raise ValueError(f"pool '{pool.name}' serves unknown class '{cname}'; classes: {', '.join(declared)}")
                served.add(cname)
        orphans = [c for c in declared if c not in served]
        if orphans:
            raise ValueError(f"no pool serves class(es) {', '.join(orphans)}")
        for gpu, price in self.pricing.items():
            if not price >= 0:
                raise ValueError(f"pricing.{gpu} must be >= 0 USD per GPU-hour, got {price}")
        return self

    # Where the scenario came from (not part of the format).
    _path: Path | None = None

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the scenario are resolved against."""
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def path(self) -> Path | None:
        return self._path


def scenario_from_dict(data: dict, *, path: Path | None = None, lines: dict | None = None) -> Scenario:
    """Validate a scenario mapping; errors name ``path`` and (via ``lines``) the YAML line."""
    where = str(path) if path else "<scenario>"
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a scenario must be a mapping with keys fleet, traffic, ... ")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, where, lines or {})) from None
    object.__setattr__(scenario, "_path", path)
    _check_names(scenario, where, lines or {})
    return scenario


def _check_names(scenario: Scenario, where: str, lines: dict) -> None:
    """Names that refer to registries and catalogs must exist (listed if not)."""
    from sim.catalog import load_catalog
    from sim.policies import POLICIES
    from sim.routers import ROUTERS

    def fail(loc: tuple, msg: str) -> None:
        line = lines.get(loc)
        at = f"{where}, line {line}" if line else where
        raise ScenarioError(f"{at}, field {'.'.join(map(str, loc))}: {msg}")

    if scenario.router.name not in ROUTERS:
        fail(("router", "name"), unknown_name("router", scenario.router.name, ROUTERS))
    try:
        ROUTERS[scenario.router.name].Params.model_validate(scenario.router.params)
    except ValidationError as exc:
        fail(("router", "params"), format_validation_error(exc, "", {}).lstrip(": "))
    catalog = load_catalog([scenario.base_dir / f for f in scenario.catalog])
    for i, pool in enumerate(scenario.fleet):
        for field, names in (("gpu", catalog.gpu_names()), ("model", catalog.model_names())):
            value = getattr(pool, field)
            if value not in names:
                fail(("fleet", i, field), unknown_name(field if field != "gpu" else "GPU", value, names))
        if pool.policy.name not in POLICIES:
            fail(("fleet", i, "policy", "name"), unknown_name("batching policy", pool.policy.name, POLICIES))
        try:
            POLICIES[pool.policy.name].Params.model_validate(pool.policy.params)
        except ValidationError as exc:
            fail(("fleet", i, "policy", "params"), format_validation_error(exc, "", {}).lstrip(": "))
        if pool.profile is not None and not (scenario.base_dir / pool.profile).is_file():
            fail(("fleet", i, "profile"), f"calibration profile file not found: {scenario.base_dir / pool.profile}")
    for gpu in scenario.pricing:
        if gpu not in catalog.gpu_names():
            fail(("pricing", gpu), unknown_name("GPU", gpu, catalog.gpu_names()))


def load_scenario(path: str | Path, overrides: list[str] | None = None, seed: int | None = None) -> Scenario:
    """Load and validate a scenario file.

    ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML),
    e.g. ``fleet.0.replicas=8``; ``seed`` replaces the scenario's seed.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    data, lines = load_yaml_with_lines(path)
    if overrides:
        data = apply_overrides(data, overrides, where=str(path))
    if seed is not None:
        data = {**data, "seed": seed}
    return scenario_from_dict(data, path=path.resolve(), lines=lines)


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML (defaults filled in), for run folders and reports."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)
