"""The attention backend vLLM picks by the model's features and version (sim.perf.attention_backend):
a sliding-window model before vLLM 0.6.4 decodes on XFormers' PagedAttention on a CUDA GPU, whose V1
kernel then costs by the same switch as the MI300X stack's; each figure below worked by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import sim.perf.attention_backend as ab
from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.perf.perf_model import PerfCoefficients, PerfModel
from sim.perf.profiles import coefficients_for


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_mistral_v01_has_its_sliding_window_and_v03_none(cat):
    # config.json of mistralai/Mistral-7B-v0.1: sliding_window 4096, vocab 32000; v0.3: sliding_window null
    assert cat.model("mistral-7b-v0.1").sliding_window == 4096
    assert cat.model("mistral-7b-v0.1").vocab_size == 32000
    assert cat.model("mistral-7b").sliding_window == 0


def test_selector_falls_back_to_xformers_for_a_window_before_064(cat):
    h100, a100, mi300x = cat.gpu("h100-sxm"), cat.gpu("a100-80gb"), cat.gpu("mi300x")
    swa, full = cat.model("mistral-7b-v0.1"), cat.model("mistral-7b")
    assert ab.decode_backend(h100, swa, "0.6.1") == "xformers"
    assert ab.decode_backend(a100, swa, "0.5.4") == "xformers"
    assert ab.decode_backend(h100, swa, "0.6.3.post1") == "xformers"
    for gpu, model, version in (
        (h100, swa, "0.6.4"),  # PR #9403: FlashAttention serves the window
        (h100, swa, "0.11.0"),
        (h100, swa, None),  # no version named: today's vLLM
        (h100, full, "0.6.1"),  # no window: FlashAttention-2
        (mi300x, swa, "0.6.1"),  # ROCm: sim.perf.rocm_stack's rule, not the CUDA selector
    ):
        assert ab.decode_backend(gpu, model, version) == ""
        assert ab.paged_decode_coefficients(gpu, model, version) == ({}, "")
    on, text = ab.paged_decode_coefficients(h100, swa, "0.6.1")
    assert on == {"e_attn_v1": ab.E_ATTN_V1_CUDA} and "PR #9403" in text and "Protocol item 2" in text


def test_coefficients_for_takes_the_v1_rate_only_with_the_model(cat):
    h100, quant, swa = cat.gpu("h100-sxm"), cat.quant("fp16"), cat.model("mistral-7b-v0.1")
    pool = SimpleNamespace(profile=None, engine=SimpleNamespace(vllm_version="0.6.1"))
    assert coefficients_for(pool, ".", h100, quant, model=swa).e_attn_v1 == ab.E_ATTN_V1_CUDA
    assert coefficients_for(pool, ".", h100, quant, model=cat.model("mistral-7b")).e_attn_v1 == 0
    assert coefficients_for(pool, ".", h100, quant).e_attn_v1 == 0


def test_v1_over_measured_decode_tables_by_hand(cat):
    # measured decode attention (a KernelTables' decode_s: step, per-sequence, per-context-token s)
    # stays for V2; V1 reads every query head's K/V: Mistral-7B TP1, 2·32 layers·32 heads·128·2 B =
    # 524,288 B per context token at e of 3.35 TB/s
    gpu, model, quant = cat.gpu("h100-sxm"), cat.model("mistral-7b-v0.1"), cat.quant("fp16")
    b_meas = 4.0e-11
    tables = SimpleNamespace(
        lin_s=np.array([]), lm_head_s=np.array([]), decode_s=np.array([5e-6, 1e-7, b_meas]), prefill_s=np.array([])
    )
    perf = PerfModel(gpu, model, quant, 1, PerfCoefficients(e_attn_v1=0.5), kernels=tables)
    v1 = 524288 / (3.35e12 * 0.5)
    ctx = 200_000
    assert perf.decode_ctx_b_s(16) == pytest.approx(b_meas)  # 16 · 32 = 512: V2
    assert perf.decode_ctx_b_s(17) == pytest.approx(v1)  # 544 > 512: V1
    assert perf.step_time_s(0, 0.0, 17, ctx) - perf.step_time_s(0, 0.0, 17, 0) == pytest.approx(ctx * v1, rel=1e-9)
    assert perf.step_time_s(0, 0.0, 16, ctx) - perf.step_time_s(0, 0.0, 16, 0) == pytest.approx(ctx * b_meas, rel=1e-9)
    assert perf.decode_affine(17) == (perf.step_time_s(0, 0.0, 17, 0), perf.decode_ctx_b_s(17))
    # TP2: 16 heads per GPU, V1 from 33 sequences; 262,144 B per token
    perf2 = PerfModel(gpu, model, quant, 2, PerfCoefficients(e_attn_v1=0.5), kernels=tables)
    assert perf2.decode_ctx_b_s(32) == pytest.approx(b_meas)
    assert perf2.decode_ctx_b_s(33) == pytest.approx(262144 / (3.35e12 * 0.5))
    # a V1 faster than the measured kernel is not taken: the measured one is the floor
    fast = PerfModel(
        gpu,
        model,
        quant,
        1,
        PerfCoefficients(e_attn_v1=1.0),
        kernels=SimpleNamespace(
            lin_s=np.array([]), lm_head_s=np.array([]), decode_s=np.array([0.0, 0.0, 1e-6]), prefill_s=np.array([])
        ),
    )
    assert fast.decode_ctx_b_s(64) == pytest.approx(1e-6)


def test_no_v1_rate_no_switch(cat):
    gpu, model, quant = cat.gpu("h100-sxm"), cat.model("mistral-7b-v0.1"), cat.quant("fp16")
    perf = PerfModel(gpu, model, quant, 1, PerfCoefficients())
    assert perf.decode_ctx_b_s(256) == perf.decode_ctx_b_s(1) == perf.decode_b_s(1)


def test_a_bad_sliding_window_is_a_located_catalog_error(tmp_path):
    user = tmp_path / "cat.yaml"
    user.write_text(
        "models:\n  swa:\n    num_layers: 2\n    hidden_size: 64\n    num_heads: 4\n    num_kv_heads: 2\n"
        "    intermediate_size: 128\n    vocab_size: 100\n    max_position_embeddings: 512\n"
        "    sliding_window: -4\n    source: test\n"
    )
    with pytest.raises(FleetcastError, match=r"cat\.yaml.*'swa', field 'sliding_window'.*positive whole number"):
        load_catalog([user])
