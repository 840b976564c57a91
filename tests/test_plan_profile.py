"""`plan` on fitted traffic (issue 28 item 4): a rate profile's peak (the mean x the highest
factor; the classes' own processes summed bin by bin), the peak window where the profile
peaks, scaling that keeps the shape, surges that follow the profile and keep batches, and a
`traffic fit` -> `plan` run end to end. Every expected value is worked out by hand from the
profile (factors are rescaled to mean 1: f_i / mean(f))."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.analysis.peak import apply_window, plan_window
from sim.analysis.rates import base_rate_rps, with_rate
from sim.analysis.replications import ClassNeed
from sim.cli import main
from sim.errors import FleetcastError
from sim.scenario.events import SurgeEvent
from sim.scenario.spec import scenario_from_dict
from sim.workload.spec import TrafficSpec
from sim.workload.surges import _surge_traffic, with_surges
from tests.factories import scenario_dict

LENGTHS = {
    "prompt_tokens": {"dist": "uniform", "min": 16, "max": 1500},
    "output_tokens": {"dist": "uniform", "min": 1, "max": 300},
}


def _cls(name: str, **extra) -> dict:
    return {"name": name, **LENGTHS, **extra}


def _data(arrival: dict, classes: list[dict] | None = None, warmup_s: float = 0.0, events=None) -> dict:
    d = scenario_dict(
        traffic={"duration_s": 2000, "warmup_s": warmup_s, "arrival": arrival, "classes": classes or [_cls("chat")]}
    )
    if events:
        d["events"] = events
    return d


def _base(d: dict) -> tuple[dict, float]:
    sc = scenario_from_dict(d)
    return sc.model_dump(mode="json", exclude={"plan"}), base_rate_rps(sc)


# factors [1, 2, 3, 2] have mean 2: rates 10 x [0.5, 1, 1.5, 1] = [5, 10, 15, 10] req/s, one
# hour each. start_s 1800: run time t is in bin (t + 1800) // 3600, so bin 2 (the peak, 15
# req/s) covers run times [5400, 9000), centre 7200.
ONE = {"process": "poisson", "rate_rps": 10, "profile": {"bin_s": 3600, "factors": [1, 2, 3, 2], "start_s": 1800}}


def test_profiled_peak_rate_and_window_by_hand():
    base, peak = _base(_data(ONE))
    assert peak == pytest.approx(15.0)
    win = plan_window(base, [], duration_s=None, window_start_s=None)
    assert win.kind == "peak-bin"
    assert win.center_s == pytest.approx(7200.0) and win.peak_s == pytest.approx(5400.0)
    # planned at 30 req/s (twice the scenario's peak): every rate doubles, the window is the
    # peak bin, its mean the peak
    length, mean, kind = win.length_s(30.0)
    assert (length, mean, kind) == (pytest.approx(3600.0), pytest.approx(30.0), "peak-bin")
    data, desc = apply_window(with_rate(base, 30.0), win, 30.0)
    a = data["traffic"]["arrival"]
    assert a["rate_rps"] == pytest.approx(20.0) and a["profile"]["factors"] == [1, 2, 3, 2]
    # the run starts at the window's start (no warm-up): 1800 + 5400 = 7200, the peak bin's start
    assert a["profile"]["start_s"] == pytest.approx(7200.0)
    assert desc["start_s"] == pytest.approx(5400.0) and desc["window_s"] == pytest.approx(3600.0)
    assert desc["mean_rate_rps"] == pytest.approx(30.0) and desc["peak_rate_rps"] == pytest.approx(30.0)
    # the generated run holds the peak rate: 20 x 1.5 = 30 req/s over the first 20 s
    spec = TrafficSpec.model_validate({**data["traffic"], "duration_s": 400})
    assert spec.arrival.profile.factor_at(np.array([0.0, 3599.0]))[0] == pytest.approx(1.5)


def test_warmup_precedes_the_window_on_the_profile():
    """With a 600 s warm-up the run starts 600 s before the peak bin: 1800 + 5400 - 600 = 6600."""
    base, _ = _base(_data(ONE, warmup_s=600))
    win = plan_window(base, [], duration_s=None, window_start_s=None)
    data, desc = apply_window(with_rate(base, 15.0), win, 15.0)
    assert data["traffic"]["arrival"]["profile"]["start_s"] == pytest.approx(6600.0)
    assert data["traffic"]["duration_s"] == pytest.approx(600 + 3600)


def test_window_widens_when_the_peak_bin_has_too_few_samples():
    """A class needing 60,000 samples at 15 req/s needs 4,000 s: more than the 3,600 s bin, so
    the window widens around the peak (into 10 req/s neighbours) until it holds them: a window
    L centred on bin 2 has mean (3600 x 15 + (L - 3600) x 10) / L; L x mean = 60,000 gives
    L = (60,000 - 18,000) / 10 = 4,200 s, mean 60,000 / 4,200 = 14.29 req/s."""
    base, _ = _base(_data(ONE))
    need = [ClassNeed(name="chat", share=1.0, samples=60_000, q_pct=99.0, label="ttft_s p99")]
    win = plan_window(base, need, duration_s=None, window_start_s=None)
    length, mean, kind = win.length_s(15.0)
    assert kind == "peak-window"
    assert length == pytest.approx(4200.0, rel=0.03) and length * mean >= 60_000 * (1 - 1e-9)
    assert mean == pytest.approx(60_000 / 4200, rel=0.03)


def test_by_class_profiles_sum_bin_by_bin_not_peak_by_peak():
    """Class a: 4 req/s x [1, 3]/2 = [2, 6]; class b: 2 req/s x [3, 1]/2 = [3, 1] (one-hour bins).
    Together [5, 7]: the peak is 7 req/s in bin 1 (not 6 + 3 = 9)."""
    classes = [
        _cls("a", arrival={"process": "poisson", "rate_rps": 4, "profile": {"bin_s": 3600, "factors": [1, 3]}}),
        _cls("b", arrival={"process": "gamma", "cv": 2, "rate_rps": 2, "profile": {"bin_s": 3600, "factors": [3, 1]}}),
    ]
    base, peak = _base(_data({"process": "by_class"}, classes))
    assert peak == pytest.approx(7.0)
    win = plan_window(base, [], duration_s=None, window_start_s=None)
    assert (win.kind, win.center_s) == ("peak-bin", pytest.approx(5400.0))
    data, desc = apply_window(with_rate(base, 14.0), win, 14.0)
    got = [c["arrival"]["rate_rps"] for c in data["traffic"]["classes"]]
    assert got == [pytest.approx(8.0), pytest.approx(4.0)]  # x2, the mix kept
    assert [c["arrival"]["profile"]["start_s"] for c in data["traffic"]["classes"]] == [pytest.approx(3600.0)] * 2
    assert desc["mean_rate_rps"] == pytest.approx(14.0)


def test_by_class_hour_of_day_with_a_longer_profile_and_a_flat_class():
    """Class a: [2, 6] repeating every 2 h; class b: 1 req/s x [1, 1, 1, 5]/2 = [0.5, 0.5, 0.5,
    2.5] over 4 h; class c: no profile, 1 req/s. Over 4 h: [3.5, 7.5, 3.5, 9.5]: the peak is 9.5
    req/s in bin 3 ([10800, 14400), centre 12600)."""
    classes = [
        _cls("a", arrival={"process": "poisson", "rate_rps": 4, "profile": {"bin_s": 3600, "factors": [1, 3]}}),
        _cls("b", arrival={"process": "poisson", "rate_rps": 1, "profile": {"bin_s": 3600, "factors": [1, 1, 1, 5]}}),
        _cls("c", arrival={"process": "poisson", "rate_rps": 1}),
    ]
    base, peak = _base(_data({"process": "by_class"}, classes))
    assert peak == pytest.approx(9.5)
    win = plan_window(base, [], duration_s=None, window_start_s=None)
    assert win.center_s == pytest.approx(12600.0) and win.profile.period_s == 14400.0


def test_profiles_whose_periods_do_not_repeat_together_are_a_located_error():
    classes = [
        _cls("a", arrival={"process": "poisson", "rate_rps": 4, "profile": {"bin_s": 3600, "factors": [1, 3]}}),
        _cls("b", arrival={"process": "poisson", "rate_rps": 1, "profile": {"bin_s": 3600, "factors": [1, 1, 5]}}),
    ]
    with pytest.raises(FleetcastError, match=r"<scenario>, field traffic\.classes\[0\]\.arrival\.profile: its period .*7200"):
        _base(_data({"process": "by_class"}, classes))


def test_batches_count_in_requests_and_keep_the_peak():
    """rate_rps of a batch process is requests/s (events at rate / mean size): the planned peak
    is the request rate x the highest factor, whatever the batch size."""
    batched = {**ONE, "batch": {"mean_size": 4}}
    _, peak = _base(_data(batched))
    assert peak == pytest.approx(15.0)
    _, plain = _base(_data({"process": "gamma", "cv": 1.5, "rate_rps": 6, "batch": {"size_weights": [0, 1]}}))
    assert plain == pytest.approx(6.0)


def test_surge_plateau_on_a_profile_is_the_profile_times_the_multiplier_at_that_moment():
    """Rates [5, 10, 15, 10] (bins start at run times -1800, 1800, 5400, 9000 mod 14400). A x3
    surge over [0, 1800) (rate 5 there) gives 15 x ... no: 5 x 3 = 15, a tie with the plain peak;
    a x4 surge gives 20 > 15: the plateau is 20 / 15 of the peak, at run time 0. Applied, the
    process runs steadily at 20 req/s x (planned / 15), without its profile."""
    ev = [{"kind": "surge", "start_s": 0, "end_s": 1800, "factor": 4}]
    base, _ = _base(_data(ONE, events=ev))
    win = plan_window(base, [], duration_s=None, window_start_s=None)
    assert win.kind == "surge-plateau" and win.multiplier == pytest.approx(20 / 15) and win.peak_s == 0.0
    data, desc = apply_window(with_rate(base, 30.0), win, 30.0)
    a = data["traffic"]["arrival"]
    assert a["profile"] is None and a["rate_rps"] == pytest.approx(40.0)
    assert desc["peak_rate_rps"] == pytest.approx(40.0) and desc["mean_rate_rps"] == pytest.approx(40.0)
    # a x2 surge over the peak bin's second half (run times 7200-9000): 15 x 2 = 30, plateau x2
    ev2 = [{"kind": "surge", "start_s": 7200, "end_s": 9000, "factor": 2}]
    win2 = plan_window(_base(_data(ONE, events=ev2))[0], [], duration_s=None, window_start_s=None)
    assert win2.multiplier == pytest.approx(2.0) and win2.peak_s == pytest.approx(7200.0)


def test_surge_arrivals_follow_the_profile_and_keep_batches():
    """Profile [1, 3] on 600 s bins, 2 req/s mean: 1 req/s then 3 req/s. A x2 surge from 600 s
    (the busy bin) to 1200 s adds 3 req/s there, in batches of exactly 2."""
    arrival = {
        "process": "poisson",
        "rate_rps": 2,
        "profile": {"bin_s": 600, "factors": [1, 3]},
        "batch": {"size_weights": [0, 1]},
    }
    d = _data(arrival)
    d["traffic"]["duration_s"] = 1200
    sc = scenario_from_dict(d)
    ev = SurgeEvent.model_validate({"kind": "surge", "start_s": 600, "end_s": 1200, "factor": 2})
    extra = _surge_traffic(sc.traffic, ev)
    assert extra.arrival.profile.start_s == pytest.approx(600.0) and extra.arrival.batch is not None
    w = with_surges(sc.traffic, 5, Path("."), [(0, ev)])
    base_w = with_surges(sc.traffic, 5, Path("."), [])
    n_extra = len(w) - len(base_w)
    assert abs(n_extra - 1800) < 4 * np.sqrt(2 * 1800)  # batches of 2: variance 2 x the mean
    t = w.arrival_s[(w.arrival_s >= 600)]
    _, counts = np.unique(t, return_counts=True)
    assert counts.min() >= 2 and counts.max() % 2 == 0


def _fit_log(tmp_path: Path) -> Path:
    """26 hours of Poisson arrivals from a UTC midnight: 0.2 req/s, but 0.5 req/s in hours 13 and
    15 and 1.0 req/s in hour 14 (UTC); the first row at midnight, so the fitted hour-of-day
    profile starts there (start_s 0)."""
    rng = np.random.default_rng(3)
    parts = [np.zeros(1)]
    for h in range(26):
        rate = {13: 0.5, 14: 1.0, 15: 0.5}.get(h, 0.2)
        parts.append(h * 3600 + np.sort(rng.random(rng.poisson(rate * 3600)) * 3600))
    t = 19675 * 86400 + np.concatenate(parts)  # 2023-11-14 00:00 UTC
    rows = [f"{x:.3f},m1,t0,{rng.integers(50, 900)},{rng.integers(5, 300)}" for x in t]
    log = tmp_path / "gw.csv"
    log.write_text("timestamp,model,tenant,usage.prompt_tokens,usage.completion_tokens\n" + "\n".join(rows) + "\n")
    return log


def test_fit_then_plan_end_to_end(tmp_path):
    """`traffic fit --growth` then `plan` on the fitted traffic: the fitted minute profile peaks at
    hour 14 (1.0 req/s against 0.5 and 0.2), so the scenario's own peak is about 1.0 req/s (3,600
    expected arrivals in that hour: +-3 sd is +-0.05 req/s), the plan's window is that hour
    ([50400, 54000) s of the run's axis, which starts at midnight), and the growth forecast's
    months are planned on it."""
    out = tmp_path / "traffic.yaml"
    assert main(["traffic", "fit", str(_fit_log(tmp_path)), "--out", str(out), "--growth", "10:2"]) == 0
    fitted = yaml.safe_load(out.read_text())
    assert fitted["traffic"]["arrival"]["profile"]["bin_s"] == 3600
    sc_data = scenario_dict(traffic={**fitted["traffic"], "warmup_s": 10})
    sc_data["traffic"]["classes"][0]["slo"] = {"ttft_s": {"p99": 2.0}, "tpot_s": {"p99": 0.2}}
    sc_data["plan"] = {
        "candidates": {"gpu": ["h100-sxm"]},
        "demand": fitted["plan"]["demand"],
        "max_replicas": 4,
        "replications": 2,
        "tail_samples": 1,
        "headroom_steps": 0,
        "load_curve_pct": [100],
    }
    scen = tmp_path / "plan.yaml"
    scen.write_text(yaml.safe_dump(sc_data))
    own = base_rate_rps(scenario_from_dict({**sc_data, "plan": None}, path=scen))
    assert abs(own - 1.0) < 0.05
    start = fitted["plan"]["demand"]["start_rate_rps"]
    assert start == pytest.approx(
        own, rel=1e-3
    )  # fit's --growth starts from the same peak (factors written to 4 digits)
    assert main(["plan", str(scen), "--out", str(tmp_path / "o"), "--workers", "1"]) == 0
    doc = json.loads((tmp_path / "o" / "plan.json").read_text())
    w = doc["window"]
    assert w["kind"] == "peak-bin" and w["start_s"] == pytest.approx(50400.0) and w["window_s"] == pytest.approx(3600.0)
    assert w["peak_rate_rps"] == pytest.approx(start * 1.1) and w["mean_rate_rps"] == pytest.approx(start * 1.1)
    assert [g["rate_rps"] for g in doc["candidates"][0]["growth"]] == [pytest.approx(start), pytest.approx(start * 1.1)]


def test_user_window_off_the_profile_peak_is_warned():
    """plan.window_start_s 0 on rates [5, 10, 15, 10] (bins from run time -1800): the hour
    [0, 3600) holds 5 then 10 req/s, top 10/15 = 67% of the peak, mean 7.5/15 = 50%."""
    from sim.analysis.peak import window_warnings

    base, _ = _base(_data(ONE))
    win = plan_window(base, [], duration_s=3600, window_start_s=0.0)
    data, desc = apply_window(with_rate(base, 15.0), win, 15.0)
    assert desc["kind"] == "user" and desc["mean_rate_rps"] == pytest.approx(7.5)
    assert data["traffic"]["arrival"]["profile"]["start_s"] == pytest.approx(1800.0)
    (msg,) = window_warnings(win, desc, 0.0)
    assert "its highest rate is 67% of the peak and its mean 50%" in msg and "profile period" in msg


def test_by_class_surge_scales_each_class_and_shifts_its_profile():
    """A x3 surge from 1800 s: each class's extra process at 2 x its rate, its profile moved by
    1800 s (class a: 3600-s bins, start 0 -> 1800; class b without a profile: unchanged)."""
    classes = [
        _cls("a", arrival={"process": "poisson", "rate_rps": 4, "profile": {"bin_s": 3600, "factors": [1, 3]}}),
        _cls("b", arrival={"process": "gamma", "cv": 2, "rate_rps": 2}),
    ]
    sc = scenario_from_dict(_data({"process": "by_class"}, classes))
    ev = SurgeEvent.model_validate({"kind": "surge", "start_s": 1800, "end_s": 1900, "factor": 3})
    extra = _surge_traffic(sc.traffic, ev)
    a, b = (c.arrival for c in extra.classes)
    assert (a.rate_rps, a.profile.start_s, b.rate_rps, b.cv, b.profile) == (8.0, 1800.0, 4.0, 2.0, None)


def test_cli_plan_on_profiles_that_do_not_repeat_together_names_the_file_and_writes_nothing(tmp_path, capsys):
    classes = [
        _cls("a", arrival={"process": "poisson", "rate_rps": 4, "profile": {"bin_s": 3600, "factors": [1, 3]}}, slo={"ttft_s": {"p99": 2.0}}),
        _cls("b", arrival={"process": "poisson", "rate_rps": 1, "profile": {"bin_s": 3600, "factors": [1, 1, 5]}}),
    ]
    d = _data({"process": "by_class"}, classes)
    d["plan"] = {"candidates": {"gpu": ["h100-sxm"]}, "demand": {"peak_rate_rps": 5}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(d))
    assert main(["plan", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{path}, field traffic.classes[0].arrival.profile" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
