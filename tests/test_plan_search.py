"""The plan's search on synthetic verdicts: the bracketing count search, the month-by-month
growth split, sequential replications' stopping rule, the progress estimate and the risk
warnings. The verdicts here are a known threshold, so the right answer is known without the
code under test."""

from __future__ import annotations

import math
import time

import pytest

import sim.analysis.plan_search as plan_search
from sim.analysis.plan import cheapest_ids, not_searched_text, risk_warnings
from sim.analysis.plan_progress import FINISH_SIMULATIONS, PRIOR_SIMULATIONS, PlanTracker
from sim.analysis.plan_search import CandidateSearch, _growth
from sim.analysis.replications import early_verdict
from sim.cli.common import progress_bar
from sim.scenario.plan_spec import PlanSpec


class Threshold(CandidateSearch):
    """A search whose point (n, rate) meets the SLO when n >= ceil(rate / per_replica)."""

    def __init__(self, per_replica: float, cap: int) -> None:  # noqa: D107 (no simulation behind it)
        self.spec = PlanSpec(max_replicas=cap)
        self.per_replica = per_replica
        self.tested: list[tuple[int, float]] = []

    def need(self, rate: float) -> int:
        return math.ceil(rate / self.per_replica - 1e-9)

    def met(self, replicas: int, rate_rps: float, role: str) -> bool:
        if (replicas, rate_rps) not in self.tested:
            self.tested.append((replicas, rate_rps))
        return replicas >= self.need(rate_rps)

    def scenario(self, replicas, rate_rps, replication=0):
        return None


@pytest.mark.parametrize("need", [1, 2, 5, 13, 31, 32])
@pytest.mark.parametrize("guess", [None, 1, 2, 7, 13, 14, 40])
def test_fewest_finds_the_threshold_from_any_guess(need, guess):
    s = Threshold(per_replica=1.0, cap=32)
    assert s.fewest(float(need), guess=guess) == need
    assert (need, float(need)) in s.tested  # the answer itself was simulated (proven)
    if need > 1:
        assert (need - 1, float(need)) in s.tested  # and one fewer, which misses
    if guess == need and need > 1:
        assert len(s.tested) == 2  # a right guess costs two points


def test_fewest_over_the_cap_is_none_and_a_guess_over_it_tests_the_cap_first():
    s = Threshold(per_replica=1.0, cap=32)
    assert s.fewest(40.0, lo=1, guess=45) is None
    assert s.tested == [(32, 40.0)]


def test_fewest_between_known_bounds_does_not_simulate_the_upper_bound():
    s = Threshold(per_replica=1.0, cap=32)
    assert s.fewest(9.0, lo=3, hi=12, guess=12) == 9
    assert (12, 9.0) not in s.tested and (9, 9.0) in s.tested and (8, 9.0) in s.tested
    s = Threshold(per_replica=1.0, cap=32)
    assert s.fewest(5.0, lo=4, hi=5, guess=5) == 5 and s.tested == []  # nothing left to decide


@pytest.mark.parametrize("need", [2, 5, 13, 31])
@pytest.mark.parametrize("guess", [None, 2, 7, 13, 40])
@pytest.mark.parametrize("too_dear", [2, 4, 9, 20, 33])
def test_a_pruned_count_search_stops_at_a_true_lower_bound(need, guess, too_dear):
    """The floor sees only counts the search could still return: every count found not to
    meet lies below the answer, so a pruned search's least count is never above it; and a
    limit above the answer never prunes (the answer itself is found, unchanged)."""
    s = Threshold(per_replica=1.0, cap=32)
    seen: list[int] = []

    def floor(m: int) -> None:
        seen.append(m)
        if m >= too_dear:
            raise plan_search.Pruned(m)

    try:
        got = s.fewest(float(need), lo=1, guess=guess, floor=floor)
    except plan_search.Pruned as p:
        assert too_dear <= p.at_least <= need  # the pruned count is a true lower bound, and over the limit
    else:
        assert got == need  # not pruned: the same answer as without a floor
    assert all(m <= need for m in seen)  # every floor value is at most the answer


def test_cheapest_are_every_candidate_of_the_lowest_cost_and_the_rest_say_why():
    recs = [
        {"id": "a", "status": "ok", "usd_per_month": 200.0, "replicas": 2},
        {"id": "b", "status": "ok", "usd_per_month": 100.0, "replicas": 1},
        {"id": "c", "status": "cannot-meet-slo", "usd_per_month": None, "replicas": None},
        {"id": "d", "status": "ok", "usd_per_month": 100.0 * (1 + 1e-12), "replicas": 4},
    ]
    assert cheapest_ids(recs) == ["b", "d"]  # a tie (to rounding) is searched to the end too
    assert cheapest_ids([recs[2]]) == []
    text = not_searched_text(recs[0], recs[1])
    assert "$200/month" in text and "$100/month of b x 1" in text and "headroom" in text


@pytest.mark.parametrize("per_replica", [0.3, 0.55, 1.0, 4.5, 9.0])
def test_growth_months_are_the_fewest_at_each_rate(monkeypatch, per_replica):
    monkeypatch.setattr(plan_search, "pool_costs", lambda sc: [])
    rates = [4.0 * 1.15 ** m for m in range(6)]  # plan-example's growth forecast
    s = Threshold(per_replica=per_replica, cap=64)
    peak = max(rates)
    rows = _growth(s, s.need(peak), 0, peak, rates)
    assert [g["replicas"] for g in rows] == [s.need(r) for r in rates]
    months_below = [r for r in rates if r < peak]
    # the estimate is at most a count or two off here: n and n - 1, plus a step of the down-gallop
    assert len(s.tested) <= 3 * len(months_below)


def test_growth_with_spare_replicas_adds_them():
    s = Threshold(per_replica=1.0, cap=64)
    plan_search_pool_costs = plan_search.pool_costs
    try:
        plan_search.pool_costs = lambda sc: []
        rows = _growth(s, 8, 2, 8.0, [2.0, 4.0, 8.0])
    finally:
        plan_search.pool_costs = plan_search_pool_costs
    assert [g["replicas"] for g in rows] == [2 + 2, 4 + 2, 8 + 2]


def _summary(ttft_p99_s: float) -> dict:
    """One replication's summary: one class, one SLO item (p99 TTFT under 1 s)."""
    slo = {"ttft_s.p99": {"metric": "ttft_s", "percentile": "p99", "target_s": 1.0, "achieved_s": ttft_p99_s,
                          "met": ttft_p99_s <= 1.0}}
    counts = {"total": 300}
    cls = {"slo": slo, "ttft_s": {"n": 300, "p99": ttft_p99_s}, "attainment_target_pct": None,
           "attainment_pct": 100.0, "counts": counts}
    lat = {"p99": ttft_p99_s}
    return {"classes": {"chat": cls}, "cost": {"usd_per_1m_output_tokens": 1.0, "usd_per_1m_total_tokens": 1.0},
            "overall": {"attainment_pct": 100.0, "ttft_s": lat, "tpot_s": lat, "e2e_s": lat, "counts": counts}}


@pytest.mark.parametrize("values, stop", [
    # n = 2, sd 0.00707: 99% half-width t(0.995, 1) = 63.66 * 0.00707 / sqrt(2) = 0.318, all above 1 s: missed
    ([3.0, 3.01], True),
    # sd 0.0707: the 95% interval (3.05 +- 0.64) is above 1 s, the 99% one (3.05 +- 3.18) is not yet
    ([3.0, 3.1], False),
    # 95% interval 0.51 +- 0.13 is under 1 s, but a "met" needs a third replication
    ([0.5, 0.52], False),
    # n = 3, sd 0.01: 99.5% half-width t(0.9975, 2) = 14.09 * 0.01 / sqrt(3) = 0.081, under 1 s: met early
    ([0.5, 0.52, 0.51], True),
    # sd 0.1: 95% upper end 0.7 + 4.303 * 0.1 / sqrt(3) = 0.948 (met), 99.5% 0.7 + 0.813 = 1.51: not yet
    ([0.6, 0.7, 0.8], False),
    # sd 0.2: 95% upper end 0.7 + 0.497 = 1.197 straddles 1 s: open
    ([0.5, 0.9, 0.7], False),
])
def test_early_stop_rule(values, stop):
    assert early_verdict([_summary(v) for v in values]) is stop


def test_progress_estimate_uses_finished_candidates():
    seen = []
    t = PlanTracker(["a", "b", "c"], lambda done, total, text: seen.append((done, total, text)))
    t.report()
    # three counts at the prior, and one candidate's second stage
    assert seen[-1] == (0, 3 * PRIOR_SIMULATIONS + FINISH_SIMULATIONS, "candidates counted: 0 of 3")
    for _ in range(10):
        t.sim("a")
    t.done("a", 10)
    t.sim("b")
    # a ran 10; b and c are expected to run as many (b has 1 already); then the second stage
    assert seen[-1][:2] == (11, 10 + 10 + 10 + FINISH_SIMULATIONS)
    assert seen[-1][2] == "candidates counted: 1 of 3; on b"
    t.sim("a")  # a late event of a finished candidate does not count twice
    assert seen[-1][0] == 11
    for _ in range(19):
        t.sim("b")
    # b is past the mean (20 > 10): expected to run half as much again, 1.5 * 20 + 1 = 31; c still 10
    assert seen[-1][:2] == (30, 10 + 31 + 10 + FINISH_SIMULATIONS)
    t.done("b", 30)
    t.done("c", 0)  # a candidate that does not fit runs nothing
    assert seen[-1][:2] == (40, 40 + FINISH_SIMULATIONS)
    t.finish(["a", "b"])  # the two cheapest are searched to the end
    assert seen[-1] == (40, 40 + 2 * FINISH_SIMULATIONS, "candidates counted: 3 of 3; headroom and growth of "
                        "the cheapest: 0 of 2 done; on a, b")
    t.sim("a", 1)  # a late first-stage event after the count is done: not counted
    for _ in range(40):
        t.sim("a", 2)
    # a has run 40 of its second stage: half as much again, 1.5 * 40 + 1 = 61 > the prior of 50; b still 50
    assert seen[-1][:2] == (80, 40 + 61 + 50)
    for _ in range(20):
        t.sim("a", 2)
    assert seen[-1][:2] == (100, 40 + 91 + 50)  # 1.5 * 60 + 1
    t.done("a", 60, stage=2)
    t.done("b", 5, stage=2)
    assert seen[-1][:2] == (105, 105)  # complete: the total is what ran


def test_risk_warnings_flag_no_headroom_and_one_down():
    c = {"id": "x", "replicas": 2, "headroom_pct": 0.0, "headroom_interval_pct": [0.0, 12.5], "failures_down": 0,
         "failure": {"verdict": "missed", "running": 1, "stats": {"attainment_pct": 10.7}}}
    w = risk_warnings(c, 8.0)
    assert len(w) == 2
    assert "only 0.0% above the forecast peak of 8 req/s" in w[0] and "12.5%" in w[0]
    assert "1 of 2 running" in w[1] and "10.7%" in w[1] and "plan.failures.replicas_down" in w[1]
    c.update(headroom_pct=25.0, failure={"verdict": "met", "running": 1, "stats": {"attainment_pct": 99.0}})
    assert risk_warnings(c, 8.0) == []
    c.update(failures_down=1, failure={"verdict": "missed", "running": 2, "stats": {"attainment_pct": 50.0}})
    assert risk_warnings(c, 8.0) == []  # sized for failures already: n - 1 is not the fleet it promises


def test_piped_progress_repeats_during_a_long_silence(capsys):
    """One callback, then nothing for a while (a long simulation): lines keep coming."""
    with progress_bar("planning x", enabled=False, every_s=0.2, unit=" simulations", estimated=True) as bar:
        bar(3, 12, "candidates done: 0 of 2; on a")
        time.sleep(0.9)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(lines) >= 2
    assert all(x.startswith("planning x: 25% (3 of about 12 simulations), ") for x in lines)
    assert lines[-1].endswith("s left; candidates done: 0 of 2; on a")
