"""``fleetcast traffic fit``: fit a scenario ``traffic:`` section to request logs.

Reads vLLM bench-serve results and per-request logs (``fleetcast validate``'s
readers), OpenAI-style gateway logs and the public Azure 2023 / Mooncake
traces (docs/traffic-fit.md); writes the YAML (and the lengths table it refers
to) only once everything is fitted, so a refusal leaves nothing behind.
``--check SCENARIO`` simulates that scenario's fleet on the replayed log and on
the fitted traffic and prints the differences; ``--report FILE.html`` writes the
fit report (``sim.report.traffic_fit``) beside the YAML.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import yaml
from pydantic import ValidationError

from calibration.logs.bench_serve import read_bench_serve
from calibration.logs.request_log import read_request_log
from sim.errors import FleetcastError
from sim.infiles import MAX_DATA_FILE_BYTES, out_arg, read_text_limited
from sim.outpaths import check_out_file, out_error
from testbed.scrape import parse_prometheus

__all__ = ["register"]

FORMATS = (
    "auto",
    "gateway",
    "request-log",
    "bench-serve",
    "azure-2023",
    "mooncake",
    "prometheus-json",
    "metrics-scrapes",
)


def _parse_map(items: list[str]) -> dict[str, str]:
    from sim.workload.fit.readers import GATEWAY_COLUMNS

    out: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not column:
            raise FleetcastError(f"--map {item}: give FIELD=COLUMN, e.g. --map prompt_tokens=input_tok")
        if field not in GATEWAY_COLUMNS:
            raise FleetcastError(f"--map {item}: unknown field '{field}'; valid fields: {', '.join(GATEWAY_COLUMNS)}")
        if field in out and out[field] != column:
            raise FleetcastError(
                f"--map {item}: field '{field}' is already mapped to column '{out[field]}'; map each field once"
            )
        out[field] = column
    return out


def _parse_growth(text: str | None) -> tuple[float, int] | None:
    if text is None:
        return None
    pct, sep, months = text.partition(":")
    try:
        g, m = float(pct), int(months)
    except ValueError:
        g, m = float("nan"), 0
    if not sep or not (-90 <= g <= 1000) or not (1 <= m <= 120):
        raise FleetcastError(
            f"--growth {text}: give MONTHLY_PCT:MONTHS, e.g. --growth 15:6 (percent -90..1000, months 1..120)"
        )
    return g, m


def _from_frame(path: Path, df):
    """validate's records (class, arrival_s, ..., output_tokens, status) as a RequestLog; a
    failed request still arrived, but without an output count it cannot be fitted."""
    from sim.workload.fit.log import Labels, RequestLog

    out = df["output_tokens"].to_numpy(dtype=float)
    missing = ~np.isfinite(out)
    warnings = []
    if missing.any():
        warnings.append(
            f"{path}: {int(missing.sum()):,} of {len(df):,} failed request(s) without an output token count dropped."
        )
    df = df[~missing]
    conv = turn = None
    if "conversation" in df.columns and "turn" in df.columns:  # conversations named by the log (run-logs.md)
        conv = Labels.of(df["conversation"].fillna("").astype(str).to_numpy())
        turn = df["turn"].fillna(0).to_numpy(dtype=float).astype(np.int64)
    return RequestLog(
        arrival_s=df["arrival_s"].to_numpy(dtype=float),
        prompt_tokens=df["prompt_tokens"].to_numpy(dtype=float).astype(np.int64),
        output_tokens=df["output_tokens"].to_numpy(dtype=float).astype(np.int64),
        fields={"class": Labels.of(df["class"].astype(str).to_numpy())},
        finish_s=df["finish_s"].to_numpy(dtype=float) if "finish_s" in df.columns else None,
        conversation=conv,
        turn=turn,
        sources=[str(path)],
        warnings=warnings,
    )


def _scrape_time(path: Path, line: int, stamp: str) -> float:
    try:
        return float(stamp)
    except ValueError:
        import pandas as pd

        t = pd.to_datetime(stamp, format="ISO8601", errors="coerce", utc=True)
        if pd.isna(t):
            raise FleetcastError(
                f"{path} line {line}: '# scrape {stamp}' needs a time (UNIX seconds or ISO 8601)"
            ) from None
        return t.value / 1e9


def _metrics(path: Path, kind: str):
    """A range-query JSON or a scrape series (``# scrape TIME`` before each scrape)."""
    from sim.workload.fit.prometheus import from_range_query, series_from_scrapes

    text = read_text_limited(path, MAX_DATA_FILE_BYTES, "metrics file")
    if kind == "prometheus-json":
        try:
            data = json.loads(text)
            answers = data if isinstance(data, list) else [data]
        except json.JSONDecodeError:  # one answer per line
            answers = []
            for i, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        answers.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise FleetcastError(f"{path} line {i}: not valid JSON ({e})") from None
        return from_range_query(answers, str(path))
    scrapes: list[tuple[float, list]] = []
    at: float | None = None
    body: list[str] = []
    all_lines = text.splitlines()
    for i, line in enumerate(all_lines, start=1):
        if not line.startswith("# scrape"):
            body.append(line)
            continue
        if at is not None:
            scrapes.append((at, parse_prometheus("\n".join(body))))
        at, body = _scrape_time(path, i, line[len("# scrape") :].strip()), []
    if at is not None:
        scrapes.append((at, parse_prometheus("\n".join(body))))
    return series_from_scrapes(scrapes, str(path))


def _read(path: Path, fmt: str, mapping: dict[str, str], seed: int = 0):
    from sim.workload.fit.prometheus import metrics_to_log
    from sim.workload.fit.readers import read_gateway, read_trace, sniff_format

    kind = sniff_format(path) if fmt == "auto" else fmt
    if kind == "bench-serve":
        records, _, notes = read_bench_serve(path)
        log = _from_frame(path, records)
        log.warnings += [f"{path}: {n}" for n in notes]
    elif kind == "request-log":
        log = _from_frame(path, read_request_log(path))
    elif kind in ("azure-2023", "mooncake"):
        log = read_trace(path, kind)
    elif kind in ("prometheus-json", "metrics-scrapes"):
        log = metrics_to_log(_metrics(path, kind), seed)
    else:
        log = read_gateway(path, mapping)
    return log.clean(str(path), min_requests=1)


def _write(out: Path, text: str, tables: dict[str, str]) -> list[Path]:
    """All files, or none: each is written beside its target, then renamed into place."""
    staged: list[tuple[Path, Path]] = []
    mask = os.umask(0)
    os.umask(mask)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # check_out_file: it may be created
        for name, body in [*tables.items(), (out.name, text)]:
            target = out.parent / name
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=out.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
            os.chmod(tmp_name, 0o666 & ~mask)  # as open() would create it (mkstemp makes 0600)
            staged.append((Path(tmp_name), target))
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        raise out_error(out, exc.strerror or str(exc), "the traffic section") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return [t for _, t in staged]


def _not_another_file(out: Path) -> None:
    """An existing ``--out`` is replaced only when it holds what a fit writes (``traffic:`` and
    ``plan:``): a whole scenario given as --out was overwritten by its traffic section before."""
    if not out.is_file() or out.stat().st_size == 0:
        return
    try:
        doc = yaml.safe_load(read_text_limited(out, MAX_DATA_FILE_BYTES, "--out file"))
    except (yaml.YAMLError, FleetcastError):
        doc = "(not YAML)"
    if doc is None or (isinstance(doc, dict) and set(doc) <= {"traffic", "plan"}):
        return
    held = f"the keys {', '.join(map(str, list(doc)[:6]))}" if isinstance(doc, dict) else "something else"
    raise FleetcastError(
        f"--out {out} holds {held}, not a fitted traffic section; the fit would replace the whole file: "
        "choose another --out"
    )


def _cmd_fit(args: argparse.Namespace) -> int:
    out = check_out_file(Path(args.out), "the traffic section")
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise FleetcastError(f"--out {out}: give a .yaml file for the traffic section")
    _not_another_file(out)
    if args.check is not None and not Path(args.check).is_file():
        raise FleetcastError(f"--check {args.check}: scenario file not found")
    report = None
    if args.report is not None:
        report = Path(args.report)
        if report.suffix.lower() != ".html" or report.resolve().parent != out.resolve().parent:
            raise FleetcastError(f"--report {report}: give an .html file name in --out's folder ({out.parent})")
    if not 0 < args.scale <= 1e6:
        raise FleetcastError(f"--scale {args.scale:g}: give a factor > 0 (2 = twice the fitted rate)")
    if args.classes is not None and not 1 <= args.classes <= 100:
        raise FleetcastError(f"--classes {args.classes}: give 1 to 100")
    if args.check_seeds is not None and args.check is None:
        raise FleetcastError(
            f"--check-seeds {args.check_seeds} is the seeds of --check: add --check SCENARIO, or drop it"
        )
    args.check_seeds = 3 if args.check_seeds is None else args.check_seeds
    if args.check_seeds < 1 or args.check_seeds > 100:
        raise FleetcastError(f"--check-seeds {args.check_seeds}: give 1 to 100")
    if not 0 <= args.seed <= 2**63 - 1:  # NumPy's generators take no negative seed (a ValueError traceback before)
        raise FleetcastError(f"--seed {args.seed}: give a whole number from 0 to 2**63 - 1, as a scenario's seed")
    if args.by is not None and args.classes is not None:
        raise FleetcastError("give --by FIELD or --classes N, not both")
    seen: dict[Path, str] = {}
    for p in args.logs:  # one file twice was fitted as twice its requests
        earlier = seen.setdefault(Path(p).resolve(), p)
        if earlier != p or args.logs.count(p) > 1:
            also = f" (also as {earlier})" if earlier != p else ""
            raise FleetcastError(f"{p}: the log is given twice{also}; give each log once")
    mapping = _parse_map(args.map)
    growth = _parse_growth(args.growth)

    from sim.cli.common import console, err_console, progress_bar
    from sim.workload.fit.fit import fit_traffic
    from sim.workload.fit.log import MIN_REQUESTS, RequestLog
    from sim.workload.fit.write import render, traffic_dict
    from sim.workload.spec import TrafficSpec

    steps = len(args.logs) + 2  # each log read, the fit, its text: a line every few seconds when piped
    with progress_bar("traffic fit", unit=" steps", eta=False) as bar:
        logs = []
        for k, p in enumerate(args.logs):
            bar(k, steps, f"reading {p}")
            logs.append(_read(Path(p), args.format, mapping, args.seed))
        where = ", ".join(args.logs)
        # one file was cleaned as it was read; several are cleaned again as one (gaps between them)
        log = RequestLog.concat(logs).clean(where) if len(logs) > 1 else logs[0].require(MIN_REQUESTS, where)
        del logs  # the cleaned copy is all the fit needs (a 10-million-row log: hundreds of MB each)
        if log.span_s <= 0:
            raise FleetcastError(f"{where}: every request arrives at the same time; no arrival rate can be fitted")
        bar(steps - 2, steps, f"fitting {len(log):,} requests (classes, arrivals, lengths, sessions, prefixes)")
        fit = fit_traffic(
            log, by=args.by, classes=args.classes, scale=args.scale, growth=growth, seed=args.seed, ties=args.ties
        )
        bar(steps - 1, steps, "writing the traffic section")
        text, tables = render(fit, out.stem + ".lengths.csv")
    try:  # what we write loads as a traffic section
        TrafficSpec.model_validate(traffic_dict(text))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise FleetcastError(
            f"the fitted traffic section is not a valid scenario section at "
            f"traffic.{'.'.join(map(str, first['loc']))}: {first['msg']} (the log's rate or span is out of "
            "the scenario format's bounds; see docs/scenario-reference.md)"
        ) from None
    files = dict(tables)
    if args.check is not None or args.report is not None:
        todo = (args.check is not None) + (report is not None)
        with (
            tempfile.TemporaryDirectory(prefix="fleetcast-traffic-fit-") as tmp,
            progress_bar("traffic fit", unit=" steps", eta=False) as bar,
        ):
            folder = Path(tmp)
            for name, body in tables.items():
                (folder / name).write_text(body, encoding="utf-8")
            if args.check is not None:
                bar(0, todo, f"--check: the log and {args.check_seeds} fitted seed(s) on {args.check}'s fleet")
            rows = _check(args, fit, text, folder) if args.check is not None else None
            if report is not None:
                bar(todo - 1, todo, "--report: drawing the fitted traffic and the report")
                files[report.name] = _report(args, fit, text, folder, rows)
    written = _write(out, text, files)
    for w in fit.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {w}", highlight=False, soft_wrap=True)
    how = (
        fit.arrival.process
        if len(fit.classes) == 1
        else ", ".join(f"{c.name} {c.arrivals.process}" for c in fit.classes)
    )
    console.print(f"fitted {fit.n:,} requests, {len(fit.classes)} class(es), arrival {how}")
    console.print(f"[dim]wrote {', '.join(str(p) for p in written)}[/dim]")
    return 0


def _report(args: argparse.Namespace, fit, text: str, folder: Path, rows) -> str:
    from sim.analysis.traffic_roundtrip import resolved_traffic
    from sim.report.traffic_fit import render_fit_report
    from sim.workload.fit.write import traffic_dict
    from sim.workload.generate import generate_workload
    from sim.workload.spec import TrafficSpec

    spec = TrafficSpec.model_validate(resolved_traffic(traffic_dict(text), folder))
    generated = generate_workload(spec, args.seed, folder)
    return render_fit_report(fit, text, generated, rows, str(args.check or ""), args.check_seeds)


def _check(args: argparse.Namespace, fit, text: str, folder: Path):
    from sim.analysis.traffic_roundtrip import TOLERANCE, round_trip
    from sim.cli.common import console
    from sim.workload.fit.write import traffic_dict

    rows = round_trip(Path(args.check), fit, traffic_dict(text), folder, seeds=args.check_seeds)
    console.print(f"round trip on {args.check}'s fleet (fitted: mean of {args.check_seeds} seeds):")
    head = f"  {'metric':<26}{'replayed log':>14}{'fitted':>14}{'diff':>9}{'95% interval':>19}{'rank':>6}  verdict"
    console.print(head)
    for r in rows:
        mark = {"within": "ok", "outside": f"> {TOLERANCE:.0%}", "undecided": "inside the noise"}[r.verdict]
        line = (
            f"  {r.label:<26}{r.replay:>14.4g}{r.fitted:>14.4g}{r.rel_diff:>+8.1%}{r.interval_text:>20}"
            f"{r.replay_rank:>6.0%}  {mark}"
        )
        console.print(line, highlight=False)
    console.print(
        f"  [dim]interval: fitted mean - replay +- t * sd(seeds) * sqrt(1 + 1/seeds) (the replay is one "
        f"realization); ok: the whole interval within {TOLERANCE:.0%}; > {TOLERANCE:.0%}: wholly outside; "
        "inside the noise: neither (more seeds narrow it only to the one replay's own spread); rank: share of "
        "the fitted runs below the replay (near 0% or 100%: the replay is unlike them)[/dim]",
        highlight=False,
        soft_wrap=True,
    )
    return rows


def register(subparsers) -> None:
    """Add the ``traffic`` command (``traffic fit``)."""
    t = subparsers.add_parser("traffic", help="fit a scenario traffic section to request logs")
    sub = t.add_subparsers(dest="traffic_command", required=True, metavar="{fit}")
    f = sub.add_parser("fit", help="fit classes, arrivals, lengths and prefix sharing to request logs")
    f.add_argument("logs", nargs="+", metavar="LOG", help="request log files (docs/traffic-fit.md lists the formats)")
    f.add_argument(
        "--out",
        type=out_arg,
        required=True,
        help="the traffic section to write (.yaml); a lengths table goes beside it",
    )
    f.add_argument("--format", choices=FORMATS, default="auto", help="log format (default: told from the file)")
    f.add_argument("--by", choices=("model", "tenant", "route", "class"), help="one class per value of this field")
    f.add_argument("--classes", type=int, metavar="N", help="N classes by clustering (prompt, output) lengths")
    f.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN", help="gateway log column of a field")
    f.add_argument("--scale", type=float, default=1.0, help="multiply the fitted rates by this (default 1)")
    f.add_argument("--growth", metavar="PCT:MONTHS", help="also write plan.demand: a growth forecast from the rate")
    f.add_argument("--check", metavar="SCENARIO", help="simulate this scenario's fleet on the log and on the fit")
    f.add_argument(
        "--check-seeds",
        type=int,
        default=None,
        help="seeds of the fitted traffic in --check (default 3; each difference gets a 95%% interval over them)",
    )
    f.add_argument("--report", metavar="HTML", help="also write the fit report (observed vs fitted), beside --out")
    f.add_argument(
        "--ties",
        choices=("spread", "batch"),
        default="spread",
        help="a coarse clock's tied timestamps: spread over their tick (default) or fitted as batches",
    )
    f.add_argument(
        "--seed", type=int, default=0, help="seed of the fit's subsampling, clustering and the report's draw"
    )
    f.set_defaults(func=_cmd_fit)
