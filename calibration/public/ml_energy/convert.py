"""Make the ML.ENERGY Benchmark v3 saturated-burst entries (``<set>/fleetcast.yaml`` and
``<set>/<task>.burst.csv``) and ``skipped.csv`` from snapshots of the two source repositories.

    python calibration/public/ml_energy/convert.py <git dir of ml-energy/leaderboard> <leaderboard commit> \\
        <git dir of ml-energy/benchmark> <benchmark commit>

Read with ``git show`` (no work tree): the leaderboard's ``public/data/models/*.json`` (per
configuration: max_num_seqs, output throughput, ITL percentiles, average batch size, the output
length histogram) and the benchmark's ``configs/vllm/<task>/<model>/<GPU>/monolithic.config.yaml``
(the vLLM arguments the server ran with). One set per (task, model, GPU, GPU count), one row per
configuration (docs/run-logs.md, "Saturated bursts"); what is recovered and what is assumed is in
README.md here. ``configs.csv`` (the power fit's table, ``extract.py``) is left as it is.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
LLM_TASKS = ("lm-arena-chat", "gpqa", "sourcegraph-fim")
GPUS = {"H100": "h100-sxm", "B200": "b200"}

#: Hugging Face model -> (catalog model, weight scheme). An Instruct/Thinking/-2507 variant has its
#: base model's architecture (config.json: same layers, widths, heads, experts); Llama-3.3-70B has
#: Llama-3.1-70B's; DeepSeek-V3.1 and R1-0528 have DeepSeek-V3's.
MODELS = {
    "meta-llama/Llama-3.1-8B-Instruct": ("llama-3.1-8b", "bf16"),
    "meta-llama/Llama-3.1-70B-Instruct": ("llama-3.1-70b", "bf16"),
    "meta-llama/Llama-3.3-70B-Instruct": ("llama-3.1-70b", "bf16"),
    "meta-llama/Llama-3.1-405B-Instruct": ("llama-3.1-405b", "bf16"),
    "meta-llama/Llama-3.1-405B-Instruct-FP8": ("llama-3.1-405b", "fp8"),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": ("llama-4-scout", "bf16"),
    "Qwen/Qwen3-8B": ("qwen3-8b", "bf16"),
    "Qwen/Qwen3-14B": ("qwen3-14b", "bf16"),
    "Qwen/Qwen3-32B": ("qwen3-32b", "bf16"),
    "Qwen/Qwen3-30B-A3B-Instruct-2507": ("qwen3-30b-a3b", "bf16"),
    "Qwen/Qwen3-30B-A3B-Thinking-2507": ("qwen3-30b-a3b", "bf16"),
    "Qwen/Qwen3-235B-A22B-Instruct-2507": ("qwen3-235b-a22b", "bf16"),
    "Qwen/Qwen3-235B-A22B-Instruct-2507-FP8": ("qwen3-235b-a22b", "fp8"),
    "Qwen/Qwen3-235B-A22B-Thinking-2507": ("qwen3-235b-a22b", "bf16"),
    "Qwen/Qwen3-235B-A22B-Thinking-2507-FP8": ("qwen3-235b-a22b", "fp8"),
    "deepseek-ai/DeepSeek-V3.1": ("deepseek-v3", "fp8"),
    "deepseek-ai/DeepSeek-R1-0528": ("deepseek-v3", "fp8"),
}
#: models left out, and why (listed in skipped.csv, not dropped)
NOT_REPLAYABLE = {
    "google/gemma-3-12b-it": "model not in the catalog (gemma-3: interleaved sliding-window attention)",
    "google/gemma-3-27b-it": "model not in the catalog (gemma-3: interleaved sliding-window attention)",
    "nvidia/NVIDIA-Nemotron-Nano-9B-v2": "model not in the catalog (a Mamba-Transformer hybrid; no state-space "
    "layers in the performance model)",
    "nvidia/NVIDIA-Nemotron-Nano-12B-v2": "model not in the catalog (a Mamba-Transformer hybrid; no state-space "
    "layers in the performance model)",
    "openai/gpt-oss-20b": "model not in the catalog",
    "openai/gpt-oss-120b": "MXFP4 weights: the catalog has no MXFP4 weight scheme (models.yaml gpt-oss-120b says "
    "fp8 or int4 stand in), so the replay would not be the server's weights",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8": "model not in the catalog",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": "model not in the catalog",
    "Qwen/Qwen3-Coder-480B-A35B-Instruct-FP8": "model not in the catalog",
}
#: assumed prompt lengths per task (not published per configuration; README.md, "Assumed")
PROMPTS = {
    "lm-arena-chat": {
        "prompt_tokens_mean": 212,
        "prompt_tokens_std": 150,
        "prompt_tokens_min": 8,
        "prompt_tokens_max": 16384,
    },
    "gpqa": {"prompt_tokens_mean": 250, "prompt_tokens_std": 100, "prompt_tokens_min": 40, "prompt_tokens_max": 2048},
}
#: distinct requests per task (configs/vllm/<task>/benchmark.yaml workload_defaults.num_requests); a
#: configuration of N requests sent the list N / this many times (num_request_repeats)
UNIQUE_REQUESTS = {"lm-arena-chat": 1024, "gpqa": 198}
TASK_SKIP = {
    "sourcegraph-fim": "prompt lengths not published and decisive: fill-in-the-middle prompts are code contexts "
    "(prefix and suffix) much longer than the short completions, so the prompt work sets the throughput; no "
    "public figure of their length distribution was found to assume from",
}
#: vLLM arguments of monolithic.config.yaml the sidecar takes or that change nothing the model sees
KNOWN_ARGS = {
    "async-scheduling",
    "max-num-batched-tokens",
    "max-model-len",
    "dtype",
    "trust-remote-code",
    "reasoning-parser",
    "api-server-count",
    "enable-expert-parallel",
    "compilation-config",
}
ITL_KEYS = {50: "median_itl_ms", 90: "p90_itl_ms", 95: "p95_itl_ms", 99: "p99_itl_ms"}
COLUMNS = (
    "name",
    "num_requests",
    "max_num_seqs",
    "seed",
    "prompt_repeats",
    *PROMPTS["gpqa"],
    "output_tokens_hist_edges",
    "output_tokens_hist_counts",
    "output_tok_s",
    "itl_p50_s",
    "itl_p90_s",
    "itl_p95_s",
    "itl_p99_s",
    "avg_batch_size",
    "source_avg_output_len_tok",
    "source_avg_power_w",
)


def git(git_dir: str, *args: str) -> bytes:
    return subprocess.check_output(["git", "--git-dir", git_dir, *args])


def server_args(bench_dir: str, commit: str, task: str, model_id: str, gpu: str) -> dict:
    text = git(bench_dir, "show", f"{commit}:configs/vllm/{task}/{model_id}/{gpu}/monolithic.config.yaml")
    return yaml.safe_load(text) or {}


# the client's sampling, the same for every task replayed here (benchmark.py: Args top_p 0.95, temperature 0.8,
# sent with each request; async_request_openai_chat_completions' payload: "repetition_penalty": 1.1)
SAMPLING_LINE = "  sampling: top_p_penalties   # top_p 0.95, temperature 0.8, repetition_penalty 1.1 (benchmark.py)"


def sidecar(model_id: str, task: str, gpu: str, n_gpus: int, args: dict, lb: str, bench: str) -> str:
    model, weights = MODELS[model_id]
    ep = bool(args.get("enable-expert-parallel"))
    lines = [
        f"# ML.ENERGY Benchmark v3: {model_id}, task {task}, {n_gpus} x {gpu} (README.md here)",
        f"# leaderboard @ {lb[:8]} public/data/models; vLLM arguments: benchmark @ {bench[:8]}",
        f"# configs/vllm/{task}/{model_id}/{gpu}/monolithic.config.yaml",
        f"gpu: {GPUS[gpu]}",
        f"model: {model}              # {model_id}",
        f"tensor_parallel: {n_gpus}           # benchmark.py spawn_vllm: --tensor-parallel-size <GPUs>",
    ]
    if ep:
        lines.append("expert_parallel: true        # enable-expert-parallel: true")
    lines += [
        f"quantization: {{weights: {weights}, kv_cache: auto}}   # dtype: {args.get('dtype', 'auto')}; no "
        "kv-cache-dtype argument",
        'vllm_version: "0.11.1"       # benchmark.py Args.server_image vllm/vllm-openai:v0.11.1; docs/overview.md',
        "engine:",
        "  max_num_seqs: 1024         # replaced per row by the table's max_num_seqs (the sweep)",
        f"  max_num_batched_tokens: {args.get('max-num-batched-tokens', 8192)}",
        f"  max_model_len: {args['max-model-len']}",
        "  block_size: 16             # not set: vLLM's default on CUDA",
        "  gpu_memory_utilization: 0.9   # not set: vLLM's default",
        "  enable_prefix_caching: true   # not set: on by default in the V1 engine",
        "  enable_chunked_prefill: true  # always on in the V1 engine",
    ]
    if "api-server-count" in args:
        lines.append(
            f"  api_server_count: {int(args['api-server-count'])}   # api-server-count: {args['api-server-count']}"
        )
    if "async-scheduling" in args:
        on = bool(args["async-scheduling"])
        lines.append(
            f"  async_scheduling: {'true' if on else 'false'}   # async-scheduling: {json.dumps(args['async-scheduling'])}"
        )
    lines.append(SAMPLING_LINE)
    return "\n".join(lines) + "\n"


def set_name(model_id: str, task: str, gpu: str, n_gpus: int) -> str:
    return f"{GPUS[gpu]}-{model_id.split('/')[1].lower()}-{task}-x{n_gpus}"


def main(argv: list[str]) -> None:
    lb_dir, lb, bench_dir, bench = argv
    names = git(lb_dir, "ls-tree", "-r", "--name-only", lb, "public/data/models").decode().split()
    skipped: list[dict] = []
    sets: dict[tuple, list[dict]] = {}
    for name in sorted(names):
        d = json.loads(git(lb_dir, "show", f"{lb}:{name}"))
        if d["task"] not in LLM_TASKS:
            continue
        model_id, task = d["model_id"], d["task"]
        for c in d["configurations"]:
            key = (model_id, task, c["gpu_model"], int(c["num_gpus"]))
            reason = TASK_SKIP.get(task) or NOT_REPLAYABLE.get(model_id)
            if reason is None and model_id not in MODELS:
                reason = "model not mapped to the catalog"
            if reason is None and c["gpu_model"] not in GPUS:
                reason = f"GPU {c['gpu_model']} not in the catalog"
            if reason is None and int(c["parallelization"]["data_parallel"]) > 1:
                reason = "data-parallel attention with expert parallelism: not expressible in a sidecar"
            if reason is not None:
                skipped.append(
                    {
                        "model_id": model_id,
                        "task": task,
                        "gpu": c["gpu_model"],
                        "num_gpus": c["num_gpus"],
                        "max_num_seqs": c["max_num_seqs"],
                        "reason": reason,
                    }
                )
                continue
            sets.setdefault(key, []).append(c)
    for f in HERE.glob("*/fleetcast.yaml"):  # a rerun replaces the sets it made
        for g in f.parent.iterdir():
            g.unlink()
        f.parent.rmdir()
    for (model_id, task, gpu, n_gpus), configs in sorted(sets.items()):
        args = server_args(bench_dir, bench, task, model_id, gpu)
        unknown = sorted(set(args) - KNOWN_ARGS)
        if unknown or "data-parallel-size" in args:
            raise SystemExit(f"{model_id} {task} {gpu}: vLLM arguments not handled: {unknown}")
        folder = HERE / set_name(model_id, task, gpu, n_gpus)
        folder.mkdir()
        (folder / "fleetcast.yaml").write_text(sidecar(model_id, task, gpu, n_gpus, args, lb, bench))
        rows, seen = [], set()
        for c in sorted(configs, key=lambda c: (c["max_num_seqs"], sum(c["output_length_distribution"]["counts"]))):
            hist = c["output_length_distribution"]
            n = sum(hist["counts"])
            repeats, rem = divmod(n, UNIQUE_REQUESTS[task])
            if rem:
                raise SystemExit(f"{model_id} {task} {gpu} cap {c['max_num_seqs']}: {n} requests, not a repeat count")
            row_name = f"s{c['max_num_seqs']}-n{n}"
            while row_name in seen:
                row_name += "b"
            seen.add(row_name)
            rows.append(
                {
                    "name": row_name,
                    "num_requests": n,
                    "max_num_seqs": c["max_num_seqs"],
                    "seed": 0,
                    "prompt_repeats": repeats,
                    **PROMPTS[task],
                    "output_tokens_hist_edges": " ".join(f"{e:.6g}" for e in hist["bins"]),
                    "output_tokens_hist_counts": " ".join(str(k) for k in hist["counts"]),
                    "output_tok_s": f"{c['output_throughput_tokens_per_sec']:.6g}",
                    **{f"itl_p{q}_s": f"{c[key] / 1e3:.6g}" for q, key in ITL_KEYS.items()},
                    "avg_batch_size": f"{c['avg_batch_size']:.6g}",
                    "source_avg_output_len_tok": f"{c['avg_output_len']:.6g}",
                    "source_avg_power_w": f"{c['avg_power_watts']:.6g}",
                }
            )
        with (folder / f"{task}.burst.csv").open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
    with (HERE / "skipped.csv").open("w", newline="") as fh:
        cols = ("model_id", "task", "gpu", "num_gpus", "max_num_seqs", "reason")
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(sorted(skipped, key=lambda r: tuple(str(r[k]) for k in cols)))
    print(f"{sum(len(v) for v in sets.values())} configurations in {len(sets)} sets; {len(skipped)} skipped")


if __name__ == "__main__":
    main(sys.argv[1:])
