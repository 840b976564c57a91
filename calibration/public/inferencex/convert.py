"""Convert InferenceX's token-position decode-SLO sweeps into fleetcast concurrency tables.

Source: github.com/SemiAnalysisAI/InferenceX, commit 843c6254ff69b567f772f6a5fd97675af3d04431,
``experimental/token_position_decode_slo/`` (Apache-2.0, LICENSE at the repository root). Per model a
folder with the server script (``serve_*_sbatch.sh``: SLURM partition, GPUs, vLLM commit and flags),
the client script (``bmk_*_sbatch.sh``: ISL/OSL sweep, concurrency levels, ``--num-prompts`` = 10 x
concurrency after 2 x concurrency warm-up requests, ``--request-rate inf``, ``--ignore-eos``) and
``results/*.json``: one ``benchmark_serving`` summary per point (num_prompts, max_concurrency, completed,
total input/output tokens, duration, output_throughput, median/p99 TTFT, E2E and TPOT, in seconds).

Kept: MiniMax-M2.5 with tensor parallel 8 + expert parallel on 8 x H200 (``tep8``), every point whose
requests all completed. Listed in ``skipped.csv``: MiniMax-M2.5 ``dep8`` (data-parallel attention with
expert parallel: not a tensor-parallel pool), GLM-5 and Qwen3.5 (not in the fleetcast catalog). One
folder ``h200-minimax-m2.5-tep8`` with ``points.concurrency.csv`` (docs/run-logs.md, "Concurrency points
and rate stages") and the sidecar. Usage, from the repository root::

    python calibration/public/inferencex/convert.py /work/.mirror/SemiAnalysisAI+InferenceX/repo
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMIT = "843c6254ff69b567f772f6a5fd97675af3d04431"
ROOT = "experimental/token_position_decode_slo"
KEPT_PREFIX = "minimax-m2.5/results/minimax_m25_vllm_tep8_"
SIDECAR = """# InferenceX experimental/token_position_decode_slo/minimax-m2.5, tep8 (commit 843c6254; README.md here)
gpu: h200                     # SLURM partition h200, --gres=gpu:8 (serve_minimax_tep8_sbatch.sh)
model: minimax-m2.5           # MiniMaxAI/MiniMax-M2.5, its block-FP8 checkpoint
tensor_parallel: 8            # --tensor-parallel-size 8
expert_parallel: true         # --enable-expert-parallel
quantization: {weights: fp8, kv_cache: auto}
# vLLM: nightly wheel of commit dea63512bb9bdf7521d591546c52138d9d79e8ce, results dated 2026-02-14/15:
# main after v0.15.1 and before v0.16.0 (InferenceX's first v0.16.0 image is dated 2026-02-20, commit
# e43af856); assumed 0.16.0, the release that main became (README.md)
vllm_version: "0.16.0"
engine:
  # no engine flags beyond parallelism: vLLM V1's API-server defaults on a GPU of >= 70 GiB (assumed)
  max_num_seqs: 1024
  max_num_batched_tokens: 8192
  block_size: 16
  gpu_memory_utilization: 0.9
"""
COLUMNS = (
    "name",
    "concurrency",
    "num_requests",
    "prompt_tokens",
    "output_tokens",
    "ttft_p50_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p99_s",
    "e2e_p50_s",
    "e2e_p99_s",
    "output_tok_s",
    "duration_s",
    "source_file",
)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def convert(repo: Path) -> None:
    files = [
        f
        for f in _git(repo, "ls-tree", "-r", "--name-only", COMMIT, ROOT + "/").splitlines()
        if "/results/" in f and f.endswith(".json")
    ]
    rows, skipped = [], []
    for f in sorted(files):
        rel = f[len(ROOT) + 1 :]
        if not rel.startswith(KEPT_PREFIX):
            why = (
                "data-parallel attention with expert parallel (dep8): not a tensor-parallel pool"
                if "_dep8_" in rel
                else f"model {rel.split('/')[0]!r} is not in the fleetcast catalog"
            )
            skipped.append({"file": rel, "reason": why})
            continue
        d = json.loads(_git(repo, "show", f"{COMMIT}:{f}"))
        n, c = int(d["num_prompts"]), int(d["max_concurrency"])
        if d["completed"] != n:
            skipped.append({"file": rel, "reason": f"{d['completed']} of {n} requests completed"})
            continue
        isl, osl = d["total_input_tokens"] // n, d["total_output_tokens"] // n
        if isl * n != d["total_input_tokens"] or osl * n != d["total_output_tokens"]:
            raise SystemExit(f"{rel}: lengths are not fixed")
        rows.append(
            {
                "name": f"c{c}-i{isl}-o{osl}",
                "concurrency": c,
                "num_requests": n,
                "prompt_tokens": isl,
                "output_tokens": osl,
                "ttft_p50_s": f"{d['median_ttft']:.6g}",
                "ttft_p99_s": f"{d['p99_ttft']:.6g}",
                "tpot_p50_s": f"{d['median_tpot']:.6g}",
                "tpot_p99_s": f"{d['p99_tpot']:.6g}",
                "e2e_p50_s": f"{d['median_e2el']:.6g}",
                "e2e_p99_s": f"{d['p99_e2el']:.6g}",
                "output_tok_s": f"{d['output_throughput']:.6g}",
                "duration_s": f"{d['duration']:.6g}",
                "source_file": rel,
            }
        )
    rows.sort(key=lambda r: (r["prompt_tokens"], r["concurrency"]))
    folder = HERE / "h200-minimax-m2.5-tep8"
    folder.mkdir(exist_ok=True)
    (folder / "fleetcast.yaml").write_text(SIDECAR)
    with open(folder / "points.concurrency.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with open(HERE / "skipped.csv", "w", newline="", encoding="utf-8") as fh:
        sw = csv.DictWriter(fh, ["file", "reason"], lineterminator="\n")
        sw.writeheader()
        sw.writerows(skipped)
    print(f"{len(rows)} points kept, {len(skipped)} skipped")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    convert(Path(sys.argv[1]))
