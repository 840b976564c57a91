"""What every ``fleetcast`` command shares: the consoles, the progress bar,
and writing a result folder all at once."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sim import __version__
from sim.engine.result import SimResult
from sim.outpaths import staged_folder
from sim.records import ITL_EDGES_S, write_parquet_atomic
from sim.scenario.spec import Scenario, dump_scenario

__all__ = ["console", "err_console", "progress_bar", "write_run_folder", "run_folder_files"]

console = Console()
err_console = Console(stderr=True)


class progress_bar:
    """A rich progress bar as a ``(done, total)`` callback; quiet when not a terminal."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        self.enabled = err_console.is_terminal if enabled is None else enabled
        self._progress = Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                                  disable=not self.enabled, transient=True)
        self._task = None

    def __enter__(self):
        self._progress.__enter__()
        self._task = self._progress.add_task("", total=1)
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=max(total, 1))


def write_run_folder(out: Path, files: dict[str, object]) -> None:
    """Write a run folder all at once: into a temp folder, then swap it in.
    ``files`` maps a file name to a DataFrame (``.parquet``), a string, or a
    JSON-able object."""
    with staged_folder(out) as tmp:
        for name, content in files.items():
            if name.endswith(".parquet"):
                write_parquet_atomic(content, tmp / name)
            else:
                (tmp / name).write_text(content if isinstance(content, str) else
                                        json.dumps(content, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def run_folder_files(scenario: Scenario, result: SimResult, summary: dict, *, wall_s: float,
                     exact_steps: bool) -> dict[str, object]:
    """The files of a ``fleetcast run`` folder (the contract ``fleetcast report`` reads)."""
    summary["sim"]["wall_s"] = round(wall_s, 3)
    summary["sim"]["exact_steps"] = bool(exact_steps)
    summary["fleetcast_version"] = __version__
    itl = pd.DataFrame(result.itl_hist.T, columns=result.class_names)
    itl.insert(0, "edge_lo_s", ITL_EDGES_S[:-1])
    itl.insert(1, "edge_hi_s", ITL_EDGES_S[1:])
    return {"summary.json": summary, "requests.parquet": result.requests,
            "timeseries.parquet": result.timeseries, "itl_histogram.parquet": itl,
            "scenario.yaml": dump_scenario(scenario)}
