"""``fleetcast compare``: baseline vs variants, paired over replications.

    fleetcast compare SCENARIO --variant NAME:KEY=VALUE[,KEY=VALUE] ... \\
        [--replications N] [--seed S] [--set KEY=VALUE] [--stress surge|bursty|failure] \\
        [--jobs J] [--out DIR]

Writes ``compare.json``, ``compare.parquet`` (raw values, one row per
variant x class x metric x replication) and ``compare.html`` into ``--out``
(default ``out/<scenario name>-compare``) and prints the table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sim.analysis.variants import BASELINE, STRESSES, parse_variant
from sim.errors import FleetcastError
from sim.infiles import int_arg, out_arg
from sim.outpaths import check_out_folder, default_out, out_lock
from sim.scenario.spec import load_scenario

__all__ = ["register", "MAX_REPLICATIONS"]

#: Replications per variant one compare may ask for (each is a full simulation of every variant;
#: the 95% interval narrows with sqrt(n), so 1,000 already gives a 30x narrower one than n=2).
MAX_REPLICATIONS = 1_000


def register(subparsers) -> None:
    """Add the ``compare`` subcommand to the ``fleetcast`` parser."""
    p = subparsers.add_parser(
        "compare",
        help="compare variants of a scenario against it (paired, common random numbers)",
        description="Simulate the scenario (the baseline) and each variant over N replications with common random "
        "numbers (replication r: seed + r for all) and report per class the paired difference of "
        "each metric with a 95% confidence interval.",
    )
    p.add_argument("scenario", help="scenario YAML file (the baseline)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="a variant: a name and scenario overrides, e.g. prio:fleet.0.policy.name=priority "
        "(repeatable, at least one)",
    )
    p.add_argument(
        "--replications",
        "-n",
        default=5,
        type=int_arg(1, MAX_REPLICATIONS, " (MAX_REPLICATIONS: each is a full run of every variant)"),
        help="replications (seeds) per variant (default 5; 1 gives no confidence interval)",
    )
    p.add_argument("--seed", type=int, help="base seed (default: the scenario's); replication r uses seed + r")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field for the baseline and every variant (repeatable)",
    )
    p.add_argument(
        "--stress",
        action="append",
        default=[],
        choices=STRESSES,
        help="compare under a canned stress: surge (x3 rate, middle third), bursty (gamma arrivals, "
        "cv=4, same rate), failure (first replica fails at 1/3 of the duration); the scenario's "
        "own events of that kind win; repeatable to combine",
    )
    p.add_argument(
        "--jobs", "-j", type=int_arg(1, 1024), default=1, help="simulate in this many processes (same numbers)"
    )
    p.add_argument("--out", type=out_arg, help="output folder (default: out/<scenario name>-compare)")
    p.add_argument("--force", action="store_true", help="replace --out even if it holds another command's results")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    if not args.variant:
        raise FleetcastError("compare needs at least one --variant NAME:KEY=VALUE[,KEY=VALUE]")
    for v in args.variant:  # bad syntax and a bad baseline are refused before the engine's import
        parse_variant(v)
    try:
        base = load_scenario(args.scenario, overrides=args.set, seed=args.seed)
    except FleetcastError as exc:  # worded as run_compare words it
        raise FleetcastError(f"variant '{BASELINE}': {exc}") from None
    # --out or the default out/<name>-compare, checked before the work, not after
    out = check_out_folder(
        default_out(args.out, base.name, "-compare", args.scenario), kind="compare", force=args.force
    )
    with out_lock(out):  # a second writer into this folder is refused now, not after the work
        return _compare(args, out)


def _compare(args: argparse.Namespace, out: Path) -> int:
    from sim.analysis.compare import run_compare
    from sim.analysis.contracts import contract_json
    from sim.cli.common import console, progress_bar, write_run_folder
    from sim.report.compare import render_compare_html
    from sim.report.terminal import render_compare

    variants = [parse_variant(v) for v in args.variant]
    started = time.perf_counter()
    runs = (len(variants) + 1) * args.replications
    with progress_bar(f"compare: {runs} runs ({len(variants) + 1} variants x {args.replications})") as bar:
        result = run_compare(
            args.scenario,
            variants,
            args.replications,
            seed=args.seed,
            common_overrides=args.set,
            stress=args.stress,
            jobs=args.jobs,
            progress=bar,
        )
    wall_s = time.perf_counter() - started
    write_run_folder(
        out,
        {
            "compare.json": contract_json(result.contract()),
            "compare.parquet": result.raw,
            "compare.html": render_compare_html(result),
        },
        kind="compare",
        force=args.force,
    )
    console.print(render_compare(result))
    console.print(
        f"[dim]{runs} simulations in {wall_s:.1f} s; results in {out}/ "
        f"(compare.json, compare.parquet, compare.html)[/dim]"
    )
    return 0
