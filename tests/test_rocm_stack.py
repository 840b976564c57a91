"""vLLM 0.6's ROCm stack on CDNA3 (sim.perf.rocm_stack): the GEMM rate from the source's TTFT,
where the rule applies, and the step terms it adds, each checked against hand arithmetic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import sim.perf.rocm_stack as rs
from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.perf.perf_model import PAGED_V1_SEQ_HEADS, PerfCoefficients, PerfModel
from sim.perf.profiles import coefficients_for
from sim.perf.step_source import kernel_warnings
from sim.scenario.spec import scenario_from_dict


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_gemm_rate_is_the_sources_ttft_worked_by_hand():
    # Llama-3-8B linear parameters per token (hand, from the architecture: 32 layers, hidden 4096,
    # 32 query / 8 KV heads of 128, MLP 14336, vocabulary 128256; LM head counted per token as the
    # roofline does): q,o 2·4096² + k,v 2·4096·1024 + MLP 3·4096·14336, ×32, + 128256·4096
    per_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336
    flops_tok = 2.0 * (32 * per_layer + 128256 * 4096)
    assert flops_tok == pytest.approx(15.0098e9, rel=1e-4)
    # one of the two prefill steps: 8 sequences × 1024 tokens, causal pairs 8·1024·512 of
    # 4·L·heads·head_dim = 524,288 FLOPs at 0.558 of the GEMM rate; V0 0.6 CPU 1.68 ms + 8·29 µs + 8192·1.54 µs
    cpu_s = 1.68e-3 + 8 * 29e-6 + 8192 * 1.54e-6
    flops = 8192 * flops_tok + 8 * 1024 * 512 * 524288 / 0.558
    rate = flops / (2.489681196435898 / 2 - cpu_s)  # Plots/Fig_22: batch 16, 1024 in, 1 out, 2.4897 s
    assert rate == pytest.approx(103.1e12, rel=2e-3)
    assert rs.GEMM_RATE_FLOPS == pytest.approx(rate, rel=2e-3)


def test_rule_covers_vllm_06_on_cdna3_roofline_pools_only(cat):
    mi300x, h100 = cat.gpu("mi300x"), cat.gpu("h100-sxm")
    on, text = rs.stack_coefficients(mi300x, "fp16", "0.6.1")
    assert on["e_compute"] == pytest.approx(103.1 / 1307.4)
    assert on["e_attn_compute"] == pytest.approx(0.558 * 103.1 / 1307.4)
    assert on["e_attn_v1"] == rs.E_ATTN_V1 and on["t_layer_s"] == rs.T_LAYER_S and on["e_comm"] == rs.E_COMM
    assert "Plots/Fig_22" in text and "Protocol item 2" in text
    assert rs.stack_coefficients(mi300x, "bf16", "0.6.0")[0]
    for gpu, dtype, version in (
        (mi300x, "fp16", "0.7.0"),  # outside the measured release line
        (mi300x, "fp16", "0.5.4"),
        (mi300x, "fp16", None),  # no version named: the catalog's achievable rates, as before
        (mi300x, "fp8", "0.6.1"),  # the measurement is 16-bit
        (h100, "fp16", "0.6.1"),  # other architecture (and measured kernels)
    ):
        assert rs.stack_coefficients(gpu, dtype, version) == ({}, "")


def test_coefficients_for_takes_the_stack_for_a_06_pool(cat):
    mi300x, quant = cat.gpu("mi300x"), cat.quant("fp16")
    pool = SimpleNamespace(profile=None, engine=SimpleNamespace(vllm_version="0.6.1"))
    c = coefficients_for(pool, ".", mi300x, quant)
    assert c.e_compute == pytest.approx(103.1 / 1307.4)
    assert c.e_comm == rs.E_COMM and c.t_layer_s == rs.T_LAYER_S and c.e_attn_v1 == rs.E_ATTN_V1
    assert c.e_memory == pytest.approx(0.919 * 4.11 / 5.3)  # the achievable copy rate stays
    newer = coefficients_for(
        SimpleNamespace(profile=None, engine=SimpleNamespace(vllm_version="0.8.5")), ".", mi300x, quant
    )
    assert newer.e_compute == pytest.approx(0.927 * 668.4 / 1307.4) and newer.t_layer_s == 0 and newer.e_attn_v1 == 0


def test_paged_attention_v1_switch_and_layer_cost_by_hand(cat):
    gpu, model, quant = cat.gpu("mi300x"), cat.model("llama-3.1-8b"), cat.quant("fp16")
    e_mem = 0.919 * 4.11 / 5.3
    c = PerfCoefficients(e_compute=0.0789, e_memory=e_mem, e_attn_v1=0.293, t_layer_s=164e-6)
    perf = PerfModel(gpu, model, quant, 1, c)
    ctx = 100_000
    # V2 (16 · 32 heads = 512, not > 512): the roofline's KV bytes, 2·32 layers·8 KV heads·128·2 B = 131,072 B/token
    v2 = 131072 / (5.3e12 * e_mem)
    assert PAGED_V1_SEQ_HEADS == 512
    assert perf.step_time_s(0, 0.0, 16, ctx) - perf.step_time_s(0, 0.0, 16, 0) == pytest.approx(ctx * v2, rel=1e-9)
    # V1 (17 · 32 = 544 > 512): every query head reads its KV head, 2·32·32·128·2 B = 524,288 B/token at 0.293 of 5.3 TB/s
    v1 = 524288 / (5.3e12 * 0.293)
    assert perf.step_time_s(0, 0.0, 17, ctx) - perf.step_time_s(0, 0.0, 17, 0) == pytest.approx(ctx * v1, rel=1e-9)
    assert perf.decode_affine(17)[1] == pytest.approx(v1) and perf.decode_affine(16)[1] == pytest.approx(v2)
    # the per-layer cost: 32 layers × 164 µs on a step that runs the model, nothing else moves
    plain = PerfModel(gpu, model, quant, 1, PerfCoefficients(e_compute=0.0789, e_memory=e_mem))
    assert perf.step_time_s(0, 0.0, 1, 0) - plain.step_time_s(0, 0.0, 1, 0) == pytest.approx(32 * 164e-6)
    assert perf.step_time_s(0, 0.0, 16, ctx) - plain.step_time_s(0, 0.0, 16, ctx) == pytest.approx(32 * 164e-6)


def test_v1_switch_counts_heads_per_gpu(cat):
    # Llama-3-8B at TP4: 8 query heads per GPU, so V1 from 65 sequences (64 · 8 = 512 is not > 512)
    gpu, model, quant = cat.gpu("mi300x"), cat.model("llama-3.1-8b"), cat.quant("fp16")
    perf = PerfModel(gpu, model, quant, 4, PerfCoefficients(e_memory=0.7, e_attn_v1=0.293))
    v1 = 2 * 32 * 8 * 128 * 2 / (5.3e12 * 0.293)  # 131,072 B per token per GPU
    v2 = 2 * 32 * 2 * 128 * 2 / (5.3e12 * 0.7)  # 2 KV heads per GPU: 32,768 B
    assert perf.decode_affine(64)[1] == pytest.approx(v2)
    assert perf.decode_affine(65)[1] == pytest.approx(v1)


def test_bad_stack_coefficients_are_refused():
    with pytest.raises(FleetcastError, match="e_attn_v1"):
        PerfCoefficients(e_attn_v1=1.5)
    with pytest.raises(FleetcastError, match="t_layer_s"):
        PerfCoefficients(t_layer_s=-1e-6)


def test_the_warning_says_which_rates_a_06_mi300x_pool_runs_at():
    def scenario(version):
        pool = {"name": "p", "replicas": 1, "gpu": "mi300x", "model": "llama-3.1-8b"}
        pool["quantization"] = {"weights": "fp16"}
        pool["engine"] = {"vllm_version": version}
        traffic = {"duration_s": 20, "arrival": {"process": "poisson", "rate_rps": 2}}
        traffic["classes"] = [
            {
                "name": "c",
                "prompt_tokens": {"dist": "fixed", "value": 500},
                "output_tokens": {"dist": "fixed", "value": 50},
            }
        ]
        return scenario_from_dict({"name": "k", "seed": 1, "fleet": [pool], "traffic": traffic})

    assert kernel_warnings(scenario("0.6.1")) == [
        "no measured kernels for GPU 'mi300x': at vLLM 0.6.1 its roofline runs at that ROCm stack's measured "
        "GEMM rate and fitted costs (sim/perf/rocm_stack.py)"
    ]
    assert "its own achievable rates" in kernel_warnings(scenario("0.8.5"))[0]
