"""Server lifecycle and bad input, with fake server commands (no vLLM needed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sim.errors import FleetcastError
from testbed.server import (AttachedServer, EngineArgs, check_model_dir, check_url, free_port,
                            server_env, start_server, vllm_command)

REPO = Path(__file__).resolve().parents[1]
FAKE = [sys.executable, "-m", "testbed.fake_server", "--port", "{port}"]


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"vocab_size": 100, "eos_token_id": 1}')
    return d


def _gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_start_health_stop_by_process_group(tmp_path, model_dir):
    # the fake server spawns a child in its group: stopping must take both
    cmd = [sys.executable, "-c", textwrap.dedent("""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        from testbed.fake_server import main; main(["--port", sys.argv[1]])
        """), "{port}"]
    srv = start_server(EngineArgs(model=str(model_dir)), tmp_path, command=cmd, timeout_s=30)
    with srv:
        assert srv.exit_reason() is None
        assert srv.time_to_healthy_s < 30
    assert _gone(srv.pid), "process group still alive after stop()"
    assert (tmp_path / "server.log").read_text().startswith("$ ")


def test_start_failure_reports_log_tail_and_leaves_nothing(tmp_path, model_dir):
    cmd = FAKE + ["--fail-start"]
    with pytest.raises(FleetcastError) as err:
        start_server(EngineArgs(model=str(model_dir)), tmp_path, command=cmd, timeout_s=30)
    msg = str(err.value)
    assert "failed to start" in msg and "exited with code 3" in msg
    assert "scripted failure" in msg  # the tail of its log
    assert "Likely cause: ValueError: no such model" in msg


def test_start_timeout_stops_the_server(tmp_path, model_dir):
    cmd = [sys.executable, "-c", "import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)"]
    t = time.monotonic()
    with pytest.raises(FleetcastError, match="not healthy after 1 s"):
        start_server(EngineArgs(model=str(model_dir)), tmp_path, command=cmd, timeout_s=1)
    assert time.monotonic() - t < 15
    pid = int((tmp_path / "server.log").read_text().split("pid ")[1].split()[0])
    assert _gone(pid)


def test_busy_port_picks_another(tmp_path, model_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        srv = start_server(EngineArgs(model=str(model_dir)), tmp_path, port=busy, command=FAKE,
                           timeout_s=30)
        with srv:
            assert srv.port != busy
    assert _gone(srv.pid)


def test_sigterm_to_parent_stops_the_server(tmp_path, model_dir):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from testbed.server import EngineArgs, start_server
        srv = start_server(EngineArgs(model={str(model_dir)!r}), Path({str(tmp_path)!r}),
                           command={FAKE!r}, timeout_s=30)
        print(srv.pid, flush=True)
        time.sleep(600)
        """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
        assert _gone(pid), "server survived its parent's SIGTERM"
    finally:
        parent.kill()


def test_missing_model_folder_and_not_a_model(tmp_path):
    with pytest.raises(FleetcastError, match="no such folder"):
        check_model_dir(str(tmp_path / "nope"))
    with pytest.raises(FleetcastError, match="no config.json"):
        check_model_dir(str(tmp_path))


@pytest.mark.parametrize("url", ["http://10.0.0.5:8000", "http://example.com:8000", "192.168.1.2:80"])
def test_remote_url_refused_without_allow_remote(url):
    with pytest.raises(FleetcastError, match="not loopback"):
        check_url(url)
    assert check_url(url, allow_remote=True)[1] in (8000, 80)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "localhost:8000", "http://[::1]:8000"])
def test_loopback_url_allowed(url):
    assert check_url(url)[1] == 8000


def test_attach_to_dead_url_is_a_clear_error():
    with pytest.raises(FleetcastError, match="no healthy server"):
        AttachedServer(f"http://127.0.0.1:{free_port()}")


def test_vllm_command_and_env():
    eng = EngineArgs(model="/m", max_num_seqs=8, block_size=16, enable_prefix_caching=False,
                     num_gpu_blocks_override=24)
    cmd = vllm_command(eng, 1234, python="py")
    assert cmd[:4] == ["py", "-m", "testbed.vllm_entry", "serve"]
    for flag in ("--enforce-eager", "--no-enable-prefix-caching", "--dtype", "--max-model-len"):
        assert flag in cmd
    assert cmd[cmd.index("--max-num-seqs") + 1] == "8"
    assert cmd[cmd.index("--num-gpu-blocks-override") + 1] == "24"
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    env = server_env(eng, base={})
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
