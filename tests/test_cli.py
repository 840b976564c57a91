"""The fleetcast command: example scenarios, bad input, the reference doc."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.records import REQUEST_COLUMNS, TIMESERIES_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ["quickstart", "naive-vs-optimized", "azure-replay", "mooncake-prefix", "compare-policies",
            "plan-example"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_scenario_runs(name, tmp_path, capsys):
    out = tmp_path / name
    assert main(["run", str(ROOT / "scenarios" / f"{name}.yaml"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    req = pd.read_parquet(out / "requests.parquet")
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert set(REQUEST_COLUMNS) <= set(req.columns) and set(TIMESERIES_COLUMNS) == set(ts.columns)
    assert len(req) == summary["sim"]["requests"] > 50
    assert (req.status == "ok").mean() > 0.9
    assert summary["overall"]["output_tokens_per_s"] > 0
    assert summary["cost"]["fleet_usd_per_hour"] > 0
    assert "all" in capsys.readouterr().out  # the summary table was printed


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    return p


GOOD = """\
name: bad
fleet:
  - name: p
    gpu: {gpu}
    replicas: {replicas}
    model: {model}
    engine: {{max_model_len: 8192}}
traffic:
  duration_s: 10
  arrival: {arrival}
  classes:
    - name: a
      share: {share_a}
      prompt_tokens: {{dist: fixed, value: 100}}
      output_tokens: {{dist: fixed, value: 10}}
    - name: b
      share: 0.5
      prompt_tokens: {{dist: fixed, value: 100}}
      output_tokens: {{dist: fixed, value: 10}}
"""


def _bad(**kw) -> str:
    args = dict(gpu="h100-sxm", replicas=1, model="llama-3.1-8b", arrival="{process: poisson, rate_rps: 2}",
                share_a=0.5)
    args.update(kw)
    return GOOD.format(**args)


@pytest.mark.parametrize("kw, expected", [
    ({"gpu": "h100"}, ["line 4", "fleet.0.gpu", "h100-sxm", "a100-80gb"]),
    ({"model": "llama-8b"}, ["fleet.0.model", "llama-3.1-8b"]),
    ({"replicas": -3}, ["line 5", "fleet.0.replicas", "greater than or equal to 1"]),
    ({"share_a": 0.4}, ["0.9", "share"]),
    ({"gpu": "l4", "model": "llama-3.1-70b"}, ["fleet.0", "GiB", "tp=8"]),
    ({"arrival": "{process: trace, preset: generic, path: nowhere.csv}"}, ["nowhere.csv", "not found"]),
    ({"arrival": "{process: poison, rate_rps: 2}"}, ["poison", "poisson"]),
])
def test_bad_input_is_one_clear_paragraph_exit_2(kw, expected, tmp_path, capsys):
    path = _write(tmp_path, _bad(**kw))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    assert "Traceback" not in err
    for piece in expected:
        assert piece in flat, (piece, flat)
    assert not out.exists()  # nothing half-written


def test_malformed_trace_row_names_the_line(tmp_path, capsys):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0.0,10,5\n0.5,12,5\n1.0,abc,5\n")
    path = _write(tmp_path, _bad(arrival="{process: trace, preset: generic, path: t.csv}").replace(
        "share: 0.5\n", "share: 0.5\n", 1))
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    flat = " ".join(capsys.readouterr().err.split())
    assert "line 4" in flat and "abc" in flat


def test_error_path_is_the_files_path_not_pydantics(tmp_path, capsys):
    path = _write(tmp_path, _bad(arrival="{process: gamma, rate_rps: 2, cv: -1}"))
    assert main(["run", str(path)]) == 2
    flat = " ".join(capsys.readouterr().err.split())
    assert "field traffic.arrival.cv:" in flat and "line 10" in flat, flat


def test_unknown_key_is_rejected_with_its_line(tmp_path, capsys):
    path = _write(tmp_path, _bad().replace("    replicas: 1\n", "    replicas: 1\n    replica_count: 2\n"))
    assert main(["run", str(path)]) == 2
    flat = " ".join(capsys.readouterr().err.split())
    assert "line 6" in flat and "replica_count" in flat and "unknown key" in flat


def test_exact_steps_flag_gives_identical_requests(tmp_path):
    sc = ROOT / "scenarios" / "quickstart.yaml"
    over = ["--set", "traffic.duration_s=60", "--set", "traffic.warmup_s=5", "--set", "traffic.cooldown_s=0"]
    assert main(["run", str(sc), "--out", str(tmp_path / "f"), *over]) == 0
    assert main(["run", str(sc), "--out", str(tmp_path / "e"), "--exact-steps", *over]) == 0
    a = pd.read_parquet(tmp_path / "f" / "requests.parquet")
    b = pd.read_parquet(tmp_path / "e" / "requests.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_scenario_reference_is_in_sync():
    from sim.report.scenario_reference import scenario_reference

    committed = (ROOT / "docs" / "scenario-reference.md").read_text()
    assert committed == scenario_reference(), "run: fleetcast schema --out docs/scenario-reference.md"
    for section in ("PoolSpec", "EngineSpec", "TrafficSpec", "SloSpec", "`prefix-affinity`", "batch_size"):
        assert section in committed
