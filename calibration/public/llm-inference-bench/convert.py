"""Convert LLM-Inference-Bench's vLLM static-batch results into fleetcast static-batch tables.

Source: github.com/argonne-lcf/LLM-Inference-Bench, commit 4211f5d4e9bc0145ed541b6d372d5d8223b44235,
``Plots/All_results.csv`` (BSD-3-Clause, LICENSE in the same tree). Each row is one configuration:
``Hardware, Num of Hardware, Framework, Model, Input Output Length, Batch Size, Latency, Throughput``,
measured with vLLM's ``benchmarks/benchmark_latency.py`` (copies with CSV output added:
``vLLM/H100/benchmark_throughput.py``, ``vLLM/MI300X/benchmark_throughput.py``): ``LLM.generate`` of one
batch of ``Batch Size`` random prompts of ``Input Output Length`` tokens, each generating that many tokens
(``ignore_eos``, temperature 1.0), 10 warm-up and 30 timed iterations; ``Latency`` is the mean time of one batch (seconds) and ``Throughput`` =
batch x (input + output) / latency.

Kept: the vLLM rows on a GPU and model of the fleetcast catalog (``GPUS``, ``MODELS``); every other
group is listed in ``skipped.csv`` with the reason. Per (GPU, model, GPUs) one folder with
``static.batches.csv`` (docs/run-logs.md, "Static-batch tables") and its sidecar ``fleetcast.yaml``
(written here; README.md says what each setting rests on). Usage, from the repository root::

    python calibration/public/llm-inference-bench/convert.py PATH/TO/All_results.csv
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPUS = {  # source hardware -> (catalog GPU, folder prefix, why this mapping, vLLM version, why that version)
    "Nvidia H100 GPU": (
        "h100-sxm",
        "h100",
        "assumed SXM: the source says 'Nvidia H100 GPU' (ALCF JLSE testbed), not the form factor",
        "0.6.1",
        "assumed: vLLM/H100/README.MD installs an unpinned `pip install vllm`; its benchmark script is the "
        "same file as the MI300X one (run on v0.6.1) and its API (vllm.inputs.PromptInputs, "
        "use_v2_block_manager, otlp_traces_endpoint) fits 0.5.1-0.6.1",
    ),
    "AMD MI300X GPU": (
        "mi300x",
        "mi300x",
        "AMD Instinct MI300X",
        "0.6.1",
        "recovered: vLLM/MI300X/README.md builds ROCm vLLM from `git checkout v0.6.1` (Dockerfile.rocm)",
    ),
}
MODELS = {  # source model -> (catalog model, max_model_len, note)
    "meta-llama/Meta-Llama-3-8B": (
        "llama-3.1-8b",
        8192,
        "Llama-3-8B: the catalog's Llama-3.1-8B has the same layers; its 8,192-token context as max_model_len",
    ),
    "meta-llama/Meta-Llama-3-70B": ("llama-3-70b", 8192, "Llama-3-70B, 8,192-token context"),
    "mistralai/Mistral-7B-v0.1": (
        "mistral-7b-v0.1",
        32768,
        "Mistral-7B-v0.1 with its 4,096-token sliding window (which sets vLLM 0.6's attention backend)",
    ),
    "mistralai/Mixtral-8x7B-v0.1": ("mixtral-8x7b", 32768, "Mixtral-8x7B-v0.1"),
}
SIDECAR = """# LLM-Inference-Bench {hw} x{tp}, {model} (README.md in the parent folder)
# {gpu_note}; {model_note}
gpu: {gpu}
model: {cat_model}
tensor_parallel: {tp}
# {version_note}
vllm_version: "{version}"
quantization: {{weights: fp16, kv_cache: auto}}   # --dtype float16 (run_benchmarks.sh)
engine:
  # vLLM 0.5/0.6 (V0 engine) LLM-class defaults, as benchmark_latency.py ran (no flags given):
  # no chunked prefill, no prefix caching, block size 16, 256 sequences, gpu_memory_utilization 0.9,
  # max_num_batched_tokens = max_model_len (the model's context) when chunked prefill is off
  max_num_seqs: 256
  max_num_batched_tokens: {mml}
  max_model_len: {mml}
  block_size: 16
  gpu_memory_utilization: 0.9
  enable_chunked_prefill: false
  enable_prefix_caching: false
"""


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("give the path of Plots/All_results.csv")
    with open(argv[0], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    groups: dict[tuple, list] = defaultdict(list)
    skipped: dict[tuple, str] = {}
    for i, r in enumerate(rows, 2):
        key = (r["Hardware"], r["Framework"], r["Model"], int(r["Num of Hardware"]))
        if r["Framework"] != "vLLM":
            continue  # other engines: fleetcast models vLLM only (not listed one by one)
        if r["Hardware"] not in GPUS:
            skipped[key] = (
                f"GPU '{r['Hardware']}' is not in the fleetcast catalog (A100 here is ALCF Polaris' 40 GB part)"
            )
        elif r["Model"] not in MODELS:
            skipped[key] = f"model '{r['Model']}' is not in the fleetcast catalog"
        else:
            groups[key].append((i, r))
    for (hw, _, model, tp), rs in sorted(groups.items()):
        gpu, prefix, gpu_note, version, version_note = GPUS[hw]
        cat_model, mml, model_note = MODELS[model]
        folder = HERE / f"{prefix}-{cat_model}-tp{tp}"
        folder.mkdir(exist_ok=True)
        (folder / "fleetcast.yaml").write_text(
            SIDECAR.format(
                hw=hw,
                tp=tp,
                model=model,
                gpu_note=gpu_note,
                model_note=model_note,
                gpu=gpu,
                cat_model=cat_model,
                mml=mml,
                version=version,
                version_note=version_note,
            )
        )
        seen = set()
        out: list[tuple[str, int, int, int, float, int]] = []
        for i, r in rs:
            b, n = int(r["Batch Size"]), int(r["Input Output Length"])
            if (b, n) in seen:  # a configuration measured twice: the first row is kept
                continue
            seen.add((b, n))
            out.append((f"b{b}-l{n}", b, n, n, round(float(r["Latency"]), 6), i))
        with open(folder / "static.batches.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(("name", "batch_size", "prompt_tokens", "output_tokens", "batch_latency_s", "source_line"))
            ordered = sorted(out, key=lambda t: (t[2], t[1]))  # by length, then batch size
            w.writerows(ordered)
        print(f"{hw} x{tp} {model} -> {folder.name}/static.batches.csv ({len(out)} batches)")
    with open(HERE / "skipped.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("hardware", "model", "gpus", "reason"))
        for (hw, _, model, tp), why in sorted(skipped.items()):
            w.writerow((hw, model, tp, why))
    print(f"{len(skipped)} groups skipped (skipped.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
