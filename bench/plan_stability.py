"""Plan stability: does the recommendation move with the seed? And against the code
before sequential replications (``--baseline``): the same answers, at what cost?

Runs ``fleetcast plan`` on one scenario (default scenarios/plan-example.yaml)
once per seed, each in its own process with the same process-pool setting, and
prints one row per seed: the recommended candidate, its replica count with the
count interval, $/month, headroom with its interval, points and simulations
run, wall time and CPU seconds (the process and its workers). With
``--baseline DIR`` (a checkout of the code before, e.g. ``git worktree add DIR
078c0ef``, with its engine built or ``FLEETCAST_PURE_PYTHON=1``) each seed is
also planned by that code, in the same run, and a second line gives its row,
whether recommendation, count, both intervals, growth and ranking agree, and the
ratios of simulations, wall and CPU. With ``--against FILE`` (an earlier JSON of
this script) each seed is compared instead with the rows recorded there (its
``baseline_rows``, the code before, when it has them; else its ``rows``): the
answers are compared the same way, the times were not measured in this run (the
JSON says so). Writes JSON (default
bench/results/plan_stability.json). Never gates on times; the exit status is 0
when every seed recommends the same candidate and count (and, with a baseline,
every answer agrees), 1 otherwise.

    python bench/plan_stability.py [--scenario FILE] [--seeds 11,12,...] [--workers N]
                                   [--baseline DIR | --against FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSWER = ("recommended", "replicas", "replicas_interval", "headroom_interval_pct", "growth", "ranking")
# ranking: compared by same() (a pruned candidate has no count, only a proven least one)


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (the plan's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def one(path: str, seed: int, workers: int) -> dict:
    """Plan ``path`` at ``seed`` with the ``sim`` on sys.path; one row."""
    from sim.analysis.plan import run_plan
    from sim.scenario.spec import load_scenario

    scenario = load_scenario(path, seed=seed)
    started, cpu0 = time.perf_counter(), _cpu_s()
    out = run_plan(scenario, workers=workers)
    wall = time.perf_counter() - started
    doc = out.doc
    rec = next((c for c in doc["candidates"] if c["id"] == doc["recommended"]), None)
    row = {"seed": seed, "recommended": doc["recommended"], "wall_s": round(wall, 2),
           "cpu_s": round(_cpu_s() - cpu0, 2), "points": doc["tried"],
           "simulations": doc.get("simulations"), "error": out.error}
    if doc.get("search"):
        row["saved_by_early_stop"] = doc["search"]["saved_by_early_stop"]
    if rec is not None:
        row.update(replicas=rec["replicas"], replicas_interval=rec["replicas_interval"], gpus=rec["gpus"],
                   usd_per_month=round(rec["usd_per_month"], 2), headroom_pct=rec["headroom_pct"],
                   headroom_interval_pct=rec["headroom_interval_pct"],
                   growth=[g["replicas"] for g in rec.get("growth") or []],
                   ranking=[[c["id"], c["replicas"]] for c in doc["candidates"] if c["status"] == "ok"],
                   pruned=[[c["id"], c["replicas_at_least"]] for c in doc["candidates"] if c["status"] == "pruned"])
    return row


def same(key: str, new: dict, old: dict) -> bool:
    """One answer of ``new`` is ``old``'s. ``ranking``: the candidates ``new`` counted rank in
    ``old``'s order with ``old``'s counts, and every candidate ``new`` pruned needs, in ``old``,
    at least the count ``new`` proved it needs (or none meets the SLO there): the pruning's
    bound was true."""
    if key != "ranking":
        return new.get(key) == old.get(key)
    counted = {i for i, _ in new.get("ranking") or []}
    if new.get("ranking") != [x for x in old.get("ranking") or [] if x[0] in counted]:
        return False
    old_n = dict(old.get("ranking") or [])
    return all(old_n.get(i) is None or old_n[i] >= n for i, n in new.get("pruned") or [])


def in_child(code: Path, path: str, seed: int, workers: int) -> dict:
    """``one`` run by the code in ``code`` (a fresh interpreter with it first on sys.path)."""
    res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(code), "--scenario", path,
                          "--seeds", str(seed), "--workers", str(workers)],
                         capture_output=True, text=True, cwd=str(Path.cwd()))
    if res.returncode != 0:
        raise SystemExit(f"the plan in {code} failed for seed {seed}:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _line(r: dict, tag: str) -> str:
    if r.get("replicas") is None:
        return f"{r['seed']:>5} {tag:<4} {str(r['recommended'] or r['error'] or 'none'):<36}"
    lo, hi = r["headroom_interval_pct"]
    ci = f"{r['replicas_interval'][0]}-{r['replicas_interval'][1]}"
    hr = f"{lo:.1f} [{lo:.1f}, {'>' if hi is None else ''}{hi if hi is not None else lo:.1f}]"
    return (f"{r['seed']:>5} {tag:<4} {r['recommended']:<36} {r['replicas']:>3} {ci:>9} {r['gpus']:>4} "
            f"{r['usd_per_month']:>9,.0f} {hr:>22} {r['points']:>6} {r['simulations']:>5} {r['wall_s']:>7.1f} "
            f"{r['cpu_s'] if r.get('cpu_s') is not None else float('nan'):>7.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/plan-example.yaml")
    ap.add_argument("--seeds", default="11,12,13,14,15,16,17,18,19,20")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--baseline", help="a checkout of the code to compare with (same seeds, same run)")
    ap.add_argument("--against", help="an earlier JSON of this script: compare with its recorded rows (not rerun)")
    ap.add_argument("--out", default="bench/results/plan_stability.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: plan one seed with the code in this folder
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.child:
        sys.path.insert(0, str(Path(args.child).resolve()))
        print(json.dumps(one(args.scenario, seeds[0], args.workers)))
        return 0
    sys.path.insert(0, str(ROOT))
    from sim import __version__, engine_build

    rows, base_rows = [], []
    recorded = {}
    if args.against:
        old = json.loads(Path(args.against).read_text(encoding="utf-8"))
        recorded = {r["seed"]: r for r in old.get("baseline_rows") or old["rows"]}
        recorded_from = old.get("baseline") or f"the rows of {args.against}"
        if set(seeds) - set(recorded):
            raise SystemExit(f"{args.against} has no row for seed(s) {sorted(set(seeds) - set(recorded))}")
    print(f"{'seed':>5} {'code':<4} {'recommended':<36} {'n':>3} {'n 95% CI':>9} {'GPUs':>4} {'$/month':>9} "
          f"{'headroom % [95% CI]':>22} {'points':>6} {'sims':>5} {'wall s':>7} {'CPU s':>7}", flush=True)
    for seed in seeds:
        r = in_child(ROOT, args.scenario, seed, args.workers)
        rows.append(r)
        print(_line(r, "new"), flush=True)
        if args.baseline or seed in recorded:
            b = in_child(Path(args.baseline), args.scenario, seed, args.workers) if args.baseline else recorded[seed]
            base_rows.append(b)
            r["same_as_baseline"] = {k: same(k, r, b) for k in ANSWER}
            ratio = lambda k: f"{b[k] / r[k]:.2f}x" if r.get(k) and b.get(k) else "-"  # noqa: E731
            diff = [k for k, agrees in r["same_as_baseline"].items() if not agrees]
            print(_line(b, "old"), flush=True)
            print(f"{'':>5} {'':<4} {'same answer' if not diff else 'DIFFERENT: ' + ', '.join(diff)}; old/new: "
                  f"simulations {ratio('simulations')}, wall {ratio('wall_s')}, CPU {ratio('cpu_s')}", flush=True)
    answers = {(r["recommended"], r.get("replicas")) for r in rows}
    stable = len(answers) == 1
    print(f"{'same' if stable else 'DIFFERENT'} recommendation for all {len(rows)} seeds: "
          f"{sorted(map(str, answers))}")
    agree = all(all(r["same_as_baseline"].values()) for r in rows) if base_rows else None
    if base_rows:
        both = lambda k: [i for i, b in enumerate(base_rows) if b.get(k) is not None]  # noqa: E731  # seeds timed by both
        tot = lambda rs, k: sum(rs[i][k] for i in both(k))  # noqa: E731
        print(f"against the baseline: {'every answer the same' if agree else 'SOME ANSWERS DIFFER'}; "
              f"simulations {tot(base_rows, 'simulations'):,} -> {tot(rows, 'simulations'):,} "
              f"({tot(base_rows, 'simulations') / tot(rows, 'simulations'):.2f}x fewer), CPU "
              f"{tot(base_rows, 'cpu_s'):,.0f} -> {tot(rows, 'cpu_s'):,.0f} s, wall {tot(base_rows, 'wall_s'):,.0f} -> "
              f"{tot(rows, 'wall_s'):,.0f} s")
    doc = {"scenario": args.scenario, "seeds": seeds, "workers": args.workers, "stable": stable,
           "fleetcast_version": __version__, "engine": engine_build(), "python": platform.python_version(),
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "when": time.strftime("%Y-%m-%d"),
           "rows": rows}
    if base_rows:
        doc.update(baseline=str(args.baseline) if args.baseline else f"recorded in {args.against} "
                   f"({recorded_from}; its times were measured then, not in this run)",
                   baseline_rows=base_rows, same_as_baseline=agree)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0 if stable and agree is not False else 1


if __name__ == "__main__":
    raise SystemExit(main())
