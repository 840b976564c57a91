"""sim.analysis.sweep: grid parsing and key checks, resume after a crash, and the two
executors (local pool, Ray) running the same point function."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

import sim.analysis.sweep as sweep
from sim.cli import main
from sim.errors import FleetcastError
from tests.factories import scenario_dict

GRID = {"fleet.0.replicas": ["1", "2"], "traffic.arrival.rate_rps": ["2", "4", "6"]}
METRICS = ["slo_met", "attainment_pct", "p99_ttft_s", "p99_tpot_s", "usd_per_month", "chat.p99_ttft_s"]


@pytest.fixture
def scenario_path(tmp_path):
    data = scenario_dict(traffic={
        "duration_s": 6, "warmup_s": 1, "arrival": {"process": "poisson", "rate_rps": 4},
        "classes": [{"name": "chat", "prompt_tokens": {"dist": "uniform", "min": 16, "max": 800},
                     "output_tokens": {"dist": "uniform", "min": 1, "max": 100},
                     "slo": {"ttft_s": {"p99": 0.5}}}]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_parse_grid_values_and_errors():
    assert sweep.parse_grid(["a.b=1,2", "c=[1, 2],x"]) == {"a.b": ["1", "2"], "c": ["[1, 2]", "x"]}
    for bad in (["a.b"], ["a.b="], ["a=1", "a=2"]):
        with pytest.raises(FleetcastError):
            sweep.parse_grid(bad)
    with pytest.raises(FleetcastError, match="at least one --grid"):
        sweep.parse_grid([])


@pytest.mark.parametrize("key,expect", [
    ("fleet.0.replica", "Did you mean 'fleet.0.replicas'"),
    ("flet.0.replicas", "valid top-level sections: name, description, seed"),
    ("traffic.arrival.rate", "Did you mean 'traffic.arrival.rate_rps'"),
    ("fleet.replicas", "fleet.0.replicas"),
    ("seed.x", "is a value, not a section"),
])
def test_unknown_grid_key_names_the_key_and_the_fix(key, expect):
    with pytest.raises(FleetcastError) as err:
        sweep.check_grid_key(key)
    assert f"'{key}'" in str(err.value) and expect in str(err.value)


@pytest.mark.parametrize("key", ["fleet.0.replicas", "traffic.arrival.rate_rps", "traffic.classes.0.slo.ttft_s.p99",
                                 "pricing.h100-sxm", "fleet.0.engine.max_num_seqs", "plan.max_replicas"])
def test_valid_grid_keys_pass(key):
    sweep.check_grid_key(key)


def test_cli_unknown_grid_key_exits_2(scenario_path, tmp_path, capsys):
    rc = main(["sweep", str(scenario_path), "--grid", "fleet.0.replica=1,2", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "fleet.0.replicas" in capsys.readouterr().err
    assert not (tmp_path / "o" / "sweep.parquet").exists()


def test_unknown_key_inside_params_is_caught_by_the_validator(scenario_path, tmp_path):
    with pytest.raises(FleetcastError, match="router.params"):
        sweep.run_sweep(scenario_path, {"router.params.nope": ["1"]}, tmp_path / "o", workers=1)


def test_killed_sweep_resumes_without_recomputing(scenario_path, tmp_path, monkeypatch):
    real = sweep.evaluate_point
    calls: list[str] = []

    def crashing(*args):
        if len(calls) == 4:
            raise KeyboardInterrupt("simulated crash after 4 points")
        calls.append(args[3])
        return real(*args)

    monkeypatch.setattr(sweep, "evaluate_point", crashing)
    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(scenario_path, GRID, out, workers=1, flush_every_s=1e9)
    first = pd.read_parquet(out / sweep.SWEEP_FILE)
    assert sorted(first["point_key"]) == sorted(calls) and len(calls) == 4

    done_before = list(calls)
    calls.clear()
    monkeypatch.setattr(sweep, "evaluate_point", lambda *a: (calls.append(a[3]), real(*a))[1])
    seen: list[tuple[int, int]] = []
    df = sweep.run_sweep(scenario_path, GRID, out, workers=1, progress=lambda d, t: seen.append((d, t)))
    assert len(calls) == 2 and not set(calls) & set(done_before)
    assert len(df) == 6 and df["point_key"].is_unique and (df["status"] == "ok").all()
    assert seen[0] == (4, 6) and seen[-1] == (6, 6)
    assert pd.read_parquet(out / sweep.SWEEP_FILE)["point_key"].nunique() == 6

    calls.clear()  # a third run has nothing left to do
    sweep.run_sweep(scenario_path, GRID, out, workers=1)
    assert calls == []


def test_point_keys_are_stable_and_follow_the_scenario(scenario_path, tmp_path):
    a = sweep.run_sweep(scenario_path, {"fleet.0.replicas": ["1"]}, tmp_path / "a", workers=1)
    b = sweep.run_sweep(scenario_path, {"fleet.0.replicas": ["1"]}, tmp_path / "b", workers=1)
    c = sweep.run_sweep(scenario_path, {"fleet.0.replicas": ["1"]}, tmp_path / "c", workers=1, seed=99)
    assert a["point_key"][0] == b["point_key"][0] != c["point_key"][0]
    assert a[METRICS].equals(b[METRICS])


def test_rows_have_grid_values_status_and_metrics(scenario_path, tmp_path):
    df = sweep.run_sweep(scenario_path, {"fleet.0.gpu": ["h100-sxm", "nope"]}, tmp_path / "o", workers=1)
    assert list(df["fleet.0.gpu"]) == ["h100-sxm", "nope"]
    assert list(df["status"]) == ["ok", "invalid"]
    assert "unknown GPU 'nope'" in df["error"][1]
    assert df["p99_ttft_s"][0] > 0 and pd.isna(df["p99_ttft_s"][1])
    more_replicas = sweep.run_sweep(scenario_path, {"fleet.0.replicas": ["1", "3"]}, tmp_path / "r", workers=1)
    assert list(more_replicas["usd_per_month"]) == pytest.approx([2.99 * 730, 3 * 2.99 * 730])


def test_local_pool_matches_inline(scenario_path, tmp_path):
    inline = sweep.run_sweep(scenario_path, GRID, tmp_path / "a", workers=1)
    pool = sweep.run_sweep(scenario_path, GRID, tmp_path / "b", workers=2)
    assert pool[["point_key", *METRICS]].equals(inline[["point_key", *METRICS]])


def _marked_point(base, path, point, key):
    """A pool point for the Ctrl-C tests: marks its start in the folder ``path`` names, reports how its
    worker handles SIGINT and SIGTERM, and sleeps ``point['sleep_s']``."""
    import os
    import signal
    import time
    from pathlib import Path

    Path(path, f"started-{key}").write_text(str(os.getpid()))
    time.sleep(float(point["sleep_s"]))
    return {
        "point_key": key,
        "sigint": str(signal.getsignal(signal.SIGINT)),
        "sigterm": str(signal.getsignal(signal.SIGTERM)),
    }


def test_interrupted_pool_cancels_queued_points_and_does_not_wait(tmp_path):
    """Ctrl-C while the pool runs: no queued point starts and the running ones are not waited for (before,
    leaving the pool waited for them, ~11-16 s, and each worker took its SIGINT as its point's error and
    went on to the next queued point). Its workers leave SIGINT to the parent."""
    import signal
    import time

    tasks = [(None, str(tmp_path), {"sleep_s": "0"}, "fast")]
    tasks += [(None, str(tmp_path), {"sleep_s": "60"}, f"slow{i}") for i in range(6)]
    results = sweep._local(tasks, 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "evaluate_point", _marked_point)
        first = next(results)  # the fast point; both workers are then on slow points (or about to be)
    assert first["point_key"] == "fast"
    assert first["sigint"] == first["sigterm"] == str(signal.SIG_IGN)
    time.sleep(0.5)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        results.throw(KeyboardInterrupt())  # Ctrl-C while the parent waits for the next point
    assert time.monotonic() - started < 10.0  # a slow point takes 60 s
    ran = {p.name for p in tmp_path.glob("started-*")}
    time.sleep(1.0)
    assert {p.name for p in tmp_path.glob("started-*")} == ran  # nothing started after the stop
    assert "started-fast" in ran and len(ran) <= 3  # the fast point and at most one slow point per worker


def test_interrupted_pool_sweep_keeps_its_rows_and_resumes(scenario_path, tmp_path):
    """Ctrl-C in a pool sweep (here from the progress callback, between points): the finished rows are in
    the table, nothing else is left in the folder, and a re-run computes only the rest."""
    out = tmp_path / "o"

    def interrupt_after_two(done, total):
        if done >= 2:
            raise KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(scenario_path, GRID, out, workers=2, progress=interrupt_after_two, flush_every_s=1e9)
    assert [p.name for p in out.iterdir()] == [sweep.SWEEP_FILE]
    first = pd.read_parquet(out / sweep.SWEEP_FILE)
    assert len(first) == 2 and (first["status"] == "ok").all() and first["point_key"].is_unique
    seen: list[tuple[int, int]] = []
    df = sweep.run_sweep(scenario_path, GRID, out, workers=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (2, 6) and seen[-1] == (6, 6)
    assert len(df) == 6 and (df["status"] == "ok").all() and set(first["point_key"]) <= set(df["point_key"])
    inline = sweep.run_sweep(scenario_path, GRID, tmp_path / "inline", workers=1)
    assert df[["point_key", *METRICS]].equals(inline[["point_key", *METRICS]])


def test_ray_executor_runs_the_same_points(scenario_path, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'fleetcast[ray]')")
    inline = sweep.run_sweep(scenario_path, GRID, tmp_path / "a", workers=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        df = sweep.run_sweep(scenario_path, GRID, tmp_path / "b", executor="ray")
    finally:
        ray.shutdown()
    assert df[["point_key", *METRICS]].equals(inline[["point_key", *METRICS]])
    assert len(pd.read_parquet(tmp_path / "b" / sweep.SWEEP_FILE)) == 6


def test_cli_sweep_writes_parquet(scenario_path, tmp_path):
    out = tmp_path / "o"
    rc = main(["sweep", str(scenario_path), "--grid", "fleet.0.replicas=1,2", "--workers", "1", "--out", str(out)])
    assert rc == 0
    df = pd.read_parquet(out / "sweep.parquet")
    assert list(df["fleet.0.replicas"]) == [1, 2] and set(df["status"]) == {"ok"}
