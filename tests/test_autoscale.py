"""Autoscaling: a pool's replicas follow the load (HPA/KEDA style) or a schedule, each
scale-up after its cold start, each scale-down draining; cost integrates the replicas.

Expected values are derived by hand in each test from the rule in docs/design.md
('Autoscaling'): desired = ceil(metric summed over active replicas / target); cold start =
provision_s + weight bytes per GPU / load_bandwidth_bytes_s; cost = replica-seconds x $/GPU-h / 3600.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sim.analysis.contracts.plan import AutoscaleComparison
from sim.analysis.forecast import forecast
from sim.analysis.plan_autoscale import autoscale_comparison
from sim.cli import main
from sim.engine.autoscaler import PoolScaler
from sim.engine.fleet import simulate
from sim.engine.result import ReplicaStats
from sim.engine.wake import Environment
from sim.report.autoscale_text import plan_autoscale_sentence
from sim.scenario.spec import scenario_from_dict
from tests.factories import make_scenario, refused_run, scenario_dict

ROOT = Path(__file__).resolve().parents[1]
# llama-3.1-8b: 8,030,261,248 parameters (catalog) x 2 bytes at bf16, on one GPU (tp 1)
LLAMA_8B_BF16_BYTES = 8_030_261_248 * 2
PROMPT, OUTPUT = 256, 64


def _trace(tmp_path: Path, times: list[float]) -> str:
    path = tmp_path / "trace.csv"
    path.write_text("arrival_s,prompt_tokens,output_tokens\n"
                    + "".join(f"{t!r},{PROMPT},{OUTPUT}\n" for t in times))
    return path.name


def _scenario(tmp_path: Path, times: list[float], autoscale: dict | None, *, replicas: int, duration_s: float,
              max_num_seqs: int = 1, **over):
    data = scenario_dict(**over)
    pool = data["fleet"][0]
    pool.update(replicas=replicas, engine={"max_model_len": 8192, "max_num_seqs": max_num_seqs,
                                           "enable_prefix_caching": False})
    if autoscale is not None:
        pool["autoscale"] = autoscale
    data["traffic"] = {"duration_s": duration_s, "warmup_s": 0,
                       "arrival": {"process": "trace", "path": _trace(tmp_path, times)},
                       "classes": [{"name": "chat"}]}
    data["sim"] = {"drain_s": 60}
    return scenario_from_dict(data, path=tmp_path / "scenario.yaml")


def _service_s(tmp_path: Path) -> float:
    """One request's time on a replica alone (prefill + 63 decode steps), as simulated."""
    res = simulate(_scenario(tmp_path, [0.0], None, replicas=1, duration_s=10))
    return float(res.requests.e2e_s.iloc[0])


def _active_at(series: list, t: float) -> int:
    return [a for t0, a, _ in series if t0 <= t][-1]


def test_zero_cold_start_tracks_a_step_in_load_within_one_metric_window(tmp_path):
    # With max_num_seqs 1 a replica runs one request at a time, so utilization (running /
    # max_num_seqs) summed over replicas is the number of busy replicas. Arrivals every S/k
    # (S: one request's service time) keep exactly k requests in service (Little: L = lambda S
    # = k) when no request waits. Target 0.5 -> desired = ceil(k / 0.5) = 2k: 2 before the
    # step (k = 1), 6 after it (k = 3).
    s = _service_s(tmp_path)
    step_s, end_s, window_s, sync_s = 120.0, 300.0, 30.0, 1.0
    times = [i * s for i in range(int(step_s / s))]
    times += [step_s + i * s / 3 for i in range(int((end_s - step_s) * 3 / s))]
    auto = {"min_replicas": 1, "max_replicas": 10, "policy": "target-utilization", "target": 0.5,
            "metric_window_s": window_s, "sync_period_s": sync_s, "tolerance": 0.0,
            "scale_up_cooldown_s": 0, "scale_down_cooldown_s": 0,
            "cold_start": {"provision_s": 0, "load_bandwidth_bytes_s": 1e13}}
    res = simulate(_scenario(tmp_path, times, auto, replicas=2, duration_s=end_s))
    series = res.autoscale["p"]["series"]
    cold_s = LLAMA_8B_BF16_BYTES / 1e13  # 1.6 ms: zero for the purpose
    assert res.autoscale["p"]["cold_start_s"] == pytest.approx(cold_s)
    assert all(_active_at(series, t) == 2 for t in range(int(window_s), int(step_s)))
    # 6 replicas within one metric window of the step, never fewer after that; the window's
    # average rises over that window (2 -> 3 -> 4 -> 5 -> 6). Samples taken while requests
    # queued behind too few replicas count more than 3 busy replicas (the backlog drains), so
    # the count may overshoot by one until those samples leave the window: exactly 6 from two
    # windows after the step to the end of the load.
    reached = min(t for t, a, _ in series if a >= 6)
    assert step_s < reached <= step_s + window_s
    assert all(_active_at(series, t) >= 6 for t in range(math.ceil(reached), int(end_s) - 1))
    assert all(_active_at(series, t) == 6 for t in range(int(step_s + 2 * window_s), int(end_s) - 1))
    assert (res.requests.status == "ok").all()


def test_cold_start_delays_the_new_replica_by_provisioning_plus_model_load(tmp_path):
    # scale 1 -> 2 at 10 s; cold start = 5 s + 16,060,522,496 B / 4e9 B/s = 5 + 4.015130624 s
    times = [0.3 * i for i in range(130)]  # closer than one service time (0.44 s): both replicas get work
    auto = {"min_replicas": 1, "max_replicas": 2, "policy": "schedule", "schedule": [{"at_s": 10, "replicas": 2}],
            "cold_start": {"provision_s": 5, "load_bandwidth_bytes_s": 4e9}}
    res = simulate(_scenario(tmp_path, times, auto, replicas=1, duration_s=40))
    ready_s = 10 + 5 + LLAMA_8B_BF16_BYTES / 4e9
    rec = res.autoscale["p"]
    assert rec["cold_start_s"] == pytest.approx(5 + 4.015130624)
    assert [r for r in rec["series"] if r[0] > 0] == [[10.0, 1, 2], [pytest.approx(ready_s), 2, 2]]
    assert rec["billed"][1][0][0] == 10.0  # billed from the decision, as a node is while it boots
    on_new = res.requests[res.requests.replica == "p/1"]
    assert len(on_new) > 0 and on_new.arrival_s.min() >= ready_s


def test_scale_down_drains_without_losing_a_request(tmp_path):
    # 3 -> 1 at 10 s under load: p/1 and p/2 take no arrival after 10 s, finish what they hold,
    # and are billed until the first control tick (every 2 s) that finds them empty
    times = [0.1 * i for i in range(300)]
    auto = {"min_replicas": 1, "max_replicas": 3, "policy": "schedule", "sync_period_s": 2,
            "schedule": [{"at_s": 10, "replicas": 1}], "cold_start": {"provision_s": 10}}
    res = simulate(_scenario(tmp_path, times, auto, replicas=3, duration_s=40, max_num_seqs=4))
    req = res.requests
    assert (req.status == "ok").all() and len(req) == 300
    billed = res.autoscale["p"]["billed"]
    for name, periods in (("p/1", billed[1]), ("p/2", billed[2])):
        mine = req[req.replica == name]
        assert mine.arrival_s.max() < 10
        last = mine.finish_s.max()
        assert last > 10  # it drained: requests it held at 10 s finished after
        assert periods == [[0.0, pytest.approx(2 * math.ceil(last / 2))]]


def test_cost_integrates_replicas_over_time(tmp_path):
    # 1 replica, 3 from 10 s (provisioning billed), 1 again from 30 s (nothing to drain: a
    # request a second, each done in 0.44 s, always finds p/0 idle and goes there):
    # window [0, 60]: 60 + 2 x 20 = 100 replica-seconds at $3.60/GPU-hour = $0.10;
    # mean replicas 100 / 60, $/hour 100/60 x 3.6 = 6.0; fixed at 3: $10.80/hour
    auto = {"min_replicas": 1, "max_replicas": 3, "policy": "schedule",
            "schedule": [{"at_s": 10, "replicas": 3}, {"at_s": 30, "replicas": 1}],
            "cold_start": {"provision_s": 30, "load_bandwidth_bytes_s": 1e13}}
    sc = _scenario(tmp_path, [float(t) for t in range(60)], auto, replicas=1, duration_s=60,
                   pricing={"h100-sxm": 3.6})
    _, summary = forecast(sc)
    a = summary["autoscale"]["pools"]["p"]
    assert a["replica_s"] == pytest.approx(100.0)
    assert a["usd"] == pytest.approx(0.10)
    assert a["replicas_mean"] == pytest.approx(100 / 60)
    assert (a["replicas_min"], a["replicas_max"]) == (1, 3)
    assert a["usd_per_hour"] == pytest.approx(6.0)
    assert a["fixed_at_max_usd_per_hour"] == pytest.approx(10.8)
    assert a["saving_pct"] == pytest.approx(100 * (1 - 6.0 / 10.8))
    assert summary["cost"]["fleet_usd_per_hour"] == pytest.approx(6.0)
    assert summary["cost"]["pools"]["p"]["replicas"] == pytest.approx(100 / 60)


def test_schedule_policy_follows_its_table(tmp_path):
    # a request a second keeps the run going (each finds p/0 idle), nothing to drain: each
    # step's count is provisioned at its at_s (cold start 2 s + 1.6 ms)
    table = [(5, 3), (15, 2), (25, 4), (35, 1)]
    auto = {"min_replicas": 1, "max_replicas": 4, "policy": "schedule",
            "schedule": [{"at_s": t, "replicas": n} for t, n in table],
            "cold_start": {"provision_s": 2, "load_bandwidth_bytes_s": 1e13}}
    res = simulate(_scenario(tmp_path, [float(t) for t in range(44)], auto, replicas=1, duration_s=45))
    rec = res.autoscale["p"]
    assert [(e["t_s"], e["from"], e["to"]) for e in rec["events"]] == [(5, 1, 3), (15, 3, 2), (25, 2, 4), (35, 4, 1)]
    provisioned = {t: n for t, _, n in rec["series"]}
    assert [provisioned[t] for t, _ in table] == [n for _, n in table]
    cold_s = 2 + LLAMA_8B_BF16_BYTES / 1e13
    assert _active_at(rec["series"], 5 + cold_s - 1e-3) == 1 and _active_at(rec["series"], 5 + cold_s) == 3


def test_a_fixed_fleet_has_no_autoscale_record(tmp_path):
    res, summary = forecast(_scenario(tmp_path, [0.0, 1.0], None, replicas=1, duration_s=10))
    assert res.autoscale is None and "autoscale" not in summary
    assert summary["cost"]["pools"]["p"]["replicas"] == 1


def _yaml(tmp_path: Path, autoscale: str, replicas: int = 2, duration_s: int = 60) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(f"""name: bad
fleet:
  - name: p
    gpu: h100-sxm
    replicas: {replicas}
    model: llama-3.1-8b
    engine: {{max_model_len: 8192}}
    autoscale:
{autoscale}
traffic:
  duration_s: {duration_s}
  arrival: {{process: poisson, rate_rps: 2}}
  classes:
    - name: chat
      prompt_tokens: {{dist: uniform, min: 16, max: 500}}
      output_tokens: {{dist: uniform, min: 1, max: 100}}
""")
    return path


@pytest.mark.parametrize("block, replicas, line, field, valid", [
    ("      min_replicas: 4\n      max_replicas: 2\n      policy: queue-length\n      target: 2", 2, 8,
     "fleet.0.autoscale", "min_replicas (4) must be <= max_replicas (2)"),
    ("      min_replicas: 1\n      max_replicas: 3\n      policy: queue-length\n      target: 2", 5, 5,
     "fleet.0.replicas", "between min_replicas and max_replicas"),
    ("      min_replicas: 1\n      max_replicas: 3\n      policy: queue-length\n      target: 2\n"
     "      cold_start: {provision_s: 90}", 2, 13, "fleet.0.autoscale.cold_start.provision_s", "< 60"),
    ("      min_replicas: 1\n      max_replicas: 3\n      policy: queue-length\n      target: 2\n"
     "      cold_start: {provision_s: 10, load_bandwidth_bytes_s: 1.0e8}", 2, 13, "fleet.0.autoscale.cold_start",
     "a cold start < 60 s"),
    ("      min_replicas: 1\n      max_replicas: 3\n      policy: target-utilization", 2, 8,
     "fleet.0.autoscale", "needs a target"),
    ("      min_replicas: 1\n      max_replicas: 3\n      policy: schedule\n      schedule:\n"
     "        - {at_s: 10, replicas: 5}", 2, 13, "fleet.0.autoscale.schedule.0.replicas", "outside [1, 3]"),
])
def test_bad_autoscale_input_is_refused_located(tmp_path, capsys, block, replicas, line, field, valid):
    path = _yaml(tmp_path, block, replicas)
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2
    assert str(path) in err and f"line {line}," in err and f"field {field}" in err and valid in err


def test_report_of_an_autoscaled_run_has_the_figure_and_the_planner_paragraph(tmp_path, capsys):
    run, rep = tmp_path / "run", tmp_path / "report"
    assert main(["run", str(ROOT / "scenarios" / "autoscaling.yaml"), "--out", str(run)]) == 0
    assert main(["report", str(run), "--format", "html", "--out", str(rep)]) == 0
    html = (rep / "report.html").read_text()
    assert 'id="fig-autoscale"' in html and "What the autoscaler buys" in html and "What it costs" in html
    summary = json.loads((run / "summary.json").read_text())
    pool = summary["autoscale"]["pools"]["h100"]
    assert f"{pool['saving_pct']:,.0f}% less" in html


def test_bundled_scenario_same_seed_same_bytes(tmp_path, capsys):
    sc = ROOT / "scenarios" / "autoscaling.yaml"
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["run", str(sc), "--out", str(out)]) == 0
    assert (outs[0] / "requests.parquet").read_bytes() == (outs[1] / "requests.parquet").read_bytes()
    a, b = (json.loads((o / "summary.json").read_text()) for o in outs)
    assert a["autoscale"] == b["autoscale"]
    pool = a["autoscale"]["pools"]["h100"]
    assert pool["scale_ups"] >= 1 and pool["scale_downs"] >= 1 and pool["replicas_mean"] < pool["max_replicas"]
    assert "autoscale" in capsys.readouterr().out


def test_plan_compares_the_recommended_fleet_fixed_and_autoscaled(tmp_path):
    # the recommended 3 replicas fixed: 3 x $3.60/hour. Autoscaled up to 3 from the scenario's
    # 1 replica, a schedule adding one at 5 s (billed from then): window [2, 20] holds
    # 18 + 15 = 33 replica-seconds, a mean of 33/18 replicas, 33/18 x $3.60/hour
    data = scenario_dict(pricing={"h100-sxm": 3.6})
    auto = {"min_replicas": 1, "max_replicas": 2, "policy": "schedule", "schedule": [{"at_s": 5, "replicas": 2}],
            "cold_start": {"provision_s": 5}}
    out = autoscale_comparison(data, auto, 0, 3, 5.0, tmp_path / "scenario.yaml", 1_000_000)
    fixed, scaled = out["fixed"], out["autoscaled"]
    assert (out["replicas"], out["min_replicas"]) == (3, 1)
    assert fixed["usd_per_hour"] == pytest.approx(3 * 3.6)
    assert scaled["replicas_mean"] == pytest.approx(33 / 18)
    assert scaled["usd_per_hour"] == pytest.approx(33 / 18 * 3.6)
    assert out["saving_pct"] == pytest.approx(100 * (1 - 33 / 18 / 3))
    assert "SLO attainment" in plan_autoscale_sentence(AutoscaleComparison.model_validate(out))


class _Rep:
    """What the controller reads of a replica."""

    def __init__(self, index: int) -> None:
        self.index, self.outstanding, self.failed, self.max_num_seqs = index, 0, False, 8
        self.waiting, self.running = [], {}
        self.stats = ReplicaStats(pool="p", name=f"p/{index}", gpu="h100-sxm", tp=1, kv_blocks_total=1)


def test_queue_length_decisions_follow_hpa_formula_tolerance_and_stabilization():
    # KEDA on waiting requests, target 2 per replica: desired = ceil(total waiting / 2)
    sc = make_scenario(pool={"replicas": 2, "autoscale": {
        "min_replicas": 1, "max_replicas": 6, "policy": "queue-length", "target": 2, "metric_window_s": 1,
        "sync_period_s": 15, "scale_down_cooldown_s": 100}}, traffic={"duration_s": 600})
    env = Environment()
    reps = [_Rep(i) for i in range(6)]
    eligible = [reps[:2]]
    scaler = PoolScaler(env, sc.fleet[0], reps, eligible, None, 10.0)

    def tick(t: float, waiting: list[int]) -> int:
        env._now = env.wq.now = t  # the clock (Environment.now reads the WakeQueue's)
        for rep, n in zip((r for r, s in zip(reps, scaler.state) if s == "active"), waiting):
            rep.waiting = [None] * n
        scaler.control()
        return scaler.count("active", "provisioning")

    assert tick(15, [5, 5]) == 5  # 10 waiting / 2 = 5: up at once (no scale-up window)
    assert scaler.count("active") == 2  # the 3 new ones wait their 10 s cold start
    assert tick(30, [4, 5]) == 5  # 9 / (2 x 2 active) = 2.25 vs 1: ceil(9 / 2) = 5, unchanged
    env._now = env.wq.now = 30
    for j in range(2, 5):
        scaler._ready_cb(j, 1)(None)  # cold start over: they serve
    assert [r.index for r in eligible[0]] == [0, 1, 2, 3, 4]
    assert tick(45, [2, 2, 2, 2, 3]) == 5  # 11 / (2 x 5) = 1.1: within tolerance 0.1, no change
    assert tick(60, [0, 0, 0, 0, 0]) == 5  # proposes min 1, but 5 was proposed within 100 s
    assert tick(135, [0, 0, 0, 0, 0]) == 5  # the proposal of 5 at 45 s is 90 s old
    assert tick(150, [0, 0, 0, 0, 0]) == 1  # now every proposal in the last 100 s is 1
    assert [r.index for r in eligible[0]] == [0]  # the highest-index ones drained (already empty)
    assert scaler.state == ["active", "off", "off", "off", "off", "off"]
