"""The engine settings of a run log: a small YAML/JSON file beside it (docs/run-logs.md).

A ``vllm bench serve`` result or a per-request log says what the client saw,
not how the server ran. The sidecar says that: GPU and model (names from the
fleetcast catalog), tensor parallel size, quantization and the vLLM engine
arguments. ``find_sidecar(log)`` looks for ``<log stem>.fleetcast.yaml``
(``.yml``, ``.json``) and then ``fleetcast.yaml`` in the log's folder;
``load_settings`` validates it, applies ``KEY=VALUE`` overrides (the CLI's
``--gpu``, ``--model``, ``--sidecar-set``) and returns ``LogSettings``. Every
problem is a ``FleetcastError`` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from calibration.log_files import SIDECAR_SUFFIXES
from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.scenario.fleet_spec import EngineSpec, QuantizationSpec, version_as_text
from sim.scenario.yamlio import apply_overrides, format_validation_error, load_yaml_with_lines

__all__ = ["LogSettings", "find_sidecar", "load_settings", "SIDECAR_SUFFIXES"]

_FOLDER_SIDECAR = "fleetcast.yaml"
_DOC = 'docs/run-logs.md, "The sidecar"'


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SidecarEngine(_Strict):
    """vLLM engine arguments as the server ran; unset ones take fleetcast's defaults (said in a note)."""

    max_num_seqs: int | None = Field(None, ge=1, le=4096)
    max_num_batched_tokens: int | None = Field(None, ge=16, le=1_048_576)
    block_size: Literal[8, 16, 32, 64, 128] | None = None
    gpu_memory_utilization: float | None = Field(None, gt=0.05, le=1.0)
    max_model_len: int | None = Field(None, ge=16, le=1_048_576)
    enable_prefix_caching: bool | None = None
    enable_chunked_prefill: bool | None = None
    num_gpu_blocks: int | None = Field(
        None, ge=1, description="KV blocks the server reported (its log: '# GPU blocks: N' / 'GPU KV cache size')"
    )
    api_server_count: int | None = Field(
        None, ge=1, le=1024, description="vLLM --api-server-count: API-server processes in front of the engine"
    )
    async_scheduling: bool | None = Field(
        None, description="vLLM --async-scheduling (true) or --no-async-scheduling (false); unset: by vllm_version"
    )
    flashinfer_sampler: bool | None = Field(
        None,
        description="vLLM's sampler ran FlashInfer's top-k/top-p kernel (flashinfer installed, as in the "
        "vllm/vllm-openai images, with vLLM 0.8.0-0.11.0; VLLM_USE_FLASHINFER_SAMPLER=1 from 0.11.1); unset: by "
        "vllm_version, for an install without flashinfer",
    )
    sampling: Literal["greedy", "top_p", "top_p_penalties"] | None = Field(
        None,
        description="how the requests sampled: greedy, top_p (top-p/top-k), top_p_penalties (also repetition, "
        "frequency or presence penalties); unset: the sampler's time is not modelled (as greedy)",
    )
    chat_endpoint: bool | None = Field(
        None,
        description="the client sent chat requests (/v1/chat/completions: true) or completions (/v1/completions: "
        "false); unset: the chat endpoint (it matters on vLLM 0.8.2-0.9.1, sim/perf/cpu_side.py)",
    )


class ClientCpu(_Strict):
    """The load generator's own CPU in its time stamps (calibration/logs/client_cpu.py)."""

    per_request_s: float = Field(..., ge=0.0, le=1.0, description="per request, before its first chunk is read")
    per_chunk_s: float = Field(..., ge=0.0, le=1.0, description="per streamed chunk the client reads")
    source: str = Field("", description="where the figures come from (a microbenchmark of that client)")


class Sidecar(_Strict):
    gpu: str = Field(..., description="GPU name from the fleetcast catalog (fleetcast catalog)")
    model: str = Field(..., description="model name from the fleetcast catalog")
    tensor_parallel: Literal[1, 2, 4, 8, 16] = 1
    expert_parallel: bool = Field(
        False,
        description="vLLM --enable-expert-parallel (MoE models): whole experts spread over the tensor_parallel GPUs",
    )
    quantization: QuantizationSpec = Field(default_factory=QuantizationSpec)
    engine: SidecarEngine = Field(default_factory=SidecarEngine)
    vllm_version: str | None = None
    engine_core: Literal["v0", "v1"] | None = Field(
        None,
        description="the server's engine: v0 for vLLM's V0 engine (VLLM_USE_V1=0); default: vLLM's V1 scheduler. "
        "V0 without chunked prefill is replayed with the prefill-first policy (its default scheduler), and V0 with "
        "V0's CPU side (engine.engine_core)",
    )
    client_cpu: ClientCpu | None = Field(
        None,
        description="a single-threaded client's own CPU, per request and per streamed chunk, which its TTFT and E2E "
        "include (calibration/logs/client_cpu.py); per-request logs only",
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        description="the client's concurrency cap (closed loop), for request logs; a bench result has max_concurrency",
    )
    catalog: list[str] = Field(
        default_factory=list,
        description="extra catalog files (paths relative to the sidecar), as a scenario's catalog:",
    )

    _version_text = field_validator("vllm_version", mode="before")(version_as_text)


@dataclass
class LogSettings:
    """How the server of a logged run ran, validated against the catalog."""

    gpu: str
    model: str
    tensor_parallel: int
    weights: str
    kv_cache: str
    engine: dict  # scenario ``engine:`` mapping (num_gpu_blocks -> num_gpu_blocks_override)
    vllm_version: str | None
    concurrency: int | None
    catalogs: tuple[Path, ...]  # absolute paths of extra catalog files
    source: str  # the sidecar file (and overrides) the settings came from
    notes: list[str] = field(default_factory=list)  # defaults assumed
    expert_parallel: bool = False  # vLLM --enable-expert-parallel
    policy: str | None = None  # the replay's batching policy where the engine's own differs (engine_core v0)
    client_cpu: dict | None = None  # the client's own CPU (calibration/logs/client_cpu.py), from the sidecar


def find_sidecar(log: Path) -> Path | None:
    """The sidecar of ``log``: ``<stem>.fleetcast.yaml|yml|json`` beside it, else the folder's fleetcast.yaml."""
    log = Path(log)
    for suffix in SIDECAR_SUFFIXES:
        cand = log.with_name(log.stem + suffix)
        if cand.is_file():
            return cand
    cand = log.parent / _FOLDER_SIDECAR
    return cand if cand.is_file() else None


def load_settings(log: Path, sidecar: Path | None = None, overrides: list[str] | None = None) -> LogSettings:
    """Validate the sidecar of ``log`` (``sidecar`` if given, else ``find_sidecar``) with ``overrides``."""
    overrides = list(overrides or [])
    path = Path(sidecar) if sidecar is not None else find_sidecar(log)
    if path is None and not overrides:
        names = ", ".join(Path(log).stem + s for s in SIDECAR_SUFFIXES)
        raise FleetcastError(
            f"{log}: no engine settings for this log. Write a sidecar beside it ({names} or "
            f"{_FOLDER_SIDECAR} in its folder; {_DOC}) naming at least gpu and model from the fleetcast catalog, "
            "or pass --sidecar FILE, or --gpu NAME --model NAME"
        )
    data, lines = ({}, {}) if path is None else load_yaml_with_lines(path)
    where = str(path) if path is not None else "the command line (--gpu/--model/--sidecar-set)"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FleetcastError(
            f"{where}: a sidecar is a mapping of settings (gpu, model, engine, ...; {_DOC}), got {type(data).__name__}"
        )
    if overrides:
        data = apply_overrides(data, overrides, "--sidecar-set")
        where += " with " + " ".join(overrides)
    try:
        sc = Sidecar.model_validate(data)
    except ValidationError as exc:
        raise FleetcastError(
            format_validation_error(exc, where, lines, model=Sidecar).replace("docs/scenario-reference.md", _DOC)
        ) from None
    base = path.parent if path is not None else Path.cwd()
    catalogs = tuple((base / c).resolve() for c in sc.catalog)
    for i, c in enumerate(catalogs):
        if not c.is_file():
            line = lines.get(("catalog", i))
            raise FleetcastError(
                f"{where}{f', line {line}' if line else ''}, field catalog.{i}: catalog file {c} not found"
            )
    cat = load_catalog(catalogs)

    for key, lookup in (("gpu", cat.gpu), ("model", cat.model)):
        try:
            lookup(getattr(sc, key))  # the catalog's message lists the valid names, with a did-you-mean
        except FleetcastError as exc:
            line = lines.get((key,))
            raise FleetcastError(f"{where}{f', line {line}' if line else ''}, field {key}: {exc}") from None
    given = sc.engine.model_dump(exclude_none=True)
    blocks = given.pop("num_gpu_blocks", None)
    defaults = EngineSpec()
    short = path.name if path is not None else "the command line"
    assumed = {
        k: getattr(defaults, k) for k in ("max_num_seqs", "max_num_batched_tokens", "block_size") if k not in given
    }
    notes = [
        f"engine.{k} not given ({short}); assumed {v!r}, fleetcast's default (vLLM's depends on its version "
        "and the GPU)"
        for k, v in assumed.items()
    ]
    engine = {
        **assumed,
        **given,
        **({"num_gpu_blocks_override": blocks} if blocks else {}),
        **({"vllm_version": sc.vllm_version} if sc.vllm_version else {}),
        # the engine's CPU side (sim.perf.cpu_side.is_v0): V0's rules need the version they are of
        **({"engine_core": sc.engine_core} if sc.engine_core and sc.vllm_version else {}),
    }
    if sc.engine_core == "v0" and not sc.vllm_version:
        notes.append(
            f"engine_core v0 without a vllm_version ({short}): replayed with V0's prefill-first scheduler where "
            "chunked prefill is off, but with the newest vLLM's CPU side; name the version for V0's"
        )
    try:
        EngineSpec.model_validate(engine)
    except ValidationError as exc:
        raise FleetcastError(_engine_error(exc, where, lines)) from None
    if blocks is None:
        notes.append(
            f"engine.num_gpu_blocks not given ({short}): the KV blocks are planned from GPU memory "
            "(gpu_memory_utilization); give the count the server logged for an exact replay"
        )
    # vLLM V0's default scheduler without chunked prefill (vllm/core/scheduler.py, _schedule_default):
    # a step prefills the waiting prompts that fit, and decodes only when no prefill was scheduled
    policy = "prefill-first" if sc.engine_core == "v0" and not engine.get("enable_chunked_prefill", True) else None
    return LogSettings(
        sc.gpu,
        sc.model,
        sc.tensor_parallel,
        sc.quantization.weights,
        sc.quantization.kv_cache,
        engine,
        sc.vllm_version,
        sc.concurrency,
        catalogs,
        where,
        notes,
        sc.expert_parallel,
        policy,
        sc.client_cpu.model_dump() if sc.client_cpu is not None else None,
    )


def _engine_error(exc: ValidationError, where: str, lines: dict) -> str:
    """A rule across the engine settings (``EngineSpec``'s checks: engine_core against vllm_version,
    a flag against the version that has it) located at the sidecar keys that feed it: the engine
    section, vllm_version and engine_core, each with its line where the file gives it."""
    given = [k for k in ("engine_core", "vllm_version", "engine") if (k,) in lines]
    at = ", ".join(f"line {lines[(k,)]} ({k})" for k in given)
    text = format_validation_error(exc, where, {}, model=EngineSpec)
    return text.replace(f"{where}: field (top level):", f"{where}{', ' + at if at else ''}:", 1).replace(
        f"{where}: field ", f"{where}{', ' + at if at else ''}, field engine.", 1
    )
