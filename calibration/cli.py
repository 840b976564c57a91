"""``fleetcast calibrate`` and ``fleetcast validate``.

    fleetcast calibrate RUN_DIR... --out calibration/profiles/NAME.json
    fleetcast calibrate --splitwise h100-80gb --out calibration/profiles/h100-splitwise.json
    fleetcast calibrate microbench --gpu NAME [--model M] --out my-gpu.yaml [--device cpu] [--dtype D]
    fleetcast validate [--profile P] RUN... [--out DIR] [--record]

A RUN is a testbed run folder, or a folder of them (a sweep folder), or a run
log: a ``vllm bench serve --save-result --save-detailed`` result (.json) or a
per-request log (.jsonl, .csv), or a folder of such logs. A log's engine
settings come from its sidecar (``<stem>.fleetcast.yaml``, docs/run-logs.md),
``--sidecar FILE`` and the ``--gpu``, ``--model``, ``--tensor-parallel`` and
``--sidecar-set KEY=VALUE`` flags.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from calibration import gpu_microbench
from calibration.log_files import is_log_file
from calibration.microbench_entry import achievable_rates, write_entry
from sim import outpaths
from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.infiles import MAX_PROFILE_BYTES, int_arg, out_arg, read_text_limited

__all__ = ["register", "expand_runs", "load_runs", "check_out_folder", "check_out_file"]

UNCALIBRATED = "none (catalog defaults and measured kernels, as `fleetcast run` and `plan` use)"
_VALIDATE_FILES = "errors.csv, errors.json, index.html and figures"
_RUN_KINDS = (
    "a testbed run folder (run.json), a vLLM bench serve result (.json), a per-request log "
    "(.jsonl, .csv; docs/run-logs.md), or a folder of them"
)


def expand_runs(paths: list[Path]) -> list[Path]:
    """Runs to load: a run folder (run.json) or a log file as given; a folder's run sub-folders,
    else the log files in it (sidecars left out). Names and stats only: a path that is no run is
    refused before pandas and the readers are imported."""
    out = []
    for p in map(Path, paths):
        if (p / "run.json").is_file() or is_log_file(p):
            out.append(p)
            continue
        if p.is_file():
            raise FleetcastError(f"{p}: not a run; give {_RUN_KINDS}")
        subs = sorted(d for d in p.iterdir() if (d / "run.json").is_file()) if p.is_dir() else []
        subs = subs or (sorted(f for f in p.iterdir() if is_log_file(f)) if p.is_dir() else [])
        if not subs:
            raise FleetcastError(f"{p}: {'not found' if not p.exists() else 'holds no runs'}; give {_RUN_KINDS}")
        out += subs
    return out


def _log_overrides(args) -> list[str]:
    """Sidecar settings from the command line (they win over the sidecar's)."""
    out = [f"gpu={args.gpu}"] if args.gpu else []
    out += [f"model={args.model}"] if args.model else []
    out += [f"tensor_parallel={args.tensor_parallel}"] if args.tensor_parallel is not None else []  # 0 is refused
    return out + list(args.sidecar_set or [])


def load_runs(args) -> list:
    """Every run of ``args.runs`` loaded (``calibration.runs.Run``), before anything is written;
    each log's notes (defaults assumed, failed requests) are printed."""
    paths = expand_runs(args.runs)  # before the readers' imports (pandas, the scenario, the engine's inputs)
    from calibration.logs import load_log
    from calibration.logs.aggregate import is_aggregate_table, load_aggregate
    from calibration.logs.static_batch import is_static_batch_table, load_static_batches
    from calibration.runs import load_run

    runs = []
    for p in paths:
        if p.is_dir():
            run = load_run(p, args.sidecar_set)
            for note in run.notes:  # settings an attached server's run folder did not record
                print(f"note: {run.name}: {note}")
            runs.append(run)
            continue
        if is_static_batch_table(p):  # one run per measured batch (docs/run-logs.md, "Static-batch tables")
            table = load_static_batches(p, args.sidecar, _log_overrides(args))
            for note in table[0].notes:  # the sidecar's, the same for every row
                print(f"note: {p}: {note}")
            runs += table
            continue
        if is_aggregate_table(p):  # one run per concurrency point or rate stage (docs/run-logs.md)
            table = load_aggregate(p, args.sidecar, _log_overrides(args))
            for note in table[0].notes:
                print(f"note: {p}: {note}")
            runs += table
            continue
        run = load_log(p, args.sidecar, _log_overrides(args))
        for note in run.notes:
            print(f"note: {run.name}: {note}")
        runs.append(run)
    seen: dict[str, int] = {}
    for run in runs:  # the tables are keyed by run name: two runs of one name get a suffix
        seen[run.name] = seen.get(run.name, 0) + 1
        if seen[run.name] > 1:
            run.name = f"{run.name} ({seen[run.name]})"
    return runs


def _add_log_flags(p) -> None:
    g = p.add_argument_group("run logs (bench serve results, per-request logs; docs/run-logs.md)")
    g.add_argument(
        "--sidecar",
        type=Path,
        help="engine settings of every log given (default: the sidecar beside each log, <stem>.fleetcast.yaml)",
    )
    g.add_argument("--gpu", help="GPU from the fleetcast catalog (overrides the sidecar's)")
    g.add_argument("--model", help="model from the fleetcast catalog (overrides the sidecar's)")
    g.add_argument("--tensor-parallel", type=int, help="tensor parallel size (overrides the sidecar's)")
    g.add_argument(
        "--sidecar-set",
        action="append",
        metavar="KEY=VALUE",
        help="set a sidecar field, e.g. engine.max_num_seqs=64 (repeatable); for a testbed run "
        "folder of an attached server: dtype=float32|bfloat16|float16, engine.max_num_seqs, "
        "engine.max_num_batched_tokens, engine.max_model_len",
    )


def _out_path(text: str) -> Path:
    return Path(out_arg(text))


def check_out_folder(out: Path, what: str = f"the validation outputs ({_VALIDATE_FILES})") -> None:
    """Refuse an ``--out`` folder that is a file or cannot be written, or one holding another command's
    results (validate's files were added to a plan's folder before), before any work; writes nothing."""
    outpaths.check_out_folder(out, what)
    found = outpaths.results_kind(out) if out.is_dir() else None
    if found not in (None, "other"):
        raise FleetcastError(
            f"{out} holds the results of `fleetcast {found}`; {what} would be mixed into them: choose another --out"
        )


def check_out_file(out: Path, what: str = "the profile JSON", *, replaces_a_profile: bool = False) -> None:
    """Refuse an ``--out`` file path that is a folder or cannot be written, before any work; writes nothing.
    With ``replaces_a_profile`` (the fitted profile is written there) an existing file is replaced only
    when it is a profile (``coefficients``): a run log given as --out was overwritten by the profile before."""
    outpaths.check_out_file(out, what)
    if not replaces_a_profile or not out.is_file() or out.stat().st_size == 0:
        return
    try:
        doc = json.loads(read_text_limited(out, MAX_PROFILE_BYTES, "--out file"))
    except (ValueError, FleetcastError):
        doc = None
    if not (isinstance(doc, dict) and isinstance(doc.get("coefficients"), dict)):
        raise FleetcastError(
            f"--out {out} exists and is no calibration profile (no 'coefficients' mapping); the profile would "
            "replace it: choose another --out"
        )


def register(subparsers) -> None:
    """Add ``calibrate`` and ``validate`` to the fleetcast command."""
    p = subparsers.add_parser(
        "calibrate",
        help="fit performance coefficients to testbed runs (a profile)",
        description="Fit the performance model's coefficients (least squares, bounded) "
        "to closed-loop testbed sweep runs, or to Splitwise's public GPU "
        "measurements, and write a calibration profile.",
    )
    p.add_argument(
        "runs",
        nargs="*",
        type=Path,
        help="run folders or sweep folders (closed loop), or closed-loop run logs (bench serve with --max-concurrency)",
    )
    p.add_argument("--out", type=_out_path, required=True, help="profile JSON to write")
    p.add_argument("--name", help="profile name (default: the file name)")
    p.add_argument(
        "--method",
        choices=["observables", "simulation"],
        default="observables",
        help="observables (default): "
        "per-run mean TPOT / TTFT against PerfModel directly (fast; better on held-out runs here, see "
        "calibration/README.md); simulation: then refine by replaying every run through the simulator",
    )
    p.add_argument("--max-nfev", type=int_arg(1, 100_000), default=60, help="simulation fit: most residual evaluations")
    p.add_argument(
        "--splitwise",
        metavar="HARDWARE",
        help="fit Splitwise's perf_model.csv rows of this hardware instead (a100-80gb, h100-80gb, h100-80gb-pcap)",
    )
    p.add_argument("--splitwise-csv", type=Path, help="path of perf_model.csv")
    _add_log_flags(p)
    _add_microbench_flags(p)
    p.set_defaults(func=cmd_calibrate)

    v = subparsers.add_parser(
        "validate",
        help="replay testbed runs in the simulator and compare",
        description="Replay each run's exact arrivals, classes and lengths with the "
        "server's engine settings and a profile; print and write the error "
        "table and CDF / time-series overlays.",
    )
    v.add_argument(
        "runs",
        nargs="+",
        type=Path,
        help="run folders, bench serve results (.json), per-request logs (.jsonl, .csv), or folders of them",
    )
    v.add_argument(
        "--profile",
        type=Path,
        help="calibration profile to replay with; without it each run replays with exactly the model "
        "`fleetcast run` and `plan` use for that pool (measured vLLM kernels or the roofline, "
        "catalog defaults), and says which",
    )
    v.add_argument("--out", type=_out_path, help="folder for errors.csv/json, PNGs and index.html")
    v.add_argument("--markdown", action="store_true", help="also print the per-run error table as Markdown")
    v.add_argument(
        "--record",
        action="store_true",
        help="store the held-out (open-loop) error summary in the profile's validation section",
    )
    _add_log_flags(v)
    v.set_defaults(func=cmd_validate)


def _add_microbench_flags(p) -> None:
    g = p.add_argument_group(
        "microbench: `fleetcast calibrate microbench --gpu NAME [--model M] --out FILE.yaml` measures this "
        "machine's GPU with PyTorch (no vLLM) and writes a catalog entry with its achievable rates "
        "(--gpu, --model, --tensor-parallel as above)"
    )
    g.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cuda: the GPU (default); cpu: a test run")
    g.add_argument(
        "--dtype",
        action="append",
        choices=list(gpu_microbench.DTYPES),
        help="GEMM dtype to measure (repeatable; default bf16 on cuda, fp32 on cpu)",
    )
    g.add_argument(
        "--tokens",
        type=int_arg(16, 65536),
        help="tokens of the timed step: the GEMMs' m, the attention's length (default 2048 on cuda, 128 on cpu)",
    )
    g.add_argument(
        "--catalog",
        action="append",
        type=Path,
        default=[],
        help="user catalog file naming --gpu or --model (repeatable); the entry is checked over them",
    )


def cmd_microbench(args) -> int:
    """``fleetcast calibrate microbench``: refuse what cannot be measured before measuring, write
    the catalog entry only once it checks out (calibration/gpu_microbench.py)."""
    if len(args.runs) != 1:
        raise FleetcastError("`fleetcast calibrate microbench` takes no run folders")
    if not args.gpu:
        raise FleetcastError(
            "`fleetcast calibrate microbench` needs --gpu NAME: the catalog GPU this card is (built-in, or an "
            "entry of a --catalog file), whose datasheet peaks bound the measured rates"
        )
    if args.out.suffix not in (".yaml", ".yml"):
        raise FleetcastError(f"--out {args.out}: the microbench writes a catalog entry; give a .yaml file")
    check_out_file(args.out, "the catalog entry (YAML)")
    cat = load_catalog(args.catalog)
    gpu, model = cat.gpu(args.gpu), cat.model(args.model or "llama-3.1-8b")
    tp = 1 if args.tensor_parallel is None else args.tensor_parallel
    if tp < 1 or model.num_heads % tp:
        raise FleetcastError(f"--tensor-parallel {tp}: must divide the {model.num_heads} heads of {model.name}")
    dtypes = args.dtype or (["bf16"] if args.device == "cuda" else ["fp32"])
    missing = [d for d in dtypes if d not in gpu.peak_flops]
    if missing:
        raise FleetcastError(
            f"--dtype {missing[0]}: GPU '{gpu.name}' has no datasheet peak for it (peak_flops has "
            f"{', '.join(sorted(gpu.peak_flops))}), so its achievable rate could not be checked; "
            "measure one of those. Nothing was written."
        )
    torch = gpu_microbench.import_torch()
    dev = gpu_microbench.open_device(torch, args.device)
    for d in dtypes:
        gpu_microbench.check_dtype(torch, dev, d)
    gpu_cuda = dev.type == "cuda"
    tokens = args.tokens or (2048 if gpu_cuda else 128)
    start = time.perf_counter()
    meas = gpu_microbench.measure(
        torch,
        dev,
        dtypes,
        model,
        tp,
        tokens,
        square=8192 if gpu_cuda else 256,
        copy_bytes=(1 << 30) if gpu_cuda else (64 << 20),
        budget_s=2.0 if gpu_cuda else 0.5,
    )
    write_entry(args.out, gpu, meas, args.catalog)
    rates, bw, notes = achievable_rates(meas, gpu)
    print(f"microbench on {meas.device_name} (torch {meas.torch_version}), {time.perf_counter() - start:.1f} s")
    for d, r in sorted(rates.items()):
        print(f"  {d} GEMM: {r / 1e12:.4g} TFLOPS achievable, {r / gpu.peak_flops[d]:.1%} of the datasheet peak")
    print(f"  copy: {bw / 1e9:.4g} GB/s, {bw / gpu.hbm_bw_bytes_s:.1%} of the datasheet bandwidth")
    for n in notes:
        print(f"  note: {n}")
    print(f"wrote {args.out}: use it with `catalog: [{args.out}]` in a scenario")
    return 0


def cmd_calibrate(args) -> int:
    if [str(r) for r in args.runs[:1]] == ["microbench"]:
        return cmd_microbench(args)

    if args.splitwise and args.runs:  # the runs were ignored before
        raise FleetcastError(
            f"give run folders to fit or --splitwise {args.splitwise}, not both ({len(args.runs)} run path(s) given)"
        )
    if args.splitwise_csv is not None and not args.splitwise:
        raise FleetcastError(
            f"--splitwise-csv {args.splitwise_csv} is read by --splitwise HARDWARE: add it, or drop it"
        )
    check_out_file(args.out, replaces_a_profile=True)
    name = args.name or args.out.stem
    if args.splitwise:
        from calibration import splitwise

        csv = args.splitwise_csv or splitwise.DEFAULT_CSV
        if args.splitwise not in splitwise.HARDWARE:
            raise FleetcastError(
                f"unknown Splitwise hardware '{args.splitwise}'; valid: {', '.join(splitwise.HARDWARE)}"
            )
        steps = splitwise.load_steps(csv)
        if not (steps["hardware"] == args.splitwise).any():
            raise FleetcastError(
                f"Splitwise CSV {csv} has no rows of hardware '{args.splitwise}'; it has "
                f"{', '.join(sorted(map(str, steps['hardware'].unique()))) or 'no rows'}"
            )
        prof = splitwise.build_profile(steps, args.splitwise, name, csv)
        _write(args.out, prof)
        print(f"{name}: {json.dumps(prof['coefficients'])}")
        print(f"in-sample error: {json.dumps(prof['provenance']['fit_error'])}")
        print(prof["validation"]["summary"])
        return 0
    if not args.runs:
        raise FleetcastError("give run folders to fit, or --splitwise HARDWARE")
    expand_runs(args.runs)  # a path that is no run: refused before the fit's imports (scipy, pandas)
    from calibration.profile_io import build_run_profile

    prof, table = build_run_profile(load_runs(args), name, args.method, args.max_nfev, args.out)
    _write(args.out, prof)
    print(f"{name}: {json.dumps(prof['coefficients'])}")
    print("fit residuals (simulated or predicted vs measured, %):")
    for row in table:
        print(f"  {row}")
    print(f"fit error: {json.dumps(prof['provenance']['fit_error'])}")
    print(f"wrote {args.out}")
    return 0


def cmd_validate(args) -> int:
    if args.record and args.profile is None:
        raise FleetcastError(
            "--record stores the held-out summary in a profile: give --profile PROFILE.json, "
            "or leave --record out to validate the uncalibrated model"
        )
    if args.out:
        check_out_folder(args.out)
    expand_runs(args.runs)  # a path that is no run: refused before the imports below
    from calibration.validate import (
        error_pivot,
        error_table,
        replay_model,
        summarize_errors,
        validate_run,
        write_outputs,
    )
    from sim.perf.profiles import load_profile

    prof: dict = load_profile(args.profile) if args.profile is not None else {"name": UNCALIBRATED}
    if args.record:
        check_out_file(args.profile, "the validation summary (--record)")
    comps = []
    fitted_gpu = (prof.get("fitted_range") or {}).get("gpu")
    runs = load_runs(args)
    if args.profile is None:
        print(
            "no --profile: each run replays with exactly what `fleetcast run` and `plan` use for its pool "
            "(no calibration profile):"
        )
        said: dict[tuple, list[str]] = {}  # one line per distinct pool (a static-batch table has many runs)
        for run in runs:
            source, warns = replay_model(run)
            said.setdefault((run.gpu, run.model, run.tp, source, tuple(warns)), []).append(run.name)
        for (gpu, model, tp, source, warns), names in said.items():
            who = names[0] if len(names) == 1 else f"{names[0]} and {len(names) - 1} more"
            print(f"  {who} ({gpu}, {model}, TP{tp}): {source}")
            for w in warns:
                print(f"    {w}")
    for run in runs:
        partial = partial_run_note(run)
        if partial:
            print(f"warning: {partial}")
        if fitted_gpu and fitted_gpu != run.gpu:
            print(
                f"warning: {run.name} ran on {run.gpu}, but profile {prof.get('name', args.profile.stem)} was "
                f"fitted on {fitted_gpu}; the comparison tests the profile outside its fitted range"
            )
        cached = (
            float(run.requests["cached_prompt_tokens"].fillna(0).sum())
            if "cached_prompt_tokens" in run.requests
            else 0.0
        )
        if cached > 0 and len(run.workload.prefix_keys) == 0:
            print(
                f"warning: {run.name}: the server answered {cached:,.0f} prompt tokens from its prefix cache although "
                "the workload shares no prefixes (prompts left over from an earlier run on the same server); "
                "the simulator cannot know, so this run's latencies are not comparable. Re-measure with the "
                "current testbed (per-run prompt salt)."
            )
        comps.append(validate_run(run, args.profile))
    table = error_table(comps)
    piv = error_pivot(table)
    cols = [
        c
        for c in (
            "ttft_p50_s",
            "ttft_p90_s",
            "ttft_p99_s",
            "tpot_p50_s",
            "tpot_p90_s",
            "tpot_p99_s",
            "e2e_p50_s",
            "output_tok_s",
            "mean_running",
            "batch_latency_s",
            "ttft_mean_s",
            "tpot_mean_s",
            "itl_p50_s",
            "itl_p90_s",
            "itl_p99_s",
            "avg_batch_size",
        )
        if c in piv
    ]
    print(f"profile {prof.get('name')}: error % (simulated - measured) / measured")
    print(piv[cols].rename(columns=lambda c: c.removesuffix("_s")).to_string())
    for c in comps:
        if c.run.failed:
            print(f"{c.run.name}: {c.run.failed} failed request(s) left out of the latencies and throughput")
    if args.markdown:
        print(_markdown(piv[cols]))
    summ = summarize_errors(table, "open")
    # concurrency points are held out like open-loop runs (a testbed's closed-loop sweeps are its fit)
    agg_closed = any(c.run.mode == "closed" and c.run.meta.get("aggregate_measured") for c in comps)
    for label, s in (
        ("held-out (open-loop)", summ),
        ("closed-loop", summarize_errors(table, "closed")),
        ("static batches", summarize_errors(table, "static")),
    ):  # a concurrency point is closed-loop, a rate stage open-loop (docs/run-logs.md)
        if s and (label.startswith(("held", "static")) or not summ or (label == "closed-loop" and agg_closed)):
            print(
                f"{label} median |error| %: "
                + ", ".join(
                    f"{k.removesuffix('_s')} {v['median_abs_pct']}"
                    + (" ok" if v.get("met") else " MISSED" if "met" in v else "")
                    for k, v in s.items()
                )
            )
    if args.out:
        write_outputs(comps, table, args.out, prof.get("name") or args.profile.stem)
        print(f"wrote {args.out}/errors.csv, errors.json, index.html and figures")
    if args.record:
        prof["validation"] = _validation_section(table, summ, comps)
        _write(args.profile, prof)
        print(f"recorded the validation summary in {args.profile}")
    return 0


def partial_run_note(run) -> str | None:
    """'partial run: N of M requests finished ...' for a run whose run.json says it did not
    complete (killed client, stopped server), else None. M is the sweep point's request count
    when run.json has it."""
    meta = run.meta or {}
    if meta.get("completed", True) is not False:
        return None
    req = run.requests
    finished = int((req["status"] == "ok").sum()) if "status" in req.columns else len(req)
    planned = (meta.get("sweep_point") or {}).get("requests")
    of = f" of {int(planned):,}" if isinstance(planned, (int, float)) and planned else ""
    why = f" ({meta['reason']})" if meta.get("reason") else ""
    return (
        f"{run.name}: partial run: {finished:,}{of} requests finished{why}; the comparison covers only "
        f"those, at the load they saw"
    )


def _markdown(piv) -> str:
    """The per-run error table (``error_pivot``'s cells: signed %, "–", "not measured") as Markdown."""
    head = ["run"] + [c.removesuffix("_s").replace("output_tok", "output tok/s") for c in piv.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run, row in piv.iterrows():
        lines.append(f"| {run} | " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)


def _validation_section(table, summ: dict, comps) -> dict:
    runs = sorted({c.run.name for c in comps if c.run.mode == "open"})
    head = {
        k: summ[k]["median_abs_pct"]
        for k in ("ttft_p50_s", "tpot_p50_s", "ttft_p90_s", "tpot_p90_s", "output_tok_s")
        if k in summ
    }
    text = ", ".join(f"{k.replace('_s', '')} {v}%" for k, v in head.items())
    per_run = {}
    for c in comps:
        t = table[table["run"] == c.run.name].set_index("metric")["error_pct"]
        per_run[c.run.name] = {
            "mode": c.run.mode,
            **{m: (None if v != v else round(float(v), 2)) for m, v in t.items()},
        }
    folders = sorted(os.path.relpath(c.run.folder.resolve(), Path.cwd()) for c in comps if c.run.mode == "open")
    return {
        "summary": f"held-out open-loop runs ({len(runs)}): median |error| {text}",
        "held_out_runs": runs,
        "held_out_folders": folders,
        "median_abs_error_pct": summ,
        "per_run_error_pct": per_run,
    }


def _write(path: Path, data: dict) -> None:
    """Write a profile JSON all at once (temp file + rename)."""
    from sim.records import write_text_atomic  # numpy, pandas and pyarrow: only once there is a profile to write

    try:
        write_text_atomic(json.dumps(data, indent=2, allow_nan=False) + "\n", path)
    except OSError as exc:
        raise FleetcastError(
            f"cannot write the profile JSON to {path}: {exc.strerror or exc}; choose a folder you can write"
        ) from None
