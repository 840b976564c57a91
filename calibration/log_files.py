"""Which files are run logs: names only (standard library), so ``fleetcast validate`` and
``calibrate`` refuse a path that is no run before they import pandas and the readers
(``calibration.logs``; issue 26: a refusal costs under 0.5 s of CPU)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["is_log_file", "LOG_SUFFIXES", "REQUEST_LOG_SUFFIXES", "SIDECAR_SUFFIXES"]

REQUEST_LOG_SUFFIXES = (".jsonl", ".csv")
LOG_SUFFIXES = (".json",) + REQUEST_LOG_SUFFIXES
SIDECAR_SUFFIXES = (".fleetcast.yaml", ".fleetcast.yml", ".fleetcast.json")
_NOT_LOGS = (".pytorch.json",)  # the PyTorch-benchmark copy bench serve writes beside its result


def is_log_file(path: Path) -> bool:
    """A file fleetcast reads as a run log (not a sidecar, not a profile)."""
    p = Path(path)
    name = p.name.lower()
    return (
        p.is_file()
        and p.suffix.lower() in LOG_SUFFIXES
        and not name.endswith(SIDECAR_SUFFIXES)
        and not name.endswith(_NOT_LOGS)
        and name != "run.json"
    )
