"""Build a profile (the JSON ``sim.perf.profiles`` reads) from testbed runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from calibration.fit import RUN_FREE, coeff_dict, error_stats, fit_runs, fit_runs_by_simulation, run_models, today
from calibration.runs import Run, load_run
from sim.errors import FleetcastError
from sim.perf.perf_model import PerfCoefficients

__all__ = ["build_run_profile"]


def _rel(p: Path, to: Path) -> str:
    try:
        return os.path.relpath(Path(p).resolve(), Path(to).resolve())
    except ValueError:
        return str(p)


def build_run_profile(
    folders: list[Path | Run], name: str, method: str, max_nfev: int, out: Path
) -> tuple[dict, list[str]]:
    """Fit closed-loop sweep runs (run folders, or ``Run``s already loaded, e.g. from logs);
    returns (profile, printable residual rows)."""
    runs = [f if isinstance(f, Run) else load_run(f) for f in folders]
    open_runs = [r.name for r in runs if not r.meta.get("sweep_point")]
    if open_runs:
        raise FleetcastError(
            f"calibrate fits closed-loop sweep runs only (held-out protocol): a testbed sweep "
            f"point, or a log of a concurrency-capped client (bench serve --max-concurrency) "
            f"whose requests all have one prompt and one output length; give these to "
            f"`fleetcast validate`: {', '.join(open_runs)}"
        )
    kinds = {(r.gpu, r.tp, r.model, r.weights, r.kv_cache, r.dtype) for r in runs}
    if len(kinds) > 1:
        raise FleetcastError(
            f"one profile per (GPU, tensor parallel, model, quantization, dtype); these runs mix {sorted(kinds)}"
        )
    gpu, _tp, model, weights, kv, dtype = kinds.pop()
    simulate_only = ". `--method simulation` fits by replaying the runs instead (from the GPU's catalog defaults)"
    no_counts = [r.name for r in runs if r.catalogs is not None and int(r.meta["sweep_point"]["concurrency"]) > 1]
    if no_counts and method != "simulation":
        raise FleetcastError(
            f"the observables fit needs the server's step counts above concurrency 1, and a run log "
            f"has none: {', '.join(no_counts)}{simulate_only}"
        )
    try:
        fit, obs = (None, []) if no_counts else fit_runs(runs, source=f"profile {name}")
    except ValueError as exc:
        if method != "simulation":
            raise FleetcastError(f"{exc}{simulate_only}") from None
        fit, obs = None, []
    fit_error: dict[str, Any]
    if fit is not None:
        rows = [
            f"{o.label:<28} {o.kind:<5} measured {o.measured_s * 1e3:8.2f} ms  predicted {e * 100:+6.1f}%"
            for o, e in zip(obs, fit.rel_errors())
        ]
        coeffs, fit_error, fitted = fit.coeffs, {"observables": error_stats(fit.rel_errors())}, fit.fitted
    else:  # no step counts in the logs: start from the GPU's catalog defaults
        gpu_spec = next(iter(run_models(runs[:1]).values()))[0]
        coeffs, fit_error, fitted = PerfCoefficients(**dict(gpu_spec.perf_defaults or {})), {}, RUN_FREE
    if method == "simulation":
        coeffs, info = fit_runs_by_simulation(runs, coeffs, max_nfev=max_nfev, source=f"profile {name}")
        rows = [f"{k:<40} {v:+7.1f}%" for k, v in info["residual_pct"].items()]
        start = (
            {"observables_start": fit_error["observables"]}
            if fit_error
            else {"start": f"catalog perf_defaults of {gpu}"}
        )
        fit_error = {"simulation": info["error"], **start, "residual_pct": info["residual_pct"], "nfev": info["nfev"]}
    base = out.parent
    catalogs = runs[0].catalog_files
    meta = runs[0].meta
    prompts = [int(r.requests["prompt_tokens"].max()) for r in runs]
    batches = [int(r.meta["sweep_point"]["concurrency"]) for r in runs]
    profile = {
        "name": name,
        "coefficients": coeff_dict(coeffs),
        "provenance": {
            "kind": (
                "testbed runs (real vLLM server, closed-loop sweep)"
                if runs[0].catalogs is None
                else f"{meta.get('source', 'run log')}s (real vLLM server, concurrency-capped client)"
            ),
            "runs": [_rel(r.folder, Path.cwd()) for r in runs],
            "vllm_version": meta.get("vllm_version"),
            "hardware": meta.get("hardware"),
            "model": model,
            "model_config": (meta.get("model") or {}).get("config"),
            "dtype": dtype,
            "quantization": {"weights": weights, "kv_cache": kv},
            "engine_args": meta.get("engine_args"),
            "kv_cache": {k: v for k, v in (meta.get("kv_cache") or {}).items() if k != "cache_config_info"},
            "date": today(),
            "method": method,
            "fitted_coefficients": list(fitted),
            "held_fixed": {k: v for k, v in coeff_dict(coeffs).items() if k not in fitted},
            "fit_error": fit_error,
            "catalog": [_rel(c, base) for c in catalogs],
            "note": (
                "fp32 run: the catalog-cpu-fp32.yaml override maps the scenario weight scheme 'bf16' and "
                "KV 'auto' to 4-byte fp32"
                if dtype in ("float32", "float")
                else ""
            ),
        },
        "validation": {},
        "fitted_range": {
            "gpu": gpu,
            "model": model,
            "quantization": weights,
            "max_prompt_tokens": int(np.max(prompts)),
            "max_batch": int(np.max(batches)),
        },
    }
    return profile, rows
