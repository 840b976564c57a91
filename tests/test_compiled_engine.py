"""The Cython-compiled engine (setup.py) against its Python sources, and the engine's event order.

The ``.py`` modules are the reference: the compiled build must give the same
records, byte for byte. The comparison runs the same scenarios in this process
and in a child with ``FLEETCAST_PURE_PYTHON=1`` (the Python sources).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import simpy

import sim
from sim.engine.wake import URGENT, Environment, wake
from tests.factories import scenario_dict

ROOT = Path(__file__).resolve().parents[1]

# Run in both processes: the scenario dicts in, a digest of every record out.
_DIGESTS = r"""
import dataclasses, hashlib, json, sys
from sim.engine.fleet import simulate
from sim.scenario.spec import scenario_from_dict

def digest(res):
    h = hashlib.sha256()
    h.update(res.requests.to_csv().encode())
    h.update(res.timeseries.to_csv().encode())
    h.update(res.itl_hist.tobytes())
    h.update(repr(res.end_s).encode())
    h.update(json.dumps(res.autoscale, sort_keys=True).encode())
    for st in res.replicas:
        h.update(repr(dataclasses.asdict(st)).encode())
    return h.hexdigest()

def digests(cases):
    return [digest(simulate(scenario_from_dict(d), exact_steps=exact)) for d, exact in cases]
"""


def _cases() -> list:
    """Scenarios that take every engine path: each policy and router, prefix caching on and
    off, a KV cache small enough to preempt, a replica failure, both stepping modes."""
    classes = [
        {"name": "chat", "share": 0.6, "priority": 1,
         "prompt_tokens": {"dist": "lognormal", "mean": 900, "cv": 1.0, "min": 8, "max": 3000},
         "output_tokens": {"dist": "uniform", "min": 1, "max": 250},
         "prefix": {"tokens": 300, "num_distinct": 3}},
        {"name": "code", "share": 0.4, "priority": 0,
         "prompt_tokens": {"dist": "uniform", "min": 16, "max": 2000},
         "output_tokens": {"dist": "fixed", "value": 40}},
    ]
    policies = [
        ({"name": "continuous"}, {}),
        ({"name": "priority"}, {}),
        ({"name": "static", "params": {"batch_size": 4, "timeout_s": 0.2}}, {}),
        ({"name": "prefill-first"}, {"enable_chunked_prefill": False, "max_num_batched_tokens": 4096}),
    ]
    routers = ["least-outstanding", "round-robin", "random", "least-kv", "power-of-two", "prefix-affinity"]
    cases = []
    for i, (policy, engine) in enumerate(policies):
        for j, tiny_kv in enumerate((False, True)):
            eng = {"max_model_len": 4096, "block_size": 16, "enable_prefix_caching": (i + j) % 2 == 0, **engine}
            if tiny_kv:
                eng["num_gpu_blocks_override"] = 700
            d = scenario_dict(
                seed=11 + 2 * i + j,
                fleet=[{"name": "p", "gpu": "h100-sxm", "replicas": 3, "model": "llama-3.1-8b",
                        "engine": eng, "policy": policy}],
                router={"name": routers[(2 * i + j) % len(routers)]},
                sim={"drain_s": 20},
                traffic={"duration_s": 20, "warmup_s": 2, "classes": classes,
                         "arrival": {"process": "gamma", "cv": 2.0, "rate_rps": 12}},
            )
            if j:
                d["events"] = [{"kind": "replica-failure", "replica": "p/1", "at_s": 9.0}]
            cases.append((d, i % 2 == 1))
    # disaggregated prefill/decode: the hand-off, a decode KV cache small enough to preempt, a decode failure
    pool = {"gpu": "h100-sxm", "model": "llama-3.1-8b", "engine": {"max_model_len": 4096, "block_size": 16}}
    d = scenario_dict(
        seed=23, fleet=[{**pool, "name": "pre", "role": "prefill", "replicas": 2},
                        {**pool, "name": "dec", "role": "decode", "replicas": 3,
                         "engine": {**pool["engine"], "num_gpu_blocks_override": 700}}],
        kv_transfer={"link": "roce-100g", "overlap": "layerwise"}, sim={"drain_s": 20},
        traffic={"duration_s": 20, "warmup_s": 2, "classes": classes,
                 "arrival": {"process": "gamma", "cv": 2.0, "rate_rps": 12}},
        events=[{"kind": "replica-failure", "replica": "dec/1", "at_s": 9.0}])
    cases += [(d, False), (d, True)]
    # autoscaled pools: replicas joining and leaving the eligible lists (least-outstanding's heaps
    # re-tracked), cold starts, draining, a failure of a replica the autoscaler manages
    for k, (policy, router) in enumerate((("queue-length", "least-outstanding"),
                                          ("target-utilization", "prefix-affinity"))):
        auto = {"min_replicas": 1, "max_replicas": 5, "policy": policy, "target": 0.5 if k else 1.0,
                "metric_window_s": 3, "sync_period_s": 1, "scale_down_cooldown_s": 2,
                "cold_start": {"provision_s": 1.5, "load_bandwidth_bytes_s": 1e10}}
        d = scenario_dict(
            seed=31 + k, fleet=[{"name": "p", "gpu": "h100-sxm", "replicas": 2, "model": "llama-3.1-8b",
                                 "engine": {"max_model_len": 4096, "block_size": 16, "max_num_seqs": 8},
                                 "autoscale": auto}],
            router={"name": router}, sim={"drain_s": 20},
            traffic={"duration_s": 20, "warmup_s": 2, "classes": classes,
                     "arrival": {"process": "gamma", "cv": 2.0, "rate_rps": 12}},
            events=[{"kind": "replica-failure", "replica": "p/0", "at_s": 9.0}] if k else [])
        cases.append((d, k == 1))
    return cases


def test_engine_build_is_reported():
    assert sim.engine_build() in ("compiled", "pure Python")


@pytest.mark.skipif(sim.engine_build() != "compiled",
                    reason="the engine is not compiled in this install (no Cython or no C compiler): "
                           "there is no second build to compare")
def test_compiled_engine_gives_the_records_of_the_python_sources():
    cases = _cases()
    ns: dict = {}
    exec(_DIGESTS, ns)
    here = ns["digests"](cases)
    code = _DIGESTS + "\nprint(json.dumps([__import__('sim').engine_build(), digests(json.loads(sys.stdin.read()))]))"
    env = {**os.environ, "FLEETCAST_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(cases), capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    build, there = json.loads(out.stdout.strip().splitlines()[-1])
    assert build == "pure Python"
    mismatched = [i for i, (a, b) in enumerate(zip(here, there)) if a != b]
    assert not mismatched, f"records differ between the compiled and the Python engine in cases {mismatched}"
    assert len(set(here)) == len(here)  # the cases really differ from each other


def test_wakes_and_simpy_events_run_in_simpys_order():
    """Wake entries and ordinary SimPy events interleave by (time, priority, scheduling order)."""
    env = Environment()
    seen = []

    def proc(name, delay):
        yield env.timeout(delay)
        seen.append((env.now, name))

    plan = [("w0", 1.0, None), ("p0", 1.0, "proc"), ("w1", 1.0, URGENT), ("w2", 0.5, None), ("p1", 0.5, "proc"),
            ("w3", 2.0, None), ("p2", 1.0, "proc"), ("w4", 1.0, None)]
    for name, delay, kind in plan:
        if kind == "proc":
            env.process(proc(name, delay))
        else:
            prio = URGENT if kind == URGENT else simpy.events.NORMAL
            wake(env, delay, lambda w, n=name: seen.append((env.now, n)), prio)
    env.run()
    # The same schedule on a plain simpy.Environment, with Timeout callbacks standing in for wakes.
    ref_env, ref = simpy.Environment(), []

    def ref_proc(name, delay):
        yield ref_env.timeout(delay)
        ref.append((ref_env.now, name))

    for name, delay, kind in plan:
        if kind == "proc":
            ref_env.process(ref_proc(name, delay))
        else:
            ev = simpy.Event(ref_env)
            ev._ok, ev._value = True, None
            ev.callbacks.append(lambda e, n=name: ref.append((ref_env.now, n)))
            ref_env.schedule(ev, URGENT if kind == URGENT else simpy.events.NORMAL, delay)
    ref_env.run()
    assert seen == ref
    assert [n for _, n in seen][:2] == ["w2", "p1"]  # time first
    assert seen[2][1] == "w1"  # then URGENT before NORMAL at t=1
