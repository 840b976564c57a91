"""The ``fleet:`` and ``router:`` sections of a scenario: pools of replicas,
their GPU, model, quantization, vLLM engine knobs and batching policy.

Names that refer to a catalog or a registry (GPU, model, policy, router) are
checked when the whole scenario is loaded (``sim.scenario.spec``), where the
catalog is known.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.catalog import ModelSpec
from sim.perf.kernels.versions import parse_version
from sim.scenario.autoscale_spec import AutoscaleSpec

API_SERVER_COUNT_SINCE = (0, 9, 0)
"""First vLLM release with ``--api-server-count`` (vLLM PR #17546, opened 2025-05-01, after v0.8.5)."""
ASYNC_SCHEDULING_FLAG_SINCE = (0, 9, 2)
"""First vLLM release with ``--async-scheduling`` (vLLM PR #19970, opened 2025-06-23, after v0.9.1)."""
V1_SELECTABLE_SINCE = (0, 7, 0)
"""First vLLM release that offered the V1 engine: v0.7.0's release notes (GitHub release v0.7.0, 2025-01-27):
"vLLM's V1 engine is ready for testing ... You can turn it on by setting environment variable VLLM_USE_V1=1"
(V1 alpha). Earlier trees held V1 only as an unannounced prototype under development (vllm/v1), not modelled here;
V1 became the default in 0.8.0."""
V0_REMOVED_IN = (0, 11, 0)
"""First vLLM release without the V0 engine (``VLLM_USE_V1=0`` gone: vLLM PR #25033 "[V0 Deprecation] Remove
LLMEngine" and the rest of the V0 removal, released in v0.11.0)."""

__all__ = [
    "Strict",
    "QuantizationSpec",
    "SpeculativeSpec",
    "EngineSpec",
    "PolicySpec",
    "RouterSpec",
    "PoolSpec",
    "version_as_text",
]


def version_as_text(v: Any) -> Any:
    """A vllm_version YAML read as a number (``vllm_version: 0.10`` is the float 0.1) is refused with
    the fix: quote it. Other values pass on to the field's own checks."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError(
            f"vllm_version must be text in quotes: YAML read it as the number {v!r} (a version's digits are "
            'not a number\'s: 0.10 reads as 0.1); write it quoted, e.g. vllm_version: "0.10.0"'
        )
    return v


class Strict(BaseModel):
    """Base of every scenario section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


WeightScheme = Literal["bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq"]


class QuantizationSpec(Strict):
    """Quantization of one pool's model."""

    weights: WeightScheme = Field(
        "bf16",
        description="Weight format: bf16, fp16, fp8, int8 (W8A8), int4-awq or int4-gptq (W4A16).",
    )
    kv_cache: Literal["auto", "fp8"] = Field(
        "auto", description="KV-cache dtype: auto (16-bit, like the activations) or fp8."
    )


class SpeculativeSpec(Strict):
    """Speculative decoding (vLLM --speculative-config): each decode step proposes
    num_speculative_tokens tokens per sequence and the target verifies them in one forward.
    Proposed tokens are accepted i.i.d. with the class's acceptance_rate; a sequence emits
    1 + the leading accepted ones per step (docs/design.md, "Speculative decoding")."""

    method: Literal["ngram", "draft", "eagle"] = Field(
        ...,
        description="Proposer: ngram (matches in the sequence's own tokens, CPU), draft (a smaller catalog "
        "model, draft_model) or eagle (one extra decoder layer of the target's shape).",
    )
    num_speculative_tokens: int = Field(
        ..., ge=1, le=32, description="Tokens proposed per sequence and step (vLLM num_speculative_tokens), >= 1."
    )
    draft_model: str | None = Field(
        None, description="Catalog model that proposes, for method draft only; it must share the target's vocabulary."
    )
    acceptance_rate: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Probability each proposed token is accepted, in [0, 1], for the classes that give none "
        "(traffic.classes[].acceptance_rate wins).",
    )

    @model_validator(mode="after")
    def _draft_model_for_draft(self) -> SpeculativeSpec:
        if self.method == "draft" and not self.draft_model:
            raise ValueError("method draft needs draft_model: a catalog model with the target's vocabulary")
        if self.method != "draft" and self.draft_model:
            raise ValueError(f"draft_model is for method draft only, not {self.method}")
        return self


class EngineSpec(Strict):
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
    vllm_version: str | None = Field(
        None,
        description="vLLM release the pool runs (e.g. '0.19.0'): its measured kernels time the steps (the nearest "
        "version with kernel data, with a warning when it is not this one) and its memory accounting sizes the KV "
        "cache (CUDA-graph memory counted from 0.21). A release candidate (0.9.2rc1) is its release in every version "
        "rule (vLLM tags candidates on the release's own branch); a dev build (0.9.2.dev3) is before it. Default: "
        "the newest data and the newest accounting.",
    )
    flashinfer_sampler: bool | None = Field(
        None,
        description="Whether vLLM's V1 sampler runs FlashInfer's top-k/top-p kernel, which needs no full sort of the "
        "vocabulary: its profile-run peak is 40 % of the PyTorch sort's (3.8 against 9.6 fp32 copies of the logits), so the KV cache is larger. vLLM 0.8.0 to "
        "0.11.0 use it whenever the flashinfer package is installed (the vllm/vllm-openai images install it; "
        "VLLM_USE_FLASHINFER_SAMPLER=0 turns it off); from 0.11.1 only with VLLM_USE_FLASHINFER_SAMPLER=1. "
        "Default: an install without flashinfer before 0.11.1 (the pip package), vLLM's default after.",
    )
    sampling: Literal["greedy", "top_p", "top_p_penalties"] | None = Field(
        None,
        description="How the pool's requests sample, which sets the sampler's time per step: greedy (temperature 0, "
        "what vllm bench serve sends), top_p (top-p or top-k, from the client or from the model's "
        "generation_config.json defaults vLLM applies when the client sends none; vLLM 0.11.1-0.17 mask them with "
        "a full PyTorch sort of every row's logits), top_p_penalties (also repetition, frequency or presence "
        "penalties: bin counts over the vocabulary per row and, on the CPU, every request's output tokens copied "
        "into a padded tensor each step). Default: not modelled (as greedy).",
    )

    speculative: SpeculativeSpec | None = Field(
        None,
        description="Speculative decoding (method, num_speculative_tokens, draft_model, acceptance_rate); "
        "default: none.",
    )
    api_server_count: int = Field(
        1,
        ge=1,
        le=1024,
        description="API-server processes in front of the engine (vLLM --api-server-count, from 0.9.0): each "
        "tokenizes, admits and streams the requests it accepts, so the front end's throughput limit scales with "
        "the count. Default 1, vLLM's default without data parallelism.",
    )
    async_scheduling: bool | None = Field(
        None,
        description="Async scheduling (vLLM --async-scheduling, from 0.9.2; on by default from 0.14.0): the engine "
        "core schedules the next step while the GPU runs this one, overlapping its CPU work with the step. "
        "Default: by vllm_version (on from 0.14.0 or with no version named).",
    )

    engine_core: Literal["v0", "v1"] | None = Field(
        None,
        description="The server's engine where its version had both: v0 for vLLM's V0 engine (VLLM_USE_V1=0, up to "
        "0.10.x), whose CPU side is V0's (output processing overlapped with the next step in the engine process, a "
        "step's first tokens first); v1 for the V1 engine (VLLM_USE_V1=1, from 0.7.0). Default: by vllm_version (V1 from 0.8.0).",
    )
    chat_endpoint: bool | None = Field(
        None,
        description="Whether the pool's requests come through vLLM's chat endpoint (/v1/chat/completions: true) or "
        "/v1/completions (false). It matters on vLLM 0.8.2-0.9.1 only, whose chat endpoint re-parses the model's chat "
        "template on every request (vLLM PR #20065), a cost measured per model family (sim/perf/cpu_side.py, "
        "FE_CHAT_FORMAT_DETECT_S). Default: the chat endpoint.",
    )

    _version_text = field_validator("vllm_version", mode="before")(version_as_text)

    @field_validator("vllm_version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if parse_version(v) is None:
            tag = v.strip()[1:] if v.strip()[:1] in ("v", "V") else None  # the git tag v0.9.1 is release 0.9.1
            hint = (
                f": write the release without the tag's 'v', vllm_version: \"{tag}\""
                if tag and parse_version(tag)
                else ""
            )
            raise ValueError(
                f"vllm_version must look like MAJOR.MINOR[.PATCH] with PEP 440's optional rc/dev/post suffix "
                f"(e.g. '0.24.0', '0.9.2rc1', '0.9.1.post1'), got {v!r}{hint}"
            )
        return v.strip()  # ' 0.9.1 ' is 0.9.1 (as the version windows read it): the summary and warnings say so

    @model_validator(mode="after")
    def _frontend_by_version(self) -> EngineSpec:
        v = parse_version(self.vllm_version) if self.vllm_version else None
        if v is not None and self.api_server_count > 1 and v < API_SERVER_COUNT_SINCE:
            raise ValueError(
                f"api_server_count {self.api_server_count} needs vLLM >= 0.9.0 (--api-server-count, vLLM PR #17546); "
                f"vllm_version {self.vllm_version} runs one API server: use 1 or a newer vllm_version"
            )
        if v is not None and self.async_scheduling and v < ASYNC_SCHEDULING_FLAG_SINCE:
            raise ValueError(
                f"async_scheduling needs vLLM >= 0.9.2 (--async-scheduling, vLLM PR #19970); vllm_version "
                f"{self.vllm_version} has no async scheduler: use false or a newer vllm_version"
            )
        if self.engine_core == "v0" and (v is None or v >= V0_REMOVED_IN):
            raise ValueError(
                "engine_core v0 needs a vllm_version before 0.11.0 (vLLM removed the V0 engine in 0.11.0): name the "
                "server's version, or use v1"
            )
        if self.engine_core == "v1" and v is not None and v < V1_SELECTABLE_SINCE:
            raise ValueError(
                f"engine_core v1 needs a vllm_version from 0.7.0 on (vLLM first offered the V1 engine, as "
                f"VLLM_USE_V1=1, in 0.7.0); vllm_version {self.vllm_version} ran the V0 engine only: use v0, leave "
                "engine_core out, or name a newer vllm_version"
            )
        if self.engine_core == "v0" and self.async_scheduling:
            raise ValueError(
                "async_scheduling is a V1 engine option (--async-scheduling): use false with engine_core v0"
            )
        method = self.speculative.method if self.speculative is not None else None
        if self.async_scheduling and method == "ngram":
            raise ValueError(
                "async_scheduling with speculative method ngram: vLLM runs async scheduling with EAGLE-type "
                "proposers only (PR #31998) and rejects the n-gram proposer; use false or method eagle"
            )
        return self

    @model_validator(mode="after")
    def _budget_covers_seqs(self) -> EngineSpec:
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


class PolicySpec(Strict):
    """A batching policy by name, with its parameters."""

    name: str = Field("continuous", description="Batching policy: continuous, prefill-first, static, priority.")
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the policy (see its doc).")


class RouterSpec(Strict):
    """A router by name, with its parameters."""

    name: str = Field(
        "least-outstanding",
        description="Router: round-robin, random, least-outstanding, least-kv, power-of-two, prefix-affinity.",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the router (see its doc).")


class PoolSpec(Strict):
    """A pool of identical serving replicas."""

    name: str = Field(..., min_length=1, max_length=64, description="Pool name (used in reports and replica names).")
    gpu: str = Field(..., description="GPU type from the catalog (fleetcast catalog lists them).")
    replicas: int = Field(..., ge=1, le=100_000, description="Serving instances in this pool.")
    tensor_parallel: Literal[1, 2, 4, 8, 16] = Field(
        1,
        description="GPUs per engine rank (tensor parallel size); a replica has tensor_parallel x data_parallel GPUs.",
    )
    data_parallel: int = Field(
        1,
        ge=1,
        le=64,
        description="Data-parallel engine ranks per replica (vLLM --data-parallel-size): each rank has its own "
        "scheduler, batch and KV cache and its own copy of the attention and dense weights; an MoE model's routed "
        "experts are spread over all tensor_parallel x data_parallel GPUs and its MoE layers exchange the ranks' "
        "tokens every step. The router sees the ranks as replicas '<pool>/<i>.dp<r>'.",
    )
    expert_parallel: bool = Field(
        False,
        description="Expert parallelism (vLLM --enable-expert-parallel, MoE models only): whole experts are "
        "spread over the tensor_parallel x data_parallel GPUs instead of every expert being sliced across them; "
        "that count must divide the model's experts.",
    )
    model: str = Field(..., description="Model from the catalog.")
    quantization: QuantizationSpec = Field(
        default_factory=QuantizationSpec,
        description="Weight and KV formats: a mapping {weights, kv_cache}, or a "
        "weight format name alone (`quantization: fp8`, KV cache auto), as plan.candidates.quantization takes it.",
    )

    @field_validator("quantization", mode="before")
    @classmethod
    def _quantization_shorthand(cls, v: Any) -> Any:
        # the bare-string form a planner writes (and plan.candidates accepts): the weight format
        return {"weights": v} if isinstance(v, str) else v

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
    role: Literal["both", "prefill", "decode"] = Field(
        "both",
        description="What the pool's replicas do: both (co-located prefill and decode, the default), prefill "
        "(disaggregated: compute prompts, then hand the KV cache to a decode pool over kv_transfer.link) or "
        "decode (disaggregated: receive the KV cache, recompute the prompt's last token, generate the output). "
        "Prefill and decode pools come in pairs that serve the same classes (docs/design.md, "
        "'Disaggregated prefill and decode').",
    )
    power_limit_w: float | None = Field(
        None,
        gt=0,
        le=10_000,
        description="Power limit of every GPU of the pool, W (nvidia-smi -pl): within the catalog GPU's "
        "power_limit_min_w..power_limit_max_w. Compute-bound work slows as the clock drops to fit "
        "(sim.perf.power_cap); a GPU's mean power never exceeds it. Default: none (the board's TDP).",
    )
    autoscale: AutoscaleSpec | None = Field(
        None,
        description="Autoscaling (HPA/KEDA style): min_replicas, max_replicas, policy (target-utilization, "
        "queue-length, schedule), target, metric window, cooldowns, cold start; replicas is then the count at time 0 "
        "(docs/design.md, 'Autoscaling'). Default: a fixed pool.",
    )

    @property
    def max_replicas(self) -> int:
        """Replicas the pool may ever run: autoscale.max_replicas, else replicas."""
        return self.autoscale.max_replicas if self.autoscale is not None else self.replicas

    @property
    def gpus_per_replica(self) -> int:
        """GPUs one replica occupies: tensor_parallel x data_parallel."""
        return self.tensor_parallel * self.data_parallel

    def max_model_len(self, model: ModelSpec) -> int:
        """The longest sequence the pool's engine accepts: ``engine.max_model_len``, else the
        model's context length (as vLLM defaults it)."""
        return self.engine.max_model_len or model.max_position_embeddings
