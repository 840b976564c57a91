"""A testbed run is a self-describing folder.

```
requests.parquet        sim.records.REQUEST_COLUMNS + ttft_s, tpot_s, e2e_s
itl.parquet             request_id, token_index, t_s  (one row per token chunk)
timeseries.parquet      sim.records.TIMESERIES_COLUMNS (from /metrics, ~1 Hz)
server_metrics.parquet  every scraped column (counters, prefix cache, ...)
run.json                what ran where: vLLM version, engine args, KV blocks,
                        hardware, model config, scenario, seed, times,
                        completed + reason
server.log              the server's output (when the testbed started it)
```

``run.json`` is written first with ``completed: false`` and the client's
process id, and rewritten at the end, so a crash still leaves a folder that says
what it was. While the run goes, each finished request's record is appended to
``requests.partial.jsonl`` (one JSON object per line, flushed as written); the
end replaces it with ``requests.parquet``. After a SIGKILL, ``read_run`` takes
the records from the journal and says the run was interrupted: only the
requests in flight are lost. Other writes are atomic (temp file + rename).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from sim.records import REQUEST_COLUMNS, TIMESERIES_COLUMNS, derive_latencies, write_parquet_atomic, write_text_atomic

__all__ = [
    "ITL_COLUMNS",
    "JOURNAL",
    "RecordJournal",
    "hardware_info",
    "model_info",
    "server_meta",
    "now_iso",
    "requests_frame",
    "write_run_json",
    "read_run_json",
    "write_tables",
    "read_run",
    "read_journal",
    "interrupted_meta",
    "is_complete",
]

ITL_COLUMNS = {"request_id": "int64", "token_index": "int64", "t_s": "float64"}
JOURNAL = "requests.partial.jsonl"


class RecordJournal:
    """Appends request records to ``<folder>/requests.partial.jsonl`` as they end.

    Each line is flushed to the kernel as it is written, so it survives a SIGKILL of
    this process (not a power cut: no fsync per line). ``finish`` removes the file once
    ``requests.parquet`` holds every record."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / JOURNAL
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed by finish()

    def append(self, record: dict) -> None:
        self._f.write(json.dumps(record, default=_json_number, allow_nan=True) + "\n")
        self._f.flush()

    def finish(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)


def _json_number(x):
    """numpy scalars in a record -> plain numbers."""
    return x.item() if hasattr(x, "item") else str(x)


def read_journal(folder: Path) -> pd.DataFrame | None:
    """The records of an interrupted run's journal (a torn last line is dropped), or None."""
    path = Path(folder) / JOURNAL
    if not path.exists():
        return None
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            break  # the line being written when the process died
    return requests_frame(rows)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def hardware_info() -> dict:
    """CPU model, cores, memory, GPUs (nvidia-smi -L) of this machine."""
    cpu = ""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith(("flags", "Features")) and not flags:  # x86 "flags", aarch64 "Features"
                flags = [
                    f
                    for f in line.split(":", 1)[1].split()
                    if f.startswith(("avx", "amx", "sve", "asimd")) or f in ("fma", "f16c", "bf16", "i8mm")
                ]
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine()  # aarch64 /proc/cpuinfo has no "model name"
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    gpus: list[str] = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            gpus = [g for g in out.stdout.splitlines() if g.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {
        "cpu_model": cpu,
        "cpu_cores": os.cpu_count(),
        "cpu_flags": flags,
        "memory_gib": mem_gib,
        "gpus": gpus,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def model_info(model_dir: str | Path) -> dict:
    """config.json (and fleetcast_model.json, if present) of a model folder."""
    model_dir = Path(model_dir)
    info: dict = {"path": str(model_dir.resolve())}
    for name, key in (("config.json", "config"), ("fleetcast_model.json", "built_by_fleetcast")):
        try:
            info[key] = json.loads((model_dir / name).read_text())
        except (OSError, ValueError):
            pass
    return info


def server_meta(engine, model_dir: str | Path, **extra) -> dict:
    """run.json fields that say how the server ran: engine arguments, served name, model."""
    return {
        "engine_args": engine.as_dict(),
        "served_model_name": engine.served_model_name,
        "model": model_info(model_dir),
        **extra,
    }


def write_run_json(folder: Path, meta: dict) -> None:
    write_text_atomic(json.dumps(meta, indent=2, default=str, sort_keys=False) + "\n", Path(folder) / "run.json")


def read_run_json(folder: Path) -> dict:
    return json.loads((Path(folder) / "run.json").read_text())


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished run (resumable sweeps skip it)."""
    try:
        return bool(read_run_json(folder).get("completed"))
    except (OSError, ValueError):
        return False


def requests_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows -> REQUEST_COLUMNS (exact dtypes, by request_id) + derived latencies."""
    df = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    df = df.astype(REQUEST_COLUMNS).sort_values("request_id", kind="stable").reset_index(drop=True)
    return derive_latencies(df)


def write_tables(
    folder: Path, requests: pd.DataFrame, itl_rows: list, timeseries: pd.DataFrame, server_metrics: pd.DataFrame
) -> None:
    folder = Path(folder)
    write_parquet_atomic(requests, folder / "requests.parquet")
    itl = pd.DataFrame(itl_rows, columns=list(ITL_COLUMNS)).astype(ITL_COLUMNS)
    write_parquet_atomic(itl, folder / "itl.parquet")
    write_parquet_atomic(timeseries.astype(TIMESERIES_COLUMNS), folder / "timeseries.parquet")
    write_parquet_atomic(server_metrics, folder / "server_metrics.parquet")


def read_run(folder: Path) -> dict:
    """All tables of a run folder plus its run.json, as a dict."""
    folder = Path(folder)
    out: dict = {"meta": read_run_json(folder)}
    for name in ("requests", "itl", "timeseries", "server_metrics"):
        path = folder / f"{name}.parquet"
        out[name] = pd.read_parquet(path) if path.exists() else None
    if out["requests"] is None:
        out["requests"] = read_journal(folder)
        if out["requests"] is not None:
            out["meta"] = {**out["meta"], **interrupted_meta(out["meta"], len(out["requests"]))}
    return out


def interrupted_meta(meta: dict, recovered: int) -> dict:
    """run.json fields for a run whose client died before writing requests.parquet."""
    pid = meta.get("client_pid")
    gone = "" if pid is None else f"the client (pid {pid}) {'is still running' if _alive(pid) else 'is gone'}; "
    return {
        "completed": False,
        "reason": f"interrupted before the end: {gone}{recovered} request records recovered from {JOURNAL} "
        "(requests in flight at the kill are lost)",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True
