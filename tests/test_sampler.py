"""The sampler's share of a step (sim/perf/sampler.py): expectations worked by hand from the cited
figures."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.catalog import load_catalog
from sim.perf import sampler
from sim.perf.perf_model import PerfCoefficients, PerfModel
from sim.perf.pool_model import build_pool_models
from sim.perf.sampler import sampler_costs, sort_path
from sim.scenario.spec import dump_scenario
from tests.factories import make_scenario

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog()
H100, B200, PRO6000 = CAT.gpu("h100-sxm"), CAT.gpu("b200"), CAT.gpu("rtx-pro-6000")
LLAMA = CAT.model("llama-3.1-8b")  # vocabulary 128,256
V0111 = (0, 11, 1)


def test_sort_row_cost_by_hand():
    # PR #32558: 3.812 ms for 256 rows x 131,072 entries; one row of Llama's 128,256 entries on the
    # benchmark's H100: 3.812 ms x 128,256 / 33,554,432 = 14.571 µs
    row, ctx = sampler_costs(H100, LLAMA, V0111, None, "top_p", 0.75)
    assert row == pytest.approx(14.571e-6, rel=1e-4)
    assert ctx == 0.0
    # a B200 by its SMs x clock (FP32 rate 80.0 against the H100's 67.0 TFLOPS), not its bandwidth:
    # 14.571 x 67 / 80 = 12.203 µs (the bandwidth rule would give 14.571 x 3.35 / 8.0 = 6.10 µs)
    row_b, _ = sampler_costs(B200, LLAMA, V0111, None, "top_p", 0.75)
    assert row_b == pytest.approx(12.203e-6, rel=1e-4)
    # the RTX PRO 6000's entry gives no FP32 rate: the bandwidth rule, 14.571 x 3.35 / 1.792 = 27.239 µs
    row_p, _ = sampler_costs(PRO6000, LLAMA, V0111, None, "top_p", 0.75)
    assert row_p == pytest.approx(27.239e-6, rel=1e-4)


def test_penalties_add_counted_bytes_the_fitted_row_cost_and_cpu_per_context_token():
    # + 128,256 x 85 bytes at 0.75 x 3.35 TB/s = 10,901,760 / 2.5125e12 = 4.3390 µs, + the fitted
    # T_ROW_PENALTIES_S per row (on the critical path); CPU 25 ns per context token
    row, ctx = sampler_costs(H100, LLAMA, V0111, None, "top_p_penalties", 0.75)
    assert row == pytest.approx(14.571e-6 + 4.3390e-6 + sampler.T_ROW_PENALTIES_S, rel=1e-4)
    assert ctx == pytest.approx(25e-9)
    # the fitted part does not scale with the GPU: the same on a B200 (12.203 + 85 x 128,256 / (0.75 x 8.0e12))
    row_b, _ = sampler_costs(B200, LLAMA, V0111, None, "top_p_penalties", 0.75)
    assert row_b == pytest.approx(12.203e-6 + 1.8170e-6 + sampler.T_ROW_PENALTIES_S, rel=1e-4)


@pytest.mark.parametrize(
    ("version", "flashinfer", "sorts"),
    [
        ((0, 11, 1), None, True),  # FlashInfer opt-in from 0.11.1 (PR #26859): the PyTorch sort
        ((0, 11, 0), True, False),  # the image's FlashInfer kernel, no sort
        ((0, 17, 1), None, True),  # before the Triton kernel (0.18)
        ((0, 18, 0), None, False),  # Triton top-k/top-p
        (None, None, False),  # newest vLLM: Triton
        ((0, 6, 1), None, True),  # V0 sorts too
    ],
)
def test_which_vllm_sorts(version, flashinfer, sorts):
    assert sort_path(version, flashinfer) is sorts
    row, _ = sampler_costs(H100, LLAMA, version, flashinfer, "top_p", 0.75)
    assert (row > 0.0) is sorts


@pytest.mark.parametrize("sampling", [None, "greedy"])
def test_greedy_or_unset_adds_nothing(sampling):
    assert sampler_costs(H100, LLAMA, V0111, None, sampling, 0.75) == (0.0, 0.0)


def test_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match="top_p_penalties"):
        sampler_costs(H100, LLAMA, V0111, None, "nucleus", 0.75)


def _perf(overlap: bool, row_s: float = 0.0, ctx_s: float = 0.0) -> PerfModel:
    coeffs = PerfCoefficients(t_step_s=1e-3, t_seq_s=10e-6, t_prefill_tok_s=0.0)
    return PerfModel(
        H100, LLAMA, CAT.quant("bf16", "auto"), 1, coeffs, cpu_overlap=overlap, sampler_row_s=row_s, penalty_ctx_s=ctx_s
    )


@pytest.mark.parametrize("overlap", [False, True])
def test_every_scheduled_request_is_sampled(overlap):
    # 40 decodes and 2 prefill chunks (300 tokens): 42 rows sampled, 20 µs each = 0.84 ms more
    base, more = _perf(overlap), _perf(overlap, row_s=20e-6)
    args = (300, 300 * 150.0, 40, 40 * 500)
    assert more.step_time_s(*args, num_prefill_seqs=2) - base.step_time_s(*args, num_prefill_seqs=2) == pytest.approx(
        42 * 20e-6, rel=1e-9
    )


def test_penalty_cpu_per_context_token_serial_and_async():
    b = _perf(False).decode_affine(8)[1]  # decode attention per context token (the roofline's)
    # serial: the CPU's 1 µs per token adds to attention's; async: the larger of the two
    assert _perf(False, ctx_s=1e-6).decode_affine(8)[1] == pytest.approx(b + 1e-6, rel=1e-12)
    assert _perf(True, ctx_s=1e-6).decode_affine(8)[1] == pytest.approx(max(b, 1e-6), rel=1e-12)
    assert _perf(True, ctx_s=b / 2).decode_affine(8)[1] == pytest.approx(b, rel=1e-12)
    # a decode run stays affine in its context: a + b·C at two contexts
    p = _perf(True, ctx_s=1e-6)
    a, slope = p.decode_affine(8)
    assert p.step_time_s(0, 0.0, 8, 4000) == pytest.approx(a + slope * 4000, rel=1e-12)


def test_a_row_cost_is_on_the_critical_path_under_async_scheduling():
    # 64 decodes, async: the CPU side (1 ms + 64 x 10 µs = 1.64 ms) is below the GPU step, so a CPU cost
    # would be hidden; a per-row cost is not: 64 x 40 µs = 2.56 ms more
    base, more = _perf(True), _perf(True, row_s=40e-6)
    assert base.step_cpu_s(64, 0, 0) < base.step_time_s(0, 0.0, 64, 0)
    assert more.step_time_s(0, 0.0, 64, 64 * 600) - base.step_time_s(0, 0.0, 64, 64 * 600) == pytest.approx(
        64 * 40e-6, rel=1e-9
    )


def test_pool_takes_its_sampling():
    def pool_of(sampling):
        eng = {"vllm_version": "0.11.1", "max_num_seqs": 64, "max_model_len": 8192}
        if sampling:
            eng["sampling"] = sampling
        return build_pool_models(make_scenario(pool={"engine": eng}))[0]

    plain, pen = pool_of(None), pool_of("top_p_penalties")
    assert pen.cpu.t_seq_s == plain.cpu.t_seq_s  # the penalties' per-row cost is the sampler's, not the CPU side's
    row, _ = sampler_costs(H100, LLAMA, V0111, None, "top_p_penalties", pen.perf.coeffs.e_memory)
    assert pen.perf._sampler_row_s == pytest.approx(row)
    assert plain.perf._sampler_row_s == 0.0


def test_unset_sampling_is_left_out_of_the_dump():
    assert "sampling" not in dump_scenario(make_scenario())


def test_ml_energy_sidecars_carry_the_clients_sampling():
    # benchmark.py sends top_p 0.95, temperature 0.8 and repetition_penalty 1.1 with every request
    sidecars = sorted((ROOT / "calibration/public/ml_energy").glob("*/fleetcast.yaml"))
    assert len(sidecars) == 46
    for s in sidecars:
        assert yaml.safe_load(s.read_text())["engine"]["sampling"] == "top_p_penalties", s


def test_constants_match_their_sources():
    assert sampler.SORT_ROW_S == pytest.approx(14.891e-6, rel=1e-4)  # 3.812 ms / 256 rows
    assert sampler.SORT_BYTES_PER_ELEM == pytest.approx(380.6, abs=0.05)
    assert sampler.SORT_REF_FP32_FLOPS == H100.peak_flops["fp32"]
    assert sampler.PENALTY_BYTES_PER_ELEM == 2 * 17 + 10 + 24 + 17


def test_a_sidecar_with_an_unknown_sampling_is_a_located_error(tmp_path):
    from calibration.logs.sidecar import load_settings
    from sim.errors import FleetcastError

    (tmp_path / "fleetcast.yaml").write_text("gpu: h100-sxm\nmodel: llama-3.1-8b\nengine:\n  sampling: nucleus\n")
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(FleetcastError, match=r"line 4, field engine\.sampling: .*'top_p_penalties'"):
        load_settings(tmp_path / "run.json")


def test_penalties_slopes_by_hand():
    from calibration.penalties_slopes import growth_us

    # per token 20 -> 40 ms from batch 200 to 400 measured (100 µs per sequence), 15 -> 25 ms replayed (50)
    meas, rep = growth_us([(200.0, 0.020, 0.015), (400.0, 0.040, 0.025)])
    assert meas == pytest.approx(100.0) and rep == pytest.approx(50.0)
    # three points off a line: least squares, slope of (1, 2, 4) ms over batches (100, 200, 300) = 15 µs
    meas, _ = growth_us([(100.0, 0.001, 0.0), (200.0, 0.002, 0.0), (300.0, 0.004, 0.0)])
    assert meas == pytest.approx(15.0)
