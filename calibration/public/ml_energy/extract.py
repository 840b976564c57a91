"""Make ``configs.csv`` from a snapshot of ml-energy/leaderboard (ML.ENERGY Benchmark v3).

    python calibration/public/ml_energy/extract.py <git-dir of ml-energy/leaderboard> [commit]

Reads ``public/data/models/*.json`` at the commit (default HEAD) with ``git show``, keeps the
LLM tasks (lm-arena-chat, gpqa, sourcegraph-fim; not the diffusion/vision tasks) and writes one
row per configuration. The ``split`` column is fixed here, by model, before any fit
(``HELD_BACK_MODELS``).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

LLM_TASKS = ("lm-arena-chat", "gpqa", "sourcegraph-fim")

#: models whose every configuration is held back from the power fit (dense and MoE, small and
#: large, bf16/fp8/mxfp4, both GPUs); chosen by model before fitting.
HELD_BACK_MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct",
    "Qwen/Qwen3-32B",
    "Qwen/Qwen3-30B-A3B-Instruct-2507",
    "openai/gpt-oss-120b",
    "deepseek-ai/DeepSeek-V3.1",
)

COLUMNS = (
    "model_id",
    "task",
    "architecture",
    "activated_params_b",
    "total_params_b",
    "weight_precision",
    "gpu_model",
    "num_gpus",
    "tensor_parallel",
    "expert_parallel",
    "data_parallel",
    "max_num_seqs",
    "avg_batch_size",
    "avg_output_len_tok",
    "output_tokens_per_s",
    "median_itl_ms",
    "p90_itl_ms",
    "p95_itl_ms",
    "p99_itl_ms",
    "avg_power_w",
    "energy_per_output_token_j",
    "split",
)


def rows(git_dir: str, commit: str) -> list[dict]:
    def git(*args: str) -> bytes:
        return subprocess.check_output(["git", "--git-dir", git_dir, *args])

    names = git("ls-tree", "-r", "--name-only", commit, "public/data/models").decode().split()
    out = []
    for name in sorted(names):
        d = json.loads(git("show", f"{commit}:{name}"))
        if d["task"] not in LLM_TASKS:
            continue
        for c in d["configurations"]:
            par = c["parallelization"]
            out.append(
                {
                    "model_id": d["model_id"],
                    "task": d["task"],
                    "architecture": d["architecture"],
                    "activated_params_b": d["activated_params_billions"],
                    "total_params_b": d["total_params_billions"],
                    "weight_precision": d["weight_precision"],
                    "gpu_model": c["gpu_model"],
                    "num_gpus": c["num_gpus"],
                    "tensor_parallel": par["tensor_parallel"],
                    "expert_parallel": par["expert_parallel"],
                    "data_parallel": par["data_parallel"],
                    "max_num_seqs": c["max_num_seqs"],
                    "avg_batch_size": round(c["avg_batch_size"], 3),
                    "avg_output_len_tok": round(c["avg_output_len"], 2),
                    "output_tokens_per_s": round(c["output_throughput_tokens_per_sec"], 3),
                    "median_itl_ms": round(c["median_itl_ms"], 4),
                    "p90_itl_ms": round(c["p90_itl_ms"], 4),
                    "p95_itl_ms": round(c["p95_itl_ms"], 4),
                    "p99_itl_ms": round(c["p99_itl_ms"], 4),
                    "avg_power_w": round(c["avg_power_watts"], 3),
                    "energy_per_output_token_j": round(c["energy_per_token_joules"], 6),
                    "split": "held_back" if d["model_id"] in HELD_BACK_MODELS else "train",
                }
            )
    return out


def main(argv: list[str]) -> None:
    git_dir = argv[0]
    commit = argv[1] if len(argv) > 1 else "HEAD"
    dest = Path(__file__).with_name("configs.csv")
    with dest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows(git_dir, commit))


if __name__ == "__main__":
    main(sys.argv[1:])
