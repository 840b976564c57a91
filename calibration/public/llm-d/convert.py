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

Times are rounded to the microsecond; nothing else is changed or dropped. Usage (from the repository root)::

    python calibration/public/llm-d/convert.py [SOURCE_ROOT]

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


def convert_file(src: Path, dst: Path) -> int:
    """One LMBench CSV -> one per-request log CSV; the number of requests."""
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for i, r in enumerate(rows, 2):
        missing = [f for f in _FIELDS if not r.get(f)]
        if missing:
            raise SystemExit(f"{src}, line {i}: field(s) {', '.join(missing)} missing or empty")
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
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(("arrival_s", "first_token_s", "last_token_s", "prompt_tokens", "output_tokens"))
        w.writerows(out)
    return len(out)


def main(argv: list[str]) -> int:
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
            n = convert_file(f, HERE / here / f"qps-{qps}.csv")
            print(f"{src_set}/{f.name} -> {here}/qps-{qps}.csv ({n} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
