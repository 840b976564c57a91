"""The fuzz suite: mutated bundled scenarios through ``fleetcast run`` (tests/fuzz_scenarios.py),
in a child process capped at 6 GiB of address space, with a 30 s limit per case.
Zero tracebacks, zero out-of-memory, zero hangs; every case is either a run or a clean error."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests import fuzz_scenarios

ROOT = Path(__file__).resolve().parents[1]
CASES = 300
MEMORY_CAP_BYTES = 6 * 2**30


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


@pytest.mark.slow
def test_mutated_scenarios_give_runs_or_clean_errors():
    out = subprocess.run([sys.executable, "-m", "tests.fuzz_scenarios", "--seed", "2026", "--cases", str(CASES),
                          "--limit-s", "30"], capture_output=True, text=True, cwd=ROOT, timeout=1500,
                         preexec_fn=_cap_memory)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    counts = result["counts"]
    print(f"\nfuzz: {CASES} cases: {counts}")
    assert sum(counts.values()) == CASES
    assert counts["traceback"] == counts["oom"] == counts["hang"] == 0, json.dumps(result["failures"], indent=1)
    assert counts["clean"] > 0 and counts["ok"] > 0  # the mutations reach both outcomes


@pytest.mark.parametrize("raised, outcome", [(ValueError("bug"), None), (MemoryError(), "oom"),
                                             (fuzz_scenarios.Hang(), "hang")])
def test_the_harness_tells_outcomes_apart(monkeypatch, tmp_path, raised, outcome):
    """A crash is not counted as a clean error: the classifier itself can fail."""
    import sim.cli

    def boom(argv):
        raise raised

    monkeypatch.setattr(sim.cli, "main", boom)
    if outcome is None:
        with pytest.raises(ValueError):
            fuzz_scenarios.run_case(tmp_path / "x.yaml", tmp_path / "out", 5)
    else:
        assert fuzz_scenarios.run_case(tmp_path / "x.yaml", tmp_path / "out", 5) == outcome
    monkeypatch.setattr(sim.cli, "main", lambda argv: 2)
    assert fuzz_scenarios.run_case(tmp_path / "x.yaml", tmp_path / "out", 5) == "clean"
    monkeypatch.setattr(sim.cli, "main", lambda argv: 0)
    assert fuzz_scenarios.run_case(tmp_path / "x.yaml", tmp_path / "out", 5) == "ok"
