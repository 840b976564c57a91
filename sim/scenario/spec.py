"""The scenario file: pydantic models, loading, overrides.

A scenario is YAML validated into ``Scenario`` (unknown keys are errors,
every field is bounded and documented — ``fleetcast schema`` renders these
descriptions into docs/scenario-reference.md). Errors name the file, the line
and the field path, and say what would be valid.
"""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from sim.catalog import Catalog, load_catalog
from sim.errors import ScenarioError, unknown_name
from sim.infiles import MAX_PROFILE_BYTES, read_text_limited
from sim.perf.power_cap import limit_error
from sim.scenario.autoscale_spec import check_autoscale
from sim.scenario.disagg_spec import KVTransferSpec, check_disaggregation
from sim.scenario.events import EventSpec
from sim.scenario.fleet_spec import PoolSpec, RouterSpec, Strict
from sim.scenario.limits import size_problems
from sim.scenario.params import POLICY_PARAMS, ROUTER_PARAMS
from sim.scenario.plan_spec import PlanSpec
from sim.scenario.pricing_spec import PricingSpec
from sim.scenario.yamlio import apply_overrides, format_validation_error, load_yaml_with_lines
from sim.workload.spec import TrafficSpec

__all__ = [
    "SimSettings",
    "Scenario",
    "load_scenario",
    "scenario_from_dict",
]


class SimSettings(Strict):
    """How the simulation runs (not what it simulates)."""

    drain_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="After traffic.duration_s, keep simulating at most this long; "
        "requests still unfinished then are recorded as status 'timeout'.",
    )
    timeseries_interval_s: float | None = Field(
        None,
        gt=0,
        description="Sampling interval of the per-replica time series; default: duration/1000, at least 0.1 s.",
    )


class Scenario(Strict):
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
    pricing: PricingSpec = Field(
        default_factory=PricingSpec,
        description="USD per GPU-hour by GPU name, overriding the catalog's typical "
        "rented price; `own:` holds what buying the GPUs would cost instead (purchase, amortisation, power).",
    )
    sim: SimSettings = Field(default_factory=SimSettings, description="Simulation settings.")
    kv_transfer: KVTransferSpec | None = Field(
        None,
        description="Disaggregated prefill/decode only (pools with role prefill and decode): the link that "
        "carries each request's KV cache from its prefill replica to its decode replica, and whether the transfer "
        "overlaps the prefill compute.",
    )
    plan: PlanSpec | None = Field(
        None,
        description="What `fleetcast plan` searches: candidate GPUs/quantization/TP/policies for one pool, "
        "the demand (peak rate or monthly growth) and the replica cap; ignored by `fleetcast run`.",
    )
    events: list[EventSpec] = Field(
        default_factory=list,
        max_length=1000,
        description="What goes wrong during the run: traffic surges (kind: surge, start_s, end_s, factor) and "
        "replica failures (kind: replica-failure, replica, at_s); applied in every run of the scenario.",
    )

    @field_validator("name", "description")
    @classmethod
    def _printable(cls, v: str) -> str:
        """A name names folders and files, and both are printed: a control character (a NUL byte
        raised ValueError "embedded null byte" from the file system) is refused with its place."""
        bad = next((i for i, c in enumerate(v) if unicodedata.category(c) == "Cc" and c not in "\t\n"), None)
        if bad is not None:
            raise ValueError(
                f"must be printable text: character {bad + 1} is the control character U+{ord(v[bad]):04X}"
            )
        return v

    @model_validator(mode="after")
    def _pools_and_classes(self) -> Scenario:
        names = [p.name for p in self.fleet]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(sorted(dup))}")
        declared = [c.name for c in self.traffic.classes]
        served: set[str] = set()
        for pool in self.fleet:
            for cname in pool.classes or declared:
                if cname not in declared:
                    raise ValueError(
                        f"pool '{pool.name}' serves unknown class '{cname}'; classes: {', '.join(declared)}"
                    )
                served.add(cname)
        orphans = [c for c in declared if c not in served]
        if orphans:
            raise ValueError(f"no pool serves class(es) {', '.join(orphans)}")
        return self

    # Where the scenario came from (not part of the format).
    _path: Path | None = None
    _lines: dict | None = None  # YAML line per field path (load_yaml_with_lines)

    @property
    def base_dir(self) -> Path:
        """Folder that relative paths in the scenario are resolved against."""
        return self._path.parent if self._path is not None else Path.cwd()

    @property
    def path(self) -> Path | None:
        return self._path

    def locate(self, loc: tuple) -> str:
        """'<file>, line N, field a.b.c' for an error about field path ``loc`` (the line of the
        deepest part of it the file holds; none for a field the file does not give)."""
        lines = self._lines or {}
        line = next((lines[loc[:cut]] for cut in range(len(loc), 0, -1) if loc[:cut] in lines), None)
        where = str(self._path) if self._path else "<scenario>"
        return f"{where}{f', line {line}' if line else ''}, field {'.'.join(map(str, loc))}"

    def load_catalog(self) -> Catalog:
        """The catalog this scenario reads: the built-in one plus its ``catalog:`` files
        (relative to the scenario's folder). Loaded once per Scenario and file list."""
        files = tuple(self.base_dir / f for f in self.catalog)
        cached = self._catalogs.get(files)
        if cached is None:
            cached = self._catalogs[files] = load_catalog(list(files))
        return cached

    @functools.cached_property
    def _catalogs(self) -> dict:
        # kept in the instance __dict__ (pydantic's cached_property support): not a field, so
        # not in model_dump / dump_scenario, and equality ignores it; keyed by the resolved
        # files, so a copy with other catalog files or another folder loads its own
        return {}

    @property
    def timeseries_interval_s(self) -> float:
        """Sampling interval of the time series: ``sim.timeseries_interval_s``, else
        ``traffic.duration_s / 1000``, at least 0.1 s."""
        return self.sim.timeseries_interval_s or max(0.1, self.traffic.duration_s / 1000.0)


def scenario_from_dict(data: dict, *, path: Path | None = None, lines: dict | None = None) -> Scenario:
    """Validate a scenario mapping; errors name ``path`` and (via ``lines``) the YAML line."""
    where = str(path) if path else "<scenario>"
    _require_mapping(data, where)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, where, lines or {}, model=Scenario)) from None
    object.__setattr__(scenario, "_path", path)
    object.__setattr__(scenario, "_lines", lines)
    problems = _booleans_read_as_numbers(data, scenario.model_dump(mode="python"))
    _check_names(scenario, where, lines or {})
    problems += size_problems(scenario)  # before anything is allocated for the run
    for loc, msg in problems:
        line = (lines or {}).get(loc)
        raise ScenarioError(f"{where}{f', line {line}' if line else ''}, field {'.'.join(map(str, loc))}: {msg}")
    return scenario


def _booleans_read_as_numbers(raw, validated, loc: tuple = ()) -> list[tuple[tuple, str]]:
    """Fields given true/false that validation turned into a number (pydantic reads
    ``replicas: true`` as 1): found by walking the input beside its validated form."""
    if isinstance(raw, bool):
        if not isinstance(validated, bool) and isinstance(validated, (int, float)):
            return [(loc, f"expected a number, got {str(raw).lower()} (a boolean)")]
        return []
    if isinstance(raw, dict) and isinstance(validated, dict):
        return [
            p for k, v in raw.items() if k in validated for p in _booleans_read_as_numbers(v, validated[k], loc + (k,))
        ]
    if isinstance(raw, list) and isinstance(validated, (list, tuple)) and len(raw) == len(validated):
        return [p for i, (v, w) in enumerate(zip(raw, validated)) for p in _booleans_read_as_numbers(v, w, loc + (i,))]
    return []


def _check_names(scenario: Scenario, where: str, lines: dict) -> None:
    """Names that refer to registries and catalogs must exist (listed if not)."""

    def fail(loc: tuple, msg: str) -> None:
        line = lines.get(loc)
        at = f"{where}, line {line}" if line else where
        raise ScenarioError(f"{at}, field {'.'.join(map(str, loc))}: {msg}")

    if scenario.router.name not in ROUTER_PARAMS:
        fail(("router", "name"), unknown_name("router", scenario.router.name, ROUTER_PARAMS))
    try:
        ROUTER_PARAMS[scenario.router.name].model_validate(scenario.router.params)
    except ValidationError as exc:
        fail(
            ("router", "params"),
            format_validation_error(exc, "", {}, model=ROUTER_PARAMS[scenario.router.name]).lstrip(": "),
        )
    catalog = scenario.load_catalog()
    for i, pool in enumerate(scenario.fleet):
        for field, names in (("gpu", catalog.gpu_names()), ("model", catalog.model_names())):
            value = getattr(pool, field)
            if value not in names:
                fail(("fleet", i, field), unknown_name(field if field != "gpu" else "GPU", value, names))
        node = catalog.gpu(pool.gpu).gpus_per_node
        if node and pool.tensor_parallel > node:
            fail(
                ("fleet", i, "tensor_parallel"),
                f"tensor_parallel {pool.tensor_parallel} spans {pool.tensor_parallel} GPUs, but a {pool.gpu} server "
                f"holds {node} (catalog gpus_per_node); tensor parallelism stays within one server: use at most "
                f"{node}, and more replicas",
            )
        _check_layout(pool, i, catalog, fail)
        _check_speculative(scenario, pool, i, catalog, fail)
        if pool.power_limit_w is not None:
            why = limit_error(catalog.gpu(pool.gpu), pool.power_limit_w)
            if why:
                fail(("fleet", i, "power_limit_w"), why)
        if pool.policy.name not in POLICY_PARAMS:
            fail(("fleet", i, "policy", "name"), unknown_name("batching policy", pool.policy.name, POLICY_PARAMS))
        try:
            POLICY_PARAMS[pool.policy.name].model_validate(pool.policy.params)
        except ValidationError as exc:
            fail(
                ("fleet", i, "policy", "params"),
                format_validation_error(exc, "", {}, model=POLICY_PARAMS[pool.policy.name]).lstrip(": "),
            )
        if pool.profile is not None:  # a regular, small UTF-8 file (its JSON is read by the engine)
            try:
                read_text_limited(scenario.base_dir / pool.profile, MAX_PROFILE_BYTES, "calibration profile file")
            except ScenarioError as exc:
                fail(("fleet", i, "profile"), str(exc))
    for gpu in scenario.pricing.usd_per_gpu_hour:
        if gpu not in catalog.gpu_names():
            fail(("pricing", gpu), unknown_name("GPU", gpu, catalog.gpu_names()))
    for gpu in scenario.pricing.own.purchase_usd_per_gpu:
        if gpu not in catalog.gpu_names():
            fail(("pricing", "own", "purchase_usd_per_gpu", gpu), unknown_name("GPU", gpu, catalog.gpu_names()))
    _check_plan(scenario, catalog, fail)
    check_disaggregation(scenario, catalog, fail)
    check_autoscale(scenario, fail)
    if not scenario.traffic.is_trace:
        _check_classes_fit(scenario, catalog, fail)


def _check_plan(scenario: Scenario, catalog, fail) -> None:
    """The plan: section, checked whenever the scenario loads (``run`` carries it too, so an invalid
    one is refused there, not ignored): the pool it plans exists, no candidate list is empty,
    every candidate name is in the catalog or a registry."""
    plan = scenario.plan
    if plan is None:
        return
    if plan.pool >= len(scenario.fleet):
        fail(
            ("plan", "pool"),
            f"plan.pool is {plan.pool}, but the fleet has {len(scenario.fleet)} pool(s): give "
            f"an index 0..{len(scenario.fleet) - 1}, the pool the candidates replace",
        )
    for key, values in plan.candidates.dimensions().items():
        if not values:
            fail(
                ("plan", "candidates", *key.split(".")),
                "an empty list gives no candidates: list at least one value, or leave the key out to keep the "
                "pool's own value",
            )
    for key, valid, kind in (
        ("gpu", catalog.gpu_names(), "GPU"),
        ("model", catalog.model_names(), "model"),
        ("policy", list(POLICY_PARAMS), "batching policy"),
    ):
        for j, name in enumerate(getattr(plan.candidates, key) or []):
            if name not in valid:
                fail(("plan", "candidates", key, j), unknown_name(kind, name, valid))
    _check_plan_power_limits(scenario, catalog, fail)


def _check_plan_power_limits(scenario: Scenario, catalog, fail) -> None:
    """plan.candidates.power_limit_w: every limit within each candidate GPU's catalog range."""
    plan = scenario.plan
    grid = plan.candidates if plan is not None else None
    if grid is None or grid.power_limit_w is None:
        return
    pool = scenario.fleet[plan.pool]  # type: ignore[union-attr]  # plan is set when grid is
    if isinstance(grid.power_limit_w, dict):
        for gpu in grid.power_limit_w:
            if gpu not in catalog.gpu_names():
                fail(("plan", "candidates", "power_limit_w", gpu), unknown_name("GPU", gpu, catalog.gpu_names()))
    for gpu in grid.gpu or [pool.gpu]:
        if gpu not in catalog.gpu_names():
            continue
        given = grid.power_limit_w if isinstance(grid.power_limit_w, list) else grid.power_limit_w.get(gpu, [])
        for j, limit in enumerate(given):
            why = None if limit is None else limit_error(catalog.gpu(gpu), limit)
            if why:
                loc = ("plan", "candidates", "power_limit_w") + (
                    (j,) if isinstance(grid.power_limit_w, list) else (gpu, j)
                )
                fail(loc, f"for candidate GPU {gpu}: {why}")


def _check_layout(pool, i: int, catalog, fail) -> None:
    """data_parallel and expert_parallel: the replica within one server, expert parallelism only
    for an MoE model whose experts the tp x dp GPUs divide."""
    node = catalog.gpu(pool.gpu).gpus_per_node
    gpus = pool.gpus_per_replica
    if node and pool.data_parallel > 1 and gpus > node:
        fail(
            ("fleet", i, "data_parallel"),
            f"data_parallel {pool.data_parallel} x tensor_parallel {pool.tensor_parallel} = {gpus} GPUs per "
            f"replica, but a {pool.gpu} server holds {node} (catalog gpus_per_node); fleetcast keeps a replica "
            f"within one server (its MoE exchange is costed on the server's interconnect): use at most "
            f"{node // pool.tensor_parallel} data-parallel ranks at this tensor_parallel",
        )
    if not pool.expert_parallel:
        return
    model = catalog.model(pool.model)
    if model.num_experts == 1:
        fail(
            ("fleet", i, "expert_parallel"),
            f"model '{model.name}' is dense (num_experts 1): expert parallelism needs a mixture-of-experts model",
        )
    if model.num_experts % gpus:
        fits = [g for g in range(1, model.num_experts + 1) if model.num_experts % g == 0 and (not node or g <= node)]
        fail(
            ("fleet", i, "expert_parallel"),
            f"expert parallelism spreads the {model.num_experts} experts of '{model.name}' over tensor_parallel x "
            f"data_parallel = {gpus} GPUs, which does not divide them; GPU counts that do: "
            f"{', '.join(map(str, fits))}",
        )


def _check_speculative(scenario: Scenario, pool, i: int, catalog, fail) -> None:
    """A draft model exists and shares the target's vocabulary; every class the pool
    serves has an acceptance rate (its own or the pool's)."""
    spec = pool.engine.speculative
    if spec is None:
        return
    where = ("fleet", i, "engine", "speculative")
    if spec.method == "draft":
        if spec.draft_model not in catalog.model_names():
            fail(where + ("draft_model",), unknown_name("model", spec.draft_model, catalog.model_names()))
        draft, target = catalog.model(spec.draft_model), catalog.model(pool.model)
        if draft.vocab_size != target.vocab_size:
            fail(
                where + ("draft_model",),
                f"draft model '{draft.name}' has a vocabulary of {draft.vocab_size:,} tokens, the target "
                f"'{target.name}' {target.vocab_size:,}; vLLM verifies draft tokens by id, so both must share "
                f"one tokenizer: pick a draft model of the target's family",
            )
        if draft.num_heads % pool.tensor_parallel:
            fail(
                where + ("draft_model",),
                f"draft model '{draft.name}' has {draft.num_heads} attention heads, which tensor_parallel "
                f"{pool.tensor_parallel} does not divide (vLLM runs the draft at the target's tensor_parallel)",
            )
    if spec.acceptance_rate is None:
        missing = [
            c.name
            for c in scenario.traffic.classes
            if c.acceptance_rate is None and (pool.classes is None or c.name in pool.classes)
        ]
        if missing:
            fail(
                where + ("acceptance_rate",),
                f"pool '{pool.name}' speculates but class(es) {', '.join(missing)} it serves give no "
                f"acceptance_rate: set fleet[{i}].engine.speculative.acceptance_rate or "
                f"traffic.classes[].acceptance_rate, a probability in [0, 1]",
            )


def _shortest(length) -> int:
    """The fewest tokens a length distribution can draw (draws are clipped to ``min``)."""
    if hasattr(length, "value"):  # fixed
        return int(length.value)
    values = getattr(length, "values", None)
    return max(int(length.min), min(values)) if values else int(length.min)


def _check_classes_fit(scenario: Scenario, catalog, fail) -> None:
    """A class whose shortest request exceeds max_model_len on every pool serving it would be
    rejected whole (vLLM's rule: prompt + output tokens within max_model_len)."""
    max_len = {p.name: p.max_model_len(catalog.model(p.model)) for p in scenario.fleet}
    for c, cls in enumerate(scenario.traffic.classes):
        if cls.lengths_table is not None:  # observed pairs: served or rejected request by request
            continue
        pools = [p.name for p in scenario.fleet if p.classes is None or cls.name in p.classes]
        prompt, output = _shortest(cls.prompt_tokens), _shortest(cls.output_tokens)
        if pools and all(prompt + output > max_len[name] for name in pools):
            fail(
                ("traffic", "classes", c),
                f"class '{cls.name}' can never be served: its shortest request "
                f"({prompt} prompt + {output} output tokens) is longer than max_model_len of every pool serving "
                f"it ({', '.join(f'{n}: {max_len[n]:,}' for n in pools)}), and vLLM rejects such requests; lower "
                f"the class's prompt_tokens/output_tokens min, or raise fleet[].engine.max_model_len",
            )
        decode = [
            i
            for i, p in enumerate(scenario.fleet)
            if p.role == "decode" and (p.classes is None or cls.name in p.classes)
        ]
        if decode and all(prompt + output > max_len[scenario.fleet[i].name] for i in decode):
            fail(
                ("fleet", decode[0], "engine", "max_model_len"),
                f"decode pool '{scenario.fleet[decode[0]].name}' cannot hold one request of class '{cls.name}': its "
                f"shortest request ({prompt} prompt + {output} output tokens, the prompt's KV moved from the "
                f"prefill pool) is longer than max_model_len of every decode pool serving it "
                f"({', '.join(f'{scenario.fleet[i].name}: {max_len[scenario.fleet[i].name]:,}' for i in decode)}); "
                f"every such request would be prefilled, then rejected: raise the decode pools' "
                f"engine.max_model_len to at least {prompt + output:,}",
            )


def _require_mapping(data, where: str) -> None:
    if not isinstance(data, dict):
        held = "is empty" if data is None else f"holds a {type(data).__name__}, not a mapping"
        raise ScenarioError(
            f"{where}: the scenario {held}; a scenario is a mapping with at least the keys fleet "
            f"and traffic (see scenarios/quickstart.yaml and docs/scenario-reference.md)"
        )


def load_scenario(path: str | Path, overrides: list[str] | None = None, seed: int | None = None) -> Scenario:
    """Load and validate a scenario file.

    ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML),
    e.g. ``fleet.0.replicas=8``; ``seed`` replaces the scenario's seed.
    """
    path = Path(path)
    if path.is_dir():
        raise ScenarioError(f"{path} is a folder; give a scenario YAML file (e.g. scenarios/quickstart.yaml)")
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    data, lines = load_yaml_with_lines(path)
    _require_mapping(data, str(path))
    if overrides:
        data = apply_overrides(data, overrides, where=str(path))
    if seed is not None:
        data = {**data, "seed": seed}
    return scenario_from_dict(data, path=path.resolve(), lines=lines)


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as YAML (defaults filled in), for run folders and reports. A fixed pool
    leaves out ``autoscale: null``, so its dump is what it was before autoscaling existed (and
    likewise ``pricing.grid_g_co2_per_kwh`` at its default, an unset ``plan.power``, unset power
    limits, ``engine.api_server_count`` 1, an unset ``engine.async_scheduling``, an unset
    ``engine.flashinfer_sampler``, an unset ``engine.sampling``, an unset ``engine.engine_core`` and an
    unset ``engine.chat_endpoint``)."""
    data = scenario.model_dump(mode="json")
    for pool in data["fleet"]:
        if pool.get("autoscale", 0) is None:
            del pool["autoscale"]
        eng = pool.get("engine") or {}
        if eng.get("api_server_count") == 1:  # vLLM's default: left out, as before the field existed
            del eng["api_server_count"]
        if eng.get("async_scheduling", 0) is None:  # by version: left out, as before the field existed
            del eng["async_scheduling"]
        if eng.get("flashinfer_sampler", 0) is None:  # by version: left out, as before the field existed
            del eng["flashinfer_sampler"]
        if eng.get("sampling", 0) is None:  # not modelled: left out, as before the field existed
            del eng["sampling"]
        if eng.get("engine_core", 0) is None:  # by version: left out, as before the field existed
            del eng["engine_core"]
        if eng.get("chat_endpoint", 0) is None:  # the chat endpoint assumed: left out, as before the field existed
            del eng["chat_endpoint"]
        if pool.get("power_limit_w", 0) is None:  # no power limit: left out, as before limits existed
            del pool["power_limit_w"]
    # the power fields, left out unless set, so a dump is what it was before they existed
    if data["pricing"].get("grid_g_co2_per_kwh") == PricingSpec.model_fields["grid_g_co2_per_kwh"].default:
        data["pricing"].pop("grid_g_co2_per_kwh", None)
    if isinstance(data.get("plan"), dict) and data["plan"].get("power", 0) is None:
        del data["plan"]["power"]
    if isinstance(data.get("plan"), dict) and (data["plan"].get("candidates") or {}).get("power_limit_w", 0) is None:
        del data["plan"]["candidates"]["power_limit_w"]
    if isinstance(data.get("plan"), dict) and data["plan"].get("rank_by") == "rent":  # the default: left out
        del data["plan"]["rank_by"]
    # the traffic fit's fields (a rate profile, batches, a class's own process), likewise
    _drop_unset(data["traffic"]["arrival"], ("profile", "batch"))
    for cls in data["traffic"]["classes"]:
        _drop_unset(cls, ("arrival",))
        if isinstance(cls.get("session"), dict) and cls["session"].get("gap_from") == "arrival":  # the default
            del cls["session"]["gap_from"]
    return yaml.safe_dump(data, sort_keys=False)


def _drop_unset(node: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key in node and node[key] is None:
            del node[key]
