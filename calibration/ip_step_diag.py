"""inference-perf's V1 sets (Llama-3.1-8B, one H100, vLLM 0.11.0), entry by entry: where the forecast's
per-step time and its TTFT tail part from the measurement (issues 23/24; calibration/README.md, "inference-perf:
the per-step shape and the TTFT p90 tail"). A diagnosis: it fits nothing and changes no constant.

Three parts, all from the shipped model (no profile, what ``bench/public_gpu.py`` replays):

1. per entry of ``calibration/public/inference-perf``: measured / forecast TTFT p50 and p90, E2E p50, and the
   decode time per output token, (E2E p50 - TTFT p50) / (output - 1), measured and forecast;
2. the model's decode step on that pool, split into its GPU part (linear layers, LM head, decode attention:
   fixed, per sequence, per context token) and its serial CPU part (``t_step_s`` + ``t_seq_s`` per
   sequence), at batches 1 to 128, and what a step with prefills adds to it;
3. the client-capped stages (closed loops of 440 clients): the replay's TTFT distribution (quantiles and a
   histogram), beside the measured quantiles.

    python -m calibration.ip_step_diag
"""

from __future__ import annotations

import numpy as np

from calibration.public_corpus import discover, replay_entry
from calibration.runs import run_scenario
from calibration.validate import replay_run
from sim.perf.pool_model import build_pool_models

__all__ = ["V1_SETS", "OUTPUT_TOKENS", "CONTEXT_TOKENS", "entry_lines", "step_lines", "capped_lines", "main"]

V1_SETS = ("vllm", "vllm-batch_size", "vllm-chunking_and_prefix_caching")
OUTPUT_TOKENS = 64  # every request's output (ignore_eos; calibration/public/inference-perf/README.md)
CONTEXT_TOKENS = 235  # a decode's mean context: ~204 prompt tokens + half of the 64 outputs
BATCHES = (1, 4, 8, 16, 22, 32, 64, 85, 128)


def _ms(x: float | None) -> str:
    return "      -" if x is None else f"{x * 1e3:7.1f}"


def _decode_ms(side: dict) -> float | None:
    """Seconds per output token after the first: (E2E p50 - TTFT p50) / (output - 1)."""
    e2e, ttft = side.get("e2e_p50_s"), side.get("ttft_p50_s")
    return None if e2e is None or ttft is None else (e2e - ttft) / (OUTPUT_TOKENS - 1)


def entry_lines(entries) -> list[str]:
    """Part 1: one line per entry (ms; error % in brackets)."""
    out = [
        "set / entry | offered req/s | TTFT p50 meas/fc (err %) | TTFT p90 meas/fc (err %) | "
        "E2E p50 meas/fc (err %) | decode ms/token meas/fc"
    ]
    for e in entries:
        r = replay_entry(e)
        m, f, err = r["measured"], r["forecast"], r["error_pct"]
        cells = [f"{_ms(m.get(k))}/{_ms(f.get(k))} ({err.get(k)})" for k in ("ttft_p50_s", "ttft_p90_s", "e2e_p50_s")]
        dm, df = _decode_ms(m), _decode_ms(f)
        dec = "-" if dm is None or df is None else f"{dm * 1e3:.2f}/{df * 1e3:.2f}"
        out.append(f"{e.set}/{e.name.rsplit('/', 1)[1]} | {r['offered_rps']} | " + " | ".join(cells) + f" | {dec}")
    return out


def step_lines(entry) -> list[str]:
    """Part 2: the model's step on ``entry``'s pool, GPU and CPU parts (ms)."""
    pm = build_pool_models(run_scenario(entry.load(), None))[0]
    p = pm.perf
    out = [
        f"pool: {pm.model.name} on {pm.gpu.name} ({entry.set})",
        f"CPU side: t_step {pm.cpu.t_step_s * 1e3:.2f} ms + t_seq {pm.cpu.t_seq_s * 1e6:.1f} us/sequence, "
        f"serial: {not p.cpu_overlap}",
        "batch | step | GPU | CPU (ms), decode-only, context "
        f"{CONTEXT_TOKENS} | + one 10-token prefill | + one 205-token prefill | + two 205-token prefills",
    ]
    for n in BATCHES:
        ctx = n * CONTEXT_TOKENS
        d = p.step_time_s(0, 0.0, n, ctx)
        cpu = p.step_cpu_s(n, 0, 0)
        adds = []
        for k, q in ((1, 10), (1, 205), (2, 205)):
            cached = 205 - q
            adds.append(p.step_time_s(k * q, k * q * (cached + q / 2), n, ctx, num_prefill_seqs=k) - d)
        out.append(
            f"{n:5d} | {d * 1e3:6.2f} | {(d - cpu) * 1e3:6.2f} | {cpu * 1e3:5.2f} | "
            + " | ".join(f"+{a * 1e3:.2f}" for a in adds)
        )
    return out


def capped_lines(entry) -> list[str]:
    """Part 3: a client-capped stage's replayed TTFT distribution against the measured quantiles."""
    run = entry.load()
    req = replay_run(run, None).requests
    ttft = req[req["request_id"] >= int(run.meta.get("warmup_requests", 0))]["ttft_s"].to_numpy()
    q = np.percentile(ttft, [10, 50, 90, 99])
    counts, edges = np.histogram(ttft, bins=12)
    meas = run.meta["aggregate_measured"]
    return [
        f"{entry.set}/{entry.name.rsplit('/', 1)[1]}: measured TTFT p50/p90/p99 "
        + "/".join(f"{meas.get(k, float('nan')):.3f}" for k in ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s"))
        + " s; replayed p10/p50/p90/p99 "
        + "/".join(f"{v:.3f}" for v in q)
        + " s",
        "  replayed histogram (s: count): "
        + ", ".join(f"{lo:.2f}-{hi:.2f}: {c}" for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True) if c),
    ]


def main() -> int:
    entries = [e for e in discover() if e.source == "inference-perf"]
    print("\n".join(entry_lines(entries)))
    first = next(e for e in entries if e.set == "vllm")
    print()
    print("\n".join(step_lines(first)))
    print()
    for e in entries:
        if e.set in V1_SETS and e.load().meta.get("closed_loop"):
            print("\n".join(capped_lines(e)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
