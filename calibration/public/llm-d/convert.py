"""Convert llm-d-benchmark's per-request LMBench CSVs into fleetcast per-request logs.

Source: github.com/llm-d/llm-d-benchmark, commit 52d328cd3d373c02e006743c70a567e50b0f5faf,
``collected/data/openshift/<exp>/<setup>/LMBench_sharegpt_output_<qps>.csv`` (Apache-2.0, LICENSE in
the same tree; the folder was removed later in 89c5ba50). Each source row is one request:
``prompt_tokens, generation_tokens, ttft, generation_time, launch_time, finish_time`` (seconds; launch
and finish are Unix times). Written per request (docs/run-logs.md, "Per-request logs"):

    arrival_s     = launch_time - the set's first launch_time
    first_token_s = arrival_s + ttft
    last_token_s  = finish_time - the set's first launch_time   (= first_token_s + generation_time)
    prompt_tokens, output_tokens = prompt_tokens, generation_tokens

Times are rounded to the microsecond; nothing else is changed or dropped.

exp-4 only (README.md, "Prefix sharing"): the client was LMBenchmark's ShareGPT workload, whose prompts are
turns of 55 ShareGPT conversations, each turn's text beginning with the previous turn's, and whose run.sh
sends a warm-up (turn 2 of every conversation) before each QPS point. Its logs also carry, per request,
``conversation, turn, prefix_tokens`` (docs/run-logs.md, "Conversations and warm-up"), and ``warmup``
rows before the measured ones: turn 2 of every conversation. The previous QPS points' requests (the same
prompts) are not taken to be in the cache: the measured TTFT follows each request's tokens beyond the
previous turn at every point (README.md, "Prefix sharing"). Which request is which turn
comes from ``lmbench-sharegpt-turns.csv``, written by ``--turns LMBENCH_CHECKOUT`` from LMBenchmark's
``sharegpt/warmup.json`` and ``run.json`` (text lengths only are kept). Usage (from the repository root)::

    python calibration/public/llm-d/convert.py [SOURCE_ROOT]
    python calibration/public/llm-d/convert.py --turns LMBENCH_CHECKOUT

SOURCE_ROOT is a checkout (or copy) of the repository at that commit; default
/work/shared/data/public-gpu/llm-d-benchmark-52d328cd. The sidecars (``fleetcast.yaml``) are written by
hand, not by this script (README.md says what each setting rests on).
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = Path("/work/shared/data/public-gpu/llm-d-benchmark-52d328cd")
SETS = {  # source folder under collected/data/openshift -> folder here
    "exp-0/vllm-70b": "exp-0-vllm-70b",
    "exp-4/vllm-llama4-tp4": "exp-4-vllm-llama4-tp4",
}
_NAME = re.compile(r"^LMBench_sharegpt_output_(\d+(?:\.\d+)?)\.csv$")
_FIELDS = ("prompt_tokens", "generation_tokens", "ttft", "generation_time", "launch_time", "finish_time")
SHARING_SETS = {"exp-4-vllm-llama4-tp4"}
"""Sets whose logs carry the LMBenchmark conversation structure and warm-up (README.md, "Prefix sharing")."""
TURNS = HERE / "lmbench-sharegpt-turns.csv"
LMBENCH = (
    "github.com/LMCache/LMBenchmark, commit 26d02bd (Apache-2.0, LICENSE at that commit), sharegpt/warmup.json "
    "and sharegpt/run.json, unchanged since ed0d3f3 (2025-04-17); sharegpt/run.sh at d059bc2 (2025-04-25): "
    "a warm-up at the point's QPS, sleep 10, the run, sleep 10, per QPS point"
)
TEMPLATE_CLOSE_TOKENS = 5
"""Tokens after the user's text in Llama 4's chat template (<|eot|>, <|header_start|>, assistant,
<|header_end|>, two newlines as one token): not part of the next turn's prompt."""
BOUNDARY_TOKENS = 1
"""The last text token of a turn may merge with the next turn's "\n" when tokenized: not counted as shared."""
TEMPLATE_TOKENS = 10
"""Template tokens around one user message (5 before, 5 after): what does not scale with the text."""
WARMUP_TAIL_S = 5.0
"""Assumed time from the warm-up's last send to its last response (one request's E2E, 3-6 s here)."""


def read_source(src: Path) -> list[dict]:
    """One LMBench CSV's rows in send order (checked)."""
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows, 2):
        missing = [f for f in _FIELDS if not r.get(f)]
        if missing:
            raise SystemExit(f"{src}, line {i}: field(s) {', '.join(missing)} missing or empty")
    return sorted(rows, key=lambda r: float(r["launch_time"]))


def convert_file(src: Path, dst: Path, sharing: dict | None = None) -> int:
    """One LMBench CSV -> one per-request log CSV; the number of requests. ``sharing``: the
    conversation columns and warm-up rows (``sharing_rows``) of an exp-4 point."""
    rows = read_source(src)
    t0 = min(float(r["launch_time"]) for r in rows)
    out = []
    for r in rows:
        arrival = float(r["launch_time"]) - t0
        out.append(
            (
                round(arrival, 6),
                round(arrival + float(r["ttft"]), 6),
                round(float(r["finish_time"]) - t0, 6),
                int(float(r["prompt_tokens"])),
                int(float(r["generation_tokens"])),
            )
        )
    out.sort()
    head: tuple[str, ...] = ("arrival_s", "first_token_s", "last_token_s", "prompt_tokens", "output_tokens")
    if sharing is not None:
        head += ("conversation", "turn", "prefix_tokens", "warmup")
        out = sharing["warmup"] + [o + sharing["columns"][i] + ("",) for i, o in enumerate(out)]
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(head)
        w.writerows(out)
    return len(out) - (len(sharing["warmup"]) if sharing is not None else 0)


def write_turns(lmbench: Path) -> None:
    """``lmbench-sharegpt-turns.csv`` from an LMBenchmark checkout: per warm-up and run entry (send
    order), its conversation, turn and text length. Conversations are numbered by warm-up entry; a run
    entry is the next turn of the conversation whose latest text its own text begins with."""
    import json

    warm = json.loads((lmbench / "sharegpt" / "warmup.json").read_text(encoding="utf-8"))
    run = json.loads((lmbench / "sharegpt" / "run.json").read_text(encoding="utf-8"))
    latest = [w["input"] for w in warm]
    turn = [2] * len(warm)  # warmup.json is turn start_round - 1 = 2 (prepare_sharegpt_data.sh defaults)
    out = [("warmup", i, i, 2, len(w["input"]), int(w["output_length"])) for i, w in enumerate(warm)]
    for i, e in enumerate(run):
        cands = [u for u, t in enumerate(latest) if e["input"].startswith(t)]
        if not cands:
            raise SystemExit(f"run.json entry {i}: its text begins with no conversation's latest turn")
        u = max(cands, key=lambda c: len(latest[c]))
        latest[u], turn[u] = e["input"], turn[u] + 1
        out.append(("run", i, u, turn[u], len(e["input"]), int(e["output_length"])))
    with open(TURNS, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("phase", "index", "conversation", "turn", "chars", "output_length"))
        w.writerows(out)
    print(f"{TURNS.name}: {len(warm)} warm-up and {len(run)} run entries ({LMBENCH})")


def read_turns() -> tuple[list[dict], list[dict]]:
    with open(TURNS, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if r["phase"] == "warmup"], [r for r in rows if r["phase"] == "run"]


def sharing_rows(rows: list[dict], qps: float) -> dict:
    """The conversation columns of a point's requests (send order = run.json order) and its warm-up
    rows: turn 2 of every conversation at the point's QPS, ending ``WARMUP_TAIL_S`` + 10 s before the
    first send (run.sh)."""
    warm_t, run_t = read_turns()
    if len(run_t) != len(rows):
        raise SystemExit(f"{TURNS.name} has {len(run_t)} run entries, the point {len(rows)} requests")
    prompt = {(int(t["conversation"]), int(t["turn"])): int(float(r["prompt_tokens"])) for t, r in zip(run_t, rows)}
    chars = {(int(t["conversation"]), int(t["turn"])): int(t["chars"]) for t in warm_t + run_t}
    for t in warm_t:  # turn 2's prompt is not logged: turn 3's text tokens scaled by the text lengths
        u = int(t["conversation"])
        p3, c2, c3 = prompt[(u, 3)], chars[(u, 2)], chars[(u, 3)]
        prompt[(u, 2)] = TEMPLATE_TOKENS + round((p3 - TEMPLATE_TOKENS) * c2 / c3)

    def cols(u: int, turn: int) -> tuple:
        shared = max(prompt[(u, turn - 1)] - TEMPLATE_CLOSE_TOKENS - BOUNDARY_TOKENS, 0) if turn > 2 else 0
        return (f"c{u}", turn, shared)

    columns = [cols(int(t["conversation"]), int(t["turn"])) for t in run_t]
    warm = []
    start = -10.0 - WARMUP_TAIL_S - len(warm_t) / qps
    for i, t in enumerate(warm_t):
        u = int(t["conversation"])
        warm.append((round(start + i / qps, 6), "", "", prompt[(u, 2)], int(t["output_length"]), f"c{u}", 2, 0, "true"))
    return {"columns": columns, "warmup": warm}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--turns"]:
        write_turns(Path(argv[1]))
        return 0
    root = Path(argv[0]) if argv else DEFAULT_SOURCE
    for src_set, here in SETS.items():
        src_dir = root / "collected" / "data" / "openshift" / src_set
        files = sorted(f for f in src_dir.glob("LMBench_sharegpt_output_*.csv") if _NAME.match(f.name))
        if not files:
            raise SystemExit(f"{src_dir}: no LMBench_sharegpt_output_<qps>.csv files")
        (HERE / here).mkdir(exist_ok=True)
        for f in files:
            m = _NAME.match(f.name)
            assert m is not None  # files were chosen by this pattern
            qps = m.group(1)
            sharing = sharing_rows(read_source(f), float(qps)) if here in SHARING_SETS else None
            n = convert_file(f, HERE / here / f"qps-{qps}.csv", sharing)
            print(f"{src_set}/{f.name} -> {here}/qps-{qps}.csv ({n} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
