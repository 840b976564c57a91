"""Simulator speed: simulated requests per wall-second and peak memory.

Cases (each in its own process, so peak RSS is its own):
  a    1 replica, 10k requests (also with --exact-steps: the fast-forward ratio,
       and with FLEETCAST_PURE_PYTHON=1: the compiled engine's ratio)
  a16  16 replicas, 16 x a's rate, 160k requests
  b    64 replicas of Llama-3.1-8B on H100, chat/code mix at ~80% of measured
       capacity, 1M requests

Capacity is measured first: one replica flooded with requests; its
completion rate over the window is its capacity. Each case times ``simulate``
(workload, run, records) in wall and CPU seconds, the best of --repeat runs;
case a (~50 ms of CPU, near a shared machine's noise) in --inner-a rounds, each
round one process of --repeat timed runs per tool (fleetcast, --baseline, the
peer; the order rotating from round to round), so a change of the machine's load
during the run falls on every tool alike: the best of --repeat x --inner-a runs
each. Every timed run starts after ``gc.collect()``. The peer (--peer-python) is
timed the same way on the same requests (bench/peer_vllm_sr_sim.py): the best of
as many runs as fleetcast's case (a: --repeat x --inner-a, in the rounds; a16:
--repeat), so both tools are measured identically in the same run.

--baseline ROOT also runs a and a16 with the source tree ROOT (another checkout, its
compiled modules built: the code before a change) in the same run, and prints old/new.
--peer-python PYTHON also runs vllm-sr-sim (bench/peer_vllm_sr_sim.py, with that
interpreter, which has ``vllm-sr-sim`` installed) on a's and a16's requests, and prints
fleetcast/peer in CPU seconds. Prints a table and writes JSON (default
bench/results/sim_speed.json). Never gates on absolute times.

    python bench/sim_speed.py [--requests-b 1000000] [--repeat 3] [--inner-a 5] [--baseline ROOT]
                              [--peer-python PYTHON] [--out FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import tempfile
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
    replicas, rate, duration, exact, pure, root, repeat = args
    if pure:  # before sim is imported: the Python sources, not the compiled modules
        os.environ["FLEETCAST_PURE_PYTHON"] = "1"
    if root:  # before sim is imported: another source tree (--baseline)
        sys.path.insert(0, str(Path(root).resolve()))
    import sim
    from sim.engine.fleet import simulate

    sc = scenario(replicas, rate, duration)
    wall, cpu = [], []
    for _ in range(repeat):
        gc.collect()  # as the peer does before each timed run (bench/peer_vllm_sr_sim.py)
        t0, c0 = time.perf_counter(), time.process_time()
        res = simulate(sc, exact_steps=exact)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    df = res.requests
    queue.put({"replicas": replicas, "rate_rps": rate, "requests": int(len(df)), "exact_steps": exact,
               "engine": sim.engine_build(), "source": str(Path(sim.__file__).resolve().parents[1]),
               "timed_runs": repeat, "wall_s": min(wall), "cpu_s": min(cpu), "sim_req_per_wall_s": len(df) / min(wall),
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


def run_peer(python: str, replicas: int, rate: float, duration: float, repeat: int) -> dict:
    """vllm-sr-sim on the requests fleetcast's case plays (bench/peer_vllm_sr_sim.py)."""
    import numpy as np

    from sim.engine.inputs import scenario_workload

    wl = scenario_workload(scenario(replicas, rate, duration))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "workload.npz")
        np.savez(path, arrival_s=wl.arrival_s, prompt_tokens=wl.prompt_tokens, output_tokens=wl.output_tokens)
        peer = Path(__file__).resolve().parent / "peer_vllm_sr_sim.py"
        out = subprocess.run([python, str(peer), path, str(replicas), str(repeat)], capture_output=True, text=True,
                             check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(results: list[dict]) -> dict:
    """One tool's figures over several processes of the same case: the least CPU and the least wall
    time, the timed runs summed."""
    best = dict(min(results, key=lambda r: r["cpu_s"]))
    best["wall_s"] = min(r["wall_s"] for r in results)
    best["timed_runs"] = sum(r["timed_runs"] for r in results)
    best["rounds"] = len(results)
    if "sim_req_per_wall_s" in best:
        best["sim_req_per_wall_s"] = best["requests"] / best["wall_s"]
    return best


def case_a_rounds(a_args: tuple, repeat: int, rounds: int, baseline: str | None, peer_python: str | None) -> dict:
    """Case a for fleetcast, the baseline and the peer, interleaved: ``rounds`` rounds, each one process
    of ``repeat`` timed runs per tool, the order rotating; each tool's best over all rounds."""
    tools = [("a", lambda: run_case(*a_args, False, False, None, repeat))]
    if baseline:
        tools.append(("a (base)", lambda: run_case(*a_args, False, False, baseline, repeat)))
    if peer_python:
        tools.append(("peer a", lambda: {**run_peer(peer_python, *a_args, repeat), "timed_runs": repeat}))
    got: dict = {name: [] for name, _ in tools}
    for i in range(rounds):
        k = i % len(tools)
        for name, run in tools[k:] + tools[:k]:
            got[name].append(run())
    return {name: best_of(results) for name, results in got.items()}


def capacity_rps() -> float:
    from sim.engine.fleet import simulate

    sc = scenario(1, 60.0, 120.0, warmup_s=60.0)  # far beyond what one replica serves
    df = simulate(sc).requests
    done = df[(df.status == "ok") & (df.finish_s >= 60) & (df.finish_s < 120)]
    return len(done) / 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests-b", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (best of)")
    ap.add_argument("--inner-a", type=int, default=5,
                    help="case a: this many interleaved rounds of --repeat runs per tool (fleetcast, --baseline and "
                         "the peer alike)")
    ap.add_argument("--baseline", help="source tree of the code to compare with (cases a and a16)")
    ap.add_argument("--peer-python", help="a Python interpreter with vllm-sr-sim installed (cases a and a16)")
    ap.add_argument("--out", default="bench/results/sim_speed.json")
    a = ap.parse_args()
    cap = capacity_rps()
    rate1 = 0.8 * cap
    print(f"one replica's capacity: {cap:.2f} req/s; 80% load = {rate1:.2f} req/s per replica")
    a_args = (1, rate1, 10_000 / rate1)
    a16_args = (16, 16 * rate1, 10_000 / rate1)
    rep = a.repeat
    # case a is ~50 ms: rounds of every tool in turn (case_a_rounds), more timed runs, for every tool alike
    a_best = case_a_rounds(a_args, rep, max(1, a.inner_a), a.baseline, a.peer_python)
    cases = [("a (exact)", (*a_args, True, False, None, rep)),
             ("a (pure)", (*a_args, False, True, None, 1)),
             ("a16", (*a16_args, False, False, None, rep)),
             ("b", (64, 64 * rate1, a.requests_b / (64 * rate1), False, False, None, 1))]
    if a.baseline:
        cases += [("a16 (base)", (*a16_args, False, False, a.baseline, rep))]
    rows = [{"case": "a", **a_best["a"]}]
    if a.baseline:
        rows.append({"case": "a (base)", **a_best["a (base)"]})
    for name, args in cases:
        rows.append({"case": name, **run_case(*args)})
    print(f"\n{'case':<11} {'engine':<12} {'replicas':>8} {'requests':>10} {'best of':>7} {'wall s':>8} "
          f"{'CPU s':>7} {'req/wall-s':>11} {'peak MB':>8} {'ok %':>6}")
    for r in rows:
        print(f"{r['case']:<11} {r['engine']:<12} {r['replicas']:>8} {r['requests']:>10,} {r['timed_runs']:>7} "
              f"{r['wall_s']:>8.2f} {r['cpu_s']:>7.3f} {r['sim_req_per_wall_s']:>11,.0f} {r['peak_rss_mb']:>8.0f} "
              f"{r['ok_pct']:>6.1f}")
    by = {r["case"]: r for r in rows}
    ratio = by["a (exact)"]["wall_s"] / by["a"]["wall_s"]
    print(f"\nfast-forward speed-up over --exact-steps (case a, same run): {ratio:.1f}x")
    pure_ratio = by["a (pure)"]["wall_s"] / by["a"]["wall_s"]
    print(f"{by['a']['engine']} engine over the pure-Python one (case a, same run): {pure_ratio:.1f}x")
    doc = {"capacity_rps_per_replica": cap, "rows": rows, "exact_over_fast_wall_ratio": ratio,
           "pure_over_default_wall_ratio": pure_ratio}
    for case in ("a", "a16"):
        if a.baseline:
            old = by[f"{case} (base)"]["cpu_s"] / by[case]["cpu_s"]
            doc[f"baseline_over_this_cpu_ratio_{case}"] = old
            print(f"case {case}: baseline {by[case + ' (base)']['cpu_s']:.3f} CPU-s, this {by[case]['cpu_s']:.3f} "
                  f"CPU-s: {old:.2f}x (same run)")
        if a.peer_python:
            if case == "a":
                peer = a_best["peer a"]
            else:
                peer = {**run_peer(a.peer_python, *a16_args, rep), "timed_runs": rep}
            doc[f"peer_{case}"] = peer
            doc[f"peer_over_this_cpu_ratio_{case}"] = peer["cpu_s"] / by[case]["cpu_s"]
            rounds = f", in {by[case]['rounds']} interleaved rounds" if "rounds" in by[case] else ""
            print(f"case {case}: {peer['peer']} {peer['cpu_s']:.3f} CPU-s ({peer['requests'] / peer['cpu_s']:,.0f} "
                  f"req/CPU-s), fleetcast {by[case]['cpu_s']:.3f} CPU-s: fleetcast is "
                  f"{peer['cpu_s'] / by[case]['cpu_s']:.2f}x the peer's speed (same run; each the best of "
                  f"{by[case]['timed_runs']} timed runs after gc.collect(){rounds})")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc.update({"python": sys.version.split()[0], "machine": platform.machine()})
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
