"""A pool's model is built once per run and carried in the result: one forecast reads
the catalog once and enters the kernel tables once per pool; the scenario's cached
catalog stays out of its dumps and its equality."""

from __future__ import annotations

import sim.perf.step_source as step_source
import sim.scenario.spec as spec_module
from sim.analysis.forecast import forecast
from sim.engine.fleet import Fleet
from sim.engine.inputs import scenario_workload
from sim.perf.kernels import data as kd
from sim.scenario.spec import Scenario, dump_scenario, scenario_from_dict
from tests.factories import scenario_dict


def _two_pools() -> dict:
    """Two pools on a GPU with measured kernels (h100-sxm): both serve the one class."""
    pool = {"gpu": "h100-sxm", "replicas": 1, "model": "llama-3.1-8b", "engine": {"max_model_len": 8192}}
    return scenario_dict(fleet=[{"name": "a", **pool}, {"name": "b", **pool, "tensor_parallel": 2}],
                         traffic={"duration_s": 10, "warmup_s": 1, "arrival": {"process": "poisson", "rate_rps": 4},
                                  "classes": [{"name": "chat",
                                               "prompt_tokens": {"dist": "uniform", "min": 16, "max": 800},
                                               "output_tokens": {"dist": "uniform", "min": 1, "max": 50}}]})


def _spy(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_one_forecast_reads_the_catalog_once_and_the_kernel_tables_once_per_pool(monkeypatch):
    # the kernel data is a dependency (aiconfigurator-core); without it no table is entered
    # and the count below would say nothing
    assert kd.data_root() is not None
    catalog_loads = _spy(monkeypatch, spec_module, "load_catalog")
    table_entries = _spy(monkeypatch, step_source, "cached_tables")
    sc = scenario_from_dict(_two_pools())
    result, summary = forecast(sc)
    assert len(catalog_loads) == 1  # validation loaded it; the run and the summary reuse it
    # one entry per pool: the tables of tp 1 and of tp 2 (before: the run, perf_sources and
    # kv_capacity each rebuilt every pool's, 3 per pool)
    assert sorted(inp.tp for _, inp in table_entries) == [1, 2]
    assert [p.name for p in result.pools] == ["a", "b"]
    assert summary["profiles"] == {p.name: p.source for p in result.pools}
    assert all(src.startswith("measured vLLM") for src in summary["profiles"].values())


def test_the_replicas_of_a_pool_share_its_model():
    sc = scenario_from_dict(_two_pools())
    fleet = Fleet(sc, scenario_workload(sc))
    (a, b) = fleet.pools
    assert [r.perf for r in fleet.replicas] == [a.perf, b.perf]
    assert fleet.replicas[0].perf is a.perf and fleet.replicas[1].perf is b.perf
    assert (a.perf.tp, b.perf.tp) == (1, 2)


def test_kv_capacity_of_an_override_is_its_blocks_less_the_null_block():
    # vLLM v1 keeps one block of num_gpu_blocks as its null block: 1000 blocks of 16 tokens
    # leave 999 usable, 999 * 16 = 15,984 tokens
    data = scenario_dict()
    data["fleet"][0]["engine"] = {"max_model_len": 8192, "num_gpu_blocks_override": 1000, "block_size": 16}
    _, summary = forecast(scenario_from_dict(data))
    kv = summary["kv_capacity"]["p"]
    assert (kv["num_gpu_blocks"], kv["usable_blocks"], kv["block_size"], kv["kv_tokens"]) == (1000, 999, 16, 15984)
    assert kv["source"] == "engine.num_gpu_blocks_override"


def test_the_cached_catalog_stays_out_of_dumps_and_equality():
    data = _two_pools()
    loaded = scenario_from_dict(data)
    cat = loaded.load_catalog()
    assert loaded.load_catalog() is cat
    fresh = Scenario.model_validate(data)  # never asked for its catalog
    assert "_catalogs" in loaded.__dict__ and "_catalogs" not in fresh.__dict__
    assert loaded == fresh
    assert loaded.model_dump() == fresh.model_dump()
    assert dump_scenario(loaded) == dump_scenario(fresh)
