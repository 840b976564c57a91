"""Speculative decoding (``engine.speculative``): step times of a pool that proposes
``k`` tokens per sequence and verifies them in one forward of the target model.

docs/design.md, "Speculative decoding", is the spec. In short (vLLM v1 semantics):

- Every decode step, each sequence gets ``k`` proposed tokens from the proposer
  (``ngram``: a match in its own tokens, CPU work; ``draft``: ``k`` forward steps of a
  smaller catalog model; ``eagle``: ``k`` steps of one extra decoder layer of the
  target's shape). The target then runs ``k + 1`` positions per sequence (linear layers
  and LM head at ``n·(k+1)`` rows, decode attention with ``k + 1`` queries over the same
  cached keys: ``PerfModel.step_time_s(..., queries_per_decode=k+1)``).
- Acceptance is i.i.d. per proposed token with the class's ``acceptance_rate`` ``a``;
  a sequence emits 1 + the leading accepted proposals, in expectation
  ``E(a, k) = (1 - a^(k+1)) / (1 - a)`` (``k + 1`` at ``a = 1``).
- The simulator uses that EXPECTATION, not a draw: the decode group's members all advance
  one token per (token-)step, so a verification step of ``V + D`` seconds (target +
  proposer) is ``E`` token-steps of ``(V + D) / E`` each, with ``E`` the mean of the
  members' expected lengths. The token-step is still affine in the context, so decode
  runs keep their closed form (``decode_group.Segment``) and fast-forward equals
  ``--exact-steps`` exactly, with no random stream. A mixed step (prefill chunks +
  decodes) advances the decoders one token: it pays the prefill part in full and
  ``1/E`` of the decoders' marginal cost (verification and proposer).
- Never cheaper than not speculating at acceptance 0: the verification is taken as at
  least a plain step (a measured kernel table may time ``n·(k+1)`` rows below ``n``).
- The serving process's CPU work (``sim.perf.cpu_side``) is per ENGINE step: one scheduler
  pass and one output pass cover the ``k`` proposals and the verification (vLLM V1 runs the
  proposer inside ``execute_model``). The target's verification step carries it once, with
  each decode's ``k`` proposed tokens charged as scheduled tokens; the proposer's forwards
  carry GPU time only (``proposer_coeffs``). Under async scheduling the CPU work overlaps the
  verification's GPU time, and the proposer's forwards add after it (vLLM PR #24799 overlaps
  the next step's input preparation with the drafting instead; the two agree while the CPU
  work is shorter than each GPU part).
"""

from __future__ import annotations

import math
from dataclasses import replace

from sim.errors import FleetcastError
from sim.perf.perf_model import ModelShape, PerfCoefficients, PerfModel

__all__ = [
    "NGRAM_PROPOSE_S_PER_SEQ",
    "expected_tokens_per_step",
    "Speculation",
    "pool_speculation",
    "draft_model_of",
    "proposer_coeffs",
    "with_proposer_memory",
]

NGRAM_PROPOSE_S_PER_SEQ = 10e-6
"""CPU seconds the n-gram proposer spends per sequence and step (an assumption: vLLM's
proposer is a compiled KMP-style search over the sequence's tokens, a few µs to tens of
µs per sequence; it runs on the CPU and is not overlapped with the GPU here)."""


def expected_tokens_per_step(acceptance_rate: float, k: int) -> float:
    """Expected tokens one sequence emits per verification step: 1 + the leading accepted
    proposals of ``k``, each accepted with probability ``acceptance_rate`` (i.i.d.)."""
    a = float(acceptance_rate)
    if not 0.0 <= a <= 1.0 or k < 1:
        raise FleetcastError(f"acceptance_rate must be in [0, 1] and k >= 1, got {a!r}, {k!r}")
    if a == 1.0:
        return float(k + 1)
    return (1.0 - a ** (k + 1)) / (1.0 - a)


def proposer_coeffs(coeffs: PerfCoefficients) -> PerfCoefficients:
    """The coefficients of a draft model's or EAGLE layer's forwards: the target's, without the
    per-step CPU work (``t_step_s``, ``t_seq_s``, ``t_prefill_tok_s``). In vLLM V1 the proposer
    runs inside the model runner's ``execute_model`` (``GPUModelRunner.propose_draft_token_ids``
    after sampling; ``EagleProposer.propose`` advances its ``k - 1`` further forwards with
    input tensors updated on the GPU), so one engine step, with one scheduler pass and one
    output pass, covers the ``k`` proposals and the verification: that CPU work is charged once,
    on the target's step (``PerfModel.step_time_s`` with ``queries_per_decode = k + 1``)."""
    return replace(coeffs, t_step_s=0.0, t_seq_s=0.0, t_prefill_tok_s=0.0)


def draft_model_of(method: str, model, catalog, draft_model: str | None):
    """The proposer's model: the catalog draft model, one decoder layer of the target's
    shape (EAGLE), or None (n-gram)."""
    if method == "draft":
        return catalog.model(draft_model)
    if method == "eagle":
        return replace(model, name=f"{model.name}:eagle-layer", num_layers=1, first_dense_layers=0)
    return None


class Speculation:
    """Step times of one speculative pool (see the module doc); plain numbers in and out.

    ``tokens_by_class``: expected tokens per verification step of each class index."""

    def __init__(
        self, perf: PerfModel, method: str, k: int, tokens_by_class: list[float], draft: PerfModel | None = None
    ) -> None:
        self.perf, self.method, self.k, self.q = perf, method, int(k), int(k) + 1
        self.tokens_by_class = [float(x) for x in tokens_by_class]
        self.draft = draft
        self._coeffs: dict[tuple, tuple] = {}

    def tokens_per_step(self, n: int, ncls: list) -> float:
        """Mean expected tokens per step of a decode group (``ncls``: members by class)."""
        tok = self.tokens_by_class
        return sum(c * tok[i] for i, c in enumerate(ncls) if c) / n

    def proposer_s(self, n: int, ctx: int) -> float:
        """Seconds the proposer adds to a step with ``n`` decodes of total context ``ctx``."""
        if self.method == "ngram":
            return NGRAM_PROPOSE_S_PER_SEQ * n
        return self.k * self.draft.step_time_s(0, 0.0, n, ctx)  # type: ignore[union-attr]  # a draft method has one

    def verify_s(self, prefill_tokens: int, prefill_attn: float, n: int, ctx: int, nps: int) -> float:
        """The target's step with ``k + 1`` positions per decode, never below the plain step."""
        perf = self.perf
        v = perf.step_time_s(prefill_tokens, prefill_attn, n, ctx, nps, self.q)
        plain = perf.step_time_s(prefill_tokens, prefill_attn, n, ctx, nps)
        return v if v > plain else plain

    def segment_coeffs(self, n: int, ncls: list) -> tuple:
        """``(a, b, (f0, f1), (y0, y1))`` of one token-step of a decode-only run: time
        ``a + b·context``, FLOPs and bytes the same way (``decode_group.Segment``)."""
        key = (n, tuple(ncls))
        out = self._coeffs.get(key)
        if out is None:
            perf, q = self.perf, self.q
            e = self.tokens_per_step(n, ncls)
            a_plain, b_plain = perf.decode_affine(n)
            a_v = max(perf.step_time_s(0, 0.0, n, 0, 0, q), a_plain)
            b_v = max(perf.decode_b_s(q), b_plain)
            a_d = self.proposer_s(n, 0)
            b_d = self.proposer_s(n, 1) - a_d
            f0 = perf.step_flops(0, 0.0, n, 0, 0, q)
            y0 = perf.step_bytes(0, 0.0, n, 0, 0, q)
            out = self._coeffs[key] = (
                (a_v + a_d) / e,
                (b_v + b_d) / e,
                (f0 / e, (perf.step_flops(0, 0.0, n, 1, 0, q) - f0) / e),
                (y0 / e, (perf.step_bytes(0, 0.0, n, 1, 0, q) - y0) / e),
            )
        return out

    def token_step_cpu_s(self, n: int, ncls: list) -> float:
        """Engine-core CPU seconds of one decode token-step (``ReplicaStats.cpu_s``): the CPU work
        of one verification step, once per engine step, over ``E`` as in ``segment_coeffs``."""
        return self.perf.step_cpu_s(n, 0, 0, self.q) / self.tokens_per_step(n, ncls)

    def mixed_step_cpu_s(self, prefill_tokens: int, n: int, nps: int, ncls: list) -> float:
        """Engine-core CPU seconds of a mixed step, shared as ``mixed_step_s`` shares its time:
        the prefill part in full, the decoders' part over ``E``."""
        perf = self.perf
        base = perf.step_cpu_s(0, nps, prefill_tokens)
        return base + (perf.step_cpu_s(n, nps, prefill_tokens, self.q) - base) / self.tokens_per_step(n, ncls)

    def mixed_step_s(self, prefill_tokens: int, prefill_attn: float, n: int, ctx: int, nps: int, ncls: list) -> float:
        """A step with prefill chunks and ``n`` decodes (each advancing one token): the
        prefill part (and the draft model's pass over the chunks) in full, ``1/E`` of the
        decoders' marginal cost."""
        perf = self.perf
        base = perf.step_time_s(prefill_tokens, prefill_attn, 0, 0, nps)
        if self.draft is not None:
            base += self.draft.step_time_s(prefill_tokens, prefill_attn, 0, 0, nps)
        marginal = self.verify_s(prefill_tokens, prefill_attn, n, ctx, nps) + self.proposer_s(n, ctx)
        marginal -= perf.step_time_s(prefill_tokens, prefill_attn, 0, 0, nps)
        if marginal < 0.0:
            marginal = 0.0
        return base + marginal / self.tokens_per_step(n, ncls)


def pool_speculation(
    pool, catalog, gpu, model, quant, perf: PerfModel, class_names: list, class_specs: list
) -> Speculation | None:
    """The pool's ``Speculation`` (None when it does not speculate). ``class_names``: the
    workload's classes in index order; ``class_specs``: the scenario's ``traffic.classes``.
    A class the pool does not serve, or without any acceptance rate, counts as acceptance
    0 (it never decodes here, or the scenario check has already refused it)."""
    spec = pool.engine.speculative
    if spec is None:
        return None
    k = spec.num_speculative_tokens
    own = {c.name: c.acceptance_rate for c in class_specs}
    tokens = []
    for name in class_names:
        a = own.get(name)
        if a is None:
            a = spec.acceptance_rate
        served = pool.classes is None or name in pool.classes
        tokens.append(expected_tokens_per_step(a, k) if served and a is not None else 1.0)
    dm = draft_model_of(spec.method, model, catalog, spec.draft_model)
    draft = None
    if dm is not None:  # its forwards' GPU time only: the engine step's CPU work is the target's
        draft = PerfModel(
            gpu, dm, quant, pool.tensor_parallel, proposer_coeffs(perf.coeffs), clock_ratio=perf.clock_ratio
        )
    return Speculation(perf, spec.method, k, tokens, draft)


def with_proposer_memory(mem, pool, catalog, model, quant, block_size: int):
    """The memory plan with the proposer's weights and KV cache taken out of the KV pool
    (draft model or EAGLE layer: vLLM loads it on the same GPUs and gives its layers KV
    blocks of the shared block table; n-gram needs none). Raises FleetcastError when
    no block is left."""
    spec = pool.engine.speculative
    dm = draft_model_of(spec.method, model, catalog, spec.draft_model) if spec is not None else None
    if dm is None:
        return mem
    tp = pool.tensor_parallel
    s = ModelShape(dm, quant, tp)
    if spec.method == "eagle":  # one decoder layer; it shares the target's embedding and LM head
        weights = math.ceil(dm.params_dense_per_layer * quant.weight_bytes_per_param / tp)
    else:
        weights = math.ceil(s.weight_bytes_total / tp)
    kv_tok = mem.kv_bytes_per_token_per_gpu + s.kv_bytes_per_token_per_gpu
    per_block = block_size * kv_tok
    available = mem.available_kv_bytes_per_gpu - weights
    blocks = max(math.floor(available / per_block), 0)
    if blocks < 1:
        raise FleetcastError(
            f"the {spec.method} proposer ({dm.name}, {weights / 2**30:.1f} GiB of weights per "
            f"GPU) leaves no KV block: {mem.available_kv_bytes_per_gpu / 2**30:.1f} GiB were "
            f"available; use a smaller draft model, more tensor_parallel or a smaller quantization"
        )
    return replace(
        mem,
        weight_bytes_per_gpu=mem.weight_bytes_per_gpu + weights,
        available_kv_bytes_per_gpu=available,
        kv_bytes_per_token_per_gpu=kv_tok,
        kv_bytes_per_block_per_gpu=per_block,
        num_kv_blocks=blocks,
        max_kv_tokens=blocks * block_size,
    )
