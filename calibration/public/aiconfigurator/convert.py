"""Convert aiconfigurator's silicon reference points into fleetcast concurrency tables.

Source: github.com/ai-dynamo/aiconfigurator, commit 095f58a51c4ca8e61b66ec108d86f223f8d559ce (the file
last changed in 68fc4519e15324816c519de97ea28bcc67744472), ``tools/accuracy_tracking/silicon_refs.csv``
(Apache-2.0, LICENSE at the repository root). One row per measured configuration: backend and version,
model, system (GPU), precision, ``agg`` (one engine) or ``disagg``, ISL/OSL, ``batch_size`` (= the
client's concurrency, ``silicon_concurrency`` in ``silicon_data_source``), the parallel layout
(tp/pp/attention-dp/moe-tp/moe-ep) and the measured ``silicon_ttft_ms`` and ``silicon_tpot_ms``.

Kept: ``agg`` rows of vLLM on a GPU, model and weight precision of the fleetcast catalog, with
pp = 1 and no attention data parallelism; every other row is listed in ``skipped.csv`` with the
reason. One folder per (GPU, model, TP) with ``points.concurrency.csv`` (docs/run-logs.md,
"Concurrency points and rate stages") and the sidecar ``fleetcast.yaml``. Usage, from the repository
root::

    git -C AICONFIGURATOR show 095f58a5:tools/accuracy_tracking/silicon_refs.csv > /tmp/silicon_refs.csv
    python calibration/public/aiconfigurator/convert.py /tmp/silicon_refs.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPUS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200"}  # source system -> catalog GPU
MODELS = {  # source model_path -> catalog model
    "Qwen/Qwen3-32B": "qwen3-32b",
    "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b",
    "MiniMaxAI/MiniMax-M2.5": "minimax-m2.5",
}
WEIGHTS = {"": "bf16", "fp8": "fp8"}  # source precision -> catalog weights ('' = the checkpoint's bf16)
#: the number of requests of a point is not in the file. The repository's own benchmark script for a
#: deployment it generates (src/aiconfigurator/generator/config/backend_templates/benchmark/
#: bench_run.sh.j2 at the same commit) runs, per concurrency c, ``aiperf profile --concurrency c
#: --num-requests c * BENCH_MULTI_ROUND --warmup-request-count c * 2`` with BENCH_MULTI_ROUND 20 by
#: default, fixed ISL/OSL (stddev 0, ignore_eos) and streaming: taken as the silicon points' method
REQUESTS_PER_CLIENT = 20
WARMUP_PER_CLIENT = 2
#: aiperf runs its phases one after another: the profiling phase starts only once every warm-up
#: credit has returned (ai-dynamo/aiperf @ db4f6397, ``aiperf/timing/credit_issuing_strategy.py``
#: ``_execute_phases``: "Wait for the credits to be returned before continuing to the next phase"),
#: so the measured requests start together on an idle server, as without a warm-up: the warm-up is
#: recorded in the table (``warmup_sent``) but not replayed (``warmup_requests`` 0)
REPLAYED_WARMUP_PER_CLIENT = 0
#: rows whose ``silicon_data_source`` is a ``db-dump/...`` with a ``workflow_run_id`` come from the
#: SemiAnalysisAI/InferenceX benchmark database (its GitHub Actions sweeps; the id's ``cfg<N>`` is
#: the sweep's config). InferenceX at that time (commit 626932a1, the last before the 2026-03-28
#: measurement of ``minimaxm2_5_h200_vllm_fp8_agg_1024x1024_c32_cfg637``): ``.github/configs/
#: nvidia-master.yaml`` ``minimaxm2.5-fp8-h200-vllm`` = image vllm/vllm-openai:v0.18.0, TP 8, ISL/OSL
#: 1024/1024, concurrency 4-128; ``benchmarks/single_node/minimaxm2.5_fp8_h200.sh`` serves with
#: ``--gpu-memory-utilization 0.95 --max-model-len $MAX_MODEL_LEN --no-enable-prefix-caching`` and
#: ``--enable-expert-parallel`` whenever ``EP_SIZE -ge 1`` (the sweep generator's default ep is 1,
#: ``utils/matrix_logic/generate_sweep_configs.py``, so it is on), MAX_MODEL_LEN = ISL + OSL + 200;
#: the client (``benchmarks/benchmark_lib.sh`` ``run_benchmark_serving``) is
#: ``utils/bench_serving/benchmark_serving.py --dataset-name random --random-range-ratio 0.8
#: --num-prompts 10*c --max-concurrency c --request-rate inf --ignore-eos --num-warmups 2*c``
#: (range ratio: the workflow's default, ``.github/workflows/benchmark-tmpl.yml``). Its random
#: dataset draws every input and output length uniformly from [int(0.8 L), L]
#: (``sample_random_requests``), and its warm-up is a separate phase that ends (``asyncio.gather``)
#: before the measured requests start together: not replayed (the replayed server starts idle).
INFERENCEX_RANGE_RATIO = 0.8
INFERENCEX_REQUESTS_PER_CLIENT = 10
INFERENCEX_ENGINE = """  # InferenceX minimaxm2.5_fp8_h200.sh: --gpu-memory-utilization 0.95 --no-enable-prefix-caching,
  # --max-model-len ISL + OSL + 200
  gpu_memory_utilization: 0.95
  enable_prefix_caching: false
  max_model_len: {max_model_len}
"""
INFERENCEX_EXTRA = (
    "expert_parallel: true   # InferenceX's script passes --enable-expert-parallel when EP_SIZE >= 1 (default 1)\n"
)
SIDECAR = """# aiconfigurator silicon_refs.csv: {backend} {version} on {system}, {model_path} (README.md in the parent folder)
gpu: {gpu}
model: {model}
tensor_parallel: {tp}
quantization: {{weights: {weights}, kv_cache: auto}}   # source precision {precision!r}
vllm_version: "{version}"
engine:
{engine}{engine_extra}{extra}"""
#: InferenceX's script sets neither limit: vLLM V1's API-server defaults on a GPU of >= 70 GiB
DEFAULT_ENGINE = """  # not recorded: vLLM V1's API-server defaults on a GPU of >= 70 GiB (assumed), no prefix hits (random prompts)
  max_num_seqs: 1024
  max_num_batched_tokens: 8192
  block_size: 16
"""
#: the aiperf rows ran deployments made by aiconfigurator's own generator (the same generator whose
#: ``bench_run.sh.j2`` is taken as their client, above). Its default rule plugin for vLLM
#: (``src/aiconfigurator/generator/rule_plugin/vllm.rule`` @ 095f58a5, these lines unchanged since
#: 697b790b, 2026-02-11; applied line by line by ``generator/rendering/rule_engine.py``, the default
#: plugin at ``generator/rendering/engine.py`` ``apply_rule_plugins(param_values, backend)``) sets
#: ``agg_decode max_batch_size = 512 if max_batch_size < 512 else 2 * max_batch_size``, then
#: ``agg max_num_tokens = max_batch_size + isl + 1500`` and ``agg max_seq_len = isl + osl + 1500``,
#: which ``backend_config_mapping.yaml`` passes to vLLM as ``--max-num-seqs``,
#: ``--max-num-batched-tokens`` and ``--max-model-len`` (``backend_templates/vllm/cli_args.0.12.0.j2``
#: and later). Every kept point has concurrency < 512, so ``max_batch_size`` is 512.
GENERATOR_MAX_BATCH_SIZE = 512
GENERATOR_TOKEN_MARGIN = 1500
GENERATOR_ENGINE = """  # aiconfigurator's generator (vllm.rule, README.md): --max-num-seqs 512,
  # --max-num-batched-tokens 512 + ISL + 1500, --max-model-len ISL + OSL + 1500; no prefix hits (random prompts)
  max_num_seqs: {max_num_seqs}
  max_num_batched_tokens: {max_num_batched_tokens}
  max_model_len: {max_model_len}
  block_size: 16
"""
COLUMNS = (
    "name",
    "concurrency",
    "num_requests",
    "warmup_requests",
    "prompt_tokens",
    "output_tokens",
    "ttft_p50_s",
    "tpot_p50_s",
    "silicon_ttft_ms",
    "silicon_tpot_ms",
    "source_id",
)


INFERENCEX_COLUMNS = (
    COLUMNS[:4] + ("prompt_tokens_min", "prompt_tokens_max", "output_tokens_min", "output_tokens_max") + COLUMNS[6:]
)


def is_inferencex(row: dict) -> bool:
    """A row of the InferenceX benchmark database (see ``INFERENCEX_RANGE_RATIO``)."""
    src = row.get("silicon_data_source", "")
    return src.startswith("db-dump/") and "workflow_run_id=" in src


def _skip_reason(row: dict) -> str | None:
    if row["backend"] != "vllm":
        return f"backend {row['backend']} {row['backend_version']}: fleetcast simulates vLLM's scheduler only"
    if row["mode"] != "agg":
        return "disaggregated prefill/decode workers (mode disagg): not a single-engine point"
    if row["system"] not in GPUS:
        return f"GPU {row['system']!r} is not in the fleetcast catalog"
    if row["precision"] not in WEIGHTS:
        return f"precision {row['precision']!r}: the fleetcast catalog has no such weight format"
    if row["model_path"] not in MODELS:
        return f"model {row['model_path']!r} is not in the fleetcast catalog"
    if int(row["pp_size"] or 1) != 1 or int(row["attention_dp_size"] or 1) != 1:
        return "pipeline or attention data parallelism: not converted"
    return None


def convert(src: Path) -> None:
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    groups: dict[tuple, list[dict]] = {}
    skipped = []
    for row in rows:
        why = _skip_reason(row)
        if why:
            skipped.append(
                {
                    "id": row["id"],
                    "backend": row["backend"],
                    "system": row["system"],
                    "model": row["model_path"],
                    "mode": row["mode"],
                    "reason": why,
                }
            )
            continue
        key = (row["system"], row["model_path"], int(row["tp_size"]), row["precision"], row["backend_version"])
        groups.setdefault(key, []).append(row)
    for (system, model_path, tp, precision, version), grp in sorted(groups.items()):
        model = MODELS[model_path]
        folder = HERE / f"{GPUS[system].split('-')[0]}-{model}-tp{tp}"
        folder.mkdir(exist_ok=True)
        ep = {int(r["moe_ep_size"] or 1) for r in grp}
        extra = engine_extra = ""
        ix = [is_inferencex(r) for r in grp]
        if any(ix) and not all(ix):
            raise SystemExit(f"{folder.name}: InferenceX and other rows in one folder; split them first")
        engine = DEFAULT_ENGINE
        if all(ix):
            lens = {int(r["isl"]) + int(r["osl"]) for r in grp}
            engine_extra = INFERENCEX_ENGINE.format(max_model_len=max(lens) + 200)
            extra = INFERENCEX_EXTRA
        else:
            isls, osls = {int(r["isl"]) for r in grp}, {int(r["osl"]) for r in grp}
            if len(isls) != 1 or any(int(r["batch_size"]) >= GENERATOR_MAX_BATCH_SIZE for r in grp):
                raise SystemExit(f"{folder.name}: one input length and concurrency < 512 a folder expected")
            isl = isls.pop()
            engine = GENERATOR_ENGINE.format(
                max_num_seqs=GENERATOR_MAX_BATCH_SIZE,
                max_num_batched_tokens=GENERATOR_MAX_BATCH_SIZE + isl + GENERATOR_TOKEN_MARGIN,
                max_model_len=isl + max(osls) + GENERATOR_TOKEN_MARGIN,
            )
            if ep != {1}:
                extra = (
                    f"# the source ran expert parallel (moe_ep_size {sorted(ep)}, moe_tp_size "
                    f"{sorted({r['moe_tp_size'] for r in grp})}); replayed as tensor parallel {tp}\n"
                )
        (folder / "fleetcast.yaml").write_text(
            SIDECAR.format(
                backend="vLLM",
                version=version,
                system=system,
                model_path=model_path,
                gpu=GPUS[system],
                model=model,
                tp=tp,
                weights=WEIGHTS[precision],
                precision=precision,
                engine=engine,
                engine_extra=engine_extra,
                extra=extra,
            )
        )
        with open(folder / "points.concurrency.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(INFERENCEX_COLUMNS if all(ix) else COLUMNS)
            for r in grp:
                c = int(r["batch_size"])
                if all(ix):  # uniform lengths on [int(0.8 L), L], 10 requests per client, no warm-up replayed
                    isl, osl = int(r["isl"]), int(r["osl"])
                    load = [INFERENCEX_REQUESTS_PER_CLIENT * c, 0]
                    load += [int(isl * INFERENCEX_RANGE_RATIO), isl, int(osl * INFERENCEX_RANGE_RATIO), osl]
                else:
                    load = [REQUESTS_PER_CLIENT * c, REPLAYED_WARMUP_PER_CLIENT * c, r["isl"], r["osl"]]
                w.writerow(
                    [
                        f"c{c}-i{r['isl']}-o{r['osl']}",
                        c,
                        *load,
                        f"{float(r['silicon_ttft_ms']) / 1e3:.6g}",
                        f"{float(r['silicon_tpot_ms']) / 1e3:.6g}",
                        r["silicon_ttft_ms"],
                        r["silicon_tpot_ms"],
                        r["id"],
                    ]
                )
    with open(HERE / "skipped.csv", "w", newline="", encoding="utf-8") as fh:
        sw = csv.DictWriter(fh, ["id", "backend", "system", "model", "mode", "reason"], lineterminator="\n")
        sw.writeheader()
        sw.writerows(sorted(skipped, key=lambda s: s["id"]))
    print(f"{sum(len(g) for g in groups.values())} points in {len(groups)} folders, {len(skipped)} skipped")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    convert(Path(sys.argv[1]))
