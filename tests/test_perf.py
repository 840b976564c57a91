"""The performance model against the roofline, physics and its own contracts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.perf.perf_model import PerfCoefficients, PerfModel, roofline_floor_s

CAT = load_catalog()
SETTINGS = settings(max_examples=300, deadline=None)


@st.composite
def configs(draw):
    """A random (gpu, model, quant, tp, coefficients) the catalog allows."""
    model = CAT.model(draw(st.sampled_from(CAT.model_names())))
    tp = draw(st.sampled_from([t for t in (1, 2, 4, 8) if model.num_heads % t == 0]))
    coeffs = PerfCoefficients(
        e_compute=draw(st.floats(0.05, 1.0)), e_memory=draw(st.floats(0.05, 1.0)),
        e_comm=draw(st.floats(0.05, 1.0)), t_step_s=draw(st.floats(0, 5e-3)),
        t_seq_s=draw(st.floats(0, 1e-4)), t_prefill_tok_s=draw(st.floats(0, 1e-6)), source="test")
    dp = draw(st.sampled_from([1, 2, 4])) if model.num_experts > 1 else 1
    return PerfModel(CAT.gpu(draw(st.sampled_from(CAT.gpu_names()))), model,
                     CAT.quant(draw(st.sampled_from(CAT.weight_schemes())),
                               draw(st.sampled_from(CAT.kv_schemes()))), tp, coeffs, dp=dp, ep=draw(st.booleans()))


@st.composite
def steps(draw):
    """(prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens, num_prefill_seqs)."""
    chunks = draw(st.lists(st.tuples(st.integers(1, 8192), st.integers(0, 100_000)), max_size=4))
    ctx = draw(st.lists(st.integers(1, 100_000), max_size=300))
    return (sum(q for q, _ in chunks), sum(q * (k + q / 2) for q, k in chunks),
            len(ctx), sum(ctx), len(chunks))


@SETTINGS
@given(configs(), steps())
def test_never_faster_than_the_roofline(pm, step):
    floor = roofline_floor_s(pm, *step)
    assert pm.step_time_s(*step) >= floor
    assert floor > 0 or step[0] + step[2] == 0


@SETTINGS
@given(configs(), st.integers(0, 1024), st.integers(0, 10_000_000))
def test_decode_affine_agrees_with_step_time(pm, n, ctx):
    a, b = pm.decode_affine(n)
    assert a + b * ctx == pytest.approx(pm.step_time_s(0, 0, n, ctx), rel=1e-12)
    assert pm.decode_affine(n) == (a, b)


@SETTINGS
@given(configs(), steps(), st.integers(0, 4), st.integers(1, 5000))
def test_step_time_is_monotone_in_every_token_argument(pm, step, which, delta):
    more = list(step)
    more[which] += delta
    assert pm.step_time_s(*more) >= pm.step_time_s(*step)


def test_tp2_speeds_up_a_large_prefill_everywhere_in_the_catalog():
    # Default coefficients, every gpu x model x weights x kv the catalog holds.
    # Over PCIe (32 GB/s per direction) the 2 all-reduces per layer of an
    # 8192-token step (~0.2 s for an 8B model) can eat the halved 8-bit
    # compute, so there the claim is only made for 16-bit compute.
    step = (8192, 8192 * 4096, 0, 0, 1)
    checked = 0
    for g in CAT.gpu_names():
        for m in CAT.model_names():
            for w in CAT.weight_schemes():
                for kv in CAT.kv_schemes():
                    one, two = _pm(g, m, w, kv, 1), _pm(g, m, w, kv, 2)
                    if one.gpu.interconnect_bw_bytes_s < 100e9 and one.compute_dtype not in ("bf16", "fp16"):
                        continue
                    assert two.step_time_s(*step) < one.step_time_s(*step), (g, m, w, kv)
                    checked += 1
    assert checked > 600


def test_tp_over_pcie_pays_for_its_all_reduces():
    """TP2 speed-up of an 8192-token Llama-3.1-8B fp8 prefill against a hand calculation from datasheets
    and the model config (not from running the code):

    Llama-3.1-8B (HF config.json): 32 layers, hidden 4096, 32 heads x 128, vocab 128,256, 8.03e9 params.
    - linear FLOPs: 2 x (8.03e9 - 128,256 x 4,096 input-embedding lookup) x 8,192 = 1.230e14, at fp8;
    - attention FLOPs: 4 (QK and PV, 2 per multiply-add) x 32 x 4,096 x (8,192^2 / 2) = 1.759e13, at bf16
      (vLLM's attention kernels compute in 16 bit);
    - per layer two ring all-reduces of 8,192 tokens x 4,096 x 2 bytes = 67.1 MB; a ring moves
      2 (tp-1)/tp = 1x of it per GPU at tp=2: 64 x 67.1 MB = 4.295e9 bytes.
    Dense peaks (NVIDIA datasheets, sparsity figures halved): H100 SXM fp8 1,979 / bf16 989.5 TFLOP/s,
    NVLink 900 GB/s bidirectional = 450 GB/s per direction; L40S fp8 733 / bf16 362 TFLOP/s, PCIe Gen4 x16
    64 GB/s bidirectional = 32 GB/s per direction. Efficiencies and overheads are set here: e_compute 0.55,
    e_comm 0.7, t_step 1 ms, t_seq 20 us, 10 us per all-reduce (64 of them).
      H100: tp1 = 1.230e14 / (1979e12 x .55) + 1.759e13 / (989.5e12 x .55) + 1.02 ms = 113.0 + 32.3 + 1.0
            = 146.3 ms; tp2 = 145.3 / 2 + 4.295e9 / (450e9 x .7) + 0.64 + 1.02 = 72.7 + 13.6 + 1.7 = 88.0 ms;
            gain 1.66.
      L40S: tp1 = 305.1 + 88.3 + 1.0 = 394.4 ms; tp2 = 196.7 + 4.295e9 / (32e9 x .7) + 1.7 = 196.7 + 191.7
            + 1.7 = 390.1 ms; gain 1.01.
    The prefill is compute-bound on both (weights and activations stream in well under the compute time,
    and each part costs the larger of its compute and memory time), so nothing else adds: 3% covers the
    rounding of the hand figures with margin."""
    coeffs = {"e_compute": 0.55, "e_comm": 0.7, "t_step_s": 1e-3, "t_seq_s": 20e-6, "t_allreduce_s": 10e-6}
    l40s = [_pm("l40s", "llama-3.1-8b", "fp8", tp=tp, **coeffs) for tp in (1, 2)]
    h100 = [_pm("h100-sxm", "llama-3.1-8b", "fp8", tp=tp, **coeffs) for tp in (1, 2)]
    step = (8192, 8192 * 4096, 0, 0, 1)
    gain = [one.step_time_s(*step) / two.step_time_s(*step) for one, two in (l40s, h100)]
    assert gain[0] == pytest.approx(394.4 / 390.1, rel=0.03)  # PCIe keeps almost none of the 2x
    assert gain[1] == pytest.approx(146.3 / 88.0, rel=0.03)  # NVLink keeps most of it
    assert h100[0].step_time_s(*step) == pytest.approx(146.3e-3, rel=0.03)
    assert l40s[0].step_time_s(*step) == pytest.approx(394.4e-3, rel=0.03)
    assert gain[0] < gain[1]


def _pm(gpu="h100-sxm", model="llama-3.1-8b", weights="bf16", kv="auto", tp=1, **coeffs):
    return PerfModel(CAT.gpu(gpu), CAT.model(model), CAT.quant(weights, kv), tp, PerfCoefficients(**coeffs))


def test_single_decode_is_about_weights_over_bandwidth():
    pm = _pm()
    gpu, model = pm.gpu, pm.model
    weights_over_bw = model.params_total * 2 / gpu.hbm_bw_bytes_s  # ~16 GB / 3.35 TB/s ~ 4.8 ms
    overheads = pm.coeffs.t_step_s + pm.coeffs.t_seq_s
    t = pm.step_time_s(0, 0, 1, 1000)
    # cannot beat streaming every non-embedding weight once; within 2x of it plus overheads
    assert t >= (model.params_total - model.vocab_size * model.hidden_size) * 2 / gpu.hbm_bw_bytes_s
    assert t <= 2 * weights_over_bw + overheads
    # and that step is memory-bound
    assert pm.step_bytes(0, 0, 1, 1000) / pm.hbm_bw_bytes_s > pm.step_flops(0, 0, 1, 1000) / pm.peak_flops


def test_a_2048_token_prefill_is_compute_bound():
    pm = _pm()
    step = (2048, 2048 * 1024, 0, 0, 1)
    assert pm.step_flops(*step) / pm.peak_flops > pm.step_bytes(*step) / pm.hbm_bw_bytes_s
    assert pm.step_flops(*step) >= 2 * pm.model.params_active * 0.9 * 2048  # ~2·P FLOPs per token


def test_moe_decode_reads_only_the_experts_it_touches():
    pm = _pm(model="mixtral-8x7b", tp=2)
    model, full = pm.model, pm.model.params_total * 2
    one = pm.step_bytes(0, 0, 1, 0)
    many = pm.step_bytes(0, 0, 4096, 0)
    assert one < 0.35 * full  # 2 of 8 experts: ~12.9B of 46.7B params
    assert one >= (model.params_active - model.vocab_size * model.hidden_size) * 2
    assert many >= (model.params_total - model.vocab_size * model.hidden_size) * 2  # all experts
    assert pm.step_flops(0, 0, 1, 0) < 2 * model.params_active * 1.01


def test_fp8_speeds_up_prefill_only_where_the_gpu_has_fp8():
    step = (4096, 4096 * 2048, 0, 0, 1)
    assert _pm("h100-sxm", weights="fp8").step_time_s(*step) < 0.7 * _pm("h100-sxm").step_time_s(*step)
    a100_fp8 = _pm("a100-80gb", weights="fp8").step_time_s(*step)
    assert a100_fp8 == pytest.approx(_pm("a100-80gb").step_time_s(*step), rel=0.15)
    # weight-only FP8 still halves the weight bytes a decode step reads
    assert _pm("a100-80gb", weights="fp8").step_time_s(0, 0, 1, 100) < 0.7 * _pm("a100-80gb").step_time_s(0, 0, 1, 100)


def test_peaks_are_per_replica():
    pm = _pm(model="llama-3.1-70b", tp=4)
    assert pm.peak_flops == 4 * pm.gpu.peak_flops["bf16"]
    assert pm.hbm_bw_bytes_s == 4 * pm.gpu.hbm_bw_bytes_s


def test_invalid_tp_and_coefficients_are_user_errors():
    with pytest.raises(FleetcastError, match="tp=8.*28 attention heads"):
        _pm(model="qwen2.5-7b", tp=8)
    with pytest.raises(FleetcastError, match="e_compute"):
        PerfCoefficients(e_compute=1.5)




MOE_MODELS = [n for n in CAT.model_names() if CAT.model(n).num_experts > 1]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MOE_MODELS), st.sampled_from([1, 2, 4, 8]), st.sampled_from([1, 2, 4]),
       st.booleans(), st.integers(1, 2000), st.integers(1, 200))
def test_moe_decode_weight_bytes_rise_with_batch_towards_the_full_expert_set(name, tp, dp, ep, n, more):
    """A decode step of n sequences reads the experts the dp·n tokens of all ranks are expected to touch,
    E·(1 - (1 - k/E)^(dp·n)) per MoE layer: more with every extra sequence, never more than every expert,
    and (nearly) every expert at a large batch."""
    model = CAT.model(name)
    if model.num_heads % tp:
        return
    pm = PerfModel(CAT.gpu("h200"), model, CAT.quant("bf16"), tp, dp=dp, ep=ep)
    act = pm._act_tok
    read = lambda k: pm.step_bytes(0, 0, k, 0) / tp - act * k  # noqa: E731  weight bytes per GPU
    full = pm._w_base + pm._w_experts
    few, many = read(n), read(n + more)
    assert few < many or many == pytest.approx(full, rel=1e-12)
    assert many <= full * (1 + 1e-12)
    one_token = pm._w_base + pm._w_experts * (1 - (1 - model.num_experts_active / model.num_experts) ** dp)
    assert read(1) == pytest.approx(one_token, rel=1e-12)
    assert read(20_000) == pytest.approx(full, rel=1e-3)


def test_shared_experts_and_dense_layers_are_read_every_step():
    """DeepSeek-V3: one token reads the attention, the 3 dense MLPs and the 58 shared experts whole,
    plus its 8 routed experts; its FLOPs are 2 x its active parameters (the input embedding excepted)."""
    m = CAT.model("deepseek-v3")
    pm = PerfModel(CAT.gpu("h200"), m, CAT.quant("fp8"), 8)
    always = (m.num_layers * m.params_attention_per_layer + m.first_dense_layers * m.params_dense_mlp
              + m.moe_layers * m.params_shared_expert)  # 1 byte each at fp8
    assert pm._w_base * 8 >= always
    flops = pm.step_flops(0, 0, 1, 0)
    assert flops == pytest.approx(2 * (m.params_active - m.vocab_size * m.hidden_size), rel=1e-9)


def test_mla_decode_attention_reads_the_latent_not_per_head_kv():
    """DeepSeek-V3 decode at 8 x 4k context on 8 H200s: attention reads 70,272 bytes per context token
    per GPU (the latent), against 4,997,120 / 8 as per-head K and V; its FLOPs per cached token are
    2 x 61 x 16 heads x (2 x 512 + 64) per GPU (absorbed form)."""
    m = CAT.model("deepseek-v3")
    pm = PerfModel(CAT.gpu("h200"), m, CAT.quant("fp8"), 8)
    per_ctx = pm.step_bytes(0, 0, 8, 1) - pm.step_bytes(0, 0, 8, 0)
    assert per_ctx == pytest.approx(70_272 * 8, rel=1e-12)  # per GPU x 8 GPUs
    per_ctx_flops = pm.step_flops(0, 0, 8, 1) - pm.step_flops(0, 0, 8, 0)
    assert per_ctx_flops == pytest.approx(2 * 61 * 16 * (2 * 512 + 64) * 8, rel=1e-9)


def test_data_parallel_adds_the_moe_exchange_and_touches_more_experts():
    """Qwen3-30B-A3B, one decode per rank: as data_parallel 2 each rank's step reads the experts two
    tokens touch (on half of them) and pays a dispatch and a combine per MoE layer."""
    m, q, gpu = CAT.model("qwen3-30b-a3b"), CAT.quant("bf16"), CAT.gpu("h100-sxm")
    one, two = PerfModel(gpu, m, q, 1), PerfModel(gpu, m, q, 1, dp=2, ep=True)
    assert two._w_experts == one._w_experts / 2
    assert two._comm_fixed == 2 * m.moe_layers * two.coeffs.t_allreduce_s > 0 == one._comm_fixed
    assert two.step_time_s(0, 0, 1, 1000) > one.step_time_s(0, 0, 1, 1000) * 0.5
