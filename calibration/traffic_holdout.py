"""The held-out check of ``continue_by_prompt`` and the generated prompts by depth, on a Mooncake
conversation trace (docs/traffic-fit.md, "Continuation by prompt length on the whole Mooncake
trace"; issue 28).

Two parts, both from one trace file:

* ``heldout``: the trace cut at ``--split-s`` (default: half its span, rounded up to a whole
  minute: 1,800 s for the whole trace) into two windows, each read as its own log (its depths
  counted from its own start) and fitted as ``fleetcast traffic fit LOG --ties batch`` does; each
  window's later-turn slope (the fit's note: slope, 95% CI, likelihood ratio, written or not) is
  printed. The second window's fitted section is then round-tripped (``round_trip``, as
  ``--check``) on ``--scenario``'s fleet with ``--seeds`` fitted seeds (scenario seed + 0 ..
  seeds - 1) three ways: ``continue_by_prompt`` removed, set to the first window's slope, and as
  fitted.
* ``prompts``: the whole trace fitted, its section generated (``generate_workload``) for seeds
  0 .. ``--prompt-seeds`` - 1 with its ``continue_by_prompt`` and without it; prompt p50 over all
  requests and by depth (a generated turn's depth from its prefix chain: one prompt and one
  output chunk per turn, a shared prefix chunk first when the class has one), against the log's
  (depth from the fit's own parent detection on the hash ids).
* ``noise`` (not in ``all``): docs/traffic-fit.md's "The round trip's noise" table for any bundled
  trace format: the trace fitted once (``--format``, ``--ties``), round-tripped with the most of
  ``--noise-seeds`` fitted seeds, each count shown over the first seeds; the replay run again with
  the scenario's seed + 1 to show whether it draws anything.

The whole trace (12,031 requests, 1 h) is not bundled: it is ``conversation_trace.jsonl`` of the
Mooncake traces (github.com/kvcache-ai/Mooncake, ``FAST25-release/traces/``; here
``/work/shared/data/traces/mooncake/conversation_trace.jsonl``). ``--quick`` is a smoke test (2
fitted seeds, 1 prompt seed), e.g. on the bundled ``scenarios/data/mooncake-conversation-sample.jsonl``.

    python -m calibration.traffic_holdout TRACE.jsonl [--part heldout|prompts|all]
        [--seeds 20] [--prompt-seeds 3] [--scenario scenarios/mooncake-prefix.yaml] [--quick]
    python -m calibration.traffic_holdout TRACE --part noise [--noise-seeds 10,30]
        [--format mooncake|azure-2023] [--ties batch|spread] [--drop-continue-by-prompt]

The full run (20 seeds) simulates 63 half-hour runs: about an hour on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from sim.analysis.replications import t_interval
from sim.analysis.traffic_roundtrip import RoundTripRow, resolved_traffic, round_trip
from sim.errors import FleetcastError
from sim.scenario.yamlio import load_yaml_with_lines
from sim.workload.fit.fit import TrafficFit, fit_traffic
from sim.workload.fit.log import MIN_REQUESTS
from sim.workload.fit.readers import read_trace
from sim.workload.fit.sessions import continuations
from sim.workload.fit.write import render, traffic_dict
from sim.workload.generate import generate_workload
from sim.workload.spec import TrafficSpec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = ROOT / "scenarios" / "mooncake-prefix.yaml"
#: Depths shown in the prompts table (1 = a session's first turn).
DEPTHS = (1, 2, 3, 4)
#: The fit's note on the later turns' slope (sim.workload.fit.sessions._continue_by_prompt).
_SLOPE_NOTE = re.compile(
    r"later turns' log-odds of a next turn ([+-][0-9.]+) per ln\(prompt tokens\) \(95% CI "
    r"([+-][0-9.]+)\.\.([+-][0-9.]+); likelihood ratio against 0 ([0-9.]+); ([0-9,]+) turns, "
    r"([0-9,]+) seen continued\), (over|under)"
)


@dataclass
class Slope:
    value: float
    ci: tuple[float, float]
    lr: float
    turns: int
    continued: int
    written: bool


def _progress(msg: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:7.1f} s] {msg}", file=sys.stderr, flush=True)


def split_trace(path: Path, split_s: Optional[float], folder: Path) -> tuple[Path, Path, float]:
    """The trace's lines cut at ``split_s`` (default: half the span rounded up to a whole minute)
    into two JSONL files; each window starts its own clock when read."""
    lines = path.read_text(encoding="utf-8").splitlines()
    stamps = []
    for k, line in enumerate(lines, 1):
        try:
            stamps.append(float(json.loads(line)["timestamp"]) / 1000.0)
        except (ValueError, KeyError, TypeError):
            raise FleetcastError(f"{path}:{k}: not a Mooncake JSON row with a timestamp (ms)") from None
    t0 = min(stamps)
    if split_s is None:
        split_s = math.ceil((max(stamps) - t0) / 2 / 60) * 60
    inside = sum(t - t0 < split_s for t in stamps)
    for name, n in (("first", inside), ("second", len(stamps) - inside)):
        if n < MIN_REQUESTS:
            raise FleetcastError(
                f"{path}: the {name} window (cut at {split_s:g} s) holds {n} request(s); each window's fit needs "
                f"at least {MIN_REQUESTS}: give --split-s inside the trace's span ({max(stamps) - t0:g} s)"
            )
    first, second = folder / "first-window.jsonl", folder / "second-window.jsonl"
    with open(first, "w", encoding="utf-8") as a, open(second, "w", encoding="utf-8") as b:
        for line, t in zip(lines, stamps):
            (a if t - t0 < split_s else b).write(line + "\n")
    return first, second, float(split_s)


def fit_log(path: Path) -> TrafficFit:
    log = read_trace(path, "mooncake").clean(str(path), min_requests=MIN_REQUESTS)
    return fit_traffic(log, ties="batch", seed=0)


def later_slope(fit: TrafficFit) -> Optional[Slope]:
    """The later turns' continuation slope from the fit's session note (written or not); None when
    the fit had too few turns to estimate one."""
    for cf in fit.classes:
        if cf.session is None:
            continue
        for note in cf.session.notes:
            m = _SLOPE_NOTE.search(note)
            if m:
                v, lo, hi, lr, turns, cont, side = m.groups()
                return Slope(
                    float(v),
                    (float(lo), float(hi)),
                    float(lr),
                    int(turns.replace(",", "")),
                    int(cont.replace(",", "")),
                    side == "over",
                )
    return None


def section(fit: TrafficFit, folder: Path) -> dict:
    """The fit's traffic section as a dict, its tables written into ``folder``."""
    text, tables = render(fit, "traffic.lengths.csv")
    for name, body in tables.items():
        (folder / name).write_text(body, encoding="utf-8")
    return traffic_dict(text)


def with_slope(traffic: dict, slope: Optional[float]) -> dict:
    """``traffic`` with every session class's ``continue_by_prompt`` removed (None) or set."""
    out = dict(traffic)
    out["classes"] = []
    for c in traffic["classes"]:
        c = dict(c)
        if isinstance(c.get("session"), dict):
            s = dict(c["session"])
            s.pop("continue_by_prompt", None)
            if slope is not None:
                s["continue_by_prompt"] = {"log_odds_per_ln_tok": round(slope, 4), "from_turn": 2}
            c["session"] = s
        out["classes"].append(c)
    return out


def slope_text(s: Optional[Slope]) -> str:
    if s is None:
        return "none (too few later turns seen continued or ending)"
    said = "written" if s.written else "not written"
    return (
        f"{s.value:+.4f} (95% CI {s.ci[0]:+.4f}..{s.ci[1]:+.4f}), likelihood ratio {s.lr:.1f} on "
        f"{s.turns:,} later turns ({s.continued:,} seen continued): {said}"
    )


def print_round_trip(title: str, rows: list[RoundTripRow]) -> None:
    print(f"\n{title}")
    print("| metric | replayed | fitted mean | diff | 95% interval | rank | verdict |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.label} | {r.replay:.4g} | {r.fitted:.4g} | {r.rel_diff:+.1%} | {r.interval_text} | "
            f"{r.replay_rank:.0%} | {r.verdict} |"
        )


def heldout(trace: Path, scenario: Path, seeds: int, split_s: Optional[float], started: float) -> None:
    with tempfile.TemporaryDirectory(prefix="fleetcast-holdout-") as tmp:
        folder = Path(tmp)
        read_trace(trace, "mooncake")  # a bad row is located in the trace itself, not in a window's copy
        first, second, split = split_trace(trace, split_s, folder)
        _progress(f"fitting the first window (0 to {split:g} s)", started)
        fit1 = fit_log(first)
        _progress(f"fitting the second window ({split:g} s on)", started)
        fit2 = fit_log(second)
        s1, s2 = later_slope(fit1), later_slope(fit2)
        print(f"held-out check of continue_by_prompt: {trace.name} cut at {split:g} s")
        print(f"  first window:  {fit1.n:,} requests; later turns' slope {slope_text(s1)}")
        print(f"  second window: {fit2.n:,} requests; later turns' slope {slope_text(s2)}")
        traffic = section(fit2, folder)
        variants: list[tuple[str, Optional[float]]] = [("removed", None)]
        if s1 is not None:
            variants.append((f"set to the first window's slope ({s1.value:+.4f})", s1.value))
        if s2 is not None and s2.written:
            variants.append(("as fitted on the second window", None))
        else:
            print("  (the second window's fit wrote no continue_by_prompt: its 'as fitted' round trip is 'removed')")
        for k, (name, value) in enumerate(variants):
            sec = traffic if name.startswith("as fitted") else with_slope(traffic, value)
            _progress(f"round trip {k + 1}/{len(variants)}: field {name}; the replay and {seeds} fitted seeds", started)
            rows = round_trip(scenario, fit2, sec, folder, seeds=seeds)
            print_round_trip(
                f"second window round-tripped on {scenario.name}'s fleet, continue_by_prompt {name} "
                f"({seeds} fitted seeds: scenario seed + 0..{seeds - 1})",
                rows,
            )


def noise_rows(rows: list[RoundTripRow], shown: list[int]) -> list[str]:
    """The noise table's rows: each metric over the first ``n`` fitted seeds for each ``n`` in
    ``shown``: point difference, one run's sd over the fitted mean, the replay's rank, the fitted
    mean's own interval (t * s / sqrt(n), for comparison) and ``--check``'s interval and verdict."""
    out = []
    for n in shown:
        for r in rows:
            part = RoundTripRow(r.label, r.replay, float(np.mean(r.fitted_runs[:n])), r.fitted_runs[:n])
            runs = np.asarray(part.fitted_runs, dtype=float)
            iv = t_interval(runs)
            assert iv is not None
            own = f"{(iv[1] - r.replay) / r.replay:+.1%} .. {(iv[2] - r.replay) / r.replay:+.1%}"
            sd = float(runs.std(ddof=1)) / part.fitted if n > 1 and part.fitted else math.nan
            out.append(
                f"| {r.label} | {n} | {part.rel_diff:+.1%} | {sd:.1%} | {part.replay_rank:.0%} | {own} | "
                f"{part.interval_text} | {part.verdict} |"
            )
    return out


def noise(
    trace: Path, fmt: str, ties: str, scenario: Path, shown: list[int], started: float, drop_slope: bool = False
) -> None:
    """The round trip's noise (docs/traffic-fit.md): ``trace`` fitted once, round-tripped with
    ``max(shown)`` fitted seeds; the replay run again with the scenario's seed + 1 (one fitted seed)
    to show whether it draws anything. ``drop_slope``: the section's ``continue_by_prompt`` removed
    (the fit as it was before stop 36 wrote it)."""
    with tempfile.TemporaryDirectory(prefix="fleetcast-holdout-") as tmp:
        folder = Path(tmp)
        _progress(f"fitting {trace.name} ({fmt}, --ties {ties})", started)
        log = read_trace(trace, fmt).clean(str(trace), min_requests=MIN_REQUESTS)
        fit = fit_traffic(log, ties=ties, seed=0)
        traffic = section(fit, folder)
        if drop_slope:
            traffic = with_slope(traffic, None)
        seeds = max(shown)
        _progress(f"round trip: the replay and {seeds} fitted seeds on {scenario.name}'s fleet", started)
        rows = round_trip(scenario, fit, traffic, folder, seeds=seeds)
        base, _ = load_yaml_with_lines(scenario)
        other = folder / "other-seed.yaml"  # the scenario's only relative path is its traffic's, replaced
        other.write_text(yaml.safe_dump({**base, "seed": int(base.get("seed", 0)) + 1}), encoding="utf-8")
        _progress("the replay again with the scenario's seed + 1", started)
        again = round_trip(other, fit, traffic, folder, seeds=1)
        same = all(a.replay == b.replay for a, b in zip(rows, again))
        print(
            f"\nthe round trip's noise: {trace.name} ({fit.n:,} requests; {fmt}, --ties {ties}) on {scenario.name}'s fleet"
        )
        if drop_slope:
            print("  continue_by_prompt removed from the fitted section (--drop-continue-by-prompt)")
        print(f"  the replay with the scenario's seed + 1: {'the same six figures' if same else 'different figures'}")
        print("| metric | seeds | diff | sd / mean | replay's rank | fitted mean only | `--check` interval | verdict |")
        print("|---|---|---|---|---|---|---|---|")
        for line in noise_rows(rows, shown):
            print(line)


def depths_from_chains(offsets: np.ndarray) -> np.ndarray:
    """A generated session turn's depth: its chain holds one prompt and one output chunk per turn
    so far, after one shared-prefix chunk when the class has one (``sim.workload.sessions.
    session_chains``), so ``len // 2``."""
    return np.maximum(np.diff(offsets) // 2, 1)


def log_depths(fit: TrafficFit) -> np.ndarray:
    """Each logged request's depth from the fit's parent detection on its hash ids."""
    log = fit.log
    assert log is not None and log.hash_offsets is not None and log.hash_ids is not None
    parent = continuations(log.hash_offsets, log.hash_ids, log.prompt_tokens, log.hash_block_tokens)
    depth = np.ones(parent.size, dtype=np.int64)
    for i in np.flatnonzero(parent >= 0).tolist():  # a parent comes before its child
        depth[i] = depth[parent[i]] + 1
    return depth


def p50_row(name: str, prompt: np.ndarray, depth: np.ndarray) -> str:
    cells = [f"{np.median(prompt):,.0f}" if prompt.size else "-"]
    for d in DEPTHS:
        sel = prompt[depth == d]
        cells.append(f"{np.median(sel):,.0f} ({sel.size:,})" if sel.size else "- (0)")
    later = prompt[depth >= 2]
    cells.append(f"{np.median(later):,.0f}" if later.size else "-")
    first = (depth == 1).mean() if depth.size else math.nan
    deep = (depth >= 4).mean() if depth.size else math.nan
    cells.append(f"{first:.1%} / {deep:.1%}")
    return f"| {name} | " + " | ".join(cells) + " |"


def prompts(trace: Path, seeds: int, started: float) -> None:
    with tempfile.TemporaryDirectory(prefix="fleetcast-holdout-") as tmp:
        folder = Path(tmp)
        _progress(f"fitting the whole trace {trace.name}", started)
        fit = fit_log(trace)
        s = later_slope(fit)
        traffic = section(fit, folder)
        print(f"\ngenerated prompts by depth: {trace.name}, {fit.n:,} requests; later turns' slope {slope_text(s)}")
        print(
            "prompt p50 (requests); depth 1 = a session's first turn; last column: share of first turns / of depth 4 on"
        )
        head = " | ".join(f"depth {d}" for d in DEPTHS)
        print(f"| prompts of | all | {head} | depth 2 on | first / 4+ |")
        print("|---" * (len(DEPTHS) + 4) + "|")
        assert fit.log is not None
        print(p50_row("the log", np.asarray(fit.log.prompt_tokens), log_depths(fit)))
        written = s is not None and s.written
        cases = [("with continue_by_prompt", traffic)] if written else []
        cases.append(("without it", with_slope(traffic, None)))
        for name, sec in cases:
            spec = TrafficSpec.model_validate(resolved_traffic(sec, folder))
            for seed in range(seeds):
                _progress(f"generating {name}, seed {seed}", started)
                w = generate_workload(spec, seed, folder)
                depth = depths_from_chains(np.asarray(w.prefix_offsets))
                print(p50_row(f"{name}, seed {seed}", np.asarray(w.prompt_tokens), depth))
        if not written:
            print("(the fit wrote no continue_by_prompt for this trace: only the section without it)")


def main(argv: Optional[list[str]] = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        prog="python -m calibration.traffic_holdout",
        description=doc.split("\n\n")[0],
        epilog="The whole trace is conversation_trace.jsonl of github.com/kvcache-ai/Mooncake "
        "(FAST25-release/traces/); it is not bundled.",
    )
    ap.add_argument("trace", type=Path, help="Mooncake conversation trace (JSONL: timestamp ms, input_length, ...)")
    ap.add_argument(
        "--part",
        choices=("heldout", "prompts", "all", "noise"),
        default="all",
        help="all: heldout and prompts; noise: the round trip's noise table (--noise-seeds, --format, --ties)",
    )
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO, help="the fleet of the round trips")
    ap.add_argument("--seeds", type=int, default=20, help="fitted seeds per round trip (default 20)")
    ap.add_argument("--prompt-seeds", type=int, default=3, help="generated seeds in the prompts table (default 3)")
    ap.add_argument("--split-s", type=float, help="where the two windows meet, s from the first request")
    ap.add_argument(
        "--noise-seeds", default="10,30", help="noise: the fitted seeds shown, e.g. 10,30 (one run of the most)"
    )
    ap.add_argument(
        "--format", choices=("mooncake", "azure-2023"), default="mooncake", help="noise: the trace's format"
    )
    ap.add_argument(
        "--drop-continue-by-prompt",
        action="store_true",
        help="noise: remove the fitted section's continue_by_prompt (the fit before stop 36)",
    )
    ap.add_argument("--ties", choices=("batch", "spread"), default="batch", help="noise: the fit's --ties")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 fitted seeds, 1 prompt seed (noise: 2,3)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.prompt_seeds, args.noise_seeds = 2, 1, "2,3"
    try:
        shown = sorted({int(n) for n in args.noise_seeds.split(",")})
    except ValueError:
        shown = []
    if not shown or shown[0] < 2 or shown[-1] > 100:
        print(f"error: --noise-seeds {args.noise_seeds}: give seed counts from 2 to 100, e.g. 10,30", file=sys.stderr)
        return 2
    if args.seeds < 2 or args.prompt_seeds < 1:
        print("error: --seeds takes 2 or more (an interval needs two runs), --prompt-seeds 1 or more", file=sys.stderr)
        return 2
    for p in (args.trace, args.scenario):
        if not p.is_file():
            print(f"error: {p}: no such file", file=sys.stderr)
            return 2
    started = time.perf_counter()
    try:
        if args.part == "noise":
            noise(args.trace, args.format, args.ties, args.scenario, shown, started, args.drop_continue_by_prompt)
        if args.part in ("heldout", "all"):
            heldout(args.trace, args.scenario, args.seeds, args.split_s, started)
        if args.part in ("prompts", "all"):
            prompts(args.trace, args.prompt_seeds, started)
    except FleetcastError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _progress("done", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
