"""Fit the GPU power curves of ``sim.perf.power`` to ML.ENERGY Benchmark v3 and check them on the
held-back configurations (``calibration/public/ml_energy/configs.csv``, split declared there).

    python -m calibration.power_fit          # prints the fit and the held-back table

Per configuration the features are what the engine's steps did per GPU over the run:

- ``mfu``: decode FLOP rate / the GPU's peak at the weights' dtype,
  ``2 · activated params · output tokens/s / GPUs / peak`` (fp8 and mxfp4 weights use the fp8 peak);
- ``mbu``: weight bytes read per decode step / median ITL / HBM bandwidth, per GPU (a MoE reads
  ``min(total, activated · batch)`` parameters a step; KV-cache bytes are not in the data).

The engine is stepping all the time in these runs (closed loop at ``max_num_seqs``), so the fit is
``W per GPU = active_w + w_per_log2_gpus · log2(GPUs) + w_per_mfu · mfu + w_per_mbu · mbu``, one per
measured GPU, in the form ``FORMS`` names for it:

- B200: ``w_per_log2_gpus`` = 0, non-negative least squares on the watts (the law as first shipped);
- H100 SXM: with the GPU-count term, soft-L1 on the relative residual (scale 5 %), the slopes on MFU
  and MBU non-negative — the form ``calibration.power_cv`` chose for H100 by leave-one-model-out
  cross-validation within the training split (power8, 2026-12-07; README "a fresh look").

Energy per output token is the predicted power × GPUs / the *measured* output tokens/s, so its error
here is the power model's alone.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from sim.catalog import load_catalog

__all__ = [
    "CONFIGS_CSV",
    "FIT_GPUS",
    "FORMS",
    "REL_SCALE",
    "Fit",
    "load_rows",
    "features",
    "robust_relative_fit",
    "fit",
    "predict_w",
    "held_back_table",
    "main",
]

CONFIGS_CSV = Path(__file__).parent / "public" / "ml_energy" / "configs.csv"

#: ML.ENERGY gpu_model -> catalog GPU
FIT_GPUS = {"H100": "h100-sxm", "B200": "b200"}

#: ML.ENERGY gpu_model -> the shipped form: "linear" (nnls on the watts, no GPU-count term) or
#: "linear + log2(GPUs), robust relative" (``robust_relative_fit``); see the module doc
FORMS = {"H100": "linear + log2(GPUs), robust relative", "B200": "linear"}

#: soft-L1 scale of the robust relative criterion: relative residuals beyond ~5 % weigh linearly
REL_SCALE = 0.05

_BYTES_PER_PARAM = {"bfloat16": 2.0, "fp8": 1.0, "mxfp4": 4.25 / 8}  # mxfp4: 4-bit values + one 8-bit scale per 32


@dataclass(frozen=True)
class Fit:
    gpu: str  # catalog name
    active_w: float
    w_per_mfu: float
    w_per_mbu: float
    n_train: int
    w_per_log2_gpus: float = 0.0


def load_rows(path: Path = CONFIGS_CSV) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def features(row: dict) -> tuple[float, float]:
    """(mfu, mbu) per GPU of one configuration (see the module docstring)."""
    gpu = load_catalog().gpu(FIT_GPUS[row["gpu_model"]])
    n = int(row["num_gpus"])
    peak = gpu.peak_flops["bf16"] if row["weight_precision"] == "bfloat16" else gpu.peak_flops["fp8"]
    act, tot = float(row["activated_params_b"]) * 1e9, float(row["total_params_b"]) * 1e9
    mfu = 2.0 * act * float(row["output_tokens_per_s"]) / n / peak
    params = min(tot, act * float(row["avg_batch_size"])) if row["architecture"] == "MoE" else tot
    step_s = float(row["median_itl_ms"]) / 1e3
    mbu = params * _BYTES_PER_PARAM[row["weight_precision"]] / n / step_s / gpu.hbm_bw_bytes_s
    return mfu, mbu


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with the slopes (columns 1..) >= 0: the best of every active set."""
    best, best_err = None, np.inf
    k = x.shape[1]
    for keep in itertools.product((True, False), repeat=k - 1):
        cols = [0] + [i + 1 for i, on in enumerate(keep) if on]
        c, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
        if (c[1:] < 0).any():
            continue
        full = np.zeros(k)
        full[cols] = c
        err = float(((x @ full - y) ** 2).sum())
        if err < best_err:
            best, best_err = full, err
    assert best is not None
    return best


def robust_relative_fit(
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    start: list[float],
    lower: list[float],
    upper: list[float],
) -> np.ndarray:
    """Parameters ``p`` of ``predict(p, x)`` (W per GPU) minimising the soft-L1 loss of the relative
    residual ``predict / y - 1`` at scale ``REL_SCALE``, within the bounds."""
    res = least_squares(
        lambda p: predict(p, x) / y - 1.0,
        start,
        bounds=(lower, upper),
        loss="soft_l1",
        f_scale=REL_SCALE,
        x_scale="jac",
        max_nfev=20000,
    )
    return np.asarray(res.x)


def _linear(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    return p[0] + x @ p[1:]


def _xy(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[1.0, *features(r)] for r in rows])
    y = np.array([float(r["avg_power_w"]) / int(r["num_gpus"]) for r in rows])
    return x, y


def fit(rows: list[dict]) -> dict[str, Fit]:
    """One fit per measured GPU, in its form (``FORMS``), on the rows whose split is ``train``."""
    out = {}
    for ml, name in FIT_GPUS.items():
        train = [r for r in rows if r["gpu_model"] == ml and r["split"] == "train"]
        x, y = _xy(train)
        if FORMS[ml] == "linear":
            c = _nnls(x, y)
            out[name] = Fit(name, float(c[0]), float(c[1]), float(c[2]), len(train))
            continue
        # columns mfu, mbu, log2(GPUs); W per GPU = p0 + p1 mfu + p2 mbu + p3 log2(GPUs)
        xg = np.column_stack([x[:, 1:], [np.log2(int(r["num_gpus"])) for r in train]])
        tdp = load_catalog().gpu(name).power_w
        p = robust_relative_fit(
            _linear, xg, y, [0.6 * tdp, tdp, 0.0, 0.0], [0.0, 0.0, 0.0, -np.inf], [tdp, np.inf, np.inf, np.inf]
        )
        out[name] = Fit(name, float(p[0]), float(p[1]), float(p[2]), len(train), float(p[3]))
    return out


def predict_w(f: Fit, row: dict) -> float:
    """Predicted power of all the configuration's GPUs, W."""
    mfu, mbu = features(row)
    n = int(row["num_gpus"])
    return (f.active_w + f.w_per_log2_gpus * float(np.log2(n)) + f.w_per_mfu * mfu + f.w_per_mbu * mbu) * n


def held_back_table(rows: list[dict], fits: dict[str, Fit], split: str = "held_back") -> list[dict]:
    """Per GPU: configurations, mean/median/max |error| of average power and of energy per
    output token, and the error of the set's mean power (sum predicted / sum measured - 1)."""
    table = []
    for ml, name in FIT_GPUS.items():
        rs = [r for r in rows if r["gpu_model"] == ml and r["split"] == split]
        pred = np.array([predict_w(fits[name], r) for r in rs])
        meas = np.array([float(r["avg_power_w"]) for r in rs])
        tok_s = np.array([float(r["output_tokens_per_s"]) for r in rs])
        e_meas = np.array([float(r["energy_per_output_token_j"]) for r in rs])
        err_w = np.abs(pred / meas - 1)
        err_e = np.abs(pred / tok_s / e_meas - 1)
        table.append(
            {
                "gpu": name,
                "split": split,
                "configs": len(rs),
                "power_mean_abs_err": float(err_w.mean()),
                "power_median_abs_err": float(np.median(err_w)),
                "power_max_abs_err": float(err_w.max()),
                "power_within_5pct": float((err_w <= 0.05).mean()),
                "set_mean_power_err": float(pred.sum() / meas.sum() - 1),
                "energy_mean_abs_err": float(err_e.mean()),
                "energy_within_10pct": float((err_e <= 0.10).mean()),
            }
        )
    return table


def main() -> None:
    rows = load_rows()
    fits = fit(rows)
    for f in fits.values():
        print(
            f"{f.gpu}: W/GPU = {f.active_w:.1f} {f.w_per_log2_gpus:+.1f}·log2(GPUs) + {f.w_per_mfu:.1f}·mfu + "
            f"{f.w_per_mbu:.1f}·mbu  ({f.n_train} train configs)"
        )
    print(
        "| GPU | split | configs | power: mean abs err | median | max | within 5% | mean power of the set |"
        " energy/token: mean abs err | within 10% |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for split in ("train", "held_back"):
        for t in held_back_table(rows, fits, split):
            print(
                f"| {t['gpu']} | {split} | {t['configs']} | {t['power_mean_abs_err']:.1%} | "
                f"{t['power_median_abs_err']:.1%} | {t['power_max_abs_err']:.1%} | {t['power_within_5pct']:.0%} | "
                f"{t['set_mean_power_err']:+.1%} | {t['energy_mean_abs_err']:.1%} | {t['energy_within_10pct']:.0%} |"
            )


if __name__ == "__main__":
    main()
