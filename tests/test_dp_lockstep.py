"""Data-parallel MoE ranks step in lock step (sim.engine.dp_group): every step of a group lasts the
slowest rank's step, and an idle rank runs a dummy batch. The ranks here are timed by a hand-made step
time (``_LinearSteps``: 10 ms + 0.01 ms per prefill token + 1 ms per decode sequence, no context term)
so that every expected time below is worked by hand from it; the API server's admission work is
switched off (``front_ends``) so that requests reach the engine when they arrive."""

from __future__ import annotations

import numpy as np
import pytest

from sim.engine.dp_group import DPGroup
from sim.engine.fleet import Fleet, simulate
from sim.perf.perf_model import PerfModel
from sim.workload.generate import Workload
from tests.factories import make_scenario

A_S, PER_PREFILL_TOK_S, PER_DECODE_S = 0.010, 0.00001, 0.001


class _Coeffs:
    t_request_s = 0.0


class _LinearSteps(PerfModel):
    """A step of p prefill tokens and n decodes takes A + p·PER_PREFILL_TOK + n·PER_DECODE seconds.
    (A PerfModel whose methods are all replaced: the compiled replica holds a PerfModel.)"""

    def __init__(self) -> None:
        pass  # no GPU or model: every method the replica calls is defined here

    coeffs = _Coeffs()

    def step_time_s(self, p, attn, n, ctx, num_prefill_seqs=0, queries_per_decode=1):
        return A_S + p * PER_PREFILL_TOK_S + n * PER_DECODE_S

    def decode_affine(self, n):
        return A_S + n * PER_DECODE_S, 0.0

    def step_flops(self, p, attn, n, ctx, num_prefill_seqs=0, queries_per_decode=1):
        return 0.0

    def step_bytes(self, p, attn, n, ctx, num_prefill_seqs=0, queries_per_decode=1):
        return 0.0

    def step_cpu_s(self, n, chunks, p, queries_per_decode=1):
        return 0.0


class _ByRid:
    """A router that sends request ``rid`` to rank ``to[rid]`` of the eligible list."""

    def __init__(self, to):
        self.to = to

    def choose(self, eligible, rid, key, now):
        return eligible[self.to[rid]]


def _dp2_scenario(max_num_seqs: int = 256, data_parallel: int = 2, model: str = "qwen3-30b-a3b"):
    return make_scenario(
        pool={
            "model": model,
            "data_parallel": data_parallel,
            "expert_parallel": data_parallel > 1 and model != "llama-3.1-8b",
            "engine": {"max_model_len": 8192, "max_num_seqs": max_num_seqs, "enable_prefix_caching": False},
        },
        traffic={"duration_s": 100, "warmup_s": 0, "cooldown_s": 0},
    )


def _workload(prompts, outputs, arrivals=None) -> Workload:
    n = len(prompts)
    return Workload(
        np.zeros(n) if arrivals is None else np.asarray(arrivals, dtype=np.float64),
        np.zeros(n, np.int16),
        np.asarray(prompts, np.int32),
        np.asarray(outputs, np.int32),
        np.zeros(n + 1, np.int64),
        np.zeros(0, np.int64),
        np.zeros(0, np.int32),
        ["chat"],
    )


def _run(wl: Workload, to, *, dummy_s: float = 0.0, exact_steps: bool = False, **sc_kw):
    fleet = Fleet(_dp2_scenario(**sc_kw), wl, exact_steps=exact_steps)
    for rep in fleet.replicas:
        rep.perf = _LinearSteps()
    fleet.front_ends = [None] * len(fleet.replicas)
    for rep in fleet.replicas:
        rep.fe = None  # nor do they stream through one (a first token would wait for its step's outputs)
    fleet.router = _ByRid(to)
    for group in fleet.groups:
        group.dummy_s = dummy_s
    return fleet.run()


def test_two_ranks_with_different_batches_both_step_the_slower_ones_time():
    """Rank 0 prefills 1,000 tokens (10 + 10 = 20 ms), rank 1 100 tokens (10 + 1 = 11 ms), both at 0: the
    first step lasts 20 ms on both, so both first tokens are at 0.020 s. Then each decodes its one
    sequence (11 ms on both ranks): tokens at 0.031 and 0.042 s, the third and last. On its own clock
    rank 1 would have had its first token at 0.011 s and finished at 0.033 s."""
    res = _run(_workload([1000, 100], [3, 3]), [0, 1], dummy_s=0.0)
    df = res.requests.set_index("request_id")
    assert list(df.replica) == ["p/0.dp0", "p/0.dp1"]
    assert df.first_token_s.tolist() == pytest.approx([0.020, 0.020], abs=1e-12)
    assert df.finish_s.tolist() == pytest.approx([0.042, 0.042], abs=1e-12)
    # both ranks were in a step the whole 42 ms
    assert [r.busy_s for r in res.replicas] == pytest.approx([0.042, 0.042], abs=1e-12)


def test_decode_steps_of_unequal_batches_last_the_larger_batchs_step():
    """Rank 0 decodes 3 sequences (10 + 3 = 13 ms a step), rank 1 one (11 ms): after a first step of
    prefills (rank 0: 3 x 10 tokens, 10.3 ms; rank 1: 10 tokens, 10.1 ms -> 10.3 ms), every step lasts
    13 ms, so rank 1's request with 5 output tokens ends at 0.0103 + 4 x 0.013 = 0.0623 s (0.0501 s
    alone), and the same with one event per step (--exact-steps)."""
    wl = _workload([10, 10, 10, 10], [5, 5, 5, 5])
    for exact in (False, True):
        df = _run(wl, [0, 0, 0, 1], exact_steps=exact).requests
        assert df.finish_s.tolist() == pytest.approx([0.0623] * 4, abs=1e-12)
        assert df.first_token_s.tolist() == pytest.approx([0.0103] * 4, abs=1e-12)


def test_an_idle_rank_runs_the_dummy_batch_and_a_long_dummy_sets_the_pace():
    """Only rank 0 has a request (100-token prompt: 11 ms; decodes: 11 ms); rank 1 runs a dummy batch of
    30 ms (longer than any step here, to make it visible): each step lasts max(11, 30) = 30 ms, the first
    token at 0.030 s, the second and last at 0.060 s; rank 1 is in a (dummy) step all 60 ms. With a
    dummy of 2 ms the busy rank sets the pace: 0.011 and 0.022 s."""
    res = _run(_workload([100], [2]), [0], dummy_s=0.030)
    assert res.requests.first_token_s.iloc[0] == pytest.approx(0.030, abs=1e-12)
    assert res.requests.finish_s.iloc[0] == pytest.approx(0.060, abs=1e-12)
    assert [r.busy_s for r in res.replicas] == pytest.approx([0.060, 0.060], abs=1e-12)
    assert [r.steps for r in res.replicas] == [2, 0]  # a dummy batch is no engine step of its own
    short = _run(_workload([100], [2]), [0], dummy_s=0.002).requests
    assert short.finish_s.iloc[0] == pytest.approx(0.022, abs=1e-12)


def test_a_request_arriving_during_a_step_waits_for_the_next_one():
    """Rank 0 prefills 1,000 tokens from 0 to 0.020 s; a request reaches the idle rank 1 at 0.005 s, while
    rank 1 runs a dummy batch (1 ms, shorter): it starts at the next step, 0.020 s (its prefill of 100
    tokens, 11 ms, is then shorter than rank 0's decode, 11 ms: the step lasts 11 ms), first token at 0.031 s."""
    res = _run(_workload([1000, 100], [3, 1], arrivals=[0.0, 0.005]), [0, 1], dummy_s=0.001)
    assert res.requests.first_token_s.tolist() == pytest.approx([0.020, 0.031], abs=1e-12)


def test_saturated_dp2_group_throughput_is_set_by_the_fuller_rank():
    """Saturation by hand: rank 0 holds 8 requests, rank 1 holds 2, all 1-token prompts of 101 output
    tokens arriving at 0. First step: prefills of 8 and 2 tokens, max(10.08, 10.02) = 10.08 ms. Then 100
    decode steps of max(10 + 8, 10 + 2) = 18 ms: everything ends at 0.01008 + 1.8 = 1.81008 s, and the
    group delivers 10 x 101 / 1.81008 = 557.99 output tokens/s. Stepping on its own clock, rank 1 would
    have ended at 0.01002 + 100 x 0.012 = 1.21002 s."""
    res = _run(_workload([1] * 10, [101] * 10), [0] * 8 + [1] * 2)
    df = res.requests
    assert df.finish_s.tolist() == pytest.approx([1.81008] * 10, abs=1e-9)
    tok_s = df.output_tokens.sum() / df.finish_s.max()
    assert tok_s == pytest.approx(557.986, abs=1e-3)


def test_only_data_parallel_moe_replicas_step_in_lock_step():
    """Groups are the data-parallel ranks of an MoE model's replicas: two replicas of DP2 give two
    groups of two consecutive ranks; a dense model with data_parallel 2 (independent engines in vLLM)
    and an MoE model with data_parallel 1 have none."""
    sc = make_scenario(
        pool={"model": "qwen3-30b-a3b", "data_parallel": 2, "replicas": 2, "engine": {"max_model_len": 8192}}
    )
    fleet = Fleet(sc, _workload([10], [2]))
    assert [[r.name for r in g.ranks] for g in fleet.groups] == [["p/0.dp0", "p/0.dp1"], ["p/1.dp0", "p/1.dp1"]]
    assert all(isinstance(g, DPGroup) and r.group is g for g in fleet.groups for r in g.ranks)
    # the dummy batch is vLLM's execute_dummy_batch: a one-token decode forward of the pool's model
    perf = fleet.pools[0].perf
    assert fleet.groups[0].dummy_s == perf.step_time_s(0, 0.0, 1, 1)
    assert Fleet(_dp2_scenario(model="llama-3.1-8b"), _workload([10], [2])).groups == []
    assert Fleet(_dp2_scenario(data_parallel=1), _workload([10], [2])).groups == []


def test_lock_step_records_are_reproducible_and_fast_forward_equals_exact_steps():
    """A DP2 + EP MoE scenario with the real step times: the same seed gives the same records, and
    the ranks' steps are one event each either way (fast-forward is off for a lock-step group)."""
    sc = make_scenario(
        pool={"model": "qwen3-30b-a3b", "data_parallel": 2, "expert_parallel": True, "engine": {"max_model_len": 8192}},
        traffic={"duration_s": 20, "warmup_s": 2, "arrival": {"process": "poisson", "rate_rps": 8}},
    )
    a, b = simulate(sc), simulate(sc, exact_steps=True)
    assert a.requests.equals(b.requests) and a.timeseries.equals(b.timeseries)
    assert np.array_equal(a.itl_hist, b.itl_hist)
    assert simulate(sc).requests.equals(a.requests)
