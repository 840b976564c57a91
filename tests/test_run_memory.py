"""A run's peak memory grows by under 200 bytes per request (issue: 10 million requests
in under 2 GB), measured on the real command line: the peak resident memory of
`fleetcast run` at two sizes, in fresh processes, and the slope between them.

Measured on this test's scenario: 140 B per request (286 MB at 200k, 366 MB at 800k); the
code before the change (lists, a copy of the frame per window, class and status, the whole
table converted to Arrow at once) grew 396 B per request (342 and 569 MB). Where the bytes
go: docs/design.md, section 7, "Memory"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FLEETCAST = str(Path(sys.executable).with_name("fleetcast"))
MAX_BYTES_PER_REQUEST = 200

_MEASURE = r"""
import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def _peak_bytes(tmp_path: Path, requests: int) -> int:
    """Peak RSS of `fleetcast run` on ``requests`` requests. Prefix caching is off: the
    prefix cache's index grows with the requests until it holds every block of every
    replica (a bound, ~100 bytes per KV block), which would blur the per-request slope
    at these sizes."""
    rate = 200.0
    doc = {"name": f"mem-{requests}", "seed": 3,
           "fleet": [{"name": "h100", "gpu": "h100-sxm", "replicas": 16, "model": "llama-3.1-8b",
                      "engine": {"max_model_len": 8192, "enable_prefix_caching": False}}],
           "traffic": {"duration_s": requests / rate, "warmup_s": 0.0,
                       "arrival": {"process": "poisson", "rate_rps": rate},
                       "classes": [{"name": "chat", "share": 0.7,
                                    "prompt_tokens": {"dist": "lognormal", "mean": 600, "cv": 1.0, "max": 4000},
                                    "output_tokens": {"dist": "lognormal", "mean": 120, "cv": 0.9, "max": 1000},
                                    "prefix": {"tokens": 200, "num_distinct": 8}},
                                   {"name": "code", "share": 0.3,
                                    "prompt_tokens": {"dist": "uniform", "min": 100, "max": 2000},
                                    "output_tokens": {"dist": "uniform", "min": 10, "max": 200}}]},
           "sim": {"drain_s": 60}}
    path = tmp_path / f"mem-{requests}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    cmd = [sys.executable, "-c", _MEASURE, FLEETCAST, "run", str(path), "--out", str(tmp_path / f"out-{requests}")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT, timeout=600)
    rc, peak = out.stdout.split()
    assert rc == "0", f"fleetcast run exited {rc}"
    return int(peak)


@pytest.mark.slow
def test_run_memory_per_request_stays_small(tmp_path):
    small, large = 200_000, 800_000
    lo, hi = _peak_bytes(tmp_path, small), _peak_bytes(tmp_path, large)
    per_request = (hi - lo) / (large - small)
    print(f"{lo / 2**20:.0f} MB at {small:,}, {hi / 2**20:.0f} MB at {large:,}: {per_request:.0f} B per request")
    assert per_request < MAX_BYTES_PER_REQUEST, (
        f"peak memory grows {per_request:.0f} B per request ({lo / 2**20:.0f} MB at {small:,}, {hi / 2**20:.0f} MB "
        f"at {large:,}); 10 million requests would need {per_request * 1e7 / 2**30:.2f} GiB more")
