"""Run logs besides testbed run folders (docs/run-logs.md): vLLM bench serve results and
per-request JSONL/CSV logs with a sidecar of engine settings, replayed on a GPU of the main
catalog. Expected values are worked out by hand from the fixtures in tests/data/run-logs/
(README there), never by the code under test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration.logs import load_log
from calibration.runs import measured_metrics, run_scenario
from sim.cli import main
from sim.errors import FleetcastError

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "tests" / "data" / "run-logs"
BENCH = LOGS / "bench-h100.json"
H100_PROFILE = ROOT / "calibration" / "profiles" / "h100-splitwise.json"


# -- bench serve ---------------------------------------------------------------------------------
# bench-h100.json, by hand (start_times 1000.0, 1000.5, 1000.7, 1001.0; request 2 failed):
#   req 0: arrival 0.0, TTFT 0.05, ITLs .01 .02 .03 -> E2E 0.05 + 0.06 = 0.11, TPOT 0.06 / 3 = 0.02
#   req 1: arrival 0.5, TTFT 0.10, ITLs .02 .04     -> E2E 0.16, TPOT 0.06 / 2 = 0.03
#   req 3: arrival 1.0, TTFT 0.08, ITLs .01 x 4     -> E2E 0.12, TPOT 0.04 / 4 = 0.01
#   throughput: (4 + 3 + 5) tokens over first send (0.0) -> last completion (1.0 + 0.12) = 12 / 1.12
BENCH_OK = {0: (0.0, 0.05, 0.02, 0.11), 1: (0.5, 0.10, 0.03, 0.16), 3: (1.0, 0.08, 0.01, 0.12)}
BENCH_MEASURED = {
    "ttft_p50_s": 0.08,
    "tpot_p50_s": 0.02,
    "e2e_p50_s": 0.12,
    "ttft_mean_s": 0.23 / 3,
    "completion_span_s": 1.12,
    "output_tok_s": 12 / 1.12,
}


def test_bench_serve_records_are_the_hand_computed_ones():
    run = load_log(BENCH)
    req = run.requests.set_index("request_id")
    assert list(req["status"]) == ["ok", "ok", "error", "ok"] and run.failed == 1
    for i, (arrival, ttft, tpot, e2e) in BENCH_OK.items():
        r = req.loc[i]
        assert r["arrival_s"] == pytest.approx(arrival, abs=1e-9)
        assert r["ttft_s"] == pytest.approx(ttft, abs=1e-9)
        assert r["tpot_s"] == pytest.approx(tpot, abs=1e-9)
        assert r["e2e_s"] == pytest.approx(e2e, abs=1e-9)
    itls = json.loads(BENCH.read_text())["itls"]
    for i in BENCH_OK:  # one token per chunk here: TPOT is the mean ITL
        assert req.loc[i, "tpot_s"] == pytest.approx(np.mean(itls[i]), abs=1e-9)
    assert np.isnan(req.loc[2, "ttft_s"]) and req.loc[2, "arrival_s"] == pytest.approx(0.7)
    # the replay: the three requests that succeeded, at their send times, with their lengths
    wl = run.workload
    assert wl.arrival_s.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert wl.prompt_tokens.tolist() == [100, 200, 150] and wl.output_tokens.tolist() == [4, 3, 5]
    assert run.gpu == "h100-sxm" and run.model == "llama-3.1-8b" and run.tp == 1 and run.mode == "open"
    assert run.engine["num_gpu_blocks_override"] == 30000 and run.engine["max_num_seqs"] == 256
    assert run.meta["bench_serve"]["output_throughput"] == 9.6  # vLLM's own figure, kept, not compared
    m = measured_metrics(run.requests, run.timeseries)
    for k, v in BENCH_MEASURED.items():
        assert m[k] == pytest.approx(v, abs=1e-9), k
    assert m["requests"] == 4 and m["ok"] == 3
    assert "mean_running" not in m and "mean_waiting" not in m  # no server time series: not measured


def _bench(tmp_path: Path, name: str = "b.json", **changes) -> Path:
    data = json.loads(BENCH.read_text())
    for k, v in changes.items():
        if v is None:
            data.pop(k, None)
        else:
            data[k] = v
    path = tmp_path / name
    path.write_text(json.dumps(data))
    shutil.copy(LOGS / "bench-h100.fleetcast.yaml", path.with_name(path.stem + ".fleetcast.yaml"))
    return path


def test_bench_serve_without_start_times(tmp_path):
    # all sent at once (rate inf, no cap): arrivals 0, said in a note
    run = load_log(_bench(tmp_path, start_times=None, request_rate="inf"))
    assert run.workload.arrival_s.tolist() == [0.0, 0.0, 0.0]
    assert any("no start_times" in n for n in run.notes)
    assert run.requests.set_index("request_id")["e2e_s"].dropna().tolist() == pytest.approx([0.11, 0.16, 0.12])
    # a finite rate (random gaps) or a concurrency cap: the send times are unknown, refused
    for kw, why in (
        ({"request_rate": 4.0}, "gamma draws"),
        ({"request_rate": "inf", "max_concurrency": 8}, "max_concurrency"),
    ):
        with pytest.raises(FleetcastError, match="field start_times is missing") as exc:
            load_log(_bench(tmp_path, start_times=None, **kw))
        assert why in str(exc.value) and "#32667" in str(exc.value)


def test_concurrency_capped_bench_run_of_one_shape_is_a_sweep_point(tmp_path):
    run = load_log(
        _bench(
            tmp_path,
            max_concurrency=2,
            input_lens=[128] * 4,
            output_lens=[4, 4, 0, 4],
            itls=[[0.01] * 3, [0.01] * 3, [], [0.01] * 3],
        )
    )
    assert run.mode == "closed"
    assert run.meta["sweep_point"] == {"concurrency": 2, "prompt_tokens": 128, "output_tokens": 4}


# -- per-request logs ------------------------------------------------------------------------------
# requests-l4.jsonl / .csv, by hand (times minus the earliest arrival 1700000000.0):
#   chat       arrival 0.0, first 0.2, last 0.5, 4 tokens  -> TTFT 0.2, E2E 0.5, TPOT 0.3 / 3 = 0.1
#   chat       arrival 0.5, failed (HTTP 503)
#   summarize  arrival 1.0, first 1.5, last 2.5, 11 tokens -> TTFT 0.5, E2E 1.5, TPOT 1.0 / 10 = 0.1
#   chat       arrival 2.0, first 2.1, last 2.1, 1 token   -> TTFT 0.1, E2E 0.1, no TPOT
#   throughput: 4 + 11 + 1 = 16 tokens over 0.0 -> 2.5 = 6.4 tok/s
# (times of order 1.7e9 s keep ~2.4e-7 s of resolution in float64: compared to 1e-6)
LOG_ROWS = [
    ("chat", 0.0, 0.2, 0.1, 0.5, "ok"),
    ("chat", 0.5, np.nan, np.nan, np.nan, "error"),
    ("summarize", 1.0, 0.5, 0.1, 1.5, "ok"),
    ("chat", 2.0, 0.1, np.nan, 0.1, "ok"),
]


@pytest.mark.parametrize("name", ["requests-l4.jsonl", "requests-l4.csv"])
def test_request_log_records_are_the_hand_computed_ones(name):
    run = load_log(LOGS / name)
    req = run.requests
    assert run.gpu == "l4" and run.weights == "fp8" and run.kv_cache == "fp8" and run.mode == "open"
    assert run.failed == 1 and any("engine.num_gpu_blocks not given" in n for n in run.notes)
    for (cls, arrival, ttft, tpot, e2e, status), (_, r) in zip(LOG_ROWS, req.iterrows()):
        assert (r["class"], r["status"]) == (cls, status)
        for got, want in ((r["arrival_s"], arrival), (r["ttft_s"], ttft), (r["tpot_s"], tpot), (r["e2e_s"], e2e)):
            assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, abs=1e-6)
    assert run.workload.class_names == ["chat", "summarize"]
    assert run.workload.class_idx.tolist() == [0, 1, 0]
    assert run.workload.output_tokens.tolist() == [4, 11, 1]
    m = measured_metrics(req)
    assert m["output_tok_s"] == pytest.approx(16 / 2.5, rel=1e-6)
    assert m["ttft_p50_s"] == pytest.approx(0.2, abs=1e-6) and m["tpot_p50_s"] == pytest.approx(0.1, abs=1e-6)


def test_jsonl_and_csv_give_the_same_run():
    a, b = load_log(LOGS / "requests-l4.jsonl"), load_log(LOGS / "requests-l4.csv")
    cols = ["class", "arrival_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens", "status"]
    pd.testing.assert_frame_equal(a.requests[cols], b.requests[cols])


def test_command_line_settings_override_or_replace_the_sidecar(tmp_path):
    run = load_log(BENCH, None, ["gpu=a100-80gb", "engine.max_num_seqs=64"])
    assert run.gpu == "a100-80gb" and run.engine["max_num_seqs"] == 64 and run.engine["block_size"] == 16
    lone = tmp_path / "lone.json"
    shutil.copy(BENCH, lone)
    run = load_log(lone, None, ["gpu=h200", "model=llama-3.1-8b"])
    assert run.gpu == "h200" and any("max_num_seqs not given" in n for n in run.notes)


def test_the_sidecars_vllm_version_is_the_replays(tmp_path):
    """vllm_version in the sidecar becomes the replayed pool's engine.vllm_version (kernel data and memory
    accounting); a malformed one is refused like a scenario's."""
    log = tmp_path / "r.jsonl"
    log.write_text(JSONL_OK)
    _sidecar(tmp_path, log, GOOD_SIDECAR + 'vllm_version: "0.19.0"\n')
    run = load_log(log)
    assert run.engine["vllm_version"] == "0.19.0"
    assert run_scenario(run, None).fleet[0].engine.vllm_version == "0.19.0"
    _sidecar(tmp_path, log, GOOD_SIDECAR + 'vllm_version: "nineteen"\n')
    with pytest.raises(FleetcastError, match="vllm_version must look like MAJOR.MINOR"):
        load_log(log)


def test_the_sidecars_expert_parallel_is_the_replays(tmp_path):
    """expert_parallel in the sidecar (vLLM --enable-expert-parallel) becomes the replayed pool's
    fleet[].expert_parallel; left out, the pool has none; a value that is not a boolean is refused."""
    log = tmp_path / "r.jsonl"
    log.write_text(JSONL_OK)
    _sidecar(tmp_path, log, "gpu: h200\nmodel: mixtral-8x7b\ntensor_parallel: 8\nexpert_parallel: true\n")
    assert run_scenario(load_log(log), None).fleet[0].expert_parallel is True
    _sidecar(tmp_path, log, "gpu: h200\nmodel: mixtral-8x7b\ntensor_parallel: 8\n")
    assert run_scenario(load_log(log), None).fleet[0].expert_parallel is False
    _sidecar(tmp_path, log, GOOD_SIDECAR + "expert_parallel: yes please\n")
    with pytest.raises(FleetcastError, match="expert_parallel"):
        load_log(log)


def test_engine_core_v0_without_chunked_prefill_replays_prefill_first(tmp_path):
    """vLLM's V0 engine without chunked prefill schedules a step of prefills or a step of decodes
    (vllm/core/scheduler.py, _schedule_default): ``engine_core: v0`` replays it with fleetcast's
    prefill-first policy; with chunked prefill on, or without the key, the replay keeps V1's
    continuous batching. A value other than v0 / v1 is refused with its line."""
    log = tmp_path / "r.jsonl"
    log.write_text(JSONL_OK)
    cases = (
        ("engine_core: v0\nengine: {enable_chunked_prefill: false}\n", "prefill-first"),
        ("engine_core: v0\nengine: {enable_chunked_prefill: true}\n", "continuous"),
        ("engine: {enable_chunked_prefill: false}\n", "continuous"),
    )
    for extra, policy in cases:
        _sidecar(tmp_path, log, GOOD_SIDECAR + extra)
        assert run_scenario(load_log(log), None).fleet[0].policy.name == policy, extra
    _sidecar(tmp_path, log, GOOD_SIDECAR + "engine_core: v2\n")
    with pytest.raises(FleetcastError, match="line 3, field engine_core"):
        load_log(log)


def test_engine_core_v0_reaches_the_engine_with_its_version(tmp_path):
    """``engine_core: v0`` with a version before 0.11 reaches the replay's engine (V0's CPU side); without a
    version it keeps the prefill-first scheduler only, with a note; with 0.11 or later (V0 removed) it is a
    located error."""
    log = tmp_path / "r.jsonl"
    log.write_text(JSONL_OK)
    _sidecar(tmp_path, log, GOOD_SIDECAR + 'engine_core: v0\nvllm_version: "0.9.0"\n')
    assert run_scenario(load_log(log), None).fleet[0].engine.engine_core == "v0"
    _sidecar(tmp_path, log, GOOD_SIDECAR + "engine_core: v0\n")
    run = load_log(log)
    assert run_scenario(run, None).fleet[0].engine.engine_core is None
    assert any("engine_core v0 without a vllm_version" in n for n in run.meta["notes"])
    _sidecar(tmp_path, log, GOOD_SIDECAR + 'engine_core: v0\nvllm_version: "0.11.0"\n')
    with pytest.raises(
        FleetcastError,
        match=r"r.fleetcast.yaml, line \d+ \(engine_core\), line \d+ \(vllm_version\): engine_core v0 needs a vllm_version",
    ):
        load_log(log)


# -- the command, end to end -------------------------------------------------------------------------
def test_validate_a_bench_result_on_a_gpu_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["validate", "--profile", str(H100_PROFILE), str(BENCH), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not measured" in printed and "1 failed request" in printed
    table = pd.read_csv(out / "errors.csv").set_index("metric")
    for k in ("ttft_p50_s", "tpot_p50_s", "e2e_p50_s", "output_tok_s"):
        assert table.loc[k, "measured"] == pytest.approx(BENCH_MEASURED[k], rel=1e-5), k
        assert np.isfinite(table.loc[k, "predicted"]) and table.loc[k, "predicted"] > 0
    assert table.loc["mean_running", "note"] == "not measured" and np.isnan(table.loc["mean_running", "error_pct"])
    summary = json.loads((out / "errors.json").read_text())
    run = summary["runs"]["run-logs/bench-h100.json"]
    assert run["failed_requests"] == 1 and run["gpu"] == "h100-sxm" and run["source"] == "vllm bench serve"
    assert run["not_measured"] == ["mean_running", "mean_waiting"]
    assert run["measured"]["completion_span_s"] == pytest.approx(1.12)
    assert "mean_running" not in summary["held_out_open_loop"]  # skipped, not an error of 0
    assert "not measured" in (out / "index.html").read_text()
    assert (out / "run-logs__bench-h100.json-cdf.png").is_file()


def test_validate_a_folder_of_logs(tmp_path, capsys):
    logs, out = tmp_path / "run-logs", tmp_path / "out"
    shutil.copytree(LOGS, logs)
    (logs / "bench-h100.pytorch.json").write_text("[]")  # bench serve's PyTorch-format copy: not a run
    assert main(["validate", "--profile", str(H100_PROFILE), str(logs), "--out", str(out)]) == 0
    runs = set(pd.read_csv(out / "errors.csv")["run"])
    assert runs == {"run-logs/bench-h100.json", "run-logs/requests-l4.jsonl", "run-logs/requests-l4.csv"}
    assert "fitted on h100-sxm" in capsys.readouterr().out  # the l4 logs are outside the profile's range


def _closed_loop_log(tmp_path: Path, prompt: int, ttft_s: float, n: int = 6) -> Path:
    """A bench result of one user (max_concurrency 1) sending one request after another."""
    out, itl = 16, 0.008
    e2e = ttft_s + (out - 1) * itl
    data = {
        "backend": "openai",
        "num_prompts": n,
        "request_rate": "inf",
        "max_concurrency": 1,
        "input_lens": [prompt] * n,
        "output_lens": [out] * n,
        "ttfts": [ttft_s] * n,
        "itls": [[itl] * (out - 1)] * n,
        "errors": [""] * n,
        "start_times": [100.0 + i * (e2e + 0.001) for i in range(n)],
    }
    path = tmp_path / f"c1-p{prompt}.json"
    path.write_text(json.dumps(data))
    return path


def test_calibrate_from_concurrency_capped_bench_results(tmp_path, capsys):
    logs = [_closed_loop_log(tmp_path, 128, 0.020), _closed_loop_log(tmp_path, 1024, 0.045)]
    prof = tmp_path / "h100-logs.json"
    code = main(["calibrate", *map(str, logs), "--out", str(prof), "--gpu", "h100-sxm", "--model", "llama-3.1-8b"])
    assert code == 0, capsys.readouterr().err
    data = json.loads(prof.read_text())
    assert data["fitted_range"]["gpu"] == "h100-sxm" and data["fitted_range"]["max_batch"] == 1
    assert data["provenance"]["catalog"] == [] and data["provenance"]["hardware"]["gpu"] == "h100-sxm"
    assert data["provenance"]["fit_error"]["observables"]["n"] == 4  # TTFT and TPOT of each run


def test_calibrate_above_concurrency_one_needs_the_simulation_method(tmp_path, capsys):
    log = _closed_loop_log(tmp_path, 256, 0.030, n=8)
    data = json.loads(log.read_text())
    data["max_concurrency"], data["start_times"] = 4, [100.0] * 4 + [100.2] * 4
    log.write_text(json.dumps(data))
    flags = ["--gpu", "h100-sxm", "--model", "llama-3.1-8b"]
    prof = tmp_path / "p.json"
    assert main(["calibrate", str(log), "--out", str(prof), *flags]) == 2
    assert "--method simulation" in capsys.readouterr().err and not prof.exists()
    assert main(["calibrate", str(log), "--out", str(prof), *flags, "--method", "simulation", "--max-nfev", "3"]) == 0
    data = json.loads(prof.read_text())
    assert data["provenance"]["fit_error"]["start"] == "catalog perf_defaults of h100-sxm"
    assert data["fitted_range"]["max_batch"] == 4


def test_calibrate_refuses_an_open_loop_log(tmp_path, capsys):
    code = main(["calibrate", str(BENCH), "--out", str(tmp_path / "p.json")])
    assert code == 2 and "closed-loop" in capsys.readouterr().err and not (tmp_path / "p.json").exists()


# -- bad input: located error, exit 2, nothing written -------------------------------------------------
def _sidecar(tmp_path: Path, log: Path, text: str) -> None:
    log.with_name(log.stem + ".fleetcast.yaml").write_text(text)


GOOD_SIDECAR = "gpu: h100-sxm\nmodel: llama-3.1-8b\n"
JSONL_OK = '{"arrival_s": 0, "first_token_s": 0.1, "last_token_s": 0.2, "prompt_tokens": 8, "output_tokens": 2}\n'

BAD = [
    # (file name, content, sidecar, expected pieces of the message)
    (
        "r.json",
        '{"ttfts": [0.1],\n "itls": [[]],\n "input_lens": [1, }',
        GOOD_SIDECAR,
        ["r.json, line 3, column", "not valid JSON"],
    ),
    ("r.json", "[1, 2]", GOOD_SIDECAR, ["r.json", "one JSON object"]),
    (
        "r.json",
        '{"num_prompts": 2, "output_throughput": 1.0}',
        GOOD_SIDECAR,
        ["field input_lens is missing", "summary only", "--save-detailed"],
    ),
    (
        "r.json",
        json.dumps(
            {
                "input_lens": [1, 2],
                "output_lens": [2, 2],
                "ttfts": [0.1],
                "itls": [[0.1], [0.1]],
                "errors": ["", ""],
                "start_times": [0, 1],
            }
        ),
        GOOD_SIDECAR,
        ["field ttfts has 1 entries but input_lens has 2"],
    ),
    (
        "r.json",
        json.dumps(
            {
                "input_lens": [1, 2],
                "output_lens": [2, 2],
                "ttfts": [0.1, 0.1],
                "itls": [[0.1], [0.1, "x"]],
                "errors": ["", ""],
                "start_times": [0, 1],
            }
        ),
        GOOD_SIDECAR,
        ["request 1, field itls[1]", "finite number from 0 to 1e+06", "'x'"],
    ),
    (
        "r.json",
        json.dumps(
            {
                "input_lens": [1],
                "output_lens": [2],
                "ttfts": [-0.1],
                "itls": [[0.1]],
                "errors": [""],
                "start_times": [0],
            }
        ),
        GOOD_SIDECAR,
        ["request 0, field ttfts", "-0.1"],
    ),
    (
        "r.json",
        json.dumps(
            {
                "input_lens": [1],
                "output_lens": [2.5],
                "ttfts": [0.1],
                "itls": [[0.1]],
                "errors": [""],
                "start_times": [0],
            }
        ),
        GOOD_SIDECAR,
        ["request 0, field output_lens", "integer >= 1"],
    ),
    (
        "r.json",
        json.dumps(
            {"input_lens": [1], "output_lens": [0], "ttfts": [0], "itls": [[]], "errors": ["boom"], "start_times": [0]}
        ),
        GOOD_SIDECAR,
        ["every one of its 1 requests failed", "boom"],
    ),
    ("r.json", '{"hello": 1}', GOOD_SIDECAR, ["not a vLLM bench serve result"]),
    (
        "r.jsonl",
        JSONL_OK + '{"arrival_s": 1, "prompt_tokens": 8,\n',
        GOOD_SIDECAR,
        ["r.jsonl, line 2, column", "not valid JSON"],
    ),
    (
        "r.jsonl",
        '{"arrival_s": 0, "prompt_tokens": 8, "output_tokens": 2, "last_token_s": 1}\n',
        GOOD_SIDECAR,
        ["r.jsonl, line 1: field first_token_s is missing"],
    ),
    (
        "r.jsonl",
        JSONL_OK + '{"arrival_s": 5, "first_token_s": 4, "last_token_s": 6, "prompt_tokens": 8, "output_tokens": 2}\n',
        GOOD_SIDECAR,
        ["r.jsonl, line 2, field first_token_s", "before arrival_s"],
    ),
    (
        "r.jsonl",
        JSONL_OK + '{"arrival_s": 1, "prompt_tokens": 8, "ok": "maybe"}\n',
        GOOD_SIDECAR,
        ["line 2, field ok", "true or false"],
    ),
    (
        "r.csv",
        "arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens\n0,0.1,0.2,8,2\n1,1.1,1.2,eight,2\n",
        GOOD_SIDECAR,
        ["r.csv, line 3, field prompt_tokens", "integer >= 1", "'eight'"],
    ),
    (
        "r.csv",
        "arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens\n0,0.1,0.2,8\n",
        GOOD_SIDECAR,
        ["r.csv, line 2: 4 cells but the header names 5 columns"],
    ),
    ("r.csv", "when,tokens\n0,8\n", GOOD_SIDECAR, ["r.csv, line 1", "arrival_s, prompt_tokens"]),
    (
        "r.jsonl",
        JSONL_OK,
        "gpu: h100\nmodel: llama-3.1-8b\n",
        ["r.fleetcast.yaml, line 1, field gpu", "unknown GPU 'h100'", "Did you mean 'h100-sxm'", "rtx-4090"],
    ),
    (
        "r.jsonl",
        JSONL_OK,
        "gpu: h100-sxm\nmodel: llama-9b\n",
        ["line 2, field model", "unknown model", "llama-3.1-8b", "mistral-7b"],
    ),
    (
        "r.jsonl",
        JSONL_OK,
        GOOD_SIDECAR + "engine:\n  max_num_seq: 8\n",
        ["r.fleetcast.yaml: line 4, field engine.max_num_seq", "unknown key", "docs/run-logs.md"],
    ),
    ("r.jsonl", JSONL_OK, GOOD_SIDECAR + "engine:\n  block_size: 12\n", ["field engine.block_size", "12"]),
    ("r.jsonl", JSONL_OK, "model: llama-3.1-8b\n", ["field gpu: required field is missing"]),
    (
        "r.jsonl",
        JSONL_OK,
        GOOD_SIDECAR + "engine: {max_num_seqs: 512, max_num_batched_tokens: 256}\n",
        ["r.fleetcast.yaml, line 3 (engine):", "must be >= max_num_seqs"],
    ),
    ("r.jsonl", JSONL_OK, None, ["r.jsonl: no engine settings", "r.fleetcast.yaml", "--gpu NAME --model NAME"]),
]


@pytest.mark.parametrize("name,content,sidecar,pieces", BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_logs_are_located_errors_and_write_nothing(tmp_path, capsys, name, content, sidecar, pieces):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / name
    log.write_text(content)
    if sidecar is not None:
        _sidecar(tmp_path, log, sidecar)
    out = tmp_path / "out"
    code = main(["validate", "--profile", str(H100_PROFILE), str(log), "--out", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err
    for piece in pieces:
        assert piece in err, f"{piece!r} not in: {err}"
    assert not out.exists(), "a refused validation wrote its output folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]


def test_chat_endpoint_reaches_the_replay_and_a_bad_value_is_located(tmp_path):
    """``engine.chat_endpoint`` (the client sent chat requests or completions) reaches the replay's engine;
    unset it stays unset (the chat endpoint assumed); a value that is not a boolean is refused with its line."""
    log = tmp_path / "r.jsonl"
    log.write_text(JSONL_OK)
    _sidecar(tmp_path, log, GOOD_SIDECAR + 'vllm_version: "0.9.0"\nengine: {chat_endpoint: false}\n')
    assert run_scenario(load_log(log), None).fleet[0].engine.chat_endpoint is False
    _sidecar(tmp_path, log, GOOD_SIDECAR + 'vllm_version: "0.9.0"\n')
    assert run_scenario(load_log(log), None).fleet[0].engine.chat_endpoint is None
    _sidecar(tmp_path, log, GOOD_SIDECAR + "engine:\n  chat_endpoint: sometimes\n")
    with pytest.raises(FleetcastError, match="line 4, field engine.chat_endpoint"):
        load_log(log)


@pytest.mark.parametrize(
    "field, value, expect",
    [
        ("ttfts", [0.05, 1e300, 0.0, 0.08], "request 1, field ttfts: must be a finite number from 0 to 1e+06 (seconds), got 1e+300"),
        ("itls", [[0.01, 0.02, 0.03], [0.02, 6e5], [], [6e5, 6e5, 0.01, 0.01]],
         "request 3, fields ttfts and itls: the request's latency adds up to 1.2e+06 s; a latency is at most 1e+06 s"),
    ],
)
def test_a_bench_latency_past_the_longest_is_a_located_error(tmp_path, field, value, expect):
    """A TTFT of 1e300 s (or gaps adding up past 1e6 s, the longest latency the scenario format takes)
    was read as a latency, silently (stop 35's leftover); 0.08 + 1.2e6 rounds to 1.2e+06 in %g."""
    with pytest.raises(FleetcastError) as exc:
        load_log(_bench(tmp_path, **{field: value}))
    assert expect in str(exc.value) and "b.json" in str(exc.value)


def test_a_request_log_latency_past_the_longest_is_a_located_error(tmp_path):
    lines = (LOGS / "requests-l4.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["first_token_s"] = rec["last_token_s"] = 1e300
    lines[1] = json.dumps(rec)
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines) + "\n")
    shutil.copy(LOGS / "fleetcast.yaml", tmp_path / "fleetcast.yaml")
    with pytest.raises(FleetcastError) as exc:
        load_log(path)
    assert f"r.jsonl, line 2, field first_token_s: 1e+300 is 1e+300 s after arrival_s {rec['arrival_s']:g}" in str(
        exc.value
    ) and "a latency is at most 1e+06 s" in str(exc.value)
