"""vLLM's API-server scale-out (``engine.api_server_count``, --api-server-count) and the
async-scheduling switch (``engine.async_scheduling``, --async-scheduling) as engine settings of a
scenario and of a run log's sidecar (sim.engine.front_end, sim.perf.cpu_side)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from calibration.logs.sidecar import load_settings
from sim.analysis.forecast import forecast
from sim.engine.front_end import FrontEnd
from sim.errors import FleetcastError
from sim.perf import pool_model
from sim.perf.cpu_side import CpuSide, cpu_side_for
from sim.perf.pool_model import build_pool_models
from sim.scenario.spec import ScenarioError, dump_scenario, scenario_from_dict
from tests.factories import make_scenario, refused_run, scenario_dict

CPU = CpuSide(
    t_step_s=2e-3,
    t_seq_s=50e-6,
    t_prefill_tok_s=1e-6,
    fe_request_s=15e-3,
    fe_prompt_tok_s=0.0,
    fe_token_s=0.625e-3,
    async_scheduling=False,
    source="test",
)


def test_three_api_servers_by_hand():
    # nine requests at t=0 of 0.5 ms + 100 · 5 µs = 1 ms of admission work each, on three API
    # servers: each takes the next request when its previous one is done (the server free
    # earliest), so requests 0-2 start at once, 3-5 wait 1 ms, 6-8 wait 2 ms (one server: i ms)
    fe = FrontEnd(0.5e-3, 5e-6, 0.1e-3, (0.0, 0.04), 3)
    waits = [fe.admit(0.0, 100) for _ in range(9)]
    assert waits == pytest.approx([0, 0, 0, 1e-3, 1e-3, 1e-3, 2e-3, 2e-3, 2e-3], abs=1e-15)
    # 9 · 1 ms = 9 ms of work over 3 servers in a 40 ms window: 3 ms each, 7.5% busy
    assert fe.busy_per_server_s() == pytest.approx(3e-3)
    assert fe.utilization() == pytest.approx(0.009 / (3 * 0.040))
    # every server frees at 3 ms: a request at 2.5 ms waits 0.5 ms (and holds one server to 4 ms);
    # one at 3.5 ms finds another server free
    assert fe.admit(2.5e-3, 100) == pytest.approx(0.5e-3)
    assert fe.admit(3.5e-3, 100) == 0.0


def test_streaming_work_is_spread_over_the_servers_by_hand():
    # a step ending at 1 ms produced 30 tokens of 0.1 ms streaming work each: 3 ms in all, 1.5 ms
    # per server on two servers, processed when the step ends: both are busy from 1 to 2.5 ms, so
    # an admission at 2 ms waits 0.5 ms, and the step's first tokens are sent at 2.5 ms
    fe = FrontEnd(0.0, 0.0, 0.1e-3, (0.0, 1.0), 2)
    assert fe.stream(1e-3, 30, 1) == pytest.approx(2.5e-3)
    assert fe.busy_s == pytest.approx(3e-3) and fe.busy_per_server_s() == pytest.approx(1.5e-3)
    assert fe.admit(2e-3, 0) == pytest.approx(0.5e-3)
    # 10 tokens (0.5 ms per server): done at 1.5 ms, so an admission at 1.5 ms does not wait
    fe2 = FrontEnd(0.0, 0.0, 0.1e-3, (0.0, 1.0), 2)
    fe2.stream(1e-3, 10, 0)
    assert fe2.admit(1.5e-3, 0) == 0.0 and fe2.busy_s == pytest.approx(1e-3)


def test_one_api_server_is_the_single_fifo():
    # servers=1 (the default) books exactly as the single FIFO: request i waits i ms
    fe = FrontEnd(0.5e-3, 5e-6, 0.1e-3, (0.0, 0.04), 1)
    assert [fe.admit(0.0, 100) for _ in range(4)] == pytest.approx([0, 1e-3, 2e-3, 3e-3], abs=1e-15)
    assert fe.busy_per_server_s() == pytest.approx(4e-3) and fe.utilization() == pytest.approx(0.1)


@pytest.mark.parametrize("servers", [0, -1, 1.5])
def test_front_end_rejects_fewer_than_one_server(servers):
    with pytest.raises(ValueError, match="at least 1 API server"):
        FrontEnd(1e-3, 0.0, 0.0, (0.0, 1.0), servers)


def _short_requests(rate_rps: float) -> dict:
    return {
        "duration_s": 40,
        "warmup_s": 10,
        "cooldown_s": 0,
        "arrival": {"process": "poisson", "rate_rps": rate_rps},
        "classes": [
            {
                "name": "short",
                "prompt_tokens": {"dist": "fixed", "value": 128},
                "output_tokens": {"dist": "fixed", "value": 8},
            }
        ],
    }


@pytest.mark.parametrize(
    "servers, rate_rps, served_rps, bound",
    [
        # 15 ms of admission work a and 8 · 0.625 = 5 ms of streaming work s per request (an H100
        # with an 8B model handles far more of these 128-in / 8-out requests). Saturated, a server
        # offered λ req/s admits r = λ / (λ · a + s · r) per second (sim.engine.front_end; worked in
        # tests/test_cpu_side.py): s r² + λ a r - λ = 0, r = (sqrt((λa)² + 4 s λ) - λa) / (2 s).
        # It books B = λa + s r seconds of work a second and serves 1, so a request's last token,
        # booked when it was admitted (B·t), reaches the client at B²·t: requests end at λ / B².
        # One server offered 200: λa = 3, r = (sqrt(9 + 4) - 3) / 0.01 = 60.6 req/s admitted,
        # B = 3.303, 200 / 3.303² = 18.3 req/s ended.
        (1, 200, 18.3, True),
        # three servers share 200 (66.7 each): λa = 1, r = (sqrt(1 + 4/3) - 1) / 0.01 = 52.8 each,
        # B = 1.264, 66.7 / 1.264² = 41.7 each, 125.2 req/s in all: the front end still sets the
        # pace (both backlogs grow without bound, so these are the window's figures, not steady rates)
        (3, 200, 125.2, True),
        # offered 100 req/s to three servers (33.3 each, below the 45.7 each could admit): all are
        # served, each server busy 100 · 0.02 / 3 = 2/3 of the time, so the front end is not
        # reported as the bottleneck
        (3, 100, 100.0, False),
    ],
)
def test_front_end_throughput_limit_scales_with_servers(monkeypatch, servers, rate_rps, served_rps, bound):
    monkeypatch.setattr(
        pool_model, "cpu_side_for", lambda version, method=None, async_scheduling=None, engine_core=None: CPU
    )
    sc = make_scenario(
        pool={"engine": {"max_model_len": 8192, "api_server_count": servers}}, traffic=_short_requests(rate_rps)
    )
    result, summary = forecast(sc)
    req = result.requests
    done = req[(req.finish_s >= 10) & (req.finish_s < 40) & (req.status == "ok")]
    assert len(done) / 30 == pytest.approx(served_rps, rel=0.04)
    block = summary["cpu_side"]["p"]
    assert block["front_end_utilization"] == pytest.approx(1.0 if bound else rate_rps * 0.02 / servers, abs=0.03)
    if not bound:  # below FRONT_END_BOUND_UTILIZATION (0.8): never reported as the bottleneck
        assert block["front_end_bound_replicas"] == []


def _pool(engine: dict):
    sc = make_scenario(pool={"engine": {"max_model_len": 8192, **engine}})
    return build_pool_models(sc)[0]


def test_async_scheduling_switch_by_version():
    # vLLM's default: off before 0.14, on from 0.14 or with no version named; the switch decides
    # it whatever the version (--async-scheduling exists from 0.9.2, PR #19970)
    assert not cpu_side_for((0, 11, 1)).async_scheduling
    assert cpu_side_for((0, 11, 1), None, True).async_scheduling
    assert not cpu_side_for((0, 14, 0), None, False).async_scheduling
    assert not cpu_side_for(None, None, False).async_scheduling
    assert cpu_side_for((0, 14, 0), None, None).async_scheduling
    assert not _pool({"vllm_version": "0.11.1"}).perf.cpu_overlap
    assert _pool({"vllm_version": "0.11.1", "async_scheduling": True}).perf.cpu_overlap
    assert not _pool({"async_scheduling": False}).perf.cpu_overlap
    assert _pool({}).perf.cpu_overlap


def test_async_switch_overlaps_the_step_by_hand():
    # a decode step of 256 sequences at 500 tokens of context each on vLLM 0.11.1: serial, it is the
    # GPU's time plus the CPU work; with --async-scheduling, max(CPU, GPU before decode attention)
    # plus decode attention (docs/design.md, "CPU side")
    serial = _pool({"vllm_version": "0.11.1"}).perf
    overlap = _pool({"vllm_version": "0.11.1", "async_scheduling": True}).perf
    n, ctx = 256, 256 * 500
    cpu = serial.step_cpu_s(n, 0, 0)
    c = serial.coeffs
    assert cpu == pytest.approx(c.t_step_s + c.t_seq_s * n)
    gpu = serial.step_time_s(0, 0.0, n, ctx) - cpu
    attn = ctx * serial.decode_b_s(1)
    assert overlap.step_time_s(0, 0.0, n, ctx) == pytest.approx(max(cpu, gpu - attn) + attn, rel=1e-12)
    assert overlap.step_time_s(0, 0.0, n, ctx) < serial.step_time_s(0, 0.0, n, ctx)


def test_unset_settings_leave_the_dump_as_before():
    plain = dump_scenario(make_scenario())
    assert "api_server_count" not in plain and "async_scheduling" not in plain
    eng = yaml.safe_load(
        dump_scenario(make_scenario(pool={"engine": {"api_server_count": 3, "async_scheduling": False}}))
    )
    assert eng["fleet"][0]["engine"]["api_server_count"] == 3
    assert eng["fleet"][0]["engine"]["async_scheduling"] is False


@pytest.mark.parametrize(
    "engine, match",
    [
        ({"api_server_count": 0}, "greater than or equal to 1"),
        ({"api_server_count": 3, "vllm_version": "0.8.5"}, "api_server_count 3 needs vLLM >= 0.9.0"),
        ({"async_scheduling": True, "vllm_version": "0.9.1"}, "async_scheduling needs vLLM >= 0.9.2"),
        (
            {"async_scheduling": True, "speculative": {"method": "ngram", "num_speculative_tokens": 3}},
            "async_scheduling with speculative method ngram",
        ),
    ],
)
def test_bad_engine_settings_are_located_errors(capsys, tmp_path, engine, match):
    data = scenario_dict()
    data["fleet"][0]["engine"] = {"max_model_len": 8192, **engine}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2
    assert str(path) in err and "line " in err and "fleet.0.engine" in err and match in err
    with pytest.raises(ScenarioError, match=match):
        scenario_from_dict(data)


def _sidecar(tmp_path: Path, engine: str) -> Path:
    log = tmp_path / "run.json"
    log.write_text("{}")
    (tmp_path / "run.fleetcast.yaml").write_text(
        f'gpu: h100-sxm\nmodel: llama-3.1-8b\nvllm_version: "0.11.1"\nengine:\n  max_num_seqs: 256\n{engine}'
    )
    return log


def test_sidecar_carries_both_settings(tmp_path):
    s = load_settings(_sidecar(tmp_path, "  api_server_count: 3\n  async_scheduling: true\n"))
    assert s.engine["api_server_count"] == 3 and s.engine["async_scheduling"] is True
    s = load_settings(_sidecar(tmp_path, ""))
    assert "api_server_count" not in s.engine and "async_scheduling" not in s.engine


def test_sidecar_bad_api_server_count_is_located(tmp_path):
    log = _sidecar(tmp_path, "  api_server_count: 0\n")
    with pytest.raises(FleetcastError) as exc:
        load_settings(log)
    msg = str(exc.value)
    assert "run.fleetcast.yaml" in msg and "line 6" in msg and "engine.api_server_count" in msg


def test_sidecar_async_before_the_flag_existed_is_an_error(tmp_path):
    log = tmp_path / "run.json"
    log.write_text("{}")
    (tmp_path / "run.fleetcast.yaml").write_text(
        'gpu: h100-sxm\nmodel: llama-3.1-8b\nvllm_version: "0.8.5"\nengine:\n  async_scheduling: true\n'
    )
    with pytest.raises(FleetcastError, match="async_scheduling needs vLLM >= 0.9.2"):
        load_settings(log)


def test_cpu_side_dataclass_unchanged_by_the_switch():
    # the switch changes only async_scheduling: every measured constant stays as the version gives it
    a, b = cpu_side_for((0, 11, 1)), cpu_side_for((0, 11, 1), None, True)
    assert dataclasses.replace(b, async_scheduling=False) == a
