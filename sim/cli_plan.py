"""``fleetcast plan`` and ``fleetcast sweep`` (registered by ``sim.cli``).

Plan folder (the contract ``fleetcast report`` reads):
``plan.json`` (see ``sim.plan``), ``points.parquet`` (every simulated point)
and ``runs/recommended/`` (a ``fleetcast run`` folder of the recommended fleet
at the demand, simulated exactly as the plan simulated it). Exit status: 0 a
candidate meets the SLO; 1 none does (the closest is named); 2 input error
(plan.json is still written when the scenario loaded).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from sim.errors import FleetcastError

__all__ = ["register", "write_plan_folder"]


def _run_files(scenario) -> dict:
    """The files ``fleetcast run`` writes, for ``scenario``."""
    import pandas as pd

    from sim import __version__
    from sim.forecast import forecast
    from sim.records import ITL_EDGES_S
    from sim.scenario import dump_scenario

    started = time.perf_counter()
    result, summary = forecast(scenario)
    summary["sim"]["wall_s"] = round(time.perf_counter() - started, 3)
    summary["sim"]["exact_steps"] = False
    summary["fleetcast_version"] = __version__
    itl = pd.DataFrame(result.itl_hist.T, columns=result.class_names)
    itl.insert(0, "edge_lo_s", ITL_EDGES_S[:-1])
    itl.insert(1, "edge_hi_s", ITL_EDGES_S[1:])
    return {"summary.json": summary, "requests.parquet": result.requests, "timeseries.parquet": result.timeseries,
            "itl_histogram.parquet": itl, "scenario.yaml": dump_scenario(scenario)}


def write_plan_folder(out: Path, doc: dict, points, run_files: dict | None) -> None:
    """Write ``out`` all at once (temp folder, then swap), like ``write_run_folder``."""
    import json

    import pandas as pd

    from sim.cli import write_run_folder
    from sim.records import write_parquet_atomic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if run_files:
            write_run_folder(tmp / "runs" / "recommended", run_files)
        (tmp / "plan.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if points is None or points.empty:
            points = pd.DataFrame({"candidate": pd.Series(dtype=str), "replicas": pd.Series(dtype="int64"),
                                   "rate_rps": pd.Series(dtype=float), "slo_met": pd.Series(dtype=bool)})
        write_parquet_atomic(points, tmp / "points.parquet")
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fmt(x, spec: str = ",.2f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def _plan_table(doc: dict):
    from rich.table import Table

    t = Table(title=f"plan: {doc['scenario']['name']} at {doc['demand']['peak_rate_rps']:.4g} req/s "
                    f"({doc['tried']} points simulated)", title_justify="left")
    for col in ("#", "candidate", "status", "replicas", "GPUs", "$/month", "$/1M out tok", "headroom %",
                "attain. %", "p99 TTFT s", "p99 TPOT s"):
        t.add_column(col, justify="left" if col in ("candidate", "status") else "right")
    for i, c in enumerate(doc["candidates"], 1):
        style = "bold green" if c["id"] == doc["recommended"] else ("" if c["status"] == "ok" else "dim")
        t.add_row(str(i), c["id"], c["status"], _fmt(c["replicas"], "d"), _fmt(c["gpus"], "d"),
                  _fmt(c["usd_per_month"], ",.0f"), _fmt(c["usd_per_1m_output_tokens"], ".3f"),
                  _fmt(c["headroom_pct"], ".1f"), _fmt(c["attainment_pct"], ".1f"),
                  _fmt(c["p99_ttft_s"], ".3f"), _fmt(c["p99_tpot_s"], ".4f"), style=style)
    return t


def _cmd_plan(args: argparse.Namespace) -> int:
    from sim.cli import console, err_console, progress_bar
    from sim.plan import run_plan
    from sim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set, seed=args.seed)
    out = Path(args.out or Path("out") / f"{scenario.name}-plan")
    started = time.perf_counter()
    with progress_bar(f"planning {scenario.name} (candidates)") as bar:
        outcome = run_plan(scenario, workers=args.workers or os.cpu_count() or 1, progress=bar)
    doc = outcome.doc
    doc["wall_s"] = round(time.perf_counter() - started, 3)
    doc["command"] = shlex.join(["fleetcast", "plan", str(args.scenario), "--out", str(out)]
                                + [f"--set={s}" for s in args.set]
                                + (["--seed", str(args.seed)] if args.seed is not None else []))
    if outcome.error:
        write_plan_folder(out, doc, outcome.points, None)
        raise FleetcastError(f"{outcome.error} (plan.json stating what was tried is in {out}/)")
    run_files = _run_files(outcome.recommended_scenario) if outcome.recommended_scenario is not None else None
    write_plan_folder(out, doc, outcome.points, run_files)
    console.print(_plan_table(doc))
    for c in doc["candidates"]:
        if c["status"] != "ok":
            console.print(f"[dim]{c['id']}: {c['status']}: {c['reason']}[/dim]", highlight=False, soft_wrap=True)
    rec = next((c for c in doc["candidates"] if c["id"] == doc["recommended"]), None)
    if rec is not None and rec["growth"]:
        months = ", ".join(f"m{g['month']}: {g['replicas']}" for g in rec["growth"])
        console.print(f"replicas by month ({rec['id']}): {months}")
    console.print(f"[dim]{doc['tried']} points simulated in {doc['wall_s']:.1f} s; results in {out}/[/dim]")
    if rec is None:
        closest = next((c for c in doc["candidates"] if c["id"] == outcome.closest), None)
        why = (f" The closest is {closest['id']}: {closest['reason']}." if closest else
               " No candidate fits the model (see the reasons above); add tensor_parallel sizes, "
               "a smaller quantization or GPUs with more memory.")
        err_console.print(f"[bold red]no candidate meets the SLO[/bold red] at {doc['demand']['peak_rate_rps']:g} "
                          f"req/s with up to {doc['max_replicas']} replicas.{why} Relax traffic.classes[].slo, raise "
                          f"plan.max_replicas or add candidates.", highlight=False, soft_wrap=True)
        return 1
    console.print(f"recommended: [bold]{rec['label']}[/bold] x {rec['replicas']} replicas "
                  f"({rec['gpus']} GPUs), ${rec['usd_per_month']:,.0f}/month, headroom {rec['headroom_pct']:.1f}%")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rich.table import Table

    from sim.cli import console, err_console, progress_bar
    from sim.sweep import SWEEP_FILE, parse_grid, run_sweep

    grid = parse_grid(args.grid)
    out = Path(args.out or Path("out") / f"{Path(args.scenario).stem}-sweep")
    started = time.perf_counter()
    with progress_bar("sweep (points)") as bar:
        df = run_sweep(args.scenario, grid, out, overrides=args.set, seed=args.seed, executor=args.executor,
                       workers=args.workers, address=args.address, progress=bar)
    t = Table(title=f"sweep: {len(df)} points", title_justify="left")
    cols = [*grid, "status", "slo_met", "attainment_pct", "p99_ttft_s", "p99_tpot_s", "usd_per_month"]
    cols = [c for c in cols if c in df.columns]
    for c in cols:
        t.add_column(c, justify="right")
    for _, r in df.head(args.show).iterrows():
        t.add_row(*("-" if r[c] is None or r[c] != r[c] else f"{r[c]:,.4g}" if isinstance(r[c], float) else str(r[c])
                    for c in cols))
    console.print(t)
    bad = df[df["status"] != "ok"]
    for _, r in bad.head(3).iterrows():
        err_console.print(f"[yellow]{r['status']}[/yellow] point {r['point_key']}: {r['error']}", highlight=False,
                          soft_wrap=True)
    console.print(f"[dim]{len(df)} points ({(df['status'] == 'ok').sum()} ok) in "
                  f"{time.perf_counter() - started:.1f} s; results in {out / SWEEP_FILE}[/dim]")
    return 1 if (df["status"] == "failed").any() else 0


def register(subparsers) -> None:
    """Add the ``plan`` and ``sweep`` subcommands."""
    p = subparsers.add_parser("plan", help="find the cheapest fleet per candidate that meets every SLO",
                              description="For each candidate of the scenario's plan: section (GPU x quantization "
                              "x TP x policy x engine knobs), find the fewest replicas meeting every class's SLO at "
                              "the demand, and rank the candidates by monthly cost.")
    p.add_argument("scenario", help="scenario YAML file (with a plan: section; without one the pool is planned as is)")
    p.add_argument("--out", help="output folder (default: out/<scenario name>-plan)")
    p.add_argument("--seed", type=int, help="replace the scenario's seed")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field, e.g. plan.max_replicas=16 (repeatable)")
    p.add_argument("--workers", type=int, help="candidates searched in parallel (default: all cores)")
    p.set_defaults(func=_cmd_plan)

    s = subparsers.add_parser("sweep", help="forecast every point of a grid of scenario overrides",
                              description="Cross product of --grid values over scenario fields; one forecast per "
                              "point, appended to OUT/sweep.parquet; a re-run skips finished points.")
    s.add_argument("scenario", help="scenario YAML file")
    s.add_argument("--grid", action="append", default=[], required=True, metavar="KEY=V1,V2,...",
                   help="a scenario field and its values, e.g. fleet.0.replicas=1,2,4 (repeatable: cross product)")
    s.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local process pool (default) or Ray")
    s.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    s.add_argument("--workers", type=int, help="parallel points (local: processes, default all cores; "
                   "ray: CPUs of a local instance)")
    s.add_argument("--out", help="output folder (default: out/<scenario file stem>-sweep)")
    s.add_argument("--seed", type=int, help="replace the scenario's seed")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a scenario field for every point (repeatable)")
    s.add_argument("--show", type=int, default=30, help="rows shown in the table (default 30)")
    s.set_defaults(func=_cmd_sweep)
