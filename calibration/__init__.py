"""Calibration: fit the performance model's coefficients to measurements and
check them on runs they were not fitted to.

- ``calibration.fit``: coefficients from step observations (least squares) and
  from testbed run folders; profile JSON writing.
- ``calibration.runs``: a testbed run folder as (scenario, workload, records).
- ``calibration.validate``: replay runs through the simulator, error tables,
  figures.
- ``calibration.splitwise``: H100/A100 profiles from Splitwise's public
  measurements.
- ``calibration.cli``: ``fleetcast calibrate`` and ``fleetcast validate``.
"""

__all__ = ["fit", "runs", "validate", "splitwise"]
