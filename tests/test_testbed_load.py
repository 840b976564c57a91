"""Locust load, run folders and faults against the fake server (needs locust;
skipped in the light .venv, run by .ci/testbed-stage.sh in the testbed venv)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("locust", reason="testbed extras not installed (see docs/testbed.md)")

import pandas as pd  # noqa: E402

import testbed.load  # noqa: E402,F401  (monkey patching before the sockets below)
from sim.records import REQUEST_COLUMNS, TIMESERIES_COLUMNS  # noqa: E402
from testbed.cli import main as cli_main  # noqa: E402
from testbed.fake_server import FakeVllm  # noqa: E402
from testbed.prompts import closed_loop_requests, requests_from_workload  # noqa: E402
from testbed.runner import execute_run  # noqa: E402
from testbed.server import AttachedServer, EngineArgs, start_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Wl:
    arrival_s: np.ndarray
    class_idx: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    class_names: list


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"vocab_size": 500, "bos_token_id": 0, "eos_token_id": 1}))
    return d


@pytest.fixture
def fake():
    srv = FakeVllm(ttft_s=0.01, itl_s=0.002)
    port = srv.serve_in_thread()
    yield srv, AttachedServer(f"http://127.0.0.1:{port}")
    srv.shutdown()


def _workload(n=20):
    rng = np.random.default_rng(1)
    return Wl(10 + np.cumsum(rng.exponential(0.03, n)), rng.integers(0, 2, n).astype(np.int16),
              rng.integers(5, 50, n).astype(np.int32), rng.integers(1, 20, n).astype(np.int32), ["a", "b"])


def test_open_loop_run_folder(fake, model_dir, tmp_path):
    fk, server = fake
    wl = _workload()
    specs = requests_from_workload(wl, model_dir, seed=3)
    assert specs[0].arrival_s == 0.0  # shifted to the run start
    info = execute_run(tmp_path / "run", specs, server, mode="open", meta={"seed": 3})
    assert info["completed"] and info["status_counts"] == {"ok": 20}
    df = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert list(df.columns) == [*REQUEST_COLUMNS, "ttft_s", "e2e_s", "tpot_s"]
    assert (df["replica"] == "vllm-0").all() and set(df["class"]) <= {"a", "b"}
    assert (df["output_tokens"].to_numpy() == wl.output_tokens).all()
    assert (df["ttft_s"] >= 0.01).all()
    c = info["server_deltas"]["counters"]
    assert c["prompt_tokens_total"] == df["prompt_tokens"].sum() == wl.prompt_tokens.sum()
    assert c["generation_tokens_total"] == df["output_tokens"].sum()
    ts = pd.read_parquet(tmp_path / "run" / "timeseries.parquet")
    assert list(ts.columns) == list(TIMESERIES_COLUMNS)
    itl = pd.read_parquet(tmp_path / "run" / "itl.parquet")
    assert len(itl) == wl.output_tokens.sum()
    assert info["kv_cache"]["block_size"] == 16 and info["kv_cache"]["num_blocks"] == 1024


def test_closed_loop_counts_and_concurrency(fake, model_dir, tmp_path):
    fk, server = fake
    specs = closed_loop_requests(12, 10, 5, model_dir, seed=0)
    info = execute_run(tmp_path / "c4", specs, server, mode="closed", users=4)
    df = pd.read_parquet(tmp_path / "c4" / "requests.parquet")
    assert info["completed"] and len(df) == 12 and (df["status"] == "ok").all()
    assert fk.requests_total == 12


def test_time_limit_records_in_flight_as_cancelled(model_dir, tmp_path):
    fk = FakeVllm(ttft_s=0.05, itl_s=0.5)  # 10 tokens take ~5 s
    port = fk.serve_in_thread()
    try:
        specs = requests_from_workload(Wl(np.array([0.0, 0.1, 30.0]), np.zeros(3, np.int16),
                                          np.full(3, 4, np.int32), np.full(3, 10, np.int32), ["x"]),
                                       model_dir, seed=0)
        info = execute_run(tmp_path / "r", specs, AttachedServer(f"http://127.0.0.1:{port}"),
                           time_limit_s=1.0)
    finally:
        fk.shutdown()
    df = pd.read_parquet(tmp_path / "r" / "requests.parquet")
    assert not info["completed"] and "time limit" in info["reason"]
    assert len(df) == 3 and (df["status"] == "cancelled").all()  # 2 in flight, 1 never sent
    assert df["first_token_s"].notna().sum() == 2 and df["finish_s"].isna().all()


def test_server_dies_mid_run(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "testbed.fake_server", "--port", "{port}",
           "--die-after-requests", "3", "--itl-ms", "20"]
    srv = start_server(EngineArgs(model=str(model_dir)), tmp_path, command=cmd, timeout_s=30)
    with srv:
        wl = Wl(np.arange(8) * 0.3, np.zeros(8, np.int16), np.full(8, 8, np.int32),
                np.full(8, 5, np.int32), ["x"])
        specs = requests_from_workload(wl, model_dir, seed=0)
        info = execute_run(tmp_path / "run", specs, srv, mode="open")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    df = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert not meta["completed"] and "exited with code 17" in meta["reason"]
    assert len(df) == 8  # every request has a record
    assert (df["status"].iloc[:3] == "ok").all()
    assert set(df["status"].iloc[3:]) <= {"error", "cancelled"}
    assert info["stop_time"]


def test_sweep_cli_is_resumable(fake, model_dir, tmp_path, capsys):
    fk, server = fake
    args = ["testbed", "sweep", "--model", str(model_dir), "--url", server.base_url,
            "--concurrency", "1,2", "--prompt-tokens", "8", "--output-tokens", "3",
            "--requests-per-point", "4", "--out", str(tmp_path / "sw")]
    assert cli_main(args) == 0
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == ["c1-p8-o3", "c2-p8-o3"]
    assert fk.requests_total == 8
    assert cli_main(args) == 0
    assert "2 already done" in capsys.readouterr().out
    assert fk.requests_total == 8  # nothing re-run


def test_cli_user_errors_exit_2(model_dir, tmp_path, capsys):
    assert cli_main(["testbed", "sweep", "--model", str(tmp_path / "none"), "--out",
                     str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert cli_main(["testbed", "sweep", "--model", str(model_dir), "--url",
                     "http://10.1.2.3:8000", "--out", str(tmp_path / "o")]) == 2
    assert "not loopback" in capsys.readouterr().err


def _client(model_dir: Path, tmp_path: Path, n: int, output_len: int, itl_ms: int, preamble: str = ""):
    """A child process that starts a fake server (its pid on the first line of stdout) and runs ``n``
    closed-loop requests of ``output_len`` tokens, two at a time, into ``tmp_path/run``."""
    import subprocess

    script = f"""
import sys
{preamble}
from pathlib import Path
import testbed.load
from testbed.prompts import closed_loop_requests
from testbed.runner import execute_run
from testbed.server import EngineArgs, start_server
cmd = [sys.executable, "-m", "testbed.fake_server", "--port", "{{port}}", "--itl-ms", "{itl_ms}"]
# the requests (tokenizer load) before the server: a signal from the parent lands in the load
specs = closed_loop_requests({n}, 4, {output_len}, {str(model_dir)!r}, 0)
srv = start_server(EngineArgs(model={str(model_dir)!r}), Path({str(tmp_path)!r}), command=cmd, timeout_s=30)
print(srv.pid, flush=True)
with srv:
    execute_run(Path({str(tmp_path / "run")!r}), specs, srv, mode="closed", users=2)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        return child, int(child.stdout.readline())
    except ValueError:  # the child failed before starting the server: stop it, say why
        child.kill()
        raise AssertionError(child.communicate(timeout=30)[1][-2000:]) from None


def test_ctrl_c_keeps_records_and_stops_the_server(model_dir, tmp_path):
    import signal
    import time

    # Ctrl-C must raise in the child even when it inherits an ignored SIGINT (a job started in the
    # background by a non-interactive shell does)
    child, server_pid = _client(model_dir, tmp_path, 8, 50, 200, preamble=(
        "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)"))
    try:
        time.sleep(2.0)
        child.send_signal(signal.SIGINT)
        _out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode != 0 and "KeyboardInterrupt" in err
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert not meta["completed"] and "Ctrl-C" in meta["reason"]
    df = pd.read_parquet(tmp_path / "run" / "requests.parquet")
    assert len(df) == 2 and (df["status"] == "cancelled").all()  # the two in flight
    with pytest.raises(ProcessLookupError):
        os.killpg(server_pid, 0)


def test_sigkill_keeps_finished_records_and_leaves_no_server(model_dir, tmp_path):
    """SIGKILL of the client mid-run: the requests that had ended are in the journal, read_run and
    calibration's load_run take them from there and say the run was interrupted, and the server's
    process group is stopped by its watchdog."""
    import signal
    import time

    from calibration.runs import load_run
    from testbed.runfolder import JOURNAL, read_run

    child, server_pid = _client(model_dir, tmp_path, 40, 5, 100)  # ~0.5 s a request, 2 at a time
    run = tmp_path / "run"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once a few requests have ended
            lines = (run / JOURNAL).read_text().count("\n") if (run / JOURNAL).exists() else 0
            if lines >= 3:
                break
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        child.kill()
    assert lines >= 3
    assert not (run / "requests.parquet").exists()
    assert json.loads((run / "run.json").read_text())["completed"] is False
    got = read_run(run)
    kept = got["requests"]
    assert len(kept) >= 3 and (kept["status"] == "ok").all() and kept["request_id"].is_unique
    assert kept["ttft_s"].notna().all()
    assert "interrupted" in got["meta"]["reason"] and "is gone" in got["meta"]["reason"]
    meta = json.loads((run / "run.json").read_text())  # the fake model's config names no architecture:
    meta.setdefault("model", {}).setdefault("config", {}).update(hidden_size=256, num_hidden_layers=4)  # testbed-tiny
    meta["kv_cache"].update(num_blocks=1000, block_size=16)  # the fake server reports no cache config
    (run / "run.json").write_text(json.dumps(meta))
    # the testbed did not start the fake server, so run.json records no --dtype (an attached server):
    # load_run refuses without one (tests/test_attached_runs.py), and --sidecar-set supplies it
    assert len(load_run(run, overrides=["dtype=float32"]).requests) == len(kept)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(server_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.killpg(server_pid, 0)
