"""Parallel layouts of MoE pools (data_parallel, expert_parallel) and MLA catalog entries:
the engine ranks, their cost, failures, and the located errors of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.analysis.forecast import pool_costs
from sim.engine.fleet import Fleet, rank_names
from sim.engine.inputs import failure_schedule, scenario_workload
from sim.errors import FleetcastError
from sim.perf.pool_model import build_pool_models
from sim.scenario.spec import scenario_from_dict
from tests.factories import refused_run

ROOT = Path(__file__).resolve().parents[1]


def _dict(**pool) -> dict:
    fleet = {"name": "moe", "gpu": "h100-sxm", "replicas": 2, "model": "qwen3-30b-a3b",
             "engine": {"max_model_len": 8192}, **pool}
    return {"name": "layout", "seed": 3, "fleet": [fleet],
            "traffic": {"duration_s": 20, "warmup_s": 2, "arrival": {"process": "poisson", "rate_rps": 4},
                        "classes": [{"name": "c", "prompt_tokens": {"dist": "uniform", "min": 100, "max": 2000},
                                     "output_tokens": {"dist": "uniform", "min": 1, "max": 200}}]}}


def test_a_data_parallel_replica_is_its_ranks_and_costs_all_its_gpus():
    sc = scenario_from_dict(_dict(data_parallel=2, expert_parallel=True))
    assert rank_names(sc.fleet[0]) == ["moe/0.dp0", "moe/0.dp1", "moe/1.dp0", "moe/1.dp1"]
    (cost,) = pool_costs(sc)
    assert cost.gpus_per_replica == 2 and cost.replicas == 2
    fleet = Fleet(sc, scenario_workload(sc))
    assert [r.name for r in fleet.replicas] == rank_names(sc.fleet[0])
    perf = build_pool_models(sc)[0].perf
    assert (perf.tp, perf.dp, perf.ep) == (1, 2, True)
    result = fleet.run()
    assert (result.requests.status == "ok").all()
    assert set(result.requests.replica) <= set(rank_names(sc.fleet[0]))


def test_a_failing_data_parallel_replica_takes_all_its_ranks():
    d = _dict(data_parallel=2)
    d["events"] = [{"kind": "replica-failure", "replica": "moe/0", "at_s": 5.0}]
    sc = scenario_from_dict(d)
    result = Fleet(sc, scenario_workload(sc), failures=failure_schedule(sc)).run()
    late = result.requests[result.requests.arrival_s > 5.0]
    assert len(late) and set(late.replica) <= {"moe/1.dp0", "moe/1.dp1"}
    assert (result.requests.status == "ok").all()


def test_data_parallel_one_keeps_the_replica_names():
    sc = scenario_from_dict(_dict())
    assert rank_names(sc.fleet[0]) == ["moe/0", "moe/1"]
    assert pool_costs(sc)[0].gpus_per_replica == 1


def _run(capsys, tmp_path, text: str) -> tuple[int, str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return refused_run(capsys, tmp_path, path)


SCENARIO = """name: bad
seed: 1
fleet:
  - name: p
    gpu: h100-sxm
    replicas: 1
    model: {model}
    tensor_parallel: {tp}
    data_parallel: {dp}
    expert_parallel: {ep}
{catalog}traffic:
  duration_s: 10
  arrival: {{process: poisson, rate_rps: 1}}
  classes:
    - name: c
      prompt_tokens: {{dist: fixed, value: 100}}
      output_tokens: {{dist: fixed, value: 10}}
"""


@pytest.mark.parametrize("model,tp,dp,ep,field,words", [
    ("mixtral-8x7b", 1, 3, "true", "fleet.0.expert_parallel", ["8 experts", "3 GPUs", "does not divide", "1, 2, 4, 8"]),
    ("llama-3.1-8b", 1, 1, "true", "fleet.0.expert_parallel", ["dense", "mixture-of-experts"]),
    ("qwen3-30b-a3b", 8, 2, "false", "fleet.0.data_parallel", ["16 GPUs", "holds 8", "at most 1"]),
])
def test_bad_layouts_are_located_errors(capsys, tmp_path, model, tp, dp, ep, field, words):
    code, err = _run(capsys, tmp_path, SCENARIO.format(model=model, tp=tp, dp=dp, ep=ep, catalog=""))
    assert code == 2 and f"field {field}" in err and "bad.yaml" in err, err
    for w in words:
        assert w in err, (w, err)


def test_data_parallel_out_of_range_is_refused(capsys, tmp_path):
    code, err = _run(capsys, tmp_path, SCENARIO.format(model="qwen3-30b-a3b", tp=1, dp=0, ep="false", catalog=""))
    assert code == 2 and "data_parallel" in err


def test_mla_parameters_on_a_non_mla_model_are_a_located_error(capsys, tmp_path):
    (tmp_path / "cat.yaml").write_text("models:\n  llama-3.1-8b:\n    qk_rope_head_dim: 64\n")
    code, err = _run(capsys, tmp_path, SCENARIO.format(model="llama-3.1-8b", tp=1, dp=1, ep="false",
                                                        catalog="catalog: [cat.yaml]\n"))
    assert code == 2 and "cat.yaml" in err and "'llama-3.1-8b'" in err and "field 'qk_rope_head_dim'" in err
    assert "MLA parameters on a non-MLA model" in err and "kv_lora_rank" in err


def test_an_incomplete_mla_model_and_moe_fields_on_a_dense_model_are_refused(tmp_path):
    from sim.catalog import load_catalog
    (tmp_path / "a.yaml").write_text("models:\n  llama-3.1-8b:\n    kv_lora_rank: 512\n")
    with pytest.raises(FleetcastError, match="also needs qk_rope_head_dim, qk_nope_head_dim, v_head_dim"):
        load_catalog([tmp_path / "a.yaml"])
    (tmp_path / "b.yaml").write_text("models:\n  llama-3.1-8b:\n    shared_expert_intermediate_size: 512\n")
    with pytest.raises(FleetcastError, match="field 'shared_expert_intermediate_size': only a mixture-of-experts"):
        load_catalog([tmp_path / "b.yaml"])


def test_plan_searches_layouts_as_candidates():
    """plan.candidates.data_parallel / expert_parallel cross the other dimensions: each layout is its own
    candidate, sized in replicas of tp x dp GPUs, with the layout in its id, label and plan.json entry."""
    from sim.analysis.plan import run_plan

    d = _dict()
    d["traffic"]["classes"][0]["slo"] = {"ttft_s": {"p99": 3.0}, "attainment_pct": 90}
    d["plan"] = {"candidates": {"data_parallel": [1, 2], "expert_parallel": [False, True]},
                 "demand": {"peak_rate_rps": 4}, "max_replicas": 4, "replications": 2, "tail_samples": 1,
                 "load_curve_pct": [100], "headroom_steps": 0}
    doc = run_plan(scenario_from_dict(d), workers=1).doc
    by = {(c["data_parallel"], c["expert_parallel"]): c for c in doc["candidates"]}
    assert set(by) == {(1, False), (1, True), (2, False), (2, True)}
    assert "dp2-ep" in by[(2, True)]["id"] and "DP2 EP" in by[(2, True)]["label"]
    for (dp, _ep), c in by.items():
        if c["status"] == "ok":
            assert c["gpus"] == c["replicas"] * dp  # a DP replica's ranks are its GPUs
