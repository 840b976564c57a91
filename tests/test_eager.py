"""vLLM V0's eager prefill steps (sim/perf/eager.py): launches per step, the per-launch figure from the
kernel data's own eager and graph all-reduce rows, and which pools pay it. Expectations by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sim.catalog import load_catalog
from sim.perf import pool_model
from sim.perf.eager import EAGER_LAUNCH_S, eager_kernels, eager_step_s, graph_max_tokens
from sim.perf.kernels import data as kd
from sim.perf.perf_model import PerfModel
from tests.factories import make_scenario


def _llama8b():
    return load_catalog().model("llama-3.1-8b")


def test_kernels_per_eager_step_by_hand():
    # Llama-3.1-8B: 32 layers x 10 launches + embedding, final norm, LM head = 323 at TP1;
    # under TP two all-reduces more per layer: 32 x 12 + 3 = 387
    m = _llama8b()
    assert m.num_layers == 32
    assert eager_kernels(m, 1) == 323
    assert eager_kernels(m, 2) == 387
    assert eager_kernels(m, 4) == 387


def test_eager_step_seconds_by_hand():
    # V0: 323 launches x 6.8 us = 2.1964 ms per step with a prefill; V1 (piecewise graphs): nothing
    m = _llama8b()
    assert EAGER_LAUNCH_S == pytest.approx(6.8e-6)
    assert eager_step_s(m, 1, v0=True) == pytest.approx(2.1964e-3, rel=1e-12)
    assert eager_step_s(m, 2, v0=True) == pytest.approx(387 * 6.8e-6, rel=1e-12)
    assert eager_step_s(m, 1, v0=False) == 0.0


def test_launch_figure_from_the_kernel_datas_eager_and_graph_rows():
    # h100_sxm, vLLM 0.24.0 collection, TP2 bf16 custom all-reduce up to 1 MiB: the eager loop is host-bound
    # (flat within 10 % over 128 B - 1 MiB while the graph rows triple), and one eager call issues three
    # device operations (clone, staging copy, all-reduce kernel): its median / 3 is the per-launch figure
    root = kd.data_root()
    if root is None or not (root / "h100_sxm").is_dir():
        pytest.skip("aiconfigurator-core's kernel data is not installed")
    t = kd.read_table(
        root,
        "h100_sxm",
        "custom_allreduce_perf",
        "0.24.0",
        ["allreduce_dtype", "num_gpus", "message_size", "latency", "backend"],
    )
    rows = (t["num_gpus"] == 2) & (t["allreduce_dtype"] == "bfloat16") & (t["message_size"] <= 2**20)
    eager = t["latency"][rows & (t["backend"] == "vllm_eager")] * 1e-3
    graph = t["latency"][rows & (t["backend"] == "vllm_graph")] * 1e-3
    assert len(eager) == len(graph) == 14
    assert eager.max() / eager.min() < 1.1  # host-bound: does not grow with the message
    assert graph.max() / graph.min() > 2.5  # the kernel itself does
    assert float(np.median(eager)) / 3 == pytest.approx(EAGER_LAUNCH_S, abs=0.1e-6)


def test_perf_model_charges_prefill_steps_only():
    # the same model with and without 2 ms of eager launches: a prefill (or mixed) step is 2 ms longer,
    # a decode-only step (V0 replays a CUDA graph) is not, nor is its affine form (fast-forward)
    cat = load_catalog()
    gpu, m, q = cat.gpu("h100-sxm"), cat.model("llama-3.1-8b"), cat.quant("bf16", "auto")
    base, eager = PerfModel(gpu, m, q), PerfModel(gpu, m, q, eager_prefill_s=2e-3)
    assert eager.step_time_s(200, 200 * 100.0, 0, 0, 1) - base.step_time_s(200, 200 * 100.0, 0, 0, 1) == (
        pytest.approx(2e-3, rel=1e-9)
    )
    assert eager.step_time_s(200, 20000.0, 3, 900, 1) - base.step_time_s(200, 20000.0, 3, 900, 1) == (
        pytest.approx(2e-3, rel=1e-9)
    )
    assert eager.step_time_s(0, 0.0, 8, 4000) == base.step_time_s(0, 0.0, 8, 4000)
    assert eager.decode_affine(8) == base.decode_affine(8)


@pytest.mark.parametrize(
    ("engine", "want_s"),
    [
        ({"vllm_version": "0.6.1"}, 323 * 6.8e-6),  # V0 by version
        ({"vllm_version": "0.9.0", "engine_core": "v0"}, 323 * 6.8e-6),  # VLLM_USE_V1=0 on 0.9.0
        ({"vllm_version": "0.9.0"}, 0.0),  # V1 by default from 0.8
        ({"vllm_version": "0.11.0"}, 0.0),
        ({}, 0.0),  # the newest vLLM
    ],
)
def test_which_pools_pay_it(engine, want_s):
    sc = make_scenario(pool={"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": engine})
    pm = pool_model.build_pool_models(sc)[0]
    if pm.perf.kernels is None:
        pytest.skip("aiconfigurator-core's kernel data is not installed: roofline pools pay nothing")
    assert pm.perf._eager_s == pytest.approx(want_s, rel=1e-12)
    assert ("run eagerly" in pm.perf.source) == (want_s > 0)


@pytest.mark.parametrize(
    ("version", "max_num_seqs", "v0", "want"),
    [
        ((0, 11, 0), 128, False, 256),  # 0.11.0 SchedulerConfig: cuda_graph_sizes [min(2 x 128, 512)]
        ((0, 11, 0), 192, False, 384),
        ((0, 11, 1), 300, False, 512),  # min(600, 512)
        ((0, 10, 0), 64, False, 128),  # the rule's first release
        ((0, 9, 2), 128, False, 512),  # 0.9: cuda_graph_sizes default [512], whatever max_num_seqs
        ((0, 8, 0), 16, False, 512),  # 0.8: [1, 2, 4] + range(8, 513, 8)
        ((0, 9, 0), 128, True, 0),  # V0 (VLLM_USE_V1=0): its own eager rule instead
        ((0, 12, 0), 128, False, 0),  # a release whose source was not read: no limit
        (None, 128, False, 0),  # no release named: no limit
    ],
)
def test_v1_largest_cuda_graph_by_release(version, max_num_seqs, v0, want):
    assert graph_max_tokens(version, max_num_seqs, v0) == want


def test_perf_model_charges_steps_past_the_largest_graph_only():
    # 1 ms more for a step of 257 scheduled tokens or more against a 256-token graph, whether prefill
    # (200 + 57 decodes), mixed or decode-only (300 decodes); 256 tokens or fewer: nothing
    cat = load_catalog()
    gpu, m, q = cat.gpu("h100-sxm"), cat.model("llama-3.1-8b"), cat.quant("bf16", "auto")
    base, capped = PerfModel(gpu, m, q), PerfModel(gpu, m, q, graph_max_tokens=256, eager_over_s=1e-3)
    for args in ((200, 20000.0, 57, 900, 1), (0, 0.0, 300, 60000)):
        assert capped.step_time_s(*args) - base.step_time_s(*args) == pytest.approx(1e-3, rel=1e-9)
    for args in ((200, 20000.0, 56, 900, 1), (0, 0.0, 256, 60000), (0, 0.0, 8, 4000)):
        assert capped.step_time_s(*args) == base.step_time_s(*args)
    assert capped.decode_affine(300)[0] - base.decode_affine(300)[0] == pytest.approx(1e-3, rel=1e-9)


@pytest.mark.parametrize(
    ("engine", "want_tokens"),
    [
        ({"vllm_version": "0.11.0", "max_num_seqs": 128}, 256),
        ({"vllm_version": "0.9.0", "max_num_seqs": 128}, 512),
        ({"vllm_version": "0.9.0", "engine_core": "v0"}, 0),
        ({}, 0),
    ],
)
def test_which_pools_have_a_largest_graph(engine, want_tokens):
    sc = make_scenario(pool={"model": "llama-3.1-8b", "gpu": "h100-sxm", "engine": engine})
    pm = pool_model.build_pool_models(sc)[0]
    if pm.perf.kernels is None:
        pytest.skip("aiconfigurator-core's kernel data is not installed: roofline pools pay nothing")
    assert pm.perf._graph_max_tokens == want_tokens
    assert pm.perf._eager_over_s == pytest.approx(323 * 6.8e-6, rel=1e-12)  # Llama-3.1-8B at TP1, by hand above
    assert ("outside a CUDA graph" in pm.perf.source) == (want_tokens > 0)
