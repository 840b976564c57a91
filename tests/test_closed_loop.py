"""The closed-loop client (sim.workload.closed_loop) and the aggregate tables ``fleetcast validate``
replays with it: concurrency points (``*.concurrency.csv``) and rate stages (``*.stages.csv``).

Expected values follow from the definitions, not from the simulator's own numbers: a closed loop of
one client sends request k exactly ``think_s`` after request k-1 ends; N clients never have more
than N requests in flight and send each later request ``think_s`` after some request left; a
constant-rate stage of rate r and duration d has round(r*d) sends 1/r apart; one client's output
throughput is its output tokens over its busy-plus-think span.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from calibration.logs.aggregate import load_aggregate
from calibration.public_corpus import _offered_rps
from calibration.validate import validate_run
from sim.cli import main
from sim.engine.fleet import simulate
from sim.errors import FleetcastError
from sim.scenario.spec import scenario_from_dict
from sim.workload.closed_loop import ClosedLoop
from sim.workload.generate import Workload


def _scenario(max_num_seqs: int = 256):
    return scenario_from_dict(
        {
            "name": "closed",
            "seed": 0,
            "fleet": [
                {
                    "name": "gpu",
                    "gpu": "h100-sxm",
                    "replicas": 1,
                    "model": "llama-3.1-8b",
                    "engine": {"max_num_seqs": max_num_seqs},
                }
            ],
            "traffic": {
                "duration_s": 1.0,
                "arrival": {"process": "constant"},
                "classes": [
                    {
                        "name": "default",
                        "rate_rps": 1.0,
                        "prompt_tokens": {"dist": "fixed", "value": 1},
                        "output_tokens": {"dist": "fixed", "value": 1},
                    }
                ],
            },
            "sim": {"drain_s": 3600.0, "timeseries_interval_s": 1.0},
        }
    )


def _workload(prompts, outputs) -> Workload:
    n = len(prompts)
    return Workload(
        arrival_s=np.zeros(n),
        class_idx=np.zeros(n, dtype=np.int16),
        prompt_tokens=np.asarray(prompts, dtype=np.int32),
        output_tokens=np.asarray(outputs, dtype=np.int32),
        prefix_offsets=np.zeros(n + 1, dtype=np.int64),
        prefix_keys=np.zeros(0, dtype=np.int64),
        prefix_end_tok=np.zeros(0, dtype=np.int32),
        class_names=["default"],
    )


def test_one_client_sends_each_request_think_time_after_the_last_one_ended():
    wl = _workload([300] * 6, [40] * 6)
    r = simulate(_scenario(), workload=wl, closed_loop=ClosedLoop(1, 0.25)).requests
    assert (r["status"] == "ok").all()
    arrival, finish = r["arrival_s"].to_numpy(), r["finish_s"].to_numpy()
    assert arrival[0] == 0.0
    np.testing.assert_allclose(arrival[1:], finish[:-1] + 0.25, rtol=0, atol=1e-12)
    # each request meets an idle server: the same lengths take the same time
    np.testing.assert_allclose(r["e2e_s"], r["e2e_s"].iloc[0], rtol=1e-9)
    assert (wl.arrival_s == 0).all()  # the caller's workload is not changed


def test_n_clients_keep_at_most_n_in_flight_and_send_on_each_departure():
    rng = np.random.default_rng(7)
    n, clients, think_s = 60, 8, 0.1
    wl = _workload(rng.integers(50, 2000, n), rng.integers(5, 300, n))
    r = simulate(_scenario(), workload=wl, closed_loop=ClosedLoop(clients, think_s)).requests
    assert (r["status"] == "ok").all()
    arrival, finish = r["arrival_s"].to_numpy(), r["finish_s"].to_numpy()
    assert (arrival == 0).sum() == clients
    assert np.all(np.diff(arrival) >= 0)  # sent in workload order
    # the sends after time 0 are the first n - clients departures, each think_s later
    departures = np.sort(finish)[: n - clients] + think_s
    np.testing.assert_allclose(arrival[clients:], departures, rtol=0, atol=1e-9)
    # in flight just after each send: never more than the clients
    for t in arrival:
        assert ((arrival <= t) & (finish > t)).sum() <= clients


def test_closed_loop_rejects_bad_settings():
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="clients"):
            ClosedLoop(bad)
    with pytest.raises(ValueError, match="think_s"):
        ClosedLoop(2, -0.1)


def _table(tmp_path: Path, name: str, text: str, sidecar: str = "gpu: h100-sxm\nmodel: llama-3.1-8b\n") -> Path:
    (tmp_path / "fleetcast.yaml").write_text(sidecar)
    p = tmp_path / name
    p.write_text(text)
    return p


def test_concurrency_point_replays_a_closed_loop(tmp_path):
    p = _table(
        tmp_path,
        "pts.concurrency.csv",
        "name,concurrency,num_requests,prompt_tokens,output_tokens,think_s,ttft_p50_s,tpot_p50_s,output_tok_s\n"
        "one,1,5,512,64,0.5,0.05,0.008,500\n",
    )
    (run,) = load_aggregate(p)
    assert run.name == f"{tmp_path.name}/one" and run.mode == "closed"
    assert run.meta["closed_loop"] == {"clients": 1, "think_s": 0.5}
    comp = validate_run(run, None)
    assert comp.measured == {"ttft_p50_s": 0.05, "tpot_p50_s": 0.008, "output_tok_s": 500.0}
    r = comp.sim_requests
    np.testing.assert_allclose(r["arrival_s"].to_numpy()[1:], r["finish_s"].to_numpy()[:-1] + 0.5, atol=1e-12)
    # one client: 5 x 64 tokens over 5 request times and 4 think times
    e2e = float(r["e2e_s"].iloc[0])
    assert comp.predicted["output_tok_s"] == pytest.approx(5 * 64 / (5 * e2e + 4 * 0.5), rel=1e-9)


def test_client_overhead_shifts_ttft_and_e2e_by_itself(tmp_path):
    # a rate stage of 20 requests 0.5 s apart: the server sees the same sends with or without the
    # client's 12 ms outside it, so every forecast TTFT and E2E figure is the same plus 0.012 s, and
    # TPOT is unchanged
    head = "rate_rps,duration_s,prompt_tokens,output_tokens,client_overhead_s,ttft_p50_s\n"
    plain, over = (
        load_aggregate(_table(tmp_path, f"{n}.stages.csv", head + f"2,10,200,16,{o},0.03\n"))[0]
        for n, o in (("a", ""), ("b", "0.012"))
    )
    assert "client_overhead_s" not in plain.meta and over.meta["client_overhead_s"] == 0.012
    p0, p1 = validate_run(plain, None).predicted, validate_run(over, None).predicted
    for m in ("ttft_p50_s", "ttft_p99_s", "e2e_p50_s", "e2e_p90_s", "ttft_mean_s", "e2e_mean_s"):
        assert p1[m] == pytest.approx(p0[m] + 0.012, abs=1e-12), m
    assert p1["tpot_p50_s"] == p0["tpot_p50_s"]


def test_client_overhead_and_warmup_of_a_concurrency_point(tmp_path):
    # one client, 3 warm-up then 4 measured requests, 0.25 s think time and 12 ms of the client's own
    # time per request: it sends 7 in all, each 0.25 + 0.012 s after the last one ended, and only the
    # last 4 are compared
    p = _table(
        tmp_path,
        "w.concurrency.csv",
        "concurrency,num_requests,warmup_requests,think_s,client_overhead_s,prompt_tokens,output_tokens,ttft_p50_s\n"
        "1,4,3,0.25,0.012,128,8,0.03\n",
    )
    (run,) = load_aggregate(p)
    assert len(run.workload.arrival_s) == 7 and run.meta["warmup_requests"] == 3
    assert run.meta["closed_loop"] == {"clients": 1, "think_s": pytest.approx(0.262)}
    comp = validate_run(run, None)
    r = comp.sim_requests.sort_values("request_id")
    np.testing.assert_allclose(r["arrival_s"].to_numpy()[1:], r["finish_s"].to_numpy()[:-1] + 0.262, atol=1e-12)
    assert comp.predicted["requests"] == 4
    kept = r[r["request_id"] >= 3]
    assert comp.predicted["ttft_p50_s"] == pytest.approx(float(kept["ttft_s"].median()) + 0.012, abs=1e-12)


def test_rate_stage_regenerates_its_workload(tmp_path):
    p = _table(
        tmp_path,
        "s.stages.csv",
        "rate_rps,duration_s,arrival,prompt_tokens_mean,prompt_tokens_std,prompt_tokens_min,prompt_tokens_max,"
        "output_tokens,ttft_p90_s\n"
        "4,50,constant,1000,300,100,1500,50,0.1\n"
        "4,50,poisson,1000,0,,,50,0.1\n",
    )
    const, poisson = load_aggregate(p)
    assert const.mode == "open" and const.name.endswith("/r4")
    a = const.workload.arrival_s
    assert len(a) == 200
    np.testing.assert_allclose(np.diff(a), 0.25)
    pt = const.workload.prompt_tokens
    assert pt.min() >= 100 and pt.max() <= 1500
    # the clipped normal's mean: 1000 - 300 * (phi(a) - phi(b)) / (Phi(b) - Phi(a)) ~ 1000 (symmetric
    # up to the unequal clips at -3 and +1.67 std); 200 draws: within 4 standard errors of 1000 - 33
    assert abs(pt.mean() - 967) < 4 * 300 / np.sqrt(200)
    assert (poisson.workload.prompt_tokens == 1000).all()
    gaps = np.diff(poisson.workload.arrival_s)
    assert len(gaps) == 199 and (gaps > 0).all() and gaps.mean() == pytest.approx(0.25, rel=0.25)


def test_rate_stage_poisson_fixed_is_inference_perfs_constant_load(tmp_path):
    """inference-perf's ``constant`` load type (``load_timer.py`` ``ConstantLoadTimer`` at 7ff81506) draws
    rate x duration exponential gaps and scales them to sum to the duration: ``poisson_fixed`` sends the
    same count, with the ``poisson`` row's gaps (same seed) times one common factor, the last send
    one (unobserved) first gap short of the stage's end."""
    p = _table(
        tmp_path,
        "s.stages.csv",
        "rate_rps,duration_s,arrival,prompt_tokens,output_tokens,ttft_p90_s\n"
        "4,50,poisson,1000,50,0.1\n"
        "4,50,poisson_fixed,1000,50,0.1\n",
    )
    poisson, fixed = load_aggregate(p)
    a, b = poisson.workload.arrival_s, fixed.workload.arrival_s
    assert len(b) == 200 and b[0] == 0.0
    ratio = np.diff(b) / np.diff(a)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)
    # the 200 gaps sum to 50 s: the last send is at 50 s less the first gap (0 < gap, mean 0.25 s)
    assert 50.0 - 5 * 0.25 < b[-1] < 50.0
    assert fixed.meta["aggregate_load"]["arrival"] == "poisson_fixed"


def test_uniform_lengths_are_vllm_bench_random_range_ratio(tmp_path):
    """``vllm bench serve --random-range-ratio 0.8`` at ISL = OSL = 1,024 draws every length uniformly from the
    integers int(0.8 x 1024) = 819 .. 1024 (both ends included): 206 values, mean (819 + 1024) / 2 = 921.5, standard
    deviation sqrt((206^2 - 1) / 12) = 59.47, so the mean of 2,000 draws is 921.5 +- 1.33 (one sigma); a table
    gives that as ``_min`` and ``_max`` without ``_mean``."""
    p = _table(
        tmp_path,
        "u.concurrency.csv",
        "concurrency,num_requests,prompt_tokens_min,prompt_tokens_max,output_tokens_min,output_tokens_max,ttft_p50_s\n"
        "32,2000,819,1024,819,1024,0.15\n",
    )
    (run,) = load_aggregate(p)
    for lengths in (run.workload.prompt_tokens, run.workload.output_tokens):
        assert lengths.min() == 819 and lengths.max() == 1024 and len(np.unique(lengths)) == 206
        assert float(lengths.mean()) == pytest.approx(921.5, abs=5.0)
    assert not np.array_equal(run.workload.prompt_tokens, run.workload.output_tokens)  # separate draws
    load = run.meta["aggregate_load"]
    assert load["prompt_tokens"] == load["output_tokens"] == "uniform [819, 1024]"


@pytest.mark.parametrize(
    "name,text,where",
    [
        (
            "x.concurrency.csv",
            "concurrency,num_requests,prompt_tokens,output_tokens,ttft_p50_s\n4,2.5,10,10,0.1\n",
            "line 2, field num_requests: must be an integer >= 1",
        ),
        (
            "x.concurrency.csv",
            "concurrency,num_requests,prompt_tokens,output_tokens,ttft_p50_s\n4,8,10,10,fast\n",
            "line 2, field ttft_p50_s: must be a number > 0",
        ),
        (
            "x.concurrency.csv",
            "concurrency,num_requests,prompt_tokens,ttft_p50_s\n4,8,10,0.1\n",
            "line 1: the header lacks output_tokens (or output_tokens_mean and output_tokens_std, or output_tokens_min and output_tokens_max)",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,arrival,prompt_tokens,output_tokens,ttft_p50_s\n1,10,bursty,10,10,0.1\n",
            "line 2, field arrival: must be constant, poisson or poisson_fixed",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,prompt_tokens_mean,prompt_tokens_std,prompt_tokens_max,output_tokens,ttft_p50_s\n"
            "1,10,900,10,500,10,0.1\n",
            "line 2, field prompt_tokens_mean: 900 is outside",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,prompt_tokens,output_tokens,ttft_p50_s\n1,10,10,10,\n",
            "line 2: no measured value",
        ),
        (
            "x.concurrency.csv",
            "concurrency,num_requests,prompt_tokens_min,prompt_tokens_max,output_tokens,ttft_p50_s\n4,8,900,800,10,0.1\n",
            "line 2, field prompt_tokens_max: must be >= prompt_tokens_min (900)",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,prompt_tokens,output_tokens,warmup_requests,ttft_p50_s\n1,10,10,10,-1,0.1\n",
            "line 2, field warmup_requests: must be an integer >= 0",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,prompt_tokens,output_tokens,prompt_repeats,warmup_requests,ttft_p50_s\n"
            "1,10,10,10,2,5,0.1\n",
            "line 2, field warmup_requests: not with prompt_repeats on a rate stage",
        ),
        (
            "x.concurrency.csv",
            "concurrency,num_requests,prompt_tokens,output_tokens,warmup_requests,ttft_p50_s\n4,8,10,10,-1,0.1\n",
            "line 2, field warmup_requests: must be an integer >= 0",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,prompt_tokens,output_tokens,client_overhead_s,ttft_p50_s\n1,10,10,10,-0.01,0.1\n",
            "line 2, field client_overhead_s: must be a number >= 0",
        ),
    ],
)
def test_bad_rows_are_located_errors(tmp_path, name, text, where):
    p = _table(tmp_path, name, text)
    with pytest.raises(FleetcastError, match=re.escape(f"{p}, {where}")):
        load_aggregate(p)


def test_validate_refuses_bad_input_with_exit_2_and_writes_nothing(tmp_path, capsys):
    p = _table(
        tmp_path,
        "c.concurrency.csv",
        "concurrency,num_requests,prompt_tokens,output_tokens,ttft_p50_s\n4,8,10,10,0.1\n",
        sidecar="gpu: h100-sxm\nmodel: llama-9-mega\n",
    )
    out = tmp_path / "out"
    assert main(["validate", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fleetcast.yaml, line 2, field model" in err and "llama-3.1-8b" in err  # names what the catalog has
    assert not out.exists()
    (tmp_path / "fleetcast.yaml").write_text("gpu: h100-sxm\nmodel: llama-3.1-8b\n")
    p.write_text("concurrency,num_requests,prompt_tokens,output_tokens,ttft_p50_s\n4,8,10,-10,0.1\n")
    assert main(["validate", str(p), "--out", str(out)]) == 2
    assert f"{p}, line 2, field output_tokens" in capsys.readouterr().err
    assert not out.exists()


def test_shared_prefixes_of_an_aggregate_row(tmp_path):
    p = _table(
        tmp_path,
        "s.stages.csv",
        "rate_rps,duration_s,prompt_tokens,output_tokens,prefix_tokens,prefix_groups,ttft_p50_s\n"
        "10,2,300,8,128,3,0.05\n",
        sidecar="gpu: h100-sxm\nmodel: llama-3.1-8b\nengine: {enable_prefix_caching: true}\n",
    )
    (run,) = load_aggregate(p)
    wl = run.workload
    assert len(wl.arrival_s) == 20 and list(wl.prefix_offsets) == list(range(21))  # one chunk per request
    assert set(wl.prefix_end_tok) == {128}
    keys = wl.prefix_keys
    assert len(set(keys)) == 3 and all(keys[r] == keys[r % 3] for r in range(20))  # request r: group r mod 3
    # the server reuses them: every request after the first of its group finds 128 cached tokens
    # (8 full blocks of 16), the first three find none
    r = validate_run(run, None).sim_requests
    assert list(r["cached_prompt_tokens"][:3]) == [0, 0, 0] and set(r["cached_prompt_tokens"][3:]) == {128}


def test_a_rate_stages_warmup_sends_the_prompts_of_the_stages_before_it(tmp_path):
    # 2 warm-up requests at 10 req/s (0, 0.1 s), then the stage's 20 constant arrivals 0.1 s apart from 0.2 s;
    # warm-up i has group i mod 3, the stage's request r group r mod 3 (inference-perf's numbering from 0)
    text = "rate_rps,duration_s,prompt_tokens,output_tokens,prefix_tokens,prefix_groups,{}ttft_p50_s\n10,2,300,8,128,3,{}0.05\n"
    side = "gpu: h100-sxm\nmodel: llama-3.1-8b\nengine: {enable_prefix_caching: true}\n"
    (cold,) = load_aggregate(_table(tmp_path, "c.stages.csv", text.format("", ""), sidecar=side))
    (run,) = load_aggregate(_table(tmp_path, "w.stages.csv", text.format("warmup_requests,", "2,"), sidecar=side))
    wl = run.workload
    assert run.meta["warmup_requests"] == 2 and len(wl.arrival_s) == 22
    np.testing.assert_allclose(wl.arrival_s, np.arange(22) * 0.1)
    keys = wl.prefix_keys
    assert keys[0] == keys[2] and keys[1] == keys[3]  # warm-up 0, 1 = the stage's requests 0, 1 (groups 0, 1)
    assert list(keys[2:]) == list(cold.workload.prefix_keys)  # the stage's own chains unchanged
    assert list(wl.prompt_tokens[2:]) == list(cold.workload.prompt_tokens)
    # the stage's requests of groups 0 and 1 now find their 128 tokens (8 blocks of 16) cached from the start;
    # group 2's first (the stage's request 2) finds none, every later request finds them
    r = validate_run(run, None).sim_requests
    stage = r[r["request_id"] >= 2].sort_values("request_id")
    assert list(stage["cached_prompt_tokens"][:3]) == [128, 128, 0] and set(stage["cached_prompt_tokens"][3:]) == {128}
    assert _offered_rps(run) == pytest.approx(10.0)


def test_prefix_groups_without_prefix_tokens_is_located(tmp_path):
    p = _table(
        tmp_path,
        "s.stages.csv",
        "rate_rps,duration_s,prompt_tokens,output_tokens,prefix_groups,ttft_p50_s\n1,2,300,8,3,0.05\n",
    )
    with pytest.raises(FleetcastError, match=re.escape(f"{p}, line 2, field prefix_tokens")):
        load_aggregate(p)


def test_validate_prints_both_summaries_for_stages_and_concurrency_points(tmp_path, capsys):
    _table(tmp_path, "s.stages.csv", "rate_rps,duration_s,prompt_tokens,output_tokens,ttft_p50_s\n2,3,200,16,0.05\n")
    (tmp_path / "c.concurrency.csv").write_text(
        "concurrency,num_requests,prompt_tokens,output_tokens,ttft_p50_s\n2,6,200,16,0.05\n"
    )
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "held-out (open-loop) median |error| %: ttft_p50" in out
    assert "closed-loop median |error| %: ttft_p50" in out


def test_clients_started_one_by_one_are_chained_requests(tmp_path):
    # warmup_rate_rps: 3 clients start at 0, 0.5 and 1.0 s (2 requests/s), then each sends its next request
    # 0.25 + 0.012 s after its previous one ended (request r after request r - 3); 3 warm-up + 4 measured
    p = _table(
        tmp_path,
        "s.concurrency.csv",
        "concurrency,num_requests,warmup_requests,warmup_rate_rps,think_s,client_overhead_s,prompt_tokens,"
        "output_tokens,ttft_p50_s\n"
        "3,4,3,2,0.25,0.012,128,8,0.03\n",
    )
    (run,) = load_aggregate(p)
    assert run.meta["aggregate_load"]["warmup_rate_rps"] == 2.0 and run.meta["warmup_requests"] == 3
    np.testing.assert_array_equal(run.workload.after_rid, [-1, -1, -1, 0, 1, 2, 3])
    assert (np.diff(run.workload.arrival_s) >= 0).all()  # placeholders keep the workload's order
    comp = validate_run(run, None)
    r = comp.sim_requests.sort_values("request_id")
    sent, done = r["arrival_s"].to_numpy(), r["finish_s"].to_numpy()
    np.testing.assert_allclose(sent[:3], [0.0, 0.5, 1.0], atol=1e-12)
    np.testing.assert_allclose(sent[3:], done[:4] + 0.262, atol=1e-12)
    assert comp.predicted["requests"] == 4


@pytest.mark.parametrize(
    "name, text, where",
    [
        (
            "x.concurrency.csv",
            "concurrency,num_requests,warmup_requests,warmup_rate_rps,prompt_tokens,output_tokens,ttft_p50_s\n"
            "4,8,2,10,10,10,0.1\n",
            "line 2, field warmup_rate_rps: needs warmup_requests >= concurrency (4), got 2",
        ),
        (
            "x.concurrency.csv",
            "concurrency,num_requests,warmup_requests,warmup_rate_rps,prompt_tokens,output_tokens,ttft_p50_s\n"
            "4,8,4,-1,10,10,0.1\n",
            "line 2, field warmup_rate_rps: must be",
        ),
        (
            "x.stages.csv",
            "rate_rps,duration_s,prompt_tokens,output_tokens,warmup_rate_rps,ttft_p50_s\n1,10,10,10,5,0.1\n",
            "line 2, field warmup_rate_rps: only a concurrency table's clients start at a rate",
        ),
    ],
)
def test_bad_client_start_rates_are_located_errors(tmp_path, name, text, where):
    p = _table(tmp_path, name, text)
    with pytest.raises(FleetcastError, match=re.escape(f"{p}, {where}")):
        load_aggregate(p)
