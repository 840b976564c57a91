"""Prometheus parser, scraper frames, prompts and model-builder input checks (no vLLM)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sim.errors import FleetcastError
from sim.records import TIMESERIES_COLUMNS
from testbed.fake_server import FakeVllm
from testbed.prompts import allowed_token_ids, closed_loop_requests, requests_from_workload
from testbed.scrape import (MetricsScraper, cache_config, histogram, histogram_quantile_bounds,
                            metric_sum, parse_prometheus)

TEXT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
vllm:prompt_tokens_total{engine="0",model_name="m"} 1234.0
vllm:prompt_tokens_created{engine="0",model_name="m"} 1.79e+09
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.01",model_name="m"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 6.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="1.0",model_name="m"} 10.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 10.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 10.0
vllm:cache_config_info{block_size="128",num_gpu_blocks="4096",odd="a \\"q\\", b"} 1.0
weird line without value
nan_metric NaN
"""


def test_parse_and_sum_over_label_sets():
    samples = parse_prometheus(TEXT)
    assert metric_sum(samples, "vllm:num_requests_running") == 5.0
    assert metric_sum(samples, "vllm:kv_cache_usage_perc") == 0.25
    assert metric_sum(samples, "missing", "vllm:prompt_tokens_total") == 1234.0  # fallback names
    assert math.isnan(metric_sum(samples, "missing"))
    assert math.isnan(metric_sum(samples, "nan_metric"))
    cfg = cache_config(samples)
    assert cfg["block_size"] == "128" and cfg["num_gpu_blocks"] == "4096"
    assert cfg["odd"] == 'a "q", b'


def test_prefix_filter_keeps_only_wanted():
    samples = parse_prometheus(TEXT, prefixes=("vllm:kv_cache",))
    assert [s.name for s in samples] == ["vllm:kv_cache_usage_perc"]


def test_histogram_and_quantile_bounds():
    edges, cum = histogram(parse_prometheus(TEXT), "vllm:time_to_first_token_seconds")
    assert list(edges) == [0.01, 0.1, 1.0, math.inf] and list(cum) == [1, 6, 10, 10]
    assert histogram_quantile_bounds(edges, cum, 0.5) == (0.01, 0.1)
    assert histogram_quantile_bounds(edges, cum, 0.05) == (0.0, 0.01)
    assert histogram_quantile_bounds(edges, cum, 0.99) == (0.1, 1.0)
    assert all(math.isnan(x) for x in histogram_quantile_bounds(edges, cum * 0, 0.5))


def test_scraper_frames_follow_the_record_schema():
    fake = FakeVllm()
    port = fake.serve_in_thread()
    try:
        clock = iter(np.arange(0, 100, 0.5)).__next__
        sc = MetricsScraper(f"http://127.0.0.1:{port}", clock, 0.0)
        sc.scrape_once()
        fake.running = 4
        sc.scrape_once()
    finally:
        fake.shutdown()
    ts, raw = sc.to_frames()
    assert list(ts.columns) == list(TIMESERIES_COLUMNS)
    assert ts["running"].tolist() == [0, 4] and (ts["replica"] == "vllm-0").all()
    assert ts["kv_usage"].iloc[1] == pytest.approx(0.25)
    assert "prompt_tokens_total" in raw.columns


def test_batch_tokens_from_iteration_histogram():
    sc = MetricsScraper("http://unused", lambda: 0.0, 0.0)
    base = dict(running=1, waiting=0, kv_usage=0.1)
    sc.rows = [dict(t_s=0.0, iteration_tokens_sum=100.0, iteration_tokens_count=10.0, **base),
               dict(t_s=1.0, iteration_tokens_sum=400.0, iteration_tokens_count=20.0, **base),
               dict(t_s=2.0, iteration_tokens_sum=400.0, iteration_tokens_count=20.0, **base)]
    ts, _ = sc.to_frames()
    assert ts["batch_tokens"].tolist() == [0, 30, 0]  # 300 tokens over 10 steps; idle


@pytest.fixture
def model_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"vocab_size": 300, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}))
    vocab = {f"t{i}": i for i in range(290)}  # tokenizer smaller than the embedding
    (tmp_path / "tokenizer.json").write_text(json.dumps(
        {"model": {"vocab": vocab}, "added_tokens": [{"id": 5, "special": True}]}))
    return tmp_path


class Wl:
    arrival_s = np.array([2.0, 2.5, 4.0])
    class_idx = np.array([0, 1, 0])
    prompt_tokens = np.array([10, 20, 30])
    output_tokens = np.array([5, 6, 7])
    class_names = ["a", "b"]


def test_prompts_exact_lengths_no_special_tokens_and_seeded(model_dir):
    allowed = allowed_token_ids(model_dir)
    assert allowed.max() == 289 and not {0, 1, 2, 5} & set(allowed.tolist())
    specs = requests_from_workload(Wl(), model_dir, seed=1)
    assert [s.prompt_tokens for s in specs] == [10, 20, 30]
    assert [s.arrival_s for s in specs] == [0.0, 0.5, 2.0]
    assert [s.class_name for s in specs] == ["a", "b", "a"]
    again = requests_from_workload(Wl(), model_dir, seed=1, max_requests=2)
    assert len(again) == 2 and (again[1].prompt_ids == specs[1].prompt_ids).all()
    other = requests_from_workload(Wl(), model_dir, seed=2)
    assert not (other[0].prompt_ids == specs[0].prompt_ids).all()
    closed = closed_loop_requests(4, 16, 8, model_dir, seed=0)
    assert all(s.prompt_tokens == 16 and math.isnan(s.arrival_s) for s in closed)


def test_too_long_requests_are_a_user_error(model_dir):
    with pytest.raises(FleetcastError, match="max-model-len 30"):
        requests_from_workload(Wl(), model_dir, seed=1, max_model_len=30)


def test_model_folder_without_config(tmp_path):
    with pytest.raises(FleetcastError, match="config.json"):
        allowed_token_ids(tmp_path)


def test_build_model_rejects_unknown_size_and_scheme(tmp_path):
    from testbed.models import build_model, quantize

    with pytest.raises(FleetcastError, match="unknown model size 'huge'"):
        build_model(tmp_path / "m", "huge")
    with pytest.raises(FleetcastError, match="unknown quantization scheme"):
        quantize(tmp_path, tmp_path / "q", "int3")


def test_prefix_chains_give_equal_tokens_for_equal_keys(model_dir):
    class WlPrefix(Wl):
        prefix_offsets = np.array([0, 2, 3, 3])
        prefix_keys = np.array([11, 12, 11])
        prefix_end_tok = np.array([4, 8, 4])

    a, b, c = requests_from_workload(WlPrefix(), model_dir, seed=1)
    assert (a.prompt_ids[:4] == b.prompt_ids[:4]).all()  # shared chunk (key 11)
    assert not (a.prompt_ids[4:8] == b.prompt_ids[4:8]).all()  # b's own tokens after it
    assert not (a.prompt_ids[:4] == c.prompt_ids[:4]).all()
    assert [s.prompt_tokens for s in (a, b, c)] == [10, 20, 30]


def test_run_folder_tables_and_completion_flag(tmp_path):
    import pandas as pd

    from sim.records import REQUEST_COLUMNS
    from testbed.runfolder import (hardware_info, is_complete, read_run, requests_frame,
                                   write_run_json, write_tables)

    row = dict(request_id=1, **{"class": "a"}, arrival_s=0.0, first_token_s=0.1, finish_s=0.5,
               prompt_tokens=10, output_tokens=5, cached_prompt_tokens=0, replica="vllm-0",
               preemptions=0, status="ok")
    cancelled = {**row, "request_id": 0, "first_token_s": math.nan, "finish_s": math.nan,
                 "output_tokens": 0, "status": "cancelled"}
    df = requests_frame([row, cancelled])
    assert df["request_id"].tolist() == [0, 1]
    assert list(df.columns)[: len(REQUEST_COLUMNS)] == list(REQUEST_COLUMNS)
    assert df["tpot_s"].iloc[1] == pytest.approx(0.1) and math.isnan(df["ttft_s"].iloc[0])
    write_run_json(tmp_path, {"completed": False, "reason": "running"})
    assert not is_complete(tmp_path) and not is_complete(tmp_path / "missing")
    ts = pd.DataFrame({"t_s": [0.0], "replica": ["vllm-0"], "running": [1], "waiting": [0],
                       "kv_usage": [0.1], "batch_tokens": [3]})
    write_tables(tmp_path, df, [(1, 1, 0.1)], ts, ts)
    write_run_json(tmp_path, {"completed": True, "hardware": hardware_info()})
    run = read_run(tmp_path)
    assert is_complete(tmp_path) and len(run["requests"]) == 2 and len(run["itl"]) == 1
    assert run["meta"]["hardware"]["cpu_cores"] >= 1
