"""The load generator behind a public closed-loop point, as its scripts document it: the aiconfigurator
silicon row that comes from InferenceX's benchmark database replays with InferenceX's client (uniform
lengths from ``--random-range-ratio 0.8``, 10 requests per client, the warm-up a separate phase), the
aiperf rows without their warm-up (aiperf's phases run one after another). Expected values by hand."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

from calibration.logs.aggregate import load_aggregate
from calibration.validate import validate_run

AIC = Path(__file__).resolve().parents[1] / "calibration" / "public" / "aiconfigurator"


def _convert_module():
    spec = importlib.util.spec_from_file_location("aic_convert", AIC / "convert.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_only_inferencex_database_rows_are_recognised():
    conv = _convert_module()
    ix = "db-dump/2026-04-27; config_id=637; silicon_concurrency=32; measured=2026-03-28T00:00:00.000Z; workflow_run_id=344"
    other = "source_file=2026-03-25.csv; model=MiniMax-M2.5; silicon_concurrency=16; image=vllm/vllm-openai:v0.18.0"
    assert conv.is_inferencex({"silicon_data_source": ix})
    assert not conv.is_inferencex({"silicon_data_source": other})
    assert not conv.is_inferencex({"silicon_data_source": "db-dump/2026-04-27; config_id=1"})  # no workflow run


def test_the_inferencex_row_replays_inferencexs_client():
    """cfg637: concurrency 32, ISL = OSL = 1,024. InferenceX's client sends 10 x 32 = 320 measured requests,
    lengths uniform on int(0.8 x 1024) = 819 .. 1024; its 2 x 32 warm-ups end before them (not replayed);
    the server: --enable-expert-parallel (EP_SIZE 1 passes ``-ge 1``), 0.95 memory, no prefix caching,
    max_model_len 1024 + 1024 + 200 = 2,248."""
    folder = AIC / "h200-minimax-m2.5-tp8"
    with open(folder / "points.concurrency.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["num_requests"], row["warmup_requests"]) == ("320", "0")
    assert (row["prompt_tokens_min"], row["prompt_tokens_max"]) == ("819", "1024")
    assert (row["output_tokens_min"], row["output_tokens_max"]) == ("819", "1024")
    (run,) = load_aggregate(folder / "points.concurrency.csv")
    assert run.expert_parallel and "warmup_requests" not in run.meta
    assert run.engine["gpu_memory_utilization"] == 0.95 and run.engine["enable_prefix_caching"] is False
    assert run.engine["max_model_len"] == 2248
    assert run.workload.output_tokens.min() >= 819 and run.workload.output_tokens.max() <= 1024
    assert len(set(run.workload.output_tokens.tolist())) > 100  # the clients' requests end at different steps


def test_aiperf_rows_keep_fixed_lengths_and_replay_no_warm_up():
    """aiperf starts its profiling phase once every warm-up credit has returned: the measured requests start
    together on an idle server, so the replay sends 20 x c of them and no warm-up."""
    folder = AIC / "h100-qwen3-32b-tp2"
    with open(folder / "points.concurrency.csv", newline="", encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["concurrency"], row["num_requests"], row["warmup_requests"]) == ("32", "640", "0")
    assert (row["prompt_tokens"], row["output_tokens"]) == ("1024", "1024")


def test_aiperf_rows_replay_the_generators_engine_limits():
    """aiconfigurator's vLLM rule plugin (vllm.rule @ 095f58a5): max_batch_size 512 below concurrency 512, then
    max_num_tokens = 512 + ISL + 1500 and max_seq_len = ISL + OSL + 1500. By hand: ISL/OSL 1024/1024 -> 3,036
    batched tokens, 3,548 model length; Qwen3-235B's 1000/100 -> 3,012 and 2,600. InferenceX's script sets
    neither: vLLM's API-server defaults (1,024 / 8,192) stay."""
    want = {
        "h100-qwen3-32b-tp2": (512, 3036, 3548),
        "b200-minimax-m2.5-tp2": (512, 3036, 3548),
        "h100-minimax-m2.5-tp4": (512, 3036, 3548),
        "h200-qwen3-235b-a22b-tp2": (512, 3012, 2600),
    }
    for folder, (seqs, batched, model_len) in want.items():
        (run,) = load_aggregate(AIC / folder / "points.concurrency.csv")
        got = (run.engine["max_num_seqs"], run.engine["max_num_batched_tokens"], run.engine["max_model_len"])
        assert got == (seqs, batched, model_len), folder
    (ix,) = load_aggregate(AIC / "h200-minimax-m2.5-tp8" / "points.concurrency.csv")
    assert (ix.engine["max_num_seqs"], ix.engine["max_num_batched_tokens"]) == (1024, 8192)


def test_the_budget_spreads_the_first_wave_over_at_least_eleven_steps():
    """Qwen3-32B TP2, 32 clients x 1,024-token prompts, 3,036 batched tokens: a step prefills at most 3,036
    prompt tokens, so at most ceil(3036 / 1024) = 3 prompts complete their prefill in one step, and the first
    wave's 32 first tokens come from at least ceil(32 / 3) = 11 different steps (with 8,192 tokens: 8 a step,
    as few as 4 steps): the clients cannot stay in groups larger than 3."""
    (run,) = load_aggregate(AIC / "h100-qwen3-32b-tp2" / "points.concurrency.csv")
    rq = validate_run(run, None).sim_requests
    first = rq[rq["request_id"] < 32]["first_token_s"]
    assert first.nunique() >= 11
    assert first.value_counts().max() <= 3
