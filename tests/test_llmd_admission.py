"""calibration/llmd_admission.py on hand-built runs: each gap's tests, worked out by hand."""

from __future__ import annotations

import pytest

from calibration import llmd_admission as la

QPS = 10.0
HELD = (1.0, 1.1, 1.2, 1.3)  # arrivals whose first token is held past the gap


def _run(release: dict[float, float], prompt: int = 1000, prefix: int = 600, lag: dict[float, float] | None = None):
    """30 requests sent every 0.1 s; first token 50 ms after the send unless ``release`` says when;
    10 output tokens over 2 s each."""
    rows = []
    for i in range(30):
        a = round(i / QPS, 6)
        f = release.get(a, a + 0.05)
        rows.append({"a": a + (lag or {}).get(a, 0.0), "p": prompt, "o": 10, "pre": prefix, "f": f, "l": f + 2.0})
    return rows


def test_a_backlog_released_in_one_step_is_what_an_engine_hold_looks_like():
    rows = _run({a: 1.45 for a in HELD})
    res = la.analyse_run(rows, [{"a": -5.0, "p": 300, "o": 100, "pre": 0}], QPS)
    (g,) = res["gaps"]
    # first tokens at ..., 0.95 (sent at 0.9), then 1.45: a 0.5 s gap; the four held requests were sent
    # before 1.45 - 0.1 and had no first token at 0.95
    assert g["t_s"] == 0.95 and g["gap_s"] == 0.5
    assert g["waiting"] == 4
    # running at 0.95: the ten requests sent at 0.0-0.9 (first token by 0.95, last 2 s later)
    assert g["running"] == 10
    assert g["waiting_new_tok"] == 4 * 400 and g["waiting_prompt_tok"] == 4 * 1000
    assert not g["budget_binds"] and not g["budget_binds_if_nothing_cached"]
    assert g["held_release_steps"] == 1 and g["held_release_s"] == 0.0
    assert g["budget_release_steps"] == 1  # (8192 - 10) // 400 = 20 fit in one step
    # a run's KV allocation bound: every prompt and output token, warm-up included
    assert res["kv_tokens_allocated_upper_bound"] == 30 * 1010 + 400
    # tokens streamed over [0.45, 0.95]: requests with first tokens 0.05-0.45 stream 0.5 s each (5 of
    # them), those at 0.55-0.85 0.4 + 0.3 + 0.2 + 0.1 s, at 5 tokens/s: 17.5 tokens in 0.5 s = 35/s
    assert g["tokens_streamed_per_s"] == 35
    # the front end's spare intake as fleetcast models exp-4's (vLLM 0.8.5 V1 on a GPU host: 1.40 ms per
    # request + Llama 4's 4.92 ms chat-template detection, 2.65 us per prompt token, 5.9 us per streamed
    # token; sim/perf/cpu_side.py's docstrings): (1 - 35 * 5.9 us) / (1.40 + 4.92 ms + 2.65 us * 1000)
    assert g["fe_intake_per_s_by_host_speedup"]["1.0"] == pytest.approx((1 - 35 * 5.9e-6) / 8.97e-3, abs=0.06)


def test_a_backlog_released_one_request_at_a_time_spreads_over_steps():
    rows = _run({1.0: 1.45, 1.1: 1.48, 1.2: 1.51, 1.3: 1.54})
    (g,) = la.analyse_run(rows, [], QPS)["gaps"]
    assert g["waiting"] == 4
    assert g["held_release_steps"] == 4 and g["held_release_s"] == pytest.approx(0.09)
    # backlog: everything sent before 1.45 with a first token at or after it: the four held and the
    # one sent at 1.4 (first token 1.45); drain rate (5 - 1) / (1.54 - 1.45)
    assert g["backlog"] == 5
    assert g["drain_rate_per_s"] == pytest.approx(4 / 0.09, abs=0.05)


def test_the_budget_binds_only_when_the_waiting_prompts_exceed_it():
    rows = _run({a: 1.45 for a in HELD}, prompt=3000, prefix=0)
    (g,) = la.analyse_run(rows, [], QPS)["gaps"]
    # 10 running + 4 * 3000 uncached tokens > 8192
    assert g["budget_binds"] and g["budget_binds_if_nothing_cached"]
    assert g["budget_release_steps"] == 2  # (8192 - 10) // 3000 = 2 a step


def test_launch_lag_inside_a_gap_is_read_against_the_fixed_rate_schedule():
    rows = _run({a: 1.45 for a in HELD}, lag={1.1: 0.04})
    (g,) = la.analyse_run(rows, [], QPS)["gaps"]
    # launches strictly inside (0.95, 1.45): sent at 1.0, 1.14 (1.1 late by 40 ms), 1.2, 1.3, 1.4
    assert g["launches_in_gap"] == 5
    assert g["max_launch_lag_in_gap_s"] == pytest.approx(0.04)


def test_no_gap_when_first_tokens_follow_the_sends():
    assert la.analyse_run(_run({}), [], QPS)["gaps"] == []


def test_load_run_splits_warm_up_from_measured(tmp_path):
    f = tmp_path / "qps-10.csv"
    f.write_text(
        "arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens,conversation,turn,prefix_tokens,warmup\n"
        "-16.0,,,300,200,c0,2,0,true\n"
        "0.1,0.15,2.0,900,50,c1,3,290,false\n"
        "0.0,0.05,1.0,700,20,c0,3,294,false\n",
        encoding="utf-8",
    )
    meas, warm = la.load_run(f)
    assert [r["a"] for r in meas] == [0.0, 0.1]
    assert warm == [{"a": -16.0, "p": 300, "o": 200, "pre": 0}]
    assert meas[1] == {"a": 0.1, "p": 900, "o": 50, "pre": 290, "f": 0.15, "l": 2.0}
