"""Per-request logs with conversation turns and warm-up requests (docs/run-logs.md, "Conversations and
warm-up"): the prefix chains they make, the cache hits the replay then sees, and their bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.logs import conversation_chains, load_log
from calibration.runs import run_scenario
from calibration.validate import validate_run
from sim.engine.fleet import simulate
from sim.engine.prefix_keys import PrefixKeys
from sim.errors import FleetcastError
from sim.workload.generate import Workload

HEAD = "arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens,conversation,turn,prefix_tokens,warmup\n"
SIDECAR = "gpu: h100-sxm\nmodel: llama-3.1-8b\nengine:\n  block_size: 16\n  enable_prefix_caching: true\n"


def _workload(conv, turns, shared, prompt) -> Workload:
    offsets, keys, ends = conversation_chains(conv, np.array(turns), np.array(shared), np.array(prompt))
    n = len(prompt)
    return Workload(
        arrival_s=np.arange(n, dtype=float),
        class_idx=np.zeros(n, dtype=np.int16),
        prompt_tokens=np.array(prompt, dtype=np.int32),
        output_tokens=np.ones(n, dtype=np.int32),
        prefix_offsets=offsets,
        prefix_keys=keys,
        prefix_end_tok=ends,
        class_names=["default"],
    )


def _common_blocks(a: list | None, b: list | None) -> int:
    """Leading blocks two requests' keys agree on (what a prefix cache reuses)."""
    n = 0
    for x, y in zip(a or [], b or []):
        if x != y:
            break
        n += 1
    return n


def test_turns_share_exactly_their_prefix_in_whole_blocks():
    # By hand, block size 16: turn 1 (40 tokens) has 2 full blocks; turn 2 shares 34 of its 70 tokens
    # with turn 1 -> blocks 0-1 (tokens 0-31) in common, block 2 (32-47) is not (34 < 48); turn 3 shares
    # 64 of 100 with turn 2 -> blocks 0-3 in common with turn 2 (64 = 4 x 16), blocks 0-1 with turn 1;
    # a second send of turn 2 has turn 2's 4 full blocks (70 // 16); another conversation shares nothing.
    wl = _workload(["a", "a", "a", "a", "b", ""], [1, 2, 3, 2, 1, 0], [0, 34, 64, 34, 0, 0], [40, 70, 100, 70, 40, 40])
    pk = PrefixKeys(wl)
    keys = [pk.block_keys(r, 16) for r in range(6)]
    assert [len(k or []) for k in keys] == [2, 4, 6, 4, 2, 0]
    assert _common_blocks(keys[0], keys[1]) == 2
    assert _common_blocks(keys[1], keys[2]) == 4
    assert _common_blocks(keys[0], keys[2]) == 2
    assert keys[3] == keys[1]
    assert _common_blocks(keys[0], keys[4]) == 0
    assert keys[5] is None
    # the chains themselves: turn 3 = turn 1's chunk cut at 34, turn 2's cut at 64, its own to 100
    assert list(wl.prefix_end_tok[wl.prefix_offsets[2] : wl.prefix_offsets[3]]) == [34, 64, 100]


def _log(tmp_path: Path, rows: str, name: str = "r.csv") -> Path:
    log = tmp_path / name
    log.write_text(HEAD + rows)
    log.with_name(log.stem + ".fleetcast.yaml").write_text(SIDECAR)
    return log


def test_warmup_is_replayed_first_and_not_measured(tmp_path):
    # a warm-up turn 1 at t = -10 (no timings), then two measured requests: turn 2 (shares 34 tokens)
    # and a request outside any conversation
    log = _log(
        tmp_path,
        "-10,,,40,5,a,1,0,true\n0,0.05,0.15,70,6,a,2,34,\n0.5,0.56,0.66,40,3,,,,\n",
    )
    run = load_log(log)
    assert run.meta["warmup_requests"] == 1
    assert len(run.requests) == 2 and list(run.requests["prompt_tokens"]) == [70, 40]
    assert list(run.workload.prompt_tokens) == [40, 70, 40]
    assert list(run.workload.arrival_s) == [0.0, 10.0, 10.5]  # the warm-up's send is the log's time 0
    res = simulate(run_scenario(run, None), workload=run.workload)
    hits = res.requests.sort_values("request_id")["cached_prompt_tokens"].tolist()
    assert hits == [0, 32, 0]  # turn 2 finds turn 1's first 34 tokens cached, in whole blocks: 32
    comp = validate_run(run, None)
    assert comp.measured["ttft_p50_s"] == pytest.approx(0.055)  # (0.05 + 0.06) / 2: the warm-up is not in it


def test_a_log_without_the_new_columns_replays_as_before(tmp_path):
    log = tmp_path / "plain.csv"
    log.write_text("arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens\n0,0.05,0.15,70,6\n")
    log.with_name("plain.fleetcast.yaml").write_text(SIDECAR)
    run = load_log(log)
    assert "warmup_requests" not in run.meta and len(run.workload.prefix_keys) == 0
    assert not run.workload.prefix_offsets.any()
    assert "conversation" not in run.requests.columns


@pytest.mark.parametrize(
    "rows, pieces",
    [
        ("0,0.1,0.2,40,2,a,1,0,\n1,,,40,2,b,1,0,true\n", ["line 3", "warmup", "sent first"]),
        ("0,0.1,0.2,40,2,a,1,0,\n1,1.1,1.2,70,2,a,2,41,\n", ["line 3", "prefix_tokens", "only 40"]),
        ("0,0.1,0.2,70,2,a,2,30,\n", ["line 2", "prefix_tokens", "does not hold"]),
        ("0,0.1,0.2,40,2,,1,0,\n", ["line 2", "conversation", "missing"]),
        ("0,0.1,0.2,40,2,a,1,5,\n", ["line 2", "prefix_tokens", "turn 1"]),
        ("0,0.1,0.2,40,2,a,2,40,\n", ["line 2", "prefix_tokens", "not below prompt_tokens 40"]),
        ("0,0.1,0.2,40,2,a,1,0,\n1,1.1,1.2,41,2,a,1,0,\n", ["line 3", "turn 1 of conversation 'a'", "line 2"]),
        ("0,0.1,0.2,40,2,a,1,0,maybe\n", ["line 2", "field warmup", "true or false"]),
    ],
)
def test_bad_conversation_fields_name_the_line(tmp_path, rows, pieces):
    with pytest.raises(FleetcastError) as exc:
        load_log(_log(tmp_path, rows))
    for p in pieces:
        assert p in str(exc.value)
