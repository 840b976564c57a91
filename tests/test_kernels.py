"""Step times from measured vLLM kernels (sim/perf/kernels): tables against the raw
parquet rows, the engine's contracts (affine decode, monotone, above the
roofline), provenance, fallbacks, versions and the disk cache.

Needs aiconfigurator-core (a dependency); tests that read its data skip without it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.catalog import load_architectures, load_catalog
from sim.errors import ScenarioError
from sim.perf.kernels import cache as kc
from sim.perf.kernels import data as kd
from sim.perf.kernels.tables import TableInputs, build_tables
from sim.perf.perf_model import roofline_floor_s
from sim.perf.step_source import kernel_warnings, perf_sources, pool_perf_model
from sim.scenario.spec import load_scenario, scenario_from_dict

CAT = load_catalog()
ROOT = kd.data_root()
needs_data = pytest.mark.skipif(ROOT is None, reason="aiconfigurator-core is not installed")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Every test builds into its own cache folder and an empty in-process memo."""
    monkeypatch.setenv("FLEETCAST_CACHE_DIR", str(tmp_path / "kcache"))
    monkeypatch.setattr(kc, "_memo", {})


def _scenario(pools: list[dict], **extra) -> object:
    fleet = [{"name": f"p{i}", "replicas": 1, "model": "llama-3.1-8b", **p} for i, p in enumerate(pools)]
    return scenario_from_dict({
        "name": "k", "seed": 1, "fleet": fleet, **extra,
        "traffic": {"duration_s": 20, "arrival": {"process": "poisson", "rate_rps": 2},
                    "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 500},
                                 "output_tokens": {"dist": "fixed", "value": 50}}]}})


def _perf(gpu="h100-sxm", model="llama-3.1-8b", weights="bf16", kv="auto", tp=1, dp=1, ep=False, **engine):
    sc = _scenario([{"gpu": gpu, "model": model, "tensor_parallel": tp, "data_parallel": dp, "expert_parallel": ep,
                     "quantization": {"weights": weights, "kv_cache": kv}, "engine": engine}])
    pool = sc.fleet[0]
    return pool_perf_model(pool, sc.base_dir, CAT.gpu(gpu), CAT.model(model), CAT.quant(weights, kv))


def _gemm_ms(system: str, dtype: str, m: int, n: int, k: int) -> float:
    """One latency straight from the parquet file (independent of sim/perf/kernels)."""
    path = ROOT / system / "gemm" / "vllm" / "0.24.0" / "gemm_perf.parquet"
    df = pq.read_table(path).to_pandas()
    row = df[(df.gemm_dtype == dtype) & (df.m == m) & (df.n == n) & (df.k == k)]
    assert len(row) == 1, (dtype, m, n, k)
    return float(row.latency.iloc[0])


@needs_data
@pytest.mark.parametrize("weights,dtype", [("bf16", "bfloat16"), ("fp8", "fp8")])
def test_layer_gemms_equal_the_hand_summed_parquet_rows(weights, dtype):
    # Llama-3.1-8B at tp=4: every layer GEMM shape is a grid point of the table.
    # qkv: n=(8+2*2)*128=1536, k=4096; o: n=4096, k=8*128=1024;
    # gate_up: n=2*14336/4=7168, k=4096; down: n=4096, k=14336/4=3584.
    perf = _perf(weights=weights, tp=4)
    T = 4096
    hand_ms = sum(_gemm_ms("h100_sxm", dtype, T, n, k) for n, k in ((1536, 4096), (4096, 1024),
                                                                        (7168, 4096), (4096, 3584)))
    assert perf.kernels.gemm_s[T] == pytest.approx(32 * hand_ms * 1e-3, rel=1e-12)
    # the full linear part adds all-reduces and elementwise traffic, never less than the GEMMs
    assert perf.kernels.lin_s[T] > perf.kernels.gemm_s[T]


@needs_data
def test_fp8_weights_take_the_fp8_kernels_not_bf16s():
    bf16, fp8 = _perf(weights="bf16", tp=4), _perf(weights="fp8", tp=4)
    T = 2048
    fp8_hand = sum(_gemm_ms("h100_sxm", "fp8", T, n, k) for n, k in ((1536, 4096), (4096, 1024),
                                                                      (7168, 4096), (4096, 3584)))
    assert fp8.kernels.gemm_s[T] == pytest.approx(32 * fp8_hand * 1e-3, rel=1e-12)
    assert fp8.kernels.gemm_s[T] != pytest.approx(bf16.kernels.gemm_s[T], rel=0.02)
    assert "GEMM fp8 (CutlassFP8ScaledMMLinearKernel)" in fp8.source
    fp8kv = _perf(weights="fp8", kv="fp8")
    assert "KV fp8" in fp8kv.source and fp8kv.kernels.decode_s[2] < _perf().kernels.decode_s[2]


@needs_data
@pytest.mark.parametrize("gpu,model,tp", [("h100-sxm", "llama-3.1-8b", 1), ("h200", "llama-3.1-70b", 4),
                                          ("a100-80gb", "qwen2.5-7b", 2), ("l40s", "mistral-7b", 1)])
def test_decode_steps_are_exactly_affine_in_the_context(gpu, model, tp):
    perf = _perf(gpu, model, tp=tp)
    gamma = perf.kernels.decode_s[2]
    for B in (1, 7, 256):
        a, b = perf.decode_affine(B)
        assert b == gamma
        t0, t1 = perf.step_time_s(0, 0.0, B, 1000), perf.step_time_s(0, 0.0, B, 901_000)
        assert t1 - t0 == pytest.approx(gamma * 900_000, rel=1e-9)
        assert a + b * 901_000 == pytest.approx(t1, rel=1e-12)


_KERNEL_MODELS = {}


def _kernel_model(i: int):
    configs = [("h100-sxm", "llama-3.1-8b", "bf16", "auto", 1), ("h100-sxm", "llama-3.1-8b", "fp8", "fp8", 2),
               ("l40s", "qwen2.5-7b", "int4-awq", "fp8", 2), ("b200", "mixtral-8x7b", "bf16", "auto", 2),
               ("a100-80gb", "llama-3.1-70b", "bf16", "auto", 8), ("h100-sxm", "qwen3-30b-a3b", "bf16", "auto", 1, 2, True),
               ("h200", "deepseek-v3", "fp8", "auto", 8)]
    if i not in _KERNEL_MODELS:
        g, m, w, kv, tp, *layout = configs[i]
        _KERNEL_MODELS[i] = _perf(g, m, w, kv, tp, *layout, max_num_batched_tokens=2048)
    return _KERNEL_MODELS[i]


@st.composite
def _steps(draw):
    chunks = draw(st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 100_000)), max_size=4))
    ctx = draw(st.lists(st.integers(1, 100_000), max_size=300))
    return (sum(q for q, _ in chunks), sum(q * (k + q / 2) for q, k in chunks), len(ctx), sum(ctx), len(chunks))


@needs_data
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 6), _steps(), st.integers(0, 4), st.integers(1, 5000))
def test_kernel_step_times_keep_the_engines_contracts(i, step, which, delta):
    """Above the physical floor, monotone in every argument (also past the table's end)."""
    pm = _kernel_model(i)
    assert pm.step_time_s(*step) >= roofline_floor_s(pm, *step)
    more = list(step)
    more[which] += delta
    assert pm.step_time_s(*more) >= pm.step_time_s(*step)


@needs_data
def test_provenance_says_where_each_pools_step_times_come_from():
    sc = _scenario([{"gpu": "h100-sxm"}, {"gpu": "rtx-4090"}, {"gpu": "h100-sxm", "quantization": {"weights": "int4-awq"}},
                    {"gpu": "mi300x"}, {"gpu": "h100-sxm", "profile": str(Path(__file__).resolve().parents[1] / "calibration" / "profiles" / "h100-splitwise.json")}])
    src = perf_sources(sc)
    assert src["p0"].startswith("measured vLLM 0.24.0 kernels on h100_sxm (aiconfigurator-core 0.12.0, Apache-2.0): "
                                "GEMM bfloat16")
    assert "CPU overheads and roofline parts: hopper efficiencies" in src["p0"]
    assert src["p1"].startswith("roofline: achievable rates of rtx-4090 (e_compute 0.927 = 0.927 x achievable 165.2")
    assert "linear layers: roofline (no int4-awq GEMM kernel" in src["p2"] and "attention vllm_flash_attn_fa3" in src["p2"]
    assert src["p3"].startswith("roofline: achievable rates of mi300x (e_compute 0.474 = 0.927 x achievable 668.4")
    assert src["p4"].startswith("profile h100-splitwise")  # a profile still overrides: fitted roofline


@needs_data
def test_a_gpu_without_kernel_data_warns_once_naming_its_sibling_or_its_own_rates(tmp_path):
    # my-cdna3: a user GPU of an architecture without a sibling and without achievable rates
    f = tmp_path / "cat.yaml"
    f.write_text("gpus:\n  my-cdna3:\n    peak_flops: {bf16: 1.0e+15}\n    hbm_bytes: 192.0e+9\n"
                 "    hbm_bw_bytes_s: 5.0e+12\n    interconnect_bw_bytes_s: 64.0e+9\n    power_w: 750\n"
                 "    price_usd_per_hour: 2.0\n    architecture: cdna3\n")
    sc = _scenario([{"gpu": "l4"}, {"gpu": "l4", "tensor_parallel": 2}, {"gpu": "h100-sxm"}, {"gpu": "rtx-4090"},
                    {"gpu": "mi300x"}, {"gpu": "my-cdna3"}], catalog=[str(f)])
    lines = kernel_warnings(sc)
    own = ": its roofline runs at its own achievable rates (catalog achievable_flops / achievable_bw_bytes_s, " \
          "sim/perf/achievable.py)"
    assert lines == ["no measured kernels for GPU 'l4': its roofline borrows the ada efficiencies fitted to l40s",
                     f"no measured kernels for GPU 'rtx-4090'{own}", f"no measured kernels for GPU 'mi300x'{own}",
                     "no measured kernels for GPU 'my-cdna3' and no sibling of its architecture (cdna3) in the kernel "
                     "data: fleetcast's default efficiencies apply"]
    ada = load_architectures()["ada"]
    perf = _perf("l4")
    assert perf.kernels is None and perf.coeffs.e_compute == ada.e_compute["bf16"]


def test_user_gpu_naming_an_architecture_inherits_its_efficiencies(tmp_path):
    f = tmp_path / "cat.yaml"
    f.write_text("gpus:\n  my-ada:\n    peak_flops: {bf16: 200.0e+12, fp8: 400.0e+12}\n    hbm_bytes: 32.0e+9\n"
                 "    hbm_bw_bytes_s: 1.0e+12\n    interconnect_bw_bytes_s: 32.0e+9\n    power_w: 300\n"
                 "    price_usd_per_hour: 1.0\n    architecture: ada\n")
    gpu = load_catalog([f]).gpu("my-ada")
    sc = _scenario([{"gpu": "h100-sxm"}])
    perf = pool_perf_model(sc.fleet[0], sc.base_dir, gpu, CAT.model("llama-3.1-8b"), CAT.quant("fp8"))
    ada = load_architectures()["ada"]
    assert perf.kernels is None and (perf.coeffs.e_compute, perf.coeffs.e_memory) == (ada.e_compute["fp8"], ada.e_memory)


def test_without_aiconfigurator_the_roofline_runs_with_a_note(monkeypatch):
    from sim.engine.fleet import simulate

    monkeypatch.setattr(kd, "data_root", lambda: None)
    sc = _scenario([{"gpu": "h100-sxm"}, {"gpu": "l40s"}])
    lines = kernel_warnings(sc)
    assert len(lines) == 1 and lines[0].startswith("note: aiconfigurator-core is not installed")
    src = perf_sources(sc)
    assert src["p0"].startswith("roofline: hopper efficiencies") and src["p1"].startswith("roofline: ada efficiencies")
    res = simulate(sc)
    assert (res.requests.status == "ok").mean() > 0.9


def test_nearest_version():
    av = ["0.14.0", "0.19.0", "0.24.0"]
    assert kd.nearest_version(av, None) == "0.24.0"
    assert kd.nearest_version(av, "0.20.0") == "0.19.0"
    assert kd.nearest_version(av, "0.22.0") == "0.24.0"
    assert kd.nearest_version(av, "0.24.1") == "0.24.0"
    assert kd.nearest_version(av, "1.0.0") == "0.24.0"
    assert kd.nearest_version(av, "0.19.0.post1") == "0.19.0"
    assert kd.nearest_version([], "0.1") is None
    assert kd.nearest_version(av, "0.24.0rc1") == "0.24.0"  # a release candidate's data is its release's
    assert kd.nearest_version(av, "0.24.0.dev3") == "0.24.0"  # so is a dev build's (the nearest)
    assert kd.parse_version("0.24.0rc1") == (0, 24, 0) and kd.parse_version("latest") is None
    assert (0, 23, 9) < kd.parse_version("0.24.0.dev3") < (0, 24, 0)


@needs_data
def test_a_version_without_data_uses_the_nearest_with_a_warning():
    sc = _scenario([{"gpu": "h100-sxm", "engine": {"vllm_version": "0.20.0"}},
                    {"gpu": "h100-sxm", "engine": {"vllm_version": "0.24.0"}},
                    {"gpu": "a100-80gb"}])
    assert kernel_warnings(sc) == ["pool 'p0': no vLLM 0.20.0 kernel data for h100_sxm; using 0.24.0"]
    older = _perf("b200", vllm_version="0.22.0")
    assert older.source.startswith("measured vLLM 0.24.0 kernels on b200_sxm")  # GEMM: only 0.24.0
    assert older.kernels.meta["versions"]["generation_attention_perf"] == "0.22.0"
    assert older.kernels.decode_s.tolist() != _perf("b200").kernels.decode_s.tolist()


def test_a_malformed_vllm_version_is_a_located_error(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: x\nfleet:\n  - name: a\n    gpu: h100-sxm\n    replicas: 1\n    model: llama-3.1-8b\n"
                 "    engine:\n      vllm_version: latest\ntraffic:\n  duration_s: 10\n"
                 "  arrival: {process: poisson, rate_rps: 1}\n  classes:\n    - name: c\n"
                 "      prompt_tokens: {dist: fixed, value: 10}\n      output_tokens: {dist: fixed, value: 10}\n")
    with pytest.raises(ScenarioError) as exc:
        load_scenario(f)
    msg = str(exc.value)
    assert "s.yaml" in msg and "line 8" in msg and "fleet.0.engine.vllm_version" in msg and "MAJOR.MINOR" in msg


@needs_data
def test_the_cache_is_read_back_identical_and_a_corrupt_entry_is_rebuilt(tmp_path):
    inp = TableInputs("h100_sxm", CAT.model("llama-3.1-70b"), CAT.quant("bf16"), 4, 8192, None, CAT.gpu("h100-sxm"),
                      0.78, 0.8, 0.7, 10e-6)
    t0 = time.perf_counter()
    built = kc.cached_tables(ROOT, inp)
    t_build = time.perf_counter() - t0
    (path,) = list(kc.cache_dir().glob("h100_sxm-*.npz"))
    blob = path.read_bytes()
    kc._memo.clear()
    t0 = time.perf_counter()
    again = kc.cached_tables(ROOT, inp)
    t_read = time.perf_counter() - t0
    assert t_read < t_build / 3
    for name in kc.ARRAYS:
        assert np.array_equal(getattr(again, name), getattr(built, name))
    assert again.meta == built.meta
    # deterministic bytes: a build from scratch writes the same file
    assert kc._encode(build_tables(ROOT, inp), kc.cache_key(ROOT, inp)) == blob
    for garbage in (b"not a zip", blob[: len(blob) // 2]):
        path.write_bytes(garbage)
        kc._memo.clear()
        rebuilt = kc.cached_tables(ROOT, inp)
        assert np.array_equal(rebuilt.lin_s, built.lin_s) and path.read_bytes() == blob


@needs_data
def test_single_request_decode_is_plausible_against_a_published_measurement():
    """Published: Llama-3.1-8B-Instruct BF16 on one A100 (40GB), vLLM 0.23.0, one request at a
    time, 1024-token prompts: decode at about 75 tokens/s, "roughly 77% of the GPU's
    memory-bandwidth ceiling" (J. Musgrave, "vLLM throughput-latency sweep on NVIDIA A100",
    johnmusgrave.com/p/vllm-throughput-latency-sweep-on). The same model on the A100 80GB and
    the H100 should read its weights at a similar fraction of each GPU's bandwidth."""
    for gpu in ("a100-80gb", "h100-sxm"):
        perf = _perf(gpu)
        itl_s = perf.step_time_s(0, 0.0, 1, 1100)
        weight_bytes = 2 * (CAT.model("llama-3.1-8b").params_total - 128256 * 4096)  # all but the input embedding
        mbu = weight_bytes / CAT.gpu(gpu).hbm_bw_bytes_s / itl_s
        assert 0.55 < mbu < 0.9, (gpu, itl_s, mbu)  # here: a100-80gb 0.60, h100-sxm 0.65
    assert math.isclose(_perf("a100-80gb").step_time_s(0, 0.0, 1, 1100), 1 / 75, rel_tol=0.25)  # 40GB: slower HBM


@needs_data
@pytest.mark.slow
def test_shipped_architecture_efficiencies_are_what_the_committed_script_fits():
    from calibration.kernel_efficiencies import main

    assert main(["--check"]) == 0


@needs_data
def test_past_the_table_the_linear_time_keeps_growing():
    """Llama-3.1-8B fp8 TP2 on H100 with a 2,048-token table: the measured GEMMs plateau between 2,000 and
    2,048 tokens (a round size runs faster), which must not flatten the extrapolation; a prefill of 8,922
    tokens was timed below the FLOP floor when it did."""
    pm = _kernel_model(1)
    t2048, t4096 = pm.step_time_s(2048, 0.0, 0, 0, 1), pm.step_time_s(4096, 0.0, 0, 0, 1)
    t1024 = pm.step_time_s(1024, 0.0, 0, 0, 1)
    assert t4096 - t2048 >= 0.9 * 2 * (t2048 - t1024)  # at least the upper half's rate, 2048 more tokens
    step = (8922, 14219098.0, 0, 0, 3)
    assert pm.step_time_s(*step) >= roofline_floor_s(pm, *step)


def _moe_ms(system: str, dtype: str, tokens: int, h: int, inter: int, k: int, e: int, mtp: int, mep: int) -> float:
    """One fused-MoE latency straight from the parquet file (independent of sim/perf/kernels)."""
    df = pq.read_table(ROOT / system / "moe" / "vllm" / "0.24.0" / "moe_perf.parquet").to_pandas()
    rows = df[(df.moe_dtype == dtype) & (df.num_tokens == tokens) & (df.hidden_size == h) & (df.inter_size == inter)
              & (df.topk == k) & (df.num_experts == e) & (df.moe_tp_size == mtp) & (df.moe_ep_size == mep)
              & (df.distribution == "balanced")]
    assert len(rows) == 1
    return float(rows.latency.iloc[0])


@needs_data
@pytest.mark.parametrize("dp,ep,mtp,mep", [(1, False, 1, 1), (2, False, 2, 1)])
def test_moe_experts_come_from_the_fused_moe_table_at_all_ranks_tokens(dp, ep, mtp, mep):
    """Qwen3-30B-A3B on H100: the routed experts of a step of 256 tokens per rank cost the measured fused-MoE
    latency at dp x 256 tokens with this layout's MoE TP / EP sizes, times its 48 MoE layers. (With expert
    parallelism the most loaded GPU's tokens are read instead: tests/test_moe_parallel.py.)"""
    from sim.perf.kernels.tables import _moe_measured
    m, g = CAT.model("qwen3-30b-a3b"), CAT.gpu("h100-sxm")
    inp = TableInputs(system="h100_sxm", model=m, quant=CAT.quant("bf16"), tp=1, max_tokens=512, vllm_version=None,
                      gpu=g, e_compute=0.78, e_memory=0.8, e_comm=0.7, t_allreduce_s=1e-5, dp=dp, ep=ep)
    notes = []
    got, kernel = _moe_measured(ROOT, inp, "0.24.0", np.array([256]), notes)
    want = _moe_ms("h100_sxm", "bfloat16", 256 * dp, 2048, 768, 8, 128, mtp, mep) * 1e-3 * 48
    assert got[0] == pytest.approx(want, rel=1e-12) and "fused MoE bfloat16" in kernel and not notes
    tables = build_tables(ROOT, inp)
    assert "fused MoE bfloat16" in tables.source
    assert ("data-parallel MoE exchange" in tables.source) == (dp > 1)


@needs_data
def test_an_moe_shape_without_rows_falls_back_to_the_roofline_and_says_so():
    """DeepSeek-V2-Lite's experts (hidden 2048, width 1408, top-6 of 64) were not measured; its MLA attention
    is on the roofline too."""
    pm = _perf("h100-sxm", "deepseek-v2-lite")
    assert "MoE experts: roofline" in pm.source and "MLA attention: roofline" in pm.source
    assert pm.step_time_s(0, 0, 8, 8000) >= roofline_floor_s(pm, 0, 0, 8, 8000)


@needs_data
def test_a_qk_norm_over_all_heads_adds_one_variance_all_reduce_per_layer():
    """MiniMax-M2.5 (qk_norm_all_reduce) at TP8 on H200: vLLM's MiniMaxText01RMSNormTP.forward_qk all-reduces
    the [tokens, 2] fp32 q/k variances once per layer. A 32-token step's message is 32 x 8 = 256 bytes, the
    size of 128 bf16 elements: one measured CUDA-graph row of vLLM 0.18.0's 8-GPU table, read here straight
    from the parquet file. The catalog model differs from its copy without the flag by exactly 62 such
    all-reduces; the roofline (no kernel data) by 62 x t_allreduce_s."""
    import dataclasses

    m = CAT.model("minimax-m2.5")
    assert m.qk_norm_all_reduce and not CAT.model("qwen3-30b-a3b").qk_norm_all_reduce  # Qwen3: per-head norm
    plain = dataclasses.replace(m, qk_norm_all_reduce=False)
    df = pq.read_table(ROOT / "h200_sxm" / "comm" / "vllm" / "0.18.0" / "custom_allreduce_perf.parquet").to_pandas()
    row = df[(df.num_gpus == 8) & (df.allreduce_dtype == "bfloat16") & (df.backend == "vllm_graph")
             & (df.message_size == 128)]
    assert len(row) == 1
    want_s = 62 * float(row.latency.iloc[0]) * 1e-3

    def comm(model):
        inp = TableInputs(system="h200_sxm", model=model, quant=CAT.quant("fp8"), tp=8, max_tokens=64,
                          vllm_version="0.16.0", gpu=CAT.gpu("h200"), e_compute=0.425, e_memory=0.8, e_comm=0.7,
                          t_allreduce_s=1e-5, ep=True)
        return build_tables(ROOT, inp).comm_s

    assert comm(m)[32] - comm(plain)[32] == pytest.approx(want_s, rel=1e-9)
    from sim.perf.perf_model import PerfCoefficients, PerfModel

    c = PerfCoefficients(t_allreduce_s=7e-6)
    g, q = CAT.gpu("h200"), CAT.quant("fp8")
    diff = PerfModel(g, m, q, 8, c).step_time_s(0, 0, 4, 4000) - PerfModel(g, plain, q, 8, c).step_time_s(0, 0, 4, 4000)
    assert diff == pytest.approx(62 * 7e-6, rel=1e-9)
