"""Conversations (``classes[].session``): the schema's errors, the turns generated and the prefix
the cache sees in them (worked by hand), and ``traffic fit``'s session form on a log of known
sessions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli import main
from sim.engine.prefix_keys import PrefixKeys
from sim.workload.fit.sessions import continuations, fit_sessions, thin_sizes
from sim.workload.generate import generate_workload
from sim.workload.spec import TrafficSpec
from tests.factories import refused_run

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
_FIXED = "gap_s: {dist: fixed, value_s: 5}, new_tokens: {dist: fixed, value: 10}"


def _with_session(tmp_path: Path, session: str) -> tuple[Path, int]:
    """quickstart with ``session: <session>`` under its chat class, and that line's number."""
    text = QUICKSTART.read_text()
    anchor = "      prefix: {tokens: 600, num_distinct: 8}\n"
    assert anchor in text
    text = text.replace(anchor, anchor + f"      session: {session}\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path, text[: text.index("      session:")].count("\n") + 1


# ------------------------------------------------------------------ schema errors
@pytest.mark.parametrize(
    "session, message",
    [
        (
            f"{{mean_turns: 2, turn_weights: [1, 1], {_FIXED}}}",
            "field traffic.classes.0.session: give mean_turns or turn_weights (one of them)",
        ),
        (
            "{mean_turns: 2, gap_s: {dist: exponentail, mean_s: 5}, new_tokens: {dist: fixed, value: 10}}",
            "field traffic.classes.0.session.gap_s: unknown gap distribution 'exponentail'. Did you mean 'exponential'? "
            "Valid gap distribution names: empirical, exponential, fixed, lognormal.",
        ),
        (
            "{mean_turns: 2, gap_s: {dist: empirical, values_s: [1, 2], weights: [1]}, new_tokens: {dist: fixed, value: 10}}",
            "field traffic.classes.0.session.gap_s.empirical: weights (1) needs one entry per value of values_s (2)",
        ),
        (
            "{mean_turns: 2, gap_s: {dist: fixed, value_s: 5}}",
            "field traffic.classes.0.session: give new_tokens or new_tokens_by_turn (one of them)",
        ),
        (
            f"{{mean_turns: 0.5, {_FIXED}}}",
            "field traffic.classes.0.session.mean_turns: Input should be greater than or equal to 1",
        ),
        (f"{{turn_weights: [0, 0], {_FIXED}}}", "turn_weights need at least one value > 0"),
        (
            f"{{mean_turns: 2, {_FIXED}, max_prompt_tokens: 1}}",
            "session.max_prompt_tokens: Input should be greater than or equal to 2",
        ),
        (f"{{mean_turns: 2, {_FIXED}, think_s: 3}}", "session.think_s: unknown key (not part of the format"),
    ],
)
def test_session_errors_are_located(tmp_path, capsys, session, message):
    path, line = _with_session(tmp_path, session)
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and f"s.yaml: line {line}, " in err and message in err


def test_a_session_needs_synthetic_arrivals(tmp_path, capsys):
    scenario = ROOT / "scenarios" / "mooncake-prefix.yaml"
    code, err = refused_run(
        capsys, tmp_path, scenario, "--set", f"traffic.classes.0.session={{mean_turns: 2, {_FIXED}}}"
    )
    assert code == 2 and "class conv: session needs synthetic arrivals (the trace gives every request)" in err


def test_a_session_on_a_trace_class_is_located_at_the_session(tmp_path, capsys):
    """The refusal names the session's own line and field (before: the traffic block's line)."""
    text = (ROOT / "scenarios" / "mooncake-prefix.yaml").read_text()
    trace = "path: data/mooncake-conversation-sample.jsonl"
    anchor = "      slo: {ttft_s: {p99: 5.0}, tpot_s: {p99: 0.05}, attainment_pct: 95}\n"
    assert trace in text and anchor in text
    text = text.replace(trace, f"path: {ROOT / 'scenarios' / 'data' / 'mooncake-conversation-sample.jsonl'}")
    text = text.replace(anchor, anchor + f"      session: {{mean_turns: 2, {_FIXED}}}\n")
    path = tmp_path / "s.yaml"
    path.write_text(text)
    line = text[: text.index("      session:")].count("\n") + 1
    traffic_line = text[: text.index("traffic:")].count("\n") + 1
    assert line != traffic_line
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2
    assert f"s.yaml: line {line}, field traffic.classes.0.session: class conv: session needs synthetic arrivals" in err


def test_an_empirical_new_tokens_file_error_names_its_field(tmp_path, capsys):
    path, _ = _with_session(
        tmp_path,
        "{mean_turns: 2, gap_s: {dist: fixed, value_s: 5}, new_tokens: {dist: empirical, path: nope.csv, column: n}}",
    )
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and "traffic.classes[0].session.new_tokens.path: file not found" in err


# ------------------------------------------------------------------ generation
def _one_class(session: dict, rate_rps: float, duration_s: float, **cls) -> TrafficSpec:
    return TrafficSpec.model_validate(
        {
            "duration_s": duration_s,
            "arrival": {"process": cls.pop("process", "poisson"), "rate_rps": rate_rps},
            "classes": [
                {
                    "name": "conv",
                    "prompt_tokens": {"dist": "fixed", "value": 100},
                    "output_tokens": {"dist": "fixed", "value": 30},
                    "session": session,
                    **cls,
                }
            ],
        }
    )


def test_three_turns_share_their_prompts_as_worked_by_hand(tmp_path):
    """One session of three turns (a constant process at 0.003 req/s starts one session every
    1000 s, at 0): prompt 100, output 30, 10 new tokens each later turn, 100 s apart. By hand:
    prompts 100, 100 + 30 + 10 = 140, 140 + 30 + 10 = 180. Each turn's chain covers its prompt and
    its output (the blocks its decode fills): 130, 170, 210 tokens, floor(./16) = 8, 10, 13 full
    16-token blocks. Turn 2 shares turn 1's 8 blocks (128 tokens, inside 100 + 30), turn 3 turn 2's
    10 (160, inside 140 + 30)."""
    spec = _one_class(
        {
            "turn_weights": [0, 0, 1],
            "gap_s": {"dist": "fixed", "value_s": 100},
            "new_tokens": {"dist": "fixed", "value": 10},
        },
        0.003,
        1000,
        process="constant",
    )
    w = generate_workload(spec, 1, tmp_path)
    assert w.arrival_s.tolist() == [0.0, 100.0, 200.0]
    assert w.prompt_tokens.tolist() == [100, 140, 180] and w.output_tokens.tolist() == [30, 30, 30]
    keys = PrefixKeys(w)
    blocks = [keys.block_keys(r, 16) for r in range(3)]
    assert [len(b) for b in blocks] == [8, 10, 13]  # full blocks of 130, 170, 210 tokens

    def shared(a, b):  # leading blocks in common
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    assert shared(blocks[0], blocks[1]) * 16 == 128
    assert shared(blocks[1], blocks[2]) * 16 == 160
    assert shared(blocks[0], blocks[2]) * 16 == 128


def test_three_turns_hit_the_cache_in_a_run(tmp_path):
    """The same session through the engine on one replica. A turn ends with prompt + output - 1
    tokens computed (the last token sampled has no KV), and the full blocks of those are cached
    (vLLM v1's ``allocate_slots``): turn 1 leaves floor(129 / 16) = 8 blocks, so turn 2 finds 128
    cached tokens; turn 2 leaves floor(169 / 16) = 10, so turn 3 finds 160 (before the decode's
    blocks were cached: 96 and 128, the previous prompt's full blocks)."""
    from sim.analysis.forecast import forecast
    from sim.scenario.spec import scenario_from_dict

    base = yaml.safe_load(QUICKSTART.read_text())
    base["fleet"][0]["replicas"] = 1
    session = {
        "turn_weights": [0, 0, 1],
        "gap_s": {"dist": "fixed", "value_s": 100},
        "new_tokens": {"dist": "fixed", "value": 10},
    }
    base["traffic"] = {
        "duration_s": 1000,
        "arrival": {"process": "constant", "rate_rps": 0.003},
        "classes": [
            {
                "name": "conv",
                "prompt_tokens": {"dist": "fixed", "value": 100},
                "output_tokens": {"dist": "fixed", "value": 30},
                "session": session,
            }
        ],
    }
    result, _ = forecast(scenario_from_dict(base, path=tmp_path / "s.yaml"))
    assert result.requests["cached_prompt_tokens"].tolist() == [0, 128, 160]


def test_a_class_prefix_comes_first_in_every_turn(tmp_path):
    """A 32-token system prompt: every turn's chain starts with it, the session's own chunks after."""
    spec = _one_class(
        {
            "turn_weights": [0, 1],
            "gap_s": {"dist": "fixed", "value_s": 10},
            "new_tokens": {"dist": "fixed", "value": 10},
        },
        0.02,
        100,
        process="constant",
        prefix={"tokens": 32},
    )
    w = generate_workload(spec, 1, tmp_path)
    k0, e0 = w.chain(0)
    k1, e1 = w.chain(1)
    assert e0.tolist() == [32, 100, 130] and e1.tolist() == [32, 100, 130, 140, 170]
    assert k1[:3].tolist() == k0.tolist() and len(set(k1.tolist())) == 5


def test_sessions_keep_the_request_rate_and_the_turns(tmp_path):
    """rate_rps stays requests/s: sessions start at 6 / 3 = 2 per second, each with 3 turns on
    average (geometric), so 2/3 of the requests are later turns; turns past the end come at the start."""
    spec = _one_class(
        {"mean_turns": 3, "gap_s": {"dist": "exponential", "mean_s": 20}, "new_tokens": {"dist": "fixed", "value": 5}},
        6.0,
        2000,
    )
    w = generate_workload(spec, 3, tmp_path)
    n = len(w)
    assert abs(n - 12_000) < 4 * np.sqrt(12_000 * 3)  # Poisson starts x geometric sizes: var = 2 x 2000 x E[K^2]
    assert np.all(np.diff(w.arrival_s) >= 0) and w.arrival_s[-1] < 2000
    later = int((w.prompt_tokens > 100).sum())  # a later turn's prompt is at least 100 + 30 + 5
    assert abs(later / n - 2 / 3) < 0.02
    first_minute = float((w.arrival_s < 60).sum()) / 60.0
    assert abs(first_minute - 6.0) < 4 * np.sqrt(6.0 * 3 / 60)  # no ramp-up: the wrapped turns are there


def test_max_prompt_tokens_ends_a_session(tmp_path):
    spec = _one_class(
        {
            "turn_weights": [0, 0, 1],
            "gap_s": {"dist": "fixed", "value_s": 100},
            "new_tokens": {"dist": "fixed", "value": 10},
            "max_prompt_tokens": 150,
        },
        0.003,
        1000,
        process="constant",
    )
    w = generate_workload(spec, 1, tmp_path)
    assert w.prompt_tokens.tolist() == [100, 140]  # the third turn (180 > 150) is not sent


def test_batched_later_turns_go_with_the_next_batch(tmp_path):
    """With batches every 3 s (a constant process), a turn 4 s after its first goes with the batch at 6 s."""
    spec = TrafficSpec.model_validate(
        {
            "duration_s": 30,
            "arrival": {"process": "constant", "rate_rps": 2.0, "batch": {"size_weights": [0, 0, 1]}},
            "classes": [
                {
                    "name": "conv",
                    "prompt_tokens": {"dist": "fixed", "value": 100},
                    "output_tokens": {"dist": "fixed", "value": 30},
                    "session": {
                        "turn_weights": [0, 1],
                        "gap_s": {"dist": "fixed", "value_s": 4},
                        "new_tokens": {"dist": "fixed", "value": 1},
                    },
                }
            ],
        }
    )
    w = generate_workload(spec, 1, tmp_path)
    # events at 2 / 2 turns / 3 per batch = 1/3 per second: 0, 3, ..., 27; second turns at t + 4 -> t + 6
    assert set(np.round(w.arrival_s, 9).tolist()) <= {float(x) for x in range(0, 30, 3)}
    assert len(w) == 10 * 3 * 2


# ------------------------------------------------------------------ fitting sessions
def _session_log(seed: int, starts_rps=4.0, q=0.5, gap_mean_s=60.0, span_s=600.0, burn_s=900.0):
    """A Mooncake-like window [0, span_s) of a stationary stream of sessions: starts Poisson
    (also before the window), each turn continues with chance q (or ``q(turn)``, turn 1 first)
    after an exponential gap; a turn's hash list keeps the previous turn's full 512-token blocks
    and adds new ones."""
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.uniform(-burn_s, span_s, rng.poisson(starts_rps * (span_s + burn_s))))
    rows, next_id = [], 1
    for t in starts.tolist():
        prompt, ids, prev_full, turn = int(rng.integers(600, 4000)), [], 0, 1
        while True:
            need = -(-prompt // 512)
            keep = ids[:prev_full]
            ids = keep + list(range(next_id, next_id + need - len(keep)))
            next_id += need - len(keep)
            out = int(rng.integers(20, 400))
            if 0 <= t < span_s:
                rows.append((t, prompt, out, ids))
            if rng.random() >= (q(turn) if callable(q) else q):
                break
            turn += 1
            t += float(rng.exponential(gap_mean_s))
            if t >= span_s:
                break
            prev_full = prompt // 512
            prompt = prompt + out + int(rng.integers(5, 80))
    rows.sort(key=lambda r: r[0])
    arrival = np.array([r[0] for r in rows])
    offsets = np.concatenate([[0], np.cumsum([len(r[3]) for r in rows])]).astype(np.int64)
    ids_all = np.array([i for r in rows for i in r[3]], dtype=np.int64)
    return arrival, offsets, ids_all, np.array([r[1] for r in rows]), np.array([r[2] for r in rows])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_sessions_come_back_inside_the_fits_intervals(seed):
    """Turns geometric with q = 0.5 (mean 2), gaps exponential with mean 60 s, in a 600 s window:
    many sessions are cut by the window's edges, which the fit corrects for."""
    arrival, offsets, ids, prompt, output = _session_log(seed)
    sf = fit_sessions(arrival, 600.0, offsets, ids, prompt, output, 512, np.random.default_rng(0))
    assert sf is not None
    assert sf.q_ci[0] <= 0.5 <= sf.q_ci[1], (sf.q, sf.q_ci)
    assert sf.mean_turns_ci[0] <= 2.0 <= sf.mean_turns_ci[1]
    assert sf.turn_weights is None  # one q at every depth: geometric kept
    assert sf.gap.family == "exponential"
    lo, hi = sf.gap.ci["mean_s"]
    assert lo <= 60.0 <= hi, (sf.gap.params, sf.gap.ci)
    # new tokens were drawn uniform on 5..79: every one seen is in that range
    assert sf.new_values.min() >= 5 and sf.new_values.max() <= 79


def test_turns_that_depend_on_depth_come_back_as_turn_weights():
    """A first turn continues with chance 0.2, every later turn with 0.7: the fit refuses one q
    (chi-square) and writes turn_weights: P(1 turn) = 0.8, P(2) = 0.2 x 0.3 = 0.06, P(3) = 0.2 x
    0.7 x 0.3 = 0.042 (a 600 s window of gaps of mean 60 s shows sessions of up to about 10)."""
    arrival, offsets, ids, prompt, output = _session_log(5, starts_rps=6.0, q=lambda turn: 0.2 if turn == 1 else 0.7)
    sf = fit_sessions(arrival, 600.0, offsets, ids, prompt, output, 512, np.random.default_rng(0))
    assert sf is not None and sf.turn_weights is not None
    w = np.asarray(sf.turn_weights) / sum(sf.turn_weights)
    # a first turn in the log that continues a conversation begun before the window still counts
    # in part (weighted by its chance to start one): over seeds 5..12 P(1) came back 0.757..0.800
    assert abs(w[0] - 0.8) < 0.045
    assert abs(w[1] - 0.06) < 0.015 and abs(w[2] - 0.042) < 0.015


def test_continuations_by_hand():
    """r0: blocks 1 2 3 (prompt 1300: 2 full blocks, 3 partial); r1 starts with r0's full blocks
    1 2: it continues r0; r2 starts with 1 only (r0's full blocks are 1 2): a new session; r3 has
    only the system block 1 as its full block, so r4 starting with 1 continues nobody (block 1 was
    first seen in r0, not r3)."""
    offsets = np.array([0, 3, 7, 10, 12, 15])
    ids = np.array([1, 2, 3, 1, 2, 4, 5, 1, 6, 7, 1, 8, 1, 9, 10])
    prompt = np.array([1300, 1900, 1400, 1000, 1500])
    assert continuations(offsets, ids, prompt, 512).tolist() == [-1, 0, -1, -1, -1]


def test_thinned_batch_sizes_by_hand():
    """Batches of 2 kept member by member with chance 1/2: sizes 0, 1, 2 with 1/4, 1/2, 1/4; the
    empty ones dropped."""
    w = thin_sizes(np.array([0.0, 4.0]), 0.5)
    assert w.tolist() == pytest.approx([2.0, 1.0])


def test_fit_writes_a_session_that_loads_and_generates(tmp_path):
    """The CLI on a Mooncake-format log of known sessions: a session form with its comments, and
    a traffic section that generates."""
    arrival, offsets, ids, prompt, output = _session_log(4)
    log = tmp_path / "conv.jsonl"
    with open(log, "w") as fh:
        for r in range(arrival.size):
            row = {
                "timestamp": int(round(arrival[r] * 1000)),
                "input_length": int(prompt[r]),
                "output_length": int(output[r]),
                "hash_ids": ids[offsets[r] : offsets[r + 1]].tolist(),
            }
            fh.write(json.dumps(row) + "\n")
    out = tmp_path / "traffic.yaml"
    assert main(["traffic", "fit", str(log), "--format", "mooncake", "--out", str(out)]) == 0
    text = out.read_text()
    assert "# session: turns: a turn continues with q=" in text and "gap_s (arrival to next arrival)" in text
    traffic = yaml.safe_load(text)["traffic"]
    session = traffic["classes"][0]["session"]
    assert session["gap_s"]["dist"] == "exponential"
    spec = TrafficSpec.model_validate(traffic)
    w = generate_workload(spec, 1, tmp_path)
    assert len(w) > 0 and (w.prompt_tokens > 0).all()


def test_a_session_class_without_arrivals_is_empty(tmp_path):
    spec = _one_class(
        {"mean_turns": 2, "gap_s": {"dist": "fixed", "value_s": 5}, "new_tokens": {"dist": "fixed", "value": 10}},
        0.001,
        1,
    )
    w = generate_workload(spec, 1, tmp_path)  # no session starts in 1 s at 0.0005 per second (seed 1)
    assert len(w) == 0 and w.prefix_offsets.tolist() == [0]


def test_new_tokens_by_turn_as_worked_by_hand(tmp_path):
    """Turn 2 adds 10 new tokens, turn 3 and later 20: prompts 100, 100 + 30 + 10 = 140,
    140 + 30 + 20 = 190, 190 + 30 + 20 = 240."""
    spec = _one_class(
        {
            "turn_weights": [0, 0, 0, 1],
            "gap_s": {"dist": "fixed", "value_s": 100},
            "new_tokens_by_turn": [{"dist": "fixed", "value": 10}, {"dist": "fixed", "value": 20}],
        },
        0.004,
        1000,
        process="constant",
    )
    w = generate_workload(spec, 1, tmp_path)
    assert w.prompt_tokens.tolist() == [100, 140, 190, 240]


def test_new_tokens_and_new_tokens_by_turn_are_exclusive(tmp_path, capsys):
    both = "{mean_turns: 2, gap_s: {dist: fixed, value_s: 5}, new_tokens: {dist: fixed, value: 10}, new_tokens_by_turn: [{dist: fixed, value: 3}]}"
    path, line = _with_session(tmp_path, both)
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and f"line {line}, field traffic.classes.0.session: give new_tokens or new_tokens_by_turn" in err
    bad = "{mean_turns: 2, gap_s: {dist: fixed, value_s: 5}, new_tokens_by_turn: [{dist: fxed, value: 3}]}"
    path, line = _with_session(tmp_path, bad)
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and "session.new_tokens_by_turn: entry 0: unknown length distribution 'fxed'" in err
