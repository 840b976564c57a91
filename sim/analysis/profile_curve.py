"""The demand curve of rate-profiled traffic (``arrival.profile``), as the planner sees it.

``fleetcast traffic fit`` writes processes whose rate follows a repeating piecewise-constant
curve (``profile: {bin_s, factors, start_s}``, factors rescaled to mean 1, so ``rate_rps`` is
the long-run mean), either one process for the whole traffic or one per class
(``arrival: {process: by_class}``). The planner sizes a fleet for the peak, so it needs

- the *combined* rate over the run's time axis: sum over the processes of
  ``rate_rps x factor(t)`` (a process without a profile contributes its constant rate), so
  classes peaking at different bins do not add their peaks;
- its peak (the planned rate of the scenario's own traffic) and where it falls;
- the traffic rescaled to a peak rate, every process by the same ratio (the shape kept).

A batch process (``arrival.batch``) keeps ``rate_rps`` in requests/s (its events come at
``rate_rps / mean batch size``), so its request rate is ``rate_rps`` here as everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.errors import FleetcastError
from sim.workload.spec import RateProfile

__all__ = ["ProfileCurve", "profile_curve", "profiled_arrivals", "peak_window_center_s"]

_GRID_PER_BIN = 120  # curve samples per (shortest) bin when searching the peak window
_MAX_GRID = 4_000_000


def profiled_arrivals(traffic: dict) -> list[tuple[str, dict]]:
    """(field path, arrival mapping) of each process with its own rate of ``traffic`` (the
    scenario mapping's ``traffic:``): the one arrival, or every class's for ``by_class``."""
    a = traffic["arrival"]
    if a.get("process") == "by_class":
        return [(f"traffic.classes[{i}].arrival", c["arrival"]) for i, c in enumerate(traffic["classes"])]
    return [("traffic.arrival", a)]


def _rates(traffic: dict) -> list[float]:
    """Each process's mean request rate, requests/s."""
    a = traffic["arrival"]
    if a.get("process") == "by_class":
        return [float(c["arrival"]["rate_rps"]) for c in traffic["classes"]]
    if a.get("rate_rps") is not None:
        return [float(a["rate_rps"])]
    return [float(sum(c["rate_rps"] for c in traffic["classes"]))]


@dataclass
class ProfileCurve:
    """The combined rate of profiled traffic on the run's time axis, scaled to peak 1."""

    rates_rps: list[float]  # each process's mean rate at the scenario's own traffic
    profiles: list[RateProfile | None]
    period_s: float  # the curve repeats after this (the longest profile period)
    bin_s: float  # the shortest profile bin: the base length of the peak window
    peak_rps: float  # the combined rate's highest value at the scenario's own rates

    def absolute_at(self, t_s) -> np.ndarray:
        """The combined rate (requests/s at the scenario's own rates) at run times ``t_s``."""
        t = np.asarray(t_s, dtype=float)
        out = np.zeros_like(t)
        for r, p in zip(self.rates_rps, self.profiles):
            out = out + (r * p.factor_at(t) if p is not None else r)
        return out

    def rate_at(self, t_s) -> np.ndarray:
        """The combined rate scaled to peak 1 at run times ``t_s``."""
        return self.absolute_at(t_s) / self.peak_rps

    def edges_s(self, start_s: float, end_s: float) -> np.ndarray:
        """Every time in [start, end) where some profile changes bin (the curve is constant between)."""
        out = [np.array([start_s])]
        for p in self.profiles:
            if p is None:
                continue
            k0 = math.ceil((start_s + p.start_s) / p.bin_s)
            k1 = math.ceil((end_s + p.start_s) / p.bin_s)
            out.append(np.arange(k0, k1, dtype=float) * p.bin_s - p.start_s)
        e = np.unique(np.concatenate(out))
        return e[(e >= start_s) & (e < end_s)]

    def mean_over(self, start_s: float, length_s: float) -> float:
        """Exact mean of the unit-peak curve over [start, start + length) (piecewise constant)."""
        if length_s <= 0:
            return float(self.rate_at(np.array([start_s]))[0])
        edges = self.edges_s(start_s, start_s + length_s)
        widths = np.diff(np.r_[edges, start_s + length_s])
        return float((self.rate_at(edges) * widths).sum() / length_s)

    def mean_over_period(self) -> float:
        """Mean of the unit-peak curve over a period (exact: its mean rate over its peak)."""
        return float(sum(self.rates_rps)) / self.peak_rps


def profile_curve(traffic: dict, where: str = "<scenario>") -> ProfileCurve | None:
    """The combined curve of ``traffic`` (the scenario mapping's ``traffic:``; ``where`` names
    its file in errors), or None when no process has a profile (constant-rate traffic: plan's
    stationary rule, unchanged)."""
    procs = profiled_arrivals(traffic)
    if traffic["arrival"].get("process") not in ("poisson", "gamma", "constant", "mmpp", "by_class"):
        return None
    if not any(arr.get("profile") for _, arr in procs):
        return None
    profiles = [RateProfile.model_validate(arr["profile"]) if arr.get("profile") else None for _, arr in procs]
    periods = [(f, p.period_s) for (f, _), p in zip(procs, profiles) if p is not None]
    period = max(s for _, s in periods)
    for field, s in periods:
        k = period / s
        if abs(k - round(k)) > 1e-9 * k:
            raise FleetcastError(
                f"{where}, field {field}.profile: its period (bin_s x len(factors) = {s:g} s) does not divide the longest "
                f"profile period of the traffic ({period:g} s), so the combined rate does not repeat and "
                "plan cannot place its peak window; give the classes' profiles periods that divide the longest "
                "(e.g. hour of day, 86400 s, with hour of week, 604800 s)"
            )
    bin_s = min(p.bin_s for p in profiles if p is not None)
    curve = ProfileCurve(_rates(traffic), profiles, period, bin_s, 1.0)
    edges = curve.edges_s(0.0, period)
    curve.peak_rps = float(curve.absolute_at(edges).max())
    return curve


def peak_window_center_s(curve: ProfileCurve) -> tuple[float, float]:
    """(centre of the ``bin_s``-long window of highest mean rate, start of the highest rate) on
    the run's axis, within one period. Circular moving mean on a grid of ``bin_s / 120`` steps
    (exact when every bin edge falls on the grid, as for one profile or profiles with the same
    bin and start); the first such window on a tie."""
    n_bin = _GRID_PER_BIN
    n = int(min(_MAX_GRID, math.ceil(curve.period_s / curve.bin_s * n_bin - 1e-9)))
    step = curve.period_s / n
    w = max(1, int(round(curve.bin_s / step)))
    t = (np.arange(n) + 0.5) * step
    rate = curve.rate_at(t)
    moving = np.convolve(np.r_[rate, rate[: w - 1]], np.ones(w) / w, "valid")[:n]
    j = int(np.argmax(moving))
    center = (j * step + w * step / 2.0) % curve.period_s
    edges = curve.edges_s(0.0, curve.period_s)
    peak_s = float(edges[int(np.argmax(curve.rate_at(edges)))])
    return center, peak_s
