"""Fit the CPU-side constants (``sim.perf.cpu_side``) to ``calibration/cpu_side_measure.py`` output.

- Per step: the engine-core thread's CPU seconds of a step (``step_cpu_s`` of ``steps.csv``:
  scheduling, the hand-off to the worker and the wait for it, ``update_from_output``) and
  the model worker's CPU seconds outside the model's forward pass (``steps.csv.worker``:
  ``execute_model`` less ``_model_forward``: input preparation) are each regressed, by least
  squares, on ``1, num_reqs, num_tokens``: ``cpu = a + b·num_reqs + c·num_tokens``, and
  summed. A decode is one request with one token, so fleetcast's ``t_seq_s = b + c``,
  ``t_prefill_tok_s = c`` and ``t_step_s = a``. ``sample_tokens`` is reported, not counted
  (on the CPU testbed it is the sampler's tensor math, which a GPU host runs on the GPU).
- API server, per request, prompt token and output token: its process CPU seconds per burst
  regressed on (requests, prompt tokens, output tokens) with no intercept.

Thread and process CPU time, not wall time: the testbed shares two cores with other work,
which stretches wall times but not the CPU a process spends.

    python -m calibration.cpu_side_fit RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["fit_steps", "fit_front_end", "main"]


def _worker_rows(path: Path) -> pd.DataFrame:
    cols = ["call", "t_s", "num_reqs", "num_tokens", "wall_s", "cpu_s", "forward_s", "forward_cpu_s"]
    return pd.read_csv(path, names=cols)


def _lstsq(num_reqs, num_tokens, y) -> dict:
    x = np.column_stack([np.ones(len(y)), num_reqs, num_tokens])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    err = np.abs(x @ coef - y) / np.maximum(y, 1e-9)
    return {
        "rows": len(y),
        "a_s": float(coef[0]),
        "b_s_per_req": float(coef[1]),
        "c_s_per_token": float(coef[2]),
        "median_abs_error_pct": float(np.median(err) * 100),
    }


def fit_steps(steps: pd.DataFrame, worker: pd.DataFrame) -> dict:
    """``cpu = a + b·num_reqs + c·num_tokens`` of each CPU part of a step: the engine-core
    thread (``steps``: one row per step, all runs) and the worker's input preparation
    (``worker``: ``execute_model`` rows, CPU outside ``_model_forward``). ``sample_tokens``
    (the sampler's tensor math, which a GPU host runs on the GPU) is fitted and reported
    but not part of the total."""
    ex = worker[worker.call == "execute_model"]
    sa = worker[worker.call == "sample_tokens"]
    core = _lstsq(steps.num_reqs, steps.num_tokens, steps.step_cpu_s.to_numpy())
    prep = _lstsq(ex.num_reqs, ex.num_tokens, (ex.cpu_s - ex.forward_cpu_s).to_numpy())
    # a sample_tokens row follows its execute_model row: it has that step's counts
    sa_counts = ex.reindex(sa.index - 1)
    ok = sa_counts.num_reqs.notna().to_numpy()
    sample = _lstsq(sa_counts.num_reqs[ok], sa_counts.num_tokens[ok], sa.cpu_s.to_numpy()[ok])
    total = {k: core[k] + prep[k] for k in ("a_s", "b_s_per_req", "c_s_per_token")}
    return {
        "engine_core_thread": core,
        "worker_input_prep": prep,
        "worker_sample_tokens_not_counted": sample,
        "total": total,
        "fleetcast": {
            "t_step_s": total["a_s"],
            "t_seq_s": total["b_s_per_req"] + total["c_s_per_token"],
            "t_prefill_tok_s": total["c_s_per_token"],
        },
        "max_num_reqs": int(steps.num_reqs.max()),
    }


def fit_front_end(bursts: list[dict]) -> dict:
    """API-server CPU seconds per request, per prompt token and per output token (least
    squares, no intercept)."""
    x = np.array([[b["completed"], b["prompt_tokens"], b["output_tokens"]] for b in bursts], dtype=float)
    y = np.array([b["api_server_cpu_s"] for b in bursts])
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    pred = x @ coef
    return {
        "bursts": len(bursts),
        "request_s": float(coef[0]),
        "prompt_tok_s": float(coef[1]),
        "token_s": float(coef[2]),
        "max_abs_error_pct": float(np.max(np.abs(pred - y) / y) * 100),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args(argv)
    bursts: list[dict] = []
    steps, workers = [], []
    for run in args.runs:
        bursts += json.loads((run / "bursts.json").read_text())
        steps.append(pd.read_csv(run / "steps.csv"))
        if (run / "steps.csv.worker").exists():
            workers.append(_worker_rows(run / "steps.csv.worker"))
    out = {
        "steps": fit_steps(pd.concat(steps, ignore_index=True), pd.concat(workers, ignore_index=True)),
        "front_end": fit_front_end(bursts),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
