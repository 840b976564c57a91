"""The replica engine against queueing theory, invariants and policy behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.analysis.forecast import summary_of
from sim.engine.fleet import Fleet, simulate
from sim.engine.inputs import failure_schedule
from sim.engine.kvcache import KVCache, OutOfBlocks
from sim.engine.ledger import Ledger
from sim.perf.cpu_side import cpu_side_for
from sim.workload.generate import generate_workload
from tests.factories import make_scenario, scenario_dict


def _service_time_s(pool: dict, prompt: int, output: int) -> float:
    """E2E of one request alone in the system."""
    sc = make_scenario(pool=pool, traffic={
        "duration_s": 1, "warmup_s": 0, "arrival": {"process": "constant", "rate_rps": 1},
        "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": prompt},
                     "output_tokens": {"dist": "fixed", "value": output}}]})
    df = simulate(sc).requests
    assert len(df) == 1
    return float(df.e2e_s.iloc[0])


def test_one_at_a_time_replica_is_md1():
    """max_num_seqs=1 + fixed lengths = deterministic service: M/D/1 mean wait (Pollaczek-Khinchine)."""
    pool = {"engine": {"max_model_len": 8192, "max_num_seqs": 1, "enable_prefix_caching": False}}
    alone = _service_time_s(pool, 256, 8)
    # the engine is the M/D/1 server; the API server's admission work (sim.engine.front_end) is a
    # constant delay in front of it (its own queue: ~3 ms of work per request at ~9 req/s, a wait of
    # ~0.04 ms on average, under 0.1% of the M/D/1 wait checked below)
    fe = cpu_side_for(None)
    s = alone - (fe.fe_request_s + fe.fe_prompt_tok_s * 256)
    rho = 0.6
    lam = rho / s
    n = 60_000
    sc = make_scenario(pool=pool, traffic={
        "duration_s": n / lam, "warmup_s": 0, "arrival": {"process": "poisson", "rate_rps": lam},
        "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 256},
                     "output_tokens": {"dist": "fixed", "value": 8}}]})
    df = simulate(sc).requests
    assert (df.status == "ok").all()
    wait = (df.e2e_s - alone).to_numpy()
    assert wait.min() > -1e-9  # nobody is served faster than the service time
    pk = rho * s / (2 * (1 - rho))
    assert abs(wait.mean() - pk) / pk < 0.05, (wait.mean(), pk)


def test_littles_law_holds_on_a_busy_fleet():
    """L = lambda W with L measured independently of the request records: the time average of the
    number in system that the replicas sample into the time series (running + waiting, every replica,
    every tick), against lambda and W from the request records."""
    sc = make_scenario(pool={"replicas": 2}, sim={"timeseries_interval_s": 0.1},
                       traffic={"duration_s": 300, "warmup_s": 10,
                                "arrival": {"process": "poisson", "rate_rps": 20}})
    result = simulate(sc)
    w0, w1 = result.window
    req = result.requests
    assert (req.status == "ok").all()  # nobody leaves without finishing: the system holds what arrived
    in_win = ((req.arrival_s >= w0) & (req.arrival_s < w1)).to_numpy()
    lam = in_win.sum() / (w1 - w0)
    W = float((req.finish_s - req.arrival_s)[in_win].mean())
    ts = result.timeseries
    n = (ts.running + ts.waiting).groupby(ts.t_s).sum()  # in system, all replicas, per tick
    n = n[(n.index >= w0) & (n.index < w1)]
    assert ts.replica.nunique() == 2 and len(n) > 2500  # every replica sampled each 0.1 s tick
    L = float(n.mean())
    assert L > 10  # busy: the queue is long enough for the check to mean something
    # Tolerance 3%. Both sides are the same sample path, so its randomness cancels; what is left:
    # - window edges: lambda W counts the whole stay of requests arriving in the window, the time average
    #   only what falls inside it; a gap of about W / (w1 - w0) ~ 1.3 s / 290 s ~ 0.5%;
    # - sampling: the time average read at 2,900 ticks instead of integrated; N(t) changes ~40 times a
    #   second (20 arrivals, 20 departures), a few times per tick, so a tick's value is off the tick
    #   interval's mean by ~1 of ~27, and averaging 2,900 ticks leaves ~1 / sqrt(2900) / 27 ~ 0.1%;
    # - a tick is sampled at the end of the engine step running over it (~10-30 ms later), not on it:
    #   no bias in steady state.
    # That is ~0.6% at most; 3% leaves margin and still fails if requests are missing from the engine's
    # counts or finish times are off by a few percent.
    assert L == pytest.approx(lam * W, rel=0.03), (L, lam * W)
    # the summary's own check (L integrated from the same records as lambda W) agrees with the sampled L
    little = summary_of(sc, result)["little"]
    assert little["rel_gap"] < 0.01, little
    assert little["L"] == pytest.approx(L, rel=0.03)


def _random_scenario(draw) -> dict:
    policy = draw(st.sampled_from(["continuous", "prefill-first", "static", "priority"]))
    params = {"batch_size": draw(st.integers(1, 6)), "timeout_s": draw(st.floats(0.0, 0.5))} if policy == "static" else {}
    chunked = draw(st.booleans())
    engine = {
        "max_model_len": 4096,
        "max_num_seqs": draw(st.integers(1, 64)),
        "max_num_batched_tokens": draw(st.sampled_from([512, 2048])) if chunked else 4096,
        "block_size": draw(st.sampled_from([8, 16, 32])),
        "enable_chunked_prefill": chunked,
        "enable_prefix_caching": draw(st.booleans()),
        "num_gpu_blocks_override": draw(st.sampled_from([None, 600, 1500])),
    }
    engine["max_num_seqs"] = min(engine["max_num_seqs"], engine["max_num_batched_tokens"])
    if draw(st.integers(0, 3)) == 0:  # speculative decoding: its token-steps keep the closed form
        engine["speculative"] = {"method": draw(st.sampled_from(["ngram", "eagle"])),
                                 "num_speculative_tokens": draw(st.integers(1, 5)),
                                 "acceptance_rate": draw(st.floats(0.0, 1.0))}
    classes = [
        {"name": "a", "share": 0.6, "priority": 1,
         "prompt_tokens": {"dist": "uniform", "min": 1, "max": 1200},
         "output_tokens": {"dist": "uniform", "min": 1, "max": 200},
         "prefix": {"tokens": draw(st.sampled_from([64, 300])), "num_distinct": 3}},
        {"name": "b", "share": 0.4, "priority": 0,
         "prompt_tokens": {"dist": "lognormal", "mean": 300, "cv": 1.0, "min": 1, "max": 2000},
         "output_tokens": {"dist": "fixed", "value": draw(st.integers(1, 120))}},
    ]
    replicas = draw(st.integers(1, 3))
    # a replica failure (when another replica is left) cuts decode runs and hands requests back
    events = ([{"kind": "replica-failure", "replica": "p/0", "at_s": draw(st.floats(0.5, 14.5))}]
              if replicas > 1 and draw(st.booleans()) else [])
    pool = {"name": "p", "gpu": draw(st.sampled_from(["h100-sxm", "l4"])), "replicas": replicas,
            "model": "llama-3.1-8b", "quantization": {"weights": draw(st.sampled_from(["bf16", "int4-awq"]))}}
    if draw(st.integers(0, 3)) == 0:  # an MoE pool, data-parallel ranks with or without expert parallelism
        pool.update(gpu="h100-sxm", model="qwen3-30b-a3b", quantization={"weights": "bf16"},
                    data_parallel=draw(st.sampled_from([1, 2])), expert_parallel=draw(st.booleans()))
    return scenario_dict(
        seed=draw(st.integers(0, 2**31)),
        events=events,
        fleet=[{**pool, "engine": engine, "policy": {"name": policy, "params": params}}],
        router={"name": draw(st.sampled_from(["round-robin", "random", "least-outstanding", "least-kv",
                                             "power-of-two", "prefix-affinity"]))},
        sim={"drain_s": 20},
        traffic={"duration_s": 15, "warmup_s": 1,
                 "arrival": {"process": "gamma", "cv": draw(st.sampled_from([1.0, 3.0])), "rate_rps": draw(st.floats(1, 15))},
                 "classes": classes},
    )


@st.composite
def scenarios(draw):
    from sim.scenario.spec import scenario_from_dict
    return scenario_from_dict(_random_scenario(draw))


class _CountingLedger(Ledger):
    """Counts how often each request ends and checks its replica's KV pool at every end."""

    def __init__(self, n, done, replicas):
        super().__init__(n, done)
        self.ends = np.zeros(n, dtype=np.int64)
        self.replicas = replicas

    def finish(self, req, t):
        self.ends[req.rid] += 1
        rep = self.replicas[self.replica_of[req.rid]]
        assert 0 <= rep.kv.used <= rep.kv.num_blocks
        super().finish(req, t)

    def reject(self, req, replica_index):
        self.ends[req.rid] += 1
        super().reject(req, replica_index)


def _counting_fleet(sc, wl, **kw) -> Fleet:
    """A fleet whose replicas record into a ``_CountingLedger``."""
    fleet = Fleet(sc, wl, failures=failure_schedule(sc), **kw)
    ledger = _CountingLedger(len(wl), fleet.ledger.done, fleet.replicas)
    fleet.ledger = ledger
    for rep in fleet.replicas:
        rep.ledger = ledger
    return fleet


def decoding_request_s(requests: pd.DataFrame, window: tuple[float, float]) -> float:
    """Request-seconds spent between first and last token, inside the window
    (by step end time, as the replica stats count them)."""
    ok = requests[requests.status == "ok"]
    lo = np.clip(ok.first_token_s.to_numpy(), *window)
    hi = np.clip(ok.finish_s.to_numpy(), *window)
    return float(np.sum(hi - lo))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_fast_forward_equals_exact_steps_and_invariants_hold(sc):
    wl = generate_workload(sc.traffic, sc.seed, sc.base_dir)
    fast_fleet = _counting_fleet(sc, wl)
    fast = fast_fleet.run()
    exact_fleet = _counting_fleet(sc, wl, exact_steps=True)
    exact = exact_fleet.run()
    # identical records, time series and ITL histogram: exact values, no tolerance
    pd.testing.assert_frame_equal(fast.requests, exact.requests, check_exact=True)
    pd.testing.assert_frame_equal(fast.timeseries, exact.timeseries, check_exact=True)
    assert fast.itl_hist.dtype == exact.itl_hist.dtype and np.array_equal(fast.itl_hist, exact.itl_hist)
    # replica counters: step counts exact; busy time, FLOPs and bytes are the same sums taken in another
    # order (a fast-forwarded run adds its closed-form total once, exact stepping adds each step), so
    # they agree to float rounding: a sum of m positive terms is off by at most m * 2**-52 relative
    for f, e in zip(fast.replicas, exact.replicas):
        assert (f.name, f.steps) == (e.name, e.steps)
        rel = max(e.steps, 1) * 2.0**-52
        for field in ("busy_s", "flops", "bytes"):
            assert getattr(f, field) == pytest.approx(getattr(e, field), rel=rel, abs=0), field
    # KV block-seconds: fast-forwarded decode runs take each sequence's block growth within a run as a
    # linear ramp (docs/design.md, "Fast-forward"); a sequence's block count is within one block of that
    # ramp, so the difference is at most one block-second per second a request spends decoding
    kv_gap = abs(sum(r.kv_block_s for r in fast.replicas) - sum(r.kv_block_s for r in exact.replicas))
    assert kv_gap <= decoding_request_s(exact.requests, exact.window) + 1e-9
    df = fast.requests
    # every request that was not cut off by the drain limit ends exactly once
    ended = df.status.isin(["ok", "rejected"]).to_numpy()
    ends = fast_fleet.ledger.ends
    assert (ends[ended] == 1).all() and (ends[~ended] == 0).all()
    # KV usage never above capacity
    assert fast.timeseries.kv_usage.between(0, 1).all()
    # tokens are conserved: ok requests produced exactly what they asked for
    ok = df.status == "ok"
    assert (df.output_tokens[ok].to_numpy() == wl.output_tokens[ok.to_numpy()]).all()
    assert (df.cached_prompt_tokens <= df.prompt_tokens).all()
    # causality
    assert (df.first_token_s[ok] >= df.arrival_s[ok]).all()
    assert (df.finish_s[ok] >= df.first_token_s[ok]).all()
    # all KV blocks are back when every request ended
    if ended.all():
        for rep in fast_fleet.replicas:
            assert rep.kv.used == 0


def test_same_seed_same_records_byte_for_byte(tmp_path):
    sc = make_scenario()
    a, b = simulate(sc), simulate(sc)
    for table in ("requests", "timeseries"):
        pa, pb = tmp_path / f"a-{table}.parquet", tmp_path / f"b-{table}.parquet"
        getattr(a, table).to_parquet(pa)
        getattr(b, table).to_parquet(pb)
        assert pa.read_bytes() == pb.read_bytes(), table
    assert a.itl_hist.sum() > 0
    assert a.itl_hist.dtype == b.itl_hist.dtype and a.itl_hist.tobytes() == b.itl_hist.tobytes()
    assert a.replicas == b.replicas  # every counter (busy_s, flops, bytes, kv_block_s, steps) exactly
    assert (a.end_s, a.window) == (b.end_s, b.window)
    c = simulate(make_scenario(seed=8))
    assert not a.requests.arrival_s.equals(c.requests.arrival_s)


def _one_burst(policy: dict, n: int = 4, gap_s: float = 0.5, **engine) -> pd.DataFrame:
    sc = make_scenario(pool={"policy": policy, "engine": {"max_model_len": 8192, **engine}}, traffic={
        "duration_s": n * gap_s, "warmup_s": 0, "arrival": {"process": "constant", "rate_rps": 1 / gap_s},
        "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 128},
                     "output_tokens": {"dist": "fixed", "value": 16}}]})
    return simulate(sc).requests


def test_static_waits_for_its_batch():
    df = _one_burst({"name": "static", "params": {"batch_size": 4, "timeout_s": 60}})
    last_arrival = df.arrival_s.max()
    assert (df.first_token_s >= last_arrival).all()  # nobody starts before the batch is full
    cont = _one_burst({"name": "continuous"})
    assert cont.ttft_s.iloc[0] < 0.1 < df.ttft_s.iloc[0]


def test_static_timeout_releases_a_partial_batch():
    df = _one_burst({"name": "static", "params": {"batch_size": 100, "timeout_s": 0.3}}, n=1)
    assert df.ttft_s.iloc[0] == pytest.approx(0.3, abs=0.05)


def test_chunked_prefill_bounds_step_tokens(monkeypatch):
    from sim.perf import perf_model as perf
    from sim.perf import step_source
    seen = []

    class Spy(perf.PerfModel):  # a subclass: the compiled PerfModel's methods cannot be replaced on the class
        def step_time_s(self, prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens, num_prefill_seqs=0,
                        queries_per_decode=1):
            seen.append(prefill_tokens + num_decodes)
            return super().step_time_s(prefill_tokens, prefill_attn, num_decodes, decode_ctx_tokens,
                                       num_prefill_seqs, queries_per_decode)

    monkeypatch.setattr(step_source, "PerfModel", Spy)
    sc = make_scenario(pool={"engine": {"max_model_len": 8192, "max_num_batched_tokens": 512}}, traffic={
        "classes": [{"name": "c", "prompt_tokens": {"dist": "uniform", "min": 1000, "max": 4000},
                     "output_tokens": {"dist": "fixed", "value": 20}}]})
    df = simulate(sc).requests
    assert (df.status == "ok").all()
    assert seen and max(seen) <= 512
    assert max(seen) == 512  # long prompts really were chunked to the budget


def test_tiny_kv_cache_causes_preemptions_and_everyone_still_finishes():
    sc = make_scenario(pool={"engine": {"max_model_len": 2048, "num_gpu_blocks_override": 140}}, traffic={
        "arrival": {"process": "poisson", "rate_rps": 1.5},
        "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 256},
                     "output_tokens": {"dist": "fixed", "value": 512}}]})
    df = simulate(sc).requests
    assert df.preemptions.sum() > 0
    assert (df.status == "ok").all()
    roomy = simulate(make_scenario(pool={"engine": {"max_model_len": 2048}}, traffic=sc.traffic.model_dump()))
    assert roomy.requests.preemptions.sum() == 0


def test_prefix_caching_cuts_prefill_work_on_the_mooncake_trace():
    from pathlib import Path

    # the first 1,500 requests of Mooncake's conversation trace, shipped with the examples (scenarios/data)
    trace = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "mooncake-conversation-sample.jsonl"

    def run(caching: bool):
        sc = make_scenario(
            pool={"replicas": 12, "engine": {"max_model_len": 131072, "enable_prefix_caching": caching}},
            traffic={"duration_s": 150, "warmup_s": 0,
                     "arrival": {"process": "trace", "path": str(trace), "preset": "mooncake", "max_requests": 300},
                     "classes": [{"name": "conv"}]},
            router={"name": "prefix-affinity"})
        result = simulate(sc)
        return result.requests, sum(r.flops for r in result.replicas)

    on, flops_on = run(True)
    off, flops_off = run(False)
    assert len(on) == len(off) > 100
    assert off.cached_prompt_tokens.sum() == 0
    hit_share = on.cached_prompt_tokens.sum() / on.prompt_tokens.sum()
    # what an infinite cache shared by all replicas would hit (512-token hash blocks)
    import json
    seen, ideal, total = set(), 0, 0
    with trace.open() as f:
        for _, line in zip(range(len(on)), f):
            row = json.loads(line)
            shared = 0
            for h in row["hash_ids"]:
                if h not in seen:
                    break
                shared += 1
            ideal += min(shared * 512, row["input_length"])
            total += row["input_length"]
            seen.update(row["hash_ids"])
    assert hit_share > 0.6 * ideal / total, (hit_share, ideal / total)
    # less prefill work: the steps' FLOPs shrink. (Not necessarily their busy time: each step also carries
    # vLLM's per-step CPU work, sim.perf.cpu_side, so busy time follows the number of steps as well as the
    # work in them; on this trace the cached run was busy longer, 743 vs 654 replica-seconds, when measured.)
    assert flops_on < flops_off


def test_kvcache_lru_eviction_and_sharing():
    kv = KVCache(num_blocks=4, block_size=16, enable_prefix_caching=True)
    kv.allocate(2)
    assert kv.register("a0") and kv.register("a1")
    assert not kv.register("a0")  # already cached
    kv.release(["a0", "a1"], private_blocks=0)
    assert kv.used == 0 and kv.free == 4 and list(kv.evictable) == ["a1", "a0"]
    assert kv.match(["a0", "a1", "zz"]) == (2, 2)
    kv.allocate(3)  # 2 empty + evicts the oldest evictable ("a1")
    assert list(kv.evictable) == ["a0"] and kv.match(["a0", "a1"]) == (1, 1)
    with pytest.raises(OutOfBlocks, match="asked for 2 blocks, 1 free"):
        kv.allocate(2)
    assert kv.free == 1 and list(kv.evictable) == ["a0"]  # a refused allocation takes nothing


def test_prefill_first_decode_stalls_show_in_itl():
    """vLLM v0 stops decoding while it prefills; those stalls are inter-token gaps."""
    from sim.analysis.metrics import hist_percentiles

    def itl_max(policy: str, chunked: bool) -> float:
        sc = make_scenario(
            pool={"policy": {"name": policy}, "engine": {"max_model_len": 8192, "max_num_batched_tokens": 8192,
                                                         "enable_chunked_prefill": chunked}},
            traffic={"duration_s": 30, "warmup_s": 0, "arrival": {"process": "poisson", "rate_rps": 3},
                     "classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 6000},
                                  "output_tokens": {"dist": "fixed", "value": 200}}]})
        res = simulate(sc)
        hist = res.itl_hist[0]
        top = int(np.nonzero(hist)[0].max())
        from sim.records import ITL_EDGES_S
        return float(ITL_EDGES_S[top + 1]), hist_percentiles(hist)["p99"]

    v0_max, _ = itl_max("prefill-first", False)
    v1_max, _ = itl_max("continuous", True)
    # a 6000-token prefill of Llama-3.1-8B on an H100 takes well over 100 ms
    assert v0_max > 0.1 and v0_max > 2 * v1_max, (v0_max, v1_max)


def test_prompt_longer_than_budget_does_not_block_prefill_first():
    sc = make_scenario(pool={"policy": {"name": "prefill-first"},
                             "engine": {"max_model_len": 8192, "max_num_batched_tokens": 2048}},
                       traffic={"classes": [{"name": "c", "prompt_tokens": {"dist": "fixed", "value": 5000},
                                             "output_tokens": {"dist": "fixed", "value": 10}}]})
    df = simulate(sc).requests
    assert (df.status == "ok").all()


def test_request_latency_shifts_ttft_and_e2e_only(tmp_path):
    """t_request_s (latency outside the engine) adds exactly to TTFT and E2E and
    changes nothing the engine does."""
    import json

    from sim.engine.fleet import simulate

    (tmp_path / "lat.json").write_text(json.dumps({"name": "lat", "coefficients": {"t_request_s": 0.05}}))
    (tmp_path / "zero.json").write_text(json.dumps({"name": "zero", "coefficients": {}}))
    runs = {}
    for name in ("zero", "lat"):
        data = scenario_dict()
        data["fleet"][0]["profile"] = str(tmp_path / f"{name}.json")
        from sim.scenario.spec import scenario_from_dict

        runs[name] = simulate(scenario_from_dict(data))
    a, b = runs["zero"].requests, runs["lat"].requests
    ok = a["status"] == "ok"
    assert ok.sum() > 50 and (b["status"] == a["status"]).all()
    np.testing.assert_allclose((b["first_token_s"] - a["first_token_s"])[ok], 0.05, atol=1e-9)
    np.testing.assert_allclose((b["finish_s"] - a["finish_s"])[ok], 0.05, atol=1e-9)
    assert (b["output_tokens"] == a["output_tokens"]).all()
    # nothing the engine does changes: time series, ITL histogram and replica counters exactly
    pd.testing.assert_frame_equal(runs["zero"].timeseries, runs["lat"].timeseries, check_exact=True)
    assert np.array_equal(runs["zero"].itl_hist, runs["lat"].itl_hist)
    assert runs["zero"].replicas == runs["lat"].replicas
