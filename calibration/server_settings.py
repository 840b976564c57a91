"""How the server of a testbed run ran, where run.json does not say it directly.

A run the testbed made against a server it started records the engine arguments it
passed (``engine_args``: dtype, max_num_seqs, ...). A run against an *attached* server
(``fleetcast testbed run --url``) has ``engine_args: null``: the testbed did not start
it. What it did record is the server's ``vllm:cache_config_info`` from ``/metrics``
(``kv_cache.cache_config_info``: block size, KV blocks, KV memory and tokens, cache
dtype). From those:

- the model dtype, when the KV cache is in the model's dtype (``cache_dtype: auto``) and
  its blocks were sized from its memory (no ``num_gpu_blocks_override``): bytes per KV
  element = ``kv_cache_memory_bytes / (num_gpu_blocks x block_size x 2 x layers x
  kv_heads x head_dim)``, 4 -> float32, 2 -> 16-bit (bfloat16 and float16 replay alike);
- ``max_model_len`` = ``kv_cache_size_tokens / kv_cache_max_concurrency``.

What ``/metrics`` never says (the scheduler's max_num_seqs, max_num_batched_tokens) takes
vLLM's CPU defaults, with a note. ``--sidecar-set dtype=... engine.KEY=...`` wins over all
of it; a dtype that can be neither read nor derived is refused, naming what to pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.errors import FleetcastError
from sim.scenario.yamlio import apply_overrides, format_validation_error

__all__ = ["RunOverrides", "run_overrides", "kv_element_bytes", "derived_max_model_len", "server_dtype"]

_FLAG = "--sidecar-set"
_DOC = 'docs/testbed.md, "Runs against an attached server"'
_ELEMENT_DTYPES = {4: "float32", 2: "bfloat16"}  # bytes per KV element -> the dtype replayed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunEngine(_Strict):
    """Scheduler settings of the server, where run.json lacks them (an attached server)."""

    max_num_seqs: int | None = Field(None, ge=1, le=4096)
    max_num_batched_tokens: int | None = Field(None, ge=16, le=1_048_576)
    max_model_len: int | None = Field(None, ge=16, le=1_048_576)


class RunOverrides(_Strict):
    """``--sidecar-set`` for a testbed run folder: the server's ``--dtype`` and scheduler settings."""

    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None, description="the server's --dtype (vLLM's model dtype)"
    )
    engine: RunEngine = Field(default_factory=RunEngine)


def run_overrides(overrides: list[str] | None) -> RunOverrides:
    """``--sidecar-set KEY=VALUE`` strings validated as a run folder's settings."""
    if not overrides:
        return RunOverrides()
    where = (
        f"{_FLAG} {' '.join(overrides)} (for a testbed run folder: dtype, engine.max_num_seqs, "
        "engine.max_num_batched_tokens, engine.max_model_len)"
    )
    try:
        return RunOverrides.model_validate(apply_overrides({}, list(overrides), _FLAG))
    except ValidationError as exc:
        raise FleetcastError(
            format_validation_error(exc, where, {}, model=RunOverrides).replace("docs/scenario-reference.md", _DOC)
        ) from None


def _number(info: dict, key: str) -> float | None:
    try:
        value = float(info.get(key))  # type: ignore[arg-type]  # None and "None" fall to the except
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def kv_element_bytes(info: dict, cfg: dict) -> tuple[int | None, str]:
    """(bytes per KV element, '') from ``vllm:cache_config_info``'s labels and the model's
    config.json; (None, why not) when they do not tell it."""
    if str(info.get("cache_dtype", "")) != "auto":
        return None, (
            f"its KV cache dtype is {info.get('cache_dtype')!r}, not 'auto', so the KV size says "
            "nothing of the model dtype"
            if info.get("cache_dtype")
            else "it has no cache_dtype"
        )
    if _number(info, "num_gpu_blocks_override") is not None:
        return None, "its KV blocks were overridden (num_gpu_blocks_override), not sized from its memory"
    mem, blocks, block = (
        _number(info, "kv_cache_memory_bytes"),
        _number(info, "num_gpu_blocks"),
        _number(info, "block_size"),
    )
    if mem is None or blocks is None or block is None:
        missing = [
            k
            for k, v in (("kv_cache_memory_bytes", mem), ("num_gpu_blocks", blocks), ("block_size", block))
            if v is None
        ]
        return None, f"it lacks {', '.join(missing)}"
    layers, heads, hidden = cfg.get("num_hidden_layers"), cfg.get("num_attention_heads"), cfg.get("hidden_size")
    kv_heads = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or (
        hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else None
    )
    if not (
        isinstance(layers, int)
        and isinstance(kv_heads, int)
        and isinstance(head_dim, int)
        and min(layers, kv_heads, head_dim) > 0
    ):
        return None, "the model config lacks num_hidden_layers, num_key_value_heads or head_dim"
    per_element = mem / (blocks * block * 2 * layers * kv_heads * head_dim)  # K and V per layer
    for size in _ELEMENT_DTYPES:  # blocks = floor(memory / block bytes): the estimate is at most a block over
        if size <= per_element * (1 + 1e-9) and per_element < size * (blocks + 1) / blocks:
            return size, ""
    return None, f"its KV memory gives {per_element:.3g} bytes per element, neither 4 (float32) nor 2 (16-bit)"


def derived_max_model_len(info: dict) -> int | None:
    """``kv_cache_size_tokens / kv_cache_max_concurrency`` (vLLM divides the first by
    max_model_len to get the second), when both are there and give a whole number."""
    tokens, conc = _number(info, "kv_cache_size_tokens"), _number(info, "kv_cache_max_concurrency")
    if tokens is None or conc is None:
        return None
    value = tokens / conc
    return round(value) if abs(value - round(value)) < 1e-6 * value else None


def server_dtype(meta_path: Path, engine_args: dict, info: dict, cfg: dict, given: str | None) -> tuple[str, list[str]]:
    """The server's dtype and the notes saying where it came from: ``given`` (--sidecar-set),
    else engine_args.dtype (a server the testbed started), else derived from /metrics; refused
    when none of them tells it."""
    if given:
        return given, []
    if engine_args.get("dtype"):
        return str(engine_args["dtype"]), []
    size, why = kv_element_bytes(info, cfg)
    attached = (
        "an attached server (engine_args is null: the testbed did not start it)"
        if not engine_args
        else "a server whose engine_args has no dtype"
    )
    if size is None:
        raise FleetcastError(
            f"{meta_path}: the run was made against {attached}, so run.json does not record the server's "
            f"--dtype, and the /metrics labels it recorded (kv_cache.cache_config_info) do not tell it: {why}. "
            f"Pass the dtype the server ran with: --sidecar-set dtype=float32 (or bfloat16, float16)"
        )
    dtype = _ELEMENT_DTYPES[size]
    said = "float32" if size == 4 else "16-bit: bfloat16 and float16 replay alike; taken as bfloat16"
    return dtype, [
        f"{attached}: dtype {said}, from the KV cache size it reported on /metrics "
        f"({size} bytes per KV element); --sidecar-set dtype=... sets it"
    ]
