"""What holds admission in llm-d exp-4's saturation first-token gaps (issues 23/24; a test on the data).

llm-d-benchmark exp-4 (Llama-4-Scout FP8 TP4 on H100, vLLM ``latest`` of May 2025 ~ 0.8.5, V1 engine,
LMBenchmark's multi-turn ShareGPT client; ``calibration/public/llm-d/exp-4-vllm-llama4-tp4/``) has, from
24 req/s on, first-token gaps of more than 100 ms with requests waiting while decoding goes on (stop 35,
``calibration/gc_pause_measure.py gaps``). Each candidate for what holds admission predicts something
about the per-request data; this script counts, for every gap of every run, whether the data agree::

    python -m calibration.llmd_admission [--out calibration/public/llm-d/admission_gaps.json]

Candidates and their tests (calibration/public/llm-d/README.md, "What holds admission"):

- **token budget** (vLLM 0.8.5 V1 scheduler, 8,192 batched tokens, chunked prefill): the waiting
  requests' uncached tokens plus one token per running request exceed the budget at the gap's start;
  and once admission resumes the scheduler takes every waiting request that fits in one step, so the
  backlog is released in one or two steps, not one request at a time;
- **prefix-cache eviction** (a turn whose earlier turns were evicted re-prefills its history): needs
  more KV blocks allocated in a run than the cache holds (the free-block queue evicts least recently
  freed blocks first, so nothing freed in a run is evicted before every older block);
- **a serial station in front of the engine** (the API server's asyncio loop: chat template,
  tokenization, and every streamed token's output processing on one core): the backlog is released
  one request at a time at the station's spare rate; the station's intake rate, from the constants
  measured on the CPU testbed (``sim/perf/cpu_side.py``) and the tokens streamed per second read off
  the logs, is near the arrival rate where the gaps are and above it where there are none;
- **the client's own loop** (LMBenchmark: one asyncio loop stamps launches, first tokens and ends):
  a stall of it delays the launch callbacks scheduled inside the gap; ``launch_time`` is stamped
  when the request's coroutine starts, so its lag behind the fixed-rate schedule measures the loop.

Reads only the corpus; writes one small JSON. Analysis code only: nothing here feeds the simulator.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

from sim.perf.cpu_side import cpu_side_for, with_chat_intake
from sim.perf.kernels.versions import parse_version

__all__ = ["main", "analyse_run", "load_run"]

_CORPUS = Path(__file__).resolve().parent / "public/llm-d/exp-4-vllm-llama4-tp4"

# vLLM 0.8.5, vllm/engine/arg_utils.py EngineArgs._set_default_args_v1: a GPU of >= 70 GiB and the
# OpenAI server's usage context give max_num_batched_tokens 8192 and max_num_seqs 1024; exp-4's
# deployment (collected/yamls/exp-4/baseline-vllm/llama-4-deployment.yaml at 52d328cd) sets neither.
BUDGET_TOK = 8192
# KV capacity: 55,401 16-token blocks as sim/perf/memory.py plans exp-4 at gpu_memory_utilization 0.9
# (calibration/public/llm-d/README.md); the deployment ran 0.95, which holds more: a lower bound.
KV_CAPACITY_TOK = 55_401 * 16
# The API server as fleetcast models exp-4's (sim/perf/cpu_side.py: vLLM 0.8.5's V1 GPU host, Llama 4
# Scout on the chat endpoint, whose template 0.8.5 re-parses per request): CPU per request, per prompt
# token, per streamed token, read from the model rather than typed again.
_VLLM = parse_version("0.8.5")
_FE = with_chat_intake(cpu_side_for(_VLLM), _VLLM, "llama-4-scout")
FE_REQUEST_S, FE_PROMPT_TOK_S, FE_TOKEN_S = _FE.fe_request_s, _FE.fe_prompt_tok_s, _FE.fe_token_s
# host CPU speed relative to HOST_CPU_SPEEDUP (1.0): its bracket, 0.86-1.31 (sim/perf/cpu_side.py)
HOST_SPEEDUP_BRACKET = (0.86, 1.0, 1.31)
GAP_S = 0.1  # a first-token gap (stop 35's definition)
SAME_STEP_S = 0.010  # first tokens closer than this are taken as released by the same engine step


def load_run(path: Path) -> tuple[list[dict], list[dict]]:
    """(measured requests sorted by send time, warm-up requests) of one corpus log."""
    meas: list[dict] = []
    warm: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            row = {
                "a": float(r["arrival_s"]),
                "p": int(r["prompt_tokens"]),
                "o": int(r["output_tokens"]),
                "pre": int(r["prefix_tokens"] or 0),
            }
            if r.get("warmup") == "true":
                warm.append(row)
                continue
            row["f"] = float(r["first_token_s"])
            row["l"] = float(r["last_token_s"])
            meas.append(row)
    meas.sort(key=lambda r: r["a"])
    return meas, warm


def _tok_rate(rows: list[dict], t: float, w: float = 0.5) -> float:
    """Output tokens streamed per second over [t - w, t], each request's tokens spread evenly."""
    s = 0.0
    for r in rows:
        lo, hi = max(r["f"], t - w), min(r["l"], t)
        if hi > lo and r["l"] > r["f"]:
            s += r["o"] * (hi - lo) / (r["l"] - r["f"])
    return s / w


def _clusters(times: list[float]) -> int:
    """How many engine steps released these first tokens (times closer than SAME_STEP_S: one step)."""
    ts = sorted(times)
    return sum(1 for i, t in enumerate(ts) if i == 0 or t - ts[i - 1] > SAME_STEP_S)


def analyse_run(rows: list[dict], warm: list[dict], qps: float) -> dict:
    """Every first-token gap of one run, with each candidate's test."""
    first = sorted(r["f"] for r in rows)
    end = rows[-1]["a"]
    t0 = min(r["a"] - i / qps for i, r in enumerate(rows))
    lag = [r["a"] - (t0 + i / qps) for i, r in enumerate(rows)]  # client loop lag at each launch
    tpot = statistics.median((r["l"] - r["f"]) / (r["o"] - 1) for r in rows if r["o"] > 5)
    gaps: list[dict] = []
    for a, b in zip(first, first[1:]):
        if b - a <= GAP_S or not 0 < a < end:
            continue
        waiting = [r for r in rows if r["a"] < b - GAP_S and r["f"] > a]
        if not waiting:
            continue
        running = sum(1 for r in rows if r["f"] <= a < r["l"])
        new_tok = sum(r["p"] - r["pre"] for r in waiting)
        full_tok = sum(r["p"] for r in waiting)
        backlog = sorted(r["f"] for r in rows if r["a"] < b and r["f"] >= b)
        held = [r["f"] for r in waiting]  # requests that had waited >= GAP_S by the gap's end
        drain_s = backlog[-1] - a if backlog else 0.0
        # the budget's admissions per step once it resumes: every waiting request that fits
        mean_new = new_tok / len(waiting)
        fit_per_step = max(1, int((BUDGET_TOK - running) // max(mean_new, 1.0)))
        tr = _tok_rate(rows, a)
        mean_prompt = statistics.fmean(r["p"] for r in waiting)
        fe_req = FE_REQUEST_S + FE_PROMPT_TOK_S * mean_prompt
        intake = {str(k): round(max(0.0, 1 - tr * FE_TOKEN_S / k) / (fe_req / k), 1) for k in HOST_SPEEDUP_BRACKET}
        launched = [lag[i] for i, r in enumerate(rows) if a < r["a"] < b]
        gaps.append(
            {
                "t_s": round(a, 3),
                "gap_s": round(b - a, 3),
                "waiting": len(waiting),
                "running": running,
                "waiting_new_tok": new_tok,
                "waiting_prompt_tok": full_tok,
                "budget_binds": running + new_tok > BUDGET_TOK,
                "budget_binds_if_nothing_cached": running + full_tok > BUDGET_TOK,
                "backlog": len(backlog),
                "held_release_steps": _clusters(held),
                "held_release_s": round(max(held) - b, 3),
                "budget_release_steps": -(-len(held) // fit_per_step),
                "drain_rate_per_s": round((len(backlog) - 1) / (backlog[-1] - b), 1)
                if len(backlog) > 2 and backlog[-1] > b
                else None,
                "drain_s": round(drain_s, 3),
                "tokens_streamed_per_s": round(tr),
                "fe_intake_per_s_by_host_speedup": intake,
                "launches_in_gap": len(launched),
                "max_launch_lag_in_gap_s": round(max(launched), 4) if launched else None,
            }
        )
    in_flight_max = max(sum(1 for s in rows if s["a"] <= r["a"] < s["l"]) for r in rows)
    return {
        "qps": qps,
        "ttft_ms_p50_p90_p99": [
            round(1e3 * sorted(r["f"] - r["a"] for r in rows)[int(len(rows) * q)], 1) for q in (0.5, 0.9, 0.99)
        ],
        "tpot_ms_median": round(tpot * 1e3, 1),
        "in_flight_max": in_flight_max,
        "tokens_streamed_per_s_max": round(max(_tok_rate(rows, r["a"]) for r in rows)),
        "launch_lag_ms_median_max": [round(1e3 * statistics.median(lag), 1), round(1e3 * max(lag), 1)],
        "kv_tokens_allocated_upper_bound": sum(r["p"] + r["o"] for r in rows + warm),
        "gaps": gaps,
    }


def _totals(runs: list[dict]) -> dict:
    g = [x for r in runs if r["qps"] >= 24 for x in r["gaps"]]
    multi = [x for x in g if x["waiting"] >= 3]
    one_by_one = [x for x in multi if x["held_release_steps"] >= 0.75 * x["waiting"]]
    in_budget_steps = [x for x in multi if x["held_release_steps"] <= x["budget_release_steps"] + 1]
    rates = [x["drain_rate_per_s"] for x in g if x["drain_rate_per_s"]]
    rel = [x["drain_rate_per_s"] / r["qps"] for r in runs if r["qps"] >= 24 for x in r["gaps"] if x["drain_rate_per_s"]]
    lag_ok = [x for x in g if x["launches_in_gap"] and x["max_launch_lag_in_gap_s"] < 0.5 * x["gap_s"]]
    # how long the held requests took to come out after the gap, in median steps (TPOT) of their run
    spread = [
        x["held_release_s"] / (r["tpot_ms_median"] / 1e3)
        for r in runs
        if r["qps"] >= 24
        for x in r["gaps"]
        if x["waiting"] >= 3
    ]
    quiet = [r for r in runs if not r["gaps"]]

    def fe_vs_drain(lo: float, hi: float) -> dict:
        """Per host speedup: gaps whose modelled front-end spare intake exceeds the observed drain rate."""
        d = [x for r in runs if lo <= r["qps"] <= hi for x in r["gaps"] if x["drain_rate_per_s"]]
        return {
            k: {
                "gaps": len(d),
                "fe_spare_above_drain": sum(
                    1 for x in d if x["fe_intake_per_s_by_host_speedup"][k] > x["drain_rate_per_s"]
                ),
                "fe_spare_over_drain_median": round(
                    statistics.median(x["fe_intake_per_s_by_host_speedup"][k] / x["drain_rate_per_s"] for x in d), 2
                ),
            }
            for k in ("1.0", "0.86")
        }

    return {
        "gaps_from_24_qps": len(g),
        "budget_binds": sum(x["budget_binds"] for x in g),
        "budget_binds_if_nothing_cached": sum(x["budget_binds_if_nothing_cached"] for x in g),
        "max_running_plus_waiting_new_tok": max(x["running"] + x["waiting_new_tok"] for x in g),
        "gaps_with_3_or_more_held": len(multi),
        "released_one_step_per_request": len(one_by_one),
        "released_within_budget_steps_plus_one": len(in_budget_steps),
        "held_released_over_more_than_3_steps": sum(1 for v in spread if v > 3),
        "held_release_in_steps_median": round(statistics.median(spread), 1),
        "drain_rate_per_s_median": round(statistics.median(rates), 1),
        "drain_rate_over_qps_median_p10_p90": [
            round(statistics.median(rel), 2),
            round(sorted(rel)[len(rel) // 10], 2),
            round(sorted(rel)[9 * len(rel) // 10], 2),
        ],
        "fe_vs_drain_28_to_40_qps": fe_vs_drain(28, 40),
        "fe_vs_drain_all": fe_vs_drain(24, 1e9),
        "drain_rate_per_s_median_28_to_40_qps": round(
            statistics.median(
                x["drain_rate_per_s"] for r in runs if 28 <= r["qps"] <= 40 for x in r["gaps"] if x["drain_rate_per_s"]
            ),
            1,
        ),
        "drain_rate_per_s_median_45_up": round(
            statistics.median(
                x["drain_rate_per_s"] for r in runs if r["qps"] >= 45 for x in r["gaps"] if x["drain_rate_per_s"]
            ),
            1,
        ),
        "gaps_with_launches_inside": sum(1 for x in g if x["launches_in_gap"]),
        "launch_lag_below_half_the_gap": len(lag_ok),
        "runs_without_gaps": [r["qps"] for r in quiet],
        "in_flight_max_of_runs_without_gaps": max((r["in_flight_max"] for r in quiet), default=0),
        "running_min_at_a_gap": min(x["running"] for x in g),
        "kv_tokens_allocated_per_run_max": max(r["kv_tokens_allocated_upper_bound"] for r in runs),
        "kv_capacity_tok_lower_bound": KV_CAPACITY_TOK,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=_CORPUS)
    ap.add_argument("--out", type=Path, help="write the result JSON here")
    args = ap.parse_args(argv)
    runs = []
    for f in sorted(args.corpus.glob("qps-*.csv"), key=lambda p: float(p.stem.split("-")[1])):
        rows, warm = load_run(f)
        runs.append(analyse_run(rows, warm, float(f.stem.split("-")[1])))
    tot = _totals(runs)
    print(
        "qps | TTFT p50/p90/p99 ms | in flight max | tok/s max | launch lag ms med/max | gaps | budget binds |"
        " held requests released in steps (requests) | drain rate /s | FE intake /s at x1.0 (min over gaps)"
    )
    for r in runs:
        g = r["gaps"]
        rel = ", ".join(f"{x['held_release_steps']}({x['waiting']})" for x in g)
        dr = [x["drain_rate_per_s"] for x in g if x["drain_rate_per_s"]]
        fe = [x["fe_intake_per_s_by_host_speedup"]["1.0"] for x in g]
        print(
            f"{r['qps']:g} | {r['ttft_ms_p50_p90_p99']} | {r['in_flight_max']} | {r['tokens_streamed_per_s_max']} | "
            f"{r['launch_lag_ms_median_max']} | {len(g)} | {sum(x['budget_binds'] for x in g)} | {rel} | "
            f"{statistics.median(dr) if dr else '-'} | {min(fe) if fe else '-'}"
        )
    print(json.dumps(tot, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"totals_from_24_qps": tot, "runs": runs}, indent=None, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
