"""The hardware/model/quantization catalog: YAML data with a source per number.

``load_catalog()`` reads the built-in YAML files (cached) and then user files
with the same top-level keys (``gpus:``, ``models:``, ``quantization:`` holding
``weights:``/``kv_cache:``, ``links:`` the KV-transfer links of disaggregated serving). A user entry with an existing name is merged field
by field over it (``gpus: {h100-sxm: {price_usd_per_hour: 2.1}}`` overrides one
price); a new name gives every required field. User numbers without a
``sources:`` line are attributed to the user's file.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from sim.errors import FleetcastError, unknown_name
from sim.infiles import MAX_CATALOG_BYTES, parse_yaml, read_text_limited

__all__ = [
    "GPU",
    "ModelSpec",
    "QuantSpec",
    "Link",
    "Catalog",
    "Architecture",
    "load_catalog",
    "load_architectures",
    "DTYPES",
]

_DIR = Path(__file__).resolve().parent
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
_SECTIONS = {"gpus": "gpu", "models": "model", "weights": "weights", "kv_cache": "kv_cache", "links": "link"}
_SECTION_OF = {
    "gpu": ("gpus",),
    "model": ("models",),
    "weights": ("quantization", "weights"),
    "kv_cache": ("quantization", "kv_cache"),
    "link": ("links",),
}  # kind -> its keys in a catalog file


@dataclass(frozen=True)
class GPU:
    """One accelerator. Units are in the names; FLOP/s are dense peaks."""

    name: str
    peak_flops: Mapping[str, float]  # dtype -> FLOP/s (OP/s for ints), per GPU
    hbm_bytes: float  # device memory capacity
    hbm_bw_bytes_s: float  # peak device memory bandwidth
    interconnect_bw_bytes_s: float  # GPU-to-GPU, one direction
    power_w: float  # TDP / total board power
    price_usd_per_hour: float  # an assumption; scenarios override in pricing:
    description: str = ""
    interconnect: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)
    perf_defaults: Mapping[str, float] = field(default_factory=dict)  # PerfCoefficients used without a profile
    gpus_per_node: int = 0  # GPUs one server holds: the most a tensor-parallel group spans (0: not given)
    device_memory_bytes: float = 0.0  # memory as the device reports it (torch/vLLM total); 0: derived from
    # hbm_bytes by sim.perf.memory.device_memory_bytes
    purchase_usd: float = 0.0  # buying one GPU with its server share (an assumption; 0: not given);
    # scenarios override in pricing.own.purchase_usd_per_gpu
    architecture: str = ""  # architectures.yaml key: the roofline efficiencies without kernel data
    kernel_data: str = ""  # aiconfigurator-core system with this GPU's measured vLLM kernels ("": none)
    achievable_flops: Mapping[str, float] = field(default_factory=dict)  # dtype -> GEMM FLOP/s measured on this
    # GPU (a microbenchmark), at most peak_flops; sim.perf.achievable turns it into e_compute
    achievable_bw_bytes_s: float = 0.0  # memory bandwidth measured on this GPU (copy), at most hbm_bw_bytes_s (0: none)
    power_limit_min_w: float = 0.0  # lowest nvidia-smi -pl limit the board accepts (0: not given)
    power_limit_max_w: float = 0.0  # highest nvidia-smi -pl limit (0: not given); fleet[].power_limit_w lies between


@dataclass(frozen=True)
class Link:
    """A link that carries KV cache from a prefill GPU to a decode GPU (links.yaml)."""

    name: str
    bandwidth_bytes_s: float  # per GPU, one direction
    latency_s: float  # fixed time per transfer
    description: str = ""
    scope: str = ""  # "within a server" or "between servers"
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Architecture:
    """Roofline efficiencies of one GPU architecture, fitted to a sibling's measured kernels."""

    name: str
    sibling: str = ""  # aiconfigurator-core system they were fitted on ("": none, defaults apply)
    e_compute: Mapping[str, float] = field(default_factory=dict)  # linear-layer dtype -> efficiency
    e_memory: float | None = None
    source: str = ""

    def e_compute_for(self, dtype: str) -> float | None:
        """The efficiency of ``dtype`` (bf16's for a dtype not fitted; None without a fit)."""
        return self.e_compute.get(dtype, self.e_compute.get("bf16"))


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer (gated MLP), as in its HF config.json."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    num_experts: int = 1  # 1 = dense
    num_experts_active: int = 1
    moe_intermediate_size: int = 0
    attention_bias: bool = False
    qk_norm: bool = False
    qk_norm_all_reduce: bool = False  # the q/k RMSNorm spans all heads: one more TP all-reduce per layer
    shared_expert_intermediate_size: int = 0  # MoE: width of the always-on shared expert MLP(s) of a MoE layer
    first_dense_layers: int = 0  # MoE: leading layers with a dense MLP (intermediate_size) instead of experts
    kv_lora_rank: int = 0  # MLA: width of the compressed KV latent cached per token and layer (0: not MLA)
    q_lora_rank: int = 0  # MLA: query compression rank (0: queries projected from the hidden state directly)
    qk_rope_head_dim: int = 0  # MLA: rotary part of each query/key head (cached once per token, beside the latent)
    qk_nope_head_dim: int = 0  # MLA: non-rotary part of each query/key head
    v_head_dim: int = 0  # MLA: value head size
    # tokens every layer's attention sees (config.json sliding_window); 0 here: none given, full attention
    # (the catalog writes null or leaves it out, as config.json does; vLLM's ModelConfig.get_hf_config_sliding_window()
    # returns None, "disabled", for it: vllm/config.py)
    sliding_window: int = 0
    hf_id: str = ""
    source: str = ""

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3): one compressed KV latent per token."""
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is routed experts (0 for a dense model)."""
        return self.num_layers - self.first_dense_layers if self.num_experts > 1 else 0

    @property
    def params_shared_expert(self) -> int:
        """The shared expert MLP(s) of one MoE layer (gate, up, down), 0 without."""
        return 3 * self.hidden_size * self.shared_expert_intermediate_size

    @property
    def params_dense_mlp(self) -> int:
        """One dense gated MLP of ``intermediate_size`` (a dense model's MLP, an MoE model's leading
        dense layers)."""
        return 3 * self.hidden_size * self.intermediate_size

    @property
    def params_attention_per_layer(self) -> int:
        """q, k, v, o projections (+ q/k/v biases, + per-head q/k norms). MLA: the query
        projection (through its low-rank compression when ``q_lora_rank``), the KV down-projection
        to latent + rotary key, the latent's norm, the latent's up-projection to per-head
        non-rotary keys and values, and the output projection."""
        h = self.hidden_size
        if self.is_mla:
            H, qk = self.num_heads, self.qk_nope_head_dim + self.qk_rope_head_dim
            q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * H * qk if self.q_lora_rank else h * H * qk
            kv = (
                h * (self.kv_lora_rank + self.qk_rope_head_dim)
                + self.kv_lora_rank
                + self.kv_lora_rank * H * (self.qk_nope_head_dim + self.v_head_dim)
            )
            return q + kv + H * self.v_head_dim * h
        q, kv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return h * (q + 2 * kv) + q * h + (q + 2 * kv) * self.attention_bias + 2 * self.head_dim * self.qk_norm

    @property
    def params_per_expert(self) -> int:
        """One gated MLP (gate, up, down) of one expert, or the dense MLP."""
        width = self.moe_intermediate_size if self.num_experts > 1 else self.intermediate_size
        return 3 * self.hidden_size * width

    @property
    def params_dense_per_layer(self) -> int:
        """Per-layer params every token uses: attention, 2 norms, MoE router."""
        router = self.hidden_size * self.num_experts if self.num_experts > 1 else 0
        return self.params_attention_per_layer + 2 * self.hidden_size + router

    @property
    def params_embedding(self) -> int:
        """Input embedding plus the LM head (counted once when tied)."""
        return self.vocab_size * self.hidden_size * (1 if self.tie_word_embeddings else 2)

    @property
    def params_16bit(self) -> int:
        """Parameters kept 16-bit in every quantization: embeddings, LM head, norms, MoE routers."""
        router = self.hidden_size * self.num_experts if self.num_experts > 1 else 0
        return (
            self.params_embedding + self.num_layers * 2 * self.hidden_size + self.moe_layers * router + self.hidden_size
        )

    @property
    def params_routed_experts(self) -> int:
        """All routed experts of all MoE layers (0 for a dense model)."""
        return self.moe_layers * self.num_experts * self.params_per_expert

    @property
    def params_total(self) -> int:
        """All parameters, every expert: what has to sit in memory (+ final norm)."""
        if self.num_experts == 1:
            per_layer = self.params_dense_per_layer + self.params_per_expert
            return self.num_layers * per_layer + self.params_embedding + self.hidden_size
        dense = self.first_dense_layers * self.params_dense_mlp + self.moe_layers * self.params_shared_expert
        return (
            self.params_16bit + self.num_layers * self.params_attention_per_layer + dense + self.params_routed_experts
        )

    @property
    def params_active(self) -> int:
        """Parameters one token touches (only its top-k routed experts; shared experts always)."""
        return (
            self.params_total - self.moe_layers * (self.num_experts - self.num_experts_active) * self.params_per_expert
        )

    def kv_bytes_per_token(self, kv_bytes_per_elem: float) -> float:
        """KV-cache bytes of one token over all layers: 2·L·kv_heads·d_head·b; MLA: one latent
        plus the rotary key per layer, L·(kv_lora_rank + qk_rope_head_dim)·b."""
        if self.is_mla:
            return self.num_layers * (self.kv_lora_rank + self.qk_rope_head_dim) * kv_bytes_per_elem
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * kv_bytes_per_elem


@dataclass(frozen=True)
class QuantSpec:
    """A weight scheme combined with a KV-cache scheme."""

    weights: str
    kv_cache: str
    weight_bytes_per_param: float  # quantized linear layers only
    compute_dtype: str  # peak_flops key of the linear layers
    kv_bytes_per_elem: float  # per cached K or V element
    fallback_compute_dtype: str = "bf16"  # used where the GPU lacks compute_dtype
    activation_bytes: float = 2.0  # per activation element between layers

    def compute_dtype_on(self, gpu: GPU) -> str:
        """The peak_flops key the linear layers actually run at on ``gpu``."""
        for dtype in (self.compute_dtype, self.fallback_compute_dtype):
            if dtype in gpu.peak_flops:
                return dtype
        raise FleetcastError(
            f"GPU '{gpu.name}' has neither '{self.compute_dtype}' nor "
            f"'{self.fallback_compute_dtype}' in peak_flops, needed for "
            f"'{self.weights}' weights; add one to its catalog entry."
        )


_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "Mapping[str, float]": dict}


def _schema(cls: type, skip: tuple[str, ...] = ()) -> dict[str, tuple[type, bool]]:
    """field -> (type, required) of a catalog dataclass (annotations are strings here)."""
    # f.type is the annotation's str (from __future__ import annotations)
    return {
        f.name: (_TYPES[f.type], f.default is MISSING and f.default_factory is MISSING)  # type: ignore[index]
        for f in fields(cls)
        if f.name not in ("name", "source", "sources", *skip)
    }


_FIELDS: dict[str, dict[str, tuple[type, bool]]] = {
    "gpu": _schema(GPU),
    "model": {**_schema(ModelSpec), "head_dim": (int, False)},
    "weights": {**_schema(QuantSpec, ("weights", "kv_cache", "kv_bytes_per_elem")), "group_size": (int, False)},
    "kv_cache": {"kv_bytes_per_elem": (float, True)},
    "link": _schema(Link),
}


def _value(value: Any, typ: type, where: str) -> Any:
    """Check one field's type; numbers must be positive (and whole for ints)."""
    if typ in (bool, str):
        if not isinstance(value, typ):
            raise FleetcastError(f"{where}: expected {'true/false' if typ is bool else 'text'}, got {value!r}")
        return value
    try:  # float() also accepts "989.4e12", which YAML 1.1 reads as text
        num = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        num = math.nan
    if not math.isfinite(num) or num <= 0 or (typ is int and num != int(num)):
        kind = "a positive whole number" if typ is int else "a positive number"
        raise FleetcastError(f"{where}: expected {kind}, got {value!r}")
    return int(num) if typ is int else num


def _check_entry(kind: str, name: str, raw: Any, where: str) -> dict:
    """Validate one raw entry; return it with numbers converted."""
    if not isinstance(raw, dict):
        raise FleetcastError(f"{where}: {kind} '{name}' must be a mapping of fields, got {raw!r}")
    fields = _FIELDS[kind]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{where}, {kind} '{name}', field '{key}'"
        try:
            _check_field(kind, key, value, at, fields, out)
        except FleetcastError as exc:  # the field's line in the file, looked up on this error path only
            line = _line_of(where, (*_SECTION_OF[kind], name, key))
            raise FleetcastError(str(exc).replace(at, f"{where}{line}, {kind} '{name}', field '{key}'", 1)) from None
    missing = [k for k, (_, req) in fields.items() if req and k not in out]
    if missing:
        raise FleetcastError(f"{where}: {kind} '{name}' is missing required field(s): {', '.join(missing)}")
    if kind == "gpu":
        _check_achievable(out, name, where)
    if kind == "model":
        out.setdefault("head_dim", out["hidden_size"] // out["num_heads"])
        e, k = out.setdefault("num_experts", 1), out.setdefault("num_experts_active", 1)
        if out["num_heads"] % out["num_kv_heads"] or k > e or (e > 1 and "moe_intermediate_size" not in out):
            raise FleetcastError(
                f"{where}: model '{name}': num_heads must be a multiple of num_kv_heads, "
                "num_experts_active <= num_experts, and MoE needs moe_intermediate_size"
            )
        _check_moe_mla(out, name, where)
        if out.get("qk_norm_all_reduce") and not out.get("qk_norm"):
            line = _line_of(where, ("models", name, "qk_norm_all_reduce"))
            raise FleetcastError(
                f"{where}{line}, model '{name}', field 'qk_norm_all_reduce': the all-reduce is of the q/k "
                "RMSNorm's variances across heads, so it needs qk_norm: true (the model normalizes q and k); "
                "without q/k norms leave qk_norm_all_reduce out"
            )
    return out


def _check_field(kind: str, key: str, value: Any, at: str, fields: dict, out: dict) -> None:
    """Check one field of a raw entry and put it, converted, in ``out``; ``at`` names it in errors."""
    if key == "source":
        out[key] = _value(value, str, at)
    elif key == "sources":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise FleetcastError(f"{at}: must map field names to source text")
        out[key] = dict(value)
    elif key == "peak_flops" and kind == "gpu":
        if not isinstance(value, dict) or not value or set(value) - set(DTYPES):
            raise FleetcastError(f"{at}: must map dtypes ({', '.join(DTYPES)}) to FLOP/s, got {value!r}")
        out[key] = {dt: _value(v, float, f"{at}.{dt}") for dt, v in value.items()}
    elif key == "achievable_flops" and kind == "gpu":
        if not isinstance(value, dict) or not value or set(value) - set(DTYPES):
            raise FleetcastError(f"{at}: must map dtypes ({', '.join(DTYPES)}) to measured FLOP/s, got {value!r}")
        out[key] = {dt: _value(v, float, f"{at}.{dt}") for dt, v in value.items()}
    elif key == "perf_defaults" and kind == "gpu":
        valid = (
            "e_compute",
            "e_memory",
            "e_comm",
            "e_attn_compute",
            "e_attn_memory",
            "t_step_s",
            "t_seq_s",
            "t_prefill_tok_s",
            "t_allreduce_s",
        )
        if not isinstance(value, dict) or set(value) - set(valid):
            raise FleetcastError(
                f"{at}: must map performance coefficients ({', '.join(valid)}) to numbers, got {value!r}"
            )
        out[key] = {k: _value(v, float, f"{at}.{k}") for k, v in value.items()}
        bad = [k for k, v in out[key].items() if k.startswith("e_") and v > 1]
        if bad:
            raise FleetcastError(f"{at}.{bad[0]}: an efficiency is at most 1, got {out[key][bad[0]]}")
    elif key == "architecture" and kind == "gpu":
        out[key] = _value(value, str, at)
        if value not in load_architectures():
            raise FleetcastError(f"{at}: " + unknown_name("architecture", value, load_architectures()))
    elif key == "sliding_window" and kind == "model":
        _check_window(value, at, out)
    elif key in fields:
        out[key] = _value(value, fields[key][0], at)
    else:
        raise FleetcastError(f"{at}: unknown field. Valid fields: {', '.join(sorted([*fields, 'sources']))}")


def _check_window(value: Any, at: str, out: dict) -> None:
    """A model's ``sliding_window``: a window of whole tokens, or null for full attention (as in
    config.json: Mistral-7B-v0.3 writes null). A window of 0 tokens attends to nothing, so 0 is refused
    rather than read as full attention."""
    if value is None:
        return  # full attention: the field's default
    try:
        out["sliding_window"] = _value(value, int, at)
    except FleetcastError:
        raise FleetcastError(
            f"{at}: expected a window of tokens (a positive whole number, config.json's sliding_window, e.g. "
            f"4096), or null for full attention, got {value!r}"
        ) from None


def _line_of(where: str, keys: tuple[str, ...]) -> str:
    """The ", line N" of ``keys`` (gpus, name, field, ...) in the catalog file ``where`` names, or ""
    (read again on the error path only; a key the file does not hold, e.g. a built-in value, has none)."""
    path = Path(where.removeprefix("catalog file "))
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return ""
        node = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    return "" if node is None else f", line {node.start_mark.line + 1}"


def _check_achievable(out: dict, name: str, where: str) -> None:
    """A GPU's achievable rates are measured, so at most its datasheet peaks (same dtype)."""
    at = f"{where}, gpu '{name}'"
    peaks = out.get("peak_flops", {})
    for dt, rate in out.get("achievable_flops", {}).items():
        at = f"{where}{_line_of(where, ('gpus', name, 'achievable_flops', dt))}, gpu '{name}'"
        if dt not in peaks:
            raise FleetcastError(
                f"{at}, field 'achievable_flops.{dt}': no datasheet peak for {dt} (peak_flops has "
                f"{', '.join(sorted(peaks)) or 'none'}); add peak_flops.{dt} or leave this rate out"
            )
        if rate > peaks[dt]:
            raise FleetcastError(
                f"{at}, field 'achievable_flops.{dt}': {rate:.4g} FLOP/s is above the datasheet peak "
                f"peak_flops.{dt} = {peaks[dt]:.4g}; an achievable rate is at most the peak (check the "
                "measurement's dtype and units, or the peak: dense, FLOP/s)"
            )
    bw = out.get("achievable_bw_bytes_s")
    if bw is not None and "hbm_bw_bytes_s" in out and bw > out["hbm_bw_bytes_s"]:
        at = f"{where}{_line_of(where, ('gpus', name, 'achievable_bw_bytes_s'))}, gpu '{name}'"
        raise FleetcastError(
            f"{at}, field 'achievable_bw_bytes_s': {bw:.4g} B/s is above the datasheet bandwidth "
            f"hbm_bw_bytes_s = {out['hbm_bw_bytes_s']:.4g}; an achievable rate is at most the peak"
        )


_MLA_FIELDS = ("q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")
_MOE_ONLY = ("moe_intermediate_size", "shared_expert_intermediate_size", "first_dense_layers")


def _check_moe_mla(out: dict, name: str, where: str) -> None:
    """MoE fields only on an MoE model, MLA fields only with kv_lora_rank (and then all of them)."""
    at = f"{where}, model '{name}'"
    if out["num_experts"] == 1:
        given = [f for f in _MOE_ONLY[1:] if f in out]
        if given:
            raise FleetcastError(
                f"{at}, field '{given[0]}': only a mixture-of-experts model (num_experts > 1) "
                f"has {given[0]}; this model is dense (num_experts 1)"
            )
    if out.get("first_dense_layers", 0) >= out["num_layers"]:
        raise FleetcastError(
            f"{at}, field 'first_dense_layers': {out['first_dense_layers']} leaves no MoE layer "
            f"of the {out['num_layers']} (num_layers)"
        )
    if "kv_lora_rank" not in out:
        given = [f for f in _MLA_FIELDS if f in out]
        if given:
            raise FleetcastError(
                f"{at}, field '{given[0]}': MLA parameters on a non-MLA model; multi-head latent "
                f"attention needs kv_lora_rank (the cached latent's width) and "
                f"{', '.join(_MLA_FIELDS[1:])}"
            )
        return
    missing = [f for f in _MLA_FIELDS[1:] if f not in out]
    if missing:
        raise FleetcastError(f"{at}: an MLA model (kv_lora_rank given) also needs {', '.join(missing)}")


def _read(path: Path) -> dict[str, dict[str, tuple[dict, str]]]:
    """Read one catalog file -> {kind: {name: (raw entry, file)}}."""
    # a regular file of at most MAX_CATALOG_BYTES, parsed within the scenario file's YAML limits
    doc = parse_yaml(read_text_limited(path, MAX_CATALOG_BYTES, "catalog file"), f"catalog file {path}")[0] or {}
    if not isinstance(doc, dict):
        raise FleetcastError(f"catalog file {path}: top level must be a mapping with gpus:, models:, quantization:")
    unknown = set(doc) - {"gpus", "models", "quantization", "links"}
    quant = doc.get("quantization") or {}
    if unknown or not isinstance(quant, dict) or set(quant) - {"weights", "kv_cache"}:
        raise FleetcastError(
            f"catalog file {path}: unknown key(s) {sorted(unknown or quant)}. Valid: "
            "gpus, models, quantization (holding weights, kv_cache), links."
        )
    out: dict[str, dict] = {}
    for section, entries in [
        ("gpus", doc.get("gpus")),
        ("models", doc.get("models")),
        ("links", doc.get("links")),
        *quant.items(),
    ]:
        if not isinstance(entries or {}, dict):
            raise FleetcastError(f"catalog file {path}: '{section}' must map names to entries")
        out[_SECTIONS[section]] = {str(n): (raw, str(path)) for n, raw in (entries or {}).items()}
    return out


def _leaves(entry: dict, numbers_only: bool = True, prefix: str = "") -> list[str]:
    """Dotted paths of an entry's values ('peak_flops.bf16'), sources excluded."""
    out = []
    for key, value in entry.items():
        if isinstance(value, dict) and key != "sources":
            out += _leaves(value, numbers_only, f"{prefix}{key}.")
        elif key not in ("sources", "source") and (
            not numbers_only or isinstance(value, (int, float)) and not isinstance(value, bool)
        ):
            out.append(f"{prefix}{key}")
    return out


def _source_for(entry: dict, path: str) -> str:
    """The source of one number: its 'sources' key, else a parent's, else 'source'."""
    sources, parts = entry.get("sources") or {}, path.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in sources:
            return sources[".".join(parts[:i])]
    return entry.get("source", "")


def _attribute(raw: Any, file: str) -> Any:
    """Give each value of a user entry that has no source the user file as source."""
    if not isinstance(raw, dict) or not isinstance(raw.get("sources", {}), dict):
        return raw  # _check_entry reports the error
    raw = {**raw, "sources": dict(raw.get("sources", {}))}
    for path in _leaves(raw, numbers_only=False):
        if not _source_for(raw, path):
            raw["sources"][path] = f"user catalog file {file}"
    return raw


class Catalog:
    """Read-only lookups over the merged catalog entries."""

    def __init__(self, entries: Mapping[str, Mapping[str, dict]]):
        self._raw = entries
        self._gpus = {n: GPU(name=n, **_public(e, GPU)) for n, e in entries["gpu"].items()}
        self._models = {n: ModelSpec(name=n, **_public(e, ModelSpec)) for n, e in entries["model"].items()}
        self._links = {n: Link(name=n, **_public(e, Link)) for n, e in entries["link"].items()}

    def gpu(self, name: str) -> GPU:
        return self._lookup(self._gpus, "GPU", name)

    def model(self, name: str) -> ModelSpec:
        return self._lookup(self._models, "model", name)

    def quant(self, weights: str, kv_cache: str = "auto") -> QuantSpec:
        w = self._lookup(self._raw["weights"], "weight quantization", weights)
        kv = self._lookup(self._raw["kv_cache"], "KV-cache dtype", kv_cache)
        return QuantSpec(
            weights=weights, kv_cache=kv_cache, **_public(w, QuantSpec), kv_bytes_per_elem=kv["kv_bytes_per_elem"]
        )

    def link(self, name: str) -> Link:
        return self._lookup(self._links, "KV-transfer link", name)

    def link_names(self) -> list[str]:
        return sorted(self._links)

    def gpu_names(self) -> list[str]:
        return sorted(self._gpus)

    def model_names(self) -> list[str]:
        return sorted(self._models)

    def weight_schemes(self) -> list[str]:
        return sorted(self._raw["weights"])

    def kv_schemes(self) -> list[str]:
        return sorted(self._raw["kv_cache"])

    def source_of(self, kind: str, name: str) -> dict[str, str]:
        """``{field path: source}`` for every number of an entry; kind: gpu|model|weights|kv_cache|link."""
        entry = self._lookup(self._lookup(self._raw, "catalog kind", kind), kind, name)
        return {p: _source_for(entry, p) for p in _leaves(entry)}

    @staticmethod
    def _lookup(table: Mapping[str, Any], kind: str, name: str) -> Any:
        try:
            return table[name]
        except (KeyError, TypeError):
            msg = unknown_name(kind, name, table)
        # difflib alone would answer 'h100' with 'h200'; a unique prefix match wins
        starts = [v for v in table if v.lower().startswith(str(name).lower())]
        if len(starts) == 1 and " Valid " in msg:
            msg = f"unknown {kind} '{name}'. Did you mean '{starts[0]}'? Valid {msg.split(' Valid ', 1)[1]}"
        raise FleetcastError(msg)


def _public(entry: dict, cls: Any) -> dict:
    """The entry's dataclass fields, with mappings made read-only."""
    return {
        k: MappingProxyType(dict(v)) if isinstance(v, dict) else v
        for k, v in entry.items()
        if k in cls.__dataclass_fields__
    }


def _build(files: Sequence[Path]) -> Catalog:
    entries: dict[str, dict[str, dict]] = {k: {} for k in _SECTIONS.values()}
    for path in files:
        for kind, table in _read(Path(path)).items():
            for name, (raw, file) in table.items():
                raw = raw if Path(file) in _BUILTIN else _attribute(raw, file)
                if name in entries[kind] and isinstance(raw, dict):
                    base = entries[kind][name]  # merge field by field, mappings one level deep
                    raw = {
                        **base,
                        **{
                            k: {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
                            for k, v in raw.items()
                        },
                    }
                entries[kind][name] = _check_entry(kind, name, copy.deepcopy(raw), f"catalog file {file}")
    return Catalog(entries)


_BUILTIN = (_DIR / "gpus.yaml", _DIR / "models.yaml", _DIR / "quantization.yaml", _DIR / "links.yaml")


@functools.cache
def load_architectures() -> Mapping[str, Architecture]:
    """The architectures of ``architectures.yaml`` (generated by calibration/kernel_efficiencies.py)."""
    doc = yaml.safe_load((_DIR / "architectures.yaml").read_text(encoding="utf-8"))
    out = {}
    for name, e in doc["architectures"].items():
        out[name] = Architecture(
            name=name,
            sibling=e.get("sibling", ""),
            e_compute=MappingProxyType(dict(e.get("e_compute") or {})),
            e_memory=e.get("e_memory"),
            source=e["source"],
        )
    return MappingProxyType(out)


@functools.cache
def _builtin_catalog() -> Catalog:
    return _build(_BUILTIN)


def load_catalog(extra_files: Sequence[Path] = ()) -> Catalog:
    """The built-in catalog, with user catalog files (in order) added/overriding."""
    return _build([*_BUILTIN, *extra_files]) if extra_files else _builtin_catalog()
