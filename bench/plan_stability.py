"""Plan stability: does the recommendation move with the seed?

Runs ``fleetcast plan`` on one scenario (default scenarios/plan-example.yaml)
once per seed, each in the same process pool setting, and prints one row per
seed: the recommended candidate, its replica count with the count interval,
$/month, headroom with its interval, points and simulations run, and the wall
time. Writes JSON (default bench/results/plan_stability.json). Never gates on
times; the exit status is 0 when every seed recommends the same candidate and
count, 1 otherwise.

    python bench/plan_stability.py [--scenario FILE] [--seeds 11,12,...] [--workers N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim import __version__, engine_build  # noqa: E402
from sim.analysis.plan import run_plan  # noqa: E402
from sim.scenario.spec import load_scenario  # noqa: E402


def one(path: str, seed: int, workers: int) -> dict:
    scenario = load_scenario(path, seed=seed)
    started = time.perf_counter()
    out = run_plan(scenario, workers=workers)
    wall = time.perf_counter() - started
    doc = out.doc
    rec = next((c for c in doc["candidates"] if c["id"] == doc["recommended"]), None)
    row = {"seed": seed, "recommended": doc["recommended"], "wall_s": round(wall, 2), "points": doc["tried"],
           "simulations": doc.get("simulations"), "error": out.error}
    if rec is not None:
        row.update(replicas=rec["replicas"], replicas_interval=rec["replicas_interval"], gpus=rec["gpus"],
                   usd_per_month=round(rec["usd_per_month"], 2), headroom_pct=rec["headroom_pct"],
                   headroom_interval_pct=rec["headroom_interval_pct"],
                   growth=[g["replicas"] for g in rec.get("growth") or []],
                   ranking=[(c["id"], c["replicas"]) for c in doc["candidates"] if c["status"] == "ok"])
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/plan-example.yaml")
    ap.add_argument("--seeds", default="11,12,13,14,15,16,17,18,19,20")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="bench/results/plan_stability.json")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows = []
    print(f"{'seed':>5}  {'recommended':<36} {'n':>3} {'n 95% CI':>9} {'GPUs':>4} {'$/month':>9} "
          f"{'headroom % [95% CI]':>22} {'points':>6} {'sims':>5} {'wall s':>7}", flush=True)
    for seed in seeds:
        r = one(args.scenario, seed, args.workers)
        rows.append(r)
        if r.get("replicas") is None:
            print(f"{seed:>5}  {str(r['recommended'] or r['error'] or 'none'):<36}", flush=True)
            continue
        lo, hi = r["headroom_interval_pct"]
        ci = f"{r['replicas_interval'][0]}-{r['replicas_interval'][1]}"
        hr = f"{lo:.1f} [{lo:.1f}, {'>' if hi is None else ''}{hi if hi is not None else lo:.1f}]"
        print(f"{seed:>5}  {r['recommended']:<36} {r['replicas']:>3} {ci:>9} {r['gpus']:>4} "
              f"{r['usd_per_month']:>9,.0f} {hr:>22} {r['points']:>6} {r['simulations']:>5} {r['wall_s']:>7.1f}",
              flush=True)
    answers = {(r["recommended"], r.get("replicas")) for r in rows}
    stable = len(answers) == 1
    print(f"{'same' if stable else 'DIFFERENT'} recommendation for all {len(rows)} seeds: "
          f"{sorted(map(str, answers))}")
    doc = {"scenario": args.scenario, "seeds": seeds, "workers": args.workers, "stable": stable,
           "fleetcast_version": __version__, "engine": engine_build(), "python": platform.python_version(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "when": time.strftime("%Y-%m-%d"),
           "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0 if stable else 1


if __name__ == "__main__":
    raise SystemExit(main())
