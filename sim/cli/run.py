"""``fleetcast run``: simulate a scenario, print its summary, write its run folder.

The simulator, the renderers and pandas are imported only once the scenario
and ``--out`` passed their checks: a refusal costs the scenario's validation,
not the engine's import."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sim.infiles import out_arg
from sim.outpaths import check_out_folder, default_out, out_lock
from sim.scenario.spec import load_scenario

__all__ = ["register"]


def _cmd_run(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.set, seed=args.seed)
    out = check_out_folder(
        default_out(args.out, scenario.name, "", args.scenario), kind="run", force=args.force
    )  # before the work
    with out_lock(out):  # a second run into this --out is refused now, not silently replaced later
        return _simulate(args, scenario, out)


def _simulate(args: argparse.Namespace, scenario, out: Path) -> int:
    from sim.analysis.contracts import RunSummary
    from sim.analysis.forecast import forecast
    from sim.analysis.range_warnings import range_warnings
    from sim.cli.common import console, err_console, progress_bar, run_folder_files, write_run_folder
    from sim.perf.pool_model import build_pool_models
    from sim.report.terminal import render_summary

    started = time.perf_counter()
    # built once: the memory warnings read their plans, and the run simulates them (a pool that does
    # not fit is refused here, with its reason)
    pools = build_pool_models(scenario)
    built_s = time.perf_counter() - started
    for line in range_warnings(scenario, pools):
        err_console.print(f"[yellow]warning:[/yellow] {line}")
    started = time.perf_counter()
    with progress_bar(f"simulating {scenario.name}") as bar:
        result, summary = forecast(scenario, exact_steps=args.exact_steps, progress=bar, pools=pools)
    wall_s = built_s + time.perf_counter() - started  # the pools' build and the run, as before
    files = run_folder_files(scenario, result, summary, wall_s=wall_s, exact_steps=args.exact_steps)
    if args.csv:
        files["requests.csv"] = result.requests.to_csv(index=False)
    write_run_folder(out, files, kind="run", force=args.force)
    console.print(render_summary(RunSummary.model_validate(summary)))
    for line in result.notes:
        err_console.print(f"[cyan]note:[/cyan] {line}", highlight=False, soft_wrap=True)
    for line in summary.get("warnings", []):
        err_console.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)
    n = len(result.requests)
    console.print(
        f"[dim]{n:,} requests simulated in {wall_s:.2f} s ({n / max(wall_s, 1e-9):,.0f} req/s); results in {out}/[/dim]"
    )
    return 0


def register(subparsers) -> None:
    """Add the ``run`` subcommand."""
    r = subparsers.add_parser("run", help="simulate a scenario and summarize it")
    r.add_argument("scenario", help="scenario YAML file")
    r.add_argument("--out", type=out_arg, help="output folder (default: out/<scenario name>)")
    r.add_argument("--seed", type=int, help="replace the scenario's seed")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field, e.g. fleet.0.replicas=8 (repeatable)",
    )
    r.add_argument(
        "--exact-steps",
        action="store_true",
        help="step every engine iteration instead of fast-forwarding decode runs (same results, slower)",
    )
    r.add_argument("--csv", action="store_true", help="also write requests.csv")
    r.add_argument("--force", action="store_true", help="replace --out even if it holds another command's results")
    r.set_defaults(func=_cmd_run)
