"""sim.analysis.metrics: percentiles, SLO attainment, window, cost, ITL, Little's law."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from sim.analysis.contracts import WindowSummary
from sim.analysis.metrics import (
    HOURS_PER_MONTH,
    ClassSlo,
    PoolCost,
    hist_percentiles,
    percentiles,
    summarize,
)
from sim.engine.result import ReplicaStats, SimResult
from sim.records import ITL_EDGES_S, REQUEST_COLUMNS, derive_latencies, itl_bucket
from sim.report.terminal import render_summary

BUCKET_RATIO = ITL_EDGES_S[1] / ITL_EDGES_S[0]  # one log bucket, 10**(1/20)


def make_records(rng: np.random.Generator, n: int, *, classes=("chat",),
                 start_s: float = 0.0, rate_per_s: float = 10.0, status="ok",
                 ttft_s=None, e2e_s=None, output_tokens=None, prompt_tokens=None,
                 replica="a/0") -> pd.DataFrame:
    """Per-request records in the shared schema (+ derived latencies).

    Arrivals are Poisson from ``start_s``; latencies random unless given
    (scalars or arrays override)."""
    arrival = start_s + np.cumsum(rng.exponential(1.0 / rate_per_s, n))
    ttft = rng.lognormal(np.log(0.2), 0.5, n) if ttft_s is None else np.broadcast_to(ttft_s, n)
    out_tok = rng.integers(2, 300, n) if output_tokens is None else np.broadcast_to(
        output_tokens, n)
    dec = rng.lognormal(np.log(0.03), 0.3, n) * np.maximum(out_tok - 1, 0)
    e2e = ttft + dec if e2e_s is None else np.broadcast_to(e2e_s, n)
    df = pd.DataFrame({
        "request_id": np.arange(n),
        "class": np.asarray(classes)[np.arange(n) % len(classes)],
        "arrival_s": arrival,
        "first_token_s": arrival + ttft,
        "finish_s": arrival + e2e,
        "prompt_tokens": (rng.integers(10, 2000, n) if prompt_tokens is None
                          else np.broadcast_to(prompt_tokens, n)),
        "output_tokens": out_tok,
        "cached_prompt_tokens": 0,
        "replica": np.broadcast_to(replica, n),
        "preemptions": 0,
        "status": np.broadcast_to(status, n),
    }).astype(REQUEST_COLUMNS)
    return derive_latencies(df)


def make_result(df: pd.DataFrame, window, class_names=None, itl_hist=None,
                replicas=()) -> SimResult:
    names = list(class_names or pd.unique(df["class"].astype(str)))
    hist = (np.zeros((len(names), len(ITL_EDGES_S) - 1), np.int64)
            if itl_hist is None else itl_hist)
    return SimResult(requests=df, timeseries=pd.DataFrame(), class_names=names,
                     itl_hist=hist, window=window, end_s=float(window[1]),
                     replicas=list(replicas))


# --- percentiles -------------------------------------------------------------

def test_percentiles_equal_numpy_linear():
    rng = np.random.default_rng(1)
    df = make_records(rng, 2500, rate_per_s=50.0)
    s = summarize(make_result(df, (0.0, 1e9)), [], [])
    for metric in ("ttft_s", "e2e_s", "tpot_s"):
        v = df[metric].to_numpy()
        got = s["overall"][metric]
        for label, q in [("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99.9", 99.9)]:
            assert got[label] == pytest.approx(np.percentile(v, q), rel=1e-12)
        assert got["mean"] == pytest.approx(v.mean())
        assert got["n"] == 2500


def test_percentiles_nan_safe_and_p999_needs_1000():
    got = percentiles([1.0, np.nan, 3.0, 2.0, np.inf])
    assert got["n"] == 3 and got["p50"] == 2.0 and got["mean"] == 2.0
    assert got["p99.9"] is None
    assert percentiles(np.arange(999.0))["p99.9"] is None
    assert percentiles(np.arange(1000.0))["p99.9"] == pytest.approx(
        np.percentile(np.arange(1000.0), 99.9))
    empty = percentiles([])
    assert empty["n"] == 0 and all(empty[k] is None for k in ("mean", "p50", "p99"))


def test_tpot_percentiles_exclude_single_token_outputs():
    rng = np.random.default_rng(2)
    df = make_records(rng, 40)
    df.loc[:9, "output_tokens"] = 1  # these have no TPOT
    df = derive_latencies(df.drop(columns=["ttft_s", "tpot_s", "e2e_s"]))
    s = summarize(make_result(df, (0.0, 1e9)), [], [])
    assert s["overall"]["tpot_s"]["n"] == 30
    assert s["overall"]["tpot_s"]["p50"] == pytest.approx(
        np.percentile(df["tpot_s"].iloc[10:], 50))


# --- SLO attainment ------------------------------------------------------------

CHAT_SLO = ClassSlo(
    name="chat",
    # the per-request threshold is the HIGHEST percentile's target: 1.0 s TTFT
    targets={"ttft_s": {"p50": 0.3, "p99": 1.0}, "tpot_s": {"p99": 0.05},
             "e2e_s": {"p99": 10.0}},
    attainment_pct=60.0,
)


def _ten_requests() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    df = make_records(rng, 10, ttft_s=0.5, output_tokens=101, e2e_s=0.5 + 100 * 0.02)
    df = df.drop(columns=["ttft_s", "tpot_s", "e2e_s"])
    df.loc[0, "first_token_s"] = df.loc[0, "arrival_s"] + 1.5  # TTFT miss
    df.loc[1, "status"] = "error"  # error: a miss even with good latencies
    df.loc[2, "finish_s"] = df.loc[2, "arrival_s"] + 0.5 + 100 * 0.08  # TPOT miss
    # single output token: no TPOT; a huge gap would be a TPOT miss if judged
    df.loc[3, "output_tokens"] = 1
    df.loc[3, "finish_s"] = df.loc[3, "arrival_s"] + 9.0
    return derive_latencies(df)


def test_attainment_three_of_ten_miss():
    s = summarize(make_result(_ten_requests(), (0.0, 1e6)), [CHAT_SLO], [])
    chat = s["classes"]["chat"]
    assert chat["attainment_pct"] == pytest.approx(70.0)
    assert s["overall"]["attainment_pct"] == pytest.approx(70.0)
    assert chat["counts"]["ok"] == 9 and chat["counts"]["error"] == 1
    assert chat["attainment_target_pct"] == 60.0
    # the p50 TTFT target 0.3 s is a percentile target, missed (achieved 0.5 s)
    assert chat["slo"]["ttft_s:p50"]["met"] is False
    assert chat["slo"]["ttft_s:p50"]["achieved_s"] == pytest.approx(0.5)
    assert chat["slo_met"] is False and s["overall"]["slo_met"] is False


def test_single_token_request_judged_on_ttft_and_e2e_only():
    df = _ten_requests()
    s = summarize(make_result(df, (0.0, 1e6)), [CHAT_SLO], [])
    good_before = s["classes"]["chat"]["goodput_rps"]
    # the same single-token request now misses E2E: one more miss
    df.loc[3, "finish_s"] = df.loc[3, "arrival_s"] + 11.0
    df = derive_latencies(df.drop(columns=["ttft_s", "tpot_s", "e2e_s"]))
    s2 = summarize(make_result(df, (0.0, 1e6)), [CHAT_SLO], [])
    assert s2["classes"]["chat"]["attainment_pct"] == pytest.approx(60.0)
    assert s2["classes"]["chat"]["goodput_rps"] < good_before


def test_slo_met_when_all_targets_and_attainment_hold():
    slo = ClassSlo("chat", {"ttft_s": {"p99": 2.0}, "e2e_s": {"p50": 10.0}}, 70.0)
    s = summarize(make_result(_ten_requests(), (0.0, 1e6)), [slo], [])
    assert s["classes"]["chat"]["attainment_pct"] == pytest.approx(90.0)  # only the error
    assert s["classes"]["chat"]["slo_met"] is True and s["overall"]["slo_met"] is True
    strict = ClassSlo("chat", slo.targets, 95.0)
    s = summarize(make_result(_ten_requests(), (0.0, 1e6)), [strict], [])
    assert s["classes"]["chat"]["slo_met"] is False


def test_overall_attainment_uses_each_class_thresholds():
    rng = np.random.default_rng(4)
    df = make_records(rng, 20, classes=("chat", "batch"), ttft_s=3.0, e2e_s=5.0)
    slos = [ClassSlo("chat", {"ttft_s": {"p99": 1.0}}, None),
            ClassSlo("batch", {"ttft_s": {"p99": 10.0}}, None)]
    s = summarize(make_result(df, (0.0, 1e6)), slos, [])
    assert s["classes"]["chat"]["attainment_pct"] == 0.0
    assert s["classes"]["batch"]["attainment_pct"] == 100.0
    assert s["overall"]["attainment_pct"] == pytest.approx(50.0)
    assert s["classes"]["batch"]["slo_met"] and not s["overall"]["slo_met"]


# --- window ----------------------------------------------------------------------

def test_throughput_and_goodput_count_window_arrivals_only():
    rng = np.random.default_rng(5)
    inside = make_records(rng, 100, start_s=100.0, rate_per_s=1.0, output_tokens=50,
                          prompt_tokens=200, ttft_s=0.1, e2e_s=1.0)
    inside = inside[inside["arrival_s"] < 200.0]
    warm = make_records(rng, 500, start_s=0.0, rate_per_s=10.0, output_tokens=999,
                        prompt_tokens=999)
    cool = make_records(rng, 500, start_s=200.0, rate_per_s=10.0, output_tokens=999,
                        prompt_tokens=999)
    df = pd.concat([warm[warm["arrival_s"] < 100.0], inside, cool], ignore_index=True)
    slo = ClassSlo("chat", {"ttft_s": {"p99": 0.5}}, None)
    s = summarize(make_result(df, (100.0, 200.0)), [slo], [])
    n = len(inside)
    o = s["overall"]
    assert o["counts"]["total"] == n
    assert o["window_requests_per_s"] == pytest.approx(n / 100.0)
    assert o["window_output_tokens_per_s"] == pytest.approx(50 * n / 100.0)
    assert o["window_total_tokens_per_s"] == pytest.approx(250 * n / 100.0)
    # bench-serve rates: over first arrival -> last finish of the window's requests
    span = inside["arrival_s"].max() + 1.0 - inside["arrival_s"].min()
    assert o["completion_span_s"] == pytest.approx(span)
    assert o["requests_per_s"] == pytest.approx(n / span)
    assert o["goodput_rps"] == pytest.approx(n / span)
    assert s["window"]["length_s"] == 100.0


def test_throughput_divides_by_the_completion_span_not_the_window():
    """An overloaded run: 100 requests arrive in the first 10 s but finish one per
    second up to t = 100 s. bench serve counts 100 x 20 tokens / 100 s = 20 tok/s;
    the window rate (2,000 tokens / 10 s = 200 tok/s) is kept under its own name."""
    n = 100
    arrival = np.arange(n) * 0.1
    finish = np.arange(1, n + 1, dtype=float)
    df = pd.DataFrame({
        "request_id": np.arange(n), "class": "chat", "arrival_s": arrival,
        "first_token_s": arrival + 0.05, "finish_s": finish, "prompt_tokens": 100,
        "output_tokens": 20, "cached_prompt_tokens": 0, "replica": "a/0", "preemptions": 0,
        "status": "ok"}).astype(REQUEST_COLUMNS)
    pools = [PoolCost("a", "H100", replicas=1, gpus_per_replica=1, usd_per_gpu_hour=3.6, watts_per_gpu=None)]
    s = summarize(make_result(derive_latencies(df), (0.0, 10.0)), [], pools)
    o = s["overall"]
    assert o["completion_span_s"] == pytest.approx(100.0)
    assert o["output_tokens_per_s"] == pytest.approx(20.0)
    assert o["total_tokens_per_s"] == pytest.approx(120.0)
    assert o["requests_per_s"] == pytest.approx(1.0)
    assert o["window_output_tokens_per_s"] == pytest.approx(200.0)
    # $3.6/h over 20 tok/s = 72,000 tok/h -> $50 per 1M output tokens
    assert s["cost"]["usd_per_1m_output_tokens"] == pytest.approx(50.0)
    assert s["cost"]["pools"]["a"]["output_tokens_per_s"] == pytest.approx(20.0)


# --- cost and energy ----------------------------------------------------------------

POOLS = [PoolCost("a", "H100", replicas=3, gpus_per_replica=2, usd_per_gpu_hour=2.5,
                  watts_per_gpu=700.0),
         PoolCost("b", "L40S", replicas=4, gpus_per_replica=1, usd_per_gpu_hour=1.0,
                  watts_per_gpu=350.0)]


def test_cost_adds_up_and_per_million_tokens():
    rng = np.random.default_rng(6)
    df = make_records(rng, 1000, rate_per_s=10.0, output_tokens=100, prompt_tokens=400)
    window = (0.0, 50.0)
    s = summarize(make_result(df, window), [], POOLS)
    usd_h = 3 * 2 * 2.5 + 4 * 1 * 1.0
    c = s["cost"]
    assert c["fleet_usd_per_hour"] == pytest.approx(usd_h)
    assert c["usd_per_month"] == pytest.approx(usd_h * HOURS_PER_MONTH)
    assert c["pools"]["a"]["usd_per_hour"] == pytest.approx(15.0)
    w = df[df["arrival_s"] < 50.0]
    n = len(w)
    out_tok_s = 100 * n / (w["finish_s"].max() - w["arrival_s"].min())  # bench serve's span
    assert c["usd_per_1m_output_tokens"] == pytest.approx(usd_h / (out_tok_s * 3600) * 1e6)
    assert c["usd_per_1m_total_tokens"] == pytest.approx(
        usd_h / (5 * out_tok_s * 3600) * 1e6)
    kw = (3 * 2 * 700 + 4 * 350) / 1000
    assert s["energy"]["kwh_per_1m_output_tokens"] == pytest.approx(
        kw / (out_tok_s * 3600) * 1e6)
    assert "upper bound at TDP" in s["energy"]["note"]
    # every request went to pool a: its own $/1M out, pool b served nothing
    assert c["pools"]["a"]["usd_per_1m_output_tokens"] == pytest.approx(
        15.0 / (out_tok_s * 3600) * 1e6)
    assert c["pools"]["b"]["usd_per_1m_output_tokens"] is None


def test_energy_none_when_a_pool_lacks_watts_and_cost_none_without_throughput():
    rng = np.random.default_rng(7)
    pools = [POOLS[0], PoolCost("b", "X", 1, 1, 1.0, None)]
    df = make_records(rng, 50)
    s = summarize(make_result(df, (0.0, 1e6)), [], pools)
    assert s["energy"]["kwh_per_1m_output_tokens"] is None
    assert s["energy"]["fleet_kw"] is None
    assert s["cost"]["usd_per_1m_output_tokens"] is not None
    s = summarize(make_result(make_records(rng, 50, status="error"), (0.0, 1e6)), [], POOLS)
    assert s["cost"]["fleet_usd_per_hour"] == pytest.approx(19.0)
    assert s["cost"]["usd_per_1m_output_tokens"] is None  # no ok tokens
    assert s["energy"]["kwh_per_1m_output_tokens"] is None


# --- ITL histogram -------------------------------------------------------------------

def _within_one_bucket(a: float, b: float) -> bool:
    return 1 / BUCKET_RATIO <= a / b <= BUCKET_RATIO


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_itl_hist_percentiles_within_one_bucket_of_numpy(seed):
    rng = np.random.default_rng(seed)
    gaps = [rng.lognormal(np.log(0.02), 0.4, 30_000), rng.gamma(2.0, 0.004, 5_000)]
    hist = np.stack([np.bincount(itl_bucket(g), minlength=len(ITL_EDGES_S) - 1)
                     for g in gaps])
    df = make_records(rng, 10, classes=("chat", "code"))
    s = summarize(make_result(df, (0.0, 1e6), ["chat", "code"], hist), [], [])
    for got, g in [(s["classes"]["chat"]["itl_s"], gaps[0]),
                   (s["classes"]["code"]["itl_s"], gaps[1]),
                   (s["overall"]["itl_s"], np.concatenate(gaps))]:
        assert got["n"] == g.size
        for label, q in [("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)]:
            assert _within_one_bucket(got[label], np.percentile(g, q)), (label, got[label])
        assert _within_one_bucket(got["mean"], g.mean())


def test_itl_hist_interpolates_inside_the_bucket():
    # all gaps in one bucket, spaced evenly in log: geometric interpolation is
    # exact up to rounding (arithmetic would be off by ~0.1%, the edges by ~6%)
    lo, hi = ITL_EDGES_S[60], ITL_EDGES_S[61]
    n = 4001
    g = lo * (hi / lo) ** ((np.arange(n) + 0.5) / n)
    counts = np.bincount(itl_bucket(g), minlength=len(ITL_EDGES_S) - 1)
    assert counts[60] == n
    got = hist_percentiles(counts)
    for label, q in [("p50", 50), ("p90", 90), ("p95", 95), ("p99.9", 99.9)]:
        assert got[label] == pytest.approx(np.percentile(g, q), rel=1e-4)
    assert got["p50"] == pytest.approx(np.sqrt(lo * hi), rel=1e-6)
    assert hist_percentiles(np.zeros(len(ITL_EDGES_S) - 1))["p50"] is None


# --- Little's law -----------------------------------------------------------------------

def mm1_records(rng: np.random.Generator, n: int, lam: float, mu: float) -> pd.DataFrame:
    """FIFO single server, Poisson arrivals, exponential service (Lindley)."""
    arrival = np.cumsum(rng.exponential(1 / lam, n))
    service = rng.exponential(1 / mu, n)
    start = np.empty(n)
    finish_prev = 0.0
    for i in range(n):
        start[i] = max(arrival[i], finish_prev)
        finish_prev = start[i] + service[i]
    finish = start + service
    df = make_records(rng, n, output_tokens=2)
    df["arrival_s"], df["first_token_s"], df["finish_s"] = arrival, start, finish
    return derive_latencies(df.drop(columns=["ttft_s", "tpot_s", "e2e_s"]))


def test_littles_law_mm1():
    lam, mu = 1.0, 1 / 0.7
    df = mm1_records(np.random.default_rng(9), 20_000, lam, mu)
    window = (float(df["arrival_s"].iloc[1000]), float(df["arrival_s"].iloc[19_000]))
    lit = summarize(make_result(df, window), [], [])["little"]
    assert lit["L"] == pytest.approx(lit["lambda_W"], rel=0.05)
    assert lit["rel_gap"] < 0.05
    assert lit["W_s"] == pytest.approx(1 / (mu - lam), rel=0.15)  # M/M/1 theory
    assert lit["L"] == pytest.approx(0.7 / 0.3, rel=0.15)


# --- utilization ---------------------------------------------------------------------------

def test_utilization_per_pool_and_fleet():
    reps = [ReplicaStats("a", "a/0", "H100", 2, kv_blocks_total=100, busy_s=50.0,
                         flops=1e15, bytes=2e13, kv_block_s=2500.0, peak_flops=1e14,
                         hbm_bw_bytes_s=1e12),
            ReplicaStats("a", "a/1", "H100", 2, kv_blocks_total=100, busy_s=90.0,
                         flops=3e15, bytes=4e13, kv_block_s=7500.0, peak_flops=1e14,
                         hbm_bw_bytes_s=1e12),
            ReplicaStats("b", "b/0", "L40S", 1, kv_blocks_total=50, busy_s=10.0)]
    df = make_records(np.random.default_rng(10), 10)
    u = summarize(make_result(df, (0.0, 100.0), replicas=reps), [], [])["utilization"]
    a = u["pools"]["a"]
    assert a["busy_frac"] == pytest.approx(0.7)
    assert (a["busy_frac_min"], a["busy_frac_max"]) == pytest.approx((0.5, 0.9))
    assert a["mfu"] == pytest.approx(4e15 / (2e14 * 100))
    assert a["mbu"] == pytest.approx(6e13 / (2e12 * 100))
    assert a["kv_usage"] == pytest.approx(0.5)
    assert u["pools"]["b"]["mfu"] is None  # no peak known
    assert u["fleet"]["busy_frac"] == pytest.approx(150 / 300)
    empty = summarize(make_result(df, (0.0, 100.0)), [], [])["utilization"]
    assert empty["pools"] == {} and empty["fleet"]["busy_frac"] is None


def test_busy_fraction_never_exceeds_one():
    """A step that ends in the window counts whole: 100.1 s busy in a 100 s window is 100%."""
    reps = [ReplicaStats("a", "a/0", "H100", 1, kv_blocks_total=10, busy_s=100.1),
            ReplicaStats("a", "a/1", "H100", 1, kv_blocks_total=10, busy_s=60.0)]
    df = make_records(np.random.default_rng(10), 10)
    a = summarize(make_result(df, (0.0, 100.0), replicas=reps), [], [])["utilization"]["pools"]["a"]
    assert a["busy_frac_max"] == 1.0 and a["busy_frac"] == pytest.approx(160 / 200)


# --- rendering and JSON ------------------------------------------------------------------------

def _mixed_summary() -> dict:
    rng = np.random.default_rng(11)
    df = make_records(rng, 3000, classes=("chat", "summarize", "agent-tools"),
                      rate_per_s=20.0)
    df.loc[::7, "status"] = "timeout"
    df.loc[::7, ["first_token_s", "finish_s"]] = np.nan
    df = derive_latencies(df.drop(columns=["ttft_s", "tpot_s", "e2e_s"]))
    hist = np.zeros((3, len(ITL_EDGES_S) - 1), np.int64)
    hist[0, 50:60] = 100  # "summarize" and "agent-tools" have no ITL samples
    slos = [ClassSlo("chat", {"ttft_s": {"p99": 0.5}, "tpot_s": {"p50": 0.05}}, 90.0),
            ClassSlo("summarize", {"e2e_s": {"p99": 100.0}}, None),
            ClassSlo("ghost", {"ttft_s": {"p99": 1.0}}, 99.0)]  # no traffic at all
    reps = [ReplicaStats("a", "a/0", "H100", 2, 100, busy_s=10.0, peak_flops=1e15,
                         hbm_bw_bytes_s=1e12, flops=1e16, bytes=1e13, kv_block_s=10.0)]
    return summarize(make_result(df, (10.0, 140.0), ["chat", "summarize", "agent-tools"],
                                 hist, reps), slos, POOLS)


def test_render_summary_to_text():
    s = _mixed_summary()
    console = Console(record=True, width=100, color_system=None)
    console.print(render_summary(WindowSummary.model_validate(s)))
    text = console.export_text()
    for name in [*s["classes"], "all", "a", "b"]:
        assert name in text
    assert "nan" not in text.lower()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "upper bound at TDP" in text


    assert "upper bound at TDP" in text


def test_a_summary_on_an_80_column_terminal_cuts_no_cell():
    """At 80 columns the latency and fleet tables do not fit (rich used to shrink every column and cut
    numbers: "27,8…"); they are printed turned on their side instead, every value whole. At 200 columns
    they print as they are (a header row with the metrics across)."""
    s = WindowSummary.model_validate(_mixed_summary())
    narrow = Console(record=True, width=80, color_system=None)
    narrow.print(render_summary(s))
    text = narrow.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    rows = [line for line in text.splitlines() if line.startswith("│ TTFT p99 ms")]
    assert len(rows) == 1  # turned: the metric leads a row, one value per class and 'all'
    assert rows[0].count("│") == len(s.classes) + 3
    assert "│ busy min-max %" in text  # a header's lines joined at its hyphen
    wide = Console(record=True, width=200, color_system=None)
    wide.print(render_summary(s))
    wide_text = wide.export_text()
    assert "│ TTFT p99 ms" not in wide_text and "TTFT p99" in wide_text


def test_summary_is_json_ready():
    s = _mixed_summary()
    back = json.loads(json.dumps(s, allow_nan=False))
    assert back["classes"]["ghost"]["counts"]["total"] == 0
    assert back["classes"]["ghost"]["slo_met"] is False
    assert back["classes"]["summarize"]["itl_s"]["p50"] is None


def test_empty_records_do_not_crash():
    df = make_records(np.random.default_rng(12), 0)
    s = summarize(make_result(df, (0.0, 10.0), ["chat"]), [CHAT_SLO], POOLS)
    json.dumps(s, allow_nan=False)
    assert s["overall"]["ttft_s"]["p50"] is None and s["overall"]["attainment_pct"] is None
    assert s["little"]["L"] == 0.0 and s["little"]["rel_gap"] is None
    Console(record=True, width=100).print(render_summary(WindowSummary.model_validate(s)))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60),
       frac_err=st.floats(0, 1), ttft_limit=st.floats(0.01, 5))
def test_goodput_never_exceeds_throughput(seed, n, frac_err, ttft_limit):
    rng = np.random.default_rng(seed)
    df = make_records(rng, n)
    df.loc[rng.random(n) < frac_err, "status"] = "error"
    s = summarize(make_result(df, (0.0, 5.0), ["chat"]),
                  [ClassSlo("chat", {"ttft_s": {"p99": ttft_limit}}, 50.0)], POOLS)
    o = s["overall"]
    assert (o["goodput_rps"] or 0.0) <= (o["requests_per_s"] or 0.0) + 1e-12
    att = o["attainment_pct"]
    assert att is None or 0.0 <= att <= 100.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in _leaves(s))
    json.dumps(s, allow_nan=False)


def _leaves(d):
    if isinstance(d, dict):
        for v in d.values():
            yield from _leaves(v)
    else:
        yield d
