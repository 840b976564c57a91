"""Hostile gateway logs for ``fleetcast traffic fit``: the conversation, turn and completion columns
stop 34 added, and the arrival fit on a log a load generator wrote at a fixed rate. Each case here
gave a traceback or an unreadable message before."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli import main
from sim.scenario.spec import scenario_from_dict
from sim.workload.fit.arrivals import _cv_ci
from tests.test_hostile import _refused

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _log(tmp_path: Path, name: str, extra: list[str], cells, n: int = 300, fixed_gap_s: float | None = None) -> Path:
    """A CSV gateway log: timestamp, prompt and output tokens, then ``extra`` columns from ``cells(i)``."""
    rng = random.Random(7)
    t, rows = 1_700_000_000.0, [",".join(["timestamp", "prompt_tokens", "output_tokens", *extra])]
    for i in range(n):
        t += fixed_gap_s if fixed_gap_s is not None else rng.expovariate(0.5)
        rows.append(",".join([f"{t:.3f}", str(rng.randint(50, 500)), str(rng.randint(10, 200)), *map(str, cells(i))]))
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def _fit(tmp_path: Path, capsys, log: Path, *more: str) -> tuple[int, str, dict]:
    code = main(["traffic", "fit", str(log), "--out", str(tmp_path / "t.yaml"), *more])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeWarning" not in err, err
    doc = yaml.safe_load((tmp_path / "t.yaml").read_text()) if code == 0 else {}
    return code, " ".join(err.split()), doc


def test_equal_gaps_have_a_cv_of_zero_exactly():
    # every gap 2 s: the gaps' standard deviation is 0, so c = 0 and its interval is the point
    # (before: ZeroDivisionError in the skewness, var ** 1.5 = 0)
    assert _cv_ci(np.full(50, 2.0)) == (0.0, 0.0)
    lo, hi = _cv_ci(np.array([1.0, 3.0] * 50))  # c = 1/2 exactly (sd 1, mean 2): inside its interval
    assert lo < 0.5 < hi and math.isfinite(lo) and math.isfinite(hi)


def test_a_log_at_a_fixed_rate_gives_no_traceback(tmp_path, capsys):
    log = _log(tmp_path, "fixed.csv", [], lambda i: [], fixed_gap_s=2.0)
    code, err, doc = _fit(tmp_path, capsys, log)
    # every gap 2 s: evenly spaced arrivals, 300 requests over the 299 x 2 = 598 s from the first to the
    # last, so 300 / 598 req/s as every fitted rate is counted (before: exit 2 with "gamma.cv: Input
    # should be greater than 0", a gamma renewal law with cv 0 refused by the scenario's own schema)
    assert code == 0, err
    arrival = doc["traffic"]["arrival"] if "arrival" in doc["traffic"] else doc["traffic"]["classes"][0]["arrival"]
    assert arrival["process"] == "constant"
    assert math.isclose(arrival["rate_rps"], 300 / 598, rel_tol=1e-5)


def test_one_conversation_holding_the_whole_log_is_fitted(tmp_path, capsys):
    """Every row in one conversation: no first turn is kept as a likely session start (before:
    lengths fitted to an empty sample, ZeroDivisionError); every first turn is used instead."""
    log = _log(tmp_path, "one.csv", ["conversation", "latency_s"], lambda i: ["same", 1.0])
    code, err, doc = _fit(tmp_path, capsys, log)
    assert code == 0, err
    scenario_from_dict(
        {"name": "t", "fleet": yaml.safe_load((SCENARIOS / "quickstart.yaml").read_text())["fleet"], **doc},
        path=tmp_path / "t.yaml",
    )
    assert doc["traffic"]["classes"][0]["session"]["mean_turns"] > 1


def test_a_turn_past_the_largest_is_a_bad_value_named_with_its_line(tmp_path, capsys):
    """1e30 as a turn: before, a NumPy cast warning on stderr and a turn number of -2**63."""
    log = _log(tmp_path, "huge.csv", ["conversation", "turn"], lambda i: [f"c{i // 3}", 1 if i % 3 == 0 else 10**30])
    code, err, _ = _fit(tmp_path, capsys, log)
    assert code == 0, err
    assert "200 of 300 row(s) taken out of their conversation" in err, err
    assert "not a whole number from 1 to 1,000,000,000 (the first at line 3: 1000000000000000000000000000000)" in err


def test_a_bad_latency_is_quoted_as_the_log_wrote_it(tmp_path, capsys):
    log = _log(tmp_path, "neg.csv", ["conversation", "latency_s"], lambda i: [f"c{i // 3}", -1.0 if i == 4 else 1.5])
    code, err, _ = _fit(tmp_path, capsys, log)
    assert code == 0, err
    assert "1 of 300 row(s) without a usable completion time" in err and "(the first at line 6: -1.0)" in err, err
    assert "np.float64" not in err


def test_a_field_mapped_twice_is_refused(tmp_path, monkeypatch, capsys):
    log = _log(tmp_path, "ok.csv", ["conversation", "turn"], lambda i: [f"c{i // 3}", i % 3 + 1])
    _refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["traffic", "fit", log, "--out", tmp_path / "t.yaml", "--map", "turn=turn", "--map", "turn=conversation"],
        "--map turn=conversation: field 'turn' is already mapped to column 'turn'; map each field once",
    )


def test_steps_of_unequal_length_print_no_time_left(capsys):
    from sim.cli.common import progress_bar

    with progress_bar("traffic fit", enabled=False, every_s=0.0, unit=" steps", eta=False) as bar:
        bar(1, 3, "fitting")
    line = capsys.readouterr().err.strip()
    assert line.startswith("traffic fit: 33% (1 of 3 steps), ") and line.endswith("; fitting"), line
    assert "left" not in line


def test_traffic_fit_says_what_it_is_doing_when_piped(tmp_path, capsys, monkeypatch):
    """A fit of a large log runs for a minute (1,000,000 rows: ~8 s read, ~48 s fit here) and printed
    nothing before; piped, it now prints its step every few seconds (here every 0 s)."""
    import sim.cli.common as common

    real = common.progress_bar
    monkeypatch.setattr(common, "progress_bar", lambda *a, **k: real(*a, **{**k, "enabled": False, "every_s": 0.0}))
    log = _log(tmp_path, "ok.csv", ["conversation", "turn"], lambda i: [f"c{i // 3}", i % 3 + 1])
    code, err, _ = _fit(tmp_path, capsys, log)
    assert code == 0, err
    assert "traffic fit: 0% (0 of 3 steps)" in err and f"reading {log}" in err, err
    assert "traffic fit: 33% (1 of 3 steps)" in err and "fitting 300 requests" in err, err
    assert "traffic fit: 67% (2 of 3 steps)" in err and "writing the traffic section" in err, err


def test_traffic_fit_check_says_what_it_is_doing_when_piped(tmp_path, capsys, monkeypatch):
    """--check simulates the log and each fitted seed (100,000 rows on quickstart's fleet: ~45 s
    here, silent before)."""
    import sim.cli.common as common

    real = common.progress_bar
    monkeypatch.setattr(common, "progress_bar", lambda *a, **k: real(*a, **{**k, "enabled": False, "every_s": 0.0}))
    log = _log(tmp_path, "ok.csv", [], lambda i: [])
    code, err, _ = _fit(tmp_path, capsys, log, "--check", str(SCENARIOS / "quickstart.yaml"), "--check-seeds", "1")
    assert code == 0, err
    assert "traffic fit: 0% (0 of 1 steps)" in err and "--check: the log and 1 fitted seed(s) on " in err, err


def test_one_column_mapped_to_a_second_field_is_refused(tmp_path, monkeypatch, capsys):
    """``--map conversation=turn`` on a log that has a ``turn`` column: before, 'turn' was read as the
    conversation and as the turn number, silently (stop 35's leftover)."""
    log = _log(tmp_path, "ok.csv", ["conversation", "turn"], lambda i: [f"c{i // 3}", i % 3 + 1])
    _refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["traffic", "fit", log, "--out", tmp_path / "t.yaml", "--map", "conversation=turn"],
        "ok.csv: column 'turn' would be read as conversation and as turn",
        "(conversation from --map conversation=turn; turn by its usual name)",
        "give turn a column of its own (--map turn=COLUMN) or map conversation to another column",
    )


def test_two_fields_mapped_to_one_column_are_refused(tmp_path, monkeypatch, capsys):
    log = _log(tmp_path, "ok.csv", ["conversation"], lambda i: [f"c{i // 3}"])
    argv = ["traffic", "fit", log, "--out", tmp_path / "t.yaml", "--map", "tenant=conversation"]
    _refused(tmp_path, monkeypatch, capsys, argv + ["--map", "route=conversation"],
             "ok.csv: column 'conversation' would be read as tenant and as route and as conversation",
             "give conversation a column of its own (--map conversation=COLUMN) or map tenant to another column")


@pytest.mark.parametrize(
    "column, cell, shown, valid",
    [
        ("latency_s", "1e300", "1e+300", "a latency from 0 to 1,000,000 s"),
        ("latency_s", "inf", "inf", "a latency from 0 to 1,000,000 s"),
        ("latency_s", "-1e300", "-1e+300", "a latency from 0 to 1,000,000 s"),  # ("nan" in a CSV is an empty cell: unknown)
        ("latency_ms", "2e9", "2000000000.0", "a latency from 0 to 1,000,000,000 ms"),
        ("finish_time", "1e300", "1e+300", "a time from the row's timestamp to 1,000,000 s after it"),
        ("finish_time", "1000", "1000.0", "a time from the row's timestamp to 1,000,000 s after it"),
    ],
)
def test_a_latency_past_the_longest_is_a_bad_value_named_with_its_line(tmp_path, capsys, column, cell, shown, valid):
    """1e300 s (or a finish before the request's own timestamp, 1000 s against 1.7e9) was read as a
    completion, silently (stop 35's leftover); it is now a bad value like a negative one: the row is
    kept without a completion time, counted in a warning with its line and the valid range."""
    log = _log(tmp_path, "lat.csv", ["conversation", column], lambda i: [f"c{i // 3}", cell if i == 4 else "1.5"])
    if column == "finish_time":  # the others' end times, 1.5 s after their own timestamps
        lines = log.read_text().splitlines()
        for k in range(1, len(lines)):
            if k != 5:
                cells = lines[k].split(",")
                cells[-1] = f"{float(cells[0]) + 1.5:.3f}"
                lines[k] = ",".join(cells)
        log.write_text("\n".join(lines) + "\n")
    code, err, _ = _fit(tmp_path, capsys, log)
    assert code == 0, err
    assert "1 of 300 row(s) without a usable completion time" in err, err
    assert f"column '{column}' is not {valid}" in err and f"(the first at line 6: {shown})" in err, err
