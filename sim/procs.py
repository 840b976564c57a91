"""The process itself: child processes that do not outlive their parent, and freed
memory given back to the system (``return_freed_memory``).

A worker pool (``sweep``, ``plan``, ``compare``) and a testbed server are
children of the ``fleetcast`` process. Ctrl-C and SIGTERM unwind through
``finally`` blocks that stop them; a SIGKILL runs nothing, so two mechanisms
that need no cooperation from the dying parent:

- ``die_with_parent()``: a pool initializer that asks Linux to send the worker
  SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``); a no-op where
  that call does not exist.
- ``worker_pool(...)``: a process pool whose workers die with the parent and
  ignore SIGINT/SIGTERM (the terminal sends Ctrl-C to the whole process group;
  the parent alone decides), and which, left by an exception (Ctrl-C, SIGTERM
  through the CLI's handler, an error, a generator closed), cancels its queued
  tasks and kills its running workers instead of waiting for them. One
  mechanism for ``sweep``, ``plan`` and ``compare``.
- ``guard_group(pgid)``: a small watchdog process in its own session that
  polls its parent (the caller) and, once the caller is gone, stops the process
  group ``pgid`` (SIGTERM, then SIGKILL) — for a server whose own children
  would not see a parent-death signal.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

__all__ = ["die_with_parent", "guard_group", "return_freed_memory", "quiet_worker", "worker_pool", "WATCHDOG"]

_PR_SET_PDEATHSIG = 1

#: The watchdog's program: argv = parent pid, process group, grace seconds.
WATCHDOG = r"""
import os, signal, sys, time
parent, pgid, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def group_alive():
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while os.getppid() == parent:  # reparented once the parent is gone
    if not group_alive():
        sys.exit(0)
    time.sleep(0.25)
for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        sys.exit(0)
    end = time.monotonic() + wait
    while time.monotonic() < end and group_alive():
        time.sleep(0.1)
"""


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
#: Allocations from this size up get their own pages, given back to the system when freed.
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_freed_memory() -> None:
    """Give large freed blocks back to the system (glibc; elsewhere nothing).

    glibc raises its mmap threshold each time a large block is freed, so later large
    arrays (workload columns, a run's temporaries) come from the heap, whose freed space
    the process keeps. Measured: right after generating a 3-million-request workload the
    process held 436 MB, against 237 MB with the threshold fixed at glibc's initial 128 KiB,
    which keeps every large array in its own pages."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def die_with_parent() -> None:
    """In a child process: be killed when the parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the call took effect
        os._exit(1)


def quiet_worker(init: Callable[..., None] | None = None, *initargs: Any) -> None:
    """A pool worker's start (``worker_pool``'s initializer): die with the parent, and leave Ctrl-C
    and SIGTERM, which reach the whole process group, to the parent, which stops the pool; then
    ``init(*initargs)``. A worker that took them itself would hand its task an exception and go
    on to the next queued one (the CLI's SIGTERM handler is inherited through fork and raises),
    or die of its own accord and race the parent's unwinding with a BrokenProcessPool."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if init is not None:
        init(*initargs)


def stop_pool(pool: futures.ProcessPoolExecutor) -> None:
    """Cancel the queued tasks and kill the running workers now (their results are lost), instead
    of waiting for them as leaving a ``with`` block would (SIGKILL: they ignore SIGTERM)."""
    workers = list((pool._processes or {}).values())  # no public handle before Python 3.14's kill_workers()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in workers:
        if proc.is_alive():
            proc.kill()
    for proc in workers:
        proc.join(timeout=5.0)


@contextmanager
def worker_pool(
    max_workers: int,
    *,
    mp_context: Any = None,
    init: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Iterator[futures.ProcessPoolExecutor]:
    """A process pool of ``quiet_worker``s (``init(*initargs)`` run in each): left normally it waits
    for its tasks; left by any exception (``KeyboardInterrupt``, the CLI's ``Terminated``, an error,
    ``GeneratorExit``) it stops at once (``stop_pool``) and the exception goes on."""
    pool = futures.ProcessPoolExecutor(
        max_workers=max_workers, mp_context=mp_context, initializer=quiet_worker, initargs=(init, *initargs)
    )
    try:
        yield pool
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def guard_group(pgid: int, grace_s: float = 10.0) -> subprocess.Popen:
    """Start the watchdog for process group ``pgid``: it stops the group when this process dies."""
    return subprocess.Popen(
        [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(pgid), str(grace_s)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
