"""MoE under expert and data parallelism: the expert-load imbalance (balls into bins, Raab & Steger 1998),
where it enters the step time (roofline and measured fused-MoE tables), the per-step exchange's bytes, and
which fused-MoE kernel an fp8 pool reads. Expected values are worked by hand in each docstring."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from sim.catalog import load_catalog
from sim.perf.kernels import data as kd
from sim.perf.kernels.layout import ep_gpus, expert_load_imbalance, moe_exchange_s
from sim.perf.kernels.tables import TableInputs
from sim.perf.perf_model import PerfCoefficients, PerfModel

CAT = load_catalog()
ROOT = kd.data_root()
needs_data = pytest.mark.skipif(ROOT is None, reason="aiconfigurator-core is not installed")


@pytest.mark.parametrize(
    "tokens,k,experts,gpus,want",
    [
        # 256 tokens x top-8 over 2 GPUs: mean 1024 per GPU; 1 + sqrt(2 ln 2 / 1024) = 1 + sqrt(0.00135380) = 1.0367941
        (256, 8, 128, 2, 1.0367941),
        # 8 tokens x top-8 over 2 GPUs: mean 32; 1 + sqrt(1.3862944 / 32) = 1 + 0.2081387 = 1.2081387
        (8, 8, 128, 2, 1.2081387),
        # 16 tokens x top-1 over 4 GPUs: mean 4; 1 + sqrt(2 ln 4 / 4) = 1 + sqrt(0.6931472) = 1.8325546
        (16, 1, 16, 4, 1.8325546),
        # one token, top-1, 4 GPUs: it lands on one GPU, max/mean = 1 / (1/4) = 4 (the cap; the formula says 4.33)
        (1, 1, 16, 4, 4.0),
        # one token, top-8 of 16 experts over 8 GPUs (2 experts each): at most 2 on one GPU, mean 1 -> cap 2
        # (the formula says 1 + sqrt(2 ln 8) = 3.04)
        (1, 8, 16, 8, 2.0),
        (1000, 8, 128, 1, 1.0),  # one GPU: nothing to balance
        (0, 8, 128, 4, 1.0),  # an empty step
    ],
)
def test_expert_load_imbalance_is_raab_steger_capped_by_the_experts_one_gpu_holds(tokens, k, experts, gpus, want):
    assert expert_load_imbalance(tokens, k, experts, gpus) == pytest.approx(want, abs=5e-7)


def test_imbalance_falls_with_tokens_and_rises_with_gpus():
    loads = [expert_load_imbalance(t, 8, 128, 8) for t in (1, 4, 16, 64, 256, 1024, 8192)]
    # 8192 tokens x 8 over 8 GPUs: 1 + sqrt(2 ln 8 / 8192) = 1.02253
    assert all(a >= b for a, b in zip(loads, loads[1:])) and loads[-1] == pytest.approx(1.02253, abs=1e-5)
    assert expert_load_imbalance(256, 8, 128, 2) < expert_load_imbalance(256, 8, 128, 4) < expert_load_imbalance(
        256, 8, 128, 8
    )


def test_only_expert_parallel_moe_layouts_have_an_ep_group():
    moe, dense = CAT.model("qwen3-30b-a3b"), CAT.model("llama-3.1-8b")
    assert ep_gpus(moe, 1, 2, True) == 2 and ep_gpus(moe, 2, 4, True) == 8
    assert ep_gpus(moe, 2, 4, False) == 1 and ep_gpus(dense, 2, 1, True) == 1


def test_the_exchange_moves_dispatch_and_combine_bytes_per_moe_layer_by_hand():
    """Qwen3-30B-A3B (48 MoE layers, hidden 2048), bf16 activations, data_parallel 2 of TP1 on H100
    (NVLink 450 GB/s one direction, catalog): per token of this rank, each MoE layer gathers the other
    rank's token (2048 x 2 bytes) and sends its result back: 2 x 48 x 2048 x 2 x (2-1)/1 = 393,216 bytes,
    at 450e9 x e_comm 0.7 = 315e9 B/s -> 1.2483e-6 s per token; 2 x 48 latencies of 10 us = 0.96 ms."""
    m, q, g = CAT.model("qwen3-30b-a3b"), CAT.quant("bf16"), CAT.gpu("h100-sxm")
    fixed, per_tok = moe_exchange_s(m, q, g, 0.7, 10e-6, 1, 2)
    assert per_tok == pytest.approx(393_216 / 315e9, rel=1e-12)
    assert fixed == pytest.approx(96 * 10e-6, rel=1e-12)
    # TP2 x DP4: each GPU moves its 1/2 share of the other 3 ranks' tokens: 2 x 48 x 2048 x 2 x 3 / 2 bytes
    assert moe_exchange_s(m, q, g, 0.7, 10e-6, 2, 4)[1] == pytest.approx(589_824 / 315e9, rel=1e-12)
    assert moe_exchange_s(m, q, g, 0.7, 10e-6, 2, 1) == (0.0, 0.0)


def test_roofline_expert_parallel_prefill_pays_the_most_loaded_gpus_flops():
    """Qwen3-30B-A3B bf16 as TP1 x DP2 on H100, a compute-bound step of 4,096 prefill tokens per rank:
    with expert parallelism the routed experts' FLOPs per GPU are 2 x 48 layers x top-8 x 4,718,592
    parameters per expert (3 x 2048 x 768) x 4,096 tokens = 1.48436e13, at 989.4 TFLOP/s x 0.55; the most
    loaded GPU carries (1 + sqrt(2 ln 2 / (8192 x 8 / 2))) = 1.0065043 times that, so the step is longer
    by 0.0065043 x 1.48436e13 / (989.4e12 x 0.55) = 0.17742 ms than with the experts sliced over both GPUs."""
    m, q, g = CAT.model("qwen3-30b-a3b"), CAT.quant("bf16"), CAT.gpu("h100-sxm")
    c = PerfCoefficients()
    sliced, whole = PerfModel(g, m, q, 1, c, dp=2, ep=False), PerfModel(g, m, q, 1, c, dp=2, ep=True)
    step = (4096, 4096 * 2048.0, 0, 0, 1)
    routed = 2 * 48 * 8 * (3 * 2048 * 768) * 4096
    extra = (math.sqrt(2 * math.log(2) / (8192 * 8 / 2))) * routed / (g.peak_flops["bf16"] * c.e_compute)
    assert extra == pytest.approx(0.17742e-3, rel=1e-3)
    assert whole.step_time_s(*step) - sliced.step_time_s(*step) == pytest.approx(extra, rel=1e-9)
    # a dense model and a one-GPU MoE have no imbalance: the same step as before
    assert PerfModel(g, m, q, 1, c).step_time_s(*step) == PerfModel(g, m, q, 1, c, ep=True).step_time_s(*step)


def _moe_ms(dtype: str, kernel: str, tokens: int, h: int, inter: int, k: int, e: int, mtp: int, mep: int,
            dist: str = "balanced", system: str = "h100_sxm", version: str = "0.24.0") -> float:
    """One fused-MoE latency (ms) straight from a system's parquet file (h100_sxm, vLLM 0.24.0 by default)."""
    df = pq.read_table(ROOT / system / "moe" / "vllm" / version / "moe_perf.parquet").to_pandas()
    rows = df[(df.moe_dtype == dtype) & (df.kernel_source == kernel) & (df.num_tokens == tokens)
              & (df.hidden_size == h) & (df.inter_size == inter) & (df.topk == k) & (df.num_experts == e)
              & (df.moe_tp_size == mtp) & (df.moe_ep_size == mep) & (df.distribution == dist)]
    assert len(rows) == 1
    return float(rows.latency.iloc[0])


@needs_data
def test_expert_parallel_tables_read_the_fused_moe_rows_at_the_most_loaded_gpus_tokens():
    """Qwen3-30B-A3B bf16, TP1 x DP2 with expert parallelism on H100, 256 tokens per rank: 512 tokens reach
    the MoE layers; under uniform routing the most loaded GPU holds 1 + sqrt(2 ln 2 / 2048) = 1.0260173 times
    the mean, so the balanced rows (moe tp 1, ep 2) are read at 525.3 tokens, between the measured 512 and
    768: latency(512) + (525.3 - 512) / 256 x (latency(768) - latency(512)); the same kernel's power_law_1.2
    row at 512 tokens (its busiest GPU under skewed routing) is slower here, so it is the one taken; times
    48 MoE layers."""
    from sim.perf.kernels.tables import _moe_measured

    m = CAT.model("qwen3-30b-a3b")
    inp = TableInputs(system="h100_sxm", model=m, quant=CAT.quant("bf16"), tp=1, max_tokens=512, vllm_version=None,
                      gpu=CAT.gpu("h100-sxm"), e_compute=0.78, e_memory=0.8, e_comm=0.7, t_allreduce_s=1e-5, dp=2,
                      ep=True)
    got, kernel = _moe_measured(ROOT, inp, "0.24.0", np.array([256]), [])
    n = 512 * (1 + math.sqrt(2 * math.log(2) / 2048))
    assert n == pytest.approx(525.32, abs=0.01)
    kern = "vllm_unquantizedfusedmoe_triton_tritonexperts"
    a, b = (_moe_ms("bfloat16", kern, x, 2048, 768, 8, 128, 1, 2) for x in (512, 768))
    uniform = a + (n - 512) / 256 * (b - a)
    skewed = _moe_ms("bfloat16", kern, 512, 2048, 768, 8, 128, 1, 2, dist="power_law_1.2")
    assert skewed > uniform
    assert got[0] == pytest.approx(skewed * 1e-3 * 48, rel=1e-12)
    assert kern in kernel and "power_law_1.2" in kernel


@needs_data
def test_an_fp8_moe_pool_on_hopper_reads_the_triton_fused_moe_rows():
    """Llama-4-Scout fp8 TP4 on H100 (llm-d exp-4): the data's `fp8` rows are FlashInfer CUTLASS only
    (0.960 ms per layer at 16 tokens, 2.6x the bf16 Triton kernel's 0.369 ms); the pool reads the Triton
    fp8 kernel's rows (`fp8_block`, 0.224 ms at 16 tokens) x 48 MoE layers."""
    from sim.perf.kernels.tables import _moe_measured

    m = CAT.model("llama-4-scout")
    inp = TableInputs(system="h100_sxm", model=m, quant=CAT.quant("fp8"), tp=4, max_tokens=64, vllm_version=None,
                      gpu=CAT.gpu("h100-sxm"), e_compute=0.425, e_memory=0.8, e_comm=0.7, t_allreduce_s=1e-5)
    got, kernel = _moe_measured(ROOT, inp, "0.24.0", np.array([16]), [])
    triton = _moe_ms("fp8_block", "vllm_fp8moe_triton_tritonexperts", 16, 5120, 8192, 1, 16, 4, 1)
    flashinfer = _moe_ms("fp8", "vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts", 16, 5120, 8192, 1, 16,
                         4, 1)
    assert triton == pytest.approx(0.224, abs=5e-4) and flashinfer == pytest.approx(0.960, abs=5e-4)
    assert got[0] == pytest.approx(triton * 1e-3 * 48, rel=1e-12) and "fp8_block" in kernel and "triton" in kernel


@pytest.mark.parametrize(
    "weights,version,ep,want",
    [
        # vLLM 0.10-0.14 (quantization/fp8.py get_fp8_moe_backend): FlashInfer only with VLLM_USE_FLASHINFER_MOE_FP8=1
        # (off by default), so Triton with and without expert parallelism
        ("fp8", "0.11.1", True, ("triton", ("fp8", "fp8_block"))),
        ("fp8", "0.14.1", True, ("triton", ("fp8", "fp8_block"))),
        ("fp8", "0.11.1", False, ("triton", ("fp8", "fp8_block"))),
        # from 0.15 (PR #33490's report; the oracle's "prefer Triton for TP and FI CUTLASS for EP" on Hopper block fp8)
        ("fp8", "0.15.0", True, ("flashinfer_cutlass", ("fp8_block", "fp8"))),
        ("fp8", "0.18.0", True, ("flashinfer_cutlass", ("fp8_block", "fp8"))),
        ("fp8", "0.18.0", False, ("triton", ("fp8", "fp8_block"))),
        ("fp8", None, True, ("triton", ("fp8", "fp8_block"))),  # no version named: the long-standing default
        ("bf16", "0.18.0", True, ("triton", ("bfloat16",))),  # unquantized: Triton
    ],
)
def test_the_fused_moe_backend_follows_vllms_default_by_version_and_layout(weights, version, ep, want):
    from sim.perf.kernels.tables import preferred_moe_kernel

    assert preferred_moe_kernel(weights, version, ep) == want


@pytest.mark.parametrize(
    "version,ep,want",
    [
        # the fp8 MoE oracle (fused_moe/oracle/fp8.py _get_priority_backends) lists FLASHINFER_TRTLLM first and
        # reorders only on Hopper (capability 9.0); FlashInfer MoE is the default from 0.15 (PR #33490)
        ("0.19.0", False, ("flashinfer_trtllm", ("fp8_block", "fp8"))),
        ("0.15.0", True, ("flashinfer_trtllm", ("fp8_block", "fp8"))),
        ("0.14.1", False, ("triton", ("fp8", "fp8_block"))),  # before 0.15: FlashInfer only with an env flag
        (None, False, ("triton", ("fp8", "fp8_block"))),  # no version named: the long-standing default
    ],
)
def test_an_sm100_blackwell_pool_prefers_flashinfer_trtllm_for_fp8_from_vllm_0_15(version, ep, want):
    from sim.perf.kernels.tables import preferred_moe_kernel

    assert preferred_moe_kernel("fp8", version, ep, sm100=True) == want
    assert preferred_moe_kernel("bf16", version, ep, sm100=True) == ("triton", ("bfloat16",))


@needs_data
def test_minimax_fp8_on_b200_at_vllm_0_19_reads_the_flashinfer_trtllm_rows():
    """MiniMax-M2.5 fp8 TP2 on B200 under vLLM 0.19.0 (aiconfigurator's B200 silicon row): the 0.19.0
    collection names no backend (``vllm_fused_moe``), the 0.24.0 one has FlashInfer TRT-LLM's block-fp8
    rows for this shape (0.2830 ms per layer at 32 tokens, balanced, moe tp 2), which the pool reads x 62
    MoE layers; with no version named it keeps the 0.19.0 collection's per-tensor fp8 rows (0.3135 ms)."""
    from sim.perf.kernels.tables import _moe_measured

    m = CAT.model("minimax-m2.5")
    kern = "vllm_fp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic"
    trtllm = _moe_ms("fp8_block", kern, 32, 3072, 1536, 8, 256, 2, 1, system="b200_sxm", version="0.24.0")
    legacy = _moe_ms("fp8", "vllm_fused_moe", 32, 3072, 1536, 8, 256, 2, 1, system="b200_sxm", version="0.19.0")
    assert trtllm == pytest.approx(0.2830, abs=5e-5) and legacy == pytest.approx(0.3135, abs=5e-5)
    for version, want, name in (("0.19.0", trtllm, kern), (None, legacy, "vllm_fused_moe")):
        inp = TableInputs(system="b200_sxm", model=m, quant=CAT.quant("fp8"), tp=2, max_tokens=64,
                          vllm_version=version, gpu=CAT.gpu("b200"), e_compute=0.4, e_memory=0.725, e_comm=0.7,
                          t_allreduce_s=1e-5)
        got, kernel = _moe_measured(ROOT, inp, "0.19.0", np.array([32]), [])
        assert got[0] == pytest.approx(want * 1e-3 * 62, rel=1e-12) and name in kernel


@needs_data
def test_an_sm120_blackwell_pool_without_trtllm_rows_keeps_the_other_backends_rows():
    """RTX PRO 6000 (SM120: TRT-LLM's MoE kernels are not built for it) has no FlashInfer TRT-LLM rows in any
    collection; Qwen3-30B-A3B fp8 at vLLM 0.19.0 then reads the rows it read before (FlashInfer CUTLASS
    per-tensor fp8, the only fp8 kernel of its 0.24.0 collection at moe tp 1), 48 MoE layers."""
    from sim.perf.kernels.tables import _moe_measured

    m = CAT.model("qwen3-30b-a3b")
    kern = "vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts"
    want = _moe_ms("fp8", kern, 16, 2048, 768, 8, 128, 1, 1, system="rtx_pro_6000_server")
    inp = TableInputs(system="rtx_pro_6000_server", model=m, quant=CAT.quant("fp8"), tp=1, max_tokens=64,
                      vllm_version="0.19.0", gpu=CAT.gpu("rtx-pro-6000"), e_compute=0.4, e_memory=0.725, e_comm=0.7,
                      t_allreduce_s=1e-5)
    got, kernel = _moe_measured(ROOT, inp, "0.24.0", np.array([16]), [])
    assert got[0] == pytest.approx(want * 1e-3 * 48, rel=1e-12) and kern in kernel


@pytest.mark.parametrize(
    "layouts,mtp,mep,want",
    [
        ([(1, 1), (2, 1), (4, 1)], 1, 8, (4, 1)),  # EP 8 from the largest slicing measured (4 GPUs: ratio 2)
        ([(1, 1), (2, 1), (4, 1)], 1, 4, (4, 1)),  # EP 4: the same GPU count sliced
        ([(1, 1), (2, 1), (4, 1), (1, 4)], 4, 1, (4, 1)),  # an exact layout wins over the other kind
        ([(2, 1), (1, 2), (1, 4)], 1, 4, (1, 4)),
        ([(1, 2), (1, 4), (4, 1)], 2, 1, (1, 2)),  # TP 2: nearest count is 2 (EP), ratio 1 beats 4/1's ratio 2
        ([(1, 2), (1, 8)], 1, 4, (1, 8)),  # counts 2 and 8 are equally far from 4 (ratio 2): the larger
    ],
)
def test_the_nearest_measured_moe_layout(layouts, mtp, mep, want):
    from sim.perf.kernels.tables import nearest_moe_layout

    assert nearest_moe_layout(layouts, mtp, mep) == want


QWEN235 = (4096, 1536, 8, 128)  # hidden, expert width, top-k, experts (Qwen3-235B-A22B)


def _qwen235_inputs(tp: int, version: str | None) -> TableInputs:
    return TableInputs(
        system="h100_sxm",
        model=CAT.model("qwen3-235b-a22b"),
        quant=CAT.quant("fp8"),
        tp=tp,
        max_tokens=2048,
        vllm_version=version,
        gpu=CAT.gpu("h100-sxm"),
        e_compute=0.425,
        e_memory=0.8,
        e_comm=0.7,
        t_allreduce_s=1e-5,
        ep=True,
    )


@needs_data
def test_hopper_fp8_under_expert_parallelism_before_vllm_0_15_derives_triton_rows_from_the_nearest_layout():
    """Qwen3-235B-A22B-FP8 on 8x H100 with expert parallelism (ML.ENERGY, vLLM 0.11.1): vLLM runs the Triton
    fused_moe; the data has its (`fp8_block`) rows at moe tp 1/2/4 only, not at ep 8, so the step reads the tp 4
    rows scaled by 4/8 (per GPU both the FLOPs and the expert weights are the layer's total over the GPU count),
    not the FlashInfer CUTLASS `fp8` rows (measured at ep 8, 0.600 ms at 16 tokens). 1,024 tokens: the most
    loaded of 8 GPUs holds 1 + sqrt(2 ln 8 / (1024 x 8 / 8)) = 1.063730 x the mean, so the rows are read at
    1089.26 tokens, between the measured 1024 and 1536: lat(1024) + 65.26 / 512 x (lat(1536) - lat(1024));
    times 4/8, times 94 MoE layers."""
    from sim.perf.kernels.tables import _moe_measured

    notes: list = []
    got, kernel = _moe_measured(ROOT, _qwen235_inputs(8, "0.11.1"), "0.24.0", np.array([16, 1024]), notes)
    triton = "vllm_fp8moe_triton_tritonexperts"
    f = 1 + math.sqrt(2 * math.log(8) / 1024)
    assert f == pytest.approx(1.063730, abs=1e-6)
    a, b = (_moe_ms("fp8_block", triton, x, *QWEN235, 4, 1) for x in (1024, 1536))
    want = (a + (1024 * f - 1024) / 512 * (b - a)) * 0.5 * 94 * 1e-3
    assert got[1] == pytest.approx(want, rel=1e-12)
    assert (
        triton in kernel and "from moe tp/ep 4/1" in kernel and any("scaled by the GPU count 4/8" in n for n in notes)
    )
    cutlass = _moe_ms("fp8", "vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts", 16, *QWEN235, 1, 8)
    assert cutlass == pytest.approx(0.600, abs=5e-4)
    assert got[0] < 0.5 * cutlass * 94 * 1e-3  # the Triton-derived layer is well under the CUTLASS fp8 one


@needs_data
def test_hopper_fp8_under_expert_parallelism_from_vllm_0_15_reads_flashinfer_block_rows_at_the_layout():
    """The same pool named vLLM 0.18.0: FlashInfer CUTLASS for block fp8 under EP, whose `fp8_block` rows exist at
    ep 8: 16 tokens x top-8 over 8 GPUs, mean 16 per GPU -> 16 x (1 + sqrt(2 ln 8 / 16)) = 16 x 1.509833 = 24.16 tokens,
    between 16 and 32; x 94."""
    from sim.perf.kernels.tables import _moe_measured

    notes: list = []
    got, kernel = _moe_measured(ROOT, _qwen235_inputs(8, "0.18.0"), "0.24.0", np.array([16]), notes)
    fi = "vllm_fp8moe_flashinfer_cutlass_flashinferexperts"
    f = 1 + math.sqrt(2 * math.log(8) / 16)
    assert f == pytest.approx(1.509833, abs=1e-6)
    a, b = (_moe_ms("fp8_block", fi, x, *QWEN235, 1, 8) for x in (16, 32))
    assert got[0] == pytest.approx((a + (16 * f - 16) / 16 * (b - a)) * 94 * 1e-3, rel=1e-12)
    assert fi in kernel and "fp8_block" in kernel and not notes


@needs_data
def test_the_gpu_count_rule_holds_on_the_triton_rows_that_have_both_layouts():
    """The rule behind the derivation, checked on the bf16 Triton rows, measured both sliced (moe tp 4) and
    expert-parallel (moe ep 4) for Qwen3-235B-A22B's shape on H100: same GPU count, same FLOPs and expert bytes
    per GPU, so the latencies should agree: e.g. 0.444 vs 0.438 ms at 16 tokens, 0.530 vs 0.576 ms at 1,024. Over
    the 27 token counts the median |EP / TP - 1| is under 10%."""
    kern = "vllm_unquantizedfusedmoe_triton_tritonexperts"
    tokens = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024, 1536, 2048, 3072,
              4096, 6144, 8192, 12288, 16384]
    tp4 = [_moe_ms("bfloat16", kern, x, *QWEN235, 4, 1) for x in tokens]
    ep4 = [_moe_ms("bfloat16", kern, x, *QWEN235, 1, 4) for x in tokens]
    assert tp4[4] == pytest.approx(0.444, abs=5e-4) and ep4[4] == pytest.approx(0.438, abs=5e-4)
    assert float(np.median([abs(e / t - 1) for e, t in zip(ep4, tp4)])) < 0.10


@needs_data
def test_expert_parallel_decode_and_prefill_take_the_slower_of_uniform_and_skewed_routing():
    """MiniMax-M2.5 block-fp8 as TP8 with expert parallelism on H200, vLLM 0.16 (InferenceX's TEP8): vLLM's
    fused-MoE oracle runs FlashInfer CUTLASS for Hopper block fp8 under EP (``FLASHINFER_EP_FROM``); the
    nearest collection (0.19.0) has no such rows, so the 0.24.0 ``fp8_block`` FlashInfer CUTLASS rows at
    moe tp 1 / ep 8 are read (62 MoE layers; top-8 of 256 experts, 32 per GPU), with a note. Decode, 4
    tokens: uniform routing puts 1 + sqrt(2 ln 8 / 4) = 2.019667 x the mean on the busiest GPU, so the
    balanced rows are read at 8.079 tokens (between 8 and 16); the power_law_1.2 row at 4 tokens is lower
    (skewed routing touches fewer distinct experts), so the balanced reading sets the pace. Prefill, 8,192
    tokens: uniform routing gives 1 + sqrt(2 ln 8 / 8192) = 1.022532 (8,376.6 tokens, between 8,192 and
    16,384), but the power_law_1.2 row at 8,192 tokens (aiconfigurator's collector gives EP rank 0, the rank
    it times, the largest load) is slower, and is taken."""
    from sim.perf.kernels.tables import _moe_measured

    m = CAT.model("minimax-m2.5")
    inp = TableInputs(system="h200_sxm", model=m, quant=CAT.quant("fp8"), tp=8, max_tokens=8192,
                      vllm_version="0.16.0", gpu=CAT.gpu("h200"), e_compute=0.425, e_memory=0.8, e_comm=0.7,
                      t_allreduce_s=1e-5, ep=True)
    notes: list = []
    got, kernel = _moe_measured(ROOT, inp, "0.19.0", np.array([4, 8192]), notes)
    shape = (3072, 1536, 8, 256, 1, 8)
    fi = "vllm_fp8moe_flashinfer_cutlass_flashinferexperts"

    def ms(x: int, dist: str = "balanced") -> float:
        return _moe_ms("fp8_block", fi, x, *shape, dist=dist, system="h200_sxm", version="0.24.0")

    f4, f8k = 1 + math.sqrt(2 * math.log(8) / 4), 1 + math.sqrt(2 * math.log(8) / 8192)
    assert (f4, f8k) == (pytest.approx(2.019667, abs=1e-6), pytest.approx(1.022532, abs=1e-6))
    dec_uniform = ms(8) + (4 * f4 - 8) / 8 * (ms(16) - ms(8))
    assert ms(4, "power_law_1.2") < dec_uniform
    assert got[0] == pytest.approx(dec_uniform * 62 * 1e-3, rel=1e-12)
    pre_uniform = ms(8192) + (8192 * f8k - 8192) / 8192 * (ms(16384) - ms(8192))
    pre_skewed = ms(8192, "power_law_1.2")
    assert pre_skewed > pre_uniform
    assert got[1] == pytest.approx(pre_skewed * 62 * 1e-3, rel=1e-12)
    assert fi in kernel and "power_law_1.2" in kernel and "(vLLM 0.24.0)" in kernel
    assert any("0.19.0 collection has no flashinfer_cutlass rows" in n for n in notes)


@needs_data
@pytest.mark.parametrize("version,expert_parallel", [("0.14.0", True), ("0.16.0", False)])
def test_before_015_or_without_expert_parallelism_block_fp8_stays_on_the_nearest_collections_triton_rows(
    version, expert_parallel
):
    """vLLM 0.10-0.14 ran FlashInfer's fp8 MoE only on request, and 0.15+ prefers Triton for TP without EP
    on Hopper block fp8: the nearest collection's (0.19.0) Triton ``vllm_fused_moe`` rows, no other
    collection, no note (the moe tp 8 / ep 1 rows exist for fp8)."""
    from sim.perf.kernels.tables import _moe_measured

    inp = TableInputs(system="h200_sxm", model=CAT.model("minimax-m2.5"), quant=CAT.quant("fp8"), tp=8,
                      max_tokens=16, vllm_version=version, gpu=CAT.gpu("h200"), e_compute=0.425, e_memory=0.8,
                      e_comm=0.7, t_allreduce_s=1e-5, ep=expert_parallel)
    notes: list = []
    got, kernel = _moe_measured(ROOT, inp, "0.19.0", np.array([16]), notes)
    assert "vllm_fused_moe" in kernel and "(vLLM " not in kernel and not notes
