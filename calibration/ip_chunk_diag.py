"""Why inference-perf's chunked-prefill + prefix-caching set was its worst (issues 23/24; calibration/README.md,
"inference-perf's prefix-caching set and V1 steps past the largest CUDA graph"). A diagnosis: it fits nothing
and changes no constant.

The three V1 sets (Llama-3.1-8B, one H100, vLLM 0.11.0) differ in one thing that matters to the step: how
many prompt tokens a request computes. Without prefix caching every request prefills its whole prompt
(~204 tokens); with it, each of the workload's 100 prompts is sent over and over, so a request computes only
what follows its last cached full block (vLLM's ``KVCacheManager.get_computed_blocks``: at most
``num_tokens - 1`` tokens hit, in whole blocks): ~11 tokens. Its steps are almost pure decode.

Per entry, from the measured percentiles alone (no replay):

- the decode step, ``(E2E p50 - TTFT p50) / (output - 1)``;
- the requests in their decode phase, by Little's law: achieved rate x (E2E p50 - TTFT p50);
- the prompts admitted per step: achieved rate x step, each computing ``computed_tokens`` tokens.

Then the model's step (``PerfModel.step_time_s``, what the replay uses) at that same composition, and the
replay's own decode step. The model at the measured composition separates the step model from queueing:

    python -m calibration.ip_chunk_diag
"""

from __future__ import annotations

import csv
import math

from calibration.public_corpus import discover, replay_entry
from calibration.runs import run_scenario
from calibration.validate import replay_run
from sim.perf.pool_model import build_pool_models

__all__ = ["V1_SETS", "computed_tokens", "composition", "mixed_step_s", "stage_lines", "main"]

V1_SETS = ("vllm", "vllm-batch_size", "vllm-chunking_and_prefix_caching")
OUTPUT_TOKENS = 64  # every request's output (ignore_eos; calibration/public/inference-perf/README.md)
BLOCK_TOKENS = 16  # the sidecars' block_size


def computed_tokens(prompt: float, prefix_tokens: int | None, block: int = BLOCK_TOKENS) -> float:
    """Prompt tokens a request computes, as the replay's prefix chain gives them: all of them without a cached
    prefix; with one, those after the last full block of ``min(prefix_tokens, prompt - 1)`` tokens (the last
    token is always computed)."""
    if not prefix_tokens:
        return prompt
    return prompt - block * math.floor(min(prefix_tokens, prompt - 1) / block)


def composition(rate_rps: float, ttft_s: float, e2e_s: float, output: int = OUTPUT_TOKENS) -> tuple:
    """``(step_s, decoding, prompts_per_step)`` of a stage from its measured medians: the decode step
    ``(E2E - TTFT) / (output - 1)``, the requests decoding ``rate x (E2E - TTFT)`` (Little's law; at least the
    one whose step it is) and the prompts admitted per step ``rate x step``."""
    decode_s = e2e_s - ttft_s
    step_s = decode_s / (output - 1)
    return step_s, max(1.0, rate_rps * decode_s), rate_rps * step_s


def mixed_step_s(perf, decoding: float, prompts: float, tokens: float, context: float) -> float:
    """The model's mean step with ``decoding`` decodes of ``context`` tokens each and ``prompts`` prompt
    chunks of ``tokens`` new tokens per step (on top of the cached rest of a ~``context``-token prompt):
    the two whole counts around each fractional count, weighted."""
    out = 0.0
    n0, k0 = math.floor(decoding), math.floor(prompts)
    for n, wn in ((n0, 1 - (decoding - n0)), (n0 + 1, decoding - n0)):
        for k, wk in ((k0, 1 - (prompts - k0)), (k0 + 1, prompts - k0)):
            if wn * wk == 0:
                continue
            q = round(k * tokens)
            cached = max(0.0, context - 32 - tokens)  # the chunk's prompt less its new tokens (context: +32)
            attn = k * tokens * (cached + tokens / 2)
            out += wn * wk * perf.step_time_s(q, attn, n, round(n * context), num_prefill_seqs=k)
    return out


def _achieved(entry) -> float:
    with entry.path.open() as f:
        row = next(r for r in csv.DictReader(f) if r["name"] == entry.row)
    return float(row["achieved_rate_rps"])


def _replayed_rate(entry) -> float:
    """A closed loop's replayed throughput: its measured requests over their span."""
    run = entry.load()
    req = replay_run(run, None).requests
    kept = req[req["request_id"] >= int(run.meta.get("warmup_requests", 0))]
    return len(kept) / float(kept["finish_s"].max() - kept["arrival_s"].min())


def stage_lines(entries) -> list[str]:
    """One line per entry (ms; signed errors %)."""
    out = [
        "set/stage | req/s achieved | decoding | prompts/step x tokens | step ms: measured / model at that mix "
        "(err %) / replay (err %) | t_seq for no error, us | E2E p50 err % | TTFT p50 err % | "
        "closed loop: req/s measured / replayed"
    ]
    perf = None
    for e in entries:
        run = e.load()
        if perf is None:
            perf = build_pool_models(run_scenario(run, None))[0].perf
        m = run.meta["aggregate_measured"]
        load = run.meta["aggregate_load"]
        rate = _achieved(e)
        prompt = float(load["prompt_tokens"].split("mean ")[1].split(",")[0])
        q = computed_tokens(prompt, load.get("prefix_tokens") if run.engine["enable_prefix_caching"] else None)
        step, n, k = composition(rate, m["ttft_p50_s"], m["e2e_p50_s"])
        model = mixed_step_s(perf, n, k, q, prompt + OUTPUT_TOKENS / 2)
        r = replay_entry(e)
        f = r["forecast"]
        rstep = (f["e2e_p50_s"] - f["ttft_p50_s"]) / (OUTPUT_TOKENS - 1)
        closed = f" | {rate:.1f} / {_replayed_rate(e):.1f}" if run.meta.get("closed_loop") else ""
        # the CPU side's per-sequence term that would close the gap at this mix (it is paid per decode and chunk)
        t_seq = perf._t_seq_s - (model - step) / (n + k)
        out.append(
            f"{e.set}/{e.row} | {rate:.1f} | {n:.0f} | {k:.2f} x {q:.0f} | {step * 1e3:.2f} / {model * 1e3:.2f} "
            f"({(model / step - 1) * 100:+.1f}) / {rstep * 1e3:.2f} ({(rstep / step - 1) * 100:+.1f}) | {t_seq * 1e6:+.1f} | "
            f"{r['error_pct']['e2e_p50_s']:+.1f} | {r['error_pct']['ttft_p50_s']:+.1f}{closed}"
        )
    return out


def main() -> int:
    entries = [e for e in discover() if e.source == "inference-perf" and e.set in V1_SETS]
    print("\n".join(stage_lines(entries)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
