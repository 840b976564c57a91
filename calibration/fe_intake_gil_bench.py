"""vLLM 0.8.5's one-worker tokenizer thread against a busy event loop: a tokenization's wall time vs the GIL.

vLLM 0.8.5's OpenAI server tokenizes a chat prompt on a thread pool of **one** worker
(``vllm/entrypoints/openai/serving_engine.py``, ``OpenAIServing.__init__``:
``self._tokenizer_executor = ThreadPoolExecutor(max_workers=1)``; ``_tokenize_prompt_input_async`` =
``make_async(self._tokenize_prompt_input, executor=self._tokenizer_executor)``), awaited by
``_preprocess_chat`` on the asyncio loop that also formats and writes every streamed token. So the
tokenizations of all requests queue FIFO for one thread, and that thread needs the GIL for the Python
parts of a ``transformers`` tokenizer call: while the loop thread runs Python, the worker gets the GIL
back only when the loop releases it or after CPython's switch interval (``sys.getswitchinterval()``,
5 ms). If that stretched each tokenization to ~1 / (the arrival rate), the one-worker queue would be
the serial station in front of llm-d exp-4's engine (calibration/public/llm-d/README.md, "What holds
admission").

Measured here: the wall time of one tokenization submitted to a one-worker pool (submit to the tokens
being ready in the worker; the loop's pick-up of the result is left out) by a thread that, like the
loop, goes on running Python after submitting and holds the GIL a given share of the time (Python work
in 1 ms slices, idle in between; the share is ``--busy``), ``--rate`` submissions a second, with the CPU
testbed's fast tokenizer (a stand-in: Llama 4's tokenizer is not available here) on a prompt of
``--prompt-chars``. Run with the testbed's Python (transformers installed)::

    PYTHONPATH=. /work/main/.testbed-venv/bin/python -m calibration.fe_intake_gil_bench \
        --tokenizer /tmp/cpuside/tiny --out calibration/public/llm-d/fe_intake_gil.json

Measurement code only: nothing here feeds the simulator.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["main"]


def _measure(tok, text: str, share: float, jobs: int, rate: float) -> list[float]:
    """The loop's stand-in: one thread that holds the GIL ``share`` of the time (Python work in 1 ms
    slices, sleeping between them) and, like vLLM's asyncio loop, submits a tokenization to the
    one-worker pool every 1 / ``rate`` s without waiting for it. Returns each job's wall time from
    its submission to the tokens being ready in the worker."""
    ex = ThreadPoolExecutor(max_workers=1)
    ex.submit(lambda: None).result()  # start the worker
    walls: list[float] = []

    def job(t_submit: float) -> None:
        tok(text, add_special_tokens=False)
        walls.append(time.perf_counter() - t_submit)

    slice_s = 1e-3
    next_submit = time.perf_counter()
    sent = 0
    while sent < jobs:
        now = time.perf_counter()
        if now >= next_submit:
            ex.submit(job, now)
            sent += 1
            next_submit += 1.0 / rate
        if share > 0:
            end = time.perf_counter() + slice_s
            x = 0
            while time.perf_counter() < end:
                x += 1
        if share <= 0:
            time.sleep(max(0.0, next_submit - time.perf_counter()))
        elif share < 1.0:
            time.sleep(slice_s * (1.0 - share) / share)
    ex.shutdown(wait=True)
    return walls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", required=True, help="a Hugging Face fast tokenizer folder")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--busy", type=float, nargs="+", default=[0.0, 0.5, 0.8, 1.0])
    ap.add_argument("--prompt-chars", type=int, default=5000)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=float, default=28.0, help="tokenizations submitted per second")
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer  # the testbed's Python only

    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    text = ("A user asks about the weather and the assistant answers at length. " * 200)[: args.prompt_chars]
    walls: dict[float, list[float]] = {b: [] for b in args.busy}
    for _ in range(args.repeats):  # interleaved, so the shared machine's load falls on every setting alike
        for b in args.busy:
            walls[b].append(statistics.median(_measure(tok, text, b, args.jobs, args.rate)))
    rows = [
        {
            "busy_share": b,
            "tokenize_wall_ms_median_per_repeat": [round(w * 1e3, 2) for w in walls[b]],
            "tokenize_wall_ms": round(statistics.median(walls[b]) * 1e3, 2),
            "one_worker_capacity_per_s": round(1.0 / statistics.median(walls[b]), 1),
        }
        for b in args.busy
    ]
    res = {
        "python": sys.version.split()[0],
        "switch_interval_s": sys.getswitchinterval(),
        "tokenizer": type(tok).__name__ + " (the CPU testbed's, a stand-in for Llama 4's)",
        "prompt_chars": args.prompt_chars,
        "prompt_tokens": len(tok(text, add_special_tokens=False).input_ids),
        "jobs_per_setting": args.jobs,
        "submitted_per_s": args.rate,
        "repeats": args.repeats,
        "rows": rows,
    }
    for r in rows:
        print(json.dumps(r))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
