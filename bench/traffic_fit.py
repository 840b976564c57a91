"""Time and peak memory of `fleetcast traffic fit` on a large gateway log.

Writes a synthetic OpenAI-style gateway log (CSV: timestamp, model, tenant,
prompt_tokens, completion_tokens; Poisson arrivals at 100 req/s, two models,
lognormal lengths with output growing with the prompt) of ``--rows`` rows to a
temporary folder, then runs ``fleetcast traffic fit LOG --out ... --by model``
in a child process and prints its wall time and peak resident memory (the
child's ru_maxrss). The issue's target is < 2 min and < 2 GB for 10 million
rows; nothing here gates CI.

    python bench/traffic_fit.py [--rows 10000000] [--keep DIR] [--log GATEWAY.csv]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def write_log(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    chunk = 1_000_000
    t0 = 1_700_000_000.0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("timestamp,model,tenant,prompt_tokens,completion_tokens\n")
        for a in range(0, rows, chunk):
            k = min(chunk, rows - a)
            t = t0 + np.cumsum(rng.exponential(0.01, k))
            t0 = float(t[-1])
            prompt = np.maximum(np.rint(rng.lognormal(6.5, 1.0, k)), 1).astype(np.int64)
            output = np.maximum(np.rint(prompt * 0.2 * rng.lognormal(0, 0.5, k)), 1).astype(np.int64)
            df = pd.DataFrame(
                {
                    "timestamp": np.round(t, 3),
                    "model": np.where(rng.random(k) < 0.7, "llama-8b", "llama-70b"),
                    "tenant": rng.integers(0, 50, k),
                    "prompt_tokens": prompt,
                    "completion_tokens": output,
                }
            )
            df.to_csv(fh, header=False, index=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--keep", help="write the log and the fit here instead of a temporary folder")
    ap.add_argument("--log", help="fit this gateway log instead of writing one (e.g. one --keep left)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetcast-bench-fit-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log = Path(args.log) if args.log else folder / "gateway.csv"
        if not args.log:
            started = time.perf_counter()
            write_log(log, args.rows)
            size_mib = log.stat().st_size / 2**20
            print(f"wrote {args.rows:,} rows ({size_mib:,.0f} MiB) in {time.perf_counter() - started:.1f} s")
        entry = "import sys; from sim.cli import main; sys.exit(main())"
        cmd = [sys.executable, "-c", entry, "traffic", "fit", str(log), "--out", str(folder / "traffic.yaml")]
        cmd += ["--by", "model"]
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_mib = usage.ru_maxrss / 1024  # Linux: KiB
        cpu_s = usage.ru_utime + usage.ru_stime
        print(done.stdout.strip())
        if done.returncode:
            print(done.stderr.strip())
            return done.returncode
        print(
            f"fit: {wall:.1f} s wall, {cpu_s:.1f} s CPU (user + system), peak RSS {peak_mib:,.0f} MiB "
            "(targets: < 120 s, < 2048 MiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
