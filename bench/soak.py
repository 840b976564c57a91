"""Soak: `fleetcast run` on millions of requests, its peak memory and wall time.

The scenario is bench/sim_speed.py's case b (64 replicas of Llama-3.1-8B on H100,
chat/code mix at ~80% of capacity) with the duration stretched to the request count.
Each size runs the real command line in its own process (summary, terminal tables and
the run folder included); its peak resident memory is the child's ``ru_maxrss``.
Prints a table and writes JSON (default bench/results/soak.json). Never gates on times;
the issue's bar (10 million requests under 2 GB) is reported, not asserted.

    python bench/soak.py [--requests 1000000 10000000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sim_speed import CLASSES

RATE_RPS = 870.0  # case b's rate: ~80% of 64 replicas' measured capacity
LIMIT_MB = 2048.0

#: The child: runs the CLI as its own child, prints that child's peak RSS (MB) and wall.
_MEASURE = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def scenario_doc(requests: int) -> dict:
    return {"name": f"soak-{requests}", "seed": 1,
            "fleet": [{"name": "h100", "gpu": "h100-sxm", "replicas": 64, "model": "llama-3.1-8b",
                       "engine": {"max_model_len": 16384}}],
            "router": {"name": "least-outstanding"},
            "traffic": {"duration_s": requests / RATE_RPS, "warmup_s": 0.0,
                        "arrival": {"process": "poisson", "rate_rps": RATE_RPS}, "classes": CLASSES},
            "sim": {"drain_s": 120}}


def soak(requests: int, work: Path) -> dict:
    path = work / f"soak-{requests}.yaml"
    path.write_text(yaml.safe_dump(scenario_doc(requests), sort_keys=False))
    cli = [str(Path(sys.executable).with_name("fleetcast")), "run", str(path), "--out", str(work / f"out-{requests}")]
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cli], capture_output=True, text=True, check=True)
    rc, wall_s, peak_mb = out.stdout.split()
    simulated = len(__import__("pandas").read_parquet(work / f"out-{requests}" / "requests.parquet",
                                                      columns=["request_id"]))
    return {"requests": simulated, "exit_status": int(rc), "wall_s": float(wall_s), "peak_rss_mb": float(peak_mb),
            "bytes_per_request": float(peak_mb) * 2**20 / simulated, "under_2gb": float(peak_mb) < LIMIT_MB}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="fleetcast-soak-") as tmp:
        for n in args.requests:
            print(f"running {n:,} requests ...", flush=True)
            rows.append(soak(n, Path(tmp)))
    print(f"\n{'requests':>12} {'exit':>4} {'wall s':>8} {'peak MB':>8} {'B/request':>9} {'< 2 GB':>6}")
    for r in rows:
        print(f"{r['requests']:>12,} {r['exit_status']:>4} {r['wall_s']:>8.1f} {r['peak_rss_mb']:>8.0f} "
              f"{r['bytes_per_request']:>9.0f} {'yes' if r['under_2gb'] else 'NO':>6}")
    doc = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": rows,
           "parent_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
