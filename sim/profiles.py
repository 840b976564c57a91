"""Calibration profiles: the performance-model coefficients a pool runs with.

A profile is a JSON file written by ``fleetcast calibrate``::

    {"name": ..., "coefficients": {"e_compute": ..., "e_memory": ..., ...},
     "provenance": {...}, "validation": {...}, "fitted_range": {...}}

Only ``coefficients`` is needed to simulate; the rest travels into reports.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from sim.errors import FleetcastError
from sim.perf import PerfCoefficients

__all__ = ["load_profile", "coefficients_for"]

_COEFF_NAMES = {f.name for f in fields(PerfCoefficients)} - {"source"}


def load_profile(path: Path) -> dict:
    """Read and check a profile file; returns the parsed JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FleetcastError(f"calibration profile not found: {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise FleetcastError(f"calibration profile {path} is not valid JSON: {exc}") from None
    coeffs = data.get("coefficients") if isinstance(data, dict) else None
    if not isinstance(coeffs, dict):
        raise FleetcastError(f"calibration profile {path}: missing the 'coefficients' mapping")
    unknown = sorted(set(coeffs) - _COEFF_NAMES)
    if unknown:
        raise FleetcastError(
            f"calibration profile {path}: unknown coefficient(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(_COEFF_NAMES))}"
        )
    return data


def coefficients_for(pool, base_dir: Path) -> PerfCoefficients:
    """The pool's coefficients: its profile's, or the built-in defaults."""
    if pool.profile is None:
        return PerfCoefficients()
    path = Path(base_dir) / pool.profile
    data = load_profile(path)
    return PerfCoefficients(**data["coefficients"], source=f"profile {data.get('name', path.stem)} ({path.name})")
