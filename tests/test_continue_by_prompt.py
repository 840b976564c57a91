"""``session.continue_by_prompt`` (issue 28): a turn's chance of a next turn depending on its
prompt's length. The generator's conditional continuation rates by length, worked by hand; the
request rate kept; ``traffic fit`` recovering a known slope from a log drawn with it; the schema's
located errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from sim.cli import main
from sim.workload.fit.sessions import fit_sessions
from sim.workload.generate import generate_workload
from sim.workload.session_spec import SessionSpec
from sim.workload.sessions import turns_by_prompt
from sim.workload.spec import TrafficSpec
from tests.factories import refused_run
from tests.test_sessions import _FIXED, _one_class, _with_session


# ------------------------------------------------------------------ generation
def _two_lengths(spec: dict, k: int, seed: int):
    """``k`` sessions whose first prompts alternate 1,000 and 2,718 tokens (outputs 10), later
    turns adding 10 new tokens and 10 output tokens; returns (turns, prompt, output)."""
    s = SessionSpec.model_validate(spec)
    rngs = (np.random.default_rng(seed), np.random.default_rng(seed + 1), np.random.default_rng(seed + 2))
    first_p = np.where(np.arange(k) % 2 == 0, 1000, 2718)
    return turns_by_prompt(
        s,
        np.linspace(0.0, 1000.0, k, endpoint=False),
        1e9,
        rngs,
        lambda m: (first_p[:m], np.full(m, 10)),
        lambda m: np.full(m, 10),
        lambda rng, turn: np.full(turn.size, 10),
    )


def test_the_continuation_rate_by_length_as_worked_by_hand():
    """turn_weights [1, 1]: half the first turns continue. With log_odds_per_ln_tok 1 from turn 1
    the odds are proportional to the prompt: r = 2718 / 1000 between the two halves, whose shares
    must average 1/2: p_long / (1 - p_long) = r p_short / (1 - p_short) and p_short + p_long = 1
    give p_short = 1 / (1 + sqrt(r)) = 0.37754, p_long = sqrt(r) / (1 + sqrt(r)) = 0.62246.
    10,000 sessions of each length: sampling sd sqrt(p (1 - p) / 10,000) = 0.0048."""
    k = 20_000
    turns, prompt, _ = _two_lengths(
        {
            "turn_weights": [1, 1],
            "gap_s": {"dist": "fixed", "value_s": 1},
            "new_tokens": {"dist": "fixed", "value": 10},
            "continue_by_prompt": {"log_odds_per_ln_tok": 1.0, "from_turn": 1},
        },
        k,
        7,
    )
    first = turns.turn == 0
    continued = np.zeros(k, dtype=bool)
    continued[turns.session[turns.turn == 1]] = True
    assert turns.turn.max() == 1  # turn_weights end at 2 turns
    p_short = 1.0 / (1.0 + math.sqrt(2.718))
    sd = math.sqrt(p_short * (1 - p_short) / (k / 2))
    short = prompt[first] == 1000
    assert abs(continued[short].mean() - p_short) < 4 * sd
    assert abs(continued[~short].mean() - (1 - p_short)) < 4 * sd
    assert abs(continued.mean() - 0.5) < 4 * math.sqrt(0.25 / k)
    # the second turns' prompts: the first's + its output 10 + 10 new tokens
    second = turns.turn == 1
    assert set(prompt[second].tolist()) == {1020, 2738}


def test_turns_before_from_turn_continue_independently_of_length():
    """from_turn 2: a first turn continues with turn_weights [1, 1, 1]'s 2/3 whatever its length."""
    k = 20_000
    turns, prompt, _ = _two_lengths(
        {
            "turn_weights": [1, 1, 1],
            "gap_s": {"dist": "fixed", "value_s": 1},
            "new_tokens": {"dist": "fixed", "value": 10},
            "continue_by_prompt": {"log_odds_per_ln_tok": -3.0},
        },
        k,
        3,
    )
    continued = np.zeros(k, dtype=bool)
    continued[turns.session[turns.turn == 1]] = True
    short = prompt[turns.turn == 0] == 1000
    sd = math.sqrt(2 / 9 / (k / 2))
    assert abs(continued[short].mean() - 2 / 3) < 4 * sd
    assert abs(continued[~short].mean() - 2 / 3) < 4 * sd
    # turn 2 (prompts 1020 and 2738) continues with 1/2 on average, the short ones more often:
    # odds ratio (2738 / 1020) ** -3 = 0.0517 in the long ones' disfavour
    second = turns.turn == 1
    third_of = np.zeros(k, dtype=bool)
    third_of[turns.session[turns.turn == 2]] = True
    s2 = turns.session[second]
    long2 = prompt[second] == 2738
    assert third_of[s2[~long2]].mean() > third_of[s2[long2]].mean() + 0.3
    assert abs(third_of[s2].mean() - 0.5) < 4 * math.sqrt(0.25 / s2.size)


def test_the_request_rate_and_the_turns_are_kept(tmp_path):
    """As without the field (tests/test_sessions.py): 6 requests/s over 2,000 s, mean 3 turns, so
    2/3 of the requests are later turns; a slope changes which turns continue, not how many."""
    spec = _one_class(
        {
            "mean_turns": 3,
            "gap_s": {"dist": "exponential", "mean_s": 20},
            "new_tokens": {"dist": "fixed", "value": 5},
            "continue_by_prompt": {"log_odds_per_ln_tok": -1.5},
        },
        6.0,
        2000,
        prompt_tokens={"dist": "lognormal", "mean": 3000, "sigma": 1.0},
    )
    w = generate_workload(spec, 3, tmp_path)
    n = len(w)
    assert abs(n - 12_000) < 4 * np.sqrt(12_000 * 3)
    later = np.asarray(w.prefix_offsets[1:] - w.prefix_offsets[:-1]) > 2  # a later turn's chain: > 2 chunks
    assert abs(later.mean() - 2 / 3) < 0.02
    again = generate_workload(spec, 3, tmp_path)
    assert np.array_equal(again.prompt_tokens, w.prompt_tokens) and np.array_equal(again.arrival_s, w.arrival_s)


# ------------------------------------------------------------------ fitting
def _sloped_log(seed: int, slope: float, starts_rps=6.0, span_s=600.0, burn_s=900.0, gap_mean_s=60.0):
    """A Mooncake-like window of sessions (as tests/test_sessions.py's ``_session_log``): a first
    turn continues with 1/2, a later turn with ``sigmoid(slope x (ln prompt - ln 3000))``."""
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.uniform(-burn_s, span_s, rng.poisson(starts_rps * (span_s + burn_s))))
    rows, next_id = [], 1
    for t in starts.tolist():
        prompt, ids, prev_full, turn = int(rng.integers(600, 8000)), [], 0, 1
        while True:
            need = -(-prompt // 512)
            keep = ids[:prev_full]
            ids = keep + list(range(next_id, next_id + need - len(keep)))
            next_id += need - len(keep)
            out = int(rng.integers(20, 400))
            if 0 <= t < span_s:
                rows.append((t, prompt, out, ids))
            q = 0.5 if turn == 1 else 1.0 / (1.0 + math.exp(-slope * (math.log(prompt) - math.log(3000))))
            if rng.random() >= q or turn >= 40:
                break
            turn += 1
            t += float(rng.exponential(gap_mean_s))
            if t >= span_s:
                break
            prev_full = prompt // 512
            prompt = prompt + out + int(rng.integers(5, 3000))
    rows.sort(key=lambda r: r[0])
    arrival = np.array([r[0] for r in rows])
    offsets = np.concatenate([[0], np.cumsum([len(r[3]) for r in rows])]).astype(np.int64)
    ids_all = np.array([i for r in rows for i in r[3]], dtype=np.int64)
    return arrival, offsets, ids_all, np.array([r[1] for r in rows]), np.array([r[2] for r in rows])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_known_slope_comes_back_inside_the_fits_interval(seed):
    """Later turns drawn with slope -1.2 (the generating parameter): the fit's 95% interval holds
    it and its likelihood ratio writes the field."""
    arrival, offsets, ids, prompt, output = _sloped_log(seed, -1.2)
    sf = fit_sessions(arrival, 600.0, offsets, ids, prompt, output, 512, np.random.default_rng(0))
    assert sf is not None and sf.continue_slope is not None
    lo, hi = sf.continue_slope.ci
    assert lo <= -1.2 <= hi, sf.continue_slope
    assert any("continue_by_prompt from turn 2" in n for n in sf.notes)


def test_no_slope_is_not_written():
    """Later turns drawn independently of length (slope 0): the interval holds 0 and the field is
    not written (the likelihood ratio under the chi-square(1) 99% point on this seed)."""
    arrival, offsets, ids, prompt, output = _sloped_log(4, 0.0)
    sf = fit_sessions(arrival, 600.0, offsets, ids, prompt, output, 512, np.random.default_rng(0))
    assert sf is not None and sf.continue_slope is None
    note = next(n for n in sf.notes if n.startswith("continuation by prompt length"))
    assert "independent of length" in note


def test_fit_writes_continue_by_prompt_that_loads_and_generates(tmp_path):
    arrival, offsets, ids, prompt, output = _sloped_log(5, -1.2)
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
    assert "# session: continuation by prompt length: later turns' log-odds" in text
    traffic = yaml.safe_load(text)["traffic"]
    rule = traffic["classes"][0]["session"]["continue_by_prompt"]
    assert rule["from_turn"] == 2 and -2.0 < rule["log_odds_per_ln_tok"] < -0.5
    w = generate_workload(TrafficSpec.model_validate(traffic), 1, tmp_path)
    assert len(w) > 0


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "rule, message",
    [
        (
            "{log_odds_per_ln_tok: 25}",
            "session.continue_by_prompt.log_odds_per_ln_tok: Input should be less than or equal to 20",
        ),
        (
            "{log_odds_per_ln_tok: .nan}",
            "session.continue_by_prompt.log_odds_per_ln_tok: must be a finite number, got nan",
        ),
        (
            "{log_odds_per_ln_tok: -1, from_turn: 0}",
            "session.continue_by_prompt.from_turn: Input should be greater than or equal to 1",
        ),
        (
            "{log_odds_per_ln_tok: -1, from_turn: 1.5}",
            "session.continue_by_prompt.from_turn: Input should be a valid integer",
        ),
        ("{from_turn: 2}", "session.continue_by_prompt.log_odds_per_ln_tok: required field is missing"),
        ("{slope: -1}", "session.continue_by_prompt.slope: unknown key (not part of the format"),
    ],
)
def test_continue_by_prompt_errors_are_located(tmp_path, capsys, rule, message):
    path, line = _with_session(tmp_path, f"{{mean_turns: 2, {_FIXED}, continue_by_prompt: {rule}}}")
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and f"s.yaml: line {line}, " in err and message in err, err


def test_completion_gaps_release_each_turn_after_its_previous_turn(tmp_path):
    """With gap_from: completion a released turn names its previous turn: the same session, so
    its prompt is the previous prompt + 30 output + 5 new tokens (fixed lengths), think 7 s."""
    spec = _one_class(
        {
            "mean_turns": 3,
            "gap_s": {"dist": "fixed", "value_s": 7},
            "gap_from": "completion",
            "new_tokens": {"dist": "fixed", "value": 5},
            "continue_by_prompt": {"log_odds_per_ln_tok": -1.0, "from_turn": 1},
        },
        2.0,
        600,
    )
    w = generate_workload(spec, 2, tmp_path)
    assert w.after_rid is not None and w.think_s is not None
    rel = np.flatnonzero(w.after_rid >= 0)
    assert rel.size > 100
    assert np.array_equal(w.prompt_tokens[rel], w.prompt_tokens[w.after_rid[rel]] + 35)
    assert np.all(w.think_s[rel] == 7.0)
