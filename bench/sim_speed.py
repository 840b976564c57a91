"""Simulator speed: simulated requests per wall-second and peak memory.

Cases (each in its own process, so peak RSS is its own):
  a  1 replica, 10k requests (also with --exact-steps: the fast-forward ratio,
     and with FLEETCAST_PURE_PYTHON=1: the compiled engine's ratio)
  b  64 replicas of Llama-3.1-8B on H100, chat/code mix at ~80% of measured
     capacity, 1M requests

Capacity is measured first: one replica flooded with requests; its
completion rate over the window is its capacity. Prints a table and writes
JSON (default bench/results/sim_speed.json). Never gates on absolute times.

    python bench/sim_speed.py [--requests-b 1000000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# One core: keep numpy's BLAS from starting (spinning) worker threads on the others.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

CLASSES = [
    {"name": "chat", "share": 0.7,
     "prompt_tokens": {"dist": "lognormal", "mean": 1500, "cv": 1.0, "min": 16, "max": 12000},
     "output_tokens": {"dist": "lognormal", "mean": 300, "cv": 0.9, "min": 1, "max": 2000},
     "prefix": {"tokens": 600, "num_distinct": 8}},
    {"name": "code", "share": 0.3,
     "prompt_tokens": {"dist": "uniform", "min": 200, "max": 4000},
     "output_tokens": {"dist": "lognormal", "mean": 80, "cv": 0.6, "min": 1, "max": 400}},
]


def scenario(replicas: int, rate_rps: float, duration_s: float, warmup_s: float = 0.0):
    from sim.scenario.spec import scenario_from_dict

    return scenario_from_dict({
        "name": "bench", "seed": 1,
        "fleet": [{"name": "h100", "gpu": "h100-sxm", "replicas": replicas, "model": "llama-3.1-8b",
                   "engine": {"max_model_len": 16384}}],
        "router": {"name": "least-outstanding"},
        "traffic": {"duration_s": duration_s, "warmup_s": warmup_s,
                    "arrival": {"process": "poisson", "rate_rps": rate_rps}, "classes": CLASSES},
        "sim": {"drain_s": 120},
    })


def _case(args: tuple, queue) -> None:
    replicas, rate, duration, exact, pure = args
    if pure:  # before sim is imported: the Python sources, not the compiled modules
        os.environ["FLEETCAST_PURE_PYTHON"] = "1"
    import sim
    from sim.engine.fleet import simulate

    sc = scenario(replicas, rate, duration)
    t0 = time.perf_counter()
    res = simulate(sc, exact_steps=exact)
    wall = time.perf_counter() - t0
    df = res.requests
    queue.put({"replicas": replicas, "rate_rps": rate, "requests": int(len(df)), "exact_steps": exact,
               "engine": sim.engine_build(),
               "wall_s": wall, "sim_req_per_wall_s": len(df) / wall,
               "ok_pct": float((df.status == "ok").mean() * 100),
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def run_case(*args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_case, args=(args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def capacity_rps() -> float:
    from sim.engine.fleet import simulate

    sc = scenario(1, 60.0, 120.0, warmup_s=60.0)  # far beyond what one replica serves
    df = simulate(sc).requests
    done = df[(df.status == "ok") & (df.finish_s >= 60) & (df.finish_s < 120)]
    return len(done) / 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests-b", type=int, default=1_000_000)
    ap.add_argument("--out", default="bench/results/sim_speed.json")
    a = ap.parse_args()
    cap = capacity_rps()
    rate1 = 0.8 * cap
    print(f"one replica's capacity: {cap:.2f} req/s; 80% load = {rate1:.2f} req/s per replica")
    cases = [("a", (1, rate1, 10_000 / rate1, False, False)),
             ("a (exact)", (1, rate1, 10_000 / rate1, True, False)),
             ("a (pure)", (1, rate1, 10_000 / rate1, False, True)),
             ("b", (64, 64 * rate1, a.requests_b / (64 * rate1), False, False))]
    rows = []
    for name, args in cases:
        rows.append({"case": name, **run_case(*args)})
    print(f"\n{'case':<10} {'engine':<12} {'replicas':>8} {'requests':>10} {'wall s':>8} {'req/wall-s':>11} "
          f"{'peak MB':>8} {'ok %':>6}")
    for r in rows:
        print(f"{r['case']:<10} {r['engine']:<12} {r['replicas']:>8} {r['requests']:>10,} {r['wall_s']:>8.1f} "
              f"{r['sim_req_per_wall_s']:>11,.0f} {r['peak_rss_mb']:>8.0f} {r['ok_pct']:>6.1f}")
    ratio = rows[1]["wall_s"] / rows[0]["wall_s"]
    print(f"\nfast-forward speed-up over --exact-steps (case a, same run): {ratio:.1f}x")
    pure_ratio = rows[2]["wall_s"] / rows[0]["wall_s"]
    print(f"{rows[0]['engine']} engine over the pure-Python one (case a, same run): {pure_ratio:.1f}x")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"capacity_rps_per_replica": cap, "rows": rows, "exact_over_fast_wall_ratio": ratio,
                               "pure_over_default_wall_ratio": pure_ratio,
                               "python": sys.version.split()[0], "machine": platform.machine()}, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
