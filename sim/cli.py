"""The ``fleetcast`` command.

Every user-caused error is a ``FleetcastError``: printed as one paragraph,
exit status 2, no traceback, nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from sim import __version__
from sim.errors import FleetcastError

__all__ = ["main", "progress_bar"]

console = Console()
err_console = Console(stderr=True)


class progress_bar:
    """A rich progress bar as a ``(done, total)`` callback; quiet when not a terminal."""

    def __init__(self, label: str, enabled: bool | None = None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
    """Write a run folder all at once: into a temp folder, then swap it in."""
    from sim.records import write_parquet_atomic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, content in files.items():
            if name.endswith(".parquet"):
                write_parquet_atomic(content, tmp / name)
            else:
                (tmp / name).write_text(content if isinstance(content, str) else
                                        json.dumps(content, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from sim.forecast import forecast
    from sim.metrics import render_summary
    from sim.records import ITL_EDGES_S
    from sim.scenario import dump_scenario, load_scenario
    from sim.warnings import range_warnings

    scenario = load_scenario(args.scenario, overrides=args.set, seed=args.seed)
    for line in range_warnings(scenario):
        err_console.print(f"[yellow]warning:[/yellow] {line}")
    started = time.perf_counter()
    with progress_bar(f"simulating {scenario.name}") as bar:
        result, summary = forecast(scenario, exact_steps=args.exact_steps, progress=bar)
    wall_s = time.perf_counter() - started
    summary["sim"]["wall_s"] = round(wall_s, 3)
    summary["sim"]["exact_steps"] = bool(args.exact_steps)
    summary["fleetcast_version"] = __version__
    out = Path(args.out or Path("out") / scenario.name)
    itl = pd.DataFrame(result.itl_hist.T, columns=result.class_names)
    itl.insert(0, "edge_lo_s", ITL_EDGES_S[:-1])
    itl.insert(1, "edge_hi_s", ITL_EDGES_S[1:])
    files = {"summary.json": summary, "requests.parquet": result.requests,
             "timeseries.parquet": result.timeseries, "itl_histogram.parquet": itl,
             "scenario.yaml": dump_scenario(scenario)}
    if args.csv:
        files["requests.csv"] = result.requests.to_csv(index=False)
    write_run_folder(out, files)
    console.print(render_summary(summary))
    n = len(result.requests)
    console.print(f"[dim]{n:,} requests simulated in {wall_s:.2f} s ({n / max(wall_s, 1e-9):,.0f} req/s); "
                  f"results in {out}/[/dim]")
    del np
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from sim.schema_doc import scenario_reference

    text = scenario_reference()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_catalog(args: argparse.Namespace) -> int:
    from rich.table import Table

    from sim.catalog import load_catalog

    cat = load_catalog([Path(p) for p in args.file])
    t = Table(title="GPUs", title_justify="left")
    for col in ("name", "bf16 TFLOP/s", "HBM GiB", "HBM TB/s", "link GB/s", "W", "$/h"):
        t.add_column(col, justify="right" if col != "name" else "left")
    for name in cat.gpu_names():
        g = cat.gpu(name)
        t.add_row(name, f"{g.peak_flops.get('bf16', 0) / 1e12:,.0f}", f"{g.hbm_bytes / 2**30:,.0f}",
                  f"{g.hbm_bw_bytes_s / 1e12:.2f}", f"{g.interconnect_bw_bytes_s / 1e9:,.0f}",
                  f"{g.power_w:,.0f}" if g.power_w else "-", f"{g.price_usd_per_hour:.2f}")
    console.print(t)
    m = Table(title="Models", title_justify="left")
    for col in ("name", "params (B)", "active (B)", "layers", "hidden", "kv heads", "context"):
        m.add_column(col, justify="right" if col != "name" else "left")
    for name in cat.model_names():
        s = cat.model(name)
        m.add_row(name, f"{s.params_total / 1e9:.1f}", f"{s.params_active / 1e9:.1f}", str(s.num_layers),
                  str(s.hidden_size), str(s.num_kv_heads), f"{s.max_position_embeddings:,}")
    console.print(m)
    console.print(f"weights: {', '.join(cat.weight_schemes())}; kv_cache: {', '.join(cat.kv_schemes())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetcast", description="Forecast an LLM serving fleet before you buy it.")
    p.add_argument("--version", action="version", version=f"fleetcast {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="simulate a scenario and summarize it")
    r.add_argument("scenario", help="scenario YAML file")
    r.add_argument("--out", help="output folder (default: out/<scenario name>)")
    r.add_argument("--seed", type=int, help="replace the scenario's seed")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. fleet.0.replicas=8 (repeatable)")
    r.add_argument("--exact-steps", action="store_true",
                   help="step every engine iteration instead of fast-forwarding decode runs (same results, slower)")
    r.add_argument("--csv", action="store_true", help="also write requests.csv")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("schema", help="print the scenario format reference (Markdown)")
    s.add_argument("--out", help="write to this file instead of stdout")
    s.set_defaults(func=_cmd_schema)

    c = sub.add_parser("catalog", help="list GPUs, models and quantization schemes")
    c.add_argument("--file", action="append", default=[], help="extra catalog YAML file (repeatable)")
    c.set_defaults(func=_cmd_catalog)

    for mod in ("testbed.cli", "sim.cli_plan", "sim.cli_report", "sim.cli_compare", "calibration.cli"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ImportError:
            continue
        register = getattr(module, "register", None) or getattr(module, "add_testbed_commands", None)
        if register is not None:
            register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FleetcastError as exc:
        err_console.print("[bold red]error:[/bold red] " + escape(str(exc)), highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
