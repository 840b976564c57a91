"""How the ML.ENERGY runs' step grows with the batch, measured against the replay without the
penalties' per-row constant: the evidence for the form of ``sim.perf.sampler.T_ROW_PENALTIES_S``
(calibration/README.md, "ML.ENERGY v3: the sampler on the critical path").

For every ML.ENERGY set, the time per output token of one sequence (``mean batch / output tok/s``)
against the mean batch, by least squares over the set's caps whose measured mean batch is 200 or
more (sets with fewer than two such caps are left out), measured and replayed with
``T_ROW_PENALTIES_S`` = 0; the difference of the two slopes is the per-sequence growth the replay
lacks. Nothing is fitted here.

    python -m calibration.penalties_slopes [--min-batch 200]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

import numpy as np

import sim.perf.sampler as sampler
from calibration.penalties_seq_fit import SOURCE, model_split
from calibration.public_corpus import discover, overriding, replay_entry

__all__ = ["growth_us", "slopes", "main"]


def slopes(min_batch: float = 200.0) -> list[tuple[str, int, str, float, float]]:
    """``(set, tensor parallel, split, measured µs, replayed µs)`` per set (module doc)."""
    split = model_split()
    points: dict[tuple[str, int], list[tuple[float, float, float]]] = defaultdict(list)
    with overriding(sampler, T_ROW_PENALTIES_S=0.0):
        for e in discover():
            if e.source != SOURCE:
                continue
            r = replay_entry(e)
            m, f = r["measured"], r["forecast"]
            if m["avg_batch_size"] >= min_batch:
                points[(r["set"], r["tensor_parallel"])].append(
                    (
                        m["avg_batch_size"],
                        m["avg_batch_size"] / m["output_tok_s"],
                        f["avg_batch_size"] / f["output_tok_s"],
                    )
                )
    out = []
    for (name, tp), pts in sorted(points.items()):
        if len(pts) >= 2:
            out.append((name, tp, split.get(name, "?"), *growth_us(pts)))
    return out


def growth_us(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """(measured, replayed) µs per running sequence: the least-squares slopes of the time per output
    token of one sequence against the mean batch, from ``(batch, measured s, replayed s)`` points."""
    b = np.array([p[0] for p in points])
    meas = np.polyfit(b, np.array([p[1] for p in points]), 1)[0]
    rep = np.polyfit(b, np.array([p[2] for p in points]), 1)[0]
    return float(meas) * 1e6, float(rep) * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--min-batch", type=float, default=200.0, help="the least measured mean batch of a cap used")
    args = ap.parse_args(argv)
    rows = slopes(args.min_batch)
    print("| set | TP | split | measured µs/seq | replayed µs/seq | missing |")
    print("|---|---|---|---|---|---|")
    for name, tp, split, meas, rep in rows:
        print(f"| {name} | {tp} | {split} | {meas:.1f} | {rep:.1f} | {meas - rep:.1f} |")
    if rows:
        print(
            f"median missing over {len(rows)} sets: {statistics.median(m - r for *_, m, r in rows):.1f} µs per sequence"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
