"""``fleetcast sweep``: a grid of scenario overrides, one forecast per point.

A grid maps dotted scenario paths (``fleet.0.replicas``,
``traffic.arrival.rate_rps``) to values; the points are the cross product.
Each point is evaluated by ``evaluate_point`` — the one function both
executors run: a local process pool (default) or Ray (``--executor ray``).

Results go to ``sweep.parquet``: one row per point (grid values, a stable
``point_key``, ``status``, metrics flattened from the summary), rewritten
atomically as points finish. A re-run reads it back and skips every point
whose key is already there with status ``ok`` or ``invalid`` (``failed`` —
an unexpected exception — is retried). The key hashes the base scenario
(after ``--set``/``--seed``) and the point's values, so editing the scenario
starts the points afresh.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import importlib.util
import itertools
import json
import logging
import math
import os
import shutil
import time
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from sim.analysis.contracts.sweep import SweepPoint
from sim.analysis.forecast import forecast
from sim.analysis.metrics import cost_and_class_columns
from sim.errors import FleetcastError, ScenarioError
from sim.infiles import parse_yaml
from sim.outpaths import check_out_folder, out_lock
from sim.procs import worker_pool
from sim.records import write_parquet_atomic
from sim.scenario.spec import Scenario, scenario_from_dict
from sim.scenario.yamlio import apply_overrides, load_yaml_with_lines

__all__ = [
    "parse_grid",
    "check_grid_key",
    "grid_points",
    "point_key",
    "evaluate_point",
    "flat_metrics",
    "run_sweep",
    "EXECUTORS",
    "SWEEP_FILE",
    "MAX_GRID_POINTS",
]

SWEEP_FILE = "sweep.parquet"
#: Points one sweep may hold: each is a full simulation, and the grid is built before the first
#: (a 2,000 x 2,000 grid took ~1 GB before any point ran).
MAX_GRID_POINTS = 100_000
EXECUTORS = ("local", "ray")
_DONE = ("ok", "invalid")  # statuses a re-run does not recompute


# ------------------------------------------------------------------ grid
def _split_values(text: str) -> list[str]:
    """Split ``V1,V2,...`` on commas outside brackets/braces/quotes."""
    out, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    out.append(cur.strip())
    return out


def parse_grid(items: Iterable[str]) -> dict[str, list[str]]:
    """``["fleet.0.replicas=1,2,4", ...]`` -> {key: [raw YAML values]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise FleetcastError(f"--grid '{item}' is not KEY=V1,V2,... (e.g. --grid fleet.0.replicas=1,2,4)")
        key, raw = (s.strip() for s in item.split("=", 1))
        values = [v for v in _split_values(raw) if v != ""]
        if not key or not values:
            raise FleetcastError(f"--grid '{item}' needs a key and at least one value (KEY=V1,V2,...)")
        if key in grid:
            raise FleetcastError(f"--grid key '{key}' is given twice; list all its values once (KEY=V1,V2,...)")
        grid[key] = list(dict.fromkeys(values))
        for v in grid[key]:
            _value(v, key)  # the limits of a scenario file (size, depth, aliases), before anything else
    if not grid:
        raise FleetcastError("a sweep needs at least one --grid KEY=V1,V2,... (e.g. --grid fleet.0.replicas=1,2,4)")
    n = math.prod(len(v) for v in grid.values())
    if n > MAX_GRID_POINTS:
        sizes = " x ".join(f"{len(v):,} ({k})" for k, v in grid.items())
        raise FleetcastError(
            f"the grid has {n:,} points ({sizes}), more than the {MAX_GRID_POINTS:,} one sweep may "
            f"hold (MAX_GRID_POINTS); split it into several sweeps or use fewer values"
        )
    return grid


def _members(annotation) -> list:
    """The concrete types an annotation may hold (unwraps Optional/Union/Annotated)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(annotation) for m in _members(a)]
    return [annotation] if annotation is not type(None) else []


def check_grid_key(key: str) -> None:
    """Raise ``FleetcastError`` unless ``key`` is a path into the scenario
    format; the message names the key, the closest field and the valid ones."""
    parts = key.split(".")
    types_now: list = [Scenario]
    for depth, part in enumerate(parts):
        here = ".".join(parts[:depth]) or "(top level)"
        nxt: list = []
        fields: list[str] = []
        for t in types_now:
            origin = typing.get_origin(t)
            if isinstance(t, type) and issubclass(t, BaseModel):
                fields += [f for f in t.model_fields if f not in fields]
                if part in t.model_fields:
                    nxt += _members(t.model_fields[part].annotation)
                elif t.model_config.get("extra") == "allow":  # e.g. pricing.<gpu>: typed extra keys
                    extra = typing.get_type_hints(t, include_extras=True).get("__pydantic_extra__")
                    nxt += _members(typing.get_args(extra)[1]) if extra is not None else [Any]
            elif origin in (list, tuple):
                if part.isdigit():
                    nxt += [m for a in typing.get_args(t) if a is not Ellipsis for m in _members(a)]
                else:
                    fields.append("<index>")
            elif origin is dict:
                nxt += _members(typing.get_args(t)[1])
            elif t is Any:
                return
        if not nxt:
            if fields == ["<index>"]:
                raise FleetcastError(
                    f"--grid key '{key}' is not a scenario field: {here} is a list; address its "
                    f"items by index, e.g. '{'.'.join(parts[:depth] + ['0'] + parts[depth:])}'."
                )
            if fields:
                close = difflib.get_close_matches(part, [f for f in fields if f != "<index>"], n=1, cutoff=0.5)
                hint = f" Did you mean '{'.'.join(parts[:depth] + [close[0]])}'?" if close else ""
                what = "valid top-level sections" if depth == 0 else f"valid fields of {here}"
                raise FleetcastError(
                    f"--grid key '{key}' is not a scenario field: '{part}' is not a field of {here}.{hint} "
                    f"The {what}: {', '.join(fields)}."
                )
            raise FleetcastError(f"--grid key '{key}' is not a scenario field: {here} is a value, not a section.")
        types_now = nxt


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Cross product of the grid, in the order given (last key fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _value(raw: str, key: str = "KEY"):
    """A grid value as YAML, within the limits of a scenario file (text that is not YAML is itself)."""
    return parse_yaml(raw, f"--grid '{key}'", invalid_as_text=True)[0]


def _hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def point_key(base_hash: str, point: dict[str, str]) -> str:
    """Stable id of a point: the base scenario's hash and the parsed values."""
    return _hash({"scenario": base_hash, "point": {k: _value(v, k) for k, v in point.items()}})[:16]


# -------------------------------------------------------------- one point
def flat_metrics(summary: dict) -> dict:
    """Key metrics of a summary as flat columns (per class as ``<class>.<metric>``)."""
    o, util = summary["overall"], summary["utilization"]["fleet"]
    row: dict[str, Any] = {
        "slo_met": bool(o["slo_met"]),
        "attainment_pct": o["attainment_pct"],
        "requests": o["counts"]["total"],
        "requests_ok": o["counts"]["ok"],
    }
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        for p in ("p50", "p90", "p99"):
            row[f"{p}_{m}"] = o[m][p]
    row.update(
        requests_per_s=o["requests_per_s"],
        output_tokens_per_s=o["output_tokens_per_s"],
        goodput_rps=o["goodput_rps"],
        busy_frac=util["busy_frac"],
        kv_usage=util["kv_usage"],
        mfu=util["mfu"],
        mbu=util["mbu"],
    )
    row.update(cost_and_class_columns(summary))
    return row


def evaluate_point(base_data: dict, path: str | None, point: dict[str, str], key: str) -> dict:
    """Simulate one grid point; returns its row. Both executors run this.

    status: ``ok``; ``invalid`` (the point is not a valid scenario, or its
    model does not fit: ``error`` says why); ``failed`` (an unexpected
    exception; retried by a re-run).
    """
    started = time.perf_counter()
    row: dict[str, Any] = {
        "point_key": key,
        **{k: _value(v, k) for k, v in point.items()},
        "status": "ok",
        "error": None,
    }
    where = path or "<scenario>"
    try:
        data = apply_overrides(base_data, [f"{k}={v}" for k, v in point.items()], where=where)
        scenario = scenario_from_dict(data, path=Path(path) if path else None)
        _, summary = forecast(scenario)
        row.update(flat_metrics(summary))
    except FleetcastError as exc:
        row.update(status="invalid", error=str(exc))
    except Exception as exc:  # noqa: BLE001 — one bad point must not lose the sweep
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    row["wall_s"] = round(time.perf_counter() - started, 4)
    SweepPoint.split(row, point)  # the row's fixed columns fit their contract (a typo here fails the tests)
    return row


# -------------------------------------------------------------- executors
Task = tuple  # (base_data, path, point, key)


def _local(tasks: list[Task], workers: int) -> Iterator[dict]:
    if workers <= 1:  # in-process: same function, no pool
        for t in tasks:
            yield evaluate_point(*t)
        return

    with worker_pool(workers) as pool:  # Ctrl-C or the caller stopping: no queued point starts, none is waited for
        futs = [pool.submit(evaluate_point, *t) for t in tasks]
        for fut in as_completed(futs):
            yield fut.result()


def _ray(tasks: list[Task], workers: int | None, address: str | None) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise FleetcastError("--executor ray needs Ray: pip install 'fleetcast[ray]' (or pip install ray)") from None
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "address": address,
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        if address is None and workers:
            kwargs["num_cpus"] = workers
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise FleetcastError(f"cannot start or reach Ray (address {address or 'local'}): {exc}") from None
        started = True
    remote = ray.remote(num_cpus=1)(evaluate_point)
    shared: dict[int, Any] = {}
    pending = []
    for base, path, point, key in tasks:
        ref = shared.setdefault(id(base), ray.put(base))  # the base scenario is shipped once
        pending.append(remote.remote(ref, path, point, key))
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                yield ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()


# ------------------------------------------------------------------ sweep
def _frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for col in df.columns:  # mixed-type object columns (e.g. 1 and "a") -> text, so Parquet can hold them
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and v != v)}
            if len(kinds) > 1 or kinds & {dict, list}:
                df[col] = df[col].map(
                    lambda v: None if v is None else json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                )
    return df


def _check_out(out: Path, force: bool = False) -> None:
    """Refuse an output folder that is a file, cannot be written or holds another command's
    results (unless ``force``), before any simulation."""
    what = f"sweep results ({SWEEP_FILE})"
    check_out_folder(out, what, kind="sweep", force=force)
    target = out / SWEEP_FILE
    if target.exists() and not target.is_file():
        raise FleetcastError(
            f"{target} is not a file; it is where the {what} go: remove it or choose another --out folder"
        )


def _read_done(target: Path) -> dict[str, dict]:
    """Rows of an earlier run of this sweep, by point key."""
    try:
        df = pd.read_parquet(target)
    except Exception as exc:  # noqa: BLE001 — pyarrow raises several unrelated types (ArrowInvalid, OSError)
        raise FleetcastError(
            f"{target} (the results of an earlier run of this sweep) is not a readable Parquet "
            f"table ({exc}); delete it to start the sweep afresh, or choose another --out "
            "folder"
        ) from None
    if "point_key" not in df.columns or "status" not in df.columns:
        raise FleetcastError(
            f"{target} is not a fleetcast sweep table (no point_key and status columns); "
            "delete it to start the sweep afresh, or choose another --out folder"
        )
    return {
        r["point_key"]: {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in df.to_dict("records")
    }


def _write(df: pd.DataFrame, target: Path, made: Path | None = None) -> None:
    """Write the table atomically; on failure (a full disk) remove ``made``, the folder this
    sweep created, if it holds nothing else."""
    try:
        write_parquet_atomic(df, target)
    except OSError as exc:
        if made is not None and not target.exists() and made.is_dir() and not any(made.iterdir()):
            shutil.rmtree(made, ignore_errors=True)
        raise FleetcastError(
            f"cannot write sweep results to {target}: {exc.strerror or exc}; choose a folder you can write"
        ) from None


def run_sweep(
    scenario_path: str | Path,
    grid: dict[str, list[str]],
    out: str | Path,
    *,
    overrides: list[str] | None = None,
    seed: int | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    flush_every_s: float = 1.0,
    force: bool = False,
) -> pd.DataFrame:
    """Evaluate every grid point not already in ``out/sweep.parquet``; returns all rows.

    Raises ``FleetcastError`` before any simulation when ``out`` is a file,
    cannot be written or is another sweep's now (``out_lock``), and when every
    point is invalid (writing nothing, unless an earlier run's table is there
    to keep). A grid value goes through the scenario file's limits.
    """
    if executor not in EXECUTORS:
        raise FleetcastError(f"unknown executor '{executor}'; valid: {', '.join(EXECUTORS)}")
    path = Path(scenario_path)
    if not path.is_file():
        raise ScenarioError(f"scenario file not found: {path}")
    data, lines = load_yaml_with_lines(path)
    where = str(path)
    if overrides:
        data = apply_overrides(data, overrides, where=where)
    if seed is not None:
        data = {**data, "seed": seed}
    scenario_from_dict(copy.deepcopy(data), path=path.resolve(), lines=lines)  # the base must be valid
    for key, values in grid.items():
        check_grid_key(key)
        try:  # the validator names unknown keys the schema walk let through (e.g. inside params)
            scenario_from_dict(apply_overrides(data, [f"{key}={values[0]}"], where=where), path=path.resolve())
        except ScenarioError as exc:
            if "unknown key" in str(exc):
                raise FleetcastError(f"--grid key '{key}' is not a scenario field: {exc}") from None

    if executor == "ray" and importlib.util.find_spec("ray") is None:  # before anything is written
        raise FleetcastError("--executor ray needs Ray: pip install 'fleetcast[ray]' (or pip install ray)")
    base_hash = _hash(data)
    points = grid_points(grid)
    keys = [point_key(base_hash, p) for p in points]
    out = Path(out)
    _check_out(out, force)
    with out_lock(out, f"sweep results ({SWEEP_FILE})"):
        return _sweep(data, path, grid, keys, points, out, executor, workers, address, progress, flush_every_s)


def _sweep(data, path, grid, keys, points, out, executor, workers, address, progress, flush_every_s):
    """``run_sweep`` once its inputs are checked and ``out`` is locked."""
    target = out / SWEEP_FILE
    existed, folder_existed = target.is_file(), out.is_dir()
    rows: dict[str, dict] = _read_done(target) if existed else {}
    todo_keys = {k for k in keys if k not in rows or rows[k].get("status") not in _DONE}
    tasks = [(data, str(path.resolve()), p, k) for p, k in zip(points, keys) if k in todo_keys]
    tasks = list({t[3]: t for t in tasks}.values())
    done, total = len(set(keys)) - len(tasks), len(set(keys))
    if progress:
        progress(done, total)
    if executor == "local":
        n = workers or os.cpu_count() or 1
        results = _local(tasks, min(n, max(len(tasks), 1)))
    else:
        results = _ray(tasks, workers, address)
    last = time.monotonic()
    dirty = False
    worth = existed  # a sweep whose every point is invalid writes nothing: it is refused below
    try:
        for row in results:
            rows[row["point_key"]] = row
            done, dirty = done + 1, True
            worth = worth or row["status"] != "invalid"
            if progress:
                progress(done, total)
            if worth and time.monotonic() - last >= flush_every_s:
                _write(_frame(list(rows.values())), target, None if folder_existed else out)
                last, dirty = time.monotonic(), False
    finally:  # a crash keeps every finished point
        results.close()  # stop the executor first (Ctrl-C here, between points, must not wait for its queue)
        if worth and (dirty or not target.exists()):
            _write(_frame(list(rows.values())), target, None if folder_existed else out)
    df = _frame([rows[k] for k in dict.fromkeys(keys)])
    if len(df) and (df["status"] == "invalid").all():
        first = df.iloc[0]
        values = ", ".join(f"{k}={first[k]}" for k in grid if k in df.columns)
        kept = f" (every point's status and error are in {target})" if worth else " (nothing was written)"
        raise FleetcastError(
            f"none of the {len(df)} sweep point(s) is valid, so nothing was forecast; the first, "
            f"{values}: {first['error']}{kept}"
        )
    return df
