"""``fleetcast plan``: the cheapest fleet per candidate that meets every SLO.

Plan folder (the contract ``fleetcast report`` reads):
``plan.json`` (see ``sim.analysis.plan``), ``points.parquet`` (every simulated point)
and ``runs/recommended/`` (a ``fleetcast run`` folder of the recommended fleet
at the demand, simulated exactly as the plan simulated it). Exit status: 0 a
candidate meets the SLO (or candidates meet it but no one fits plan.power: each one's
limit is named); 1 none does (the closest is named); 2 input error
(nothing is written: the message says what was checked).
"""

from __future__ import annotations

import argparse
import os
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Group
from rich.markup import escape as _escape
from rich.table import Table
from rich.text import Text

from sim.errors import FleetcastError
from sim.infiles import int_arg, out_arg
from sim.outpaths import check_out_folder, default_out, out_lock, staged_folder
from sim.report.fit_table import Fitting
from sim.scenario.spec import load_scenario

if TYPE_CHECKING:  # annotations only: the contract is imported where a plan is written
    from sim.analysis.contracts import PlanDoc

__all__ = ["register", "write_plan_folder"]


def _run_files(scenario) -> dict:
    """The files ``fleetcast run`` writes, for ``scenario``."""
    from sim.analysis.forecast import forecast
    from sim.cli.common import run_folder_files

    started = time.perf_counter()
    result, summary = forecast(scenario)
    return run_folder_files(scenario, result, summary, wall_s=time.perf_counter() - started, exact_steps=False)


def write_plan_folder(out: Path, doc: dict, points, run_files: dict | None, force: bool = False) -> PlanDoc:
    """Write ``out`` all at once (temp folder, then swap), like ``write_run_folder``;
    ``plan.json`` through its contract. Returns that ``PlanDoc``."""
    import pandas as pd

    from sim.analysis.contracts import SCHEMA_VERSION, PlanDoc, contract_json
    from sim.cli.common import write_run_folder
    from sim.records import write_parquet_atomic

    typed = PlanDoc.model_validate({**doc, "schema_version": SCHEMA_VERSION})
    text = contract_json(typed)
    with staged_folder(out, kind="plan", force=force) as tmp:
        if run_files:
            write_run_folder(tmp / "runs" / "recommended", run_files)
        (tmp / "plan.json").write_text(text, encoding="utf-8")
        if points is None or points.empty:
            points = pd.DataFrame(
                {
                    "candidate": pd.Series(dtype=str),
                    "replicas": pd.Series(dtype="int64"),
                    "rate_rps": pd.Series(dtype=float),
                    "slo_met": pd.Series(dtype=bool),
                }
            )
        write_parquet_atomic(points, tmp / "points.parquet")
    return typed


def _fmt(x, spec: str = ",.2f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def _count(c: dict) -> str:
    if c["status"] == "pruned":
        return f">= {c['replicas_at_least']}"
    iv = c.get("replicas_interval")
    return _fmt(c["replicas"], "d") + (f" ({iv[0]}-{iv[1]})" if iv else "")


def _headroom(c: dict) -> str:
    iv = c.get("headroom_interval_pct")
    if c["headroom_pct"] is None or not iv:
        return _fmt(c["headroom_pct"], ".1f")
    return f"{c['headroom_pct']:.1f} ({iv[0]:.1f}-{'more' if iv[1] is None else format(iv[1], '.1f')})"


def _statistics_lines(doc: dict) -> list[str]:
    """How each point was measured: replications, window, samples."""
    st, w = doc.get("statistics"), doc.get("window")
    if not st or not w:
        return []
    needs = ", ".join(f"{n['class']} {n['samples_per_replication']} ({n['from']})" for n in st["needs"])
    se = doc.get("search") or {}
    reps = (
        f"{se['replications_min']} to {st['replications']} replications (more only while a verdict is open; "
        f"the early stops saved {se['saved_by_early_stop']:,} simulations)"
        if se
        else f"{st['replications']} replications"
    )
    pruned = (
        [
            f"searched to the end: the cheapest; {se.get('candidates_pruned', 0)} pruned and "
            f"{se.get('candidates_counted_only', 0)} counted only, dearer than a fleet proven (their lines above say why)"
        ]
        if se.get("candidates_pruned") or se.get("candidates_counted_only")
        else []
    )
    return pruned + [
        f"each point: {reps} (seeds {st['seeds'][0]}-{st['seeds'][-1]}, the same for "
        f"every candidate), SLOs judged on the 95% interval; window {w['window_s']:,.1f} s after "
        f"{w['warmup_s']:g} s warm-up at the peak: {w['kind']} ({w['text']}); requests per class and "
        f"replication at least: {needs}"
    ]


def _plan_table(doc: dict):
    t = Table(
        title=f"plan: {doc['scenario']['name']} at {doc['demand']['peak_rate_rps']:.4g} req/s "
        f"({doc['tried']} points simulated)",
        title_justify="left",
    )
    for col in (
        "#",
        "candidate",
        "status",
        "replicas (95% CI)",
        "GPUs",
        "$/month",
        "$/1M out tok",
        "headroom % (95% CI)",
        "attain. %",
        "p99 TTFT s",
        "p99 TPOT s",
    ):
        t.add_column(col, justify="left" if col in ("candidate", "status") else "right")
    for i, c in enumerate(doc["candidates"], 1):
        style = "bold green" if c["id"] == doc["recommended"] else ("" if c["status"] == "ok" else "dim")
        t.add_row(
            str(i),
            c["id"],
            c["status"],
            _count(c),
            _fmt(c["gpus"], "d"),
            _fmt(c["usd_per_month"], ",.0f"),
            _fmt(c["usd_per_1m_output_tokens"], ".3f"),
            _headroom(c),
            _fmt(c["attainment_pct"], ".1f"),
            _fmt(c["p99_ttft_s"], ".3f"),
            _fmt(c["p99_tpot_s"], ".4f"),
            style=style,
        )
    return t


def _plan_lines(doc: dict) -> list[str]:
    """The plan table's rows as sentences, for a terminal too narrow for its eleven columns (rich
    would cut every cell to a few letters: 'h10…', 'prun…')."""
    out = []
    for i, c in enumerate(doc["candidates"], 1):
        style = "bold green" if c["id"] == doc["recommended"] else ("" if c["status"] == "ok" else "dim")
        parts = [c["status"]]
        for label, value, unit in (
            ("replicas", _count(c), ""),
            ("GPUs", _fmt(c["gpus"], "d"), ""),
            ("$/month", _fmt(c["usd_per_month"], ",.0f"), ""),
            ("$/1M out tok", _fmt(c["usd_per_1m_output_tokens"], ".3f"), ""),
            ("headroom", _headroom(c), " %"),
            ("attainment", _fmt(c["attainment_pct"], ".1f"), " %"),
            ("p99 TTFT", _fmt(c["p99_ttft_s"], ".3f"), " s"),
            ("p99 TPOT", _fmt(c["p99_tpot_s"], ".4f"), " s"),
        ):
            if value != "-":
                parts.append(f"{label} {value}{unit}")
        text = _escape(f"{i:>2} {c['id']}: " + ", ".join(parts))
        out.append(f"[{style}]{text}[/{style}]" if style else text)
    return out


def _cmd_plan(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, overrides=args.set, seed=args.seed)
    out = check_out_folder(default_out(args.out, scenario.name, "-plan", args.scenario), kind="plan", force=args.force)
    with out_lock(out):  # a second plan into this --out is refused now, not silently replaced later
        return _plan(args, scenario, out)


def _plan(args: argparse.Namespace, scenario, out: Path) -> int:
    from sim.analysis.plan import risk_warnings, run_plan
    from sim.cli.common import console, err_console, progress_bar
    from sim.report.autoscale_text import plan_autoscale_sentence
    from sim.report.disagg_text import layout_sentence
    from sim.report.power_text import candidate_power_text

    started = time.perf_counter()
    with progress_bar(f"planning {scenario.name}", unit=" simulations", estimated=True) as bar:
        outcome = run_plan(scenario, workers=args.workers or os.cpu_count() or 1, progress=bar)
    doc = outcome.doc
    doc["wall_s"] = round(time.perf_counter() - started, 3)
    doc["command"] = shlex.join(
        ["fleetcast", "plan", str(args.scenario), "--out", str(out)]
        + [f"--set={s}" for s in args.set]
        + (["--seed", str(args.seed)] if args.seed is not None else [])
    )
    doc["cwd"] = str(Path.cwd())  # the folder `command` runs from (its paths are relative to it)
    rec = next((c for c in doc["candidates"] if c["id"] == doc["recommended"]), None)
    risks = risk_warnings(rec, doc["demand"]["peak_rate_rps"]) if rec is not None else []
    for w in doc.get("warnings") or []:
        if w not in risks:  # these come after the recommendation they are about
            err_console.print(f"[bold yellow]warning:[/bold yellow] {w}", highlight=False, soft_wrap=True)
    if outcome.error:  # an input error found before any simulation: refused, nothing written
        raise FleetcastError(f"{outcome.error} (no candidate was simulated; nothing was written to {out})")
    run_files = _run_files(outcome.recommended_scenario) if outcome.recommended_scenario is not None else None
    typed = write_plan_folder(out, doc, outcome.points, run_files, force=args.force)
    table = _plan_table(doc)
    # an 80-column terminal: a line per candidate (sim.report.fit_table decides, as for `run`'s tables)
    console.print(
        Fitting(table, lambda: Group(Text(str(table.title)), *(Text.from_markup(line) for line in _plan_lines(doc))))
    )
    for c in doc["candidates"]:
        if c["status"] != "ok":
            console.print(f"[dim]{c['id']}: {c['status']}: {c['reason']}[/dim]", highlight=False, soft_wrap=True)
        elif c.get("not_searched"):
            console.print(f"[dim]{c['id']}: {c['not_searched']}[/dim]", highlight=False, soft_wrap=True)
    if rec is not None and rec["growth"]:
        months = ", ".join(f"m{g['month']}: {g['replicas']}" for g in rec["growth"])
        console.print(f"replicas by month ({rec['id']}): {months}")
    for line in _statistics_lines(doc):
        console.print(f"[dim]{line}[/dim]", highlight=False, soft_wrap=True)
    console.print(
        f"[dim]{doc['tried']} points ({doc.get('simulations', doc['tried'])} simulations) in "
        f"{doc['wall_s']:.1f} s; results in {out}/[/dim]"
    )
    if rec is None and any(c.get("limiting") == "power" for c in doc["candidates"]):
        # a power budget nothing fits is an answer, not a failure: each candidate's limit
        err_console.print(
            "[bold yellow]no candidate fits the power budget (plan.power)[/bold yellow]: "
            + "; ".join(f"{c['id']}: {c['reason']}" for c in doc["candidates"]),
            highlight=False,
            soft_wrap=True,
        )
        return 0
    if rec is None:
        closest = next((c for c in doc["candidates"] if c["id"] == outcome.closest), None)
        why = (
            f" The closest is {closest['id']}: {closest['reason']}."
            if closest
            else " No candidate fits the model (see the reasons above); add tensor_parallel sizes, "
            "a smaller quantization or GPUs with more memory."
        )
        err_console.print(
            f"[bold red]no candidate meets the SLO[/bold red] at {doc['demand']['peak_rate_rps']:g} "
            f"req/s with up to {doc['max_replicas']} replicas.{why} Relax traffic.classes[].slo, raise "
            f"plan.max_replicas or add candidates.",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    console.print(
        f"recommended: [bold]{rec['label']}[/bold] x {rec['replicas']} replicas "
        f"({rec['gpus']} GPUs), ${rec['usd_per_month']:,.0f}/month, headroom {rec['headroom_pct']:.1f}%"
    )
    console.print(f"  replicas {_count(rec)}, headroom % {_headroom(rec)} (95% intervals)", highlight=False)
    power = candidate_power_text(rec)
    if power:
        console.print(f"  {power}", highlight=False, soft_wrap=True)
    if doc.get("ranking"):
        console.print(f"  ranked {doc['ranking']}", highlight=False, soft_wrap=True)
    if rec.get("failure"):
        console.print(f"  {rec['failure']['text']}", highlight=False, soft_wrap=True)
    layouts = layout_sentence(typed.candidates)
    if layouts:
        console.print(f"  {layouts}", highlight=False, soft_wrap=True)
    scaled = plan_autoscale_sentence(typed.autoscale)
    if scaled:
        console.print(f"  {scaled}", highlight=False, soft_wrap=True)
    for w in risks:
        err_console.print(f"[bold yellow]warning:[/bold yellow] {w}", highlight=False, soft_wrap=True)
    tl = doc.get("timeline") or {}
    if tl.get("rows"):
        worst = min((r for r in tl["rows"] if r["requests"]), key=lambda r: r["attainment_pct"] or 0.0)
        console.print(
            f"  over the scenario's {tl['duration_s']:,.0f} s: SLO attainment "
            f"{tl['attainment_pct'] or 0:.1f}%; worst {tl['unit']} {worst['start_s']:,.0f}-"
            f"{worst['end_s']:,.0f} s: {worst['attainment_pct'] or 0:.1f}% (plan.json timeline)",
            highlight=False,
        )
    return 0


def register(subparsers) -> None:
    """Add the ``plan`` subcommand."""
    p = subparsers.add_parser(
        "plan",
        help="find the cheapest fleet per candidate that meets every SLO",
        description="For each candidate of the scenario's plan: section (GPU x quantization "
        "x TP x policy x engine knobs), find the fewest replicas meeting every class's SLO at "
        "the demand, and rank the candidates by monthly cost.",
    )
    p.add_argument("scenario", help="scenario YAML file (with a plan: section; without one the pool is planned as is)")
    p.add_argument("--out", type=out_arg, help="output folder (default: out/<scenario name>-plan)")
    p.add_argument("--seed", type=int, help="replace the scenario's seed")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario field, e.g. plan.max_replicas=16 (repeatable)",
    )
    p.add_argument("--workers", type=int_arg(1, 1024), help="candidates searched in parallel (default: all cores)")
    p.add_argument("--force", action="store_true", help="replace --out even if it holds another command's results")
    p.set_defaults(func=_cmd_plan)
