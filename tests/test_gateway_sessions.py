"""Gateway logs with conversations and completion times (``sim.workload.fit.readers``): the columns
read (worked by hand), bad values counted in located warnings, and ``traffic fit`` finding the
clock and think time of known conversations written as a gateway log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli import main
from sim.workload.fit.readers import read_gateway

T0 = 1_700_000_000.0


def test_conversations_turns_and_latencies_by_hand(tmp_path):
    """Rows (line: timestamp, conversation, latency ms): 2: T0+10 a 500; 3: T0+0 a 1500; 4: T0+5 ""
    2000; 5: T0+20 b 250; 6: T0+30 a 100. Without a turn column a conversation's turns are numbered
    by arrival: a's rows at T0+0 (line 3), +10 (line 2), +30 (line 6) are turns 1, 2, 3; b's one
    row is turn 1; the empty one is outside any (turn 0). Rows stay in file order here (the fit
    sorts them later). Completion = timestamp + ms / 1000."""
    p = tmp_path / "gw.csv"
    p.write_text(
        "timestamp,model,prompt_tokens,completion_tokens,conversation_id,latency_ms\n"
        f"{T0 + 10},m,100,10,a,500\n{T0},m,100,10,a,1500\n{T0 + 5},m,100,10,,2000\n"
        f"{T0 + 20},m,100,10,b,250\n{T0 + 30},m,100,10,a,100\n"
    )
    log = read_gateway(p, {})
    assert log.conversation is not None and log.turn is not None and log.finish_s is not None
    assert log.conversation.values().tolist() == ["a", "a", "", "b", "a"]
    assert log.turn.tolist() == [2, 1, 0, 1, 3]
    assert np.allclose(log.finish_s - T0, [10.5, 1.5, 7.0, 20.25, 30.1])
    assert not log.warnings


def test_a_turn_column_and_finish_times_as_dates(tmp_path):
    """JSON Lines with nested usage, ISO 8601 arrival and end times and an explicit turn column
    (mapped with --map from 'step'): the end is read on the arrival's clock."""

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    rows = [(T0, "c1", 1, T0 + 2.5), (T0 + 4, "c1", 2, T0 + 4.75)]
    p = tmp_path / "gw.jsonl"
    p.write_text(
        "".join(
            json.dumps(
                {
                    "created": iso(t),
                    "usage": {"prompt_tokens": 50, "completion_tokens": 7},
                    "session_id": c,
                    "step": k,
                    "end_time": iso(e),
                }
            )
            + "\n"
            for t, c, k, e in rows
        )
    )
    log = read_gateway(p, {"turn": "step"})
    assert log.turn.tolist() == [1, 2]  # type: ignore[union-attr]
    assert np.allclose(log.finish_s - log.arrival_s, [2.5, 0.75])  # type: ignore[operator]


def test_bad_values_are_counted_where_they_are(tmp_path):
    """Line 3's latency is no number, line 4's is negative: 2 rows without a completion (kept),
    the first at line 3. Line 5's turn is 0: taken out of its conversation, at line 5. An end
    time on another clock than the timestamps (relative seconds against dates) is not used."""
    p = tmp_path / "gw.csv"
    p.write_text(
        "timestamp,prompt_tokens,completion_tokens,conversation,turn,latency_s\n"
        f"{T0},10,5,a,1,0.5\n{T0 + 1},10,5,a,2,soon\n{T0 + 2},10,5,a,3,-1\n{T0 + 3},10,5,b,0,1\n"
    )
    log = read_gateway(p, {})
    assert len(log) == 4
    assert np.isnan(log.finish_s[1:3]).all() and np.allclose(log.finish_s[[0, 3]] - T0, [0.5, 4.0])  # type: ignore[index]
    assert log.conversation.values().tolist() == ["a", "a", "a", ""]  # type: ignore[union-attr]
    assert log.turn.tolist() == [1, 2, 3, 0]  # type: ignore[union-attr]
    joined = "\n".join(log.warnings)
    assert "2 of 4 row(s) without a usable completion time: column 'latency_s'" in joined
    assert "(the first at line 3: 'soon')" in joined
    assert "1 of 4 row(s) taken out of their conversation: column 'turn'" in joined and "line 5" in joined

    q = tmp_path / "gw2.csv"
    q.write_text("timestamp,prompt_tokens,completion_tokens,end_time\n" + f"{T0},10,5,3.5\n")
    log = read_gateway(q, {})
    assert log.finish_s is None and "is not on the timestamps' clock" in log.warnings[0]


def _conversation_gateway(path: Path, model: str, seed: int, span_s: float = 3600.0) -> None:
    """Sessions start Poisson at 0.1/s; each turn continues with chance 0.6; a turn's latency is
    uniform on 0.5..20 s; the next turn arrives latency + exponential(10 s) after it arrived
    (``completion``) or exponential(20 s) after it (``arrival``). Written as a gateway CSV: UNIX
    timestamps, a conversation id, no turn column, the latency in ms."""
    rng = np.random.default_rng(seed)
    rows = []
    starts = np.cumsum(rng.exponential(10.0, int(span_s / 10 * 1.5)))
    for s, t in enumerate(starts[starts < span_s].tolist()):
        prompt = int(rng.integers(200, 2000))
        while t < span_s:
            out = int(rng.integers(20, 400))
            lat = float(rng.uniform(0.5, 20.0))
            rows.append((t, prompt, out, f"conv-{s}", lat))
            if rng.random() >= 0.6:
                break
            t = t + lat + rng.exponential(10.0) if model == "completion" else t + rng.exponential(20.0)
            prompt += out + 40
    rows.sort()
    with open(path, "w") as fh:
        fh.write("timestamp,model,prompt_tokens,completion_tokens,conversation_id,latency_ms\n")
        for t, p, o, c, lat in rows:
            fh.write(f"{T0 + t:.3f},m,{p},{o},{c},{lat * 1e3:.1f}\n")


@pytest.mark.parametrize("model", ["completion", "arrival"])
def test_fit_finds_the_clock_and_think_time_of_a_gateway_log(tmp_path, model):
    """The think time drawn (10 s from the completion, or 20 s from the arrival) lies in the
    fitted gap's 95% interval, on the clock the log was drawn on."""
    log = tmp_path / "gw.csv"
    _conversation_gateway(log, model, 7)
    out = tmp_path / "traffic.yaml"
    assert main(["traffic", "fit", str(log), "--out", str(out)]) == 0
    text = out.read_text()
    session = yaml.safe_load(text)["traffic"]["classes"][0]["session"]
    assert f"# session: gap_from {model}: " in text
    line = next(ln for ln in text.splitlines() if "gap_s (" in ln)
    lo, hi = (float(x) for x in line.split("mean_s 95% CI ")[1].split(";")[0].split()[0].split(".."))
    if model == "completion":
        assert session["gap_from"] == "completion" and lo <= 10.0 <= hi, (lo, hi)
    else:
        assert "gap_from" not in session and lo <= 20.0 <= hi, (lo, hi)
