"""What every ``fleetcast`` command shares: the consoles, the progress bar,
and writing a result folder all at once."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sim import __version__
from sim.analysis.contracts import SCHEMA_VERSION, RunSummary, contract_json
from sim.engine.result import SimResult
from sim.outpaths import staged_folder
from sim.records import ITL_EDGES_S, write_parquet_atomic
from sim.report.terminal import make_console
from sim.scenario.spec import Scenario, dump_scenario

__all__ = ["console", "err_console", "progress_bar", "write_run_folder", "run_folder_files"]

console = make_console()
err_console = make_console(stderr=True)


class progress_bar:
    """A rich progress bar as a ``(done, total[, text])`` callback. When stderr is not a
    terminal (redirected, CI), a plain line instead every ``every_s`` seconds, from
    ``every_s`` on: done, elapsed, time left at the rate so far, and ``text``; a timer
    thread repeats the last state when no callback came for ``every_s`` (a long step is
    not silent either). ``unit`` names what is counted; ``estimated`` says the total is an
    estimate; ``eta=False`` shows no time left (steps of very unequal length: the rate so far
    would mislead)."""

    def __init__(
        self,
        label: str,
        enabled: bool | None = None,
        every_s: float = 5.0,
        unit: str = "",
        estimated: bool = False,
        eta: bool = True,
    ) -> None:
        self.enabled = err_console.is_terminal if enabled is None else enabled
        self.label, self.every_s, self.unit, self.estimated, self.eta = label, every_s, unit, estimated, eta
        self._progress = Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            *([TimeRemainingColumn()] if eta else []),
            TextColumn("{task.description}"),
            console=err_console,
            disable=not self.enabled,
            transient=True,
        )
        self._task: Any = None  # a rich TaskID once entered
        self._state: tuple[int, int, str | None] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self._started = time.monotonic()
        self._next_line = self._started + every_s

    def __enter__(self):
        self._progress.__enter__()
        self._task = self._progress.add_task("", total=1)
        if not self.enabled and self.every_s > 0:
            self._timer = threading.Thread(target=self._tick, daemon=True)
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=1.0)
        self._progress.__exit__(*exc)

    def __call__(self, done: int, total: int, text: str | None = None) -> None:
        self._progress.update(
            self._task,
            completed=done,
            total=max(total, 1),
            description=f"{done:,} of {'~' if self.estimated else ''}{total:,}{self.unit}"
            + (f"; {text}" if text else ""),
        )
        with self._lock:
            self._state = (done, total, text)
            if not self.enabled:
                self._line()

    def _tick(self) -> None:
        while not self._stop.wait(self.every_s / 2):
            with self._lock:
                self._line()

    def _line(self) -> None:
        """Print the state as a line if one is due and the work is not done (lock held)."""
        now = time.monotonic()
        if self._state is None or now < self._next_line or self._state[0] >= self._state[1]:
            return
        self._next_line = now + self.every_s
        done, total, text = self._state
        elapsed = now - self._started
        left = f", about {elapsed * (total - done) / done:,.0f} s left" if done and self.eta else ""
        about = "about " if self.estimated else ""
        err_console.print(
            f"{self.label}: {100 * done / max(total, 1):.0f}% ({done:,} of {about}{total:,}"
            f"{self.unit}), {elapsed:,.0f} s elapsed{left}" + (f"; {text}" if text else ""),
            highlight=False,
            soft_wrap=True,
        )


def write_run_folder(out: Path, files: dict[str, object], kind: str | None = None, force: bool = False) -> None:
    """Write a run folder all at once: into a temp folder, then swap it in.
    ``files`` maps a file name to a DataFrame (``.parquet``), a string, or a
    JSON-able object."""
    with staged_folder(out, kind=kind, force=force) as tmp:
        for name, content in files.items():
            if name.endswith(".parquet"):
                write_parquet_atomic(content, tmp / name)
            else:
                (tmp / name).write_text(
                    content if isinstance(content, str) else json.dumps(content, indent=2, allow_nan=False) + "\n",
                    encoding="utf-8",
                )


def run_folder_files(
    scenario: Scenario, result: SimResult, summary: dict, *, wall_s: float, exact_steps: bool
) -> dict[str, object]:
    """The files of a ``fleetcast run`` folder (the contract ``fleetcast report`` reads);
    ``summary.json`` is written through its contract (``RunSummary``)."""
    summary["sim"]["wall_s"] = round(wall_s, 3)
    summary["sim"]["exact_steps"] = bool(exact_steps)
    summary["fleetcast_version"] = __version__
    summary["schema_version"] = SCHEMA_VERSION
    itl = pd.DataFrame(result.itl_hist.T, columns=result.class_names)
    itl.insert(0, "edge_lo_s", ITL_EDGES_S[:-1])
    itl.insert(1, "edge_hi_s", ITL_EDGES_S[1:])
    return {
        "summary.json": contract_json(RunSummary.model_validate(summary)),
        "requests.parquet": result.requests,
        "timeseries.parquet": result.timeseries,
        "itl_histogram.parquet": itl,
        "scenario.yaml": dump_scenario(scenario),
    }
