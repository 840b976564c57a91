"""The memory plan against vLLM's own start-up logs and hand calculations."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

import sim.perf.pool_model as pool_model
from calibration.logs.sidecar import load_settings
from sim.catalog import load_catalog
from sim.cli import main
from sim.errors import FleetcastError
from sim.perf.memory import (
    KV_PLAN_UNCERTAINTY_BYTES,
    check_max_model_len,
    device_memory_bytes,
    hold_one_sequence,
    moe_workspace_bytes,
    plan_memory,
    sampler_copies,
)
from sim.perf.memory import _plan as plan_terms
from sim.perf.pool_model import build_pool_models, memory_warnings
from sim.scenario.spec import scenario_from_dict
from tests.factories import scenario_dict

CAT = load_catalog()
GiB = 2**30

# vLLM 0.19.0 on one node of H100 80GB HBM3, gpu_memory_utilization 0.95, block 16, the server's
# defaults max_num_batched_tokens 8192 and max_num_seqs 1024: "num_gpu_blocks is: N" in the start-up
# logs published in llm-d-incubation/llm-d-planner (Apache-2.0), commit d3121e059da8,
# accuracy/results/v0.19.0/logs/<file>. Only the models fleetcast's catalog holds; the memory
# constants were read from the other models of that set (sim/perf/memory.py), so this is out of
# sample. (checkpoint, log file, catalog model, weights, KV cache, tp, num_gpu_blocks)
LLMD = "accuracy/results/v0.19.0/logs/"
VLLM_LOGS = [
    ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3-1-8b--h100-80gb--tp1pp1dp1--16384.log",
     "llama-3.1-8b", "bf16", "auto", 1, 29751),
    ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3-1-8b---h100-80gb--tp2pp1dp1--8192.log",
     "llama-3.1-8b", "bf16", "auto", 2, 65293),
    ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3-1-8b---h100-80gb--tp4pp1dp1--8192.log",
     "llama-3.1-8b", "bf16", "auto", 4, 138112),
    ("meta-llama/Llama-3.1-8B-Instruct kv_cache_dtype fp8",
     "meta-llama---h100-80gb--tp1pp1dp1--8192-dtbf16-kvfp8.log", "llama-3.1-8b", "bf16", "fp8", 1, 59502),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w8a8",
     "w8a8-redhatai-llam--h100-80gb--tp1pp1dp1--8192-dtfloat16.log", "llama-3.1-8b", "int8", "auto", 1, 33075),
    ("RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16",
     "w4a16-redhatai-lla--h100-80gb--tp1pp1dp1--8192-dtfloat16.log", "llama-3.1-8b", "int4-gptq", "auto", 1,
     34669),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen-qwen2-5-7b-instruct--h100-80gb--tp1pp1dp1--8192.log",
     "qwen2.5-7b", "bf16", "auto", 1, 68500),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen-qwen2-5-7b-instruct--h100-80gb--tp2pp1dp1--8192.log",
     "qwen2.5-7b", "bf16", "auto", 2, 149412),
    ("Qwen/Qwen2.5-7B-Instruct", "qwen-qwen2-5-7b-instruct--h100-80gb--tp4pp1dp1--8192.log",
     "qwen2.5-7b", "bf16", "auto", 4, 315205),
    ("RedHatAI/Qwen2.5-7B-Instruct-fp8-dynamic", "fp8dyn-redhatai-qwen2-5---h100-80gb--tp1pp1dp1--8192.log",
     "qwen2.5-7b", "fp8", "auto", 1, 75644),
    ("RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic (Llama-3.1-70B's shapes)",
     "fp8dyn-llama-3-3-70b--h100-80gb--tp2pp1dp1--8192.log", "llama-3.1-70b", "fp8", "auto", 2, 15269),
    ("RedHatAI/Llama-3.3-70B-Instruct-fp8-dynamic (Llama-3.1-70B's shapes)",
     "fp8dyn-llama-3-3-70b--h100-80gb--tp4pp1dp1--8192.log", "llama-3.1-70b", "fp8", "auto", 4, 44312),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mistralai-mixtral-8x7b-i--h100-80gb--tp2pp1dp1--8192.log",
     "mixtral-8x7b", "bf16", "auto", 2, 29121),
    # MoE (MOE_WORKSPACE_FACTOR was fitted on other MoE logs of the set) and MLA (KV = one latent per token)
    ("Qwen/Qwen3-30B-A3B", "qwen-qwen3-30b-a3b--h100-80gb--tp1pp1dp1--8192.log",
     "qwen3-30b-a3b", "bf16", "auto", 1, 10518),
    ("deepseek-ai/DeepSeek-V2-Lite-Chat", "deepseek-ai-deepseek-v2---h100-80gb--tp1pp1dp1--8192.log",
     "deepseek-v2-lite", "bf16", "auto", 1, 94097),
    # added for issue 24 (same set): online fp8 (``quantization: fp8``) and w8a8 int8
    ("meta-llama/Llama-3.1-8B-Instruct quantization fp8", "meta-llama-llama-3---h100-80gb--tp1pp1dp1--8192-qfp8.log",
     "llama-3.1-8b", "fp8", "auto", 1, 33078),
    ("RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8", "w8a8-redhatai-qwen2-5-7b--h100-80gb--tp1pp1dp1--8192.log",
     "qwen2.5-7b", "int8", "auto", 1, 75642),
]
# Where the KV cache is a thin remainder of the budget (a few GiB of 75), 3% of the blocks is less
# than the spread of vLLM's own profile run; these are checked on the available memory instead.
VLLM_LOGS_THIN = [
    ("Qwen/Qwen2.5-72B-Instruct", "qwen-qwen2-5-72b-instruc--h100-80gb--tp2pp1dp1--8192.log",
     "qwen2.5-72b", "bf16", "auto", 2, 1245),
]


def _plan(model, weights, kv, tp, **kw):
    args = dict(gpu_memory_utilization=0.95, block_size=16, max_num_batched_tokens=8192, max_num_seqs=1024,
                vllm_version=(0, 19, 0))
    args.update(kw)
    return plan_memory(CAT.gpu("h100-sxm"), CAT.model(model), CAT.quant(weights, kv), tp, **args)


@pytest.mark.parametrize("checkpoint,log,model,weights,kv,tp,logged", VLLM_LOGS,
                         ids=[f"{r[2]}-{r[3]}-kv{r[4]}-tp{r[5]}" for r in VLLM_LOGS])
def test_num_gpu_blocks_match_vllm_logs_within_3_percent(checkpoint, log, model, weights, kv, tp, logged):
    got = _plan(model, weights, kv, tp).num_kv_blocks
    assert abs(got / logged - 1) <= 0.03, f"{checkpoint} tp{tp}: {got} blocks vs {logged} logged ({LLMD}{log})"


@pytest.mark.parametrize("checkpoint,log,model,weights,kv,tp,logged", VLLM_LOGS_THIN,
                         ids=[f"{r[2]}-tp{r[5]}" for r in VLLM_LOGS_THIN])
def test_thin_kv_budgets_are_within_half_a_gib(checkpoint, log, model, weights, kv, tp, logged):
    plan = _plan(model, weights, kv, tp)
    err_bytes = (plan.num_kv_blocks - logged) * plan.kv_bytes_per_block_per_gpu
    assert abs(err_bytes) <= 0.5 * GiB, f"{checkpoint}: {plan.num_kv_blocks} blocks vs {logged} logged"


def test_budget_is_the_reported_device_memory_not_decimal_gb():
    """H100: vLLM logs total_memory=79.19GiB and requests 75.23GiB at utilization 0.95 (the Llama-3.1-8B
    log above): 79.19 x 0.95 = 75.23. 80e9 decimal bytes would be 74.5 GiB x 0.95 = 70.8."""
    plan = _plan("llama-3.1-8b", "bf16", "auto", 1)
    assert plan.device_bytes_per_gpu / GiB == pytest.approx(79.19, abs=0.005)
    assert plan.budget_bytes_per_gpu / GiB == pytest.approx(75.23, abs=0.01)


def test_activation_peak_is_the_larger_of_forward_and_sampler():
    """Llama-3.1-8B logs the same torch peak (1.89 GiB) at TP1, 2 and 4: the sampler's 1,024 rows of fp32
    logits over 128,256 tokens (0.49 GiB a copy) dominate, not the forward, which shrinks with TP."""
    peaks = {tp: _plan("llama-3.1-8b", "bf16", "auto", tp).activation_bytes_per_gpu for tp in (1, 2, 4)}
    assert peaks[1] == peaks[2] == peaks[4]
    assert peaks[1] / GiB == pytest.approx(1.89, abs=0.1)


def test_cuda_graph_memory_counts_from_vllm_0_21():
    """vLLM 0.21 started taking its CUDA-graph estimate out of the KV budget; 0.19 captures graphs
    afterwards, in the (1 - utilization) headroom."""
    old, new = _plan("llama-3.1-8b", "bf16", "auto", 1), _plan("llama-3.1-8b", "bf16", "auto", 1,
                                                             vllm_version=(0, 21, 0))
    assert old.cudagraph_bytes_per_gpu == 0 < new.cudagraph_bytes_per_gpu
    assert new.num_kv_blocks < old.num_kv_blocks
    assert "CUDA graphs outside the budget" in old.accounting and "CUDA-graph estimate" in new.accounting
    assert _plan("llama-3.1-8b", "bf16", "auto", 1, vllm_version=None).cudagraph_bytes_per_gpu > 0


def test_max_model_len_check_follows_vllm():
    """Qwen2.5-72B TP2 leaves 1,245 blocks of 16 (19,920 tokens, the log above): vLLM started it with
    max_model_len 8192. Asking for 32,768 must fail, naming the longest that fits."""
    plan = _plan("qwen2.5-72b", "bf16", "auto", 2)
    assert check_max_model_len(plan, 8192, 16, (0, 19, 0)) is None
    why = check_max_model_len(plan, 32768, 16, (0, 19, 0))
    assert why and "longest max_model_len that fits" in why
    fits = int(re.search(r"that fits is ([\d,]+)", why).group(1).replace(",", ""))
    assert fits == (plan.num_kv_blocks - 1) * 16  # 0.19 is after 0.11: the null block is out first
    assert check_max_model_len(plan, plan.num_kv_blocks * 16, 16, (0, 11, 0)) is None  # 0.11 keeps it
    assert check_max_model_len(plan, plan.num_kv_blocks * 16, 16, (0, 19, 0)) is not None


def test_device_memory_falls_back_to_printed_gib_less_a_percent():
    """A GPU without device_memory_bytes: printed GB read as GiB x 79.19/80 (the H100's ratio)."""
    mi300x = CAT.gpu("mi300x")
    assert not mi300x.device_memory_bytes
    assert device_memory_bytes(mi300x) == int(192 * GiB * 79.19 / 80)


def test_seventy_b_in_bf16_does_not_fit_one_h100_and_says_what_would():
    gpu, model, bf16 = CAT.gpu("h100-sxm"), CAT.model("llama-3.1-70b"), CAT.quant("bf16")
    with pytest.raises(FleetcastError) as err:
        plan_memory(gpu, model, bf16, 1, 0.9, 16, 8192)
    msg = str(err.value)
    for word in ("llama-3.1-70b", "h100-sxm", "tp=1", "bf16", "GiB"):
        assert word in msg
    needed, has = map(float, re.search(r"needs ([\d.]+) GiB.*has ([\d.]+) GiB", msg).groups())
    assert needed > model.params_total * 2 / GiB > has
    tp = int(re.search(r"fits at bf16 with tp=(\d+)", msg).group(1))
    assert tp >= 2
    plan_memory(gpu, model, bf16, tp, 0.9, 16, 8192)  # the suggestion fits ...
    with pytest.raises(FleetcastError):  # ... and is the smallest that does
        plan_memory(gpu, model, bf16, tp // 2, 0.9, 16, 8192)
    assert "int4-awq" in msg and "int4-gptq" in msg
    plan_memory(gpu, model, CAT.quant("int4-awq"), 1, 0.9, 16, 8192)


def test_seventy_b_on_four_h100s_has_the_expected_kv_blocks():
    """KV blocks of Llama-3.1-70B bf16 on 4x H100, bounded by a hand calculation (not the code's formula
    with its own numbers plugged in):

    Llama-3.1-70B (HF config.json): 80 layers, 8 KV heads, head dim 128; 70.6e9 params (model card).
    - KV bytes per token: 2 (K, V) x 80 x 8 x 128 x 2 bytes = 327,680 (the Hugging Face Llama 3.1 blog,
      "Inference Memory Requirements": 0.313 GB per 1k tokens at fp16 for 70B); per GPU at TP4 (2 KV heads
      each) 81,920; one 16-token block 1,310,720 bytes.
    - budget per GPU: 79.19 GiB (what vLLM logs for an H100) x gpu_memory_utilization 0.9 = 76.53e9 bytes;
      weights per GPU: 70.6e9 x 2 bytes / 4 = 35.3e9.
    - at most: nothing else in memory: (76.53e9 - 35.3e9) / 1,310,720 = 31,456 blocks;
    - at least: minus 6 GiB (6.44e9) for the profile run's activations (vLLM logs ~0.2-4 GiB), CUDA
      graphs and NCCL buffers (~1-2.5 GiB): 34.79e9 / 1,310,720 = 26,543 blocks.
    """
    gpu, model = CAT.gpu("h100-sxm"), CAT.model("llama-3.1-70b")
    plan = plan_memory(gpu, model, CAT.quant("bf16"), 4, 0.9, 16, 8192)
    assert plan.kv_bytes_per_token_per_gpu == 327_680 / 4
    assert plan.kv_bytes_per_block_per_gpu == 1_310_720
    assert plan.weight_bytes_per_gpu == pytest.approx(35.3e9, rel=0.01)
    assert 26_543 <= plan.num_kv_blocks <= 31_456
    assert plan.max_kv_tokens == 16 * plan.num_kv_blocks
    assert 0.2 * GiB < plan.activation_bytes_per_gpu < 4 * GiB  # what vLLM's profile run reports
    assert 1 * GiB <= plan.runtime_overhead_bytes_per_gpu <= 4 * GiB


def test_eight_b_fits_an_l4_with_few_blocks():
    """Llama-3.1-8B bf16 on one L4 (24 GiB GDDR6, ~23.58 GiB reported): budget 23.58 GiB x 0.9 = 22.79e9
    bytes, weights 8.03e9 x 2 = 16.06e9, so even with nothing else in memory at most 6.73e9 / 131,072
    bytes per token (2 x 32 layers x 8 KV heads x 128 x 2 bytes) = 51,346 tokens fit: not one max-length
    (131,072-token) Llama-3.1 sequence. On an H100 the same leaves 60.5e9 bytes: the L4 has under a
    tenth of its blocks."""
    l4 = plan_memory(CAT.gpu("l4"), CAT.model("llama-3.1-8b"), CAT.quant("bf16"), 1, 0.9, 16, 8192)
    h100 = plan_memory(CAT.gpu("h100-sxm"), CAT.model("llama-3.1-8b"), CAT.quant("bf16"), 1, 0.9, 16, 8192)
    assert 1 <= l4.num_kv_blocks < h100.num_kv_blocks / 10
    longest_sequence = 131_072  # Llama-3.1 context length (model card)
    assert l4.max_kv_tokens <= 51_346 < longest_sequence


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    # Qwen3-30B-A3B (HF config.json): 48 layers, 4 KV heads, head_dim 128; bf16 2 bytes. At tp=8 vLLM
    # replicates the 4 KV heads so each GPU holds 1 (not 4/8): 2 (K, V) x 48 x 1 x 128 x 2 bytes.
    plan = plan_memory(CAT.gpu("h100-sxm"), CAT.model("qwen3-30b-a3b"), CAT.quant("bf16"), 8)
    assert plan.kv_bytes_per_token_per_gpu == 24_576


def test_fp8_kv_cache_doubles_the_blocks_roughly():
    args = (CAT.gpu("h100-sxm"), CAT.model("llama-3.1-8b"))
    auto = plan_memory(*args, CAT.quant("bf16", "auto")).num_kv_blocks
    fp8 = plan_memory(*args, CAT.quant("bf16", "fp8")).num_kv_blocks
    assert abs(fp8 - 2 * auto) <= 1


# torch peak of the profile run logged by vLLM 0.19 ("torch peak memory increase", GiB) for the MoE models
# held out of MOE_WORKSPACE_FACTOR's fit (same logs as above): model, tp, logged peak
MOE_PEAKS = [("qwen3-30b-a3b", 1, 2.68), ("mixtral-8x7b", 2, 1.21), ("deepseek-v2-lite", 1, 1.93)]


@pytest.mark.parametrize("model,tp,logged", MOE_PEAKS, ids=[r[0] for r in MOE_PEAKS])
def test_moe_profile_peak_includes_the_fused_moe_workspace(model, tp, logged):
    """The dense activation model alone misses an MoE model's profile peak (Qwen3-30B-A3B: 2.20 GiB of
    sampler against 2.68 logged); with the fused-MoE workspace held through the sampler it is within
    0.15 GiB on models the factor was not fitted on."""
    plan = _plan(model, "bf16", "auto", tp)
    assert abs(plan.activation_bytes_per_gpu / GiB - logged) <= 0.15, plan.activation_bytes_per_gpu / GiB
    assert moe_workspace_bytes(CAT.model("llama-3.1-8b"), CAT.quant("bf16"), 8192) == 0


def test_mla_kv_is_one_latent_per_token_on_every_gpu():
    """DeepSeek-V3 (config.json): 61 layers, kv_lora_rank 512, qk_rope_head_dim 64: 61 x 576 x 2 bytes =
    70,272 bytes per token in bf16, the same on every GPU of a TP group (the latent is not split by
    heads). As MHA over its 128 heads of 192 + 128 it would be 61 x 128 x 320 x 2 = 4,997,120."""
    model = CAT.model("deepseek-v3")
    assert model.kv_bytes_per_token(2) == 70_272
    plans = [plan_memory(CAT.gpu("h200"), model, CAT.quant("fp8"), tp, 0.9, 64, 8192) for tp in (8,)]
    assert plans[0].kv_bytes_per_token_per_gpu == 70_272
    lite = CAT.model("deepseek-v2-lite")
    assert _plan("deepseek-v2-lite", "bf16", "auto", 1).kv_bytes_per_token_per_gpu == 27 * 576 * 2
    assert _plan("deepseek-v2-lite", "bf16", "auto", 2).kv_bytes_per_token_per_gpu == lite.kv_bytes_per_token(2)


def test_data_parallel_ranks_hold_the_dense_part_and_a_share_of_the_experts():
    """Qwen3-30B-A3B as data_parallel 2 with expert parallelism on 2 H100s: each GPU holds the attention,
    embeddings and routers whole and half of the routed experts, so more KV fits per GPU than at DP 1;
    its KV blocks are per rank."""
    model, quant = CAT.model("qwen3-30b-a3b"), CAT.quant("bf16")
    one = _plan("qwen3-30b-a3b", "bf16", "auto", 1)
    two = _plan("qwen3-30b-a3b", "bf16", "auto", 1, dp=2, ep=True)
    routed = model.params_routed_experts * 2
    assert two.weight_bytes_per_gpu == pytest.approx(one.weight_bytes_per_gpu - routed / 2, abs=1)
    assert two.kv_bytes_per_token_per_gpu == one.kv_bytes_per_token_per_gpu
    assert two.num_kv_blocks > 2 * one.num_kv_blocks  # ~28 GiB freed on each GPU, ~15 GiB of KV before
    # the MoE workspace grows with the ranks' gathered tokens; the communicators are those of 2 GPUs
    assert moe_workspace_bytes(model, quant, 8192, 1, 2, True) > moe_workspace_bytes(model, quant, 8192)
    assert two.non_torch_bytes_per_gpu > one.non_torch_bytes_per_gpu


def test_qwen3_8b_matches_its_vllm_log():
    """Qwen/Qwen3-8B on one H100 logs num_gpu_blocks 26,168 (qwen-qwen3-8b--h100-80gb--tp1pp1dp1--8192.log,
    the set above): a catalog model added after the memory constants were read."""
    got = _plan("qwen3-8b", "bf16", "auto", 1).num_kv_blocks
    assert abs(got / 26168 - 1) <= 0.03, got


# KV capacity at the edge (issue 24): configurations vLLM served that a plan without a vLLM version
# refused by less than its CUDA-graph estimate. Expected block counts are hand-derived from the
# models' config.json shapes, not from the plan: one max_model_len sequence plus the null block.

EDGE = [
    # Qwen3-32B on one H100 with a 32k-token prompt (+1,024 output): 2 x 64 layers x 8 KV heads x 128 x 2 bytes
    # = 262,144 bytes/token; 33,792 / 16 = 2,112 blocks + the null block = 2,113; 2,112 x 16 x 262,144 = 8.25 GiB
    ("qwen3-32b", 1, 33_792, 2_113, 8.25),
    # Qwen3-235B-A22B on 8 H100s at 262,144: 4 KV heads, one per GPU at TP8 (replicated): 2 x 94 x 1 x 128 x 2
    # = 48,128 bytes/token; 262,144 / 16 = 16,384 blocks + 1 = 16,385; 16,384 x 16 x 48,128 = 11.75 GiB (issue 24)
    ("qwen3-235b-a22b", 8, 262_144, 16_385, 11.75),
]


@pytest.mark.parametrize("model,tp,max_len,blocks,kv_gib", EDGE, ids=[r[0] for r in EDGE])
def test_no_version_is_not_refused_for_what_vllm_before_0_21_starts(model, tp, max_len, blocks, kv_gib):
    args = (CAT.gpu("h100-sxm"), CAT.model(model), CAT.quant("bf16"), tp, 0.9, 16, 8192, 256)
    newest = plan_memory(*args, None)
    assert check_max_model_len(newest, max_len, 16, None) is not None  # the refusal issue 24 saw
    assert newest.kv_bytes_per_token_per_gpu * max_len / GiB == pytest.approx(kv_gib, abs=0.005)
    assert check_max_model_len(plan_memory(*args, (0, 19, 0)), max_len, 16, (0, 19, 0)) is None
    held = hold_one_sequence(newest, max_len, 16, None)
    assert held.num_kv_blocks == blocks and held.max_kv_tokens == 16 * blocks
    assert check_max_model_len(held, max_len, 16, None) is None
    # the bytes come out of the CUDA-graph estimate, and the split still adds up to the budget
    assert 0 <= held.cudagraph_bytes_per_gpu < newest.cudagraph_bytes_per_gpu
    assert held.available_kv_bytes_per_gpu == (held.budget_bytes_per_gpu - held.weight_bytes_per_gpu
                                               - held.activation_bytes_per_gpu - held.non_torch_bytes_per_gpu
                                               - held.cudagraph_bytes_per_gpu)
    assert "given back to hold one max_model_len sequence" in held.accounting
    # a pool that names the version keeps that version's accounting: 0.21 subtracts the graphs, none given back
    pinned = plan_memory(*args, (0, 21, 0))
    assert "given back" not in hold_one_sequence(pinned, max_len, 16, (0, 21, 0)).accounting
    # through the scenario: the pool builds, with the sequence's blocks usable
    fleet = [{"name": "a", "gpu": "h100-sxm", "replicas": 1, "model": model, "tensor_parallel": tp,
              "engine": {"max_model_len": max_len}}]
    pool = build_pool_models(scenario_from_dict(scenario_dict(fleet=fleet)))[0]
    assert pool.num_gpu_blocks == blocks and pool.kv_blocks * 16 >= max_len


def test_no_version_still_refuses_what_no_release_starts():
    """Qwen3-32B at 40,960 (its max_position_embeddings) needs 2,561 blocks x 4 MiB = 10.0 GiB per H100 at
    utilization 0.9, more than even the 0.19 plan leaves (~8.4 GiB): refused, naming the longest that fits."""
    plan = plan_memory(CAT.gpu("h100-sxm"), CAT.model("qwen3-32b"), CAT.quant("bf16"), 1, 0.9, 16, 8192, 256, None)
    assert hold_one_sequence(plan, 40_960, 16, None) is plan
    assert "longest max_model_len that fits" in check_max_model_len(plan, 40_960, 16, None)
    fleet = [{"name": "a", "gpu": "h100-sxm", "replicas": 1, "model": "qwen3-32b",
              "engine": {"max_model_len": 40_960}}]
    with pytest.raises(FleetcastError, match="vLLM refuses to start"):
        build_pool_models(scenario_from_dict(scenario_dict(fleet=fleet)))


def _consumer_gpu(name: str, reported_gib: float):
    """A consumer card outside the built-in catalog, for the memory plan only: the plan reads nothing of a
    GPU but the memory it reports (``device_memory_bytes``), which these logs print."""
    return dataclasses.replace(CAT.gpu("rtx-4090"), name=name, device_memory_bytes=int(reported_gib * GiB))


# vLLM v0 on an RTX 3090, Llama-3.1-8B-Instruct bf16, gpu_memory_utilization 0.90 (vllm-project/vllm#10517,
# comment of 2024-12-02, log format of vLLM 0.6.4): "total_gpu_memory=23.58GiB ... kv_cache_size=3.81GiB" and
# "# GPU blocks: 1952" at max_model_len 20,000 (served); "kv_cache_size=2.89GiB", "# GPU blocks: 1478" and "The
# model's max seq len (29000) is larger than the maximum number of tokens that can be stored in KV cache (23648)"
# at 29,000 (refused). v0 profiles one max_model_len prefill (max_num_batched_tokens = max(max_model_len, 2048)
# without chunked prefill, which v0 turned on only above 32k: the same comment's torch peak grows from 2.07 GiB over
# the weights at 20k to 2.99 at 29k and falls to 0.06 at 35k) and 256 sequences. The KV cache is a thin remainder of the budget (3-4 GiB of 21.2),
# so, as for VLLM_LOGS_THIN, the check is on the memory: within 0.5 GiB. (max_model_len, blocks, served)
RTX3090_V0 = [(20_000, 1_952, True), (29_000, 1_478, False)]


@pytest.mark.parametrize("max_len,logged,served", RTX3090_V0, ids=[str(r[0]) for r in RTX3090_V0])
def test_rtx_3090_v0_logs_blocks_and_start_up_decision(max_len, logged, served):
    version = (0, 6, 4)
    plan = plan_memory(_consumer_gpu("rtx-3090", 23.58), CAT.model("llama-3.1-8b"), CAT.quant("bf16"), 1, 0.90, 16,
                       max(max_len, 2048), 256, version)
    err_bytes = (plan.num_kv_blocks - logged) * plan.kv_bytes_per_block_per_gpu
    assert abs(err_bytes) <= 0.5 * GiB, f"{plan.num_kv_blocks} blocks vs {logged} logged (vllm#10517)"
    # fleetcast starts what vLLM started and refuses what it refused
    assert (check_max_model_len(plan, max_len, 16, version) is None) == served


def test_rtx_4060_refuses_what_vllm_refused():
    """vllm-project/vllm#13882 (vLLM 0.7, v0): Qwen2.5-7B AWQ on an 8 GiB RTX 4060 at gpu_memory_utilization 0.70,
    max_model_len 4096: "total_gpu_memory (8.00GiB) x gpu_memory_utilization (0.70) = 5.60GiB ... model weights take
    5.20GiB; ... the rest of the memory reserved for KV Cache is -1.05GiB", "# cuda blocks: 0", then an error. The
    plan must not fit either, and say so."""
    with pytest.raises(FleetcastError, match="does not fit"):
        plan_memory(_consumer_gpu("rtx-4060", 8.00), CAT.model("qwen2.5-7b"), CAT.quant("int4-awq"), 1, 0.70, 16,
                    4096, 256, (0, 7, 3))


# vLLM 0.19 logs the CUDA-graph estimate it does not yet subtract ("Estimated CUDA graph memory: X GiB total");
# from 0.21 on it is taken out of the KV budget ("CUDA graph memory profiling is enabled (default since v0.21.0).
# The current --gpu-memory-utilization=0.9200 is equivalent to --gpu-memory-utilization=0.9129 without CUDA graph
# memory profiling", noonghunna/club-3090#127). So the same run under 0.21 keeps (Available KV cache memory -
# estimate) / block bytes blocks, the rest of the accounting unchanged; from the two logs added above (-qfp8 and
# w8a8-redhatai-qwen2-5-7b). The plan's CUDAGRAPH_ESTIMATE_BYTES was read from other models of the set.
# (model, weights, kv, "Available KV cache memory" GiB, "Estimated CUDA graph memory" GiB)
V019_GRAPHS = [("llama-3.1-8b", "fp8", "auto", 64.61, 0.84), ("qwen2.5-7b", "int8", "auto", 64.64, 0.81)]


@pytest.mark.parametrize("model,weights,kv,available_gib,graphs_gib", V019_GRAPHS,
                         ids=[f"{r[0]}-{r[1]}" for r in V019_GRAPHS])
def test_the_same_runs_under_vllm_0_21_lose_the_logged_graph_estimate(model, weights, kv, available_gib, graphs_gib):
    plan = _plan(model, weights, kv, 1, vllm_version=(0, 21, 0))
    expected = (available_gib - graphs_gib) * GiB / plan.kv_bytes_per_block_per_gpu
    assert abs(plan.num_kv_blocks / expected - 1) <= 0.03, (plan.num_kv_blocks, round(expected))
    older = _plan(model, weights, kv, 1)
    assert (older.num_kv_blocks - plan.num_kv_blocks) * plan.kv_bytes_per_block_per_gpu / GiB == pytest.approx(
        graphs_gib, abs=0.1)


# vLLM's dummy sampler by release: the PyTorch sort-based top-k/top-p masking before the Triton kernel (PR #33538,
# SAMPLER_TRITON_SINCE) peaks at ~9.6 fp32 copies of [rows x vocabulary], the Triton path at ~3.8 (sim/perf/memory.py).
# The server's H100 defaults of those releases: gpu_memory_utilization 0.9, 8,192 batched tokens, 1,024 sequences.
H100_DEFAULTS = dict(gpu_memory_utilization=0.9, block_size=16, max_num_batched_tokens=8192, max_num_seqs=1024)
QWEN3_LOGITS_1024 = 1024 * 151_936 * 4  # one fp32 copy of 1,024 rows over Qwen3's 151,936-token vocabulary


@pytest.mark.parametrize("version", [(0, 10, 0), (0, 11, 0)], ids=["0.10", "0.11"])
def test_moe_workspace_is_freed_before_the_sampler_before_vllm_0_14(version):
    """Before vLLM PR #31052 (first in 0.14) the fused MoE ran ``fused_experts_impl``, which takes its workspaces
    from torch.empty per call: cache13, rows x max(2I, h), and cache2, rows x I, freed on return. Qwen3-235B-A22B at
    TP8 (config.json: hidden 4096, moe_intermediate_size 1536 -> I = 192 per GPU, top-8): 8,192 x 8 = 65,536 rows x
    (4,096 + 192) x 2 bytes = 562,036,736 bytes inside the forward. The modular kernel's held buffers (max(I, h) +
    max(2I, h)) are 65,536 x 8,192 x 2 = 1,073,741,824 bytes. So at 0.10/0.11 the profile peak is the sort-path
    sampler alone: 9.6 x 1,024 x 151,936 x 4 bytes = 5.56 GiB."""
    model, bf16 = CAT.model("qwen3-235b-a22b"), CAT.quant("bf16")
    assert moe_workspace_bytes(model, bf16, 8192, 8, held=False) == 562_036_736
    assert moe_workspace_bytes(model, bf16, 8192, 8, held=True) == 1_073_741_824
    plan = plan_memory(CAT.gpu("h100-sxm"), model, bf16, 8, vllm_version=version, **H100_DEFAULTS)
    assert plan.activation_bytes_per_gpu == math.ceil(9.6 * QWEN3_LOGITS_1024)
    # from 0.14 the held workspace sits under the sampler (and from 0.18 the sampler is the Triton one)
    newer = plan_memory(CAT.gpu("h100-sxm"), model, bf16, 8, vllm_version=(0, 19, 0), **H100_DEFAULTS)
    assert newer.activation_bytes_per_gpu == pytest.approx(3.8 * QWEN3_LOGITS_1024 + 1.2 * 1_073_741_824, rel=1e-6)


# vllm/vllm-openai:latest of 2026-01-27 on H100 80GB (79.18 GiB), gpu_memory_utilization 0.9, server defaults, block
# 128, max_model_len 16,000: llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md, commit 0282dcf6
# (Apache-2.0), "Peak Activation" and "Available KV Cache" columns. The version is not printed; the file predates PR
# #33538, and the checks take it as 0.14, the newest release by then as far as we can tell (the MoE rule that changes
# at 0.14 does not touch these dense models). SAMPLER_SORT_FP32_COPIES was read from the file's other models (Qwen3-0.6B, gpt-oss-20b).
# (label, model, weights, tp, logged peak activation GiB, logged available KV GiB)
LLMD_BENCH = [
    ("llama-3.1-8b-tp1", "llama-3.1-8b", "bf16", 1, 4.76, 51.38),
    ("qwen3-32b-tp1", "qwen3-32b", "bf16", 1, 5.64, 4.45),
    ("qwen3-32b-tp2", "qwen3-32b", "bf16", 2, 5.64, 34.49),
    ("llama-3.3-70b-fp8-tp2", "llama-3.1-70b", "fp8", 2, 4.84, 32.0),
]
LATEST_2026_01 = (0, 14, 0)


def _bench(model, weights, tp, **kw):
    args = {**H100_DEFAULTS, "block_size": 128, "vllm_version": LATEST_2026_01, **kw}
    return plan_memory(CAT.gpu("h100-sxm"), CAT.model(model), CAT.quant(weights), tp, **args)


@pytest.mark.parametrize("label,model,weights,tp,peak_gib,kv_gib", LLMD_BENCH, ids=[r[0] for r in LLMD_BENCH])
def test_sort_path_sampler_peak_matches_the_logged_activation(label, model, weights, tp, peak_gib, kv_gib):
    assert abs(_bench(model, weights, tp).activation_bytes_per_gpu / GiB - peak_gib) <= 0.15


@pytest.mark.parametrize("label,model,weights,tp,peak_gib,kv_gib", LLMD_BENCH[:2], ids=[r[0] for r in LLMD_BENCH[:2]])
def test_tp1_available_kv_matches_the_log(label, model, weights, tp, peak_gib, kv_gib):
    """Within 3% where the KV cache is thick (Llama-3.1-8B), within 0.5 GiB where it is a thin remainder
    (Qwen3-32B: 4.45 GiB of 71.26)."""
    got = _bench(model, weights, tp).available_kv_bytes_per_gpu / GiB
    assert abs(got / kv_gib - 1) <= 0.03 or abs(got - kv_gib) <= 0.5, (got, kv_gib)


@pytest.mark.xfail(strict=True, reason="known miss: TP2 non-torch memory logged 0.54-0.55 GiB by this image against "
                   "2.08 planned (COMM_BYTES, read from vLLM 0.19 logs that log 2.07-2.09); the plan leaves 1.3-1.4 GiB "
                   "less KV (-4%): conservative, not identified (calibration/README.md, KV capacity at the edge)")
@pytest.mark.parametrize("label,model,weights,tp,peak_gib,kv_gib", LLMD_BENCH[2:], ids=[r[0] for r in LLMD_BENCH[2:]])
def test_tp2_available_kv_matches_the_log(label, model, weights, tp, peak_gib, kv_gib):
    got = _bench(model, weights, tp).available_kv_bytes_per_gpu / GiB
    assert abs(got / kv_gib - 1) <= 0.03, (got, kv_gib)


def test_the_same_image_starts_and_refuses_what_it_did():
    """The same file: Qwen3-32B on one H100 started at max_model_len 16,000 and FAILED at 32,000 (4.45 GiB of KV
    holds 16,000 x 262,144 bytes = 3.91 GiB, not 7.81); Llama-3.3-70B-FP8 at TP1 did not fit at all (67.72 GiB of
    weights, "No available memory for the cache blocks")."""
    plan = _bench("qwen3-32b", "bf16", 1)
    assert check_max_model_len(plan, 16_000, 128, LATEST_2026_01) is None
    assert hold_one_sequence(plan, 32_000, 128, LATEST_2026_01) is plan  # short by more than its uncertainty
    assert check_max_model_len(plan, 32_000, 128, LATEST_2026_01) is not None
    with pytest.raises(FleetcastError, match="does not fit"):
        _bench("llama-3.1-70b", "fp8", 1)


# Qwen/Qwen3-235B-A22B-FP8 at TP4, vLLM 0.10 (July 2025 main), server defaults (1,024 sequences, 8,192 tokens):
# - H200, gpu_memory_utilization 0.5 (vllm-project/vllm PR #21429, the test log in its description):
#   "requested GPU memory: 69.86 GiB", "weights memory: 55.13GiB", "non-torch forward increase memory:
#   2.04GiB", "torch peak memory increase: 5.62GiB", "Available KV cache memory: 7.07 GiB";
# - H100, default 0.9, LMCache connector (vllm-project/vllm#21348): "Available KV cache memory: 8.11 GiB".
FP8_235B = [("h200", 0.5, 7.07), ("h100-sxm", 0.9, 8.11)]


def _fp8_235b(gpu, util):
    return plan_memory(CAT.gpu(gpu), CAT.model("qwen3-235b-a22b"), CAT.quant("fp8"), 4, vllm_version=(0, 10, 0),
                       **{**H100_DEFAULTS, "gpu_memory_utilization": util})


def test_fp8_235b_tp4_terms_match_the_logged_ones():
    plan = _fp8_235b("h200", 0.5)
    assert plan.budget_bytes_per_gpu / GiB == pytest.approx(69.86, abs=0.2)  # H200 read from its printed 141 GB
    assert plan.weight_bytes_per_gpu / GiB == pytest.approx(55.13, abs=0.2)
    assert plan.non_torch_bytes_per_gpu / GiB == pytest.approx(2.04, abs=0.2)
    assert plan.activation_bytes_per_gpu / GiB == pytest.approx(5.62, abs=0.15)


@pytest.mark.parametrize("gpu,util,logged_gib", FP8_235B, ids=[r[0] for r in FP8_235B])
def test_fp8_235b_tp4_available_kv_matches_the_log(gpu, util, logged_gib):
    """A thin remainder (7-8 GiB of 70): within 0.5 GiB."""
    assert abs(_fp8_235b(gpu, util).available_kv_bytes_per_gpu / GiB - logged_gib) <= 0.5


# Issue 24's two refusals (runs kept outside the project, not for tuning): Qwen3-32B with a 32k prompt on one H100,
# Qwen3-235B-A22B at max_model_len 262,144 on 8 H100s, at the H100 defaults above.
def test_issue_24_refusals_follow_the_release_named():
    """- 0.10/0.11 named: refused, as vLLM's own logs of those releases say (Qwen3-32B at 32,000 FAILED above; the
      sort-path sampler peak is 5.56 GiB), by more than the plan's uncertainty;
    - 0.19 named (Triton sampler, held MoE workspace): Qwen3-32B needs 2,049 blocks x 4 MiB = 8.00 GiB against 7.79
      planned (0.21 GiB short, within 0.5 GiB); Qwen3-235B needs 16,385 x 16 x 48,128 bytes = 11.75 GiB against 10.94
      (0.81 short, within 0.5 GiB + the held workspace term at TP8, 1.2 GiB, which was fitted at TP <= 4): both start,
      holding the sequence, with a warning;
    - no version: the same, the CUDA-graph estimate given back first."""
    cases = [("qwen3-32b", 1, 32_768, 2_049), ("qwen3-235b-a22b", 8, 262_144, 16_385)]
    for model, tp, max_len, blocks in cases:
        for version in [(0, 10, 0), (0, 11, 0)]:
            plan = plan_memory(CAT.gpu("h100-sxm"), CAT.model(model), CAT.quant("bf16"), tp, vllm_version=version,
                               **H100_DEFAULTS)
            assert hold_one_sequence(plan, max_len, 16, version) is plan
            assert check_max_model_len(plan, max_len, 16, version) is not None
        for version in [(0, 19, 0), None]:
            plan = plan_memory(CAT.gpu("h100-sxm"), CAT.model(model), CAT.quant("bf16"), tp, vllm_version=version,
                               **H100_DEFAULTS)
            assert check_max_model_len(plan, max_len, 16, version) is not None  # the plan alone misses
            held = hold_one_sequence(plan, max_len, 16, version)
            assert held.num_kv_blocks == blocks and check_max_model_len(held, max_len, 16, version) is None
            assert "within the plan's uncertainty" in held.edge_note
        engine = {"max_model_len": max_len, "max_num_seqs": 1024, "vllm_version": "0.19.0"}
        fleet = [{"name": "a", "gpu": "h100-sxm", "replicas": 1, "model": model, "tensor_parallel": tp,
                  "engine": engine}]
        scenario = scenario_from_dict(scenario_dict(fleet=fleet))
        pools = build_pool_models(scenario)
        assert pools[0].num_gpu_blocks == blocks
        (line,) = memory_warnings(pools)
        assert "pool 'a'" in line and "GiB more than" in line
        fleet[0]["engine"] = {**engine, "vllm_version": "0.11.0"}
        with pytest.raises(FleetcastError, match="vLLM refuses to start"):
            build_pool_models(scenario_from_dict(scenario_dict(fleet=fleet)))


def test_fleetcast_run_plans_each_pools_memory_once(tmp_path, monkeypatch):
    """`fleetcast run` builds the pool models once: its KV-at-the-edge warnings read their plans and the run
    simulates them. The disaggregated example has two pools (prefill, decode), so two plans, not four."""
    calls: list[str] = []
    real = pool_model.plan_memory

    def counted(gpu, model, *args, **kwargs):
        calls.append(model.name)
        return real(gpu, model, *args, **kwargs)

    monkeypatch.setattr(pool_model, "plan_memory", counted)
    root = Path(__file__).resolve().parents[1]
    assert main(["run", str(root / "scenarios" / "disaggregated.yaml"), "--out", str(tmp_path / "out")]) == 0
    assert len(calls) == 2


def test_the_uncertainty_counts_only_what_the_plan_extrapolates():
    """0.5 GiB (KV_PLAN_UNCERTAINTY_BYTES) everywhere; + the held MoE workspace term (1.2 x 1,073,741,824 bytes for
    Qwen3-235B at TP8) beyond the 4 GPUs it was fitted on; + the sort/Triton sampler difference ((9.6 - 3.8) x
    1,024 x 151,936 x 4 bytes = 3.36 GiB) for releases 0.15-0.17, whose sampler path is not identified."""
    dense = plan_memory(CAT.gpu("h100-sxm"), CAT.model("qwen3-32b"), CAT.quant("bf16"), 1, vllm_version=(0, 19, 0),
                        **H100_DEFAULTS)
    assert dense.uncertainty_bytes_per_gpu == KV_PLAN_UNCERTAINTY_BYTES
    moe8 = plan_memory(CAT.gpu("h100-sxm"), CAT.model("qwen3-235b-a22b"), CAT.quant("bf16"), 8,
                       vllm_version=(0, 19, 0), **H100_DEFAULTS)
    assert moe8.uncertainty_bytes_per_gpu == KV_PLAN_UNCERTAINTY_BYTES + math.ceil(1.2 * 1_073_741_824)
    moe4 = plan_memory(CAT.gpu("h100-sxm"), CAT.model("qwen3-235b-a22b"), CAT.quant("fp8"), 4,
                       vllm_version=(0, 19, 0), **H100_DEFAULTS)
    assert moe4.uncertainty_bytes_per_gpu == KV_PLAN_UNCERTAINTY_BYTES
    window = plan_memory(CAT.gpu("h100-sxm"), CAT.model("qwen3-32b"), CAT.quant("bf16"), 1, vllm_version=(0, 16, 0),
                         **H100_DEFAULTS)
    assert window.uncertainty_bytes_per_gpu - KV_PLAN_UNCERTAINTY_BYTES == pytest.approx(
        (9.6 - 3.8) * QWEN3_LOGITS_1024, rel=1e-6)


# LMCache/LMCache docs FAQ, "KV Cache Sizes for Popular Models" (PR #1769, merged 2025-10-10, Apache-2.0): "Spare GPU
# RAM for KV cache" at each model's full context on H100, the server's defaults of that time (vLLM 0.10/0.11: 0.9,
# 8,192 tokens, 1,024 sequences). Checked at 0.11 (0.10 plans the same). (model, tp, logged GiB, logged tokens)
LMCACHE_FAQ = [("qwen3-8b", 1, 50.32, 366_400), ("qwen3-32b", 2, 33.66, 275_760), ("llama-3.1-70b", 4, 32.06, 420_208)]


@pytest.mark.parametrize("model,tp,kv_gib,tokens", LMCACHE_FAQ, ids=[f"{r[0]}-tp{r[1]}" for r in LMCACHE_FAQ])
def test_lmcache_faq_h100_kv_within_3_percent(model, tp, kv_gib, tokens):
    """The table's own arithmetic first (tokens x KV bytes per token per GPU = its GiB: Qwen3-8B 36 layers x 8 KV heads
    x 128 x 2 x 2 = 147,456; Qwen3-32B 64 x 4 per GPU at TP2 x 128 x 4 = 131,072; Llama-3.1-70B 80 x 2 per GPU at TP4
    x 128 x 4 = 81,920), then the plan against it."""
    plan = plan_memory(CAT.gpu("h100-sxm"), CAT.model(model), CAT.quant("bf16"), tp, vllm_version=(0, 11, 0),
                       **H100_DEFAULTS)
    assert tokens * plan.kv_bytes_per_token_per_gpu / GiB == pytest.approx(kv_gib, abs=0.01)
    assert abs(plan.available_kv_bytes_per_gpu / GiB / kv_gib - 1) <= 0.03


def test_rtx_5060_ti_qwen2_5_7b_awq_vllm_0_11():
    """josemendozaorg/homelab-android19 specs/gpu-passthrough-vm-llm-workloads/vllm-performance-analysis.md (commit
    4b5d89ee): RTX 5060 Ti 16 GB, Qwen/Qwen2.5-7B-Instruct-AWQ, vLLM 0.11.0, gpu_memory_utilization 0.85, max_model_len
    32,768, TP1: "KV Cache Size: 121,072 tokens (6.47 GiB)" (121,072 x 57,344 bytes = 6.47 GiB: 28 layers x 4 KV heads
    x 128 x 2 x 2). The card reports 16,311 MiB ("16.3GB" in the file; the RTX 5060 Ti 16 GB's total); vLLM 0.11's
    defaults below 70 GiB are 2,048 batched tokens and 256 sequences. A thin remainder (6.5 GiB of 13.5): within 0.5 GiB.
    The 0.19 sampler on the same run would leave 1.1 GiB more (the plan before the sampler rule: +16.7%)."""
    plan = plan_memory(_consumer_gpu("rtx-5060-ti", 16_311 / 1024), CAT.model("qwen2.5-7b"), CAT.quant("int4-awq"), 1,
                       0.85, 16, 2048, 256, (0, 11, 0))
    assert plan.kv_bytes_per_token_per_gpu == 57_344
    assert abs(plan.available_kv_bytes_per_gpu / GiB - 6.47) <= 0.5
    assert check_max_model_len(plan, 32_768, 16, (0, 11, 0)) is None  # it served 32,768


# Two RTX 4090s (24 GB, no P2P), TP2, vLLM v0 of February 2025 (0.7.2, the release of that date; the log's
# model_runner.py / multiproc_worker_utils.py lines are v0's), deepseek-ai/DeepSeek-R1-Distill-Qwen-14B in bf16 at
# gpu_memory_utilization 0.98 and its default max_model_len 131,072 (vllm-project/vllm#13061, the issue's
# description): "Loading model weights took 13.9476 GB" (v0 prints GiB as "GB"), "non_torch_memory takes 0.25GiB;
# PyTorch activation peak memory takes 0.19GiB; ... the rest of the memory reserved for KV Cache is 8.69GiB" (the
# reporter's own sum, 23.08 - 13.9476 - 0.25 - 0.19 = 8.69, gives the budget: 23.08 GiB = 23.55 x 0.98, the catalog
# RTX 4090's reported memory), then "The model's max seq len (131072) is larger than the maximum number of tokens that
# can be stored in KV cache (81536)". The model has Qwen2.5-14B's shapes (its config.json: 48 layers, hidden 5120, 40
# heads, 8 KV heads of 128, intermediate 13,824, vocab 152,064, q/k/v biases): 2 x 48 x 4 KV heads per GPU x 128 x 2
# bytes = 98,304 bytes per token per GPU, so 81,536 tokens are 5,096 blocks of 16 = 7.46 GiB per GPU.
# Why two figures: the memory lines are the non-driver worker's (VllmWorkerProcess), which in v0 runs no sampler
# (v0 gathers the logits to the driver only), so its peak is the forward's 0.19 GiB; the block count is the minimum
# over the workers, the driver's, whose peak includes the dummy sampler: 23.08 - 13.95 - 0.25 - 7.46 = 1.42 GiB,
# the sort sampler's 9.6 fp32 copies of 256 rows x 152,064 (1.39 GiB; v0 turns chunked prefill on above 32k tokens,
# so the profile is 2,048 tokens over 256 sequences). v0 on an 8 GiB RTX 4060 (vllm-project/vllm#13882, below) logs
# the same 1.42 GiB for 256 rows of Qwen2.5-7B's 152,064 logits.
R1_QWEN_14B = dict(name="deepseek-r1-distill-qwen-14b", num_layers=48, hidden_size=5120, num_heads=40, num_kv_heads=8,
                   head_dim=128, intermediate_size=13824, vocab_size=152064, max_position_embeddings=131072)
V0_FEB_2025 = (0, 7, 2)


def _r1_qwen_14b_on_two_4090s():
    model = dataclasses.replace(CAT.model("qwen2.5-7b"), **R1_QWEN_14B)  # qwen2.5-7b: the same Qwen2 block
    return plan_memory(CAT.gpu("rtx-4090"), model, CAT.quant("bf16"), 2, 0.98, 16, 2048, 256, V0_FEB_2025)


def test_two_rtx_4090s_v0_terms_match_the_log():
    plan = _r1_qwen_14b_on_two_4090s()
    assert plan.kv_bytes_per_token_per_gpu == 98_304
    assert plan.budget_bytes_per_gpu / GiB == pytest.approx(23.08, abs=0.01)
    assert abs(plan.weight_bytes_per_gpu / GiB - 13.9476) <= 0.25
    assert abs(plan.activation_bytes_per_gpu / GiB - 1.42) <= 0.15  # the driver's peak (the sort-path sampler)
    # vLLM refused max_model_len 131,072 with 81,536 tokens of KV: so does the plan, by more than its uncertainty
    assert hold_one_sequence(plan, 131_072, 16, V0_FEB_2025) is plan
    assert check_max_model_len(plan, 131_072, 16, V0_FEB_2025) is not None


@pytest.mark.xfail(strict=True, reason="known miss: v0 on two RTX 4090s (PCIe, no P2P, so no custom all-reduce) logs "
                   "0.25 GiB of non-torch memory at TP2; the plan has 2.08 (COMM_BYTES, read from vLLM 0.19 H100 logs): "
                   "5.85 GiB of KV planned against 7.46 (-21.6 %), 3,995 blocks against 5,096. Conservative; the release "
                   "or topology rule behind the communicators' memory is not identified (calibration/README.md, KV "
                   "capacity at the edge)")
def test_two_rtx_4090s_v0_available_kv_matches_the_log():
    plan = _r1_qwen_14b_on_two_4090s()
    assert abs(plan.available_kv_bytes_per_gpu / GiB - 5096 * 16 * 98_304 / GiB) <= 0.5


def test_rtx_4060_v0_terms_match_the_log():
    """The same vllm-project/vllm#13882 log as above, term by term: "total_gpu_memory (8.00GiB) x gpu_memory_utilization
    (0.70) = 5.60GiB", "model weights take 5.20GiB; non_torch_memory takes 0.03GiB; PyTorch activation peak memory takes
    1.42GiB". One sequence of max_model_len 4,096 (no chunked prefill below 32k in v0) and 256 dummy rows: the forward of
    4,096 tokens is 0.77 GiB, the sort sampler's 9.6 x 256 x 152,064 x 4 bytes 1.39 GiB, so the sampler sets the peak."""
    gpu = _consumer_gpu("rtx-4060", 8.00)
    plan = _plan_or_terms(gpu, CAT.model("qwen2.5-7b"), CAT.quant("int4-awq"), 0.70, 4096, (0, 7, 3))
    assert plan.budget_bytes_per_gpu / GiB == pytest.approx(5.60, abs=0.01)
    assert abs(plan.weight_bytes_per_gpu / GiB - 5.20) <= 0.25
    assert abs(plan.activation_bytes_per_gpu / GiB - 1.42) <= 0.15


def _plan_or_terms(gpu, model, quant, util, tokens, version):
    """The plan's terms where no KV block fits (plan_memory refuses, as vLLM did): the private planner, no refusal."""
    return plan_terms(gpu, model, quant, 1, util, 16, tokens, 256, version)


# RTX 3060 12 GB, Qwen/Qwen3-8B-AWQ (awq_marlin), gpu_memory_utilization 0.90, TP1, the server's defaults below 70 GiB
# (2,048 batched tokens, 256 sequences), vLLM of November 2025 (0.11.0, the release then; the file names none, and
# 0.10-0.13 plan alike: sort-path sampler, no CUDA-graph term, freed MoE workspace): Peuqui/AIfred-Intelligence
# docs/vllm/VLLM_RTX3060_CONFIG.md (commit d6ff5b5b, "as of 2025-11"): served max_model_len 26,608 with "Available KV
# cache memory: 3.66 GiB"; refused 32,768: "4.50 GiB KV cache is needed, which is larger than available KV cache
# memory (3.66 GiB)". Qwen3-8B (config.json): 36 layers x 8 KV heads x 128 x 2 x 2 bytes = 147,456 bytes per token, so
# 32,768 tokens are 4.50 GiB (the log's figure) and vLLM's longest length, 26,608 = 1,663 blocks of 16, pins the
# available memory between 1,663 and 1,664 blocks: 3.654-3.656 GiB. The card's reported memory is not in the file: the
# RTX 3090's ratio (23.58 GiB reported of 24 GiB, vllm-project/vllm#10517 above) on 12 GiB gives 11.79 GiB. A thin
# remainder (3.7 GiB of 10.6): within 0.5 GiB.
RTX3060_GIB = 12 * 23.58 / 24
V011 = (0, 11, 0)


def _qwen3_8b_awq_on_a_3060():
    return plan_memory(_consumer_gpu("rtx-3060", RTX3060_GIB), CAT.model("qwen3-8b"), CAT.quant("int4-awq"), 1, 0.90,
                       16, 2048, 256, V011)


def test_rtx_3060_qwen3_8b_awq_available_kv_matches_the_log():
    plan = _qwen3_8b_awq_on_a_3060()
    assert plan.kv_bytes_per_token_per_gpu == 147_456
    assert 32_768 * 147_456 / GiB == pytest.approx(4.50, abs=0.005)
    logged = 1_663.5 * 16 * 147_456 / GiB  # 3.655 GiB
    assert abs(plan.available_kv_bytes_per_gpu / GiB - logged) <= 0.5, plan.available_kv_bytes_per_gpu / GiB


def test_rtx_3060_starts_what_vllm_served_and_refuses_what_it_refused():
    """26,608 served: the plan alone is short of it by less than its uncertainty, so the sequence is held with a warning
    (not refused); 32,768 refused: short by more, refused as vLLM did."""
    plan = _qwen3_8b_awq_on_a_3060()
    held = hold_one_sequence(plan, 26_608, 16, V011)
    assert check_max_model_len(held, 26_608, 16, V011) is None
    assert hold_one_sequence(plan, 32_768, 16, V011) is plan
    assert check_max_model_len(plan, 32_768, 16, V011) is not None


# vLLM's FlashInfer sampler by release (sim/perf/memory.py, FLASHINFER_SAMPLER_V1_SINCE, read from the vllm sdists of
# 0.7.3-0.11.1): the V1 profile run samples min(max_num_seqs, max_num_batched_tokens) dummy rows with top_k =
# vocabulary - 1 and top_p 0.9, and TopKTopPSampler takes FlashInfer's kernel when flashinfer imports and
# VLLM_USE_FLASHINFER_SAMPLER is unset (0.8.0-0.11.0; opt-in from 0.11.1, PR #26859). The vllm/vllm-openai image of
# llm-d-benchmark's exp-0 (v0.8.5) installs flashinfer 0.2.1.post2 (its docker/Dockerfile), so its sampler is FlashInfer's.
def test_the_flashinfer_sampler_peak_follows_the_install_and_the_release():
    assert sampler_copies((0, 8, 5), True) == 3.8  # FlashInfer: logits 0.5 + fp32 1 + two fp32 tensors, no sort
    assert sampler_copies((0, 10, 0), True) == 3.8
    for version in [(0, 8, 5), (0, 10, 0), (0, 11, 0), (0, 11, 1), (0, 14, 0)]:  # pip install / opt-in: the sort
        assert sampler_copies(version, None) == 9.6
        assert sampler_copies(version, False) == 9.6
    assert sampler_copies((0, 19, 0), None) == sampler_copies((0, 19, 0), True) == 3.8  # Triton or FlashInfer
    # a pool that names the kernel carries no sampler uncertainty in the unidentified 0.15-0.17 window
    named = plan_memory(
        CAT.gpu("h100-sxm"),
        CAT.model("qwen3-32b"),
        CAT.quant("bf16"),
        1,
        vllm_version=(0, 16, 0),
        flashinfer_sampler=True,
        **H100_DEFAULTS,
    )
    assert named.uncertainty_bytes_per_gpu == KV_PLAN_UNCERTAINTY_BYTES


def test_llm_d_exp0_plans_the_flashinfer_sampler_of_its_image():
    """Llama-3.1-70B bf16, TP2 on A100-SXM4-80GB (catalog: 85,061,830,000 bytes reported), vLLM 0.8.5, utilization
    0.95, 8,192 batched tokens, 1,024 sequences, block 16. By hand, per GPU:
    budget      = ceil(0.95 x 85,061,830,000)                          = 80,808,738,500
    weights     = 141,107,412,992 / 2 (70.55 B parameters x 2 bytes)     = 70,553,706,496
    non-torch   = 0.25 GiB + 1.83 GiB (TP2 communicators)               = 268,435,456 + 1,964,947,537 = 2,233,382,993
    sampler     = 3.8 x 1,024 x 128,256 x 4 bytes                         = 1,996,278,989 (the forward: 1.21 x 8,192 x
                  2 bytes x (2 x 8,192 + 3 x 28,672 / 2) = 1,177,425,019, less)
    available   = 80,808,738,500 - 70,553,706,496 - 1,996,278,989 - 2,233,382,993 = 6,025,370,022
    block       = 16 x 80 layers x 4 KV heads per GPU x 128 x 2 (K, V) x 2 bytes = 2,621,440
    blocks      = floor(6,025,370,022 / 2,621,440) = floor(2,298.5) = 2,298
    The sort path (9.6 copies) takes (9.6 - 3.8) x 525,336,576 = 3,046,952,141 bytes more: 1,162 blocks fewer."""
    sidecar = (
        Path(__file__).resolve().parents[1] / "calibration" / "public" / "llm-d" / "exp-0-vllm-70b" / "fleetcast.yaml"
    )
    settings = load_settings(sidecar.parent / "qps-1.csv", sidecar)
    assert settings.engine["flashinfer_sampler"] is True and settings.vllm_version == "0.8.5"
    args = dict(
        gpu_memory_utilization=0.95,
        block_size=16,
        max_num_batched_tokens=8192,
        max_num_seqs=1024,
        vllm_version=(0, 8, 5),
    )
    gpu, model, bf16 = CAT.gpu("a100-80gb"), CAT.model("llama-3.1-70b"), CAT.quant("bf16")
    image = plan_memory(gpu, model, bf16, 2, flashinfer_sampler=True, **args)
    assert image.activation_bytes_per_gpu == 1_996_278_989
    assert image.available_kv_bytes_per_gpu == 6_025_370_022
    assert image.num_kv_blocks == 2_298
    pip = plan_memory(gpu, model, bf16, 2, **args)
    assert image.num_kv_blocks - pip.num_kv_blocks in (1_162, 1_163)  # 3,046,952,141 / 2,621,440 = 1,162.3
