"""Garbage-collection probe for the CPU testbed (``calibration/gc_pause_measure.py``).

Put this folder on ``PYTHONPATH`` of a vLLM server with ``FLEETCAST_GC_PROBE=<prefix>``: every
Python process that imports it (the API server, and by fork or spawn the engine core and model
worker) registers a ``gc.callbacks`` hook and appends one CSV row per collection to
``<prefix>.<pid>``: ``t_s, role, generation, pause_s, cpu_s, collected, tracked``
(``cpu_s``: the collecting thread's CPU time, which other processes on a shared machine do not
inflate). ``role`` is read from
the process title vLLM sets (``VLLM::EngineCore``, ``VLLM::Worker``; anything else is the API
server's process or a helper). ``tracked`` (objects the collector tracks after the collection,
``len(gc.get_objects())``) is counted after generation-2 collections only, outside the timed
pause; -1 elsewhere.

``FLEETCAST_GC_FREEZE=api`` makes ``gc.freeze()`` a no-op outside the API server's process: vLLM
0.8.5 froze only the API server's heap (``entrypoints/openai/api_server.py``), later versions
freeze the engine core (vLLM PR #24008) and the GPU worker (PR #44363) too. ``none`` makes it a
no-op everywhere; unset keeps the installed vLLM's behaviour.

Without ``FLEETCAST_GC_PROBE`` it does nothing. Measurement code only: nothing of fleetcast
imports it.
"""

from __future__ import annotations

import atexit
import gc
import os
import time

_PREFIX = os.environ.get("FLEETCAST_GC_PROBE")
_MODE = os.environ.get("FLEETCAST_GC_FREEZE", "")
_state = {"t0": 0, "c0": 0, "pid": 0, "last_flush": 0.0}
_rows: list[str] = []


def _role() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return "unknown"
    if b"EngineCore" in cmd:
        return "engine_core"
    if b"Worker" in cmd:
        return "worker"
    if b"vllm" in cmd or b"serve" in cmd:
        return "api_server"
    return "other"


def _flush() -> None:
    if not _rows:
        return
    role = _role()  # read at flush, not per collection: vLLM titles its processes after fork
    with open(f"{_PREFIX}.{os.getpid()}", "a", encoding="utf-8") as f:
        f.write("".join(r.replace("ROLE", role, 1) for r in _rows))
    _rows.clear()
    _state["last_flush"] = time.monotonic()


def _callback(phase: str, info: dict) -> None:
    if phase == "start":
        _state["t0"] = time.perf_counter_ns()
        _state["c0"] = time.thread_time_ns()
        return
    pause_s = (time.perf_counter_ns() - _state["t0"]) / 1e9
    cpu_s = (time.thread_time_ns() - _state["c0"]) / 1e9
    pid = os.getpid()
    if pid != _state["pid"]:  # a forked child inherits the parent's unflushed rows
        _rows.clear()
        _state["pid"] = pid
    gen = info.get("generation", -1)
    tracked = len(gc.get_objects()) if gen == 2 else -1
    _rows.append(f"{time.time():.6f},ROLE,{gen},{pause_s:.7f},{cpu_s:.7f},{info.get('collected', -1)},{tracked}\n")
    if gen == 2 or len(_rows) >= 500 or time.monotonic() - _state["last_flush"] > 1.0:
        _flush()


_real_freeze = gc.freeze


def _freeze() -> None:
    role = _role()
    skip = _MODE == "none" or (_MODE == "api" and role != "api_server")
    with open(f"{_PREFIX}.freeze", "a", encoding="utf-8") as f:
        f.write(f"{time.time():.6f},{os.getpid()},{role},{'skipped' if skip else 'frozen'},{len(gc.get_objects())}\n")
    if not skip:
        _real_freeze()


if _PREFIX:
    atexit.register(_flush)
    _state["pid"] = os.getpid()
    gc.callbacks.append(_callback)
    gc.freeze = _freeze
