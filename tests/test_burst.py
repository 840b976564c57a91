"""Saturated bursts (``*.burst.csv``): all requests sent at once to a server capped at
``max_num_seqs``, measured over the ML.ENERGY Benchmark's steady window; and the ML.ENERGY v3
entries of the public corpus (calibration/public/ml_energy/).

Expected values come from the definitions and from the source's own files, not from the
simulator: the steady window of a hand-made run (the B-th first token to the (N-B-1)-th finish)
and the tokens inside it counted by hand; a histogram's lengths placed by hand; the source
figures copied from ml-energy/leaderboard @ 0cd52dab (public/data/models/
meta-llama__Llama-3.1-8B-Instruct__lm-arena-chat.json, its B200 max_num_seqs 8 configuration);
the batch a server at its cap holds (the cap, while the queue is not empty), and at the cap every
step is one token for each running sequence, so throughput = batch / inter-token latency.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration.logs.aggregate import load_aggregate
from calibration.public_corpus import CORPUS, discover, replay_entry, run_regime
from calibration.steady_state import steady_window, tokens_in
from calibration.validate import validate_run
from sim.cli import main
from sim.errors import FleetcastError

ML = CORPUS / "ml_energy"
HEAD = "name,num_requests,max_num_seqs,prompt_tokens,output_tokens,output_tok_s,itl_p50_s,avg_batch_size\n"


def _table(tmp_path: Path, text: str, sidecar: str = "gpu: h100-sxm\nmodel: llama-3.1-8b\n") -> Path:
    (tmp_path / "fleetcast.yaml").write_text(sidecar)
    p = tmp_path / "x.burst.csv"
    p.write_text(text)
    return p


def test_the_steady_window_and_the_tokens_inside_it():
    # N = 5 requests, cap B = 2: the window opens at the 2nd first token (t = 2) and closes at the
    # (5 - 2 - 1) = 2nd finish (t = 11)
    req = pd.DataFrame(
        {
            "first_token_s": [1.0, 2.0, 3.0, 4.0, 5.0],
            "finish_s": [10.0, 11.0, 12.0, 13.0, 14.0],
            "output_tokens": [10, 10, 1, 4, 2],
            "status": ["ok"] * 5,
        }
    )
    assert steady_window(req, 2, 5) == (2.0, 11.0)
    # request 0: tokens at 1, 2, ..., 10 -> 3..10 are in (2, 11]: 8; request 1: 2, 3, ..., 11 -> 3..11: 9;
    # request 2: its one token at 3: 1; request 3: 4, 7, 10, 13 -> 3; request 4: 5, 14 -> 1
    assert tokens_in(req, 2.0, 11.0) == 8 + 9 + 1 + 3 + 1
    # a run that never had B first tokens has no window
    assert np.isnan(steady_window(req, 6, 5)[0])


def test_output_lengths_from_a_histogram(tmp_path):
    # bins [1, 11) x 2 and [11, 21] x 1: the first bin's two requests at the midpoints of its halves
    # (3.5 and 8.5, rounded half to even: 4 and 8), the second's one at its middle, 16
    p = _table(
        tmp_path,
        "num_requests,max_num_seqs,prompt_tokens,output_tokens_hist_edges,output_tokens_hist_counts,output_tok_s\n"
        "3,2,100,1 11 21,2 1,50\n",
    )
    (run,) = load_aggregate(p)
    assert sorted(run.workload.output_tokens.tolist()) == [4, 8, 16]
    assert run.engine["max_num_seqs"] == 2 and run.meta["steady_state"] == {"max_num_seqs": 2, "num_requests": 3}
    assert run.name.endswith("/s2-n3") and run_regime(run) == "saturation" and run.mode == "open"
    assert (run.workload.arrival_s == 0).all()


def test_a_burst_replays_at_its_cap(tmp_path):
    p = _table(tmp_path, HEAD + "cap4,24,4,128,960,400,0.008,4\n")
    (run,) = load_aggregate(p)
    comp = validate_run(run, None)
    got = comp.predicted
    # the queue never runs dry inside the window (24 requests, cap 4): the batch is the cap
    assert got["avg_batch_size"] == pytest.approx(4.0, rel=0.03)
    # every step of the window is one decode token for each of the 4 sequences (prompts join as
    # requests leave, adding a little to some steps): throughput ~ batch / typical gap
    assert got["output_tok_s"] == pytest.approx(4.0 / got["itl_p50_s"], rel=0.10)
    assert got["steady_end_s"] > got["steady_start_s"] > 0
    assert got["itl_p50_s"] <= got["itl_p90_s"] <= got["itl_p95_s"] <= got["itl_p99_s"]
    assert set(comp.measured) == {"output_tok_s", "itl_p50_s", "avg_batch_size"}


@pytest.mark.parametrize(
    "row,where",
    [
        ("3,2,100,1 11 21,2 2,50", "line 2, field output_tokens_hist_counts: the counts add up to 4"),
        ("3,2,100,1 11 21,3,50", "line 2, field output_tokens_hist_counts: 1 counts for 3 edges"),
        ("3,2,100,1 21 11,2 1,50", "line 2, field output_tokens_hist_edges: must increase strictly"),
        ("3,2,100,1 11 x,2 1,50", "line 2, field output_tokens_hist_edges: must be space-separated numbers"),
        ("3,2,100,1 11 21,2 0.5,50", "line 2, field output_tokens_hist_counts: must be space-separated integers"),
        ("3,5000,100,1 11 21,2 1,50", "line 2, field max_num_seqs: at most 4096"),
        ("3,two,100,1 11 21,2 1,50", "line 2, field max_num_seqs: must be an integer >= 1"),
        ("3,2,100,1 11 21,2 1,", "line 2: no measured value"),
    ],
)
def test_bad_burst_rows_are_located_errors(tmp_path, row, where):
    head = "num_requests,max_num_seqs,prompt_tokens,output_tokens_hist_edges,output_tokens_hist_counts,output_tok_s\n"
    p = _table(tmp_path, head + row + "\n")
    with pytest.raises(FleetcastError, match=re.escape(f"{p}, {where}")):
        load_aggregate(p)


def test_a_burst_header_without_its_load_columns_is_line_1(tmp_path):
    p = _table(tmp_path, "num_requests,prompt_tokens,output_tokens,output_tok_s\n8,10,10,100\n")
    with pytest.raises(FleetcastError, match=re.escape(f"{p}, line 1: the header lacks max_num_seqs")):
        load_aggregate(p)


def test_validate_refuses_a_bad_burst_with_exit_2_and_writes_nothing(tmp_path, capsys):
    p = _table(tmp_path, HEAD + "a,8,4,10,10,100,0.01,4\n", sidecar="gpu: h100-sxm\nmodel: llama-9-mega\n")
    out = tmp_path / "out"
    assert main(["validate", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fleetcast.yaml, line 2, field model" in err and "qwen3-8b" in err  # the catalog's names
    assert not out.exists()
    (tmp_path / "fleetcast.yaml").write_text("gpu: h999\nmodel: llama-3.1-8b\n")
    assert main(["validate", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fleetcast.yaml, line 1, field gpu" in err and "h100-sxm" in err
    (tmp_path / "fleetcast.yaml").write_text("gpu: h100-sxm\nmodel: llama-3.1-8b\n")
    p.write_text(HEAD + "a,8,0,10,10,100,0.01,4\n")
    assert main(["validate", str(p), "--out", str(out)]) == 2
    assert f"{p}, line 2, field max_num_seqs" in capsys.readouterr().err
    assert not out.exists()


def test_validate_a_burst_table(tmp_path, capsys):
    p = _table(tmp_path, HEAD + "a,16,4,64,32,400,0.008,4\n")
    out = tmp_path / "out"
    assert main(["validate", str(p), "--out", str(out)]) == 0
    assert (out / "errors.csv").is_file()
    errors = pd.read_csv(out / "errors.csv")
    assert {"output_tok_s", "itl_p50_s", "avg_batch_size"} <= set(errors["metric"])


def test_ml_energy_entries_carry_the_source_figures():
    # leaderboard JSON, B200 configuration with max_num_seqs 8: avg_batch_size 7.957983193277311,
    # output_throughput_tokens_per_sec 1637.2643059323757, median_itl_ms 4.574391001369804,
    # p99_itl_ms 14.804588232655046, avg_output_len 387.9423828125, histogram 50 bins over [2, 4096]
    # (width 81.88), counts starting 221, 109, 99, adding up to 1024
    ent = {e.name: e for e in discover()}
    run = ent["ml_energy/b200-llama-3.1-8b-instruct-lm-arena-chat-x1/s8-n1024"].load()
    assert (run.gpu, run.model, run.tp, run.weights) == ("b200", "llama-3.1-8b", 1, "bf16")
    assert run.engine["max_num_seqs"] == 8 and run.engine["max_num_batched_tokens"] == 8192
    assert run.engine["vllm_version"] == "0.11.1" and len(run.workload.arrival_s) == 1024
    m = run.meta["aggregate_measured"]
    assert m["avg_batch_size"] == pytest.approx(7.95798, rel=1e-5)
    assert m["output_tok_s"] == pytest.approx(1637.26, rel=1e-5)
    assert m["itl_p50_s"] == pytest.approx(0.00457439, rel=1e-5)
    assert m["itl_p99_s"] == pytest.approx(0.0148046, rel=1e-5)
    out = run.workload.output_tokens
    assert out.min() >= 2 and out.max() <= 4096 and (out < 2 + 81.88).sum() == 221
    assert abs(out.mean() - 387.942) < 81.88 / 2  # within half a bin of the source's mean
    # 2,048 requests at cap 256: lm-arena-chat's 1,024 distinct requests sent twice (num_request_repeats 2)
    twice = ent["ml_energy/h100-sxm-llama-3.1-8b-instruct-lm-arena-chat-x1/s256-n2048"].load()
    assert twice.meta["aggregate_load"]["prompt_repeats"] == 2
    assert (twice.workload.prompt_tokens[:1024] == twice.workload.prompt_tokens[1024:]).all()
    # an MoE set replays with its experts spread over the GPUs (enable-expert-parallel)
    moe = ent["ml_energy/h100-sxm-qwen3-30b-a3b-instruct-2507-lm-arena-chat-x2/s8-n1024"].load()
    assert moe.expert_parallel and moe.tp == 2 and moe.model == "qwen3-30b-a3b"


def test_every_ml_energy_configuration_is_an_entry_or_skipped_with_a_reason():
    with open(ML / "configs.csv", newline="") as fh:
        configs = list(csv.DictReader(fh))
    with open(ML / "skipped.csv", newline="") as fh:
        skipped = list(csv.DictReader(fh))
    entries = [e for e in discover() if e.source == "ml_energy"]
    assert len(entries) + len(skipped) == len(configs) == 565
    assert all(r["reason"] for r in skipped)
    assert all(replay_entry(e)["regime"] == "saturation" for e in entries[:2])


def test_repeated_prompts_are_the_same_prompts_as_whole_prefixes(tmp_path):
    # 6 requests, prompt_repeats 3: 2 distinct prompts, sent as p0 p1 p0 p1 p0 p1
    p = _table(
        tmp_path,
        "num_requests,max_num_seqs,prompt_tokens_mean,prompt_tokens_std,prompt_repeats,output_tokens,output_tok_s\n"
        "6,2,300,100,3,20,50\n",
    )
    (run,) = load_aggregate(p)
    w = run.workload
    assert w.prompt_tokens.tolist()[:2] * 3 == w.prompt_tokens.tolist()
    keys = [w.prefix_keys[w.prefix_offsets[i] : w.prefix_offsets[i + 1]].tolist() for i in range(6)]
    assert keys[0] == keys[2] == keys[4] and keys[1] == keys[3] == keys[5] and keys[0] != keys[1]
    assert [len(k) for k in keys] == [1] * 6
    ends = w.prefix_end_tok.tolist()
    assert ends == [t - 1 for t in w.prompt_tokens.tolist()]  # the whole prompt but its last token
    assert run.meta["aggregate_load"]["prompt_repeats"] == 3


@pytest.mark.parametrize(
    "extra_head,extra_row,where",
    [
        ("prompt_repeats", "4", "line 2, field prompt_repeats: 4 does not divide the 6 requests"),
        ("prompt_repeats,prefix_tokens", "3,10", "line 2, field prompt_repeats: not with prefix_tokens"),
    ],
)
def test_bad_prompt_repeats_are_located(tmp_path, extra_head, extra_row, where):
    p = _table(
        tmp_path,
        f"num_requests,max_num_seqs,prompt_tokens,output_tokens,output_tok_s,{extra_head}\n6,2,30,20,50,{extra_row}\n",
    )
    with pytest.raises(FleetcastError, match=re.escape(f"{p}, {where}")):
        load_aggregate(p)
