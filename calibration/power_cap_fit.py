"""Fit the clock law of ``sim.perf.power_cap`` to the Zeus power traces and check it on the
held-back GPUs (``calibration/public/zeus/``, split declared in its README).

    python -m calibration.power_cap_fit          # prints the fit and the held-back errors

The law: a board at SM clock ratio ``s`` (clock / its clock at the default limit) draws
``P0 · s^k``, ``P0`` the job's average power at the default limit; a limit ``C < P0`` sets
``s = (C / P0)^(1/k)`` and a clock-bound job's time grows by ``1/s``. One parameter, ``k``
(dynamic power ~ f·V², V rising with f: k between 1 and 3). A job whose power at the default
limit is already under ``C`` is not slowed. Per (GPU, network, batch size, optimizer) the
trace gives the epoch time and average power at each limit; the reference is the row at the
GPU's highest limit (its default). ``k`` minimises the mean |relative error| of the
predicted time ratio over the training rows (a grid of 0.01).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ZEUS_DIR", "TRAIN_GPUS", "HELD_BACK_GPUS", "MIN_LIMIT_FRACTION", "Point", "load_points", "fit_k", "main"]

ZEUS_DIR = Path(__file__).parent / "public" / "zeus"
TRAIN_GPUS = ("v100", "a40")
HELD_BACK_GPUS = ("rtx6000", "p100")
#: limits below this fraction of the default are left out (README: the clock law does not hold there)
MIN_LIMIT_FRACTION = 0.5


@dataclass(frozen=True)
class Point:
    gpu: str
    job: tuple[str, str, str]  # network, batch size, optimizer
    limit_over_p0: float  # power limit / the job's average power at the default limit
    limit_frac: float  # power limit / the default limit
    time_ratio: float  # epoch time at the limit / at the default limit


def load_points(gpu: str, directory: Path = ZEUS_DIR) -> list[Point]:
    """Every (job, limit) of one GPU whose limit is below the job's power at the default limit
    and at least ``MIN_LIMIT_FRACTION`` of the default."""
    jobs: dict[tuple[str, str, str], dict[int, tuple[float, float]]] = defaultdict(dict)
    with (directory / f"summary_power_{gpu}.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            key = (r["network"], r["batch_size"], r["optimizer"])
            jobs[key][int(r["power_limit"])] = (float(r["time_per_epoch"]), float(r["average_power"]))
    default = max(lim for job in jobs.values() for lim in job)
    out = []
    for key, runs in sorted(jobs.items()):
        if default not in runs:
            continue
        t0, p0 = runs[default]
        for lim, (t, _) in sorted(runs.items()):
            if lim < p0 and lim >= MIN_LIMIT_FRACTION * default:
                out.append(Point(gpu, key, lim / p0, lim / default, t / t0))
    return out


def predicted_ratio(limit_over_p0: float, k: float) -> float:
    """Time ratio of a clock-bound job at a limit of ``limit_over_p0`` times its power."""
    return 1.0 if limit_over_p0 >= 1.0 else limit_over_p0 ** (-1.0 / k)


def errors(points: list[Point], k: float) -> list[float]:
    """Relative errors (predicted / measured - 1) of the time ratios."""
    return [predicted_ratio(p.limit_over_p0, k) / p.time_ratio - 1.0 for p in points]


def mean_abs(xs: list[float]) -> float:
    return sum(abs(x) for x in xs) / len(xs) if xs else float("nan")


def median_abs(xs: list[float]) -> float:
    a = sorted(abs(x) for x in xs)
    return (a[(len(a) - 1) // 2] + a[len(a) // 2]) / 2.0 if a else float("nan")


def fit_k(points: list[Point]) -> float:
    """The exponent (0.50 .. 6.00, step 0.01) with the least mean |relative error|."""
    best = min(range(50, 601), key=lambda i: (mean_abs(errors(points, i / 100.0)), i))
    return best / 100.0


def main() -> None:
    train = [p for g in TRAIN_GPUS for p in load_points(g)]
    k = fit_k(train)
    print(f"k = {k:.2f} (training: {', '.join(TRAIN_GPUS)}; {len(train)} points, limits >= {MIN_LIMIT_FRACTION:.0%})")
    print("set                 points   mean |err|   median |err|   max |err|   mean err")
    for name, gpus in [("training", TRAIN_GPUS), ("held back", HELD_BACK_GPUS)] + [
        (g, (g,)) for g in TRAIN_GPUS + HELD_BACK_GPUS
    ]:
        pts = [p for g in gpus for p in load_points(g)]
        e = errors(pts, k)
        print(
            f"{name:<18} {len(pts):>7}   {100 * mean_abs(e):>9.1f}%  {100 * median_abs(e):>11.1f}%  "
            f"{100 * max(abs(x) for x in e):>9.1f}%  "
            f"{100 * sum(e) / len(e):>+8.1f}%"
        )


if __name__ == "__main__":
    main()
