"""A SIGKILL of fleetcast leaves no orphans: pool workers die with their parent
(``die_with_parent``), and a testbed server's whole process group is stopped by its
watchdog (``guard_group``). Each test SIGKILLs a real parent process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _parent(code: str) -> tuple[subprocess.Popen, list[int]]:
    """Start a parent running ``code``; it prints the pids to watch on its first line."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = proc.stdout.readline()
    assert line.strip(), "the parent printed no pids"
    return proc, [int(x) for x in line.split()]


POOL = """
import os, sys, time
from sim.procs import worker_pool
cm = worker_pool(2)  # the pool sweep, plan and compare use (kept: a dropped one stops its pool)
pool = cm.__enter__()
pids = set()
while len(pids) < 2:  # a worker that is busy sleeping makes the pool start the other one
    futs = [pool.submit(os.getpid) for _ in range(4)]
    pids |= {f.result() for f in futs}
print(*sorted(pids), flush=True)
time.sleep(600)
"""

SERVER = """
import sys, time
from pathlib import Path
from testbed.server import ServerProcess
srv = ServerProcess([sys.executable, "-c", "import subprocess, sys, time; "
                     "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"],
                    Path(sys.argv[1] if len(sys.argv) > 1 else '/dev/null'), port=1).start()
time.sleep(1.0)  # the server's own child has started
group = []  # the processes of the server's group, from /proc (field 5 of stat: the group id)
for stat in Path("/proc").glob("[0-9]*/stat"):
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        continue
    if int(fields[2]) == srv.pid:
        group.append(stat.parent.name)
print(srv.guard.pid, *group, flush=True)
time.sleep(600)
"""


def test_pool_workers_die_with_their_parent():
    proc, workers = _parent(POOL)
    try:
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _wait_gone(workers, 5.0) == [], "pool workers outlived a SIGKILLed parent"
    finally:
        proc.kill()
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_a_server_group_is_stopped_when_its_client_is_killed(tmp_path):
    proc, pids = _parent(SERVER.replace("'/dev/null'", repr(str(tmp_path / "server.log"))))
    guard, group = pids[0], pids[1:]
    try:
        assert len(group) == 2 and all(_alive(p) for p in group + [guard])  # the server and its child
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert _wait_gone(group, 15.0) == [], "the server's process group outlived its SIGKILLed client"
        assert _wait_gone([guard], 5.0) == []
    finally:
        proc.kill()
        for p in group + [guard]:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_the_watchdog_leaves_a_live_client_alone_and_exits_with_the_group(tmp_path):
    from testbed.server import ServerProcess

    srv = ServerProcess([sys.executable, "-c", "import time; time.sleep(600)"], tmp_path / "s.log", port=1).start()
    try:
        time.sleep(1.0)
        assert _alive(srv.pid) and srv.guard.poll() is None  # client alive: nothing stopped
    finally:
        srv.stop(grace_s=5.0)
    assert not _alive(srv.pid) and srv.guard.poll() is not None  # the watchdog went with the group
