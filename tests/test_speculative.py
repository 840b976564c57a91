"""Speculative decoding (sim.perf.speculative): step times, TPOT, the acceptance formula, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.catalog import load_catalog
from sim.cli import main
from sim.engine.fleet import simulate
from sim.perf.perf_model import PerfCoefficients, PerfModel
from sim.perf.pool_model import build_pool_models
from sim.perf.speculative import NGRAM_PROPOSE_S_PER_SEQ, Speculation, expected_tokens_per_step
from tests.factories import make_scenario, refused_run

CAT = load_catalog()
ROOT = Path(__file__).resolve().parents[1]


def _speculation(method: str, k: int, a: float, gpu: str, model: str, tp: int, kernels_perf=None) -> Speculation:
    g, m, q = CAT.gpu(gpu), CAT.model(model), CAT.quant("bf16")
    perf = kernels_perf or PerfModel(g, m, q, tp, PerfCoefficients())
    draft = None
    if method == "draft":
        draft = PerfModel(g, CAT.model("llama-3.1-8b"), q, tp, perf.coeffs)
    elif method == "eagle":
        from sim.perf.speculative import draft_model_of
        draft = PerfModel(g, draft_model_of("eagle", m, CAT, None), q, tp, perf.coeffs)
    return Speculation(perf, method, k, [expected_tokens_per_step(a, k)], draft)


@settings(max_examples=200, deadline=None)
@given(method=st.sampled_from(["ngram", "draft", "eagle"]), k=st.integers(1, 8),
       gpu=st.sampled_from(["h100-sxm", "a100-80gb", "l4"]),
       model_tp=st.sampled_from([("llama-3.1-8b", 1), ("llama-3.1-70b", 4), ("llama-3.1-8b", 2)]),
       n=st.integers(1, 256), ctx_per_seq=st.integers(1, 8000),
       prefill=st.integers(0, 4096), chunks=st.integers(1, 4))
def test_acceptance_zero_is_never_faster_than_no_speculation(method, k, gpu, model_tp, n, ctx_per_seq,
                                                             prefill, chunks):
    """At acceptance 0 every step emits one token per sequence, as without speculation, but pays the
    verification of k + 1 positions and the proposer: a decode token-step and a mixed step both cost
    at least the plain step."""
    model, tp = model_tp
    spec = _speculation(method, k, 0.0, gpu, model, tp)
    perf, ctx = spec.perf, n * ctx_per_seq
    a, b, _, _ = spec.segment_coeffs(n, [n])
    a0, b0 = perf.decode_affine(n)
    assert a >= a0 and b >= b0
    assert a + b * ctx >= perf.step_time_s(0, 0.0, n, ctx)
    if prefill:
        attn = prefill * (prefill / 2)
        assert (spec.mixed_step_s(prefill, attn, n, ctx, chunks, [n])
                >= perf.step_time_s(prefill, attn, n, ctx, num_prefill_seqs=chunks))


def test_acceptance_zero_is_never_faster_with_measured_kernels():
    """The same on the measured-kernel step times the bundled scenarios use (a table may time more
    rows faster than fewer; the verification is never taken below the plain step)."""
    sc = make_scenario()
    perf = build_pool_models(sc)[0].perf
    for k in (1, 3, 7):
        spec = _speculation("ngram", k, 0.0, "h100-sxm", "llama-3.1-8b", 1, kernels_perf=perf)
        for n in (1, 7, 64, 255):
            a, b, _, _ = spec.segment_coeffs(n, [n])
            assert a >= perf.decode_affine(n)[0] and b >= perf.decode_affine(n)[1]


@pytest.mark.parametrize("k", [1, 4])
def test_acceptance_one_emits_k_plus_one_tokens_per_step_hand_checked_tpot(k):
    """One request alone, acceptance 1, n-gram proposer: every verification step emits k + 1 tokens,
    so each token takes (verification of k + 1 positions + proposer) / (k + 1) at its context."""
    prompt, output = 500, 41
    pool = {"engine": {"max_model_len": 8192, "speculative": {"method": "ngram", "num_speculative_tokens": k,
                                                              "acceptance_rate": 1.0}}}
    sc = make_scenario(pool=pool, traffic={
        "duration_s": 1, "warmup_s": 0, "arrival": {"process": "constant", "rate_rps": 1},
        "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": prompt},
                     "output_tokens": {"dist": "fixed", "value": output}}]})
    df = simulate(sc).requests
    assert len(df) == 1 and df.status.iloc[0] == "ok"
    perf = build_pool_models(sc)[0].perf
    assert expected_tokens_per_step(1.0, k) == k + 1
    # after the prefill the request holds prompt tokens + 1 sampled; a step's context is computed + 1
    total = 0.0
    for s in range(output - 1):
        ctx = prompt + 1 + s
        verify = max(perf.step_time_s(0, 0.0, 1, ctx, 0, k + 1), perf.step_time_s(0, 0.0, 1, ctx))
        total += (verify + NGRAM_PROPOSE_S_PER_SEQ) / (k + 1)
    # the first token reaches the client once the API server has processed its step's one output
    # (fe_token_s; sim.engine.front_end), the last one when its step ends (no backlog)
    total -= build_pool_models(sc)[0].cpu.fe_token_s
    assert float(df.tpot_s.iloc[0]) == pytest.approx(total / (output - 1), rel=1e-9)
    # and it is faster than without speculation
    plain = make_scenario(traffic=sc.traffic.model_dump(exclude_none=True))
    assert float(df.tpot_s.iloc[0]) < float(simulate(plain).requests.tpot_s.iloc[0])


@pytest.mark.parametrize("a, k", [(0.0, 3), (0.3, 1), (0.6, 4), (0.8, 5), (0.95, 8), (1.0, 2)])
def test_expected_tokens_per_step_matches_a_long_iid_run(a, k):
    """The formula (1 - a^(k+1)) / (1 - a) against 200,000 simulated steps of i.i.d. acceptance
    (1 + the leading accepted proposals of k). Tolerance: 5 standard errors of the sample mean
    (the count is at most k + 1, so its s.d. is at most (k + 1) / 2), a chance failure ~1e-6."""
    rng = np.random.default_rng(1234)
    steps = 200_000
    accepted = rng.random((steps, k)) < a
    leading = np.where(accepted.all(axis=1), k, np.argmin(accepted, axis=1))
    tokens = 1 + leading
    tol = 5 * max(tokens.std(), 1e-12) / math.sqrt(steps)
    assert abs(tokens.mean() - expected_tokens_per_step(a, k)) <= tol + 1e-12


def test_tpot_follows_the_expected_tokens_on_a_long_run():
    """A long single-request run at acceptance a: its TPOT is the verification step over E(a, k),
    within 0.5% of the first token-step's cost over the run (the context grows by 1 per token)."""
    a, k, prompt, output = 0.7, 4, 200, 2001
    pool = {"engine": {"max_model_len": 8192, "speculative": {"method": "eagle", "num_speculative_tokens": k,
                                                              "acceptance_rate": a}}}
    sc = make_scenario(pool=pool, traffic={
        "duration_s": 1, "warmup_s": 0, "arrival": {"process": "constant", "rate_rps": 1},
        "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": prompt},
                     "output_tokens": {"dist": "fixed", "value": output}}]})
    tpot = float(simulate(sc).requests.tpot_s.iloc[0])
    perf = build_pool_models(sc)[0].perf
    from sim.perf.speculative import draft_model_of, proposer_coeffs
    eagle = PerfModel(CAT.gpu("h100-sxm"), draft_model_of("eagle", CAT.model("llama-3.1-8b"), CAT, None),
                      CAT.quant("bf16"), 1, proposer_coeffs(perf.coeffs))  # GPU time only: CPU work is per engine step
    mid = prompt + output // 2
    step = max(perf.step_time_s(0, 0.0, 1, mid, 0, k + 1), perf.step_time_s(0, 0.0, 1, mid)) \
        + k * eagle.step_time_s(0, 0.0, 1, mid)
    assert tpot == pytest.approx(step / expected_tokens_per_step(a, k), rel=0.005)


def test_same_seed_byte_identical_records(tmp_path):
    sc = ROOT / "scenarios" / "speculative-decoding.yaml"
    over = ["--set", "traffic.duration_s=40", "--set", "traffic.warmup_s=2", "--set", "traffic.cooldown_s=0"]
    assert main(["run", str(sc), "--out", str(tmp_path / "f"), *over]) == 0
    assert main(["run", str(sc), "--out", str(tmp_path / "g"), *over]) == 0
    assert main(["run", str(sc), "--out", str(tmp_path / "e"), "--exact-steps", *over]) == 0
    for name in ("requests.parquet", "timeseries.parquet"):
        f = (tmp_path / "f" / name).read_bytes()
        assert f == (tmp_path / "g" / name).read_bytes() == (tmp_path / "e" / name).read_bytes(), name


BAD = """\
name: bad
fleet:
  - name: p
    gpu: h100-sxm
    replicas: 1
    model: {model}
    tensor_parallel: {tp}
    engine:
      max_model_len: 8192
      speculative: {spec}
traffic:
  duration_s: 10
  arrival: {{process: poisson, rate_rps: 2}}
  classes:
    - name: a
      prompt_tokens: {{dist: fixed, value: 100}}
      output_tokens: {{dist: fixed, value: 10}}
      {cls}
"""


@pytest.mark.parametrize("kw, expected", [
    ({"cls": "acceptance_rate: 1.5"}, ["line 18", "traffic.classes.0.acceptance_rate", "less than or equal to 1"]),
    ({"cls": "acceptance_rate: -0.1"}, ["line 18", "traffic.classes.0.acceptance_rate", "greater than or equal to 0"]),
    ({"spec": "{method: ngram, num_speculative_tokens: 2, acceptance_rate: 2}"},
     ["line 10", "fleet.0.engine.speculative.acceptance_rate", "less than or equal to 1"]),
    ({"spec": "{method: ngram, num_speculative_tokens: 0, acceptance_rate: 0.5}"},
     ["line 10", "fleet.0.engine.speculative.num_speculative_tokens", "greater than or equal to 1"]),
    ({"spec": "{method: draft, num_speculative_tokens: 3, draft_model: llama-1b, acceptance_rate: 0.5}",
      "model": "llama-3.1-70b", "tp": 4}, ["fleet.0.engine.speculative.draft_model", "llama-1b", "llama-3.1-8b"]),
    ({"spec": "{method: draft, num_speculative_tokens: 3, draft_model: qwen2.5-7b, acceptance_rate: 0.5}",
      "model": "qwen3-32b", "tp": 2}, ["fleet.0.engine.speculative.draft_model", "vocabulary", "152,064", "151,936"]),
    ({"spec": "{method: draft, num_speculative_tokens: 3}"}, ["fleet.0.engine.speculative", "draft_model"]),
    ({"spec": "{method: medusa, num_speculative_tokens: 3, acceptance_rate: 0.5}"},
     ["fleet.0.engine.speculative.method", "ngram", "eagle"]),
    ({"spec": "{method: ngram, num_speculative_tokens: 3}", "cls": "priority: 0"},
     ["fleet.0.engine.speculative.acceptance_rate", "class(es) a", "[0, 1]"]),
])
def test_bad_speculative_input_is_located_exit_2_nothing_written(kw, expected, tmp_path, capsys):
    args = dict(model="llama-3.1-8b", tp=1, spec="{method: ngram, num_speculative_tokens: 3}",
                cls="acceptance_rate: 0.5")
    args.update(kw)
    path = tmp_path / "bad.yaml"
    path.write_text(BAD.format(**args))
    code, flat = refused_run(capsys, tmp_path, path)
    assert code == 2
    for piece in expected:
        assert piece in flat, (piece, flat)
