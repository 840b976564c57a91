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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.server_settings import derived_max_model_len, run_overrides, server_dtype
from sim.errors import FleetcastError
from sim.records import derive_latencies
from sim.scenario.spec import Scenario, scenario_from_dict
from sim.workload.generate import Workload
from testbed.runfolder import JOURNAL, interrupted_meta, read_journal

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
    gpu: str = CPU_GPU  # catalog GPU of the server
    tp: int = 1  # tensor parallel size
    catalogs: Sequence[Path] | None = None  # catalog files the scenario needs; None: the CPU testbed's
    failed: int = 0  # requests that failed (not replayed; logs other than run folders)
    notes: tuple[str, ...] = ()  # what loading assumed or left out, printed by the commands
    expert_parallel: bool = False  # vLLM --enable-expert-parallel (an MoE model's experts whole, spread over the GPUs)

    @property
    def api_server(self) -> bool:
        """Whether the run's requests went through vLLM's API server (sim.engine.front_end). A
        static batch did not: it is an offline ``LLM.generate`` of prompt token ids (vLLM's
        ``benchmark_latency.py``; docs/run-logs.md, "Static-batch tables"), no HTTP, chat
        template, tokenization or streaming, so its replay has no front end."""
        return self.mode != "static"

    @property
    def catalog_files(self) -> list[Path]:
        """Catalog files of the replayed server: the CPU testbed catalog (plus the fp32 override for
        fp32 runs) for a testbed run, else the log's own (none for a GPU of the main catalog)."""
        if self.catalogs is not None:
            return list(self.catalogs)
        return [CPU_CATALOG] + ([FP32_CATALOG] if self.dtype in ("float32", "float") else [])


def _quant(cfg: dict, extra_args: list[str], where: str = "the run's model config") -> tuple[str, str]:
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
        raise FleetcastError(
            f"{where}: unknown quantization_config {q}; known: none (bf16), 8-bit float (fp8), "
            "8-bit integer (int8), 4-bit (int4-gptq)"
        )
    kv = "fp8" if any(a.startswith("fp8") for a in extra_args) and "--kv-cache-dtype" in extra_args else "auto"
    return weights, kv


#: requests.parquet columns the calibration reads (the testbed writes all of REQUEST_COLUMNS).
_REQUEST_NEEDED = ("request_id", "class", "arrival_s", "finish_s", "prompt_tokens", "output_tokens", "status")
_LATENCIES = ("ttft_s", "tpot_s", "e2e_s")  # derived from first_token_s where absent
_TIMESERIES_NEEDED = ("t_s", "running", "waiting")
_RUN_FOLDER = 'a testbed run folder holds run.json and requests.parquet (docs/testbed.md, "A run folder")'


def _read_json(path: Path) -> dict:
    """run.json as a dict; a missing, unreadable or non-object file is a FleetcastError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetcastError(f"{path} not found; {_RUN_FOLDER}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FleetcastError(f"{path} could not be read as JSON ({exc}); {_RUN_FOLDER}") from None
    if not isinstance(data, dict):
        raise FleetcastError(f"{path} must hold a JSON object (the run's metadata), got {type(data).__name__}")
    return data


def _read_parquet(path: Path, needed: tuple[str, ...]) -> pd.DataFrame:
    """A Parquet table with at least the ``needed`` columns; else a FleetcastError naming the file."""
    if not path.is_file():
        raise FleetcastError(f"{path} {'is not a file' if path.exists() else 'not found'}; {_RUN_FOLDER}")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 — pyarrow raises several unrelated types (ArrowInvalid, OSError)
        raise FleetcastError(
            f"{path} is not a readable Parquet table ({exc}); restore the file or re-measure the run"
        ) from None
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise FleetcastError(
            f"{path} lacks the column(s) {', '.join(missing)}; a testbed table has "
            f"{', '.join(needed)} (docs/testbed.md)"
        )
    return df


def _section(meta: dict, key: str, path: Path) -> dict:
    """``meta[key]`` as a mapping ({} when absent or null)."""
    value = meta.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FleetcastError(f"{path}: field {key} must be a JSON object, got {type(value).__name__} {value!r}")
    return value


def _int(value, field: str, path: Path, *, minimum: int = 0) -> int:
    """An integer field of run.json (``field`` is its dotted name, for the message)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FleetcastError(f"{path}: field {field} must be an integer >= {minimum}, got {value!r}")
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise FleetcastError(f"{path}: field {field} must be an integer >= {minimum}, got {value!r}") from None
    if out != float(value) or out < minimum:
        raise FleetcastError(f"{path}: field {field} must be an integer >= {minimum}, got {value!r}")
    return out


def load_run(folder: Path, overrides: list[str] | None = None) -> Run:
    """Read a run folder; a missing or unreadable file, a missing field or an
    unknown model is a FleetcastError naming the file (and the field). ``overrides``
    (``--sidecar-set``: dtype, engine.max_num_seqs, ...) win over what run.json records;
    a run against an attached server takes its settings from the /metrics labels it
    recorded (``calibration.server_settings``)."""
    folder = Path(folder)
    given = run_overrides(overrides)
    meta_path = folder / "run.json"
    meta = _read_json(meta_path)
    req_path = folder / "requests.parquet"
    req: pd.DataFrame  # read_journal gives None only without a journal, checked here
    if not req_path.exists() and (folder / JOURNAL).exists():  # the client was killed: its journal
        req = read_journal(folder)
        meta = {**meta, **interrupted_meta(meta, len(req))}
    else:
        req = _read_parquet(req_path, _REQUEST_NEEDED)
    if req.empty:
        raise FleetcastError(f"{req_path} holds no requests; nothing to compare (was the run interrupted?)")
    if any(c not in req.columns for c in _LATENCIES):
        if "first_token_s" not in req.columns:
            raise FleetcastError(
                f"{req_path} lacks the column first_token_s (needed for "
                f"{', '.join(c for c in _LATENCIES if c not in req.columns)}); a testbed "
                "requests table has first_token_s or ttft_s, tpot_s and e2e_s"
            )
        req = derive_latencies(req)
    ts_path = folder / "timeseries.parquet"
    ts = _read_parquet(ts_path, _TIMESERIES_NEEDED) if ts_path.exists() else pd.DataFrame()
    mode = meta.get("mode", "open")
    if mode not in ("open", "closed"):
        raise FleetcastError(f"{meta_path}: field mode must be 'open' or 'closed', got {mode!r}")
    cfg = _section(_section(meta, "model", meta_path), "config", meta_path)
    missing = [k for k in ("hidden_size", "num_hidden_layers") if cfg.get(k) is None]
    if missing:
        raise FleetcastError(
            f"{meta_path}: {'fields' if len(missing) > 1 else 'field'} "
            f"{' and '.join('model.config.' + k for k in missing)} "
            f"{'are' if len(missing) > 1 else 'is'} missing; "
            "run.json records the served model's config.json under model.config (the testbed "
            "writes it), which tells the model"
        )
    key = (cfg.get("hidden_size"), cfg.get("num_hidden_layers"))
    if not all(isinstance(v, int) for v in key) or key not in _MODELS:
        raise FleetcastError(
            f"{meta_path}: model with hidden_size {key[0]}, {key[1]} layers "
            f"(model.config) is not in calibration/catalog-cpu.yaml (known: "
            + ", ".join(
                f"{n}: hidden_size {h}, {n_l} layers" for (h, n_l), n in sorted(_MODELS.items(), key=lambda kv: kv[1])
            )
            + ")"
        )
    ea = _section(meta, "engine_args", meta_path)
    extra = ea.get("extra_args") or []
    if not isinstance(extra, list):
        raise FleetcastError(f"{meta_path}: field engine_args.extra_args must be a list, got {extra!r}")
    weights, kv = _quant(cfg, [str(a) for a in extra], f"{meta_path}: field model.config")
    kvc = _section(meta, "kv_cache", meta_path)
    if kvc.get("num_blocks") is None:
        raise FleetcastError(
            f"{meta_path}: field kv_cache.num_blocks is missing; run.json records the KV blocks "
            "the server reported (vllm:cache_config_info), which the simulated replica uses"
        )

    info = _section(kvc, "cache_config_info", meta_path)  # the labels of vllm:cache_config_info (/metrics)
    dtype, notes = server_dtype(meta_path, ea, info, cfg, given.dtype)
    if str(info.get("cache_dtype", "")).startswith("fp8"):  # an attached server's --kv-cache-dtype fp8*
        kv = "fp8"

    def eng_int(name: str, default: int | None, *, kv_first: bool = False) -> int | None:
        for where, sect in (("kv_cache", kvc), ("engine_args", ea)) if kv_first else (("engine_args", ea),):
            if sect.get(name):
                return _int(sect[name], f"{where}.{name}", meta_path, minimum=1)
        return default

    engine = {
        "max_num_seqs": given.engine.max_num_seqs or eng_int("max_num_seqs", VLLM_CPU_DEFAULTS["max_num_seqs"]),
        "max_num_batched_tokens": given.engine.max_num_batched_tokens
        or eng_int("max_num_batched_tokens", VLLM_CPU_DEFAULTS["max_num_batched_tokens"]),
        "block_size": eng_int("block_size", 128, kv_first=True),
        "num_gpu_blocks_override": _int(kvc["num_blocks"], "kv_cache.num_blocks", meta_path, minimum=1),
        "max_model_len": given.engine.max_model_len
        or eng_int("max_model_len", None)
        or derived_max_model_len(info)
        or 2048,
        "enable_prefix_caching": str(kvc.get("enable_prefix_caching", "True")) == "True",
    }
    if not ea:  # an attached server: what /metrics does not say
        assumed = [k for k in ("max_num_seqs", "max_num_batched_tokens") if getattr(given.engine, k) is None]
        if assumed:
            notes.append(
                f"an attached server's {' and '.join(assumed)} are not on /metrics; "
                f"assumed vLLM's CPU defaults ({', '.join(f'{k}={VLLM_CPU_DEFAULTS[k]}' for k in assumed)})"
                f"; if it ran otherwise pass --sidecar-set "
                f"{' '.join(f'engine.{k}=N' for k in assumed)}"
            )
    point = meta.get("sweep_point")
    if point:
        if not isinstance(point, dict):
            raise FleetcastError(f"{meta_path}: field sweep_point must be a JSON object, got {point!r}")
        for k in ("concurrency", "prompt_tokens", "output_tokens"):
            if k not in point:
                raise FleetcastError(
                    f"{meta_path}: field sweep_point.{k} is missing; a closed-loop sweep point "
                    "records concurrency, prompt_tokens and output_tokens"
                )
            _int(point[k], f"sweep_point.{k}", meta_path, minimum=1)
    req = req.sort_values(["arrival_s", "request_id"]).reset_index(drop=True)
    planned = _planned_outputs(meta, req, meta_path)
    names = sorted(req["class"].astype(str).unique())
    wl = Workload(
        arrival_s=req["arrival_s"].to_numpy(float) - float(req["arrival_s"].min()),
        class_idx=req["class"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy(np.int16),
        prompt_tokens=req["prompt_tokens"].to_numpy(np.int32),
        output_tokens=planned.astype(np.int32),
        prefix_offsets=np.zeros(len(req) + 1, dtype=np.int64),
        prefix_keys=np.zeros(0, dtype=np.int64),
        prefix_end_tok=np.zeros(0, dtype=np.int32),
        class_names=names,
    )
    name = f"{folder.parent.name}/{folder.name}" if folder.parent.name not in ("", ".") else folder.name
    return Run(folder, name, meta, req, ts, wl, mode, _MODELS[key], dtype, weights, kv, engine, notes=tuple(notes))


def _planned_outputs(meta: dict, req: pd.DataFrame, meta_path: Path) -> np.ndarray:
    """Output lengths the client asked for (ignore_eos + max_tokens): a cancelled
    request's record only holds what it got before the stop."""
    if meta.get("sweep_point"):
        return np.full(len(req), int(meta["sweep_point"]["output_tokens"]))
    if meta.get("scenario"):
        from sim.workload.generate import generate_workload

        if not isinstance(meta["scenario"], dict):
            raise FleetcastError(
                f"{meta_path}: field scenario must be a JSON object (the played scenario), "
                f"got {type(meta['scenario']).__name__}"
            )
        data = {**meta["scenario"], "catalog": []}  # lengths do not depend on the catalog
        try:
            sc = scenario_from_dict(
                {**data, "fleet": [{"name": "x", "gpu": "h100-sxm", "replicas": 1, "model": "llama-3.1-8b"}]}
            )
        except FleetcastError as exc:
            raise FleetcastError(f"{meta_path}: field scenario (the played scenario) is not valid: {exc}") from None
        wl = generate_workload(sc.traffic, sc.seed, Path("."))
        ids = req["request_id"].to_numpy()
        bad = ids[(ids < 0) | (ids >= len(wl.output_tokens))]
        if len(bad):
            raise FleetcastError(
                f"{meta_path.with_name('requests.parquet')}: request_id {int(bad[0])} is not "
                f"a request of the scenario in {meta_path} (it generates "
                f"{len(wl.output_tokens)}); the two files are from different runs"
            )
        return wl.output_tokens[ids]
    return req["output_tokens"].to_numpy()


def run_scenario(run: Run, profile: Path | None, *, coeffs_catalog: list[Path] | None = None) -> Scenario:
    """A one-pool scenario that reproduces the run's server (for ``simulate(..., workload=run.workload)``)."""
    catalogs = coeffs_catalog or run.catalog_files
    duration = float(run.workload.arrival_s.max()) + 1.0
    if run.meta.get("steady_state"):  # a saturated burst's ITL counts every token: a window of the whole day
        duration = 86400.0
    pool = {
        "name": "cpu" if run.gpu == CPU_GPU else "gpu",
        "gpu": run.gpu,
        "replicas": 1,
        "model": run.model,
        "quantization": {"weights": run.weights, "kv_cache": run.kv_cache},
        "engine": run.engine,
    }
    if run.tp != 1:
        pool["tensor_parallel"] = run.tp
    if run.expert_parallel:
        pool["expert_parallel"] = True
    if run.meta.get("policy"):  # the sidecar's engine_core v0 without chunked prefill (calibration/logs/sidecar.py)
        pool["policy"] = {"name": run.meta["policy"]}
    if profile is not None:
        pool["profile"] = str(Path(profile).resolve())
    data = {
        "name": run.name,
        "seed": 0,
        "catalog": [str(Path(c).resolve()) for c in catalogs],
        "fleet": [pool],
        "traffic": {
            "duration_s": duration,
            "arrival": {"process": "constant"},
            "classes": [
                {
                    "name": n,
                    "rate_rps": 1.0,
                    "prompt_tokens": {"dist": "fixed", "value": 1},
                    "output_tokens": {"dist": "fixed", "value": 1},
                }
                for n in run.workload.class_names
            ],
        },
        # a closed loop's sends all come after time 0 (its arrival_s are zeros), and a saturated burst
        # drains its whole queue at the batch cap (long reasoning outputs at a small cap: hours): a day to finish
        "sim": {
            "drain_s": 86400.0 if run.meta.get("closed_loop") or run.meta.get("steady_state") else 3600.0,
            "timeseries_interval_s": 1.0,
        },
    }
    return scenario_from_dict(data)


def completed_rps(requests: pd.DataFrame) -> float:
    """Completed requests per second from the first arrival to the last finish
    (of a closed loop at saturation: the server's capacity for those lengths)."""
    ok = requests[requests["status"] == "ok"]
    return len(ok) / float(ok["finish_s"].max() - requests["arrival_s"].min())


def measured_metrics(
    requests: pd.DataFrame, timeseries: pd.DataFrame | None = None, *, t0_s: float | None = None
) -> dict:
    """The compared observables of one run (seconds, tokens/s, sequences), the same for the
    measured and the simulated side.

    Latency percentiles are over the ``ok`` requests. ``output_tok_s`` counts as vLLM
    ``bench serve`` does: the output tokens of the completed requests over the span in which
    they completed, ``completion_span_s`` = from the first request's start (``t0_s``, default
    the earliest ``arrival_s`` of ``requests``) to the last completion. ``mean_running`` and
    ``mean_waiting`` are there only when ``timeseries`` is given (absent: not measured)."""
    ok = requests[requests["status"] == "ok"]
    out: dict = {"requests": int(len(requests)), "ok": int(len(ok))}
    for m in ("ttft_s", "tpot_s", "e2e_s"):
        v = ok[m].dropna().to_numpy(float)
        for q in (50, 90, 99):
            out[f"{m[:-2]}_p{q}_s"] = float(np.percentile(v, q)) if len(v) else float("nan")
        out[f"{m[:-2]}_mean_s"] = float(v.mean()) if len(v) else float("nan")
    t0 = float(requests["arrival_s"].min()) if t0_s is None else float(t0_s)
    span = float(ok["finish_s"].max() - t0) if len(ok) else float("nan")
    out["completion_span_s"] = span
    out["output_tok_s"] = float(ok["output_tokens"].sum() / span) if span and span > 0 else float("nan")
    if timeseries is not None and len(timeseries):
        ts = timeseries[timeseries["t_s"] <= float(ok["finish_s"].max())] if len(ok) else timeseries
        out["mean_running"] = float(ts["running"].mean())
        out["mean_waiting"] = float(ts["waiting"].mean())
    return out
