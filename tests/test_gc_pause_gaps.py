"""calibration.gc_pause_measure's exp-4 gap analysis on runs built by hand.

A first-token gap in which requests keep finishing is an admission gap (decoding went on); a
silence (no first and no last token) is what a process-wide pause of the engine would leave. The
expected counts below come from how the runs were built, not from the code.
"""

from __future__ import annotations

import json
from pathlib import Path

from calibration.gc_pause_measure import main

HEADER = "arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens,conversation,turn,prefix_tokens,warmup\n"


def _write(folder: Path, qps: int, rows: list[tuple[float, float, float]]) -> None:
    lines = [f"{a},{f},{last},100,10,c{i},1,0,false\n" for i, (a, f, last) in enumerate(rows)]
    (folder / f"qps-{qps}.csv").write_text(HEADER + "".join(lines), encoding="utf-8")


def test_gap_with_finishes_and_a_silence_are_told_apart(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # 30 req/s run: a request every 0.05 s from 0.05 to 3.0 s (k = 1..60), first token 0.03 s after
    # arrival, last token 1.0 s after arrival. Two planted events:
    # - arrivals 1.00-1.25 (k = 20..25) get their first token at 1.30 + 0.001 k (1.320-1.325): a gap
    #   0.98 -> 1.320 (0.34 s) while the requests that arrived 0.05-0.30 finish at 1.05-1.30 inside it
    #   (6 finishes), so no silence there;
    # - arrivals 2.00-2.25 (k = 40..45) get theirs at 2.340-2.345, and the last tokens due at 1.95-2.40 are
    #   moved to 2.40 + 0.001 k: a gap 1.98 -> 2.33 (k = 46's first token) with no finish inside, which is
    #   also the run's one silence >= 0.2 s.
    rows = []
    for k in range(1, 61):
        a = round(0.05 * k, 3)
        f = round(a + 0.03, 3)
        last = round(a + 1.0, 3)
        if 20 <= k <= 25:
            f = round(1.30 + 0.001 * k, 3)
        if 40 <= k <= 45:
            f = round(2.30 + 0.001 * k, 3)
        if 1.95 <= last <= 2.40:
            last = round(2.40 + 0.001 * k, 3)
        rows.append((a, f, last))
    _write(corpus, 30, rows)
    # a moderate run (8 req/s) with nothing planted: no gap with a waiting request
    _write(corpus, 8, [(0.125 * k, 0.125 * k + 0.03, 0.125 * k + 1.0) for k in range(1, 25)])
    out = tmp_path / "out"
    assert main(["gaps", "--corpus", str(corpus), "--out", str(out)]) == 0
    res = json.loads((out / "exp4_gaps.json").read_text())
    by_qps = {r["qps"]: r for r in res["runs"]}
    assert by_qps[8.0]["gaps"] == []
    gaps = by_qps[30.0]["gaps"]
    assert len(gaps) == 2
    assert gaps[0]["t_s"] == 0.98 and gaps[0]["gap_s"] == 0.34 and gaps[0]["finished"] == 6
    # at 0.98 s the 19 requests that arrived 0.05-0.95 are all in flight (last tokens 1.05-1.95); the
    # arrivals 1.00-1.20 had waited > 0.1 s by the gap's end (1.320 - 0.1), none had a first token: 5
    assert gaps[0]["in_flight"] == 19 and gaps[0]["waiting"] == 5
    assert gaps[1]["t_s"] == 1.98 and gaps[1]["gap_s"] == 0.35 and gaps[1]["finished"] == 0
    assert by_qps[30.0]["silences_s"] == [0.35]
    assert res["totals_from_24_qps"]["runs_from_24_qps"] == 1
    assert res["totals_from_24_qps"]["finished_in_gaps"] == 6
    assert res["totals_from_24_qps"]["runs_with_a_silence"] == 1
