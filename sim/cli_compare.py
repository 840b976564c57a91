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

from sim.errors import FleetcastError

__all__ = ["register", "render_compare"]


def register(subparsers) -> None:
    """Add the ``compare`` subcommand to the ``fleetcast`` parser."""
    from sim.compare import STRESSES

    p = subparsers.add_parser(
        "compare", help="compare variants of a scenario against it (paired, common random numbers)",
        description="Simulate the scenario (the baseline) and each variant over N replications with common random "
                    "numbers (replication r: seed + r for all) and report per class the paired difference of "
                    "each metric with a 95%% confidence interval.")
    p.add_argument("scenario", help="scenario YAML file (the baseline)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                   help="a variant: a name and scenario overrides, e.g. prio:fleet.0.policy.name=priority "
                        "(repeatable, at least one)")
    p.add_argument("--replications", "-n", type=int, default=5,
                   help="replications (seeds) per variant (default 5; 1 gives no confidence interval)")
    p.add_argument("--seed", type=int, help="base seed (default: the scenario's); replication r uses seed + r")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field for the baseline and every variant (repeatable)")
    p.add_argument("--stress", action="append", default=[], choices=STRESSES,
                   help="compare under a canned stress: surge (x3 rate, middle third), bursty (gamma arrivals, "
                        "cv=4, same rate), failure (first replica fails at 1/3 of the duration); the scenario's "
                        "own events of that kind win; repeatable to combine")
    p.add_argument("--jobs", "-j", type=int, default=1, help="simulate in this many processes (same numbers)")
    p.add_argument("--out", help="output folder (default: out/<scenario name>-compare)")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from sim.cli import console, progress_bar, write_run_folder
    from sim.compare import parse_variant, run_compare
    from sim.report_compare import render_compare_html

    if not args.variant:
        raise FleetcastError("compare needs at least one --variant NAME:KEY=VALUE[,KEY=VALUE]")
    variants = [parse_variant(v) for v in args.variant]
    started = time.perf_counter()
    runs = (len(variants) + 1) * args.replications
    with progress_bar(f"compare: {runs} runs ({len(variants) + 1} variants x {args.replications})") as bar:
        result = run_compare(args.scenario, variants, args.replications, seed=args.seed,
                             common_overrides=args.set, stress=args.stress, jobs=max(1, args.jobs), progress=bar)
    wall_s = time.perf_counter() - started
    out = Path(args.out or Path("out") / f"{result.meta['scenario']['name']}-compare")
    write_run_folder(out, {"compare.json": result.to_json(), "compare.parquet": result.raw,
                           "compare.html": render_compare_html(result)})
    console.print(render_compare(result))
    console.print(f"[dim]{runs} simulations in {wall_s:.1f} s; results in {out}/ "
                  f"(compare.json, compare.parquet, compare.html)[/dim]")
    return 0


def _fmt(x, scale: float) -> str:
    if x is None:
        return "–"
    v = x * scale
    a = abs(v)
    if a >= 10_000:  # keep columns narrow: 39.8k (ms)
        return f"{v / 1000:,.1f}k" if a < 1e6 else f"{v / 1e6:,.1f}M"
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.2g}"


def _verdict(row) -> tuple[str, str]:
    """(text, style) of the better/worse column: coloured when significant,
    dim when not."""
    d = row["direction"]
    if d is None:
        return "", "dim"
    if d == "same":
        return "same", "dim"
    if row["significant"]:
        return d, "green" if d == "better" else "red"
    return d, "dim"


def render_compare(result):
    """Rich renderable: one table per variant, rows class x metric."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from sim.compare import METRIC_BY_NAME

    meta = result.meta
    R = meta["replications"]
    parts = []
    head = (f"{meta['scenario']['name']}: {R} replication(s), seeds {meta['seeds'][0]}..{meta['seeds'][-1]} "
            f"(common random numbers)" + (f", stress: {', '.join(meta['stress'])}" if meta["stress"] else ""))
    parts.append(Text(head, style="bold"))
    for vname in [v for v in meta["variants"] if v != "baseline"]:
        t = Table(title=f"{vname} vs baseline: {', '.join(meta['variants'][vname])}", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        for col, just in (("class", "left"), ("metric", "left"), ("baseline", "right"), ("variant", "right"),
                          ("diff", "right"), ("95% CI", "right"), ("sig", "center"),
                          ("", "left")):
            t.add_column(col, justify=just, no_wrap=True)
        last = None
        for row in (r for r in result.rows if r["variant"] == vname):
            m = METRIC_BY_NAME[row["metric"]]
            new_class = row["class"] != last
            if last is not None and new_class:
                t.add_section()
            last = row["class"]
            if row["n"] == 0:
                ci, sig = "no data", "–"
            elif row["ci_low"] is None:
                ci, sig = f"undefined (N={row['n']})", "n/a"
            else:
                ci = f"[{_fmt(row['ci_low'], m.scale)}, {_fmt(row['ci_high'], m.scale)}]"
                sig = "✓" if row["significant"] else "–"
            verdict, style = _verdict(row)
            diff = row["diff_mean"]
            t.add_row(row["class"] if new_class else "", f"{m.label} {m.unit}" if m.unit != "$/1M out tok" else "$/1M out tok", _fmt(row["baseline_mean"], m.scale),
                      _fmt(row["variant_mean"], m.scale),
                      Text(("+" if diff and diff > 0 else "") + _fmt(diff, m.scale), style=style),
                      ci, sig, Text(verdict, style=style))
        parts.append(t)
    if meta.get("note"):
        parts.append(Text(meta["note"], style="yellow"))
    parts.append(Text("diff = variant - baseline, mean of the per-replication differences; 95% CI: paired t; "
                      "sig ✓ = the CI excludes 0 (else better/worse is only the sign, dim). Lower "
                      "latency and cost, higher goodput and attainment are better.", style="dim"))
    return Group(*parts)
