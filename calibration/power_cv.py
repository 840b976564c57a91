"""Issue 27 item 1, a fresh look (power8): where the shipped power law's residual sits on the
*training* split, a few physically motivated forms chosen by leave-one-model-out cross-validation
*within* the training split, the data's noise floor, and only then the held-back score of the chosen
form beside the shipped law.

    python -m calibration.power_cv [--steps-csv power_steps.csv]

1. **Residuals** (training split only): the law shipped before power8 (``BASELINE``: linear in MFU and
   MBU, non-negative least squares on the watts, as ``calibration.power_fit`` fitted it then) against each
   training configuration of ``public/ml_energy/configs.csv``, grouped by GPU count, parallelism,
   architecture, weight precision, task, ``max_num_seqs``, measured batch / cap, activated
   parameters, MFU, MBU, ITL p90 / p50, and (with ``--steps-csv``, ``calibration.power_steps``'
   output) the share of the replayed step in GPU kernels, all-reduces and CPU waits.
2. **Forms** (``FORMS``, declared here before any held-back figure was looked at): per GPU
   architecture, at most four parameters, each fitted on the training split only, with absolute
   least squares (as first shipped) or a robust relative criterion (soft-L1 on the relative residual,
   scale 5 %, ``power_fit.robust_relative_fit``: the target is a relative error and the B200 training set holds the one-GPU gpqa rows whose
   idle floor has no mechanism, README "the B200 one-GPU gpqa floor"). The form of each GPU with
   the lowest leave-one-model-out mean |error| on its training models is *chosen*.
3. **Noise floor**: the repeated configurations (``power_forms.repeat_scatter``) and the roughness of
   each ``max_num_seqs`` sweep (``sweep_roughness``); and how much of a law's training residual is one
   offset per sweep rather than scatter along it (``sweep_offsets``).
4. **Held back, once**: the law shipped before and the chosen form per GPU only. Where the chosen form
   beats it there, ``calibration.power_fit`` fits that GPU in that form (``power_fit.FORMS``).

Nothing here is used by the simulator.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from calibration import power_fit, power_forms
from sim.catalog import load_catalog

__all__ = [
    "Form",
    "FORMS",
    "fit_form",
    "lomo_cv",
    "choose",
    "residual_groups",
    "sweep_roughness",
    "sweep_offsets",
    "held_back",
    "main",
]

Row = dict


def _tdp_w(gpu_model: str) -> float:
    """Board power limit (W) of an ML.ENERGY gpu_model: its catalog GPU's (``power_fit.FIT_GPUS``), as
    ``power_fit.fit`` reads it (H100 SXM 700 W, B200 1000 W)."""
    return load_catalog().gpu(power_fit.FIT_GPUS[gpu_model]).power_w


@dataclass(frozen=True)
class Form:
    """A power law per GPU: ``predict(params, x, tdp_w)`` -> W per GPU from the columns ``x``."""

    name: str
    columns: Callable[[Row], list[float]]
    predict: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    start: Callable[[float], list[float]]
    lower: Callable[[float], list[float]]
    upper: Callable[[float], list[float]]
    robust_relative: bool


def _mfu_mbu(r: Row) -> list[float]:
    return list(power_fit.features(r))


def _mfu_mbu_log_gpus(r: Row) -> list[float]:
    return [*power_fit.features(r), float(np.log2(int(r["num_gpus"])))]


def _linear(p: np.ndarray, x: np.ndarray, tdp_w: float) -> np.ndarray:
    return p[0] + x @ p[1:]


def _saturating(p: np.ndarray, x: np.ndarray, tdp_w: float) -> np.ndarray:
    # a board cannot exceed its limit: from p0 at no work it rises towards the TDP, never past it
    return tdp_w - (tdp_w - p[0]) * np.exp(-(x @ p[1:]))


def _forms() -> dict[str, Form]:
    inf = np.inf
    out = {}
    for robust in (False, True):
        crit = "robust relative" if robust else "absolute"
        out[f"linear (shipped form), {crit}"] = Form(
            f"linear (shipped form), {crit}",
            _mfu_mbu,
            _linear,
            lambda t: [0.6 * t, t, 0.0],
            lambda t: [0.0, 0.0, 0.0],
            lambda t: [t, inf, inf],
            robust,
        )
        out[f"linear + log2(GPUs), {crit}"] = Form(
            f"linear + log2(GPUs), {crit}",
            _mfu_mbu_log_gpus,
            _linear,
            lambda t: [0.6 * t, t, 0.0, 0.0],
            lambda t: [0.0, 0.0, 0.0, -inf],
            lambda t: [t, inf, inf, inf],
            robust,
        )
        out[f"saturating at the TDP, {crit}"] = Form(
            f"saturating at the TDP, {crit}",
            _mfu_mbu,
            _saturating,
            lambda t: [0.5 * t, 5.0, 1.0],
            lambda t: [0.0, 0.0, 0.0],
            lambda t: [t, 500.0, 100.0],
            robust,
        )
    return out


#: the candidate forms, declared before any held-back figure (module doc, item 2)
FORMS: dict[str, Form] = _forms()

#: the law as shipped before power8 (both GPUs): what the residuals are of and what the chosen form must beat
BASELINE = "linear (shipped form), absolute"


def _xy(rows: list[Row], form: Form) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([form.columns(r) for r in rows], dtype=float)
    y = np.array([float(r["avg_power_w"]) / int(r["num_gpus"]) for r in rows])
    return x, y


def fit_form(form: Form, rows: list[Row], tdp_w: float) -> np.ndarray:
    """The form's parameters on ``rows`` (one GPU's): W per GPU, absolute least squares or soft-L1
    on the relative residual; the linear forms' slopes on MFU and MBU are non-negative."""
    x, y = _xy(rows, form)
    if form.robust_relative:
        return power_fit.robust_relative_fit(
            lambda p, xx: form.predict(p, xx, tdp_w), x, y, form.start(tdp_w), form.lower(tdp_w), form.upper(tdp_w)
        )
    res = least_squares(
        lambda p: form.predict(p, x, tdp_w) - y,
        form.start(tdp_w),
        bounds=(form.lower(tdp_w), form.upper(tdp_w)),
        x_scale="jac",
        max_nfev=20000,
    )
    return np.asarray(res.x)


def _predict(form: Form, p: np.ndarray, rows: list[Row], tdp_w: float) -> np.ndarray:
    x, _ = _xy(rows, form)
    return form.predict(p, x, tdp_w)


def _errors(pred: np.ndarray, meas: np.ndarray, gpus: np.ndarray | None = None) -> dict[str, float]:
    """Per-configuration errors of W per GPU; ``set_mean`` of the set's total power (× ``gpus``)."""
    g = np.ones_like(meas) if gpus is None else gpus
    e = pred / meas - 1.0
    return {
        "n": float(len(e)),
        "mean": float(np.abs(e).mean()),
        "median": float(np.median(np.abs(e))),
        "within_5pct": float((np.abs(e) <= 0.05).mean()),
        "within_10pct": float((np.abs(e) <= 0.10).mean()),
        "set_mean": float((pred * g).sum() / (meas * g).sum() - 1.0),
    }


def _train(rows: list[Row], gpu_model: str) -> list[Row]:
    return [r for r in rows if r["gpu_model"] == gpu_model and r["split"] == "train"]


def lomo_cv(form: Form, rows: list[Row], gpu_model: str) -> dict[str, float]:
    """Leave-one-model-out within the GPU's training split: each training model's configurations
    predicted by the form fitted on the other training models; errors over all of them."""
    tr = _train(rows, gpu_model)
    tdp = _tdp_w(gpu_model)
    pred = np.zeros(len(tr))
    for m in sorted({r["model_id"] for r in tr}):
        out = np.array([r["model_id"] == m for r in tr])
        p = fit_form(form, [r for r, o in zip(tr, out, strict=True) if not o], tdp)
        pred[out] = _predict(form, p, [r for r, o in zip(tr, out, strict=True) if o], tdp)
    meas = np.array([float(r["avg_power_w"]) / int(r["num_gpus"]) for r in tr])
    return _errors(pred, meas, np.array([float(r["num_gpus"]) for r in tr]))


def choose(cv: dict[str, dict[str, float]]) -> str:
    """The form with the lowest leave-one-model-out mean |error| (ties: the first declared)."""
    return min(cv, key=lambda k: cv[k]["mean"])


def _bucket(x: float, edges: list[float]) -> str:
    for e in edges:
        if x < e:
            return f"< {e:g}"
    return f">= {edges[-1]:g}"


def _groupings(steps: dict[tuple, dict] | None) -> dict[str, Callable[[Row], str | None]]:
    g: dict[str, Callable[[Row], str | None]] = {
        "GPUs": lambda r: r["num_gpus"],
        "TP / EP / DP": lambda r: f"{r['tensor_parallel']} / {r['expert_parallel']} / {r['data_parallel']}",
        "architecture": lambda r: r["architecture"],
        "weights": lambda r: r["weight_precision"],
        "task": lambda r: r["task"],
        "max_num_seqs": lambda r: _bucket(int(r["max_num_seqs"]), [16, 64, 256, 1024]),
        "measured batch / cap": lambda r: _bucket(float(r["avg_batch_size"]) / int(r["max_num_seqs"]), [0.9, 0.99]),
        "activated params (B)": lambda r: _bucket(float(r["activated_params_b"]), [10, 20, 40, 100]),
        "mfu": lambda r: _bucket(power_fit.features(r)[0], [0.02, 0.05, 0.1]),
        "mbu": lambda r: _bucket(power_fit.features(r)[1], [0.2, 0.4, 0.6]),
        "ITL p90 / p50": lambda r: _bucket(float(r["p90_itl_ms"]) / float(r["median_itl_ms"]), [1.05, 1.2, 1.5]),
        "one GPU x task": lambda r: f"{'one GPU' if r['num_gpus'] == '1' else 'several'}, {r['task']}",
    }
    if steps is not None:

        def part(r: Row, which: str) -> str | None:
            s = steps.get(_key(r))
            if s is None:
                return None
            step = max(float(s["t_step_s"]), float(s["t_kernel_s"]) + float(s["t_comm_s"]))
            f = {"kernel": float(s["t_kernel_s"]) / step, "comm": float(s["t_comm_s"]) / step}[which]
            if which == "kernel":
                return _bucket(f, [0.6, 0.8, 0.95])
            return _bucket(f, [0.001, 0.1, 0.2])

        g["replay: kernel share of the step"] = lambda r: part(r, "kernel")
        g["replay: all-reduce share of the step"] = lambda r: part(r, "comm")
    return g


def _key(r: Row) -> tuple:
    return (r["gpu_model"], int(r["num_gpus"]), int(r["max_num_seqs"]), round(float(r["avg_power_w"]), 2))


def _load_steps(path: Path) -> dict[tuple, dict]:
    ml = {v: k for k, v in power_fit.FIT_GPUS.items()}
    with path.open(newline="") as f:
        return {
            (ml[s["gpu"]], int(s["num_gpus"]), int(s["max_num_seqs"]), round(float(s["measured_power_w"]), 2)): s
            for s in csv.DictReader(f)
        }


def residual_groups(rows: list[Row], steps: dict[tuple, dict] | None = None) -> list[dict]:
    """The relative residual (predicted / measured - 1) of the law shipped before (``BASELINE``) on each GPU's training
    configurations, grouped (module doc, item 1): per group n, mean signed and mean |residual|."""
    out = []
    base = FORMS[BASELINE]
    for ml, name in power_fit.FIT_GPUS.items():
        tr = _train(rows, ml)
        p = fit_form(base, tr, _tdp_w(ml))
        pred = _predict(base, p, tr, _tdp_w(ml))
        res = {id(r): w / (float(r["avg_power_w"]) / int(r["num_gpus"])) - 1.0 for r, w in zip(tr, pred, strict=True)}
        for gname, key in _groupings(steps).items():
            d: dict[str, list[float]] = defaultdict(list)
            for r in tr:
                k = key(r)
                if k is not None:
                    d[k].append(res[id(r)])
            for k in sorted(d, key=lambda s: (len(s), s)):
                v = np.array(d[k])
                out.append(
                    {
                        "gpu": name,
                        "by": gname,
                        "group": k,
                        "n": len(v),
                        "mean": float(v.mean()),
                        "mean_abs": float(np.abs(v).mean()),
                    }
                )
    return out


def sweep_roughness(rows: list[Row], split: str = "train") -> dict[str, float]:
    """An upper bound on the per-measurement scatter from the ``max_num_seqs`` sweeps: within each
    sweep (model, task, GPU, parallelism), ordered by cap, the second difference of log power
    ``d = l[i-1] - 2 l[i] + l[i+1]`` has variance 6 σ² if each point is a smooth curve plus
    independent noise of relative σ; curvature only adds to it, so ``σ <= sqrt(mean(d²) / 6)``.
    Also the median form (robust to a few jumps): ``median(|d|) / (0.6745 · sqrt(6))``."""
    sweeps: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["split"] != split:
            continue
        k = (r["model_id"], r["task"], r["gpu_model"], r["tensor_parallel"], r["expert_parallel"], r["data_parallel"])
        sweeps[k].append((int(r["max_num_seqs"]), float(r["avg_power_w"])))
    d2 = []
    for pts in sweeps.values():
        by_cap: dict[int, list[float]] = defaultdict(list)
        for c, w in pts:
            by_cap[c].append(w)
        lw = [float(np.log(np.mean(by_cap[c]))) for c in sorted(by_cap)]
        d2 += [lw[i - 1] - 2 * lw[i] + lw[i + 1] for i in range(1, len(lw) - 1)]
    d = np.array(d2)
    return {
        "second_differences": float(len(d)),
        "sigma_rms": float(np.sqrt((d**2).mean() / 6.0)),
        "sigma_median": float(np.median(np.abs(d)) / (0.6745 * np.sqrt(6.0))),
    }


def sweep_offsets(rows: list[Row], gpu_model: str, form: Form) -> dict[str, float]:
    """Where ``form``'s residual (fitted on the GPU's training split, scored there) sits: the log
    residual's rms over all training configurations, that of each sweep's mean (model, task and
    parallelism: one offset per server set-up) and that within the sweeps around their mean."""
    tr, tdp = _train(rows, gpu_model), _tdp_w(gpu_model)
    x, y = _xy(tr, form)
    e = np.log(form.predict(fit_form(form, tr, tdp), x, tdp) / y)
    sweeps: dict[tuple, list[int]] = defaultdict(list)
    for i, r in enumerate(tr):
        sweeps[(r["model_id"], r["task"], r["tensor_parallel"], r["expert_parallel"], r["data_parallel"])].append(i)
    off = np.zeros_like(e)
    for idx in sweeps.values():
        off[idx] = e[idx].mean()
    return {
        "sweeps": float(len(sweeps)),
        "rms": float(np.sqrt((e**2).mean())),
        "between_sweeps_rms": float(np.sqrt((off**2).mean())),
        "within_sweeps_rms": float(np.sqrt(((e - off) ** 2).mean())),
    }


def held_back(rows: list[Row], gpu_model: str, form: Form) -> dict[str, dict[str, float]]:
    """The law shipped before (``BASELINE``) and ``form``, each fitted on the GPU's whole training split, on its held-back
    configurations; energy per output token at the measured throughput has the same relative
    error as power, so ``within_10pct`` is the energy target."""
    hb = [r for r in rows if r["gpu_model"] == gpu_model and r["split"] == "held_back"]
    meas = np.array([float(r["avg_power_w"]) / int(r["num_gpus"]) for r in hb])
    tr, tdp = _train(rows, gpu_model), _tdp_w(gpu_model)
    base = FORMS[BASELINE]
    ps = _predict(base, fit_form(base, tr, tdp), hb, tdp)
    g = np.array([float(r["num_gpus"]) for r in hb])
    return {
        "shipped": _errors(ps, meas, g),
        "chosen": _errors(_predict(form, fit_form(form, tr, tdp), hb, tdp), meas, g),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Residuals, cross-validated forms and noise floor (module doc).")
    ap.add_argument("--steps-csv", type=Path, default=None, help="calibration.power_steps output, for item 1")
    a = ap.parse_args(argv)
    if a.steps_csv is not None and not a.steps_csv.is_file():
        ap.error(f"--steps-csv {a.steps_csv}: no such file (write one with python -m calibration.power_steps --out)")
    rows = power_fit.load_rows()
    steps = _load_steps(a.steps_csv) if a.steps_csv is not None else None

    print("## 1. The residual of the law shipped before power8 on the training split (predicted / measured - 1)")
    print("| GPU | by | group | configs | mean | mean abs |")
    print("|---|---|---|---|---|---|")
    for g in residual_groups(rows, steps):
        print(f"| {g['gpu']} | {g['by']} | {g['group']} | {g['n']} | {g['mean']:+.1%} | {g['mean_abs']:.1%} |")

    print("\n## 2. Forms: leave-one-model-out within the training split (W per GPU)")
    print("| GPU | form | LOMO mean abs err | median | within 5% | fitted on all training configs |")
    print("|---|---|---|---|---|---|")
    chosen = {}
    for ml, name in power_fit.FIT_GPUS.items():
        cv = {k: lomo_cv(f, rows, ml) for k, f in FORMS.items()}
        chosen[ml] = choose(cv)
        for k, e in cv.items():
            p = fit_form(FORMS[k], _train(rows, ml), _tdp_w(ml))
            mark = " **(chosen)**" if k == chosen[ml] else ""
            print(
                f"| {name} | {k}{mark} | {e['mean']:.1%} | {e['median']:.1%} | {e['within_5pct']:.0%} | "
                f"{', '.join(f'{v:.4g}' for v in p)} |"
            )

    print("\n## 3. Noise floor")
    rep = power_forms.repeat_scatter(rows)
    print(
        f"repeated configurations: spreads {', '.join(f'{s:.1%}' for s in rep['spreads'])}; sigma {rep['sigma']:.1%}; "
        f"a perfect model's mean |error| {rep['noise_mean_abs_err']:.1%}"
    )
    for split in ("train", "held_back"):
        s = sweep_roughness(rows, split)
        print(
            f"sweep roughness ({split}, {s['second_differences']:.0f} second differences): sigma <= "
            f"{s['sigma_rms']:.1%} (rms), {s['sigma_median']:.1%} (median form)"
        )

    for ml, name in power_fit.FIT_GPUS.items():
        for k in (BASELINE, chosen[ml]):
            o = sweep_offsets(rows, ml, FORMS[k])
            print(
                f"{name}, {k}, training split ({o['sweeps']:.0f} sweeps): log residual rms {o['rms']:.1%}; "
                f"between sweeps {o['between_sweeps_rms']:.1%}, within sweeps {o['within_sweeps_rms']:.1%}"
            )

    print("\n## 4. Held back, once: the law shipped before power8 and the chosen form")
    print("| GPU | law | configs | mean abs err | median | within 5% | energy/token within 10% | set mean |")
    print("|---|---|---|---|---|---|---|---|")
    for ml, name in power_fit.FIT_GPUS.items():
        hb = held_back(rows, ml, FORMS[chosen[ml]])
        for label, e in (("law shipped before: " + BASELINE, hb["shipped"]), (chosen[ml], hb["chosen"])):
            print(
                f"| {name} | {label} | {e['n']:.0f} | {e['mean']:.1%} | {e['median']:.1%} | {e['within_5pct']:.0%} | "
                f"{e['within_10pct']:.0%} | {e['set_mean']:+.1%} |"
            )


if __name__ == "__main__":
    main()
