"""Uncalibrated step times against real GPU step timings (Splitwise).

Splitwise (Mutinifni/splitwise-sim data/perf_model.csv, commit 3b5a5941, MIT;
Patel et al., ISCA 2024) measured prefill steps and mean decode steps of
Llama-2-70B (fp16, TP 2/4/8) on A100-80GB and H100-80GB; fleetcast ships the
medians (calibration/data/splitwise-medians.csv). This script predicts every
row with the performance model as a pool without a calibration profile gets
it -- measured vLLM kernels where aiconfigurator-core has the GPU, and the
roofline at the architecture's efficiencies with the kernel data switched off
-- and prints the error per GPU, phase and TP. Nothing here is fitted to
these rows. Splitwise's harness (2023) predates vLLM's CUDA graphs and v1
scheduler, so its per-step overheads are larger than today's vLLM's: the
table says how far fleetcast's forecast of a modern engine is from that
harness, not an accuracy bound.

    python bench/gpu_steps.py [--out bench/results/gpu_steps.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.splitwise import ATTRIBUTION, CATALOG, _obs, load_steps  # noqa: E402
from sim.catalog import load_catalog  # noqa: E402
from sim.perf.step_source import pool_perf_model  # noqa: E402
from sim.scenario.spec import scenario_from_dict  # noqa: E402

HARDWARE = ("a100-80gb", "h100-80gb")  # Splitwise's names; the power-capped H100 is left out


def _pool(catalogs: list[str], gpu: str, model: str, weights: str, kv: str, tp: int):
    sc = scenario_from_dict({
        "name": "gpu-steps", "catalog": catalogs,
        "fleet": [{"name": "p", "gpu": gpu, "replicas": 1, "model": model, "tensor_parallel": tp,
                   "quantization": {"weights": weights, "kv_cache": kv}, "engine": {"max_model_len": 4096}}],
        "traffic": {"duration_s": 10, "arrival": {"process": "poisson", "rate_rps": 1},
                    "classes": [{"name": "a", "share": 1, "prompt_tokens": {"dist": "fixed", "value": 8},
                                 "output_tokens": {"dist": "fixed", "value": 8}}]}})
    cat = load_catalog([Path(c) for c in catalogs])
    return pool_perf_model(sc.fleet[0], sc.base_dir, cat.gpu(gpu), cat.model(model), cat.quant(weights, kv))


def predict(steps: pd.DataFrame, catalogs: list[str]) -> pd.DataFrame:
    rows, models = [], {}
    for hw in HARDWARE:
        for o in _obs(steps[steps["hardware"] == hw], check=False):
            if o.key not in models:
                models[o.key] = _pool(catalogs, *o.key[:5])
            pm = models[o.key]
            pred = sum(w * pm.step_time_s(*args) for w, *args in o.parts)
            rows.append({"hardware": hw, "phase": o.kind, "tp": int(o.key[4]), "measured_ms": o.measured_s * 1e3,
                         "predicted_ms": pred * 1e3, "source": pm.source.split(";")[0]})
    out = pd.DataFrame(rows)
    out["error_pct"] = 100.0 * (out["predicted_ms"] / out["measured_ms"] - 1.0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench/results/gpu_steps.json")
    a = ap.parse_args()
    steps = load_steps()
    steps = steps[steps["model"] == "llama2-70b"]
    with tempfile.TemporaryDirectory() as tmp:
        off = Path(tmp) / "no-kernels.yaml"
        off.write_text("gpus:\n  h100-sxm: {kernel_data: ''}\n  a100-80gb: {kernel_data: ''}\n")
        variants = {"measured kernels": predict(steps, [str(CATALOG)]),
                    "roofline, architecture efficiencies": predict(steps, [str(CATALOG), str(off)])}
    table = []
    for name, df in variants.items():
        for (hw, phase, tp), g in df.groupby(["hardware", "phase", "tp"]):
            table.append({"model_source": name, "hardware": hw, "phase": phase, "tp": tp, "rows": len(g),
                          "median_error_pct": float(np.median(g["error_pct"])),
                          "median_abs_error_pct": float(np.median(g["error_pct"].abs()))})
    print(f"Llama-2-70B step times, uncalibrated fleetcast vs Splitwise measurements ({ATTRIBUTION})\n")
    print(f"{'step-time source':<38} {'GPU':<10} {'phase':<8} {'TP':>3} {'rows':>5} {'median err %':>13} "
          f"{'median |err| %':>15}")
    for r in table:
        print(f"{r['model_source']:<38} {r['hardware']:<10} {r['phase']:<8} {r['tp']:>3} {r['rows']:>5} "
              f"{r['median_error_pct']:>13.1f} {r['median_abs_error_pct']:>15.1f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": ATTRIBUTION, "table": table,
                               "sources": {k: sorted(set(v["source"])) for k, v in variants.items()}},
                              indent=2) + "\n")
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
