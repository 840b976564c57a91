"""Fit ``sim.perf.cpu_side.FE_TOKEN_V1_GPU_HOST_S``: a V1 vLLM API server's CPU per output token on a
GPU host (``fe_token_s``: output processing, detokenization, the streamed chunk; ``sim.perf.cpu_side``
says why the CPU testbed's 84.2 µs is not taken there).

What is fitted. vLLM 0.11 stamps its server-side TTFT (the ``vllm:time_to_first_token_seconds``
histogram) when the API server's ``output_handler`` takes a step's outputs, before it processes them
(``vllm/v1/engine/async_llm.py``; ``vllm/v1/metrics/stats.py``), and a new request's first token is
sent after the step's whole batch (``sim.engine.front_end``, ``CpuSide.first_tokens_last``). So per
stage the client's TTFT p50 less the server's, less the API server's admission work
(``fe_request_s + fe_prompt_tok_s`` x the mean prompt), is ``c + fe_token_s x running``: ``c`` the
client's own time (``client_overhead_s``), ``running`` the requests in flight (Little's law: achieved
rate x mean request latency). The fit is the ordinary least-squares slope of that gap on ``running``.

Training split (declared in calibration/README.md, Protocol item 2): stages 1-3 of inference-perf's
``vllm`` configuration (Llama-3.1-8B on one H100, vLLM 0.11.0), the stages whose gap already sets
``client_overhead_s`` (stage 0's histogram window holds another load; stages 4-6 are client-capped, the
server's queue inside the histogram). The rate stages of the other V1 configurations are held out and
printed with the gap the fit leaves (``calibration/public/inference-perf/server_ttft.csv``, written by
that folder's ``convert.py`` from the source).

    python -m calibration.fe_token_fit
"""

from __future__ import annotations

import csv
from pathlib import Path

from sim.perf.cpu_side import CPU_SIDE_GPU_HOST

__all__ = ["TABLE", "TRAINING", "HELD_OUT", "Stage", "read_stages", "admission_s", "fit_slope", "main"]

TABLE = Path(__file__).resolve().parent / "public" / "inference-perf" / "server_ttft.csv"
TRAINING = ("vllm", (1, 2, 3))
#: the held-out V1 configurations' rate stages with a server-side window of their own (README of the set)
HELD_OUT = (("vllm+batch_size", (1, 2, 3)), ("vllm+chunking_and_prefix_caching", (1, 2, 3, 4)))

Stage = tuple[str, int, float, float]  # configuration, stage, running requests, gap (s) less admission


def admission_s(prompt_tokens: float) -> float:
    """The API server's admission work for one request (what fleetcast counts before the engine)."""
    return CPU_SIDE_GPU_HOST.fe_request_s + CPU_SIDE_GPU_HOST.fe_prompt_tok_s * prompt_tokens


def read_stages(path: Path = TABLE) -> list[Stage]:
    """Every row of ``path``: (configuration, stage, running, client TTFT p50 - server TTFT p50 - admission)."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            gap = float(row["client_ttft_p50_s"]) - float(row["server_ttft_p50_s"])
            out.append(
                (
                    row["configuration"],
                    int(row["stage"]),
                    float(row["running"]),
                    gap - admission_s(float(row["prompt_tokens_mean"])),
                )
            )
    return out


def fit_slope(points: list[tuple[float, float]]) -> tuple[float, float]:
    """``(slope, intercept)`` of the least-squares line through ``(x, y)`` points (two distinct x at least)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        raise ValueError("fit_slope needs at least two distinct x")
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    return slope, my - slope * mx


def _select(stages: list[Stage], config: str, which: tuple[int, ...]) -> list[Stage]:
    return [s for s in stages if s[0] == config and s[1] in which]


def main() -> int:
    stages = read_stages()
    train = _select(stages, *TRAINING)
    slope, intercept = fit_slope([(r, g) for _, _, r, g in train])
    print(
        f"training ({TRAINING[0]}, stages {TRAINING[1]}): fe_token_s = {slope * 1e6:.2f} µs per running request, "
        f"intercept {intercept * 1e3:.2f} ms"
    )
    for config, which in (TRAINING, *HELD_OUT):
        rows = _select(stages, config, which)
        for _, i, running, gap in rows:
            left = gap - slope * running
            print(
                f"  {config} stage {i}: running {running:6.1f}, gap less admission {gap * 1e3:5.1f} ms, "
                f"less the batch {left * 1e3:5.1f} ms, residual {(left - intercept) * 1e3:+5.1f} ms"
            )
        own, _ = fit_slope([(r, g) for _, _, r, g in rows])
        print(f"  {config}: its own slope {own * 1e6:.1f} µs ({'training' if config == TRAINING[0] else 'held out'})")
    print(f"FE_TOKEN_V1_GPU_HOST_S = {slope * 1e6:.1f}e-6")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
