"""Trace replay: the real Azure 2023 and Mooncake traces through their
presets, generic CSV/JSONL files, rescaling, selection and error messages."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from sim.errors import ScenarioError
from sim.workload.generate import generate_workload
from sim.workload.spec import TrafficSpec

# Samples of the real traces shipped with the example scenarios (scenarios/data/README.md): the first
# 3,000 requests of the Azure 2023 conversation trace and the first 1,500 of Mooncake's conversation trace,
# unmodified apart from truncation, so these tests run on a fresh clone.
DATA = Path(__file__).resolve().parents[1] / "scenarios" / "data"
AZURE_CONV = DATA / "azure-conv-2023-sample.csv"
MOONCAKE = DATA / "mooncake-conversation-sample.jsonl"


def replay(path, base_dir, classes=None, duration_s=1e6, **arrival):
    """Workload of a trace replay (classes default to one class 'a')."""
    spec = TrafficSpec.model_validate({
        "duration_s": duration_s,
        "arrival": {"process": "trace", "path": str(path), **arrival},
        "classes": classes or [{"name": "a"}],
    })
    return generate_workload(spec, 1, base_dir)


def write_csv(path: Path, rows, header="arrival_s,prompt_tokens,output_tokens"):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# ------------------------------------------------------------- real traces
def test_azure_conv_preset_loads_every_row():
    w = replay(AZURE_CONV, Path("."), preset="azure-2023")
    with open(AZURE_CONV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(w) == len(rows) == 3_000
    for i in range(5):  # the file is already in time order
        assert w.prompt_tokens[i] == int(rows[i]["ContextTokens"])
        assert w.output_tokens[i] == int(rows[i]["GeneratedTokens"])
    t0 = datetime.fromisoformat(rows[0]["TIMESTAMP"][:26])
    t1 = datetime.fromisoformat(rows[1]["TIMESTAMP"][:26])
    assert w.arrival_s[0] == 0.0
    assert w.arrival_s[1] == pytest.approx((t1 - t0).total_seconds(), abs=1e-6)
    assert np.all(np.diff(w.arrival_s) >= 0)
    assert len(w.prefix_keys) == 0  # no prefix information in this trace


def test_mooncake_chains_are_the_files_hash_ids():
    w = replay(MOONCAKE, Path("."), preset="mooncake", duration_s=4000)
    rows = [json.loads(line) for line in MOONCAKE.read_text().splitlines()]
    assert len(w) == len(rows)
    order = np.argsort([r["timestamp"] for r in rows], kind="stable")
    for r in range(0, len(w), 97):
        row = rows[order[r]]
        keys, ends = w.chain(r)
        assert keys.tolist() == row["hash_ids"]
        n = row["input_length"]
        assert ends.tolist() == [min(512 * (j + 1), n) for j in range(len(keys))]
        assert w.prompt_tokens[r] == n and w.output_tokens[r] == row["output_length"]
    counts = {}
    for row in rows:
        for h in row["hash_ids"]:
            counts[h] = counts.get(h, 0) + 1
    shared_file = {h for h, c in counts.items() if c > 1}
    keys, n_keys = np.unique(w.prefix_keys, return_counts=True)
    assert set(keys[n_keys > 1].tolist()) == shared_file
    assert len(shared_file) > 100  # the trace really shares prefixes
    assert w.arrival_s[-1] == pytest.approx(rows[-1]["timestamp"] / 1000 - rows[0]["timestamp"] / 1000)


def test_mooncake_cut_at_duration_is_noted():
    rows = [json.loads(line) for line in MOONCAKE.read_text().splitlines()]
    assert len(rows) == 1_500  # the sample spans 510 s
    w = replay(MOONCAKE, Path("."), preset="mooncake", duration_s=300)
    assert w.arrival_s.max() < 300
    t0 = min(r["timestamp"] for r in rows)
    assert len(w) == sum((r["timestamp"] - t0) / 1000 < 300 for r in rows)
    dropped = len(rows) - len(w)
    assert dropped > 0 and any(f"{dropped} request(s) arriving at or after duration_s=300" in n for n in w.notes)
    assert w.prefix_offsets[-1] == len(w.prefix_keys)


# ------------------------------------------------------------ generic files
def test_generic_csv_malformed_line_is_named(tmp_path):
    f = write_csv(tmp_path / "t.csv", [(0, 10, 5), (1, 10, 5), (2, 10, 5), ("3", "12x", 5), (4, 10, 5)])
    with pytest.raises(ScenarioError, match=r"t\.csv line 5, column 'prompt_tokens': '12x'"):
        replay("t.csv", tmp_path)
    write_csv(f, [(0, 10, 5), (1, 10, 5), (2, 10, 5), ("3.5", 10, 5), ("soon", 10, 5)])
    with pytest.raises(ScenarioError, match=r"line 6, column 'arrival_s': 'soon'"):
        replay("t.csv", tmp_path)


def test_generic_jsonl_with_classes(tmp_path):
    lines = [{"arrival_s": 2.0, "prompt_tokens": 7, "output_tokens": 0, "class": "b"},
             {"arrival_s": 1.0, "prompt_tokens": 0, "output_tokens": 3, "class": "a"},
             {"arrival_s": 3.0, "prompt_tokens": 9, "output_tokens": 3, "class": "b"}]
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    w = replay("t.jsonl", tmp_path, classes=[{"name": "a"}, {"name": "b"}])
    assert w.arrival_s.tolist() == [0.0, 1.0, 2.0]
    assert w.class_idx.tolist() == [0, 1, 1]
    assert w.prompt_tokens.tolist() == [1, 7, 9] and w.output_tokens.tolist() == [3, 1, 3]
    assert any("1 request(s) with 0 prompt tokens clamped" in n for n in w.notes)
    assert any("1 request(s) with 0 output tokens clamped" in n for n in w.notes)
    with pytest.raises(ScenarioError, match=r"class values 'b' that are not declared classes; declared: a, c"):
        replay("t.jsonl", tmp_path, classes=[{"name": "a"}, {"name": "c"}])
    (tmp_path / "t.jsonl").write_text(json.dumps(lines[0]) + "\n{oops\n")
    with pytest.raises(ScenarioError, match=r"t\.jsonl line 2: not valid JSON"):
        replay("t.jsonl", tmp_path)
    no_class = {k: v for k, v in lines[2].items() if k != "class"}
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(x) for x in [lines[0], {}, no_class]).replace("{}", "\n"))
    with pytest.raises(ScenarioError, match=r"t\.jsonl line 4: column 'class' is missing"):
        replay("t.jsonl", tmp_path, classes=[{"name": "a"}, {"name": "b"}])


def test_trace_without_class_column_uses_shares(tmp_path):
    write_csv(tmp_path / "t.csv", [(i * 0.01, 10, 5) for i in range(20_000)])
    w = replay("t.csv", tmp_path, classes=[{"name": "a", "share": 0.25}, {"name": "b", "share": 0.75}])
    assert np.mean(w.class_idx == 0) == pytest.approx(0.25, abs=0.015)
    with pytest.raises(ScenarioError, match="no class column; give every class a share"):
        replay("t.csv", tmp_path, classes=[{"name": "a"}, {"name": "b"}])


def test_target_rate_and_time_scale(tmp_path):
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.exponential(0.5, 5000))  # about 2 rps
    write_csv(tmp_path / "t.csv", [(x, 10, 5) for x in t])
    w = replay("t.csv", tmp_path, target_rate_rps=8.0)
    assert (len(w) - 1) / w.arrival_s[-1] == pytest.approx(8.0, rel=0.01)
    w2 = replay("t.csv", tmp_path, time_scale=2.0)
    np.testing.assert_allclose(w2.arrival_s, 2 * (t - t[0]))


def test_start_s_and_max_requests(tmp_path):
    write_csv(tmp_path / "t.csv", [(10 + i, 10 + i, 5) for i in range(10)])
    w = replay("t.csv", tmp_path, start_s=3, max_requests=4)
    assert w.arrival_s.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert w.prompt_tokens.tolist() == [13, 14, 15, 16]


def test_column_overrides_and_units(tmp_path):
    write_csv(tmp_path / "t.txt", [(0, 5, 6, "x"), (1500, 7, 8, "y")], header="ms,in,out,extra")
    w = replay("t.txt", tmp_path, columns={"arrival_s": "ms", "prompt_tokens": "in", "output_tokens": "out"},
               time_unit="ms")
    assert w.arrival_s.tolist() == [0.0, 1.5] and w.prompt_tokens.tolist() == [5, 7]


def test_missing_file_and_columns(tmp_path):
    with pytest.raises(ScenarioError, match="traffic.arrival.path: file not found: " + re.escape(str((tmp_path / "gone.csv").resolve()))):
        replay("gone.csv", tmp_path)
    write_csv(tmp_path / "t.csv", [(0, 1, 1)], header="time,prompt_tokens,output_tokens")
    with pytest.raises(ScenarioError, match=r"no column 'arrival_s'\. Columns found: time, prompt_tokens, output_tokens; "
                                            r"expected: arrival_s, prompt_tokens, output_tokens"):
        replay("t.csv", tmp_path)
    with pytest.raises(ScenarioError, match="no column 'TIMESTAMP'.*expected: TIMESTAMP, ContextTokens, GeneratedTokens"):
        replay("t.csv", tmp_path, preset="azure-2023")


def test_class_lengths_are_ignored_for_traces(tmp_path):
    write_csv(tmp_path / "t.csv", [(0, 5, 6)])
    cls = {"name": "a", "prompt_tokens": {"dist": "fixed", "value": 99}, "output_tokens": {"dist": "fixed", "value": 99}}
    w = replay("t.csv", tmp_path, classes=[cls])
    assert w.prompt_tokens.tolist() == [5]
    assert any("ignored" in n for n in w.notes)
