"""Seeded mutation fuzzing of the bundled scenarios through ``fleetcast run``.

Each case takes a bundled scenario, applies one to three random mutations
(deleted keys, swapped types, extreme numbers, NaN/inf, wrapped values, alias
bombs, deep nesting, huge strings; for a trace scenario, a defective copy of its
trace: bad cells, cut rows, no header, truncated or empty) and runs ``fleetcast run`` on it in this
process. Outcomes: ``ok`` (exit 0 or 1), ``clean`` (exit 2: a FleetcastError),
``traceback`` (any other exception), ``oom`` (MemoryError), ``hang`` (past the
per-case limit). Meant to run in a child process with a memory cap
(tests/test_fuzz.py sets RLIMIT_AS); prints one JSON line of counts and the
failing cases.

    python -m tests.fuzz_scenarios --seed 0 --cases 100 [--limit-s 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import random
import re
import signal
import sys
import tempfile
import traceback
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

WEIRD = [None, True, False, "x", "", -1, 0, 1, 1e-9, 1e9, 1e18, 10**30, -(10**30), math.nan, math.inf, -math.inf,
         [], {}, [1, 2], {"a": 1}, "9" * 300, 2**63, -0.0]


class Hang(Exception):
    pass


def _paths(node, path=()):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, path + (i,))


def _set(doc, path, value):
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


def mutate(doc, rng: random.Random) -> tuple[object, list[str]]:
    """One to three structural mutations of the parsed document."""
    ops = []
    for _ in range(rng.randint(1, 3)):
        paths = [p for p, _ in _paths(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        op = rng.choice(["delete", "swap", "extreme", "wrap"])
        if op == "delete":
            parent = _get(doc, path[:-1])
            if isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, list) and parent:
                parent.pop(path[-1])
        elif op == "swap":
            _set(doc, path, rng.choice(WEIRD))
        elif op == "extreme":
            numeric = [p for p, v in _paths(doc) if p and isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numeric:
                path = rng.choice(numeric)
                v = _get(doc, path)
                _set(doc, path, rng.choice([0, -v, v * 1000, v * 1e6, v / 1e6, math.nan, math.inf, 10**12]))
        else:
            v = _get(doc, path)
            _set(doc, path, rng.choice([[v], {"x": v}, [v, v]]))
        ops.append(f"{op} {'.'.join(map(str, path))}")
    return doc, ops


def text_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["bomb", "deep", "huge"])
    if kind == "bomb":
        rows = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        rows += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
        return text + "bomb:\n" + "".join(f"  {r}\n" for r in rows), "alias bomb"
    if kind == "deep":
        n = rng.choice([100, 5_000, 50_000])
        return text + "deep: " + "[" * n + "]" * n + "\n", f"nesting {n}"
    return text + "description: " + "y" * rng.choice([10_000, 2_000_000]) + "\n", "huge string"


def mutate_trace(text: str, rng: random.Random) -> tuple[str, str]:
    """A trace file with one defect: a cell replaced by a bad token, a row cut, the header
    dropped, or the whole file cut short or emptied."""
    lines = text.splitlines(keepends=True)
    kind = rng.choice(["cell", "cell", "cell", "cut row", "no header", "truncated", "empty"])
    if kind == "empty":
        return "", "trace emptied"
    if kind == "truncated":
        return text[: rng.randrange(1, len(text))], "trace truncated"
    if kind == "no header":
        return "".join(lines[1:]), "trace header dropped"
    i = rng.randrange(len(lines))
    if kind == "cut row":
        lines[i] = lines[i][: len(lines[i]) // 2] + "\n"
        return "".join(lines), f"trace row {i} cut"
    numbers = list(re.finditer(r"-?\d+(\.\d+)?", lines[i]))
    if numbers:
        m = rng.choice(numbers)
        bad = rng.choice(["-10", "abc", "", "1e400", "nan", "-1e9", "99999999999999999999", "0", "1.5"])
        lines[i] = lines[i][: m.start()] + bad + lines[i][m.end():]
    return "".join(lines), f"trace row {i} cell"


def run_case(path: Path, out: Path, limit_s: float) -> str:
    from sim.cli import main

    signal.alarm(int(math.ceil(limit_s)))
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["run", str(path), "--out", str(out)])
        return "clean" if code == 2 else "ok"
    except Hang:
        return "hang"
    except MemoryError:
        return "oom"
    finally:
        signal.alarm(0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--limit-s", type=float, default=20.0)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(Hang()))
    rng = random.Random(args.seed)
    counts = {"ok": 0, "clean": 0, "traceback": 0, "oom": 0, "hang": 0}
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").symlink_to(ROOT / "scenarios" / "data")  # the scenarios' relative data paths
        for i in range(args.cases):
            src = rng.choice(SCENARIOS)
            text = src.read_text()
            ops: list[str] = []
            doc = yaml.safe_load(text)
            trace = ((doc.get("traffic") or {}).get("arrival") or {}).get("path")
            if trace and rng.random() < 0.4:  # a defective copy of the scenario's trace
                bad, op = mutate_trace((src.parent / trace).read_text(), rng)
                name = f"trace-{i}{Path(trace).suffix}"
                (tmp / name).write_text(bad)
                doc["traffic"]["arrival"]["path"] = name
                text = yaml.safe_dump(doc, sort_keys=False)
                ops.append(op)
            if rng.random() < 0.15:
                text, op = text_mutation(text, rng)
                ops.append(op)
            elif not ops or rng.random() < 0.5:
                doc, more = mutate(doc, rng)
                text = yaml.safe_dump(doc, sort_keys=False)
                ops += more
            case = tmp / f"case-{i}.yaml"
            case.write_text(text)
            try:
                outcome = run_case(case, tmp / f"out-{i}", args.limit_s)
            except Exception:  # noqa: BLE001 - a traceback is the finding
                outcome = "traceback"
                failures.append({"case": i, "scenario": src.name, "ops": ops,
                                 "error": traceback.format_exc(limit=-3)[-1500:]})
            counts[outcome] += 1
            if outcome in ("oom", "hang"):
                failures.append({"case": i, "scenario": src.name, "ops": ops, "error": outcome})
    print(json.dumps({"counts": counts, "failures": failures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
