"""Disaggregated prefill/decode (sim/engine/disagg.py): the transfer time, the hand-off's
latency against a co-located fleet, KV accounting on the decode side, failures, and the
scenario's bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.analysis.candidates import split_replicas
from sim.analysis.forecast import forecast
from sim.catalog import load_catalog
from sim.cli import main
from sim.engine.disagg import TransferPath, exposed_transfer_s
from sim.engine.fleet import Fleet, simulate
from sim.engine.inputs import failure_schedule, scenario_workload
from sim.perf.pool_model import build_pool_models
from sim.scenario.spec import scenario_from_dict
from tests.factories import refused_run, scenario_dict

# llama-3.1-8b: 32 layers x 8 KV heads x head_dim 128 x (K and V) x 2 bytes (bf16)
LLAMA8B_KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2  # 131,072


def _pool(name: str, role: str, replicas: int = 1, **over) -> dict:
    return {"name": name, "role": role, "gpu": "h100-sxm", "replicas": replicas, "model": "llama-3.1-8b",
            "engine": {"max_model_len": 8192}, **over}


def _disagg(link: str = "ib-ndr-400g", overlap: str = "none", prefill: dict | None = None,
            decode: dict | None = None, **over) -> dict:
    return scenario_dict(fleet=[prefill or _pool("pre", "prefill"), decode or _pool("dec", "decode")],
                         kv_transfer={"link": link, "overlap": overlap}, **over)


def _one_request(prompt: int, output: int) -> dict:
    """Traffic of requests far apart (one in the system at a time)."""
    return {"duration_s": 40, "warmup_s": 0, "cooldown_s": 0, "arrival": {"process": "constant", "rate_rps": 0.1},
            "classes": [{"name": "a", "prompt_tokens": {"dist": "fixed", "value": prompt},
                         "output_tokens": {"dist": "fixed", "value": output}}]}


def test_transfer_time_is_bytes_over_bandwidth_plus_latency():
    cat = load_catalog()
    model, quant = cat.model("llama-3.1-8b"), cat.quant("bf16")
    ndr = cat.link("ib-ndr-400g")
    assert (ndr.bandwidth_bytes_s, ndr.latency_s) == (50e9, 10e-6)  # 400 Gb/s / 8; the catalog's latency
    # 2,000 tokens x 131,072 B = 262,144,000 B over one link: 5.24288 ms + 10 us
    assert TransferPath(model, quant, 1, 1, ndr, "none").exposed_s(2000, 0.0) == pytest.approx(5.25288e-3, rel=1e-12)
    # TP2 prefill -> TP4 decode: two links in parallel, each half the bytes: 2.62144 ms + 10 us
    assert TransferPath(model, quant, 2, 4, ndr, "none").exposed_s(2000, 0.0) == pytest.approx(2.63144e-3, rel=1e-12)
    # fp8 KV halves the bytes
    fp8 = cat.quant("bf16", "fp8")
    assert TransferPath(model, fp8, 1, 1, ndr, "none").exposed_s(2000, 0.0) == pytest.approx(2.63144e-3, rel=1e-12)
    # layer-wise overlap, X = 32 ms of bytes, a 10 ms prefill over 32 layers: the prefill hides 10*31/32 ms
    assert exposed_transfer_s(1.6e9, 50e9, 1e-5, "layerwise", 0.010, 32) == pytest.approx(0.0223125 + 1e-5, rel=1e-12)
    # a prefill longer than the transfer hides all but the last layer's share
    assert exposed_transfer_s(1.6e9, 50e9, 1e-5, "layerwise", 1.0, 32) == pytest.approx(0.001 + 1e-5, rel=1e-12)


def test_a_run_records_the_transfer_of_each_request():
    sc = scenario_from_dict(_disagg(traffic=_one_request(2000, 20)))
    req = simulate(sc).requests
    assert (req.status == "ok").all() and len(req) == 4
    assert np.allclose(req.kv_transfer_s, 2000 * LLAMA8B_KV_BYTES_PER_TOKEN / 50e9 + 10e-6, rtol=1e-12)
    assert set(req.prefill_replica) == {"pre/0"} and set(req.replica) == {"dec/0"}
    assert (req.output_tokens == 20).all()


def _instant_link(tmp_path: Path, data: dict):
    """``data`` as a scenario beside a catalog file with an infinitely fast link, ``instant``."""
    (tmp_path / "links.yaml").write_text(yaml.safe_dump(
        {"links": {"instant": {"bandwidth_bytes_s": 1e30, "latency_s": 1e-12}}}))
    data = {**data, "catalog": ["links.yaml"], "kv_transfer": {"link": "instant", "overlap": "none"}}
    return scenario_from_dict(data, path=tmp_path / "s.yaml")


def test_the_hand_off_adds_the_transfer_and_one_recomputed_token_to_ttft(tmp_path):
    """One request at a time: co-located, TTFT is the prompt's step. Disaggregated, the same
    step on the prefill GPU, then the transfer, then the decode replica's step computing
    the last prompt token over the other prompt - 1 tokens' KV, which samples the first token."""
    prompt, traffic = 3000, _one_request(3000, 50)
    ttft_co = simulate(scenario_from_dict(scenario_dict(fleet=[_pool("co", "both")], traffic=traffic))).requests.ttft_s
    for sc, xfer_s in ((_instant_link(tmp_path, _disagg(traffic=traffic)), 0.0),
                       (scenario_from_dict(_disagg(traffic=traffic)),
                        prompt * LLAMA8B_KV_BYTES_PER_TOKEN / 50e9 + 10e-6)):
        perf = build_pool_models(sc)[1].perf
        recompute_s = perf.step_time_s(1, 1 * (prompt - 1 + 0.5), 0, 0, num_prefill_seqs=1)
        ttft = simulate(sc).requests.ttft_s
        assert np.allclose(ttft, ttft_co + xfer_s + recompute_s, rtol=1e-9, atol=1e-12)
        assert 0 < recompute_s < 0.2 * ttft_co.min()  # about one decode step: a small part of it


def test_an_instant_link_behaves_like_colocated_prefill_first_under_load(tmp_path):
    """Same GPUs (2 H100), Poisson load: disaggregated 1 prefill + 1 decode over an infinitely
    fast link against 2 co-located replicas running prefill-first (whole prompts, never mixed
    with decodes, as the split forces). TTFT agrees in order of magnitude, not exactly: the
    split queues every prompt on one GPU instead of two."""
    traffic = {"duration_s": 60, "warmup_s": 5, "arrival": {"process": "poisson", "rate_rps": 4},
               "classes": [{"name": "a", "prompt_tokens": {"dist": "uniform", "min": 500, "max": 3000},
                            "output_tokens": {"dist": "uniform", "min": 20, "max": 200}}]}
    co = scenario_from_dict(scenario_dict(
        fleet=[_pool("co", "both", 2, policy={"name": "prefill-first"},
                     engine={"max_model_len": 8192, "enable_chunked_prefill": False})], traffic=traffic))
    dis = _instant_link(tmp_path, _disagg(traffic=traffic))
    s_co, s_dis = forecast(co)[1], forecast(dis)[1]
    t_co, t_dis = s_co["overall"]["ttft_s"]["p50"], s_dis["overall"]["ttft_s"]["p50"]
    assert 1 / 3 < t_dis / t_co < 3
    assert s_dis["disaggregated"]["kv_transfer_s"]["p99"] < 1e-9
    assert s_dis["overall"]["counts"]["total"] == s_dis["disaggregated"]["kv_transfer_s"]["n"]


def _run_fleet(sc) -> tuple[Fleet, object]:
    fleet = Fleet(sc, scenario_workload(sc), failures=failure_schedule(sc))
    return fleet, fleet.run()


def test_decode_side_kv_blocks_balance_through_preemption():
    """A decode pool with a small KV cache preempts (and recomputes locally); at the end every
    block is back and every request finished once, with all its tokens."""
    tight = _pool("dec", "decode", 2, engine={"max_model_len": 4096, "num_gpu_blocks_override": 400,
                                               "enable_prefix_caching": False})
    traffic = {"duration_s": 30, "warmup_s": 0, "cooldown_s": 0, "arrival": {"process": "poisson", "rate_rps": 6},
               "classes": [{"name": "a", "prompt_tokens": {"dist": "uniform", "min": 200, "max": 2500},
                            "output_tokens": {"dist": "uniform", "min": 50, "max": 600}}]}
    fleet, result = _run_fleet(scenario_from_dict(_disagg(decode=tight, traffic=traffic, sim={"drain_s": 600})))
    req = result.requests
    assert (req.status == "ok").all()
    assert (req.output_tokens == fleet.workload.output_tokens).all()
    assert req.preemptions.sum() > 0  # the case this test is about
    assert (req.first_token_s > req.arrival_s + req.kv_transfer_s).all()
    for rep in fleet.replicas:
        assert not rep.running and not len(rep.waiting)
        assert rep.kv.free == rep.kv.num_blocks, rep.name


def test_a_failed_decode_replica_sends_its_requests_back_through_prefill():
    traffic = {"duration_s": 30, "warmup_s": 0, "cooldown_s": 0, "arrival": {"process": "poisson", "rate_rps": 6},
               "classes": [{"name": "a", "prompt_tokens": {"dist": "uniform", "min": 200, "max": 2500},
                            "output_tokens": {"dist": "uniform", "min": 50, "max": 600}}]}
    sc = scenario_from_dict(_disagg(decode=_pool("dec", "decode", 2), traffic=traffic,
                                    events=[{"kind": "replica-failure", "replica": "dec/0", "at_s": 10.0}]))
    fleet, result = _run_fleet(sc)
    req = result.requests
    assert (req.status == "ok").all()
    late = req[req.finish_s > 10.0]
    assert set(late.replica) == {"dec/1"}  # nothing finishes on the failed replica after it failed
    assert (late.output_tokens == fleet.workload.output_tokens[late.request_id]).all()
    for rep in fleet.replicas:
        if not rep.failed:
            assert rep.kv.free == rep.kv.num_blocks, rep.name


def test_same_seed_same_records():
    sc = scenario_from_dict(_disagg(overlap="layerwise"))
    a, b = simulate(sc).requests, simulate(sc).requests
    assert a.equals(b) and a.kv_transfer_s.notna().all()


def test_colocated_runs_have_no_disaggregation_columns():
    req = simulate(scenario_from_dict(scenario_dict())).requests
    assert not {"prefill_replica", "kv_transfer_s"} & set(req.columns)


# ---------------------------------------------------------------------------- bad input
def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "disagg.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_unknown_link_is_a_located_error_naming_the_valid_ones(tmp_path, capsys):
    path = _write(tmp_path, _disagg(link="ib-xdr-800g"))
    code, err = refused_run(capsys, tmp_path, path)
    line = path.read_text().splitlines().index("  link: ib-xdr-800g") + 1
    assert code == 2
    assert f"{path}, line {line}, field kv_transfer.link: unknown KV-transfer link 'ib-xdr-800g'" in err
    assert "ib-ndr-400g" in err and "roce-100g" in err and "ethernet-25g" in err


def test_a_decode_pool_without_room_for_one_request_is_refused(tmp_path, capsys):
    """An L4 (24 GB) holding Llama-3.1-8B cannot keep one 131,072-token sequence's KV cache."""
    small = _pool("dec", "decode", gpu="l4", engine={"max_model_len": 131072})
    path = _write(tmp_path, _disagg(decode=small))
    code, err = refused_run(capsys, tmp_path, path)
    line = path.read_text().splitlines().index("- name: dec") + 1
    assert code == 2
    assert f"{path}, line {line}, field fleet.1 (pool 'dec'): vLLM refuses to start" in err
    assert "a decode pool holds the whole prompt's KV cache" in err and "longest max_model_len that fits" in err


def test_a_decode_pool_shorter_than_the_class_is_refused(tmp_path, capsys):
    short = _pool("dec", "decode", engine={"max_model_len": 1024})
    data = _disagg(decode=short, traffic={**scenario_dict()["traffic"], "classes": [
        {"name": "chat", "prompt_tokens": {"dist": "fixed", "value": 2000},
         "output_tokens": {"dist": "fixed", "value": 10}}]})
    path = _write(tmp_path, data)
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2
    assert "field fleet.1.engine.max_model_len: decode pool 'dec' cannot hold one request of class 'chat'" in err
    assert "at least 2,010" in err


@pytest.mark.parametrize("missing", ["decode", "prefill"])
def test_half_a_split_is_refused(tmp_path, capsys, missing):
    pools = [_pool("pre", "prefill"), _pool("dec", "decode")]
    kept = [p for p in pools if p["role"] != missing]
    path = _write(tmp_path, scenario_dict(fleet=kept, kv_transfer={"link": "roce-200g"}))
    code, err = refused_run(capsys, tmp_path, path)
    role = kept[0]["role"]
    assert code == 2
    assert f", line 5, field fleet.0.role: {role} pool '{kept[0]['name']}' serves class 'chat', but no " \
           f"{missing} pool does" in err


def test_a_split_without_kv_transfer_is_refused(tmp_path, capsys):
    data = _disagg()
    del data["kv_transfer"]
    code, err = refused_run(capsys, tmp_path, _write(tmp_path, data))
    assert code == 2 and "field fleet.0.role" in err and "add kv_transfer: {link: <name>}" in err


# ---------------------------------------------------------------- the bundled example
BUNDLED = Path(__file__).resolve().parents[1] / "scenarios" / "disaggregated.yaml"


def test_compare_runs_the_bundled_split_against_the_same_gpus_colocated(tmp_path, capsys):
    """Co-located, prompt chunks share steps with the decodes (longer time per output token),
    and prompts queue on four GPUs instead of one (shorter time to first token)."""
    out = tmp_path / "cmp"
    rc = main(["compare", str(BUNDLED), "-n", "2", "--out", str(out),
               "--variant", "colocated:fleet.0.role=both,fleet.1.role=both,kv_transfer=null"])
    assert rc == 0
    rows = {(r["class"], r["metric"]): r for r in json.loads((out / "compare.json").read_text())["rows"]}
    assert rows["all", "tpot_p50_s"]["diff_mean"] > 0
    assert rows["all", "ttft_p50_s"]["diff_mean"] < 0
    assert "colocated vs baseline" in capsys.readouterr().out


def test_fleetcast_catalog_lists_the_links(capsys):
    assert main(["catalog"]) == 0
    out = capsys.readouterr().out
    assert "KV-transfer links" in out and "ib-ndr-400g" in out and "50.0" in out and "ethernet-25g" in out


# ---------------------------------------------------------------------------- plan
def test_split_replicas_rounds_at_the_ratio_and_keeps_one_of_each():
    assert [split_replicas(n, "1:3") for n in (1, 2, 4, 8, 9)] == [(1, 1), (1, 1), (1, 3), (2, 6), (2, 7)]
    assert [split_replicas(n, "1:1") for n in (2, 5, 6)] == [(1, 1), (3, 2), (3, 3)]  # 2.5 rounds up
    assert split_replicas(10, "3:2") == (6, 4)


def test_plan_weighs_colocated_against_disaggregated(tmp_path, capsys):
    data = scenario_dict(
        fleet=[{**_pool("serving", "both"), "engine": {"max_model_len": 8192}}],
        traffic={"duration_s": 40, "warmup_s": 5, "arrival": {"process": "poisson", "rate_rps": 6},
                 "classes": [{"name": "chat", "prompt_tokens": {"dist": "uniform", "min": 500, "max": 4000},
                              "output_tokens": {"dist": "uniform", "min": 50, "max": 300},
                              "slo": {"ttft_s": {"p99": 2.0}, "tpot_s": {"p99": 0.015}}}]},
        plan={"candidates": {"disaggregated": {"prefill_decode_ratios": ["1:2"], "link": "roce-200g"}},
              "demand": {"peak_rate_rps": 6}, "replications": 2, "tail_samples": 1, "max_replicas": 8,
              "load_curve_pct": [100], "headroom_steps": 0})
    out = tmp_path / "plan"
    assert main(["plan", str(_write(tmp_path, data)), "--out", str(out)]) == 0
    doc = json.loads((out / "plan.json").read_text())
    cands = {c["id"]: c for c in doc["candidates"]}
    split = cands["h100-sxm-bf16-tp1-continuous-pd1-2"]
    assert split["status"] == "ok" and split["link"] == "roce-200g"
    assert split["replicas"] == split["prefill_replicas"] + split["decode_replicas"] == split["gpus"]
    pools = split["summary"]["utilization"]["pools"]
    assert set(pools) == {"serving-prefill", "serving-decode"}
    assert split["summary"]["disaggregated"]["gpu_ratio"] == f"{split['prefill_replicas']}:{split['decode_replicas']}"
    assert "h100-sxm-bf16-tp1-continuous" in cands
    co = cands["h100-sxm-bf16-tp1-continuous"]
    said = " ".join(capsys.readouterr().out.split())
    assert "Co-located against disaggregated" in said
    if co["status"] == "pruned":  # the split, proven at 1 + 1 replicas, bounded it: the sentence says so
        assert co["usd_per_month_at_least"] > split["usd_per_month"]
        assert f"at least {co['replicas_at_least']} replicas" in said and "no co-located fleet was searched" in said


def test_a_malformed_ratio_is_refused(tmp_path, capsys):
    data = scenario_dict(plan={"candidates": {"disaggregated": {"prefill_decode_ratios": ["1-3"],
                                                                "link": "roce-200g"}}})
    path = _write(tmp_path, data)
    assert main(["plan", str(path), "--out", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "plan.candidates.disaggregated.prefill_decode_ratios" in err and "'P:D'" in err
    assert not (tmp_path / "out").exists()


def test_fast_forward_gives_the_records_of_exact_steps():
    """The hand-off changes nothing of the decode-run closed form: fast-forwarded and exact
    stepping give the same records and ITL (a tight decode KV cache and a failure included)."""
    tight = _pool("dec", "decode", 2, engine={"max_model_len": 4096, "num_gpu_blocks_override": 400})
    sc = scenario_from_dict(_disagg(decode=tight, overlap="layerwise", sim={"drain_s": 600},
                                    events=[{"kind": "replica-failure", "replica": "dec/1", "at_s": 12.0}]))
    fast, exact = simulate(sc), simulate(sc, exact_steps=True)
    assert fast.requests.equals(exact.requests) and (fast.itl_hist == exact.itl_hist).all()
    assert (fast.requests.status == "ok").all() and fast.requests.preemptions.sum() > 0
