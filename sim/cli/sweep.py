"""``fleetcast sweep``: forecast every point of a grid of scenario overrides
(resumable: finished points are kept in ``sweep.parquet`` and skipped)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.table import Table

from sim.errors import FleetcastError
from sim.infiles import int_arg, out_arg
from sim.report.fit_table import Fitting
from sim.scenario.spec import load_scenario

__all__ = ["register"]


def _cmd_sweep(args: argparse.Namespace) -> int:
    if args.address is not None and args.executor != "ray":  # ignored by the local pool before
        raise FleetcastError(f"--address {args.address} is a Ray cluster's: add --executor ray, or drop it")
    load_scenario(args.scenario, overrides=args.set, seed=args.seed)  # a bad base: refused before the engine's import
    from sim.analysis.sweep import SWEEP_FILE, parse_grid, run_sweep
    from sim.cli.common import console, err_console, progress_bar

    grid = parse_grid(args.grid)
    out = Path(args.out or Path("out") / f"{Path(args.scenario).stem}-sweep")
    started = time.perf_counter()
    with progress_bar("sweep (points)") as bar:
        df = run_sweep(
            args.scenario,
            grid,
            out,
            overrides=args.set,
            seed=args.seed,
            executor=args.executor,
            workers=args.workers,
            address=args.address,
            progress=bar,
            force=args.force,
        )
    t = Table(title=f"sweep: {len(df)} points", title_justify="left")
    cols = [*grid, "status", "slo_met", "attainment_pct", "p99_ttft_s", "p99_tpot_s", "usd_per_month"]
    cols = [c for c in cols if c in df.columns]
    for c in cols:
        t.add_column(c, justify="right")
    for _, r in df.head(args.show).iterrows():
        t.add_row(
            *(
                "-" if r[c] is None or r[c] != r[c] else f"{r[c]:,.4g}" if isinstance(r[c], float) else str(r[c])
                for c in cols
            )
        )
    console.print(Fitting(t))  # a narrow terminal: turned or as lines, no cell cut
    bad = df[df["status"] != "ok"]
    for _, r in bad.head(3).iterrows():
        err_console.print(
            f"[yellow]{r['status']}[/yellow] point {r['point_key']}: {r['error']}", highlight=False, soft_wrap=True
        )
    console.print(
        f"[dim]{len(df)} points ({(df['status'] == 'ok').sum()} ok) in "
        f"{time.perf_counter() - started:.1f} s; results in {out / SWEEP_FILE}[/dim]"
    )
    return 1 if (df["status"] == "failed").any() else 0


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand."""
    s = subparsers.add_parser(
        "sweep",
        help="forecast every point of a grid of scenario overrides",
        description="Cross product of --grid values over scenario fields; one forecast per "
        "point, appended to OUT/sweep.parquet; a re-run skips finished points.",
    )
    s.add_argument("scenario", help="scenario YAML file")
    s.add_argument(
        "--grid",
        action="append",
        default=[],
        required=True,
        metavar="KEY=V1,V2,...",
        help="a scenario field and its values, e.g. fleet.0.replicas=1,2,4 (repeatable: cross product)",
    )
    s.add_argument("--executor", choices=("local", "ray"), default="local", help="local process pool (default) or Ray")
    s.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    s.add_argument(
        "--workers",
        type=int_arg(1, 1024),
        help="parallel points (local: processes, default all cores; ray: CPUs of a local instance)",
    )
    s.add_argument("--out", type=out_arg, help="output folder (default: out/<scenario file stem>-sweep)")
    s.add_argument("--seed", type=int, help="replace the scenario's seed")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field for every point (repeatable)",
    )
    s.add_argument("--show", type=int_arg(0), default=30, help="rows shown in the table (default 30)")
    s.add_argument("--force", action="store_true", help="write into --out even if it holds another command's results")
    s.set_defaults(func=_cmd_sweep)
