"""calibration.traffic_holdout (docs/traffic-fit.md's held-out check and prompts-by-depth table):
its --quick path on the bundled Mooncake sample runs and prints the documented shape; the window
cut and the chain depths checked against hand counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from calibration.traffic_holdout import DEPTHS, depths_from_chains, main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "scenarios" / "data" / "mooncake-conversation-sample.jsonl"
METRIC_LABELS = [
    "TTFT p50, s",
    "TTFT p99, s",
    "TPOT p50, s",
    "TPOT p99, s",
    "throughput, req/s",
    "throughput, output tok/s",
]


def test_depth_of_a_generated_chain_by_hand():
    # chains of 2, 4, 6 chunks: turns 1, 2, 3 (prompt + output chunk per turn); 5 and 3 chunks:
    # a shared prefix chunk first, then turns 2 and 1
    offsets = np.cumsum([0, 2, 4, 6, 5, 3])
    assert depths_from_chains(offsets).tolist() == [1, 2, 3, 2, 1]


def test_quick_run_on_the_bundled_sample_prints_the_documented_tables(capsys):
    assert main([str(SAMPLE), "--quick"]) == 0
    out = capsys.readouterr().out

    # the cut: half the sample's span rounded up to a whole minute; window sizes counted here
    stamps = [json.loads(line)["timestamp"] / 1000.0 for line in SAMPLE.read_text().splitlines()]
    span = max(stamps) - min(stamps)  # 510 s -> cut at 300 s
    cut = -(-span / 2 // 60) * 60
    first = sum(t - min(stamps) < cut for t in stamps)
    assert f"cut at {cut:g} s" in out
    assert re.search(rf"first window: +{first:,} requests; later turns' slope ", out)
    assert re.search(rf"second window: +{len(stamps) - first:,} requests; later turns' slope ", out)

    # each round trip: a header and one row per compared metric, 7 cells, 2 seeds in the title
    titles = re.findall(r"^second window round-tripped on mooncake-prefix.yaml's fleet, .*\(2 fitted seeds", out, re.M)
    assert len(titles) >= 1
    rows = [line for line in out.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in METRIC_LABELS]
    assert len(rows) == 6 * len(titles)
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 7
        assert re.fullmatch(r"[+-]\d+\.\d%", cells[3])
        assert cells[6] in ("within", "outside", "undecided")

    # prompts by depth: the log's row and one generated row (1 seed), a p50 and a count per depth
    table = [line for line in out.splitlines() if line.startswith("| the log |") or ", seed " in line]
    assert table[0].startswith("| the log |") and len(table) >= 2
    assert all(line.count("|") == len(DEPTHS) + 5 for line in table)
    log_counts = [int(n.replace(",", "")) for n in re.findall(r"\(([0-9,]+)\)", table[0])]
    assert len(log_counts) == len(DEPTHS) and sum(log_counts) <= len(stamps)


def test_a_missing_trace_is_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "none.jsonl"), "--quick"]) == 2
    assert "none.jsonl: no such file" in capsys.readouterr().err


def test_quick_noise_table_on_the_bundled_sample(capsys):
    assert main([str(SAMPLE), "--part", "noise", "--quick"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"the replay with the scenario's seed \+ 1: (the same six figures|different figures)", out)
    rows = [line for line in out.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:] in METRIC_LABELS]
    # --quick shows 2 and 3 fitted seeds: every metric once for each
    assert [r.split(" | ")[1] for r in rows] == ["2"] * 6 + ["3"] * 6
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 8
        assert re.fullmatch(r"\d+%", cells[4])  # the replay's rank among 2 or 3 runs
        assert cells[7] in ("within", "outside", "undecided")


def test_bad_noise_seeds_are_exit_2(capsys):
    assert main([str(SAMPLE), "--part", "noise", "--noise-seeds", "1,10"]) == 2
    assert "--noise-seeds 1,10" in capsys.readouterr().err


def test_a_window_too_small_to_fit_is_a_located_exit_2(tmp_path, capsys):
    # 60 rows spanning under a minute: the default cut (half the span, rounded up to a minute) is
    # at 60 s, past the last request, so the second window is empty
    short = tmp_path / "short.jsonl"
    lines = SAMPLE.read_text().splitlines()[:60]
    assert max(json.loads(line)["timestamp"] for line in lines) < 60_000
    short.write_text("\n".join(lines) + "\n")
    assert main([str(short), "--part", "heldout", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "short.jsonl: the second window (cut at 60 s) holds 0 request(s)" in err
