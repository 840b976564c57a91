"""vLLM's CPU side: the per-step cost, its overlap under async scheduling, the API-server
front end as a FIFO service centre, and the summary's figures (sim/perf/cpu_side.py,
sim/engine/front_end.py, sim/analysis/cpu_side_summary.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from calibration import fe_token_fit
from calibration.logs.static_batch import load_static_batches
from calibration.validate import validate_run
from sim.analysis.forecast import forecast
from sim.catalog import load_catalog
from sim.engine.fleet import simulate
from sim.engine.front_end import FrontEnd
from sim.perf import cpu_side, pool_model
from sim.perf.cpu_side import (
    CPU_SIDE_GPU_HOST,
    CPU_SIDE_TESTBED,
    FE_TOKEN_V1_GPU_HOST_S,
    T_SEQ_UNIPROC_S,
    V0_TP_STEP_S,
    CpuSide,
    cpu_side_for,
    step_cpu_s,
    with_chat_intake,
    with_tensor_parallel,
)
from sim.perf.perf_model import PerfCoefficients, PerfModel
from sim.perf.profiles import coefficients_for
from sim.perf.speculative import pool_speculation
from sim.scenario.fleet_spec import PoolSpec
from sim.workload.generate import Workload
from tests.factories import make_scenario

CPU = CpuSide(
    t_step_s=2e-3,
    t_seq_s=50e-6,
    t_prefill_tok_s=1e-6,
    fe_request_s=1e-3,
    fe_prompt_tok_s=0.0,
    fe_token_s=0.1e-3,
    async_scheduling=False,
    source="test",
)


def test_step_cost_by_hand():
    # 100 decodes + 2 prefill chunks of 256 tokens: 2 ms + 102 · 50 µs + 512 · 1 µs = 7.612 ms
    assert step_cpu_s(CPU, 102, 512) == pytest.approx(7.612e-3, rel=1e-12)


def _perf(t_step_s: float, t_seq_s: float, t_prefill_tok_s: float, overlap: bool) -> PerfModel:
    cat = load_catalog()
    coeffs = PerfCoefficients(t_step_s=t_step_s, t_seq_s=t_seq_s, t_prefill_tok_s=t_prefill_tok_s)
    return PerfModel(
        cat.gpu("h100-sxm"), cat.model("llama-3.1-8b"), cat.quant("bf16", "auto"), 1, coeffs, cpu_overlap=overlap
    )


def test_serial_step_adds_the_cpu_work():
    gpu_only = _perf(0.0, 0.0, 0.0, False)
    serial = _perf(2e-3, 50e-6, 1e-6, False)
    args = (512, 512 * 300.0, 100, 100 * 700)
    extra = serial.step_time_s(*args, num_prefill_seqs=2) - gpu_only.step_time_s(*args, num_prefill_seqs=2)
    assert extra == pytest.approx(7.612e-3, rel=1e-9)
    assert serial.step_cpu_s(100, 2, 512) == pytest.approx(7.612e-3, rel=1e-12)


def test_async_step_overlaps_all_but_decode_attention():
    gpu_only = _perf(0.0, 0.0, 0.0, False)
    ctx = 100 * 700
    b = gpu_only.decode_b_s(1)
    g_fixed = gpu_only.step_time_s(0, 0.0, 100, 0)  # the GPU's step without decode attention
    # CPU work longer than the GPU's: the step is the CPU work plus decode attention
    slow_cpu = _perf(1.0, 0.0, 0.0, True)
    assert slow_cpu.step_time_s(0, 0.0, 100, ctx) == pytest.approx(1.0 + ctx * b, rel=1e-12)
    # CPU work shorter than the GPU's: fully hidden
    fast_cpu = _perf(g_fixed / 2, 0.0, 0.0, True)
    assert fast_cpu.step_time_s(0, 0.0, 100, ctx) == pytest.approx(g_fixed + ctx * b, rel=1e-12)
    # still affine in the context (fast-forward's closed form)
    a, b2 = slow_cpu.decode_affine(100)
    assert (a, b2) == (pytest.approx(1.0), pytest.approx(b))


def test_versions():
    # V0 before 0.6: detokenization inside the step; V0 0.6-0.7: the async output processor (PR #7049)
    # takes it off the step unless speculative decoding turns it off, and the API server (a process of
    # its own from 0.5.4) keeps its per-token streaming work; V1 serial
    # until 0.14; async from 0.14 and newest
    v05 = cpu_side_for((0, 5, 4))
    v07 = cpu_side_for((0, 7, 3))
    v010 = cpu_side_for((0, 10, 1))
    v014 = cpu_side_for((0, 14, 0))
    # (V0 keeps the testbed's per-token API-server figure; V1 on a GPU host has its fitted one)
    assert v05.fe_token_s == 0.0 and v05.t_seq_s == pytest.approx(v010.t_seq_s + CPU_SIDE_GPU_HOST.fe_token_s)
    assert v07.fe_token_s == CPU_SIDE_GPU_HOST.fe_token_s > 0 and v07.t_seq_s == pytest.approx(v010.t_seq_s)
    assert cpu_side_for((0, 6, 0)).t_seq_s == pytest.approx(v010.t_seq_s)
    assert cpu_side_for((0, 6, 1), "ngram").t_seq_s == pytest.approx(v05.t_seq_s)
    assert not v05.async_scheduling and not v07.async_scheduling and not v010.async_scheduling
    assert v014.async_scheduling and cpu_side_for(None).async_scheduling
    # speculative decoding from 0.14: async with EAGLE (vLLM PR #31998), never with the CPU n-gram
    # proposer, with a draft model only in the newest vLLM (PR #48341, release not identified)
    assert cpu_side_for((0, 14, 0), "eagle").async_scheduling and cpu_side_for(None, "eagle").async_scheduling
    assert not cpu_side_for((0, 14, 0), "ngram").async_scheduling and not cpu_side_for(None, "ngram").async_scheduling
    assert not cpu_side_for((0, 20, 0), "draft").async_scheduling and cpu_side_for(None, "draft").async_scheduling
    assert v010.fe_token_s > 0 and v010.fe_request_s > 0 and v010.t_seq_s > 0


def test_v1_api_server_per_token_cost_on_a_gpu_host_by_version():
    # V1 (0.8 on, and no version: the newest) on a GPU host: 5.9 µs per output token (fitted on
    # inference-perf's vllm stages 1-3), in place of the testbed's 84.2 µs; V0 (before 0.8) keeps
    # 84.2 µs, in the API server from 0.6 (async output processor) and inside the step before it;
    # the testbed's own constants are unchanged; nothing else of the CPU side moves
    assert CPU_SIDE_TESTBED.fe_token_s == pytest.approx(84.2e-6)
    assert CPU_SIDE_GPU_HOST.fe_token_s == pytest.approx(84.2e-6)
    assert FE_TOKEN_V1_GPU_HOST_S == pytest.approx(5.9e-6)
    for version in ((0, 8, 0), (0, 11, 0), (0, 14, 0), (0, 32, 0), None):
        v1 = cpu_side_for(version)
        assert v1.fe_token_s == pytest.approx(5.9e-6), version
        assert (v1.fe_request_s, v1.fe_prompt_tok_s) == (
            CPU_SIDE_GPU_HOST.fe_request_s,
            CPU_SIDE_GPU_HOST.fe_prompt_tok_s,
        )
        assert (v1.t_step_s, v1.t_seq_s) == (CPU_SIDE_GPU_HOST.t_step_s, CPU_SIDE_GPU_HOST.t_seq_s)
        assert "5.9 µs/output token" in v1.source
    assert cpu_side_for((0, 7, 3)).fe_token_s == pytest.approx(84.2e-6)
    assert cpu_side_for((0, 5, 4)).t_seq_s == pytest.approx(29.0e-6 + 84.2e-6)


def test_fe_token_fit_slope_by_hand():
    # points on a line: slope and intercept exactly; three points off it: x mean 1, y mean 2/3,
    # Sxx = 2, Sxy = (-1)(-2/3) + 0 + (1)(1/3) = 1, so slope 1/2 and intercept 2/3 - 1/2 = 1/6
    assert fe_token_fit.fit_slope([(0.0, 1.0), (10.0, 3.0), (20.0, 5.0)]) == (pytest.approx(0.2), pytest.approx(1.0))
    assert fe_token_fit.fit_slope([(0.0, 0.0), (1.0, 1.0), (2.0, 1.0)]) == (pytest.approx(0.5), pytest.approx(1 / 6))
    with pytest.raises(ValueError):
        fe_token_fit.fit_slope([(3.0, 1.0), (3.0, 2.0)])


def test_fe_token_fit_on_the_training_split_by_hand():
    # inference-perf vllm stages 1-3 (the source's lifecycle and Prometheus files): client TTFT p50
    # 29.3081, 33.4566, 44.5185 ms; server 16.002, 19.128, 30.574 ms; running 17.18, 41.99, 94.19;
    # prompt 204.1 tokens, admission 1.40 ms + 204.1 x 2.65 µs = 1.9409 ms. Gaps less admission:
    # 11.3652, 12.3877, 12.0036 ms; x mean 51.12, dx -33.94, -9.13, 43.07; y mean 11.91883, dy
    # -0.55363, 0.46887, 0.08477; Sxy 18.7902 - 4.2808 + 3.6510 = 18.1604; Sxx 1151.92 + 83.36 +
    # 1855.02 = 3090.30: slope 5.877 µs per running request, intercept 11.919 - 0.3004 = 11.618 ms
    train = [s for s in fe_token_fit.read_stages() if s[0] == "vllm" and s[1] in (1, 2, 3)]
    assert [round(r, 2) for _, _, r, _ in train] == [17.18, 41.99, 94.19]
    assert train[0][3] == pytest.approx(11.3652e-3, abs=2e-7)
    slope, intercept = fe_token_fit.fit_slope([(r, g) for _, _, r, g in train])
    assert slope == pytest.approx(5.877e-6, rel=2e-3)
    assert intercept == pytest.approx(11.618e-3, rel=1e-3)
    assert FE_TOKEN_V1_GPU_HOST_S == pytest.approx(round(slope * 1e7) / 1e7)


def test_v0_tensor_parallel_step():
    # V0 (before 0.8) at TP t: each step adds a + b (t - 1) (the driver's input broadcast to the
    # ranks; V0_TP_STEP_S, fitted on a declared training split); one GPU, V1 or no version: nothing
    a, b = V0_TP_STEP_S
    base = cpu_side_for((0, 6, 1))
    assert with_tensor_parallel(base, (0, 6, 1), 4).t_step_s == pytest.approx(base.t_step_s + a + 3 * b)
    assert with_tensor_parallel(base, (0, 6, 1), 2).t_step_s == pytest.approx(base.t_step_s + a + b)
    for version, tp in (((0, 6, 1), 1), ((0, 8, 0), 4), (None, 8)):
        assert with_tensor_parallel(base, version, tp) == base


def test_v1_on_one_gpu_pays_the_uniproc_sequence_cost():
    # V1 at world size 1 runs the model runner in the engine core's thread (the "uni" executor):
    # no multiprocess hand-off or busy-wait on a worker, so the per-sequence CPU is T_SEQ_UNIPROC_S
    # (fitted on inference-perf's vllm set: 5.5 µs, what `python -m calibration.uniproc_seq_fit` prints
    # with that set's Poisson rate stages, its capped stages' clients started at the stage's rate and its steps past
    # the largest CUDA graph paying their launches, sim.perf.eager) instead of the testbed's 27.1 + 1.9 = 29.0 µs;
    # TP > 1 keeps the testbed's figure; V0 keeps its own rules; nothing else changes
    assert T_SEQ_UNIPROC_S == pytest.approx(5.5e-6)
    assert CPU_SIDE_GPU_HOST.t_seq_s == pytest.approx(29.0e-6)
    for version in ((0, 8, 0), (0, 11, 0), (0, 14, 0), None):
        base = cpu_side_for(version)
        one = with_tensor_parallel(base, version, 1)
        assert one.t_seq_s == pytest.approx(5.5e-6)
        assert dataclasses.replace(one, t_seq_s=base.t_seq_s, source=base.source) == base
        assert with_tensor_parallel(base, version, 2) == base
    v05 = cpu_side_for((0, 5, 4))
    assert with_tensor_parallel(v05, (0, 5, 4), 1) == v05


def test_one_gpu_v1_decode_step_cpu_by_hand():
    # Llama-3.1-8B on one H100, vLLM 0.11 (serial CPU side): a decode-only step of 128 sequences
    # charges the engine core 1.68 ms + 128 · 5.5 µs = 2.384 ms of CPU; at TP 2, 1.68 ms + 128 · 29 µs = 5.392 ms
    for tp, want_s in ((1, 2.384e-3), (2, 5.392e-3)):
        sc = make_scenario(pool={"model": "llama-3.1-8b", "tensor_parallel": tp, "engine": {"vllm_version": "0.11.0"}})
        pm = pool_model.build_pool_models(sc)[0]
        assert pm.perf.step_cpu_s(128, 0, 0) == pytest.approx(want_s, rel=1e-9)
        assert not pm.perf.cpu_overlap


def test_front_end_fifo_by_hand():
    # ten requests at t=0, 100 prompt tokens each: 0.5 ms + 100 · 5 µs = 1 ms of admission work
    # each, so request i waits 1·i ms behind the others (Lindley's recursion, deterministic service);
    # it reaches the engine 1 ms after its work starts. Their streaming work is not booked at
    # admission (it comes with the tokens, ``stream``), so it does not delay these admissions.
    fe = FrontEnd(0.5e-3, 5e-6, 0.1e-3, (0.0, 0.04))
    waits = [fe.admit(0.0, 100) for _ in range(10)]
    assert waits == pytest.approx([1e-3 * i for i in range(10)], abs=1e-15)
    assert fe.admission_s(100) == pytest.approx(1e-3)
    assert fe.utilization() == pytest.approx(0.010 / 0.040)
    # a request after the backlog cleared does not wait
    assert fe.admit(0.05, 100) == 0.0


def test_front_end_processes_each_steps_outputs_when_the_step_ends_by_hand():
    # token_s = 0.1 ms. vLLM's output_handler takes a step's outputs as one batch when the step
    # ends and processes them in order (vllm/v1/engine/async_llm.py); V1's scheduler lists the
    # running requests first and the newly scheduled last, so a new request's first token is sent
    # once the whole batch is processed.
    fe = FrontEnd(0.5e-3, 0.0, 0.1e-3, (0.0, 1.0))
    # step 1 ends at 10 ms with request A's first token only: 0.1 ms of work, sent at 10.1 ms
    assert fe.stream(0.010, 1, 1) == pytest.approx(0.0101, abs=1e-12)
    # step 2 ends at 20 ms: A's decode token and B's first token, 0.2 ms; B's comes last: 20.2 ms
    assert fe.stream(0.020, 2, 1) == pytest.approx(0.0202, abs=1e-12)
    # an admission at 20.05 ms finds the loop busy with that batch: it waits 0.15 ms and holds
    # the server 0.5 ms, to 20.7 ms
    assert fe.admit(0.02005, 0) == pytest.approx(0.15e-3, abs=1e-12)
    # step 3 ends at 20.6 ms with 2 decodes and C's first token: its batch waits for the admission,
    # 20.7 .. 21.0 ms, and C's token is sent at 21.0 ms; the batch started at 20.7 ms
    assert fe.stream(0.0206, 3, 1) == pytest.approx(0.0210, abs=1e-12)
    assert fe.last_start_s == pytest.approx(0.0207, abs=1e-12)
    # busy: 0.1 + 0.2 + 0.5 + 0.3 ms in the window
    assert fe.busy_s == pytest.approx(1.1e-3, abs=1e-12)
    # a decode run of 3 steps ending at 30, 31, 32 ms, 20 tokens each (2 ms of work, more than a
    # 1 ms step), booked step by step: batch i starts when batch i-1 ends, 30 .. 32, 32 .. 34, 34 .. 36 ms
    fe.stream(0.030, 20, 0)
    fe.stream(0.031, 20, 0)
    assert fe.stream(0.032, 20, 0) == pytest.approx(0.036, abs=1e-12)  # the last batch's end
    assert fe.last_start_s == pytest.approx(0.034, abs=1e-12)
    assert fe.admit(0.035, 0) == pytest.approx(1e-3, abs=1e-12)
    # the same run with 5 tokens a step (0.5 ms in 1 ms steps): each batch done before the next
    fe2 = FrontEnd(0.0, 0.0, 0.1e-3, (0.0, 1.0))
    fe2.stream(0.030, 5, 0)
    fe2.stream(0.031, 5, 0)
    assert fe2.stream(0.032, 5, 0) == pytest.approx(0.0325, abs=1e-12)
    assert fe2.last_start_s == pytest.approx(0.032, abs=1e-12)
    assert fe2.admit(0.0324, 0) == pytest.approx(0.1e-3, abs=1e-12)
    assert fe2.busy_s == pytest.approx(1.5e-3, abs=1e-12)


def test_v0_sends_a_steps_first_tokens_first_by_hand():
    # V0 lists a step's prefills before its decodes (vllm/core/scheduler.py, _schedule_chunked_prefill):
    # a step of 10 decodes and 2 new requests, 0.1 ms each, ending at 10 ms: the new requests'
    # tokens are sent at 10.2 ms, before the decodes' (10.2 .. 11.2 ms); V1 would send them at 11.2
    v0 = FrontEnd(0.0, 0.0, 0.1e-3, (0.0, 1.0), 1, False)
    assert v0.stream(0.010, 12, 2) == pytest.approx(0.0102, abs=1e-12)
    v1 = FrontEnd(0.0, 0.0, 0.1e-3, (0.0, 1.0), 1, True)
    assert v1.stream(0.010, 12, 2) == pytest.approx(0.0112, abs=1e-12)
    assert cpu_side_for((0, 11, 0)).first_tokens_last and cpu_side_for(None).first_tokens_last
    assert not cpu_side_for((0, 6, 1)).first_tokens_last and not cpu_side_for((0, 5, 0)).first_tokens_last


def test_first_token_waits_for_the_steps_outputs_in_the_engine(monkeypatch):
    # two requests through one replica, the API server's admission work set to 0 and its
    # per-token work to 1 ms. A (1,000 output tokens) arrives at 0 and is prefilled alone: its
    # first token is sent 1 ms after its step (one output). B arrives at 50 ms, while A decodes;
    # its prefill step also holds A's decode, so B's token is the second of two: 2 ms after the
    # step. The engine's schedule is the same with per-token work 0 (B's admission costs nothing
    # and the loop's 1 ms after each ~7 ms step is over before the next step ends), so the TTFT
    # differences are exactly 1 and 2 ms; B's last token waits only for a backlog (none): E2E unmoved.
    def run(token_s: float):
        cpu = dataclasses.replace(CPU, fe_request_s=0.0, fe_prompt_tok_s=0.0, fe_token_s=token_s)
        monkeypatch.setattr(
            pool_model, "cpu_side_for", lambda version, method=None, async_scheduling=None, engine_core=None: cpu
        )
        wl = _burst(2, 100, 1000)
        wl = dataclasses.replace(wl, arrival_s=np.array([0.0, 0.05]), output_tokens=np.array([1000, 5], dtype=np.int32))
        return simulate(make_scenario(), workload=wl).requests

    slow, fast = run(1e-3), run(0.0)
    assert (slow["status"] == "ok").all() and (fast["status"] == "ok").all()
    d_ttft = (slow["ttft_s"] - fast["ttft_s"]).to_numpy()
    assert d_ttft == pytest.approx([1e-3, 2e-3], abs=1e-9)
    assert float(slow["e2e_s"][1] - fast["e2e_s"][1]) == pytest.approx(0.0, abs=1e-9)


def test_a_burst_with_long_outputs_is_not_staggered_by_its_future_streaming():
    # 8 requests at t=0, 100 prompt and 1,000 output tokens, one H100 with Llama-3.1-8B. Each
    # admission is 1.40 ms + 100 · 2.65 µs = 1.665 ms, so the last one reaches the engine 7 · 1.665 =
    # 11.7 ms after the first; two prefill steps of at most 800 tokens (< 40 ms each on an H100)
    # then give every request its first token within ~0.1 s of the first. Booked at admission, the
    # streaming work (1,000 · 84.2 µs = 84.2 ms a request) made request i wait i · 85.9 ms: the
    # last one's first token 0.6 s after the first's.
    sc = make_scenario()
    req = simulate(sc, workload=_burst(8, 100, 1000)).requests
    assert (req["status"] == "ok").all()
    first = req["arrival_s"] + req["ttft_s"]
    assert float(first.max() - first.min()) < 0.1


def test_front_end_rejects_negative_times():
    with pytest.raises(ValueError, match=">= 0 seconds"):
        FrontEnd(-1e-3, 0.0, 0.0, (0.0, 1.0))


def test_front_end_is_the_bottleneck(monkeypatch):
    # 100 req/s of 128-token prompts and 8-token outputs against a front end of 15 ms + 128 · 0
    # per admission and 8 · 0.625 = 5 ms of streaming per request (an 8B model on an H100 handles
    # far more such requests): the front end is saturated, its utilization ~1, and the summary
    # warns. How many get through: the front end is one FIFO of work in the order it became
    # ready, and a request's streaming work becomes ready only once it streams, behind every
    # admission that arrived before. Saturated, the front end serves the work booked by time b at
    # db/dt = 1 / (100 · 0.015 + 0.005 · r(b)) per second, where r is the rate at which admissions
    # complete (requests reach the engine and then stream), r = 100 · db/dt; in steady state
    # r = 100 / (1.5 + 0.005 r), 0.005 r² + 1.5 r - 100 = 0, r = (sqrt(2.25 + 2) - 1.5) / 0.01 =
    # 56.2 req/s. (Were each request's streaming done before the next admission, as a front end
    # that booked it at admission had it, 1 / 0.02 = 50 req/s: the backlog's streaming is deferred
    # behind the admissions queued before it, as it is in the API server's event loop.) What the
    # client sees end: the front end books B = 100 · 0.015 + 0.005 · r = 1.781 s of work a second
    # from t = 0 and serves 1, so work booked at t is done at B·t; a request admitted at B·t
    # books its last token's streaming then, done at B²·t: requests end at 100 / B² = 31.5 a second.
    slow = dataclasses.replace(CPU, fe_request_s=15e-3, fe_prompt_tok_s=0.0, fe_token_s=0.625e-3)
    monkeypatch.setattr(
        pool_model, "cpu_side_for", lambda version, method=None, async_scheduling=None, engine_core=None: slow
    )
    sc = make_scenario(
        traffic={
            "duration_s": 40,
            "warmup_s": 10,
            "cooldown_s": 0,
            "arrival": {"process": "poisson", "rate_rps": 100},
            "classes": [
                {
                    "name": "short",
                    "prompt_tokens": {"dist": "fixed", "value": 128},
                    "output_tokens": {"dist": "fixed", "value": 8},
                }
            ],
        }
    )
    result, summary = forecast(sc)
    block = summary["cpu_side"]["p"]
    assert block["front_end_utilization"] == pytest.approx(1.0, abs=0.01)
    assert block["front_end_bound_replicas"] == ["p/0"]
    assert any("front end, not the GPU" in w for w in summary["warnings"])
    req = result.requests
    done = req[(req.finish_s >= 10) & (req.finish_s < 40) & (req.status == "ok")]
    assert len(done) / 30 == pytest.approx(31.5, rel=0.03)


def test_measured_constants_are_positive():
    for f in ("t_step_s", "t_seq_s", "fe_request_s", "fe_prompt_tok_s", "fe_token_s"):
        assert getattr(CPU_SIDE_TESTBED, f) > 0, f


def test_pool_without_profile_takes_the_cpu_side_step_terms():
    cat = load_catalog()
    pool = PoolSpec(name="p", gpu="h100-sxm", replicas=1, model="llama-3.1-8b")
    c = coefficients_for(pool, Path("."), cat.gpu("h100-sxm"), cat.quant("bf16"), CPU)
    assert (c.t_step_s, c.t_seq_s, c.t_prefill_tok_s) == (2e-3, 50e-6, 1e-6)
    assert "CPU side per step 2000 µs + 50.0 µs/sequence" in c.source


@pytest.mark.parametrize(
    "method, k, a, target",
    [
        ("eagle", 3, 0.6, {"model": "llama-3.1-8b"}),
        ("draft", 4, 0.55, {"model": "llama-3.1-70b", "tensor_parallel": 4}),
    ],
)
def test_speculative_engine_step_pays_the_cpu_work_once(monkeypatch, method, k, a, target):
    # vLLM V1 runs the proposer inside execute_model: one scheduler pass and one output pass per
    # engine step cover the k proposals and the verification. So the CPU side of a decode-only
    # verification step of n sequences is t_step + n · t_seq + n · k · t_tok (the k proposed tokens
    # are scheduled tokens), once, whatever k: 2 ms + 10 · 50 µs + 10 · k · 1 µs. Serial (vLLM < 0.14),
    # it adds to the step's GPU time, so a token-step (one E-th of the engine step) costs
    # that over E = (1 - a^(k+1)) / (1 - a) more than with no CPU work at all.
    # eagle, k=3, a=0.6: E = (1 - 0.1296) / 0.4 = 2.176, CPU 2.53 ms -> 1.16268 ms a token-step;
    # draft, k=4, a=0.55: E = (1 - 0.55^5) / 0.45 = 2.0887... , CPU 2.54 ms.
    # (Charging every draft forward the step's CPU work, as before, adds k · 2.5 ms more.)
    n = 10
    spec_cfg = {"method": method, "num_speculative_tokens": k, "acceptance_rate": a}
    if method == "draft":
        spec_cfg["draft_model"] = "llama-3.1-8b"
    pool = {**target, "engine": {"max_model_len": 8192, "speculative": spec_cfg}}
    sc = make_scenario(pool=pool)
    zero = dataclasses.replace(CPU, t_step_s=0.0, t_seq_s=0.0, t_prefill_tok_s=0.0)

    def token_step_a(cpu: CpuSide) -> float:
        monkeypatch.setattr(
            pool_model, "cpu_side_for", lambda version, method=None, async_scheduling=None, engine_core=None: cpu
        )
        monkeypatch.setattr(
            pool_model, "with_tensor_parallel", lambda c, version, tp, engine_core=None: c
        )  # ``cpu`` as given
        pm = pool_model.build_pool_models(sc)[0]
        spec = pool_speculation(sc.fleet[0], sc.load_catalog(), pm.gpu, pm.model, pm.quant, pm.perf, ["c"], [])
        assert spec is not None
        return spec.segment_coeffs(n, [n])[0]

    e = (1 - a ** (k + 1)) / (1 - a)
    cpu_s = 2e-3 + n * 50e-6 + n * k * 1e-6
    assert token_step_a(CPU) - token_step_a(zero) == pytest.approx(cpu_s / e, rel=1e-9)


def _burst(n: int, prompt: int, output: int) -> Workload:
    return Workload(
        arrival_s=np.zeros(n),
        class_idx=np.zeros(n, dtype=np.int16),
        prompt_tokens=np.full(n, prompt, dtype=np.int32),
        output_tokens=np.full(n, output, dtype=np.int32),
        prefix_offsets=np.zeros(n + 1, dtype=np.int64),
        prefix_keys=np.zeros(0, dtype=np.int64),
        prefix_end_tok=np.zeros(0, dtype=np.int32),
        class_names=["chat"],
    )


def test_requests_in_a_front_end_count_as_outstanding_for_routing():
    # 10 requests at t = 0 to 2 replicas behind least-outstanding routing (ties: lowest index). Each
    # API server takes 1.40 ms + 100 · 2.65 µs = 1.665 ms to admit a request, so from the
    # third request on each one waits in its replica's front end. Counted as outstanding from the
    # moment it is routed, the requests alternate: request i goes to replica i mod 2 (5 and 5).
    # Not counted, replica 0 would show 1 outstanding for every request after the second and take
    # them all (9 and 1), the pile-up behind the mooncake-prefix TPOT p99 of +403%.
    sc = make_scenario(pool={"replicas": 2})
    req = simulate(sc, workload=_burst(10, 100, 20)).requests.sort_values("request_id")
    assert list(req["replica"].astype(str)) == [f"p/{i % 2}" for i in range(10)]
    assert (req["status"] == "ok").all()


def test_speculative_cpu_share_counts_engine_steps(monkeypatch):
    # One request alone, 500 prompt and 41 output tokens, EAGLE k = 3 at acceptance 0.6 (E = 2.176),
    # CPU side serial: 2 ms per step, 50 µs per sequence, 1 µs per scheduled token. Its CPU work is
    # the prefill step, 2 ms + 50 µs + 500 · 1 µs = 2.55 ms, and 40 decode token-steps, each one E-th
    # of a verification step of 2 ms + 50 µs + 3 · 1 µs = 2.053 ms: 40 · 2.053 / 2.176 = 37.739 ms.
    monkeypatch.setattr(
        pool_model, "cpu_side_for", lambda version, method=None, async_scheduling=None, engine_core=None: CPU
    )
    monkeypatch.setattr(pool_model, "with_tensor_parallel", lambda c, version, tp, engine_core=None: c)  # CPU as given
    pool = {
        "engine": {
            "max_model_len": 8192,
            "speculative": {"method": "eagle", "num_speculative_tokens": 3, "acceptance_rate": 0.6},
        }
    }
    sc = make_scenario(
        pool=pool,
        traffic={
            "duration_s": 5,
            "warmup_s": 0,
            "cooldown_s": 0,
            "arrival": {"process": "constant", "rate_rps": 1},
            "classes": [
                {
                    "name": "chat",
                    "prompt_tokens": {"dist": "fixed", "value": 500},
                    "output_tokens": {"dist": "fixed", "value": 41},
                }
            ],
        },
    )
    res = simulate(sc, workload=_burst(1, 500, 41))
    (rep,) = res.replicas
    assert rep.cpu_s == pytest.approx(2.55e-3 + 40 * 2.053e-3 / 2.176, rel=1e-9)


def test_v0_tensor_parallel_step_reaches_a_static_batch_replay(monkeypatch):
    # LLM-Inference-Bench H100 Llama-3-8B TP4, batch 1, 128 in / 128 out, vLLM 0.6.1 (its sidecar):
    # one prefill step (which gives the first token) and 127 decode steps, all serial in V0, so the
    # V0 broadcast adds 128 x (a + 3 b) to the batch latency, and nothing else moves
    table = Path(__file__).resolve().parents[1] / "calibration/public/llm-inference-bench/h100-llama-3.1-8b-tp4"
    run = next(r for r in load_static_batches(table / "static.batches.csv") if r.name.endswith("/b1-l128"))
    with_term = validate_run(run, None).predicted["batch_latency_s"]
    monkeypatch.setattr(cpu_side, "V0_TP_STEP_S", (0.0, 0.0))
    without = validate_run(run, None).predicted["batch_latency_s"]
    a, b = V0_TP_STEP_S
    assert with_term - without == pytest.approx(128 * (a + 3 * b), rel=1e-9)


def test_v0_engine_named_on_a_v1_release_gets_v0s_cpu_side():
    # vLLM 0.8-0.10 still ran V0 with VLLM_USE_V1=0 (inference-perf's vllm+v0_engine on 0.9.0): engine_core v0
    # gives V0's rules of 0.6 on, as cpu_side_for((0, 7, 3)): output processing overlapped with the next step
    # (the testbed's 84.2 µs per token stays in the API server), a step's first tokens first, no async
    # scheduling, and at one GPU the testbed's 27.1 + 1.9 = 29.0 µs per sequence (T_SEQ_UNIPROC_S is V1's
    # uni executor); at TP 2 the step adds V0's input broadcast a + b
    v0 = cpu_side_for((0, 9, 0), engine_core="v0")
    assert v0.fe_token_s == pytest.approx(84.2e-6) and not v0.first_tokens_last and not v0.async_scheduling
    assert (v0.t_step_s, v0.t_seq_s) == (pytest.approx(1.68e-3), pytest.approx(29.0e-6))
    assert with_tensor_parallel(v0, (0, 9, 0), 1, "v0").t_seq_s == pytest.approx(29.0e-6)
    a, b = V0_TP_STEP_S
    assert with_tensor_parallel(v0, (0, 9, 0), 2, "v0").t_step_s == pytest.approx(1.68e-3 + a + b)
    # engine_core v1 (or none) at 0.9.0 is V1: 5.9 µs per token, new requests last, 5.5 µs per sequence at TP 1
    for core in ("v1", None):
        v1 = cpu_side_for((0, 9, 0), engine_core=core)
        assert v1.fe_token_s == pytest.approx(5.9e-6) and v1.first_tokens_last
        assert with_tensor_parallel(v1, (0, 9, 0), 1, core).t_seq_s == pytest.approx(5.5e-6)


@pytest.mark.parametrize(
    "engine, message",
    [
        ({"engine_core": "v0", "vllm_version": "0.11.0"}, "engine_core v0 needs a vllm_version before 0.11.0"),
        ({"engine_core": "v0"}, "engine_core v0 needs a vllm_version before 0.11.0"),
        ({"engine_core": "v0", "vllm_version": "0.10.1", "async_scheduling": True}, "async_scheduling is a V1"),
        # V1 was first offered in vLLM 0.7.0 (release notes: VLLM_USE_V1=1): 0.6.6 had V0 only
        ({"engine_core": "v1", "vllm_version": "0.6.6"}, "engine_core v1 needs a vllm_version from 0.7.0 on"),
    ],
)
def test_engine_core_v0_is_refused_where_vllm_had_no_v0(engine, message):
    from pydantic import ValidationError

    from sim.scenario.fleet_spec import EngineSpec

    with pytest.raises(ValidationError, match=message):
        EngineSpec.model_validate(engine)
    assert EngineSpec.model_validate({"engine_core": "v0", "vllm_version": "0.10.2"}).engine_core == "v0"
    assert EngineSpec.model_validate({"engine_core": "v1", "vllm_version": "0.7.0"}).engine_core == "v1"


def test_sidecar_engine_core_v0_reaches_the_replays_engine():
    # inference-perf's vllm+v0_engine sidecar names engine_core v0 on vLLM 0.9.0: its replay's engine carries it
    # (V0's CPU side), beside the prefill-first policy it already had (no chunked prefill)
    from calibration.logs.sidecar import load_settings

    root = Path(__file__).resolve().parents[1] / "calibration/public/inference-perf"
    st = load_settings(root / "vllm-v0_engine/stages.stages.csv")
    assert st.engine["engine_core"] == "v0" and st.policy == "prefill-first"
    assert "engine_core" not in load_settings(root / "vllm/stages.stages.csv").engine


def test_chat_template_reparse_is_charged_per_request_on_vllm_0_8_2_to_0_9_1():
    # vLLM 0.8.2-0.9.1 re-parse the chat template on every chat request (calibration/chat_intake_bench.py
    # measured 4.92 ms for Llama 4's template, calibration/public/llm-d/chat_intake.json): a Llama-4-Scout
    # server of 0.8.5 admits a request in 1.40 ms (the testbed's per-request figure) + 4.92 ms = 6.32 ms,
    # and a 1,114-token prompt in 6.32 + 1,114 * 2.65 us = 9.27 ms; nothing else changes
    base = cpu_side_for((0, 8, 5))
    chat = with_chat_intake(base, (0, 8, 5), "llama-4-scout")
    assert chat.fe_request_s == pytest.approx(6.32e-3, rel=1e-9)
    assert chat.fe_request_s + chat.fe_prompt_tok_s * 1114 == pytest.approx(9.2721e-3, rel=1e-6)
    assert dataclasses.replace(chat, fe_request_s=base.fe_request_s, source=base.source) == base
    assert "chat template re-parsed per request" in chat.source
    for version in ((0, 8, 2), (0, 9, 1, 1)):
        assert with_chat_intake(cpu_side_for(version), version, "llama-4-scout").fe_request_s == pytest.approx(6.32e-3)
    # cached up to 0.8.1 and again from 0.9.2 (PR #20065); the newest vLLM (no version); templates not measured
    for version, model in (((0, 8, 1), "llama-4-scout"), ((0, 9, 2), "llama-4-scout"), (None, "llama-4-scout")):
        c = cpu_side_for(version)
        assert with_chat_intake(c, version, model) == c
    assert with_chat_intake(base, (0, 8, 5), "llama-3-70b") == base  # Llama 3's template: not measured


def test_chat_template_reparse_reaches_the_pool_model():
    # the pool's CPU side (what fleetcast run / validate use): llm-d exp-4's server, Scout FP8 TP4 on vLLM 0.8.5
    pool = {"model": "llama-4-scout", "tensor_parallel": 4, "gpu": "h100-sxm", "quantization": {"weights": "fp8"}}
    sc = make_scenario(pool={**pool, "engine": {"vllm_version": "0.8.5", "max_model_len": 20000}})
    assert pool_model.build_pool_models(sc)[0].cpu.fe_request_s == pytest.approx(6.32e-3, rel=1e-9)
    sc = make_scenario(pool={**pool, "engine": {"vllm_version": "0.9.2", "max_model_len": 20000}})
    assert pool_model.build_pool_models(sc)[0].cpu.fe_request_s == pytest.approx(1.40e-3, rel=1e-9)


def test_chat_template_reparse_is_charged_per_model_family():
    # calibration/public/llm-d/chat_intake.json: vLLM 0.8.5's detection on Llama 3.1 Instruct's template took
    # 4.41 ms (Llama 4's: 4.92 ms). By hand, the API server's per-request work on 0.8.5 is the testbed's
    # 1.40 ms + that: Llama 3.1 (8B, 70B, 405B: one template) 1.40 + 4.41 = 5.81 ms, Llama 4 6.32 ms
    for version in ((0, 8, 2), (0, 8, 5), (0, 9, 1)):
        base = cpu_side_for(version)
        for model in ("llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"):
            chat = with_chat_intake(base, version, model)
            assert chat.fe_request_s == pytest.approx(5.81e-3, rel=1e-9), (version, model)
            assert "llama-3.1, measured" in chat.source
            assert with_chat_intake(base, version, model, chat_endpoint=True) == chat
        assert with_chat_intake(base, version, "llama-4-scout").fe_request_s == pytest.approx(6.32e-3, rel=1e-9)
        # a family whose template was not measured (Llama 3's, Mixtral's) stays uncharged
        for model in ("llama-3-70b", "mixtral-8x7b"):
            assert with_chat_intake(base, version, model) == base
        # requests sent to /v1/completions do not resolve a chat template
        for model in ("llama-3.1-70b", "llama-4-scout"):
            assert with_chat_intake(base, version, model, chat_endpoint=False) == base
    # outside [0.8.2, 0.9.2) the detection is cached (up to 0.8.1, and from 0.9.2: vLLM PR #20065)
    for version in ((0, 8, 1), (0, 9, 2), (0, 11, 0), None):
        c = cpu_side_for(version)
        assert with_chat_intake(c, version, "llama-3.1-70b") == c


def test_chat_template_figures_are_the_committed_measurements():
    # each family's constant is its measurement in chat_intake.json, rounded to 0.01 ms
    doc = json.loads((Path(__file__).resolve().parents[1] / "calibration/public/llm-d/chat_intake.json").read_text())
    measured = {f: r["detect_content_format_s"] for f, r in doc["families"].items()}
    assert set(measured) == set(cpu_side.FE_CHAT_FORMAT_DETECT_S) == {"llama-4", "llama-3.1"}
    for family, s in measured.items():
        assert cpu_side.FE_CHAT_FORMAT_DETECT_S[family] == pytest.approx(s, abs=5e-6), family
    assert measured["llama-3.1"] == pytest.approx(4.41e-3, abs=5e-6)
    assert doc["families"]["llama-3.1"]["detected_format"] == "string"  # the template renders content as text
    assert doc["families"]["llama-3.1"]["template_sha256"].startswith("e10ca381")


def test_chat_template_reparse_of_llama_3_1_reaches_the_pool_model():
    # llm-d exp-0's server: Llama-3.1-70B-Instruct, TP2 on A100-80GB, vLLM 0.8.5, chat requests:
    # 1.40 + 4.41 = 5.81 ms per request; engine.chat_endpoint false (/v1/completions): 1.40 ms
    pool = {"model": "llama-3.1-70b", "tensor_parallel": 2, "gpu": "a100-80gb"}
    eng = {"vllm_version": "0.8.5", "max_model_len": 20000, "gpu_memory_utilization": 0.95}
    sc = make_scenario(pool={**pool, "engine": eng})
    assert pool_model.build_pool_models(sc)[0].cpu.fe_request_s == pytest.approx(5.81e-3, rel=1e-9)
    sc = make_scenario(pool={**pool, "engine": {**eng, "chat_endpoint": False}})
    assert pool_model.build_pool_models(sc)[0].cpu.fe_request_s == pytest.approx(1.40e-3, rel=1e-9)
