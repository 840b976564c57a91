"""Think time counted from the previous turn's completion (``session.gap_from: completion``): the
turns generated and released (worked by hand), the engine's release of a turn when its previous
one ends, the fit's choice of clock (sim.workload.fit.think) on logs drawn from either model, and
the located errors.

Expected values come from the definitions: a turn released ``g`` after its previous turn ended
arrives at that turn's ``finish_s`` + ``g``; a request alone on an idle replica takes the same
time whichever run it is in; a gap drawn as latency + think grows with the latency (Spearman
rho > 0) and one drawn on its own does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli import main
from sim.engine.fleet import simulate
from sim.scenario.spec import dump_scenario, scenario_from_dict
from sim.workload.fit.log import RequestLog
from sim.workload.fit.sessions import fit_sessions
from sim.workload.fit.think import gap_origin
from sim.workload.generate import generate_workload
from sim.workload.spec import TrafficSpec
from tests.factories import refused_run
from tests.test_sessions import _session_log

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def _scenario(gap_from: str | None, turn_weights: list[float], duration_s: float = 10.0, gap_s: float = 2.5):
    """One replica; a constant process starting one session at 0 (rate 0.1 sessions/s over 10 s:
    the second start would be at 10 s, the run's end), fixed lengths and a fixed gap."""
    session: dict = {
        "turn_weights": turn_weights,
        "gap_s": {"dist": "fixed", "value_s": gap_s},
        "new_tokens": {"dist": "fixed", "value": 50},
    }
    if gap_from is not None:
        session["gap_from"] = gap_from
    mean_turns = sum((i + 1) * w for i, w in enumerate(turn_weights)) / sum(turn_weights)
    return scenario_from_dict(
        {
            "name": "think",
            "seed": 0,
            "fleet": [{"name": "gpu", "gpu": "h100-sxm", "replicas": 1, "model": "llama-3.1-8b"}],
            "traffic": {
                "duration_s": duration_s,
                "arrival": {"process": "constant"},
                "classes": [
                    {
                        "name": "chat",
                        "rate_rps": 0.1 * mean_turns,
                        "prompt_tokens": {"dist": "fixed", "value": 500},
                        "output_tokens": {"dist": "fixed", "value": 200},
                        "session": session,
                    }
                ],
            },
            "sim": {"drain_s": 3600.0, "timeseries_interval_s": 1.0},
        }
    )


# ------------------------------------------------------------------ generation and release, by hand
def test_three_turns_are_released_by_their_previous_turn(tmp_path):
    """One session of three turns, gap 2.5 s: turn 2 waits for turn 1 (row 0), turn 3 for turn 2
    (row 1), each 2.5 s after it ends; their arrival_s are placeholders (0 + 2.5, 2.5 + 2.5)."""
    w = generate_workload(_scenario("completion", [0, 0, 1]).traffic, 0, tmp_path)
    assert w.arrival_s.tolist() == [0.0, 2.5, 5.0]
    assert w.after_rid is not None and w.think_s is not None
    assert w.after_rid.tolist() == [-1, 0, 1] and w.think_s.tolist() == [0.0, 2.5, 2.5]
    assert w.prompt_tokens.tolist() == [500, 750, 1000]  # 500 + 200 + 50, then + 200 + 50


def test_a_wrapped_turn_is_sent_at_its_own_time(tmp_path):
    """In a 4 s run, turn 3 (at 0 + 2 x 2.5 = 5 s) falls past the end and comes at 5 - 4 = 1 s as
    the later turn of a conversation begun before the run: no earlier turn of it is in the run, so
    it is sent at its time (-1) and turn 2 still waits for turn 1."""
    w = generate_workload(_scenario("completion", [0, 0, 1], duration_s=4.0).traffic, 0, tmp_path)
    assert w.arrival_s.tolist() == [0.0, 1.0, 2.5]
    assert w.after_rid.tolist() == [-1, -1, 0]  # type: ignore[union-attr]


def test_the_default_generates_what_it_did(tmp_path):
    """Without gap_from (and with gap_from: arrival) nothing is released: the same arrays, and
    the scenario's dump has no gap_from line."""
    a = generate_workload(_scenario(None, [0, 0, 1]).traffic, 0, tmp_path)
    b = generate_workload(_scenario("arrival", [0, 0, 1]).traffic, 0, tmp_path)
    assert a.after_rid is None and b.after_rid is None
    assert a.arrival_s.tolist() == b.arrival_s.tolist() == [0.0, 2.5, 5.0]
    assert "gap_from" not in dump_scenario(_scenario("arrival", [0, 0, 1]))
    assert "gap_from: completion" in dump_scenario(_scenario("completion", [0, 0, 1]))


def test_the_second_turn_arrives_think_time_after_the_first_one_ends():
    """Two turns, gap 2.5 s. The first turn's service time is measured on its own (a run of one
    one-turn session: the same request on the same idle replica), E1. Counted from the arrival
    the second turn comes at 2.5 s; from the completion at E1 + 2.5 s; the first turn's record is
    the same either way."""
    alone = simulate(_scenario("completion", [1])).requests
    assert len(alone) == 1 and alone["status"].iloc[0] == "ok"
    e1 = float(alone["finish_s"].iloc[0] - alone["arrival_s"].iloc[0])
    assert 0.1 < e1 < 2.5  # 500 prompt + 200 output tokens of an 8B model on an H100: about a second
    by_arrival = simulate(_scenario("arrival", [0, 1])).requests
    by_completion = simulate(_scenario("completion", [0, 1])).requests
    assert (by_completion["status"] == "ok").all() and len(by_completion) == 2
    assert by_arrival["arrival_s"].tolist() == [0.0, 2.5]
    assert by_completion["arrival_s"].iloc[0] == 0.0
    assert by_completion["arrival_s"].iloc[1] == pytest.approx(e1 + 2.5, abs=1e-9)
    assert by_completion["arrival_s"].iloc[1] == pytest.approx(by_completion["finish_s"].iloc[0] + 2.5, abs=1e-9)
    first = ["arrival_s", "first_token_s", "finish_s", "output_tokens"]
    assert by_completion[first].iloc[0].tolist() == by_arrival[first].iloc[0].tolist() == alone[first].iloc[0].tolist()


def test_a_turn_whose_previous_turn_never_ends_is_never_sent():
    """A 0.5 s run with a 0.2 s drain ends at 0.7 s, before turn 1 (about a second of work, sent
    at 0) ends: turn 2 (0.3 s after it, not wrapped) is never released; its record has no arrival
    time and does not count."""
    sc = _scenario("completion", [0, 1], duration_s=0.5, gap_s=0.3)
    sc = sc.model_copy(update={"sim": sc.sim.model_copy(update={"drain_s": 0.2})})
    r = simulate(sc).requests
    assert r["status"].tolist() == ["timeout", "timeout"]
    assert r["arrival_s"].iloc[0] == 0.0 and np.isnan(r["arrival_s"].iloc[1])


# ------------------------------------------------------------------ the fit's choice
def _pairs(model: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(gap from the previous arrival, previous latency): latencies uniform on 0.5..20 s; the gap
    is latency + an exponential think time of mean 10 s (completion) or an exponential gap of
    mean 20 s on its own (arrival)."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(0.5, 20.0, n)
    gap = lat + rng.exponential(10.0, n) if model == "completion" else rng.exponential(20.0, n)
    return gap, lat


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_choice_finds_the_clock_the_gaps_were_drawn_on(seed):
    g, lat = _pairs("completion", 400, seed)
    c = gap_origin(g, lat)
    assert c.origin == "completion" and c.early == 0 and c.rho_arrival > c.critical, c.note
    g, lat = _pairs("arrival", 400, seed)
    a = gap_origin(g, lat)
    assert a.origin == "arrival" and a.rho_completion < -a.critical, a.note


def test_the_choice_keeps_arrival_when_turns_come_before_the_answer():
    """Gaps of latency + think, but 5% of next turns sent 1 s before the previous ended: a client
    that waits for the answer cannot do that."""
    g, lat = _pairs("completion", 400, 3)
    g[:20] = lat[:20] - 1.0
    c = gap_origin(g, lat)
    assert c.origin == "arrival" and c.early == 20 and "before their previous turn ended" in c.note


def test_too_few_pairs_keep_arrival():
    g, lat = _pairs("completion", 10, 0)
    assert gap_origin(g, lat).origin == "arrival"


def _request_log(path: Path, model: str, seed: int, span_s: float = 3600.0) -> None:
    """validate's per-request log (run-logs.md) of conversations: sessions start Poisson at
    0.1/s, each turn continues with chance 0.6; a turn's latency is uniform on 0.5..20 s; the
    next turn arrives latency + exponential(10 s) after it arrived (completion) or
    exponential(20 s) after it (arrival). Prompts grow by the output and 40 new tokens."""
    rng = np.random.default_rng(seed)
    rows = []
    starts = np.cumsum(rng.exponential(10.0, int(span_s / 10 * 1.5)))
    for s, t in enumerate(starts[starts < span_s].tolist()):
        prompt, turn = int(rng.integers(200, 2000)), 1
        while t < span_s:
            out = int(rng.integers(20, 400))
            lat = float(rng.uniform(0.5, 20.0))
            rows.append((t, t + 0.2, t + lat, prompt, out, f"c{s}", turn))
            if rng.random() >= 0.6:
                break
            t = t + lat + rng.exponential(10.0) if model == "completion" else t + rng.exponential(20.0)
            prompt, turn = prompt + out + 40, turn + 1
    rows.sort()
    with open(path, "w") as fh:
        for a, f, last, p, o, conv, turn in rows:
            rec = {"arrival_s": a, "first_token_s": f, "last_token_s": last, "prompt_tokens": p}
            rec |= {"output_tokens": o, "conversation": conv, "turn": turn}
            fh.write(json.dumps(rec) + "\n")


@pytest.mark.parametrize("model", ["completion", "arrival"])
def test_fit_writes_the_clock_of_a_log_with_completion_times(tmp_path, model):
    log = tmp_path / "conv.jsonl"
    _request_log(log, model, 7)
    out = tmp_path / "traffic.yaml"
    assert main(["traffic", "fit", str(log), "--out", str(out)]) == 0
    text = out.read_text()
    session = yaml.safe_load(text)["traffic"]["classes"][0]["session"]
    assert f"# session: gap_from {model}: " in text and "Spearman rho(previous turn's latency" in text
    if model == "completion":
        assert session["gap_from"] == "completion"
        assert "gap_s (completion to next arrival)" in text
        assert session["gap_s"]["dist"] == "exponential"
        lo, hi = _ci(text, "mean_s")
        assert lo <= 10.0 <= hi, (lo, hi)  # the think time drawn
    else:
        assert "gap_from" not in session
        assert session["gap_s"]["dist"] == "exponential"
        lo, hi = _ci(text, "mean_s")
        assert lo <= 20.0 <= hi, (lo, hi)
    assert TrafficSpec.model_validate(yaml.safe_load(text)["traffic"]).classes[0].session.gap_from == model  # type: ignore[union-attr]


def _ci(text: str, name: str) -> tuple[float, float]:
    line = next(ln for ln in text.splitlines() if "gap_s (" in ln)
    part = line.split(f"{name} 95% CI ")[1].split(";")[0].split()[0]
    lo, hi = part.split("..")
    return float(lo), float(hi)


def test_a_log_without_completion_times_says_so():
    """Known sessions in a Mooncake-format log (block hashes, no completion times, as the bundled
    trace): the gap stays arrival to arrival and a comment says why."""
    arrival, offsets, ids, prompt, output = _session_log(4)
    sf = fit_sessions(arrival, 600.0, offsets, ids, prompt, output, 512, np.random.default_rng(0))
    assert sf is not None and sf.gap_from == "arrival" and sf.origin is None
    assert any(n.startswith("gap_from arrival: the log has no completion times") for n in sf.notes)


# ------------------------------------------------------------------ bad input
def test_a_bad_gap_from_is_located(tmp_path, capsys):
    text = QUICKSTART.read_text()
    anchor = "      prefix: {tokens: 600, num_distinct: 8}\n"
    assert anchor in text
    session = (
        "{mean_turns: 2, gap_s: {dist: fixed, value_s: 5}, new_tokens: {dist: fixed, value: 10}, gap_from: answer}"
    )
    text = text.replace(anchor, anchor + f"      session: {session}\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    line = text[: text.index("      session:")].count("\n") + 1
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and f"s.yaml: line {line}, " in err
    assert "traffic.classes.0.session.gap_from" in err and "'arrival' or 'completion'" in err


def test_a_completion_before_the_arrival_is_refused_where_it_is(tmp_path, capsys):
    """A request whose first token comes before it was sent: the per-request reader names the
    file, line and field; nothing is written."""
    log = tmp_path / "conv.jsonl"
    _request_log(log, "completion", 7)
    lines = log.read_text().splitlines()
    rec = json.loads(lines[4])
    rec["first_token_s"] = rec["arrival_s"] - 5.0
    lines[4] = json.dumps(rec)
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "traffic.yaml"
    code = main(["traffic", "fit", str(log), "--out", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err and not out.exists()
    assert f"{log}, line 5, field first_token_s: " in err and "is before arrival_s" in err


def test_a_log_that_ends_before_it_arrives_drops_those_completion_times():
    """RequestLog.clean (any reader with completion times): a finish before its arrival is not
    used, counted, with its line."""
    n = 60
    log = RequestLog(
        arrival_s=np.arange(n, dtype=float),
        prompt_tokens=np.full(n, 100),
        output_tokens=np.full(n, 10),
        finish_s=np.arange(n, dtype=float) + np.where(np.arange(n) == 3, -1.0, 2.0),
        lines=np.arange(2, n + 2),
    ).clean("log.csv")
    assert log.finish_s is not None and np.isnan(log.finish_s[3]) and np.isfinite(np.delete(log.finish_s, 3)).all()
    assert any("1 request(s) end before they arrive (the first at line 5)" in w for w in log.warnings)


# ------------------------------------------------------------------ the round trip
def _conversation_log(folder: Path) -> tuple[Path, Path]:
    """A scenario whose users think 8 s (exponential) after each answer (gap_from: completion),
    3 turns a session on average, on one H100 with an 8B model, simulated for 1200 s; its records
    written as validate's per-request log with each request's conversation (the chain of turns
    that released it) and turn number. Returns (scenario, log)."""
    sc = {
        "name": "think-round-trip",
        "seed": 3,
        "fleet": [{"name": "gpu", "gpu": "h100-sxm", "replicas": 1, "model": "llama-3.1-8b"}],
        "traffic": {
            "duration_s": 1200.0,
            "arrival": {"process": "poisson", "rate_rps": 1.5},
            "classes": [
                {
                    "name": "chat",
                    "prompt_tokens": {"dist": "lognormal", "mean": 800, "sigma": 0.8},
                    "output_tokens": {"dist": "lognormal", "mean": 300, "sigma": 0.6},
                    "session": {
                        "mean_turns": 3,
                        "gap_s": {"dist": "exponential", "mean_s": 8.0},
                        "gap_from": "completion",
                        "new_tokens": {"dist": "lognormal", "mean": 60, "sigma": 0.5},
                    },
                }
            ],
        },
        "sim": {"drain_s": 3600.0, "timeseries_interval_s": 10.0},
    }
    path = folder / "think.yaml"
    path.write_text(yaml.safe_dump(sc))
    scenario = scenario_from_dict(sc, path=path)
    wl = generate_workload(scenario.traffic, scenario.seed, folder)
    assert wl.after_rid is not None
    root = np.arange(len(wl))
    depth = np.ones(len(wl), dtype=np.int64)
    for i in np.flatnonzero(wl.after_rid >= 0).tolist():  # a releasing turn comes first
        root[i], depth[i] = root[wl.after_rid[i]], depth[wl.after_rid[i]] + 1
    r = simulate(scenario).requests
    log = folder / "log.jsonl"
    with open(log, "w") as fh:
        for i in np.argsort(r["arrival_s"].to_numpy(), kind="stable").tolist():
            row = r.iloc[i]
            if row["status"] != "ok":
                continue
            rec = {"arrival_s": float(row["arrival_s"]), "first_token_s": float(row["first_token_s"])}
            rec |= {"last_token_s": float(row["finish_s"]), "prompt_tokens": int(row["prompt_tokens"])}
            rec |= {"output_tokens": int(row["output_tokens"]), "conversation": f"c{root[i]}", "turn": int(depth[i])}
            fh.write(json.dumps(rec) + "\n")
    return path, log


def test_a_completion_driven_log_round_trips(tmp_path):
    """fit -> simulate against the replayed log on the fleet that made it: the fit finds the clock
    (completion) and the think time and turns inside its intervals (8 s, 3), and the fitted
    traffic gives the replay's TTFT p50, TPOT and throughput within 5% (mean of 3 seeds; over
    scenario seeds 3-6 these came within 3.5%) and TTFT p99 within 15% (one replay's p99 of ~3,000
    requests: over seeds 3-6 -10.0..+7.1%)."""
    from sim.analysis.traffic_roundtrip import round_trip
    from sim.cli.traffic import _read
    from sim.workload.fit.fit import fit_traffic
    from sim.workload.fit.write import render, traffic_dict

    scenario, log_path = _conversation_log(tmp_path)
    log = _read(log_path, "auto", {})
    fit = fit_traffic(log)
    sf = fit.classes[0].session
    assert sf is not None and sf.gap_from == "completion" and sf.origin is not None, sf and sf.notes
    lo, hi = sf.gap.ci["mean_s"]
    assert sf.gap.family == "exponential" and lo <= 8.0 <= hi, (sf.gap.params, sf.gap.ci)
    assert sf.mean_turns_ci[0] <= 3.0 <= sf.mean_turns_ci[1], sf.mean_turns_ci
    text, tables = render(fit, "t.lengths.csv")
    for name, body in tables.items():
        (tmp_path / name).write_text(body)
    assert "gap_from: completion" in text
    rows = {r.label: r for r in round_trip(scenario, fit, traffic_dict(text), tmp_path, seeds=3)}
    for label, bound in (
        ("TTFT p50, s", 0.05),
        ("TTFT p99, s", 0.15),
        ("TPOT p50, s", 0.05),
        ("TPOT p99, s", 0.05),
        ("throughput, req/s", 0.05),
        ("throughput, output tok/s", 0.05),
    ):
        assert abs(rows[label].rel_diff) <= bound, (label, rows[label])


def test_conversation_hashes_by_hand():
    """16-token blocks. Conversation c: turn 1 of 40 tokens holds blocks 0, 1 and a partial
    third; turn 2 of 70 tokens, the same text grown, holds blocks 0-3 and a partial fifth: it
    shares 0 and 1 with turn 1. A request outside any conversation (20 tokens) shares nothing."""
    from sim.analysis.traffic_roundtrip import conversation_hashes

    got = conversation_hashes(np.array(["c", "c", ""]), np.array([40, 70, 20]))
    assert got == ["0 1 4", "0 1 2 3 5", "6 7"]


def test_a_surge_keeps_each_turn_after_the_turn_that_releases_it(tmp_path):
    """quickstart's chat class as conversations with gap_from: completion, plus a surge (extra
    sessions merged by time): after the merge every released turn still names a request of its
    own class that comes before it and whose prompt (and output) it extends by its own new
    tokens, 30 here: prompt = previous prompt + previous output + 30."""
    from sim.workload.surges import with_surges

    text = QUICKSTART.read_text()
    anchor = "      prefix: {tokens: 600, num_distinct: 8}\n"
    session = "{mean_turns: 3, gap_s: {dist: exponential, mean_s: 5}, new_tokens: {dist: fixed, value: 30}, gap_from: completion}"
    path = tmp_path / "s.yaml"
    path.write_text(text.replace(anchor, anchor + f"      session: {session}\n"))
    from sim.scenario.spec import load_scenario

    sc = load_scenario(path)
    chat = sc.traffic.class_names.index("chat")

    class Surge:
        start_s, end_s, factor = 100.0, 200.0, 3.0

    base = generate_workload(sc.traffic, sc.seed, tmp_path)
    w = with_surges(sc.traffic, sc.seed, tmp_path, [(0, Surge())])
    assert len(w) > len(base) and w.after_rid is not None and w.think_s is not None
    rel = np.flatnonzero(w.after_rid >= 0)
    assert rel.size > 100 and (base.after_rid >= 0).sum() < rel.size  # type: ignore[operator]  # the surge's own turns too
    prev = w.after_rid[rel]
    assert (prev < rel).all() and (w.class_idx[rel] == chat).all() and (w.class_idx[prev] == chat).all()
    grown = w.prompt_tokens[prev].astype(np.int64) + w.output_tokens[prev] + 30
    assert (w.prompt_tokens[rel] == grown).all()
    assert (w.think_s[rel] > 0).all() and (w.think_s[w.after_rid < 0] == 0).all()
