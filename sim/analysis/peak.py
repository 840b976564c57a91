"""Where on the demand curve a plan point is measured, and for how long.

The plan sizes a fleet for the *binding* part of the demand:

- ``stationary``: a constant-rate process (poisson, gamma, constant; a
  trace replayed from its start): any window will do.
- ``surge-plateau``: surge events multiply the rate; the binding part is
  the highest multiplier over time (overlapping surges add up), simulated
  as steady traffic at that rate (never milder than the real, shorter
  surge). A diurnal curve under surges: its highest rate times the
  multiplier at that moment.
- ``peak-hour``: a diurnal curve; the window is the scenario-hour
  (``day_length_s / 24``) of highest mean rate, widened symmetrically
  around its centre (``peak-window``) when the classes need more samples
  than that hour holds, and the whole cycle (``whole-cycle``, as many
  cycles as the samples need) once the widened window reaches a day.
  Warm-up precedes the window on the curve itself.
- ``peak-bin``: rate-profiled traffic (``arrival.profile``, one process or
  the classes' own under ``by_class``, as ``fleetcast traffic fit`` writes
  it): the combined rate is piecewise constant; the window is the
  shortest profile bin's length placed where the combined rate's mean is
  highest (the peak bin), widened like the peak hour (``peak-window``,
  ``whole-cycle`` over the profile's period). Under surges: the highest
  combined rate times the multiplier at that moment (``surge-plateau``).
- ``user``: ``plan.window_start_s`` places the window; a warning when it
  misses the peak.

The window length, unless ``plan.duration_s`` fixes it, is the shortest
that gives every class with an SLO its samples (``class_needs``): ``L =
max_c samples_c / (rate over the window x share_c)``, so it scales with
1/rate and every search point holds about the same number of requests.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.analysis.profile_curve import ProfileCurve, peak_window_center_s, profile_curve, profiled_arrivals
from sim.analysis.replications import ClassNeed
from sim.errors import FleetcastError
from sim.workload.spec import DiurnalArrival, RateProfile

__all__ = ["PlanWindow", "plan_window", "apply_window", "curve_rate_at", "window_warnings", "WINDOW_KINDS"]

WINDOW_KINDS = ("stationary", "surge-plateau", "peak-hour", "peak-bin", "peak-window", "whole-cycle", "user")
_GRID = 2880  # curve samples per day (30 s of a real day)


@dataclass
class PlanWindow:
    """The rate-independent description of where each point is measured."""

    kind: str  # WINDOW_KINDS (the length-dependent ones are settled per rate)
    diurnal: DiurnalArrival | None  # the curve, scaled to peak 1 (None: not diurnal)
    multiplier: float  # surge multiplier applied to the planned rate (plateau)
    center_s: float | None  # diurnal: centre of the peak hour, seconds of the scenario's time axis
    peak_s: float | None  # time of the highest rate on the scenario's axis
    warmup_s: float
    cooldown_s: float
    user_start_s: float | None
    fixed_window_s: float | None  # from plan.duration_s
    needs: list[ClassNeed]
    notes: list[str] = field(default_factory=list)
    profile: ProfileCurve | None = (
        None  # rate-profiled traffic's combined curve (peak 1); set with peak-bin and a profiled surge-plateau
    )

    @property
    def on_curve(self) -> bool:
        """Whether the window sits on a demand curve (diurnal or profile), not at a steady rate."""
        return self.kind not in ("stationary", "surge-plateau")

    def period_s(self) -> float:
        """The curve's period: the diurnal day or the profile's period."""
        return self.diurnal.day_length_s if self.diurnal is not None else self.profile.period_s  # type: ignore[union-attr]  # on a curve

    def _base_s(self) -> float:
        """The window's base length: the scenario-hour of a diurnal day, a profile's shortest bin."""
        return self.diurnal.day_length_s / 24.0 if self.diurnal is not None else self.profile.bin_s  # type: ignore[union-attr]  # on a curve

    def length_s(self, rate_rps: float) -> tuple[float, float, str]:
        """(window length s, mean rate over it, kind) at planned rate ``rate_rps``."""
        if not self.on_curve:
            r = rate_rps * self.multiplier
            need = self.fixed_window_s or _needed_s(self.needs, r)
            return need, r, self.kind
        day = self.period_s()
        if self.user_start_s is not None:
            length = self.fixed_window_s or _needed_s(
                self.needs, rate_rps * self._mean(self.user_start_s, day / 24 if self.diurnal else self._base_s())
            )
            return length, rate_rps * self._mean(self.user_start_s, length), "user"
        hour = self._base_s()
        length = max(hour, self.fixed_window_s or 0.0)
        for _ in range(60):  # widen until the window holds the samples (the mean falls as it widens)
            mean = rate_rps * self._mean(self.center_s - length / 2, length)  # type: ignore[operator]  # center_s is set with diurnal
            need = self.fixed_window_s or _needed_s(self.needs, mean)
            if need <= length * (1 + 1e-9) or length >= day:
                break
            length = min(max(need, length * 1.02), day)
        if length >= day * (1 - 1e-9) and not self.fixed_window_s:
            mean = rate_rps * self._mean(0.0, day)
            cycles = max(1, math.ceil(_needed_s(self.needs, mean) / day - 1e-9))
            return cycles * day, mean, "whole-cycle"
        if self.fixed_window_s:
            length = self.fixed_window_s
            mean = rate_rps * self._mean(self.center_s - length / 2, length)  # type: ignore[operator]  # as above
        first = "peak-hour" if self.diurnal is not None else "peak-bin"
        kind = first if length <= hour * (1 + 1e-9) else ("whole-cycle" if length >= day else "peak-window")
        return length, mean, kind

    def start_s(self, length_s: float) -> float:
        """Start of the measured window on the scenario's time axis."""
        if self.user_start_s is not None:
            return self.user_start_s
        if not self.on_curve or self.center_s is None:
            return self.warmup_s
        if length_s >= self.period_s():
            return 0.0
        return self.center_s - length_s / 2

    def _mean(self, start_s: float, length_s: float) -> float:
        """Mean of the unit-peak curve over [start, start + length) of the scenario's axis."""
        t = start_s + (np.arange(512) + 0.5) * length_s / 512
        if self.diurnal is None:
            return self.profile.mean_over(start_s, length_s)  # type: ignore[union-attr]  # _mean is used only on a curve
        return float(curve_rate_at(self.diurnal, t).mean())


def _needed_s(needs: list[ClassNeed], rate_rps: float) -> float:
    if not needs or rate_rps <= 0:
        return 0.0
    return max(n.samples / (rate_rps * n.share) for n in needs)


def curve_rate_at(curve: DiurnalArrival, t_s) -> np.ndarray:
    """Rate of ``curve`` at times of the scenario's axis (its start_hour at 0)."""
    return curve.rate_at(t_s)


def _surge_multiplier(events: list[dict], t_s: np.ndarray) -> np.ndarray:
    m = np.ones_like(t_s, dtype=float)
    for ev in events:
        if ev.get("kind") == "surge":
            m += np.where((t_s >= ev["start_s"]) & (t_s < ev["end_s"]), ev["factor"] - 1.0, 0.0)
    return m


def plan_window(
    data: dict,
    needs: list[ClassNeed],
    *,
    duration_s: float | None,
    window_start_s: float | None,
    where: str = "<scenario>",
) -> PlanWindow:
    """The window rule for the scenario mapping ``data`` (its traffic and events; ``where``
    names its file in errors)."""
    tr = data["traffic"]
    a = tr["arrival"]
    warm, cool = float(tr.get("warmup_s") or 0.0), float(tr.get("cooldown_s") or 0.0)
    fixed = None
    if duration_s is not None:
        fixed = duration_s - warm - cool
        if fixed <= 0:
            raise FleetcastError(
                f"plan.duration_s ({duration_s:g} s) leaves no window after traffic.warmup_s "
                f"({warm:g} s) and cooldown_s ({cool:g} s); give more than {warm + cool:g} s"
            )
    surges = [ev for ev in data.get("events") or [] if ev.get("kind") == "surge"]
    common: dict[str, Any] = dict(
        warmup_s=warm, cooldown_s=cool, user_start_s=window_start_s, fixed_window_s=fixed, needs=needs
    )
    if a["process"] == "diurnal":
        curve = DiurnalArrival.model_validate(a)
        peak = max(r for _, r in curve.rate_points)
        unit = DiurnalArrival.model_validate({**a, "rate_points": [[h, r / peak] for h, r in curve.rate_points]})
        day = unit.day_length_s
        t = (np.arange(_GRID) + 0.5) * day / _GRID
        rate = curve_rate_at(unit, t)
        if surges:
            m = _surge_multiplier(surges, t)
            i = int(np.argmax(rate * m))
            return PlanWindow(
                "surge-plateau", None, float(rate[i] * m[i]), None, float(t[i]), **{**common, "user_start_s": None}
            )
        per_hour = _GRID // 24
        hourly = np.convolve(np.r_[rate, rate[:per_hour]], np.ones(per_hour) / per_hour, "valid")[:_GRID]
        j = int(np.argmax(hourly))  # the hour starting at t[j] - half a grid step
        center = (j * day / _GRID + day / 48.0) % day
        top_h = next(h for h, r in curve.rate_points if r == peak)  # a piecewise-linear curve peaks at a point
        peak_s = ((top_h - curve.start_hour) % 24.0) * day / 24.0
        return PlanWindow("peak-hour", unit, 1.0, center, peak_s, **common)
    prof = profile_curve(tr, where)
    if prof is not None:
        if surges:
            t_s, m = _profile_surge_points(prof, surges)
            i = int(np.argmax(prof.rate_at(t_s) * m))
            top = float(prof.rate_at(t_s[i : i + 1])[0] * m[i])
            return PlanWindow(
                "surge-plateau", None, top, None, float(t_s[i]), **{**common, "user_start_s": None}, profile=prof
            )
        center, peak_s = peak_window_center_s(prof)
        return PlanWindow("peak-bin", None, 1.0, center, peak_s, **common, profile=prof)
    if surges:
        ends = sorted({0.0} | {float(ev["start_s"]) for ev in surges})
        mult = _surge_multiplier(surges, np.array(ends))
        i = int(np.argmax(mult))
        return PlanWindow("surge-plateau", None, float(mult[i]), None, ends[i], **{**common, "user_start_s": None})
    return PlanWindow("stationary", None, 1.0, None, None, **{**common, "user_start_s": None})


def _profile_surge_points(curve: ProfileCurve, surges: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Every time where the profiled rate or the surge multiplier changes (both are piecewise
    constant and right-continuous, so the highest product is at one of them), with the
    multiplier there; within each stretch of constant multiplier, one profile period at most."""
    cuts = sorted({0.0} | {float(ev["start_s"]) for ev in surges} | {float(ev["end_s"]) for ev in surges})
    ts = []
    for k, s0 in enumerate(cuts):
        s1 = cuts[k + 1] if k + 1 < len(cuts) else s0 + curve.period_s
        ts.append(curve.edges_s(s0, min(s1, s0 + curve.period_s)))
    t = np.unique(np.concatenate(ts))
    return t, _surge_multiplier(surges, t)


def _shift_profiles(tr: dict, sim_start_s: float) -> None:
    """Move every profile of ``tr`` so that run time 0 is ``sim_start_s`` of its former axis."""
    for _, arr in profiled_arrivals(tr):
        p = arr.get("profile")
        if p:
            period = float(p["bin_s"]) * len(p["factors"])
            start = float(round((float(p.get("start_s") or 0.0) + sim_start_s) % period, 9)) % period
            p["start_s"] = start if start < period else 0.0


def _flatten_profiles(tr: dict, win: PlanWindow) -> None:
    """Surge plateau of profiled traffic: each process at its rate at the plateau's moment times
    the surge multiplier there, without its profile (steady load, like a diurnal plateau)."""
    curve = win.profile
    assert curve is not None and win.peak_s is not None  # set with a profiled surge-plateau
    t = np.array([win.peak_s])
    m = win.multiplier / float(curve.rate_at(t)[0])
    for _, arr in profiled_arrivals(tr):
        p = arr.get("profile")
        f = float(RateProfile.model_validate(p).factor_at(t)[0]) if p else 1.0
        arr["profile"] = None
        if arr.get("rate_rps") is not None:
            arr["rate_rps"] = arr["rate_rps"] * f * m
        else:  # the classes' rates give the process's
            for c in tr["classes"]:
                c["rate_rps"] *= f * m


def apply_window(data: dict, win: PlanWindow, rate_rps: float) -> tuple[dict, dict]:
    """``data`` (traffic already scaled to ``rate_rps``) set up to measure
    the window; returns (data, window description for plan.json)."""
    data = copy.deepcopy(data)
    tr = data["traffic"]
    length, mean, kind = win.length_s(rate_rps)
    length = float(round(length, 6))
    if data.get("events"):  # surges are folded into the rate; failures are plan.failures' job
        data["events"] = []
    a = tr["arrival"]
    if win.kind == "surge-plateau":
        target = rate_rps * win.multiplier
        if a["process"] == "diurnal":
            tr["arrival"] = {"process": "poisson", "rate_rps": target}
        elif win.profile is not None:
            _flatten_profiles(tr, win)
        elif all(c.get("rate_rps") is not None for c in tr["classes"]):
            for c in tr["classes"]:
                c["rate_rps"] *= win.multiplier
        else:
            a["rate_rps"] = target
    start = win.start_s(length)
    if win.diurnal is not None:
        day = win.diurnal.day_length_s
        sim_start = start - win.warmup_s
        a["start_hour"] = float(round((win.diurnal.start_hour + 24.0 * sim_start / day) % 24.0, 9)) % 24.0
    elif win.profile is not None and win.on_curve:
        _shift_profiles(tr, start - win.warmup_s)
    tr["duration_s"] = win.warmup_s + length + win.cooldown_s
    desc = {
        "kind": kind,
        "window_s": length,
        "start_s": start,
        "mean_rate_rps": mean,
        "peak_rate_rps": rate_rps * (win.multiplier if win.kind == "surge-plateau" else 1.0),
        "warmup_s": win.warmup_s,
        "cooldown_s": win.cooldown_s,
    }
    return data, desc


def window_warnings(win: PlanWindow, desc: dict, given_start: float | None) -> list[str]:
    """What a user-set window gets wrong: a diurnal window that misses the
    peak, or a plan.window_start_s the window rule cannot use."""
    out = []
    if given_start is not None and not win.on_curve:
        out.append(
            f"plan.window_start_s ({given_start:g} s) is ignored: the demand is {win.kind}, "
            "so every window sees the same rate"
            if win.kind == "stationary"
            else f"plan.window_start_s ({given_start:g} s) is ignored: surges are planned at their highest "
            "combined rate (surge-plateau), which no placed window can miss"
        )
    if win.on_curve and win.user_start_s is not None:
        start, length = desc["start_s"], desc["window_s"]
        t = start + (np.arange(512) + 0.5) * length / 512
        if win.diurnal is not None:
            top = float(curve_rate_at(win.diurnal, t).max())
        else:
            edges = win.profile.edges_s(start, start + length)  # type: ignore[union-attr]  # on a curve
            top = float(win.profile.rate_at(edges).max())  # type: ignore[union-attr]  # as above
        if top < 0.95:
            day = win.period_s()
            out.append(
                f"the plan window {start:,.0f}-{start + length:,.0f} s (plan.window_start_s, "
                f"plan.duration_s) misses the peak of the demand curve at {win.peak_s % day:,.0f} s of the "  # type: ignore[operator]  # peak_s is set for a diurnal window
                f"{'day' if win.diurnal is not None else 'profile period'}: its highest rate is {100 * top:.0f}% of the peak and its mean "
                f"{100 * desc['mean_rate_rps'] / max(desc.get('peak_rate_rps') or 1e-300, 1e-300):.0f}%, so the "
                "fleet is sized for less than the peak. Remove plan.window_start_s to plan at the peak hour."
            )
    return out
