"""Fit the performance model's coefficients (``sim.perf.PerfCoefficients``).

Two kinds of evidence, one least-squares core:

- **step observations** (``StepObs``): one engine step of a known shape and its
  measured duration — Splitwise's prefill/decode timings, or the per-run
  observables of a closed-loop testbed sweep (``calibration.runs``). The model
  is ``PerfModel.step_time_s`` itself, so what is fitted is exactly what the
  simulator uses.
- the residual is ``log(predicted / measured)``: relative error, the same
  weight for a 20 ms decode step and a 10 s prefill, and symmetric in over- and
  under-prediction.

Coefficients are fitted in log space with ``scipy.optimize.least_squares``
inside physical bounds (efficiencies in (0, 1], overheads non-negative and
below a second); a soft-L1 loss keeps one odd measurement from dragging the
rest. Coefficients a data set cannot identify are held at their defaults
(``fixed``) and the profile says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from datetime import date

import numpy as np
from scipy.optimize import least_squares

from sim.perf import PerfCoefficients, PerfModel

__all__ = ["StepObs", "FitResult", "fit_steps", "predict_steps", "BOUNDS", "COEFF_NAMES", "error_stats"]

COEFF_NAMES = tuple(f.name for f in fields(PerfCoefficients) if f.name != "source")
BOUNDS = {  # (low, high) of each coefficient; log-space fit, so low > 0
    "e_compute": (1e-3, 1.0),
    "e_memory": (1e-3, 1.0),
    "e_comm": (1e-3, 1.0),
    "t_step_s": (1e-7, 1.0),
    "t_seq_s": (1e-9, 0.1),
    "t_prefill_tok_s": (1e-12, 1e-2),
    "t_allreduce_s": (1e-9, 1e-3),
}


@dataclass(frozen=True)
class StepObs:
    """One measured engine step (or the mean of identical ones)."""

    key: tuple  # (gpu, model, quant weights, kv_cache, tp): which PerfModel
    prefill_tokens: int  # Σ q_i new prompt tokens in the step
    prefill_attn: float  # Σ q_i·(k_i + q_i/2)
    num_decodes: int  # decoding sequences (one token each)
    decode_ctx_tokens: float  # Σ c_j over the decodes
    num_prefill_seqs: int  # prefill chunks
    measured_s: float  # measured duration of the step
    label: str = ""  # where it came from (row, run), for residual tables
    kind: str = ""  # "prefill" | "decode" | ...


@dataclass
class FitResult:
    """Fitted coefficients and how well they reproduce the observations."""

    coeffs: PerfCoefficients
    fitted: tuple[str, ...]  # coefficients the fit moved
    residuals: np.ndarray  # log(pred/meas) per observation
    cost: float
    nfev: int
    message: str

    def rel_errors(self) -> np.ndarray:
        """(pred - meas)/meas per observation."""
        return np.expm1(self.residuals)


def predict_steps(obs: list[StepObs], coeffs: PerfCoefficients, models: dict) -> np.ndarray:
    """Predicted seconds per observation; ``models[key] = (gpu, model, quant, tp)``."""
    perf = {k: PerfModel(*v[:3], v[3], coeffs) for k, v in models.items()}
    return np.array([perf[o.key].step_time_s(o.prefill_tokens, o.prefill_attn, o.num_decodes,
                                             int(round(o.decode_ctx_tokens)), o.num_prefill_seqs)
                     for o in obs])


def fit_steps(obs: list[StepObs], models: dict, *, free: tuple[str, ...] = COEFF_NAMES,
              start: PerfCoefficients | None = None, source: str = "calibration.fit",
              weights: np.ndarray | None = None) -> FitResult:
    """Least-squares fit of the ``free`` coefficients to step observations."""
    start = start or PerfCoefficients()
    free = tuple(n for n in COEFF_NAMES if n in free)
    meas = np.array([o.measured_s for o in obs])
    w = np.ones(len(obs)) if weights is None else np.asarray(weights, float)
    lo = np.log([BOUNDS[n][0] for n in free])
    hi = np.log([BOUNDS[n][1] for n in free])
    x0 = np.clip(np.log([max(getattr(start, n), BOUNDS[n][0]) for n in free]), lo + 1e-9, hi - 1e-9)

    def coeffs_of(x) -> PerfCoefficients:
        vals = {n: float(min(math.exp(v), BOUNDS[n][1])) for n, v in zip(free, x)}
        return replace(start, **vals, source=source)

    def resid(x):
        return w * np.log(predict_steps(obs, coeffs_of(x), models) / meas)

    # several starts: efficiencies and overheads trade off, the surface has valleys
    best = None
    for shift in (0.0, -1.5, 1.5):
        xs = np.clip(x0 + shift * np.array([1.0 if n.startswith("t_") else 0.0 for n in free]),
                     lo + 1e-9, hi - 1e-9)
        r = least_squares(resid, xs, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, x_scale=1.0,
                          diff_step=1e-4, max_nfev=400)
        if best is None or r.cost < best.cost:
            best = r
    coeffs = coeffs_of(best.x)
    res = np.log(predict_steps(obs, coeffs, models) / meas)
    return FitResult(coeffs, free, res, float(best.cost), int(best.nfev), str(best.message))


def error_stats(rel: np.ndarray) -> dict:
    """Median / p90 / max absolute relative error and bias (mean signed), in %."""
    a = np.abs(np.asarray(rel, float))
    a = a[np.isfinite(a)]
    if not len(a):
        return {"n": 0}
    return {"n": int(len(a)), "median_abs_pct": round(float(np.median(a)) * 100, 2),
            "p90_abs_pct": round(float(np.quantile(a, 0.9)) * 100, 2),
            "max_abs_pct": round(float(a.max()) * 100, 2),
            "mean_signed_pct": round(float(np.mean(rel)) * 100, 2)}


def coeff_dict(c: PerfCoefficients) -> dict:
    """Coefficients as the profile's ``coefficients`` mapping (no source)."""
    return {k: float(f"{v:.6g}") for k, v in asdict(c).items() if k != "source"}


def today() -> str:
    return date.today().isoformat()
