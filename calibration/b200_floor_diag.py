"""The B200 one-GPU gpqa floor of ML.ENERGY v3, by hand: measured against replayed time per output
token at every cap, the mean batch of each, and the replay's step split into its parts
(calibration/README.md, "ML.ENERGY v3: the B200 one-GPU gpqa floor").

Nothing is fitted or changed here; the script prints the diagnosis.

For every ML.ENERGY entry on one GPU with the gpqa task (B200, and the H100 sets beside them as the
control: same vLLM 0.11.1 image and arguments, ``configs/vllm/gpqa/<model>/<GPU>/`` of
ml-energy/benchmark @ c1d6557f), the entry is replayed as ``bench/public_gpu.py`` replays it and

- the time per output token of one sequence, ``mean batch / output tok/s``, measured (the source's
  ``avg_batch_size`` and ``output_throughput_tokens_per_sec``) and replayed (the replay's steady
  window, ``calibration.steady_state``); their difference is the *excess* per step;
- the replay's step of the window's mean shape (``calibration.power_steps``) split with the pool's own
  ``PerfModel`` into the linear layers and LM head (the rest of the GPU time), decode attention (the
  measured decode-attention kernel rows: ``decode_ctx_tokens x decode_ctx_b_s`` plus their per-step and
  per-sequence terms), the sampler's GPU rows and the penalties' row cost (``sim.perf.sampler``), and the
  engine core's CPU (``step_cpu_s``; overlapped under async scheduling).

    python -m calibration.b200_floor_diag
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from calibration import power_fit
from calibration.power_steps import steady_replay, step_parts
from calibration.public_corpus import discover

__all__ = [
    "CONFIGS",
    "per_token_ms",
    "attention_s",
    "is_diag_set",
    "entry_diag",
    "set_summary",
    "itl_spread",
    "read_configs",
    "power_sensitivity",
    "main",
]

CONFIGS = Path(__file__).resolve().parent / "public" / "ml_energy" / "configs.csv"
#: the caps the spread is read at: small batches, where a step is short and a wait shows
SPREAD_MAX_CAP = 32


def per_token_ms(batch: float, tok_s: float) -> float:
    """Milliseconds between two tokens of one running sequence: ``batch / tok_s`` (a step makes one token
    per running sequence)."""
    if not (tok_s > 0 and math.isfinite(tok_s) and math.isfinite(batch)):
        return math.nan
    return batch / tok_s * 1e3


def attention_s(perf, n: float, ctx_tokens: float) -> float:
    """Decode attention kernels of a step of ``n`` decodes over ``ctx_tokens`` cached tokens on ``perf``:
    the measured kernel's per-step and per-sequence terms plus its per-context-token term (the roofline's
    where the tables have no decode rows), without the penalties' CPU per context token that the
    ``PerfModel`` folds into the same term (``sim.perf.sampler``)."""
    k = perf.kernels
    if perf._kdec and k is not None and len(k.decode_s):
        return float(k.decode_s[0]) + float(k.decode_s[1]) * n + float(k.decode_s[2]) * ctx_tokens
    b = max(perf._attn_flops_unit * perf._inv_flops_attn, perf._kv_tok * perf._inv_bw_attn)
    return b * ctx_tokens


def is_diag_set(set_name: str) -> bool:
    """The sets this diagnosis reads: one GPU, gpqa, on a B200 or an H100 (the converter's set names,
    ``<gpu>-<model>-<task>-x<GPUs>``)."""
    return set_name.endswith("-gpqa-x1") and set_name.startswith(("b200-", "h100-sxm-"))


def entry_diag(entry) -> dict | None:
    """The diagnosis of one entry (None: the replay's steady window is empty)."""
    sr = steady_replay(entry)
    if sr is None:
        return None
    run, steady, tok_s, batch, ctx, shape = sr["run"], sr["steady"], sr["tok_s"], sr["batch"], sr["ctx"], sr["shape"]
    perf = sr["res"].pools[0].perf
    kern, _comm, full = step_parts(perf, *shape)
    attn = attention_s(perf, batch, batch * ctx)
    sampler = perf._sampler_row_s * (batch + shape[4])
    meas = run.meta["aggregate_measured"]
    m_tok = per_token_ms(float(meas["avg_batch_size"]), float(meas["output_tok_s"]))
    r_tok = per_token_ms(batch, tok_s)
    return {
        "set": entry.set,
        "row": entry.row,
        "gpu": run.gpu,
        "layers": perf.model.num_layers,
        "cap": int(steady["max_num_seqs"]),
        "measured_batch": float(meas["avg_batch_size"]),
        "replay_batch": batch,
        "measured_ms": m_tok,
        "replay_ms": r_tok,
        "excess_ms": m_tok - r_tok,
        "mean_ctx_tok": ctx,
        "gemm_ms": (kern - attn - sampler) * 1e3,
        "attention_ms": attn * 1e3,
        "sampler_ms": sampler * 1e3,
        "cpu_ms": perf.step_cpu_s(batch, shape[4], shape[0]) * 1e3,
        "mean_shape_ms": full * 1e3,
    }


def set_summary(rows: list[dict]) -> dict:
    """Per set: the median, smallest and largest excess (ms) and the excess's change per running sequence
    (least squares over the caps, µs per sequence; NaN with one cap)."""
    xs = [r["measured_batch"] for r in rows]
    ys = [r["excess_ms"] for r in rows]
    slope = math.nan
    if len(rows) > 1:
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx > 0:
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx * 1e3
    return {"median_ms": statistics.median(ys), "min_ms": min(ys), "max_ms": max(ys), "slope_us_per_seq": slope}


def read_configs(path: Path = CONFIGS) -> list[dict]:
    """The rows of ``configs.csv`` (every published LLM configuration, replayable or not)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def itl_spread(configs: list[dict], max_cap: int = SPREAD_MAX_CAP) -> dict[tuple[str, str, str], dict]:
    """(GPU, ``one`` or ``several`` GPUs, task) -> the count, median, smallest and largest ITL p90 / p50 of
    the gpqa and lm-arena-chat configurations with ``max_num_seqs <= max_cap``: how much one server's
    steps vary, from the source's own percentiles."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in configs:
        if r["task"] not in ("gpqa", "lm-arena-chat") or int(r["max_num_seqs"]) > max_cap:
            continue
        p50 = float(r["median_itl_ms"])
        if not p50 > 0:
            continue
        key = (r["gpu_model"], "one" if int(r["num_gpus"]) == 1 else "several", r["task"])
        groups.setdefault(key, []).append(float(r["p90_itl_ms"]) / p50)
    return {
        k: {"n": len(v), "median": statistics.median(v), "min": min(v), "max": max(v)}
        for k, v in sorted(groups.items())
    }


def power_sensitivity(configs: list[dict]) -> dict[str, float]:
    """The shipped B200 power law (``calibration.power_fit``, fitted on the train split) on the one-GPU B200
    gpqa rows and without them, and the same law refitted without those rows (a sensitivity, not shipped):
    mean |error| of average power, %."""

    def mean_abs(rows: list[dict], f) -> float:
        return 100.0 * statistics.fmean(abs(power_fit.predict_w(f, r) / float(r["avg_power_w"]) - 1.0) for r in rows)

    floor = [r for r in configs if r["gpu_model"] == "B200" and r["num_gpus"] == "1" and r["task"] == "gpqa"]
    b200 = [r for r in configs if r["gpu_model"] == "B200"]
    train = [r for r in b200 if r["split"] == "train"]
    held = [r for r in b200 if r["split"] == "held_back"]
    shipped = power_fit.fit(configs)["b200"]
    refit = power_fit.fit([r for r in configs if not (r in floor and r["split"] == "train")])["b200"]
    return {
        "floor_rows": float(len(floor)),
        "floor_rows_shipped": mean_abs(floor, shipped),
        "train_shipped": mean_abs(train, shipped),
        "train_without_floor_shipped": mean_abs([r for r in train if r not in floor], shipped),
        "held_back_shipped": mean_abs(held, shipped),
        "held_back_refit_without_floor": mean_abs(held, refit),
        "refit_intercept_w": refit.active_w,
        "shipped_intercept_w": shipped.active_w,
    }


def main() -> None:
    rows = [
        d
        for e in discover()
        if e.source == "ml_energy" and is_diag_set(e.set)
        for d in [entry_diag(e)]
        if d is not None
    ]
    print(
        "| set | cap | batch meas. / replay | ms per token meas. / replay | excess | mean context "
        "| replay step: GEMMs + LM head | attention | sampler | engine-core CPU (overlapped) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['set']} | {r['cap']} | {r['measured_batch']:.1f} / {r['replay_batch']:.1f} "
            f"| {r['measured_ms']:.1f} / {r['replay_ms']:.1f} | {r['excess_ms']:+.1f} | {r['mean_ctx_tok']:.0f} "
            f"| {r['gemm_ms']:.2f} | {r['attention_ms']:.2f} | {r['sampler_ms']:.2f} | {r['cpu_ms']:.2f} |"
        )
    print()
    print("| set | layers | caps | excess median (min..max), ms | excess per running sequence, µs |")
    print("|---|---|---|---|---|")
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        s = set_summary(mine)
        print(
            f"| {name} | {mine[0]['layers']} | {len(mine)} | {s['median_ms']:+.1f} ({s['min_ms']:+.1f}..{s['max_ms']:+.1f}) "
            f"| {s['slope_us_per_seq']:+.0f} |"
        )
    print()
    print(f"ITL p90 / p50 of every published configuration at caps <= {SPREAD_MAX_CAP} (configs.csv):")
    print("| GPU | GPUs per server | task | configurations | median | range |")
    print("|---|---|---|---|---|---|")
    for (gpu, gpus, task), sp in itl_spread(read_configs()).items():
        print(f"| {gpu} | {gpus} | {task} | {sp['n']} | {sp['median']:.2f} | {sp['min']:.2f}..{sp['max']:.2f} |")
    print()
    print("B200 power law (calibration.power_fit), mean |error| of average power, %:")
    for key, pct in power_sensitivity(read_configs()).items():
        print(f"  {key}: {pct:.1f}")


if __name__ == "__main__":
    main()
