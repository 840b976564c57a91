"""Fit the performance model's coefficients (``sim.perf.perf_model.PerfCoefficients``).

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

from sim.perf.perf_model import PerfCoefficients, PerfModel

__all__ = [
    "StepObs",
    "step",
    "FitResult",
    "fit_steps",
    "predict_steps",
    "BOUNDS",
    "COEFF_NAMES",
    "error_stats",
    "run_observations",
    "fit_runs",
    "run_models",
    "coeff_dict",
    "RUN_FREE",
    "fit_runs_by_simulation",
    "SIM_TARGETS",
]

COEFF_NAMES = tuple(f.name for f in fields(PerfCoefficients) if f.name != "source")
BOUNDS = {  # (low, high) of each coefficient; log-space fit, so low > 0
    "e_compute": (1e-3, 1.0),
    "e_memory": (1e-3, 1.0),
    "e_comm": (1e-3, 1.0),
    "t_step_s": (1e-7, 1.0),
    "t_seq_s": (1e-9, 0.1),
    "t_prefill_tok_s": (1e-12, 1e-2),
    "t_allreduce_s": (1e-9, 1e-3),
    "t_request_s": (1e-6, 1.0),
}
STEP_FREE = tuple(n for n in COEFF_NAMES if n not in ("t_request_s", "t_layer_s") and not n.startswith("e_attn_"))
"""What step timings alone identify (``t_request_s`` needs a TTFT observation; attention's own
efficiencies are not fitted: ``e_compute`` / ``e_memory`` take attention in as before; ``t_layer_s``
is a software stack's rule, ``sim.perf.rocm_stack``, and ``t_step_s`` absorbs it in a fit)."""


@dataclass(frozen=True)
class StepObs:
    """A measured duration that the model predicts as a weighted sum of steps.

    ``parts`` holds ``(weight, prefill_tokens, prefill_attn, num_decodes,
    decode_ctx_tokens, num_prefill_seqs)`` tuples (arguments of
    ``PerfModel.step_time_s``): one part of weight 1 is one measured step; a
    mean time per output token over a mix of decode-only and mixed steps is
    several parts whose weights are the fractions of those steps.
    """

    key: tuple  # (gpu, model, quant weights, kv_cache, tp[, catalog files]): which PerfModel
    parts: tuple  # ((weight, prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens, num_prefill_seqs), ...)
    measured_s: float  # measured duration
    label: str = ""  # where it came from (row, run), for residual tables
    kind: str = ""  # "prefill" | "decode" | "ttft" | "tpot" ...
    requests: float = 0.0  # per-request latencies (t_request_s) inside measured_s: 1 for a TTFT


def step(
    key, prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens, num_prefill_seqs, measured_s, label="", kind=""
) -> StepObs:
    """A StepObs of exactly one step."""
    return StepObs(
        key,
        ((1.0, prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens, num_prefill_seqs),),
        measured_s,
        label,
        kind,
    )


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
    perf = {k: PerfModel(v[0], v[1], v[2], v[3], coeffs) for k, v in models.items()}
    # shapes may be means over many steps (fractional): step_time_s is plain arithmetic
    return np.array(
        [
            sum(w * perf[o.key].step_time_s(pt, pa, nd, ctx, nps) for w, pt, pa, nd, ctx, nps in o.parts)
            + o.requests * coeffs.t_request_s
            for o in obs
        ]
    )


def fit_steps(
    obs: list[StepObs],
    models: dict,
    *,
    free: tuple[str, ...] = STEP_FREE,
    start: PerfCoefficients | None = None,
    source: str = "calibration.fit",
    weights: np.ndarray | None = None,
) -> FitResult:
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
        xs = np.clip(x0 + shift * np.array([1.0 if n.startswith("t_") else 0.0 for n in free]), lo + 1e-9, hi - 1e-9)
        r = least_squares(
            resid, xs, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, x_scale=1.0, diff_step=1e-4, max_nfev=400
        )
        if best is None or r.cost < best.cost:
            best = r
    assert best is not None  # one fit per start, and there is at least one start
    coeffs = coeffs_of(best.x)
    res = np.log(predict_steps(obs, coeffs, models) / meas)
    return FitResult(coeffs, free, res, float(best.cost), int(best.nfev), str(best.message))


def error_stats(rel: np.ndarray) -> dict:
    """Median / p90 / max absolute relative error and bias (mean signed), in %."""
    a = np.abs(np.asarray(rel, float))
    a = a[np.isfinite(a)]
    if not len(a):
        return {"n": 0}
    return {
        "n": int(len(a)),
        "median_abs_pct": round(float(np.median(a)) * 100, 2),
        "p90_abs_pct": round(float(np.quantile(a, 0.9)) * 100, 2),
        "max_abs_pct": round(float(a.max()) * 100, 2),
        "mean_signed_pct": round(float(np.mean(rel)) * 100, 2),
    }


def coeff_dict(c: PerfCoefficients) -> dict:
    """Coefficients as the profile's ``coefficients`` mapping (no source; attention's own
    efficiencies only where set: 0 means the linear layers')."""
    return {
        k: float(f"{v:.6g}")
        for k, v in asdict(c).items()
        if k != "source" and not (k.startswith("e_attn_") and v == 0.0)
    }


def today() -> str:
    return date.today().isoformat()


# -- testbed runs ------------------------------------------------------------------
RUN_FREE = ("e_compute", "e_memory", "t_step_s", "t_seq_s", "t_prefill_tok_s", "t_request_s")
"""Coefficients a single-device (tp=1) run can identify; e_comm and t_allreduce_s need tp > 1."""


def run_observations(run) -> list[StepObs]:
    """Per-run observables of a closed-loop sweep point (``calibration.runs.Run``).

    N users send requests of exactly p prompt and o output tokens and resend
    the moment one finishes.

    - N = 1: TTFT (median) is one prefill step of p tokens plus the
      per-request latency outside the engine (``t_request_s``: two prompt
      lengths tell the intercept from the slope; measured ~35 ms on the CPU
      testbed, where API server, engine core and load generator share a
      core), TPOT (mean) one decode step of one sequence at the mean context
      p + o/2.
    - N > 1: the users drift in and out of step (c4-p128: 32 prompts went
      through 16 prefill steps, neither 32 nor 8), so per-request latencies
      depend on a phase the model does not know. What does not depend on it
      is the **busy-time balance**: the engine is busy from the first arrival
      to the last finish, and that time is the sum of its steps. The server
      counts them: ``vllm:iteration_tokens_total`` gives the number of steps S
      and, from its buckets, how many carried more tokens than there are users
      (S_pf: the steps with a prefill chunk). The observable is the mean step
      time (busy time / S) as S_pf/S prefill-carrying steps of the run's mean
      prefill shape and (S − S_pf)/S decode-only steps, the decodes spread
      evenly over all steps.
    """
    pt = run.meta.get("sweep_point")
    if not pt:
        raise ValueError(
            f"{run.name}: not a closed-loop sweep point (no sweep_point in run.json); "
            "open-loop runs are for `fleetcast validate`, not for fitting"
        )
    N, p, o = int(pt["concurrency"]), int(pt["prompt_tokens"]), int(pt["output_tokens"])
    B = int(run.engine["max_num_batched_tokens"])
    ok = run.requests[run.requests["status"] == "ok"]
    key = run_key(run)
    if N == 1:
        chunk = (min(p, B), min(p, B) * min(p, B) / 2.0, 0, 0.0, 1)
        return [
            StepObs(key, ((1.0, 0, 0.0, 1, p + o / 2.0, 0),), float(ok["tpot_s"].mean()), run.name, "tpot"),
            StepObs(key, ((1.0,) + chunk,), float(ok["ttft_s"].median()), run.name, "ttft", requests=1.0),
        ]
    deltas = run.meta.get("server_deltas") or {}
    hist = (deltas.get("histograms") or {}).get("vllm:iteration_tokens_total")
    counters = deltas.get("counters") or {}
    if not hist or not counters.get("iteration_tokens_count"):
        raise ValueError(
            f"{run.name}: run.json has no server step counts (vllm:iteration_tokens_total); "
            "re-measure with the current testbed"
        )
    S = float(counters["iteration_tokens_count"])
    le = [float("inf") if e == "+Inf" else float(e) for e in hist["le"]]
    edge = min(i for i, e in enumerate(le) if e >= N)
    if le[edge] >= p:
        raise ValueError(
            f"{run.name}: prefill steps ({p} tokens) cannot be told from decode steps ({N} users) "
            f"in the server's step histogram (bucket edge {le[edge]:g})"
        )
    s_pf = S - float(hist["cumulative_count"][edge])
    n = len(ok)
    P = float(counters.get("prompt_tokens_total", n * p))
    D = float(counters.get("generation_tokens_total", n * o)) - n  # first tokens come out of prefill steps
    chunks = n * math.ceil(p / B)
    busy = float(ok["finish_s"].max() - run.requests["arrival_s"].min())
    dec = (0, 0.0, D / S, D / S * (p + o / 2.0), 0)
    pf = (P / s_pf, P / s_pf * p / 2.0, D / S, D / S * (p + o / 2.0), chunks / s_pf)
    return [StepObs(key, ((1 - s_pf / S,) + dec, (s_pf / S,) + pf), busy / S, run.name, "step")]


def run_key(run) -> tuple:
    return (run.gpu, run.model, run.weights, run.kv_cache, run.tp, run.dtype)


def run_models(runs) -> dict:
    """PerfModel arguments per run key, from each run's catalog files (the CPU testbed catalog,
    plus the fp32 override for fp32 runs; the main catalog for a GPU log)."""
    from sim.catalog import load_catalog

    out = {}
    for run in runs:
        key = run_key(run)
        cat = load_catalog(run.catalog_files)
        out[key] = (cat.gpu(key[0]), cat.model(key[1]), cat.quant(key[2], key[3]), run.tp)
    return out


def fit_runs(runs, source: str = "calibration.fit") -> tuple[FitResult, list[StepObs]]:
    """Fit the tp=1 coefficients to closed-loop sweep runs."""
    obs = [o for run in runs for o in run_observations(run)]
    return fit_steps(obs, run_models(runs), free=RUN_FREE, source=source), obs


SIM_TARGETS = ("ttft_p50_s", "tpot_p50_s", "tpot_p90_s")
"""Observables a simulation-based fit matches on each closed-loop run. TTFT
only at concurrency 1: with N > 1 equal-length users the sweep runs in
synchronized waves whose TTFT is a burst of N prefills that also carries the
server's first-use (oneDNN primitive creation) cost of each new step shape; a
held-out open-loop run never sees that burst."""


def _targets(run) -> tuple[str, ...]:
    n = int((run.meta.get("sweep_point") or {}).get("concurrency", 1))
    return SIM_TARGETS if n == 1 else tuple(k for k in SIM_TARGETS if not k.startswith("ttft"))


def fit_runs_by_simulation(
    runs, start: PerfCoefficients, *, max_nfev: int = 60, source: str = "calibration.fit"
) -> tuple[PerfCoefficients, dict]:
    """Refine ``start`` by replaying every run through the simulator.

    Residual: log(simulated / measured) of ``SIM_TARGETS`` per run. The
    simulator's batching (chunked prefill, the token budget, the start-up
    burst of a closed loop) is then part of the fit, which the per-run
    observables above only approximate. Finite differences use 5 % steps in log
    space so that a step-time change moves at least a few scheduling
    decisions' worth (the simulated percentiles are piecewise smooth).
    """
    import json
    import tempfile
    from pathlib import Path

    from calibration.runs import measured_metrics, run_scenario
    from sim.engine.fleet import simulate

    free = RUN_FREE
    lo = np.log([BOUNDS[n][0] for n in free])
    hi = np.log([BOUNDS[n][1] for n in free])
    meas = [measured_metrics(r.requests, t0_s=float(r.requests["arrival_s"].min())) for r in runs]
    tmp = Path(tempfile.mkdtemp(prefix="fleetcast-fit-")) / "profile.json"
    scen_cache: dict = {}

    def coeffs_of(x):
        return replace(start, **{n: float(min(math.exp(v), BOUNDS[n][1])) for n, v in zip(free, x)}, source=source)

    def simulate_all(c):
        tmp.write_text(json.dumps({"name": "fit", "coefficients": coeff_dict(c)}))
        out = []
        for r in runs:
            sc = scen_cache.get(r.name) or scen_cache.setdefault(r.name, run_scenario(r, tmp))
            res = simulate(sc, workload=r.workload)
            out.append(measured_metrics(res.requests, t0_s=0.0))
        return out

    def resid(x):
        sims = simulate_all(coeffs_of(x))
        return np.array(
            [math.log(max(s[k], 1e-9) / m[k]) for s, m, run in zip(sims, meas, runs) for k in _targets(run)]
        )

    x0 = np.clip(np.log([max(getattr(start, n), BOUNDS[n][0]) for n in free]), lo + 1e-6, hi - 1e-6)
    r = least_squares(resid, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.1, diff_step=0.05, max_nfev=max_nfev)
    coeffs = coeffs_of(r.x)
    res = resid(r.x)
    names = [f"{run.name}:{k}" for run in runs for k in _targets(run)]
    table = {n: round(float(np.expm1(v)) * 100, 2) for n, v in zip(names, res)}
    return coeffs, {
        "residual_pct": table,
        "nfev": int(r.nfev),
        "message": str(r.message),
        "error": error_stats(np.expm1(res)),
    }
