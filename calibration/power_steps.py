"""The simulator's own step decomposition of each replayed ML.ENERGY v3 configuration, for the power
forms of issue 27 (``calibration/power_forms.py``, "step parts").

    python -m calibration.power_steps [--out /tmp/power_steps.csv]

Each entry of ``calibration/public/ml_energy`` is replayed as ``bench/public_gpu.py`` replays it
(``calibration.validate``: the uncalibrated model ``fleetcast run`` uses for that pool). Over the
replay's steady window (``calibration.steady_state``, the window the source's power is measured
over) its mean engine step is

    t_step = mean running sequences / output tokens per second       (the replay's own figures)

and the step of the window's mean shape (running decodes ``n``, their token-weighted mean context,
prefill tokens, attention pairs and chunks per step from the replayed requests' prompt and output
lengths) is split with the pool's own ``PerfModel`` into

- ``t_kernel``: GPU kernel time less the all-reduces (linear layers, LM head, attention, sampler), with
  every CPU coefficient and the penalties' CPU per context token set to 0;
- ``t_comm``: the all-reduces of that step (the measured-kernel tables' ``comm_s``; 0 at one GPU);
- ``t_gap = t_step - t_kernel - t_comm``: the rest of the step, where the GPUs wait on the CPU side
  (the engine core's scheduling and input preparation, the penalties' CPU work, the API servers'
  batches under async scheduling) — or 0 where the kernels fill the step.

The fractions of the step in each part are what ``power_forms`` fits a per-part power to.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from calibration.penalties_seq_fit import model_split
from calibration.public_corpus import CORPUS, discover, overriding
from calibration.runs import run_scenario
from calibration.steady_state import steady_state_metrics
from sim.engine.fleet import simulate

__all__ = ["SOURCE", "FIELDS", "step_parts", "entry_row", "all_rows", "main"]

SOURCE = "ml_energy"
FIELDS = [
    "set",
    "row",
    "split",
    "gpu",
    "num_gpus",
    "max_num_seqs",
    "measured_power_w",
    "measured_tok_s",
    "measured_itl_p50_s",
    "sim_tok_s",
    "sim_batch",
    "t_step_s",
    "t_kernel_s",
    "t_comm_s",
    "t_gap_s",
    "t_full_mean_shape_s",
    "sim_mfu",
    "sim_mbu",
]


def _table(xs: list, i: float) -> float:
    """A kernel table at (fractional) index ``i``: linear between rows, the last row's slope beyond."""
    n = len(xs)
    if i <= 0:
        return float(xs[0])
    if i < n - 1:
        k = int(i)
        return float(xs[k] + (xs[k + 1] - xs[k]) * (i - k))
    back = (n - 1) // 2
    slope = (xs[n - 1] - xs[n - 1 - back]) / back if back else 0.0
    return float(xs[n - 1] + max(slope, 0.0) * (i - n + 1))


def step_parts(perf, prefill_tok: float, prefill_attn: float, n: float, ctx: float, chunks: float) -> tuple:
    """(kernel s, comm s, full s) of one step of this mean shape on ``perf`` (module doc)."""
    full = perf.step_time_s(prefill_tok, prefill_attn, n, ctx, chunks)
    with overriding(perf, "_b_decode", _t_step_s=0.0, _t_seq_s=0.0, _t_prefill_tok_s=0.0, cpu_overlap=False):
        k = perf.kernels
        if k is not None and len(k.decode_s):
            perf._b_decode = float(k.decode_s[2])
        else:  # the roofline's decode attention, without the penalties' CPU beside it
            perf._b_decode = max(perf._attn_flops_unit * perf._inv_flops_attn, perf._kv_tok * perf._inv_bw_attn)
        gpu = perf.step_time_s(prefill_tok, prefill_attn, n, ctx, chunks)
    comm = 0.0
    if perf.tp > 1:
        k = perf.kernels
        T = prefill_tok + n
        if k is not None and len(k.comm_s) > 1:
            comm = _table(list(k.comm_s), T)
        else:
            comm = perf._comm_fixed + perf._comm_tok * T
    return gpu - comm, comm, full


def _source_power_w(path: Path, row: str) -> float:
    """The source's average power of the burst table's row ``row`` (its ``source_avg_power_w``)."""
    with path.open(newline="") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            if r["name"] == row:
                return float(r["source_avg_power_w"])
    return math.nan


def steady_replay(entry) -> dict | None:
    """Replay one ML.ENERGY entry and read its steady window: ``run``, ``res`` (the replay), ``steady``
    (the entry's window settings), ``tok_s`` and ``batch`` of the replay's window, ``ctx`` (the
    token-weighted mean context of a decode) and ``shape``, the window's mean step as ``PerfModel``
    takes it (prefill tokens, their attention sum, decodes, their context, sampled rows). None when
    the window is empty."""
    run = entry.load()
    res = simulate(run_scenario(run, None), workload=run.workload, api_server=run.api_server)
    steady = run.meta["steady_state"]
    st = steady_state_metrics(res.requests, res.timeseries, int(steady["max_num_seqs"]), int(steady["num_requests"]))
    tok_s, batch = st["output_tok_s"], st["avg_batch_size"]
    if not (math.isfinite(tok_s) and tok_s > 0 and math.isfinite(batch)):
        return None
    req = res.requests
    p = (req["prompt_tokens"] - req["cached_prompt_tokens"]).to_numpy(dtype=float)
    full_p = req["prompt_tokens"].to_numpy(dtype=float)
    o = req["output_tokens"].to_numpy(dtype=float)
    out_tok = o.sum()
    ctx = float((full_p * o + o * o / 2.0).sum() / out_tok)  # token-weighted mean context of a decode
    per_tok = batch / out_tok  # a step makes ~batch output tokens
    shape = (float(p.sum()) * per_tok, float((p * p / 2.0).sum()) * per_tok, batch, batch * ctx, len(req) * per_tok)
    return {"run": run, "res": res, "steady": steady, "tok_s": tok_s, "batch": batch, "ctx": ctx, "shape": shape}


def entry_row(entry, split: dict[str, str]) -> dict | None:
    """The decomposition of one entry (None: its steady window is empty)."""
    sr = steady_replay(entry)
    if sr is None:
        return None
    run, steady, tok_s, batch, shape = sr["run"], sr["steady"], sr["tok_s"], sr["batch"], sr["shape"]
    perf = sr["res"].pools[0].perf
    kern, comm, full = step_parts(perf, *shape)
    t_step = batch / tok_s
    meas = run.meta["aggregate_measured"]
    return {
        "set": entry.set,
        "row": entry.row,
        "split": split[entry.set],
        "gpu": run.gpu,
        "num_gpus": run.tp,
        "max_num_seqs": int(steady["max_num_seqs"]),
        "measured_power_w": _source_power_w(entry.path, entry.row),
        "measured_tok_s": float(meas["output_tok_s"]),
        "measured_itl_p50_s": float(meas["itl_p50_s"]),
        "sim_tok_s": tok_s,
        "sim_batch": batch,
        "t_step_s": t_step,
        "t_kernel_s": kern,
        "t_comm_s": comm,
        "t_gap_s": max(t_step - kern - comm, 0.0),
        "t_full_mean_shape_s": full,
        "sim_mfu": perf.step_flops(*shape) / perf.peak_flops / t_step,
        "sim_mbu": perf.step_bytes(*shape) / perf.hbm_bw_bytes_s / t_step,
    }


def all_rows(root: Path = CORPUS) -> list[dict]:
    """``entry_row`` of every ML.ENERGY entry whose steady window is not empty."""
    split = model_split(root)
    rows = [entry_row(e, split) for e in discover(root) if e.source == SOURCE]
    return [r for r in rows if r is not None]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("power_steps.csv"))
    a = ap.parse_args(argv)
    rows = all_rows()
    with a.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"{len(rows)} rows -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
