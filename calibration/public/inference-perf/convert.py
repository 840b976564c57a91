"""Convert inference-perf's KubeCon NA 2025 demo results into fleetcast rate-stage and concurrency tables.

Source: github.com/kubernetes-sigs/inference-perf, commit 7de5ef2ed6f7934e0ecbc8297e593f79e68430c0,
``demos/kubecon-na-2025/`` (Apache-2.0, LICENSE at the repository root; the results were added in
7ff8150698cd8ba2504dd4c159843cfeac04b44c, Nov 2025). ``config.yaml`` is the client: synthetic
``shared_prefix`` data (10 system prompts of 128 tokens x 10 users, questions of 64 tokens, 64 output
tokens, ``ignore_eos``), a constant-rate linear sweep of 7 stages of 60 s, 44 workers of at most 10
requests in flight each. ``<config>/manifests.yaml`` is the vLLM server (one H100 80GB, Llama-3.1-8B-
Instruct, ``--max-model-len 512``, the image and the flags of that configuration);
``<config>/results/stage_<i>_lifecycle_metrics.json`` the measured stage: requested and achieved rate,
count, and TTFT / request-latency / prompt-length / output-length percentiles.

Per kept configuration one folder with the sidecar ``fleetcast.yaml`` and
- ``stages.stages.csv``: the stages whose client kept the requested rate (achieved >= 97 %), as
  constant-rate stages (docs/run-logs.md, "Concurrency points and rate stages");
- ``capped.concurrency.csv``: the stages whose client fell behind (achieved < 97 % of requested): its
  44 x 10 = 440 requests in flight were all busy, so the stage ran as a closed loop of 440 clients;
  replayed as such, with the stage's request count.
Every row carries ``client_overhead_s``: the time inference-perf's client spends on a request outside
the server, which its TTFT and E2E include (its ``openai_client.py`` opens a new ``aiohttp``
session and connection for every request and starts the clock before it). Its size comes from the
source's own server-side figures: each stage also publishes vLLM's ``vllm:time_to_first_token_seconds``
histogram (``stage_<i>_prometheus_metrics.json``, from the request's arrival in the engine client to
its first token in the API server's output handler); the client's TTFT p50 less that p50, less
what fleetcast already counts between the two (``client_gaps``: the API server's admission work,
1.40 ms + 2.65 µs per prompt token, and the processing of the first token's step batch,
``sim.engine.front_end``), is the client's part. Measured on the training configuration ``vllm``, stages 1-3 (stage 0's
Prometheus window holds another load: 937 successes at a 2.8 s TTFT for a stage of 60), and used for
all four configurations; the other three are held out (printed for the check).
Compared: TTFT and E2E (request latency) p50/p90/p99. Not compared: inference-perf's
``time_per_output_token`` and ``inter_token_latency`` (streamed chunks of several tokens count as
near-zero gaps: the TPOT median of stage 0 is 3.5 ms while (E2E - TTFT) / 63 is 7.1 ms) and its
``output_tokens_per_sec`` (tokens re-counted from the text, over the stage's own clock). Usage, from the
repository root::

    python calibration/public/inference-perf/convert.py /work/.mirror/kubernetes-sigs+inference-perf/repo
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sim.perf.cpu_side import cpu_side_for  # noqa: E402
from sim.perf.kernels.versions import parse_version  # noqa: E402

HERE = Path(__file__).resolve().parent
COMMIT = "7de5ef2ed6f7934e0ecbc8297e593f79e68430c0"
DEMO = "demos/kubecon-na-2025"
CLIENTS = 44 * 10  # num_workers x worker_max_concurrency (config.yaml)
KEPT = ("vllm", "vllm+batch_size", "vllm+chunking_and_prefix_caching", "vllm+v0_engine")
SKIPPED = {
    "vllm+eagle": "EAGLE3 speculative decoding (4 draft tokens): the acceptance rate of the drafter on this "
    "workload is not recorded, so the replay could not set it",
    "vllm+quantization": "--quantization bitsandbytes (4-bit NF4): not a weight format of the fleetcast catalog",
}
PROMPTS = 10 * 10  # num_unique_system_prompts x num_users_per_system_prompt: the distinct prompts
OUTPUT_TOKENS = 64  # config.yaml output_len with ignore_eos: the server generated exactly 64
LATENCIES = (("ttft", "time_to_first_token"), ("e2e", "request_latency"))
TRAIN = "vllm"  # the configuration whose server-side TTFT sets client_overhead_s (module doc)
TRAIN_STAGES = (1, 2, 3)
PCTS = (("p50", "median"), ("p90", "p90"), ("p99", "p99"))
ARRIVAL = "poisson_fixed"
ARRIVAL_DOC = """config.yaml's ``load.type: constant`` is inference-perf's ``ConstantLoadTimer``
(``inference_perf/loadgen/load_timer.py`` at 7ff81506, the commit that added these results): it draws
``int(rate x duration)`` exponential intervals (``numpy.random.default_rng().exponential(1 / rate)``)
and scales them to sum to the stage's duration, "a small amount of random noise in timing" by its
docstring but in fact Poisson arrivals held to the stage's count: ``arrival`` ``poisson_fixed``
(docs/run-logs.md). The draws themselves are not recorded (no seed): the replay's are its own."""


def _git(repo: Path, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{COMMIT}:{DEMO}/{path}"], check=True, capture_output=True, text=True
    ).stdout


def _settings(manifest: str) -> dict:
    args = dict(re.findall(r'"--([a-z_-]+)=([^"]+)"', manifest))
    flags = set(re.findall(r'"--((?:no-)?enable-[a-z-]+)"', manifest))
    found = re.search(r"image: vllm/vllm-openai:v([0-9.]+)", manifest)
    if found is None:
        raise SystemExit("no vllm/vllm-openai image in the manifest")
    image = found.group(1)
    return {
        "max_num_seqs": int(args["max-num-seqs"]),
        "max_model_len": int(args["max-model-len"]),
        "gpu_memory_utilization": float(args["gpu_memory_utilization"]),
        "prefix": "enable-prefix-caching" in flags,
        "chunked": "enable-chunked-prefill" in flags,
        "v0": 'name: VLLM_USE_V1\n          value: "0"' in manifest,
        "version": image,
    }


SIDECAR = """# inference-perf demos/kubecon-na-2025/{config} (commit 7de5ef2e; README.md in the parent folder)
gpu: h100-sxm                 # GKE nvidia-h100-80gb (the A3 machines' H100 80GB is the SXM part)
model: llama-3.1-8b           # meta-llama/Llama-3.1-8B-Instruct
tensor_parallel: 1
quantization: {{weights: bf16, kv_cache: auto}}
vllm_version: "{version}"{v0}
engine:
  max_num_seqs: {max_num_seqs}
  max_model_len: {max_model_len}
  gpu_memory_utilization: {gpu_memory_utilization}
  enable_prefix_caching: {prefix}   # the rows' prefix_tokens / prefix_groups are the workload's 100 prompts (README.md)
  enable_chunked_prefill: {chunked}{chunked_note}
  max_num_batched_tokens: {budget}   # {budget_note}
  block_size: 16
  chat_endpoint: false          # config.yaml: api.type completion (/v1/completions), not the chat endpoint
"""


def client_gaps(repo: Path, config: str, version: tuple[int, ...]) -> list[float]:
    """Per stage of ``TRAIN_STAGES``: the client's TTFT p50 less vLLM's server-side TTFT p50 (the
    Prometheus histogram of the same stage) less what fleetcast counts on the client's side of that
    histogram: the API server's admission work, and the processing of the first token's step batch.
    vLLM stamps the histogram when its output handler takes the step's outputs
    (``vllm/v1/metrics/stats.py``: ``IterationStats.iteration_timestamp``, made in
    ``async_llm.py`` ``output_handler`` before ``process_outputs``), and a new request's first token
    is written after the whole batch (sim.engine.front_end): ``fe_token_s`` per running request,
    their number from Little's law (achieved rate x mean request latency)."""
    cpu = cpu_side_for(version)
    gaps = []
    for i in TRAIN_STAGES:
        d = json.loads(_git(repo, f"{config}/results/stage_{i}_lifecycle_metrics.json"))
        client = d["successes"]
        server = json.loads(_git(repo, f"{config}/results/stage_{i}_prometheus_metrics.json"))["successes"]
        admission_s = cpu.fe_request_s + cpu.fe_prompt_tok_s * client["prompt_len"]["mean"]
        running = d["load_summary"]["achieved_rate"] * client["latency"]["request_latency"]["mean"]
        batch_s = cpu.fe_token_s * running if cpu.first_tokens_last else 0.0
        gaps.append(
            client["latency"]["time_to_first_token"]["median"]
            - server["time_to_first_token"]["median"]
            - admission_s
            - batch_s
        )
    return gaps


def server_ttft_rows(repo: Path, config: str) -> list[dict]:
    """Per stage of ``config``: the client's TTFT p50, vLLM's server-side TTFT p50 (the Prometheus
    histogram of the same stage), the mean prompt length and the requests in flight (Little's law:
    achieved rate x mean request latency). ``calibration/fe_token_fit.py`` reads them from
    ``server_ttft.csv``."""
    rows = []
    for i in range(7):
        d = json.loads(_git(repo, f"{config}/results/stage_{i}_lifecycle_metrics.json"))
        client = d["successes"]
        server = json.loads(_git(repo, f"{config}/results/stage_{i}_prometheus_metrics.json"))["successes"]
        rows.append(
            {
                "configuration": config,
                "stage": i,
                "requested_rate_rps": f"{d['load_summary']['requested_rate']:.4g}",
                "achieved_rate_rps": f"{d['load_summary']['achieved_rate']:.4g}",
                "running": f"{d['load_summary']['achieved_rate'] * client['latency']['request_latency']['mean']:.2f}",
                "prompt_tokens_mean": f"{client['prompt_len']['mean']:.2f}",
                "client_ttft_p50_s": f"{client['latency']['time_to_first_token']['median']:.6g}",
                "server_ttft_p50_s": f"{server['time_to_first_token']['median']:.6g}",
            }
        )
    return rows


V1_IGNORES_NO_CHUNKED = (0, 11, 1)
"""First release whose V1 engine honours ``--no-enable-chunked-prefill``. In vLLM 0.11.0
``EngineArgs._set_default_args`` (``vllm/engine/arg_utils.py``; V1, a generative model) sets
``self.enable_chunked_prefill = True`` unconditionally ("V1 always uses chunked prefills and prefix caching
for non-pooling tasks"), before ``max_num_batched_tokens`` takes the usage context's default (8192 for the
API server on a GPU of >= 70 GiB that is not an A100); 0.11.1's sets it only ``if self.enable_chunked_prefill
is None``. vLLM issue #18547 ("chunked_prefill cannot be turn off in V1 engine") reports it; PR #21645
proposed an error instead. ``--no-enable-prefix-caching`` was honoured (set only when None)."""


def _chunked(st: dict) -> tuple[bool, str]:
    """The chunked-prefill setting the server ran with, and a sidecar comment when it is not the flag's."""
    if st["chunked"] or st["v0"] or _version(st["version"]) >= V1_IGNORES_NO_CHUNKED:
        return st["chunked"], ""
    return True, (
        f"   # the manifest says --no-enable-chunked-prefill; vLLM {st['version']}'s V1 engine turns it on "
        "whatever the flag (convert.py, V1_IGNORES_NO_CHUNKED)"
    )


def _version(text: str) -> tuple[int, ...]:
    v = parse_version(text)
    if v is None:
        raise SystemExit(f"convert.py: the manifest's vLLM version {text!r} is not a version")
    return v


def convert(repo: Path) -> None:
    settings = {config: _settings(_git(repo, f"{config}/manifests.yaml")) for config in KEPT}
    for config in KEPT:
        gaps = client_gaps(repo, config, _version(settings[config]["version"]))
        print(
            f"{config}: client TTFT - server TTFT - admission - first-token batch, stages {TRAIN_STAGES}: "
            + ", ".join(f"{g * 1e3:.1f}" for g in gaps)
            + " ms"
            + (" (training)" if config == TRAIN else " (held out)")
        )
    overhead_s = round(statistics.median(client_gaps(repo, TRAIN, _version(settings[TRAIN]["version"]))), 4)
    print(f"client_overhead_s = {overhead_s} (median over {TRAIN}, stages {TRAIN_STAGES})")
    for config in KEPT:
        st = settings[config]
        folder = HERE / config.replace("+", "-")
        folder.mkdir(exist_ok=True)
        chunked, chunked_note = _chunked(st)
        budget, note = (
            (8192, "assumed: vLLM's API-server default with chunked prefill on a GPU of >= 70 GiB")
            if chunked
            else (2048, "assumed: vLLM's rule without chunked prefill, max(max_model_len, 2048)")
        )
        (folder / "fleetcast.yaml").write_text(
            SIDECAR.format(
                config=config,
                version=st["version"],
                max_num_seqs=st["max_num_seqs"],
                max_model_len=st["max_model_len"],
                gpu_memory_utilization=st["gpu_memory_utilization"],
                prefix=str(st["prefix"]).lower(),
                chunked=str(chunked).lower(),
                chunked_note=chunked_note,
                budget=budget,
                budget_note=note,
                v0=(
                    "   # the V0 engine (VLLM_USE_V1=0)\nengine_core: v0             # without chunked prefill: "
                    "V0's prefill-first scheduler"
                )
                if st["v0"]
                else "",
            )
        )
        stages, capped = [], []
        sent = 0  # the most requests an earlier stage sent: inference-perf numbers each stage's from 0
        for i in range(7):
            d = json.loads(_git(repo, f"{config}/results/stage_{i}_lifecycle_metrics.json"))
            load, ok = d["load_summary"], d["successes"]
            if d["failures"]["count"]:
                raise SystemExit(f"{config} stage {i}: {d['failures']['count']} failures; not handled")
            p = ok["prompt_len"]
            row = {
                "name": f"stage-{i}",
                "prompt_tokens_mean": f"{p['mean']:.2f}",
                # a normal's p10..p90 spans 2.563 standard deviations
                "prompt_tokens_std": f"{(p['p90'] - p['p10']) / 2.563:.2f}",
                "prompt_tokens_min": int(p["min"]),
                "prompt_tokens_max": int(p["max"]),
                "output_tokens": OUTPUT_TOKENS,
                # the 10 x 10 (system prompt, question) pairs repeat: 100 prefix groups over the first
                # (shortest prompt - 1) tokens, so every request of a group has the same key
                "prefix_tokens": int(p["min"]) - 1,
                "prefix_groups": PROMPTS,
                "client_overhead_s": overhead_s,
                **{f"{m}_{q}_s": f"{ok['latency'][key][k]:.6g}" for m, key in LATENCIES for q, k in PCTS},
                "requested_rate_rps": f"{load['requested_rate']:.4g}",
                "achieved_rate_rps": f"{load['achieved_rate']:.4g}",
                "count": ok["count"],
            }
            if load["achieved_rate"] >= 0.97 * load["requested_rate"]:
                # the load type "constant" is not evenly spaced: ConstantLoadTimer draws rate x duration
                # exponential gaps and scales them to sum to the duration (ARRIVAL_DOC)
                # with prefix caching, the prompts earlier stages sent are cached when this one starts (request
                # n takes prompt n mod 100, n from 0 in every stage: load_generator.py run_stage,
                # SharedPrefixDataGenerator.get_request at 7ff81506); the replay sends them first (warmup_requests)
                warm = {"warmup_requests": min(sent, PROMPTS)} if st["prefix"] else {}
                stages.append(
                    {"rate_rps": f"{load['requested_rate']:.4g}", "duration_s": 60, "arrival": ARRIVAL, **warm, **row}
                )
            else:
                # inference-perf runs its stages back to back on one server: a capped stage starts
                # with its 440 clients already busy from the stage before, not on an idle server, so
                # one round of them is sent first and left out (warmup_requests); those clients start one by
                # one at the stage's requested rate, as the client's timer sends until the 440 are busy
                # (warmup_rate_rps), not all at once: a round sent at once moves in lock-step waves
                # (calibration/README.md, "inference-perf: the per-step shape and the TTFT p90 tail")
                capped.append(
                    {
                        "concurrency": CLIENTS,
                        "num_requests": ok["count"],
                        "warmup_requests": CLIENTS,
                        "warmup_rate_rps": row["requested_rate_rps"],
                        **row,
                    }
                )
            sent = max(sent, ok["count"])
        for name, rows in (("stages.stages.csv", stages), ("capped.concurrency.csv", capped)):
            if rows:
                with open(folder / name, "w", newline="", encoding="utf-8") as fh:
                    w = csv.DictWriter(fh, list(rows[0]), lineterminator="\n")
                    w.writeheader()
                    w.writerows(rows)
        print(f"{config}: {len(stages)} rate stages, {len(capped)} capped (closed-loop) stages")
    ttft = [row for config in KEPT for row in server_ttft_rows(repo, config)]
    with open(HERE / "server_ttft.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(ttft[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(ttft)
    with open(HERE / "skipped.csv", "w", newline="", encoding="utf-8") as fh:
        sw = csv.writer(fh, lineterminator="\n")
        sw.writerow(["configuration", "reason"])
        sw.writerows(sorted(SKIPPED.items()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    convert(Path(sys.argv[1]))
