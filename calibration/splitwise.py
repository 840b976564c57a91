"""H100 / A100 profiles from Splitwise's public measurements.

Data: ``perf_model.csv`` of Mutinifni/splitwise-sim (commit 3b5a5941, MIT;
Patel et al., "Splitwise", ISCA 2024): Llama-2-70B (TP 2/4/8) and BLOOM-176B
(TP 8) on A100-80GB, H100-80GB and power-capped H100, fp16. Each
configuration is repeated; we take medians. Units are milliseconds:

- ``prompt_time``: prefill of ``batch_size`` prompts of ``prompt_size`` tokens,
  one step: ``prefill_tokens = B·p``, ``prefill_attn = B·p²/2``.
- ``token_time``: mean time of one decode step of the batch. It is an average
  over the generation, so the context is the prompt plus half the tokens
  actually generated, ``n = (e2e_time − prompt_time)/token_time`` (generation
  stops at the model's context limit, so ``n`` can be below ``token_size``).

Every row becomes a ``StepObs`` and the fit is ``calibration.fit.fit_steps``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from calibration.fit import StepObs, coeff_dict, error_stats, fit_steps, predict_steps, step, today
from sim.catalog import load_catalog
from sim.errors import FleetcastError

__all__ = ["load_steps", "fit_hardware", "leave_out", "build_profile", "HARDWARE", "MODELS", "DEFAULT_CSV", "CATALOG"]

HERE = Path(__file__).resolve().parent
DEFAULT_CSV = HERE / "data" / "splitwise-medians.csv"
"""Shipped derived data: the median of the repeated rows of each configuration
(``load_steps`` of the original file); ``--splitwise-csv`` takes the original."""
CATALOG = HERE / "catalog-splitwise.yaml"
HARDWARE = {"h100-80gb": "h100-sxm", "a100-80gb": "a100-80gb", "h100-80gb-pcap": "h100-sxm"}
MODELS = {"llama2-70b": "llama-2-70b", "bloom-176b": "bloom-176b"}
ATTRIBUTION = (
    "Splitwise measurements: Mutinifni/splitwise-sim data/perf_model.csv, commit 3b5a5941, "
    "MIT licence; Patel et al., 'Splitwise: Efficient generative LLM inference using phase "
    "splitting', ISCA 2024"
)


def load_steps(csv: Path = DEFAULT_CSV) -> pd.DataFrame:
    """Median of repeated rows per configuration, with the step shapes; an unreadable
    file or a missing column is a FleetcastError naming the file."""
    csv = Path(csv)
    try:
        df = pd.read_csv(csv)
    except FileNotFoundError:
        raise FleetcastError(
            f"Splitwise CSV not found: {csv}; give Splitwise's data/perf_model.csv "
            "(--splitwise-csv) or leave the option out for the shipped medians"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # pandas' parser errors are ValueErrors
        raise FleetcastError(f"Splitwise CSV {csv} could not be read as CSV: {exc}") from None
    keys = ["model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]
    derived = "repeats" in df.columns  # already the medians (the shipped derived file)
    needed = keys + ["prompt_time", "token_time"] + (["tokens_generated"] if derived else ["e2e_time"])
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise FleetcastError(
            f"Splitwise CSV {csv} lacks the column(s) {', '.join(missing)}; Splitwise's "
            f"perf_model.csv has {', '.join(needed)}"
        )
    if derived:
        return df
    g = df.groupby(keys)[["prompt_time", "token_time", "e2e_time"]].median().reset_index()
    g["repeats"] = df.groupby(keys).size().to_numpy()
    n_gen = ((g["e2e_time"] - g["prompt_time"]) / g["token_time"]).clip(lower=1)
    g["tokens_generated"] = np.minimum(n_gen, g["token_size"]).round()
    return g.reset_index(drop=True)


def below_roofline(steps: pd.DataFrame) -> pd.Series:
    """Rows whose prefill or decode time is below the physical floor (peak FLOP/s and
    bandwidth, no overheads): broken measurements. One in the data: Llama-2-70B TP2,
    512-token prompts x 64 on H100 reports a 361 ms prefill, 6x under the FLOP floor
    of 32,768 tokens on two GPUs (the A100 row is likewise implausible)."""
    from sim.perf.perf_model import PerfModel, roofline_floor_s

    obs = _obs(steps, check=False)
    models = _models(obs)
    perf = {k: PerfModel(v[0], v[1], v[2], v[3]) for k, v in models.items()}
    bad = [
        any(
            o.measured_s
            < roofline_floor_s(perf[o.key], *(int(round(x)) if i != 1 else x for i, x in enumerate(o.parts[0][1:])))
            for o in obs[2 * i : 2 * i + 2]
        )
        for i in range(len(steps))
    ]
    return pd.Series(bad, index=steps.index)


def _obs(rows: pd.DataFrame, check: bool = True) -> list[StepObs]:
    if check:
        rows = rows[~below_roofline(rows)]
    out = []
    for r in rows.itertuples(index=False):
        key = (HARDWARE[r.hardware], MODELS[r.model], "bf16", "auto", int(r.tensor_parallel))
        B, p = int(r.batch_size), int(r.prompt_size)
        label = f"{r.model} {r.hardware} tp{r.tensor_parallel} p{p} b{B} o{r.token_size}"
        out.append(step(key, B * p, B * p * p / 2.0, 0, 0, B, r.prompt_time / 1e3, label, "prefill"))
        ctx = B * (p + r.tokens_generated / 2.0)
        out.append(step(key, 0, 0.0, B, ctx, 0, r.token_time / 1e3, label, "decode"))
    return out


def _models(obs: list[StepObs]) -> dict:
    cat = load_catalog([CATALOG])
    return {o.key: (cat.gpu(o.key[0]), cat.model(o.key[1]), cat.quant(o.key[2], o.key[3]), o.key[4]) for o in obs}


def fit_hardware(steps: pd.DataFrame, hardware: str, train_mask=None, source: str = ""):
    """Fit one hardware's rows (``train_mask`` selects the training rows)."""
    rows = steps[steps["hardware"] == hardware]
    if train_mask is not None:
        rows = rows[train_mask(rows)]
    obs = _obs(rows)
    return fit_steps(obs, _models(obs), source=source or f"splitwise {hardware}"), obs


def _errors(fit, rows: pd.DataFrame) -> dict:
    obs = _obs(rows)
    rel = predict_steps(obs, fit.coeffs, _models(obs)) / np.array([o.measured_s for o in obs]) - 1
    kinds = np.array([o.kind for o in obs])
    return {"prefill": error_stats(rel[kinds == "prefill"]), "decode": error_stats(rel[kinds == "decode"])}


def leave_out(steps: pd.DataFrame, hardware: str) -> dict:
    """Held-out errors: leave one model out, and leave Llama-2-70B TP 4 out."""
    rows = steps[steps["hardware"] == hardware]
    out = {}
    for held in MODELS:
        fit, _ = fit_hardware(steps, hardware, lambda r, h=held: r["model"] != h)
        out[f"train_without_{held}"] = _errors(fit, rows[rows["model"] == held])
    is_tp4 = (rows["model"] == "llama2-70b") & (rows["tensor_parallel"] == 4)
    fit, _ = fit_hardware(steps, hardware, lambda r: ~((r["model"] == "llama2-70b") & (r["tensor_parallel"] == 4)))
    out["train_without_llama2-70b_tp4"] = _errors(fit, rows[is_tp4])
    return out


def build_profile(steps: pd.DataFrame, hardware: str, name: str, csv: Path = DEFAULT_CSV) -> dict:
    """The profile JSON of one hardware: fit on all its rows, held-out errors in ``validation``."""
    fit, obs = fit_hardware(steps, hardware, source=f"profile {name}")
    rows = steps[steps["hardware"] == hardware]
    held = leave_out(steps, hardware)
    in_sample = _errors(fit, rows)
    tp4 = held["train_without_llama2-70b_tp4"]
    lomo = max(held[f"train_without_{m}"][k]["median_abs_pct"] for m in MODELS for k in ("prefill", "decode"))
    return {
        "name": name,
        "coefficients": coeff_dict(fit.coeffs),
        "provenance": {
            "kind": "public measurements (no testbed run)",
            "data": str(csv.name),
            "attribution": ATTRIBUTION,
            "licence": "MIT",
            "hardware": hardware,
            "catalog_gpu": HARDWARE[hardware],
            "models": sorted(rows["model"].unique().tolist()),
            "tensor_parallel": sorted(int(t) for t in rows["tensor_parallel"].unique()),
            "engine": "Splitwise's measurement harness (fp16, no chunked prefill, one prefill batch per step)",
            "quantization": "fp16 weights and KV (catalog scheme bf16: same bytes and peak)",
            "catalog": "calibration/catalog-splitwise.yaml",
            "configurations": int(len(rows)),
            "observations": len(obs),
            "dropped_below_roofline": [
                f"{r.model} {r.hardware} tp{r.tensor_parallel} p{r.prompt_size} b{r.batch_size} o{r.token_size}"
                for r in rows[below_roofline(rows)].itertuples()
            ],
            "date": today(),
            "fitted_coefficients": list(fit.fitted),
            "fit_error": in_sample,
            "method": "calibration.fit.fit_steps: least squares on log(pred/measured) of every median "
            "prefill (prompt_time) and decode step (token_time), soft-L1 loss, bounded",
        },
        "validation": {
            "summary": f"step-time median |error| on held-out Llama-2-70B TP4: prefill "
            f"{tp4['prefill']['median_abs_pct']}%, decode {tp4['decode']['median_abs_pct']}%; "
            f"leave-one-model-out up to {lomo:.1f}%; in-sample prefill "
            f"{in_sample['prefill']['median_abs_pct']}%, decode {in_sample['decode']['median_abs_pct']}%",
            "metric": "relative error of predicted step time (prefill prompt_time, decode token_time)",
            "held_out": held,
        },
        "fitted_range": {
            "gpu": HARDWARE[hardware],
            "model": None,
            "quantization": "bf16",
            "max_prompt_tokens": int(rows["prompt_size"].max()),
            "max_batch": int(rows["batch_size"].max()),
            "tensor_parallel": sorted(int(t) for t in rows["tensor_parallel"].unique()),
            "models": [MODELS[m] for m in sorted(rows["model"].unique())],
        },
    }
