"""Microbenchmark: the engine-core CPU work of sampling penalties per step (``sim.perf.sampler``).

With repetition, frequency or presence penalties, vLLM's V1 sampler turns every running request's
output token list (a Python list of ints) into one padded int64 tensor each step
(``vllm/v1/sample/ops/penalties.py`` ``_convert_to_tensors`` -> ``vllm/utils``
``make_tensor_with_pad``: ``np.full((rows, longest), pad)``, each row assigned from its list, then
``torch.from_numpy(...)`` pinned, a copy). This times the same numpy work (the pinned copy as a
plain array copy; torch is not needed) on this machine's CPU for batches of 8-512 requests and
reports the seconds per output token of the batch (the padding included) and per context token
(output plus a prompt of ``--prompt`` tokens per request, the quantity the step model has).
Nothing is fitted; ``sim.perf.sampler.PENALTY_CPU_CTX_TOK_S`` is read from the printed table.

    python calibration/penalties_cpu_bench.py [--prompt 212] [--reps 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import numpy as np

#: (requests, mean output tokens so far, the longest request's output so far)
SHAPES = (
    (8, 4000, 16000),
    (32, 4000, 32000),
    (64, 300, 1000),
    (64, 300, 8000),
    (128, 3000, 16000),
    (256, 300, 1000),
    (256, 300, 6000),
    (512, 200, 1000),
    (512, 200, 4000),
    (512, 1000, 2000),
)
PAD = 151_936  # a vocabulary size: vLLM pads with it


def _lists(rng: random.Random, rows: int, mean: int, longest: int) -> list[list[int]]:
    out = [[rng.randrange(PAD) for _ in range(longest)]]
    for _ in range(rows - 1):
        n = max(1, min(longest, int(rng.expovariate(1.0 / mean))))
        out.append([rng.randrange(PAD) for _ in range(n)])
    return out


def time_once(lists: list[list[int]]) -> float:
    """Seconds of one step's conversion: the padded array, each row from its list, the pinned copy."""
    t0 = time.perf_counter()
    longest = max(map(len, lists))
    padded = np.full((len(lists), longest), PAD, dtype=np.int64)
    for i, x in enumerate(lists):
        padded[i, : len(x)] = x
    pinned = np.empty_like(padded)
    np.copyto(pinned, padded)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompt", type=int, default=212, help="prompt tokens per request, for the per-context figure")
    ap.add_argument("--reps", type=int, default=15, help="repetitions per shape (the fastest is kept)")
    args = ap.parse_args(argv)
    rng = random.Random(0)
    per_ctx = []
    print("| requests | output tokens | padded cells | ms (best) | ns / output token | ns / context token |")
    print("|---|---|---|---|---|---|")
    for rows, mean, longest in SHAPES:
        lists = _lists(rng, rows, mean, longest)
        best = min(time_once(lists) for _ in range(args.reps))
        out_tok = sum(map(len, lists))
        ctx_tok = out_tok + rows * args.prompt
        per_ctx.append((rows, best / ctx_tok))
        print(
            f"| {rows} | {out_tok:,} | {rows * longest:,} | {best * 1e3:.2f} | {best / out_tok * 1e9:.1f} | "
            f"{best / ctx_tok * 1e9:.1f} |"
        )
    big = [s for r, s in per_ctx if r >= 128]
    print(
        f"median ns per context token: all shapes {statistics.median(s for _, s in per_ctx) * 1e9:.1f}, "
        f"128-512 requests {statistics.median(big) * 1e9:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
