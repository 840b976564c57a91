"""Ctrl-C and SIGTERM stop a process pool at once: ``sim.procs.worker_pool`` (one mechanism for
``sweep``, ``plan`` and ``compare``). Before, ``plan --workers 2`` interrupted while its pool ran
printed "interrupted" and then never exited (its workers took SIGINT as their task's error and the
pool waited for the queue), and ``compare -j 2`` printed its spawned workers' tracebacks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.procs import worker_pool

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process semantics")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().split(")")[-1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _init(marks: str, tag: str) -> None:
    Path(marks, f"init-{os.getpid()}").write_text(tag)


def _task(marks: str, name: str, sleep_s: float) -> tuple[int, str, str]:
    Path(marks, f"started-{name}").write_text(str(os.getpid()))
    time.sleep(sleep_s)
    return os.getpid(), str(signal.getsignal(signal.SIGINT)), str(signal.getsignal(signal.SIGTERM))


def test_worker_pool_left_normally_waits_and_runs_init(tmp_path):
    with worker_pool(2, init=_init, initargs=(str(tmp_path), "x")) as pool:
        got = [f.result() for f in [pool.submit(_task, str(tmp_path), f"t{i}", 0.0) for i in range(3)]]
    assert {g[1] for g in got} == {g[2] for g in got} == {str(signal.SIG_IGN)}  # Ctrl-C is the parent's
    inits = list(tmp_path.glob("init-*"))
    assert 1 <= len(inits) <= 2 and {p.read_text() for p in inits} == {"x"}
    assert {f"init-{g[0]}" for g in got} <= {p.name for p in inits}  # every task's worker ran init


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_worker_pool_left_by_an_exception_kills_its_workers_and_starts_nothing_queued(tmp_path, exc):
    """Two 60 s tasks running and four queued: the exception leaves the block in well under a task's
    time, the workers are dead and no queued task starts afterwards."""
    started = None
    with pytest.raises(exc):
        with worker_pool(2) as pool:
            for i in range(6):
                pool.submit(_task, str(tmp_path), f"t{i}", 60.0)
            end = time.monotonic() + 30
            while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < end:
                time.sleep(0.05)
            workers = [int(p.read_text()) for p in tmp_path.glob("started-*")]
            assert len(workers) == 2
            started = time.monotonic()
            raise exc()
    assert started is not None and time.monotonic() - started < 10.0
    assert not any(_alive(p) for p in workers)
    time.sleep(0.5)
    assert len(list(tmp_path.glob("started-*"))) == 2


def _interrupt(tmp_path: Path, argv: list[str], sig: int, wait_s: float) -> tuple[int, str, float, list[int]]:
    """Run ``fleetcast argv`` in its own process group; once its pool's workers have run for ``wait_s``,
    send ``sig`` to the whole group (as a terminal's Ctrl-C does). Returns the exit status, stderr,
    the seconds from the signal to the exit and the workers seen."""
    code = "import sys; from sim.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.monotonic() + 120
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        assert len(workers) >= 2, "the pool did not start"
        time.sleep(wait_s)
        if proc.poll() is not None:
            pytest.skip("finished before the signal")
        os.killpg(proc.pid, sig)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err, time.monotonic() - sent, workers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


PLAN = ["plan", str(SCENARIOS / "plan-example.yaml"), "--workers", "2", "--out"]
# 240k requests a simulation (~4 s each here), so the pool still runs 2.5 s after it started
COMPARE = ["compare", str(SCENARIOS / "compare-policies.yaml"), "--variant", "prio:fleet.0.policy.name=priority",
           "-n", "4", "-j", "2", "--set", "traffic.duration_s=24000", "--out"]


# What a finished command leaves in --out (its documented files); a signal that lands after the
# folder was swapped in, while the command prints its table, exits 130/143 with this folder whole.
COMPLETE = {"plan": ["plan.json", "points.parquet", "runs"],
            "compare": ["compare.html", "compare.json", "compare.parquet"]}


@pytest.mark.slow
@pytest.mark.parametrize("wait_s", [0.5, 2.5])
@pytest.mark.parametrize("argv", [PLAN, COMPARE], ids=["plan", "compare"])
@pytest.mark.parametrize("sig, rc, line", [(signal.SIGINT, 130, "interrupted"),
                                           (signal.SIGTERM, 143, "terminated (SIGTERM)")], ids=["INT", "TERM"])
def test_a_signal_to_the_group_stops_the_pool_at_once(tmp_path, argv, sig, rc, line, wait_s):
    out = tmp_path / "o"
    code, err, after_s, workers = _interrupt(tmp_path, [*argv, str(out)], sig, wait_s)
    assert "Traceback" not in err, err
    if code == -sig:  # the work was done and the signal met Python's shutdown (default handlers
        # restored then): the process ends by the signal itself (a shell shows 128 + sig), allowed
        # only with the folder whole; test_hostile's Ctrl-C test allows the same case
        assert out.is_dir() and sorted(p.name for p in out.iterdir()) == COMPLETE[argv[0]], err
    else:
        assert code == rc and line in err, err
    assert after_s < 5.0, f"{after_s:.1f} s from the signal to the exit"
    time.sleep(0.5)
    assert not any(_alive(p) for p in workers), "a pool worker outlived the command"
    left = sorted(p.name for p in tmp_path.iterdir())
    if left:  # the signal came after the folder was swapped in (a fast machine): it must be whole
        assert left == ["o"] and sorted(p.name for p in out.iterdir()) == COMPLETE[argv[0]], (left, err)
    # otherwise nothing: no staging folder, no lock, no partial --out


_LOST_IN_A_CALLBACK = """
import sys, time, weakref
import sim.cli as cli
cli._catch_lost_interrupts()
class Held: pass
held = Held()
def callback(ref):  # stands for the signal's handler running inside a garbage collector's callback
    raise {exc}()
ref = weakref.ref(held, callback)
try:
    del held  # the callback runs; Python prints its exception and drops it
    for _ in range(100):
        time.sleep(0.01)
    print("ran on")
except {exc}:
    print("raised again")
"""


@pytest.mark.parametrize("exc", ["cli.Terminated", "KeyboardInterrupt"])
def test_an_interrupt_dropped_in_a_gc_callback_is_raised_again(exc):
    """A SIGTERM whose handler ran inside a WeakKeyDictionary callback was printed as "Exception ignored
    in ..." with a traceback and lost: `compare` then ran to the end and exited 0 (seen once in the suite
    under load). The interrupt must come back in the command's own code, with nothing printed."""
    res = subprocess.run(
        [sys.executable, "-c", _LOST_IN_A_CALLBACK.format(exc=exc)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert res.stdout.strip() == "raised again", (res.stdout, res.stderr)
    assert "Exception ignored" not in res.stderr and "Traceback" not in res.stderr, res.stderr
