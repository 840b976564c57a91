"""A conversation turn's decode-filled blocks are cached (vLLM v1: ``KVCacheManager.allocate_slots``
caches the full blocks of ``min(computed + new tokens, request.num_tokens)`` tokens every step, the
decode's included), so the next turn finds the previous turn's output in the cache, unless it was
evicted meanwhile (freed blocks are evicted tail first). Workloads built by hand and run on one
replica of 16-token blocks; every expected figure is worked in the test's docstring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from sim.engine.fleet import simulate
from sim.scenario.spec import scenario_from_dict
from sim.workload.generate import Workload
from sim.workload.sessions import SessionTurns, session_chains

ROOT = Path(__file__).resolve().parents[1]
BS = 16


def _scenario(tmp_path: Path, num_blocks: int | None = None):
    base = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    base["fleet"][0]["replicas"] = 1
    if num_blocks is not None:
        # vLLM v1 keeps one block aside (the null block): num_gpu_blocks N leaves N - 1 to requests
        base["fleet"][0]["engine"].update(num_gpu_blocks_override=num_blocks + 1, max_model_len=256)
    base["traffic"] = {
        "duration_s": 100,
        "arrival": {"process": "poisson", "rate_rps": 1},
        "classes": [
            {
                "name": "conv",
                "prompt_tokens": {"dist": "fixed", "value": 100},
                "output_tokens": {"dist": "fixed", "value": 30},
            }
        ],
    }
    return scenario_from_dict(base, path=tmp_path / "s.yaml")


def _workload(rows: list[tuple[float, int, int, int, int]]) -> Workload:
    """Requests (arrival_s, prompt, output, session, turn), in arrival order; session -1: a single
    request without a prefix chain. A session's turns are listed in order (their chains come from
    ``session_chains``, as the generator builds them)."""
    conv = [i for i, r in enumerate(rows) if r[3] >= 0]
    order = sorted(conv, key=lambda i: (rows[i][3], rows[i][4]))
    turns = SessionTurns(
        np.array([rows[i][0] for i in order]),
        np.array([rows[i][3] for i in order], dtype=np.int64),
        np.array([rows[i][4] for i in order], dtype=np.int64),
        np.zeros(len(order), dtype=np.int64),
        np.zeros(len(order)),
    )
    off, keys, ends = session_chains(
        turns,
        np.array([rows[i][1] for i in order], dtype=np.int64),
        np.array([rows[i][2] for i in order], dtype=np.int64),
        7,
    )
    chain = {i: (keys[off[j] : off[j + 1]], ends[off[j] : off[j + 1]]) for j, i in enumerate(order)}
    offsets, all_keys, all_ends = [0], [], []
    for i in range(len(rows)):
        k, e = chain.get(i, ((), ()))
        all_keys.extend(k)
        all_ends.extend(e)
        offsets.append(len(all_keys))
    n = len(rows)
    return Workload(
        arrival_s=np.array([r[0] for r in rows]),
        class_idx=np.zeros(n, dtype=np.int16),
        prompt_tokens=np.array([r[1] for r in rows], dtype=np.int32),
        output_tokens=np.array([r[2] for r in rows], dtype=np.int32),
        prefix_offsets=np.array(offsets, dtype=np.int64),
        prefix_keys=np.array(all_keys, dtype=np.int64),
        prefix_end_tok=np.array(all_ends, dtype=np.int32),
        class_names=["conv"],
    )


def _cached(tmp_path: Path, rows, num_blocks: int | None = None) -> list[int]:
    result = simulate(_scenario(tmp_path, num_blocks), workload=_workload(rows))
    req = result.requests.sort_values("request_id")
    return req["cached_prompt_tokens"].tolist()


def test_turn_two_finds_turn_ones_output_blocks(tmp_path):
    """P1 = 100, O1 = 30, N2 = 10, so P2 = 140. Turn 1 ends with 100 + 30 - 1 = 129 tokens computed
    (its last token is sampled, never fed back: no KV) and their full blocks cached:
    floor(129 / 16) = 8 blocks, 128 tokens, 32 of them its output's. Turn 2 looks up at most
    floor((140 - 1) / 16) = 8 blocks: it finds 128 cached tokens (96 when only prompt blocks were
    cached: floor(100 / 16) = 6 blocks)."""
    assert _cached(tmp_path, [(0.0, 100, 30, 0, 0), (20.0, 140, 30, 0, 1)]) == [0, 128]


def test_a_block_the_last_token_would_fill_is_not_cached(tmp_path):
    """P1 = 100, O1 = 28: P1 + O1 = 128 is 8 whole blocks, but the last token has no KV, so turn 1
    computes 127 tokens and caches floor(127 / 16) = 7 blocks; turn 2 (P2 = 100 + 28 + 10 = 138)
    finds 112 cached tokens, not 128."""
    assert _cached(tmp_path, [(0.0, 100, 28, 0, 0), (20.0, 138, 30, 0, 1)]) == [0, 112]


def test_evicted_output_blocks_go_first(tmp_path):
    """20 blocks for requests. Turn 1 (P1 = 100, O1 = 30) ends holding ceil(129 / 16) = 9 blocks: 8 cached,
    1 private; on release the private one is empty again and the 8 cached ones become evictable,
    last block first (vLLM frees a request's blocks in reverse order, so its tail is evicted
    first): empty 20 - 9 + 1 = 12. A single request at 10 s (prompt 200, output 24, no prefix)
    takes ceil(200 / 16) = 13 blocks for its prefill (12 empty + 1 evicted: block 7) and one more
    when its decode reaches token 208 (ceil(223 / 16) = 14: block 6 evicted). Turn 2 at 20 s
    (P2 = 140) then finds blocks 0..5 of turn 1, 96 tokens: the prompt's blocks survived, the
    output's were evicted. (Head-first eviction would have left it nothing: block 0 gone.)"""
    rows = [(0.0, 100, 30, 0, 0), (10.0, 200, 24, -1, 0), (20.0, 140, 30, 0, 1)]
    assert _cached(tmp_path, rows, num_blocks=20) == [0, 0, 96]
    assert _cached(tmp_path, rows, num_blocks=21) == [0, 0, 112]  # one more block: only block 7 evicted


def test_chains_cut_at_the_prompt_cache_prompt_blocks_only(tmp_path):
    """Chains that end at each turn's prompt (as a replayed log's hashes do) cache prompt blocks
    only, as before: turn 2 finds turn 1's floor(100 / 16) = 6 blocks, 96 tokens."""
    wl = _workload([(0.0, 100, 30, 0, 0), (20.0, 140, 30, 0, 1)])
    # cut each chain at its prompt: drop the last chunk (the turn's own output)
    off = wl.prefix_offsets
    keep = np.ones(len(wl.prefix_keys), dtype=bool)
    keep[off[1:] - 1] = False
    lens = np.diff(off) - 1
    cut = Workload(
        arrival_s=wl.arrival_s,
        class_idx=wl.class_idx,
        prompt_tokens=wl.prompt_tokens,
        output_tokens=wl.output_tokens,
        prefix_offsets=np.concatenate([[0], np.cumsum(lens)]).astype(np.int64),
        prefix_keys=wl.prefix_keys[keep],
        prefix_end_tok=wl.prefix_end_tok[keep],
        class_names=wl.class_names,
    )
    assert cut.chain(1)[1].tolist() == [100, 130, 140]
    result = simulate(_scenario(tmp_path), workload=cut)
    assert result.requests.sort_values("request_id")["cached_prompt_tokens"].tolist() == [0, 96]


def test_a_conversation_logs_replay_covers_each_turns_output():
    """16-token blocks; conversation c: turn 1 (prompt 40, output 10) is 50 tokens of its text:
    full blocks 0-2 (shared ids 0, 1, 2) and a partial one of its own; turn 2 (prompt 70, output 5)
    is 75 tokens: full blocks 0-3 (ids 0-3) and its own partial one; a request outside any
    conversation (prompt 20) has ceil(20 / 16) = 2 blocks of its own. Own ids come after the 4
    shared ones: 4, 5, then 6, 7. The trace reader keeps turn 1's ids past its prompt's
    ceil(40 / 16) = 3 blocks, ending its chunks at min(16 (j + 1), 40 + 10): 16, 32, 48, 50;
    turn 2's 5 ids are its prompt's ceil(70 / 16) = 5 blocks: chunks end at 16, 32, 48, 64, 70."""
    from sim.analysis.traffic_roundtrip import conversation_hashes
    from sim.workload.generate import _trace_chains

    got = conversation_hashes(np.array(["c", "c", ""]), np.array([40, 70, 20]), np.array([10, 5, 7]))
    assert got == ["0 1 2 4", "0 1 2 3 5", "6 7"]
    ids = np.array([int(x) for row in got for x in row.split()], dtype=np.int64)
    off = np.array([0, 4, 9, 11], dtype=np.int64)
    new_off, keys, ends = _trace_chains(off, ids, np.array([40, 70, 20]), 16, np.array([10, 5, 7]))
    assert new_off.tolist() == [0, 4, 9, 11]
    assert ends.tolist() == [16, 32, 48, 50, 16, 32, 48, 64, 70, 16, 20]
    assert keys.tolist() == ids.tolist()


def test_a_turn_sent_before_its_previous_one_ends_finds_the_prompt_blocks_only(tmp_path):
    """Turn 2 sent at 0.05 s, while turn 1 (P1 = 100, O1 = 30: about 30 decode steps of several ms
    on an H100 with an 8B model) still decodes: the engine caches a turn's output blocks when it
    lets go of them, so turn 2 finds turn 1's prompt blocks only, floor(100 / 16) = 6 blocks, 96
    tokens (vLLM, caching at each step, would also give it the output blocks decoded so far; a
    real client cannot send this turn before it has the answer it holds)."""
    result = simulate(_scenario(tmp_path), workload=_workload([(0.0, 100, 30, 0, 0), (0.05, 140, 30, 0, 1)]))
    req = result.requests.sort_values("request_id")
    assert float(req["finish_s"].iloc[0]) > 0.05  # the premise: turn 1 had not ended
    assert req["cached_prompt_tokens"].tolist() == [0, 96]


def test_a_turn_preempted_mid_decode_caches_its_decode_filled_blocks(tmp_path):
    """16 blocks for requests (16-token blocks). B (no prefix chain; prompt 160, output 16) arrives at
    0 s and prefills alone: ceil(160 / 16) = 10 blocks. Turn 1 of a conversation (A: prompt 70,
    output 30) arrives during that step and is admitted with B's first decode step: A takes
    ceil(70 / 16) = 5 blocks, B its 11th (it writes position 160): 16 of 16 in use. Step k >= 3 has
    A write position 67 + k and B position 158 + k; A's 5 blocks hold positions 0..79, so at step 13
    A needs a 6th block (position 80) and none is free, while B (finishing at step 16, its 16th
    token; highest position 174, inside its 11 blocks) still runs. vLLM v1 preempts the last
    request of the running queue (vllm/v1/core/sched/scheduler.py, ``Scheduler.schedule``, FCFS:
    ``self.running.pop()``), A, with
    computed = 70 + 11 - 1 = 80 tokens (11 tokens generated, the last without KV).

    On preemption A registers floor(80 / 16) = 5 full blocks, its prompt's 4 and block 4
    (positions 64..79, 6 prompt and 10 output tokens): only prompt blocks would be 4. All 5 become
    evictable; A needs 5 hits + 1 new block to resume, 6 > 5 free, so it waits for B, whose 11
    private blocks go back empty at step 16. A then resumes: it looks up floor((70 + 11 - 1) / 16)
    = 5 blocks (num_tokens - 1) and finds all 5, 80 tokens (prompt blocks only: 4, 64 tokens), and
    recomputes the 81 - 80 = 1 token left. It finishes with 70 + 30 - 1 = 99 tokens computed and
    floor(99 / 16) = 6 blocks cached. Turn 2 at 20 s (prompt 70 + 30 + 10 = 110) looks up
    floor(109 / 16) = 6 blocks and finds all 6: 96 tokens.

    Prefix-cache counters (vllm:prefix_cache_queries / _hits, in blocks): B has no chain, no
    lookup; A's first lookup queries floor((70 - 1) / 16) = 4 blocks and hits 0; its resume
    queries 5 and hits 5; turn 2 queries 6 and hits 6: queries 15, hits 11."""
    from sim.engine.fleet import Fleet

    rows = [(0.0, 160, 16, -1, 0), (0.001, 70, 30, 0, 0), (20.0, 110, 30, 0, 1)]
    fleet = Fleet(_scenario(tmp_path, num_blocks=16), _workload(rows))
    result = fleet.run()
    req = result.requests.sort_values("request_id")
    assert req["status"].tolist() == ["ok"] * 3
    assert req["preemptions"].tolist() == [0, 1, 0]
    assert req["cached_prompt_tokens"].tolist() == [0, 0, 96]  # a resumed request's hits are not its prompt's
    kv = fleet.replicas[0].kv
    assert (kv.query_blocks, kv.hit_blocks) == (15, 11)
