"""A testbed run folder as the simulator sees it.

``load_run(folder)`` reads ``requests.parquet``, ``timeseries.parquet`` and
``run.json`` (docs/testbed.md, "A run folder") and returns a ``Run``: the exact
workload that was played (arrival times, classes, prompt and planned output
lengths), the measured records, and a scenario that reproduces the server:
its engine settings as the server reported them (token budget, max seqs,
block size, KV blocks), the model and quantization from the model's
config.json, the device from ``calibration/catalog-cpu.yaml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sim.errors import FleetcastError
from sim.scenario.spec import Scenario, scenario_from_dict
from sim.workload.generate import Workload

__all__ = ["Run", "load_run", "run_scenario", "measured_metrics", "completed_rps", "CPU_GPU", "VLLM_CPU_DEFAULTS"]

HERE = Path(__file__).resolve().parent
CPU_GPU = "cpu-epyc-avx2-2c"
CPU_CATALOG = HERE / "catalog-cpu.yaml"
FP32_CATALOG = HERE / "catalog-cpu-fp32.yaml"
VLLM_CPU_DEFAULTS = {"max_num_batched_tokens": 2048, "max_num_seqs": 128}
"""vLLM 0.32 CPU defaults for the OpenAI server (EngineArgs.get_batch_defaults,
``current_platform.is_cpu()``: 2048 × world size, 128 × world size), used
where run.json's engine args are None (the server picked them)."""
_MODELS = {(256, 4): "testbed-tiny", (1024, 12): "testbed-base"}  # (hidden, layers) -> catalog name


@dataclass
class Run:
    """One testbed run: what was played, what was measured, how the server ran."""

    folder: Path
    name: str
    meta: dict  # run.json
    requests: pd.DataFrame  # requests.parquet (measured), sorted by arrival
    timeseries: pd.DataFrame  # timeseries.parquet (measured)
    workload: Workload  # exactly what was played
    mode: str  # "open" | "closed"
    model: str  # catalog model name
    dtype: str  # vLLM --dtype
    weights: str  # scenario weight scheme
    kv_cache: str  # scenario KV scheme
    engine: dict  # scenario engine: mapping (as the server ran)


def _quant(cfg: dict, extra_args: list[str]) -> tuple[str, str]:
    q = cfg.get("quantization_config") or {}
    text = json.dumps(q).lower()
    if not q:
        weights = "bf16"
    elif '"num_bits": 8' in text and '"type": "float"' in text:
        weights = "fp8"
    elif '"num_bits": 8' in text:
        weights = "int8"
    elif '"num_bits": 4' in text:
        weights = "int4-gptq"
    else:
        raise FleetcastError(f"unknown quantization_config in the run's model config: {q}")
    kv = "fp8" if any(a.startswith("fp8") for a in extra_args) and "--kv-cache-dtype" in extra_args else "auto"
    return weights, kv


def load_run(folder: Path) -> Run:
    """Read a run folder; a missing file or an unknown model is a FleetcastError."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        req = pd.read_parquet(folder / "requests.parquet")
    except (OSError, json.JSONDecodeError) as exc:
        raise FleetcastError(f"{folder} is not a testbed run folder (run.json + requests.parquet): {exc}")
    ts_path = folder / "timeseries.parquet"
    ts = pd.read_parquet(ts_path) if ts_path.is_file() else pd.DataFrame()
    cfg = (meta.get("model") or {}).get("config") or {}
    key = (cfg.get("hidden_size"), cfg.get("num_hidden_layers"))
    if key not in _MODELS:
        raise FleetcastError(f"{folder}: model with hidden_size {key[0]}, {key[1]} layers is not in "
                             f"calibration/catalog-cpu.yaml (known: {sorted(_MODELS.values())})")
    ea = meta.get("engine_args") or {}
    weights, kv = _quant(cfg, list(ea.get("extra_args") or []))
    kvc = meta.get("kv_cache") or {}
    engine = {
        "max_num_seqs": ea.get("max_num_seqs") or VLLM_CPU_DEFAULTS["max_num_seqs"],
        "max_num_batched_tokens": ea.get("max_num_batched_tokens") or VLLM_CPU_DEFAULTS["max_num_batched_tokens"],
        "block_size": int(kvc.get("block_size") or ea.get("block_size") or 128),
        "num_gpu_blocks_override": int(kvc["num_blocks"]),  # as the server reported it
        "max_model_len": int(ea.get("max_model_len") or 2048),
        "enable_prefix_caching": str(kvc.get("enable_prefix_caching", "True")) == "True",
    }
    req = req.sort_values(["arrival_s", "request_id"]).reset_index(drop=True)
    planned = _planned_outputs(meta, req)
    names = sorted(req["class"].astype(str).unique())
    wl = Workload(
        arrival_s=req["arrival_s"].to_numpy(float) - float(req["arrival_s"].min()),
        class_idx=req["class"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int16),
        prompt_tokens=req["prompt_tokens"].to_numpy(np.int32),
        output_tokens=planned.astype(np.int32),
        prefix_offsets=np.zeros(len(req) + 1, dtype=np.int64),
        prefix_keys=np.zeros(0, dtype=np.int64), prefix_end_tok=np.zeros(0, dtype=np.int32),
        class_names=names)
    name = f"{folder.parent.name}/{folder.name}" if folder.parent.name not in ("", ".") else folder.name
    return Run(folder, name, meta, req, ts, wl, meta.get("mode", "open"), _MODELS[key],
               str(ea.get("dtype") or "bfloat16"), weights, kv, engine)


def _planned_outputs(meta: dict, req: pd.DataFrame) -> np.ndarray:
    """Output lengths the client asked for (ignore_eos + max_tokens): a cancelled
    request's record only holds what it got before the stop."""
    if meta.get("sweep_point"):
        return np.full(len(req), int(meta["sweep_point"]["output_tokens"]))
    if meta.get("scenario"):
        from sim.workload.generate import generate_workload

        data = {**meta["scenario"], "catalog": []}  # lengths do not depend on the catalog
        sc = scenario_from_dict({**data, "fleet": [{"name": "x", "gpu": "h100-sxm", "replicas": 1,
                                                    "model": "llama-3.1-8b"}]})
        wl = generate_workload(sc.traffic, sc.seed, Path("."))
        return wl.output_tokens[req["request_id"].to_numpy()]
    return req["output_tokens"].to_numpy()


def run_scenario(run: Run, profile: Path | None, *, coeffs_catalog: list[Path] | None = None) -> Scenario:
    """A one-pool scenario that reproduces the run's server (for ``simulate(..., workload=run.workload)``)."""
    catalogs = coeffs_catalog or [CPU_CATALOG] + ([FP32_CATALOG] if run.dtype in ("float32", "float") else [])
    duration = float(run.workload.arrival_s.max()) + 1.0
    pool = {"name": "cpu", "gpu": CPU_GPU, "replicas": 1, "model": run.model,
            "quantization": {"weights": run.weights, "kv_cache": run.kv_cache}, "engine": run.engine}
    if profile is not None:
        pool["profile"] = str(Path(profile).resolve())
    data = {
        "name": run.name, "seed": 0, "catalog": [str(Path(c).resolve()) for c in catalogs], "fleet": [pool],
        "traffic": {"duration_s": duration, "arrival": {"process": "constant"},
                    "classes": [{"name": n, "rate_rps": 1.0, "prompt_tokens": {"dist": "fixed", "value": 1},
                                 "output_tokens": {"dist": "fixed", "value": 1}}
                                for n in run.workload.class_names]},
        "sim": {"drain_s": 3600.0, "timeseries_interval_s": 1.0},
    }
    return scenario_from_dict(data)


def completed_rps(requests: pd.DataFrame) -> float:
    """Completed requests per second from the first arrival to the last finish
    (of a closed loop at saturation: the server's capacity for those lengths)."""
    ok = requests[requests["status"] == "ok"]
    return len(ok) / float(ok["finish_s"].max() - requests["arrival_s"].min())


def measured_metrics(requests: pd.DataFrame, timeseries: pd.DataFrame | None = None) -> dict:
    """The compared observables of one run (seconds, tokens/s, sequences)."""
    ok = requests[requests["status"] == "ok"]
    out: dict = {"requests": int(len(requests)), "ok": int(len(ok))}
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        v = ok[m].dropna().to_numpy(float)
        for q in (50, 90, 99):
            out[f"{m[:-2]}_p{q}_s"] = float(np.percentile(v, q)) if len(v) else float("nan")
        out[f"{m[:-2]}_mean_s"] = float(v.mean()) if len(v) else float("nan")
    span = float(ok["finish_s"].max() - requests["arrival_s"].min()) if len(ok) else float("nan")
    out["output_tok_s"] = float(ok["output_tokens"].sum() / span) if span and span > 0 else float("nan")
    if timeseries is not None and len(timeseries):
        ts = timeseries[timeseries["t_s"] <= float(ok["finish_s"].max())] if len(ok) else timeseries
        out["mean_running"] = float(ts["running"].mean())
        out["mean_waiting"] = float(ts["waiting"].mean())
    return out
