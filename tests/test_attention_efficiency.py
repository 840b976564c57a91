"""Attention's own roofline efficiency (sim.perf.attention_efficiency, issue 24 item 2).

Expected values are worked by hand from the catalog's datasheet figures (RTX 4090: 165.2 TFLOPS
bf16, 1,008 GB/s; Llama-3.1-8B: 32 layers, 32 heads, 8 KV heads, head_dim 128)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.perf.attention_efficiency import RHO_ATTN_COMPUTE
from sim.perf.perf_model import PerfCoefficients, PerfModel
from sim.perf.profiles import coefficients_for
from sim.scenario.fleet_spec import PoolSpec

CAT = load_catalog()
GPU, MODEL, BF16 = CAT.gpu("rtx-4090"), CAT.model("llama-3.1-8b"), CAT.quant("bf16")


def _pool(gpu: str, profile: str | None = None) -> PoolSpec:
    return PoolSpec(name="p", gpu=gpu, replicas=1, model="llama-3.1-8b", profile=profile)


def test_the_attention_terms_run_at_the_attention_efficiencies_by_hand():
    c = PerfCoefficients(e_compute=0.9, e_memory=0.8, e_attn_compute=0.5, e_attn_memory=0.4)
    p = PerfModel(GPU, MODEL, BF16, 1, c)
    # Prefill attention alone: the same 2,048 new tokens with no cached prefix (Σ q(k + q/2) =
    # 2048²/2) and with 2,048 cached (2048 · 3072); only the attention term differs. Per (query, key)
    # pair 4 · 32 layers · 32 heads · 128 = 2^19 FLOPs, so 2^22 more pairs are 2^41 FLOPs at
    # 165.2e12 · 0.5 FLOP/s = 26.6225 ms. (Its bytes, 1,024 per pair + 2,048 · 2^19 Q/O bytes at
    # 1,008e9 · 0.4 B/s, take 18.6 ms at most: the FLOPs bound both steps.)
    dt = p.step_time_s(2048, 2048 * 3072, 0, 0, 1) - p.step_time_s(2048, 2048 * 2048 / 2, 0, 0, 1)
    assert dt == pytest.approx(2**41 / (165.2e12 * 0.5), rel=1e-9)
    assert dt == pytest.approx(26.6225e-3, rel=1e-5)
    # Decode attention: 2 (K, V) · 32 layers · 8 KV heads · 128 · 2 bytes = 131,072 bytes per cached
    # token at 1,008e9 · 0.4 B/s = 325.079 ns (its 2^19 FLOPs at 165.2e12 · 0.5 take 6.3 ns)
    assert p.decode_affine(32)[1] == pytest.approx(131072 / (1008e9 * 0.4), rel=1e-12)
    assert p.decode_affine(32)[1] == pytest.approx(325.079e-9, rel=1e-5)


def test_unset_attention_efficiencies_are_the_linear_layers_exactly():
    a = PerfModel(GPU, MODEL, BF16, 1, PerfCoefficients(e_compute=0.9, e_memory=0.8))
    b = PerfModel(
        GPU, MODEL, BF16, 1, PerfCoefficients(e_compute=0.9, e_memory=0.8, e_attn_compute=0.9, e_attn_memory=0.8)
    )
    for step in [(2048, 2048 * 1024.0, 0, 0, 1), (0, 0.0, 32, 32_000, 0), (512, 512 * 900.0, 16, 20_000, 2)]:
        assert a.step_time_s(*step) == b.step_time_s(*step)
    # by hand, the 2^41 FLOPs of the test above at the linear efficiency 0.9: 14.7903 ms
    dt = a.step_time_s(2048, 2048 * 3072, 0, 0, 1) - a.step_time_s(2048, 2048 * 2048 / 2, 0, 0, 1)
    assert dt == pytest.approx(14.7903e-3, rel=1e-5)


@pytest.mark.parametrize("name", ["e_attn_compute", "e_attn_memory"])
@pytest.mark.parametrize("value", [1.5, -0.1])
def test_an_attention_efficiency_outside_0_1_is_refused(name, value):
    with pytest.raises(FleetcastError, match=f"{name} must be in \\(0, 1\\]"):
        PerfCoefficients(**{name: value})


def test_roofline_pools_get_prefill_attentions_own_efficiency():
    assert RHO_ATTN_COMPUTE == 0.558  # bench/achievable_loo.py --check holds this to its fit
    c = coefficients_for(_pool("rtx-4090"), Path("."), GPU, BF16)
    # 0.558 x the 16-bit e_compute 0.927 (kappa 0.927 x achievable 165.2 / peak 165.2)
    assert c.e_attn_compute == pytest.approx(0.517266, rel=1e-9) and c.e_attn_memory == 0.0
    assert "e_attn_compute 0.517 = 0.558 x the 16-bit linear e_compute 0.927" in c.source
    # fp8 linear layers: attention still computes in 16 bits, so its base is the bf16 e_compute
    c8 = coefficients_for(_pool("rtx-4090"), Path("."), GPU, CAT.quant("fp8"))
    assert c8.e_compute == pytest.approx(0.736) and c8.e_attn_compute == pytest.approx(0.517266, rel=1e-9)
    # L4: ada's e_compute 0.600 (fitted to the L40S); MI300X: 0.927 x 668.4 / 1307.4
    l4 = coefficients_for(_pool("l4"), Path("."), CAT.gpu("l4"), BF16)
    assert l4.e_attn_compute == pytest.approx(0.3348, rel=1e-9)
    mi = coefficients_for(_pool("mi300x"), Path("."), CAT.gpu("mi300x"), BF16)
    assert mi.e_attn_compute == pytest.approx(0.558 * 0.927 * 668.4 / 1307.4, rel=1e-9)


def test_pools_with_measured_kernels_or_a_profile_keep_attention_at_the_linear_efficiency(tmp_path):
    h = coefficients_for(_pool("h100-sxm"), Path("."), CAT.gpu("h100-sxm"), BF16)
    assert (h.e_attn_compute, h.e_attn_memory) == (0.0, 0.0) and "attention" not in h.source
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"name": "p", "coefficients": {"e_compute": 0.6, "e_memory": 0.7}}))
    p = coefficients_for(_pool("rtx-4090", "p.json"), tmp_path, GPU, BF16)
    assert (p.e_attn_compute, p.e_attn_memory) == (0.0, 0.0)
    prof.write_text(json.dumps({"name": "p", "coefficients": {"e_compute": 0.6, "e_attn_compute": 0.3}}))
    assert coefficients_for(_pool("rtx-4090", "p.json"), tmp_path, GPU, BF16).e_attn_compute == 0.3


def test_catalog_perf_defaults_set_the_attention_efficiencies(tmp_path):
    f = tmp_path / "cat.yaml"
    f.write_text("gpus:\n  l4:\n    perf_defaults: {e_attn_compute: 0.3, e_attn_memory: 0.6}\n")
    gpu = load_catalog([f]).gpu("l4")
    c = coefficients_for(_pool("l4"), Path("."), gpu, BF16)
    assert (c.e_attn_compute, c.e_attn_memory) == (0.3, 0.6)
    assert "catalog defaults for l4 (e_attn_compute 0.3, e_attn_memory 0.6" in c.source
    assert "0.558 x" not in c.source  # the catalog's value, not the rule's
    f.write_text("gpus:\n  l4:\n    perf_defaults: {e_attn_memory: 1.2}\n")
    with pytest.raises(FleetcastError, match="at most 1"):
        load_catalog([f])
