"""Synthetic traffic: arrival processes against theory, length distributions,
class shares, validation messages, prefix chains, determinism and common
random numbers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from sim.workload import distributions as d
from sim.errors import ScenarioError
from sim.rng import stream
from sim.workload.generate import generate_workload, prefix_key
from sim.workload.spec import SloSpec, TrafficSpec

HERE = Path(__file__).parent
CHAT = {"name": "chat", "prompt_tokens": {"dist": "fixed", "value": 100}, "output_tokens": {"dist": "fixed", "value": 10}}


def make_traffic(arrival=None, classes=None, **kw) -> TrafficSpec:
    """A valid TrafficSpec; override any part."""
    data = {"duration_s": 100.0, "arrival": arrival or {"process": "poisson", "rate_rps": 10}, "classes": classes or [CHAT]}
    data.update(kw)
    return TrafficSpec.model_validate(data)


def gaps_cv(t):
    g = np.diff(t)
    return g.mean(), g.std() / g.mean()


# ---------------------------------------------------------------- arrivals
def test_poisson_rate_and_cv():
    w = generate_workload(make_traffic({"process": "poisson", "rate_rps": 20}, duration_s=2500), 7, HERE)
    assert len(w) > 45_000
    assert len(w) / 2500 == pytest.approx(20, rel=0.03)
    mean_gap, cv = gaps_cv(w.arrival_s)
    assert cv == pytest.approx(1.0, rel=0.05)
    assert w.arrival_s.min() >= 0 and w.arrival_s.max() < 2500


def test_gamma_cv_is_burstiness():
    w = generate_workload(make_traffic({"process": "gamma", "rate_rps": 20, "cv": 3.0}, duration_s=2500), 7, HERE)
    mean_gap, cv = gaps_cv(w.arrival_s)
    assert mean_gap == pytest.approx(1 / 20, rel=0.05)
    assert cv == pytest.approx(3.0, rel=0.10)


def test_constant_gaps_are_equal():
    w = generate_workload(make_traffic({"process": "constant", "rate_rps": 4}, duration_s=10), 1, HERE)
    assert len(w) == 40
    np.testing.assert_allclose(np.diff(w.arrival_s), 0.25)
    assert w.arrival_s[0] == 0.0


def test_diurnal_peak_vs_trough_follows_curve():
    # a day compressed into 24000 s (1000 s per hour); trough at 0 h, peak at 12 h
    arrival = {"process": "diurnal", "rate_points": [[0, 10], [12, 50]], "day_length_s": 24000}
    w = generate_workload(make_traffic(arrival, duration_s=24000), 3, HERE)
    hour = w.arrival_s / 1000.0
    peak = np.sum((hour >= 11.5) & (hour < 12.5))
    trough = np.sum((hour >= 23.5) | (hour < 0.5))
    # the curve's own ratio, integrated independently of the implementation
    def rate(h):
        h = np.asarray(h) % 24
        return np.where(h <= 12, 10 + 40 * h / 12, 50 - 40 * (h - 12) / 12)
    grid = np.linspace(-0.5, 0.5, 10001)
    expected = rate(12 + grid).mean() / rate(grid).mean()
    assert peak / trough == pytest.approx(expected, rel=0.10)
    assert expected > 4  # the test would notice a flat process


def test_diurnal_start_hour_shifts_curve():
    spec = make_traffic({"process": "diurnal", "rate_points": [[0, 1], [6, 7]], "start_hour": 6}).arrival
    assert spec.rate_at([0.0])[0] == pytest.approx(7.0)
    assert spec.rate_at([86400 / 8])[0] == pytest.approx(7 - 6 * 3 / 18)  # 9 h: wrapping segment 6 h -> 24 h


# ------------------------------------------------------------ distributions
def test_lognormal_sample_mean_matches_analytic():
    dist = d.LogNormal.from_cv(1000, 1.0, 1, 8000)
    x = dist.sample(np.random.default_rng(1), 100_000)
    assert x.dtype == np.int64
    assert x.mean() == pytest.approx(dist.mean, rel=0.03)
    assert x.var() == pytest.approx(dist.variance, rel=0.05)
    assert dist.mean < 1000  # clipping at 8000 removes some of the tail


@pytest.mark.parametrize("dist", [d.Normal(100, 80, 20, 150), d.Uniform(5, 15), d.Fixed(7), d.LogNormal(50, 0.5)])
def test_clipped_moments_match_samples(dist):
    x = dist.sample(np.random.default_rng(2), 100_000)
    assert x.mean() == pytest.approx(dist.mean, rel=0.02)
    assert x.var() == pytest.approx(dist.variance, rel=0.05, abs=1e-9)


def test_clipping_honoured():
    x = d.Normal(100, 500, 20, 150).sample(np.random.default_rng(3), 10_000)
    assert x.min() == 20 and x.max() == 150
    assert d.LogNormal(10, 3.0, 1, 1000).sample(np.random.default_rng(3), 10_000).min() >= 1


def test_empirical_reproduces_frequencies():
    dist = d.Empirical([10, 10, 10, 20, 30, 30])
    x = dist.sample(np.random.default_rng(4), 60_000)
    freq = {v: np.mean(x == v) for v in (10, 20, 30)}
    assert freq[10] == pytest.approx(0.5, abs=0.01)
    assert freq[20] == pytest.approx(1 / 6, abs=0.01)
    assert freq[30] == pytest.approx(1 / 3, abs=0.01)
    assert dist.mean == pytest.approx(np.mean([10, 10, 10, 20, 30, 30]))


def test_empirical_from_file(tmp_path):
    (tmp_path / "lens.csv").write_text("id,n\n1,5\n2,5\n3,9\n")
    spec = {"name": "a", "prompt_tokens": {"dist": "empirical", "path": "lens.csv", "column": "n"},
            "output_tokens": {"dist": "fixed", "value": 1}}
    w = generate_workload(make_traffic(classes=[spec]), 1, tmp_path)
    assert set(np.unique(w.prompt_tokens)) == {5, 9}
    bad = {**spec, "prompt_tokens": {"dist": "empirical", "path": "nope.csv", "column": "n"}}
    with pytest.raises(ScenarioError, match=r"traffic\.classes\[0\]\.prompt_tokens\.path: file not found: .*nope\.csv"):
        generate_workload(make_traffic(classes=[bad]), 1, tmp_path)


# ---------------------------------------------------------- classes/shares
def two_classes(share_a=0.7, share_b=0.3, **extra):
    return [{**CHAT, "name": "a", "share": share_a, **extra}, {**CHAT, "name": "b", "share": share_b}]


def test_class_counts_follow_shares():
    w = generate_workload(make_traffic(classes=two_classes(), duration_s=2000), 5, HERE)
    n, n_a = len(w), int(np.sum(w.class_idx == 0))
    assert abs(n_a - 0.7 * n) < 3 * math.sqrt(n * 0.7 * 0.3)
    assert w.class_names == ["a", "b"]


def test_per_class_rates_sum_to_total():
    classes = [{**CHAT, "name": "a", "rate_rps": 6}, {**CHAT, "name": "b", "rate_rps": 2}]
    t = make_traffic({"process": "poisson"}, classes, duration_s=2000)
    assert t.total_rate_rps() == 8
    w = generate_workload(t, 5, HERE)
    assert len(w) / 2000 == pytest.approx(8, rel=0.03)
    assert np.mean(w.class_idx == 0) == pytest.approx(0.75, abs=0.015)


def test_shares_must_sum_to_one():
    with pytest.raises(ValidationError, match=r"sum to 0\.9 \(a=0\.6, b=0\.3\)"):
        make_traffic(classes=two_classes(0.6, 0.3))


@pytest.mark.parametrize("classes,arrival,pattern", [
    (two_classes()[:1] + [{**CHAT, "name": "b", "rate_rps": 1}], None, "not a mix"),
    ([CHAT, CHAT], None, "unique; repeated: chat"),
    ([CHAT, {**CHAT, "name": "b"}], None, "give every class a share"),
    ([CHAT], {"process": "poisson"}, "rate_rps is required"),
    ([{**CHAT, "rate_rps": 3}], {"process": "poisson", "rate_rps": 4}, "differs from the sum"),
    ([{**CHAT, "rate_rps": 3}], {"process": "diurnal", "rate_points": [[0, 1]]}, "use share"),
    ([{"name": "chat"}], None, "chat.prompt_tokens, chat.output_tokens"),
])
def test_inconsistent_classes_are_errors(classes, arrival, pattern):
    with pytest.raises(ValidationError, match=pattern):
        make_traffic(arrival, classes)


def test_unknown_dist_lists_valid_names():
    with pytest.raises(ValidationError) as e:
        make_traffic(classes=[{**CHAT, "prompt_tokens": {"dist": "lognorm", "mean": 5, "cv": 1}}])
    msg = str(e.value)
    assert "Did you mean 'lognormal'" in msg
    for name in ("fixed", "uniform", "normal", "lognormal", "empirical"):
        assert name in msg


def test_unknown_process_and_extra_keys_are_errors():
    with pytest.raises(ValidationError, match="Did you mean 'poisson'"):
        make_traffic({"process": "possion", "rate_rps": 1})
    with pytest.raises(ValidationError, match="rate_rsp"):
        make_traffic({"process": "poisson", "rate_rsp": 1})
    with pytest.raises(ValidationError, match="colour"):
        make_traffic(classes=[{**CHAT, "colour": "red"}])
    with pytest.raises(ValidationError, match="lognormal needs exactly one"):
        make_traffic(classes=[{**CHAT, "prompt_tokens": {"dist": "lognormal", "mean": 5, "cv": 1, "sigma": 1}}])


def test_windows_must_fit_duration():
    with pytest.raises(ValidationError, match="must be less than duration_s"):
        make_traffic(duration_s=100, warmup_s=60, cooldown_s=40)
    assert make_traffic(duration_s=100, warmup_s=10, cooldown_s=5).window() == (10, 95)


# -------------------------------------------------------------------- SLOs
def test_slo_thresholds_and_per_request_check():
    slo = SloSpec.model_validate({"ttft_s": {"p99": 2.0, "p50": 0.5}, "tpot_s": {"p99.9": 0.1}})
    assert slo.thresholds() == {"ttft_s": ((50.0, 0.5), (99.0, 2.0)), "tpot_s": ((99.9, 0.1),)}
    assert slo.request_thresholds() == {"ttft_s": 2.0, "tpot_s": 0.1}
    ok = slo.met([1.0, 2.5, 1.0, np.nan], [0.05, 0.05, np.nan, 0.05], [9, 9, 9, 9])
    assert ok.tolist() == [True, False, True, False]


def test_slo_rejects_bad_percentiles():
    with pytest.raises(ValidationError, match="Did you mean 'p99'"):
        SloSpec.model_validate({"ttft_s": {"p98": 1.0}})
    with pytest.raises(ValidationError):
        SloSpec.model_validate({"ttft_s": {"p99": 0}})


# ---------------------------------------------------------------- prefixes
def test_synthetic_prefix_chains():
    cls = {"name": "a", "prompt_tokens": {"dist": "uniform", "min": 1, "max": 1000},
           "output_tokens": {"dist": "fixed", "value": 1}, "prefix": {"tokens": 512, "num_distinct": 4}}
    w = generate_workload(make_traffic(classes=[cls], duration_s=500), 2, HERE)
    lens = np.diff(w.prefix_offsets)
    assert set(np.unique(lens)) == {0, 1}
    assert np.all(lens[w.prompt_tokens == 1] == 0)  # nothing left to share
    full = [w.chain(r)[0][0] for r in range(len(w)) if w.prompt_tokens[r] > 512]
    assert len(set(full)) == 4  # four distinct full-length prefixes
    for r in range(len(w)):
        keys, ends = w.chain(r)
        if len(keys):
            assert ends[0] == min(512, w.prompt_tokens[r] - 1)
            assert keys[0] in {prefix_key("a", i, int(ends[0])) for i in range(4)}


def test_zipf_prefix_popularity():
    cls = {**CHAT, "prompt_tokens": {"dist": "fixed", "value": 600}, "prefix": {"tokens": 512, "num_distinct": 3, "zipf_s": 2}}
    w = generate_workload(make_traffic(classes=[cls], duration_s=3000), 2, HERE)
    order = [prefix_key("chat", i, 512) for i in range(3)]
    freq = np.array([np.mean(w.prefix_keys == k) for k in order])
    np.testing.assert_allclose(freq, np.array([1, 1 / 4, 1 / 9]) / (1 + 1 / 4 + 1 / 9), atol=0.01)


# -------------------------------------------------- determinism and CRN
ARRAYS = ("arrival_s", "class_idx", "prompt_tokens", "output_tokens", "prefix_offsets", "prefix_keys", "prefix_end_tok")


def rich_traffic(prompt_a=None):
    a = {"name": "a", "share": 0.6, "prompt_tokens": prompt_a or {"dist": "lognormal", "mean": 300, "cv": 2},
         "output_tokens": {"dist": "normal", "mean": 100, "std": 50}, "prefix": {"tokens": 128, "num_distinct": 5}}
    b = {"name": "b", "share": 0.4, "prompt_tokens": {"dist": "uniform", "min": 1, "max": 400},
         "output_tokens": {"dist": "empirical", "values": [1, 2, 3]}}
    return make_traffic({"process": "gamma", "rate_rps": 30, "cv": 2}, [a, b], duration_s=200)


def test_same_seed_identical_different_seed_differs():
    w1, w2, w3 = (generate_workload(rich_traffic(), s, HERE) for s in (11, 11, 12))
    expected = {"arrival_s": np.float64, "class_idx": np.int16, "prompt_tokens": np.int32, "output_tokens": np.int32,
                "prefix_offsets": np.int64, "prefix_keys": np.int64, "prefix_end_tok": np.int32}
    for name in ARRAYS:
        assert getattr(w1, name).dtype == expected[name]
        assert getattr(w1, name).tobytes() == getattr(w2, name).tobytes(), name
    assert not np.array_equal(w1.arrival_s[:100], w3.arrival_s[:100])
    assert not np.array_equal(w1.prompt_tokens[:100], w3.prompt_tokens[:100])


def test_common_random_numbers_across_length_changes():
    base = generate_workload(rich_traffic(), 4, HERE)
    other = generate_workload(rich_traffic({"dist": "fixed", "value": 50}), 4, HERE)
    np.testing.assert_array_equal(base.arrival_s, other.arrival_s)
    np.testing.assert_array_equal(base.class_idx, other.class_idx)
    b = base.class_idx == 1
    np.testing.assert_array_equal(base.prompt_tokens[b], other.prompt_tokens[b])
    np.testing.assert_array_equal(base.output_tokens, other.output_tokens)
    assert not np.array_equal(base.prompt_tokens[~b], other.prompt_tokens[~b])


def test_streams_are_named():
    # the arrival times are exactly the "arrivals" stream's gamma gaps
    w = generate_workload(rich_traffic(), 9, HERE)
    gaps = stream(9, "arrivals").gamma(0.25, 4 / 30, 5)
    np.testing.assert_allclose(w.arrival_s[:5], np.cumsum(gaps))


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(0.5, 50), cv=st.floats(0.2, 4), seed=st.integers(0, 2**32),
       lo=st.integers(1, 50), span=st.integers(0, 3000), pre=st.integers(1, 2000))
def test_workload_invariants(rate, cv, seed, lo, span, pre):
    cls = {"name": "x", "prompt_tokens": {"dist": "lognormal", "mean": lo + span / 2 + 1, "sigma": 1, "min": lo, "max": lo + span},
           "output_tokens": {"dist": "uniform", "min": 1, "max": lo + span}, "prefix": {"tokens": pre, "num_distinct": 3}}
    w = generate_workload(make_traffic({"process": "gamma", "rate_rps": rate, "cv": cv}, [cls], duration_s=20), seed, HERE)
    assert np.all(np.diff(w.arrival_s) >= 0) and np.all((w.arrival_s >= 0) & (w.arrival_s < 20))
    assert np.all((w.prompt_tokens >= lo) & (w.prompt_tokens <= lo + span)) and np.all(w.output_tokens >= 1)
    assert w.prefix_offsets[0] == 0 and w.prefix_offsets[-1] == len(w.prefix_keys) and np.all(np.diff(w.prefix_offsets) >= 0)
    last = w.prefix_offsets[1:] - 1
    has = np.diff(w.prefix_offsets) > 0
    assert np.all(w.prefix_end_tok[last[has]] < w.prompt_tokens[has])
    assert np.all(w.prefix_end_tok >= 1)
    assert len(w.to_frame()) == len(w)


def test_length_substreams_are_independent():
    # same distribution for prompt and output of two classes: four different sequences
    same = {"dist": "uniform", "min": 1, "max": 10**6}
    classes = [{"name": n, "share": 0.5, "prompt_tokens": same, "output_tokens": same} for n in ("a", "b")]
    w = generate_workload(make_traffic(classes=classes), 1, HERE)
    seqs = [getattr(w, f)[w.class_idx == c][:20].tolist() for c in (0, 1) for f in ("prompt_tokens", "output_tokens")]
    assert len({tuple(s) for s in seqs}) == 4
