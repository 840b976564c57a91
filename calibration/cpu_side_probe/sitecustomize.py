"""Step probe for the CPU testbed (``calibration/cpu_side_measure.py``): times vLLM's step parts.

Put this folder on ``PYTHONPATH`` of a vLLM server with ``FLEETCAST_STEP_PROBE=<file>``: every
Python process imports it at start and, once vLLM's modules are imported, wraps them with
``time.perf_counter`` (wall) and ``time.thread_time`` (the calling thread's CPU, which other
processes on a shared machine do not inflate) timers:

- engine-core process: ``EngineCore.step`` (one whole serial step), ``Scheduler.schedule`` and
  ``Scheduler.update_from_output``; one CSV row per step that ran the model, appended to
  ``<file>``: ``t_s, num_reqs, num_tokens, step_s, schedule_s, forward_s, sample_s, update_s,
  step_cpu_s, forward_cpu_s`` (forward and sample are 0 there: the model runs in the worker);
- model-worker process: ``GPUModelRunner.execute_model`` (input preparation + forward) and
  ``sample_tokens``, with ``_model_forward`` inside; one row per call, appended to
  ``<file>.worker``: ``call, t_s, num_reqs, num_tokens, wall_s, cpu_s, forward_s, forward_cpu_s``.

Without the variable it does nothing. Measurement code only: nothing of fleetcast imports it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import time

_PATH = os.environ.get("FLEETCAST_STEP_PROBE")
_acc = {"forward_s": 0.0, "sample_s": 0.0, "schedule_s": 0.0, "update_s": 0.0, "forward_cpu_s": 0.0}
_rows: list[str] = []


def _timed(cls, name: str, key: str) -> None:
    orig = getattr(cls, name)

    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return orig(*args, **kwargs)
        finally:
            _acc[key] += time.perf_counter() - t0
            if key == "forward_s":
                _acc["forward_cpu_s"] += time.thread_time() - c0

    setattr(cls, name, wrapper)


def _flush() -> None:
    if _rows and _PATH:
        with open(_PATH, "a", encoding="utf-8") as f:
            f.write("".join(_rows))
        _rows.clear()


def _patch_core(mod) -> None:
    orig = mod.EngineCore.step

    def step(self):
        for k in _acc:
            _acc[k] = 0.0
        t0, c0 = time.perf_counter(), time.thread_time()
        holder = {}
        sched = self.scheduler.schedule

        def schedule(*a, **kw):  # keep the scheduler output to count requests and tokens
            out = sched(*a, **kw)
            holder["out"] = out
            return out

        self.scheduler.schedule = schedule
        try:
            result = orig(self)
        finally:
            del self.scheduler.schedule
        dt, dc = time.perf_counter() - t0, time.thread_time() - c0
        so = holder.get("out")
        if so is not None and so.total_num_scheduled_tokens > 0:
            _rows.append(
                f"{t0:.6f},{len(so.num_scheduled_tokens)},{so.total_num_scheduled_tokens},{dt:.7f},"
                f"{_acc['schedule_s']:.7f},{_acc['forward_s']:.7f},{_acc['sample_s']:.7f},{_acc['update_s']:.7f},"
                f"{dc:.7f},{_acc['forward_cpu_s']:.7f}\n"
            )
            if len(_rows) >= 10:
                _flush()
        return result

    mod.EngineCore.step = step


def _patch_scheduler(mod) -> None:
    _timed(mod.Scheduler, "schedule", "schedule_s")
    _timed(mod.Scheduler, "update_from_output", "update_s")


def _patch_runner(mod) -> None:
    """Worker process: one row per execute_model / sample_tokens call, to ``<file>.worker``."""
    _timed(mod.GPUModelRunner, "_model_forward", "forward_s")
    rows: list[str] = []
    path = f"{_PATH}.worker"

    def logged(name: str):
        orig = getattr(mod.GPUModelRunner, name)

        def wrapper(self, *args, **kwargs):
            _acc["forward_s"] = _acc["forward_cpu_s"] = 0.0
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return orig(self, *args, **kwargs)
            finally:
                dt, dc = time.perf_counter() - t0, time.thread_time() - c0
                so = args[0] if name == "execute_model" and args else None
                n_req = len(so.num_scheduled_tokens) if so is not None else -1
                n_tok = so.total_num_scheduled_tokens if so is not None else -1
                if n_tok != 0:
                    rows.append(
                        f"{name},{t0:.6f},{n_req},{n_tok},{dt:.7f},{dc:.7f},"
                        f"{_acc['forward_s']:.7f},{_acc['forward_cpu_s']:.7f}\n"
                    )
                if len(rows) >= 20:
                    with open(path, "a", encoding="utf-8") as f:
                        f.write("".join(rows))
                    rows.clear()

        setattr(mod.GPUModelRunner, name, wrapper)

    logged("execute_model")
    logged("sample_tokens")


_TARGETS = {
    "vllm.v1.engine.core": _patch_core,
    "vllm.v1.core.sched.scheduler": _patch_scheduler,
    "vllm.v1.worker.gpu_model_runner": _patch_runner,
}


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a target module right after it is executed."""

    def find_spec(self, name, path, target=None):
        if name not in _TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def patched(module):
            exec_module(module)
            _TARGETS[name](module)

        loader.exec_module = patched
        return spec


if _PATH:
    import atexit

    sys.meta_path.insert(0, _Finder())
    atexit.register(_flush)
