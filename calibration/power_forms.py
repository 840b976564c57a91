"""Other forms of the GPU power law, tried on ML.ENERGY v3's training split and scored on the
held-back configurations (issue 27: the shipped linear law misses the 5% target).

    python -m calibration.power_forms        # one line per (GPU, form, weighting)

Each form is least squares on the training split (``split == train`` of
``public/ml_energy/configs.csv``), weighted by 1 (absolute watts) or by 1 / the measured power
(relative error), and scored on ``held_back``: mean and median |error| of average power per
configuration and the held-back set's mean power. Features as ``calibration.power_fit``
(``mfu``, ``mbu``), plus the configuration's GPU count. Nothing here is used by the simulator:
the shipped law stays ``power_fit``'s (README, "GPU power from ML.ENERGY Benchmark v3").

Step parts (``python -m calibration.power_forms --steps``): the simulator's own decomposition of each
replayed configuration's mean step (``calibration.power_steps``: GPU kernels, all-reduces, and the
rest of the step, where the GPUs wait on the CPU side), as fractions of the step, each with its own
watts, plus the shipped law's utilization terms: ``W per GPU = w_kernel · f_kernel + w_comm · f_comm
+ w_gap · f_gap + w_per_mfu · mfu + w_per_mbu · mbu``. Fitted (absolute least squares) on the
training split's replayed configurations and scored on the held-back ones, beside the shipped law on
the same configurations. One diagnostic form takes the step from the *measured* median ITL instead of
the replay's (not usable in a forecast: it asks whether the mechanism holds when the step is right).
The repeated configurations of ``configs.csv`` give the data's own scatter.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from calibration import power_fit, power_steps

__all__ = ["FORMS", "score", "STEP_FORMS", "step_rows", "step_table", "repeat_scatter", "main"]

Row = dict
Form = Callable[[float, float, int], list[float]]

#: name -> columns of one configuration from (mfu, mbu, GPUs)
FORMS: dict[str, Form] = {
    "linear": lambda u, b, n: [1.0, u, b],
    "sqrt(mfu)": lambda u, b, n: [1.0, float(np.sqrt(u)), b],
    "sqrt(mfu)+sqrt(mbu)": lambda u, b, n: [1.0, float(np.sqrt(u)), float(np.sqrt(b))],
    "log(mfu)": lambda u, b, n: [1.0, float(np.log(u + 1e-3)), b],
    "mfu+mfu^2": lambda u, b, n: [1.0, u, u * u, b],
    "linear+multi-GPU": lambda u, b, n: [1.0, u, b, float(n > 1)],
    "sqrt(mfu)+multi-GPU": lambda u, b, n: [1.0, float(np.sqrt(u)), b, float(n > 1)],
    "sqrt(mfu)+1/GPUs": lambda u, b, n: [1.0, float(np.sqrt(u)), b, 1.0 / n],
}


def _xy(rows: list[Row], form: Form) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([form(*power_fit.features(r), int(r["num_gpus"])) for r in rows], dtype=float)
    y = np.array([float(r["avg_power_w"]) / int(r["num_gpus"]) for r in rows])
    return x, y


def score(rows: list[Row], gpu_model: str, form: Form, relative: bool) -> dict[str, float]:
    """Fit ``form`` on the GPU's training rows; errors on its training and held-back rows."""
    tr = [r for r in rows if r["gpu_model"] == gpu_model and r["split"] == "train"]
    hb = [r for r in rows if r["gpu_model"] == gpu_model and r["split"] == "held_back"]
    x, y = _xy(tr, form)
    w = 1.0 / y if relative else np.ones_like(y)
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    out = {}
    for name, rs in (("train", tr), ("held_back", hb)):
        xh, yh = _xy(rs, form)
        pred = xh @ coef
        err = np.abs(pred / yh - 1.0)
        out[f"{name}_mean"] = float(err.mean())
        out[f"{name}_median"] = float(np.median(err))
        out[f"{name}_set_mean"] = float(pred.sum() / yh.sum() - 1.0)
    return out


def _fractions(r: dict, measured_step: bool) -> list[float]:
    """(f_kernel, f_comm, f_gap) of one replayed configuration's step (``power_steps``)."""
    step = float(r["measured_itl_p50_s"] if measured_step else r["t_step_s"])
    k, c = float(r["t_kernel_s"]), float(r["t_comm_s"])
    tot = max(step, k + c)
    return [k / tot, c / tot, 1.0 - (k + c) / tot]


StepForm = Callable[[dict], list[float]]

#: name -> columns of one replayed configuration (a ``power_steps`` row joined to its configs.csv row)
STEP_FORMS: dict[str, StepForm] = {
    "linear, refitted on the replayed configurations": lambda r: [1.0, *power_fit.features(r["cfg"])],
    "step parts (replay) + mfu + mbu": lambda r: [*_fractions(r, False), *power_fit.features(r["cfg"])],
    "step parts (replay) + the replay's mfu + mbu": lambda r: [
        *_fractions(r, False),
        float(r["sim_mfu"]),
        float(r["sim_mbu"]),
    ],
    "step parts (replay), no utilization terms": lambda r: _fractions(r, False),
    "all-reduce fraction (replay) + mfu + mbu": lambda r: [
        1.0,
        _fractions(r, False)[1],
        *power_fit.features(r["cfg"]),
    ],
    "diagnostic: step parts with the measured ITL as the step + mfu + mbu": lambda r: [
        *_fractions(r, True),
        *power_fit.features(r["cfg"]),
    ],
}


def step_rows(steps_csv: Path | None = None) -> list[dict]:
    """The replayed configurations' step parts (``power_steps``; from ``steps_csv`` when given, else
    replayed now), each joined to its ``configs.csv`` row (``cfg``) by GPU, GPU count, cap and power."""
    if steps_csv is not None:
        with steps_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = power_steps.all_rows()
    cfg = power_fit.load_rows()
    ml = {v: k for k, v in power_fit.FIT_GPUS.items()}
    for r in rows:
        match = [
            c
            for c in cfg
            if c["gpu_model"] == ml[r["gpu"]]
            and int(c["num_gpus"]) == int(r["num_gpus"])
            and int(c["max_num_seqs"]) == int(r["max_num_seqs"])
            and abs(float(c["avg_power_w"]) - float(r["measured_power_w"])) < 0.01
        ]
        if len(match) != 1:
            raise ValueError(f"{r['set']}/{r['row']}: {len(match)} configs.csv rows match")
        r["cfg"] = match[0]
    return rows


def _errors(pred_w: np.ndarray, meas_w: np.ndarray) -> dict[str, float]:
    err = np.abs(pred_w / meas_w - 1.0)
    return {
        "mean": float(err.mean()),
        "median": float(np.median(err)),
        "within_5pct": float((err <= 0.05).mean()),
        "within_10pct": float((err <= 0.10).mean()),  # energy per token at the measured tok/s: same error
        "rms": float(np.sqrt((err**2).mean())),
        "set_mean": float(pred_w.sum() / meas_w.sum() - 1.0),
    }


def step_table(rows: list[dict]) -> list[dict]:
    """Per GPU: the shipped law and each step form, fitted on the replayed training configurations,
    with their errors on the replayed held-back ones (per-GPU watts; see the module doc)."""
    shipped = power_fit.fit(power_fit.load_rows())
    out = []
    for gpu in power_fit.FIT_GPUS.values():
        tr = [r for r in rows if r["gpu"] == gpu and r["split"] == "train"]
        hb = [r for r in rows if r["gpu"] == gpu and r["split"] == "held_back"]
        y_tr = np.array([float(r["measured_power_w"]) / int(r["num_gpus"]) for r in tr])
        y_hb = np.array([float(r["measured_power_w"]) / int(r["num_gpus"]) for r in hb])
        p_hb = np.array([power_fit.predict_w(shipped[gpu], r["cfg"]) / int(r["num_gpus"]) for r in hb])
        p_tr = np.array([power_fit.predict_w(shipped[gpu], r["cfg"]) / int(r["num_gpus"]) for r in tr])
        out.append(
            {
                "gpu": gpu,
                "form": "shipped law (power_fit, every training configuration)",
                "coef": [shipped[gpu].active_w, shipped[gpu].w_per_mfu, shipped[gpu].w_per_mbu]
                + ([shipped[gpu].w_per_log2_gpus] if shipped[gpu].w_per_log2_gpus else []),
                "train": _errors(p_tr, y_tr),
                "held_back": _errors(p_hb, y_hb),
                "configs": (len(tr), len(hb)),
            }
        )
        for name, form in STEP_FORMS.items():
            x = np.array([form(r) for r in tr])
            coef, *_ = np.linalg.lstsq(x, y_tr, rcond=None)
            out.append(
                {
                    "gpu": gpu,
                    "form": name,
                    "coef": [float(c) for c in coef],
                    "train": _errors(x @ coef, y_tr),
                    "held_back": _errors(np.array([form(r) for r in hb]) @ coef, y_hb),
                    "configs": (len(tr), len(hb)),
                }
            )
    return out


def repeat_scatter(rows: list[Row] | None = None) -> dict:
    """The configurations ``configs.csv`` holds more than once: their powers, the relative spread
    of each, and the per-measurement relative standard deviation they imply
    (``sqrt(mean(spread²) / 2)`` over pairs) with the mean |error| that noise alone gives a perfect
    model (``σ · sqrt(2/π)``, normal)."""
    rows = rows if rows is not None else power_fit.load_rows()
    g: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        g[(r["model_id"], r["task"], r["gpu_model"], r["num_gpus"], r["max_num_seqs"])].append(float(r["avg_power_w"]))
    pairs = {k: v for k, v in g.items() if len(v) > 1}
    spreads = [(max(v) - min(v)) / float(np.mean(v)) for v in pairs.values()]
    sigma = float(np.sqrt(np.mean(np.square(spreads)) / 2.0)) if spreads else float("nan")
    return {
        "pairs": pairs,
        "spreads": spreads,
        "sigma": sigma,
        "noise_mean_abs_err": sigma * float(np.sqrt(2.0 / np.pi)),
    }


def _step_main(steps_csv: Path | None) -> None:
    rows = step_rows(steps_csv)
    table = step_table(rows)
    print(
        "| GPU | form | train / held back configs | held back: mean abs err | median | within 5% | "
        "energy/token within 10% | set mean | train mean abs err | coefficients (W) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t in table:
        h = t["held_back"]
        print(
            f"| {t['gpu']} | {t['form']} | {t['configs'][0]} / {t['configs'][1]} | {h['mean']:.1%} | "
            f"{h['median']:.1%} | {h['within_5pct']:.0%} | {h['within_10pct']:.0%} | {h['set_mean']:+.1%} | "
            f"{t['train']['mean']:.1%} | {', '.join(f'{c:.0f}' for c in t['coef'])} |"
        )
    rep = repeat_scatter()
    for k, v in rep["pairs"].items():
        print(f"repeat {k}: {', '.join(f'{w:.0f} W' for w in v)}")
    print(
        f"repeats: spreads {', '.join(f'{s:.1%}' for s in rep['spreads'])}; per-measurement sigma "
        f"{rep['sigma']:.1%}; a perfect model's mean |error| from that noise {rep['noise_mean_abs_err']:.1%}"
    )
    for t in table:
        if t["form"].startswith("shipped"):
            share = rep["sigma"] ** 2 / t["held_back"]["rms"] ** 2
            print(
                f"{t['gpu']}: the shipped law's held-back rms error {t['held_back']['rms']:.1%}; "
                f"repeat noise explains {share:.0%} of its mean square"
            )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Other forms of the GPU power law (module doc).")
    ap.add_argument("--steps", action="store_true", help="the step-part forms on the replayed configurations")
    ap.add_argument("--steps-csv", type=Path, default=None, help="power_steps output to read instead of replaying")
    a = ap.parse_args(argv)
    if a.steps or a.steps_csv is not None:
        _step_main(a.steps_csv)
        return
    rows = power_fit.load_rows()
    print("| GPU | form | weights | train mean abs err | held back mean abs err | median | held-back set mean |")
    print("|---|---|---|---|---|---|---|")
    for ml, name in power_fit.FIT_GPUS.items():
        for fname, form in FORMS.items():
            for relative in (False, True):
                s = score(rows, ml, form, relative)
                print(
                    f"| {name} | {fname} | {'relative' if relative else 'absolute'} | {s['train_mean']:.1%} | "
                    f"{s['held_back_mean']:.1%} | {s['held_back_median']:.1%} | {s['held_back_set_mean']:+.1%} |"
                )


if __name__ == "__main__":
    main()
