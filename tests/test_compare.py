"""``fleetcast compare``: variant parsing, paired statistics, common random
numbers (identical variants differ by exactly 0), a known-better variant is
reported better with significance, reproducibility by seed, stresses, and the
CLI's files."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from sim.analysis.compare import (
    METRICS, Variant, metric_values, paired_stats, parse_variant, run_compare, stress_overrides,
)
from sim.errors import FleetcastError
from tests.factories import make_scenario, scenario_dict

CLASSES = [
    {"name": "chat", "share": 0.7, "priority": 5, "prompt_tokens": {"dist": "uniform", "min": 16, "max": 1500},
     "output_tokens": {"dist": "uniform", "min": 1, "max": 300}, "slo": {"ttft_s": {"p99": 0.5}}},
    {"name": "batch", "share": 0.3, "prompt_tokens": {"dist": "fixed", "value": 2000},
     "output_tokens": {"dist": "fixed", "value": 100}},
]


@pytest.fixture
def scenario_file(tmp_path):
    """A tiny two-class scenario (20 s at 12 req/s on one H100 replica) on disk."""
    data = scenario_dict()
    data["traffic"] = {**data["traffic"], "arrival": {"process": "poisson", "rate_rps": 12}, "classes": CLASSES}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def rows_of(result, variant, cls="all"):
    return {r["metric"]: r for r in result.rows if r["variant"] == variant and r["class"] == cls}


# ------------------------------------------------------------- parsing
def test_parse_variant():
    assert parse_variant("fast:fleet.0.replicas=4") == Variant("fast", ("fleet.0.replicas=4",))
    v = parse_variant("p:fleet.0.policy.name=priority, fleet.0.classes=[chat,batch],router.name=random")
    assert v.overrides == ("fleet.0.policy.name=priority", "fleet.0.classes=[chat,batch]", "router.name=random")


@pytest.mark.parametrize("text, needle", [
    ("fleet.0.replicas=4", "no ':' found"),
    (":fleet.0.replicas=4", "variant name ''"),
    ("fast:", "variant 'fast': no KEY=VALUE"),
    ("fast:fleet.0.replicas", "variant 'fast': 'fleet.0.replicas' is not KEY=VALUE"),
    ("fast:=4", "variant 'fast'"),
    ("fast:fleet..replicas=4", "variant 'fast': key 'fleet..replicas'"),
    ("baseline:fleet.0.replicas=4", "reserved"),
])
def test_bad_variant_syntax(text, needle):
    with pytest.raises(FleetcastError) as info:
        parse_variant(text)
    assert needle in str(info.value)


def test_unknown_key_names_variant_and_key(scenario_file):
    with pytest.raises(FleetcastError, match=r"variant 'typo':.*fleet\.0\.replcas: unknown key"):
        run_compare(scenario_file, [parse_variant("typo:fleet.0.replcas=2")], 2)
    with pytest.raises(FleetcastError, match=r"variant 'neg':.*fleet\.0\.replicas"):
        run_compare(scenario_file, [parse_variant("neg:fleet.0.replicas=0")], 2)
    with pytest.raises(FleetcastError, match="repeated: a"):
        run_compare(scenario_file, [parse_variant("a:seed=1"), parse_variant("a:seed=2")], 2)


# ------------------------------------------------------------- statistics
def test_paired_stats_matches_paired_t():
    from scipy import stats

    b = [1.0, 2.0, 3.0, 5.0]
    v = [2.0, 4.0, 6.0, 6.5]
    s = paired_stats(b, v, lower_is_better=True)
    d = np.subtract(v, b)
    half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2.0
    assert s["n"] == 4 and s["diff_mean"] == pytest.approx(d.mean())
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert stats.ttest_rel(v, b).pvalue < 0.05 and s["significant"] is True and s["direction"] == "worse"
    # the CI excludes 0 exactly when the paired t test rejects at 5%
    v2 = [2.0, 4.0, 6.0, 5.5]
    assert stats.ttest_rel(v2, b).pvalue > 0.05 and paired_stats(b, v2, True)["significant"] is False
    assert paired_stats(b, v, lower_is_better=False)["direction"] == "better"
    # replications where either value is undefined are left out of the pairs
    s = paired_stats([1.0, None, 3.0], [2.0, 5.0, None], lower_is_better=True)
    assert s["n"] == 1 and s["ci_low"] is None and s["significant"] is None
    assert paired_stats([None], [None], True)["n"] == 0


def test_metric_values_reads_summary():
    from sim.analysis.forecast import forecast

    _, summary = forecast(make_scenario())
    vals = metric_values(summary)
    assert set(vals) == {"chat", "all"}
    assert vals["chat"]["ttft_p99_s"] == summary["classes"]["chat"]["ttft_s"]["p99"]
    assert vals["all"]["usd_per_1m_output_tokens"] == summary["cost"]["usd_per_1m_output_tokens"]
    assert "usd_per_1m_output_tokens" not in vals["chat"]


# ------------------------------------------------------------- comparisons
def test_identical_variant_gives_zero_difference(scenario_file):
    res = run_compare(scenario_file, [parse_variant("same:fleet.0.replicas=1")], 3)
    same = [r for r in res.rows if r["variant"] == "same"]
    assert len(same) == 2 * 8 + 10  # 8 metrics per class, 10 for "all" (cost per 1M tokens and per hour)
    for r in same:
        assert r["n"] == 3, r
        assert r["diff_mean"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0, r
        assert r["significant"] is False and r["direction"] == "same"
    raw = res.raw
    assert len(raw) == len(same) * 3 and (raw["diff"] == 0).all()


def test_more_replicas_is_better_with_significance(scenario_file):
    res = run_compare(scenario_file, [parse_variant("two:fleet.0.replicas=2")], 4)
    r = rows_of(res, "two")
    for metric in ("tpot_p50_s", "e2e_p50_s"):
        assert r[metric]["significant"] and r[metric]["direction"] == "better", r[metric]
        assert r[metric]["ci_high"] < 0
    # twice the GPUs for the same tokens: cost per token is significantly worse
    cost = r["usd_per_1m_output_tokens"]
    assert cost["significant"] and cost["direction"] == "worse"
    assert cost["variant_mean"] == pytest.approx(2 * cost["baseline_mean"], rel=0.05)


def test_reproducible_by_seed(scenario_file):
    variants = [parse_variant("two:fleet.0.replicas=2"), parse_variant("rr:router.name=round-robin")]
    a = run_compare(scenario_file, variants, 2, seed=11)
    b = run_compare(scenario_file, variants, 2, seed=11)
    ja, jb = json.dumps(a.to_json(), sort_keys=True), json.dumps(b.to_json(), sort_keys=True)
    assert ja == jb
    pd.testing.assert_frame_equal(a.raw, b.raw, check_exact=True)
    assert a.meta["seeds"] == [11, 12]
    c = run_compare(scenario_file, variants, 2, seed=12)
    assert c.meta["seeds"] == [12, 13]
    # replication 0 of seed 12 is replication 1 of seed 11: same numbers
    ra = a.raw[a.raw["replication"] == 1].reset_index(drop=True)
    rc = c.raw[c.raw["replication"] == 0].reset_index(drop=True)
    pd.testing.assert_series_equal(ra["variant_value"], rc["variant_value"], check_exact=True)


def test_one_replication_has_undefined_interval(scenario_file):
    res = run_compare(scenario_file, [parse_variant("two:fleet.0.replicas=2")], 1)
    for r in res.rows:
        assert r["ci_low"] is None and r["ci_high"] is None and r["significant"] is None
    assert "undefined" in res.meta["note"]
    json.dumps(res.to_json(), allow_nan=False)


def test_parallel_jobs_give_the_same_numbers(scenario_file):
    variants = [parse_variant("two:fleet.0.replicas=2")]
    a = run_compare(scenario_file, variants, 2)
    b = run_compare(scenario_file, variants, 2, jobs=2)
    assert json.dumps(a.to_json()) == json.dumps(b.to_json())


# ------------------------------------------------------------- stresses
def test_stress_overrides():
    sc = make_scenario(pool={"replicas": 2})  # 20 s, poisson 5 req/s
    ov = stress_overrides(sc, ["surge", "bursty", "failure"])
    assert 'traffic.arrival={"process": "gamma", "cv": 4.0, "rate_rps": 5.0}' in ov
    events = json.loads(ov[-1].split("=", 1)[1])
    assert events[0] == {"kind": "surge", "start_s": pytest.approx(20 / 3), "end_s": pytest.approx(40 / 3),
                         "factor": 3.0}
    assert events[1] == {"kind": "replica-failure", "replica": "p/0", "at_s": pytest.approx(20 / 3)}
    own = make_scenario(events=[{"kind": "surge", "start_s": 1, "end_s": 2, "factor": 5}])
    assert stress_overrides(own, ["surge"]) == []  # the scenario's own surge wins
    with pytest.raises(FleetcastError, match="at least 2 replicas"):
        stress_overrides(make_scenario(), ["failure"])
    diurnal = make_scenario(traffic={"arrival": {"process": "diurnal", "rate_points": [[0, 5]]}})
    with pytest.raises(FleetcastError, match="bursty needs a poisson"):
        stress_overrides(diurnal, ["bursty"])


def test_compare_under_surge_and_bursty(scenario_file):
    plain = run_compare(scenario_file, [parse_variant("two:fleet.0.replicas=2")], 2)
    surged = run_compare(scenario_file, [parse_variant("two:fleet.0.replicas=2")], 2, stress=["surge"])
    n_plain, n_surge = plain.meta["requests_per_run"], surged.meta["requests_per_run"]
    assert n_surge["baseline"] == n_surge["two"]  # common random numbers under the surge too
    assert all(s > p for s, p in zip(n_surge["baseline"], n_plain["baseline"]))
    bursty = run_compare(scenario_file, [parse_variant("two:fleet.0.replicas=2")], 2, stress=["bursty"])
    assert any("gamma" in o for o in bursty.meta["runs"]["baseline"])


# ------------------------------------------------------------- CLI + report
def test_cli_writes_json_parquet_html(scenario_file, tmp_path, capsys):
    from sim.cli import main

    out = tmp_path / "cmp"
    rc = main(["compare", str(scenario_file), "--variant", "two:fleet.0.replicas=2", "--variant",
               "prio:fleet.0.policy.name=priority", "--replications", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "two vs baseline" in printed and "prio vs baseline" in printed and "95% CI" in printed
    data = json.loads((out / "compare.json").read_text())
    assert data["replications"] == 2 and set(data["variants"]) == {"baseline", "two", "prio"}
    assert len(data["rows"]) == 2 * (2 * 8 + 10)
    raw = pd.read_parquet(out / "compare.parquet")
    assert len(raw) == 2 * (2 * 8 + 10) * 2
    assert list(raw.columns) == ["variant", "class", "metric", "replication", "seed", "baseline_value",
                                 "variant_value", "diff"]
    assert set(raw["metric"]) == {m.name for m in METRICS}
    html = (out / "compare.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 3 * 2  # chat, batch, all x TTFT, E2E
    assert not re.search(r"https?://|src=|<link", html)  # self-contained
    assert "two vs baseline" in html and "class chat" in html


def test_cli_errors_exit_2(scenario_file, capsys):
    from sim.cli import main

    assert main(["compare", str(scenario_file), "--variant", "oops"]) == 2
    assert "no ':' found" in capsys.readouterr().err
    assert main(["compare", str(scenario_file), "--variant", "x:fleet.0.nope=1", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert "variant 'x'" in err and "fleet.0.nope" in err
    assert main(["compare", str(scenario_file)]) == 2


def test_example_scenario_loads():
    from pathlib import Path

    from sim.scenario.spec import load_scenario

    path = Path(__file__).parent.parent / "scenarios" / "compare-policies.yaml"
    sc = load_scenario(path, overrides=["fleet.0.policy.name=prefill-first",
                                        "fleet.0.engine.enable_chunked_prefill=false",
                                        "fleet.0.engine.max_num_batched_tokens=16384"])
    assert [c.priority for c in sc.traffic.classes] == [10, 0]
    assert all(c.slo for c in sc.traffic.classes)
    assert not math.isnan(sc.traffic.total_rate_rps())
