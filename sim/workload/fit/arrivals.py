"""The arrival model, chosen by the counts' dispersion and autocorrelation.

Counts of arrivals in windows of ``w`` seconds: a Poisson process has index
of dispersion ``D(w) = var/mean = 1`` at every ``w`` and uncorrelated counts; a
renewal process with gap coefficient of variation ``cv`` has ``D(w) -> cv**2``
and (nearly) uncorrelated counts; a Markov-modulated process has ``D(w)``
growing with ``w`` and positively correlated counts. A log that covers a day
or more and whose hour-of-day rates differ beyond Poisson noise gets a daily
rate curve (``process: diurnal``). Otherwise, when successive gaps are independent
(their lag-1 rank autocorrelation inside ``+-1.96/sqrt(n)``) the process is a
renewal one: gamma with the gaps' cv; when they are not, two rate regimes
(``sim.workload.fit.mmpp``) if the log switches between them often enough.

The rate's 95% interval is ``(n +- 1.96 sqrt(n max(1, D, cv**2))) / span``. Every
statistic comes with its 95% interval under the Poisson hypothesis (``D``:
``1 +- 1.96 sqrt(2/(k-1))``; lag-1 autocorrelation: ``+-1.96/sqrt(k)``, ``k``
windows), and every fitted parameter with its 95% confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.workload.fit.mmpp import LR_CRITICAL, MIN_SWITCHES, MmppFit, fit_mmpp2

__all__ = ["ArrivalFit", "fit_arrivals", "dispersion_curve"]

_Z = 1.959963984540054  # two-sided 95%
_MIN_WINDOWS = 10


@dataclass
class ArrivalFit:
    """The chosen process and its evidence."""

    process: str  # poisson | gamma | mmpp | diurnal
    rate_rps: float
    rate_ci: tuple[float, float]
    cv: float  # inter-arrival gaps' coefficient of variation
    cv_ci: tuple[float, float]
    window_s: float
    dispersion: float  # D at window_s
    dispersion_band: tuple[float, float]  # Poisson's 95% band of D
    lag1: float  # lag-1 autocorrelation of the counts
    lag1_band: float  # Poisson's 95% half-width
    gap_lag1: float = 0.0  # lag-1 rank autocorrelation of the gaps (0 for any renewal process)
    gap_lag1_band: float = 0.0  # its 95% half-width under independence
    hourly_rps: list[float] = field(default_factory=list)  # diurnal: mean rate per hour of day (24)
    hour_chi2: float = math.nan  # chi-square of hour-of-day counts against a flat rate
    hour_df: int = 0
    weekday_ratio: float = math.nan  # busiest / quietest day-of-week mean rate (>= 14 days of log)
    mmpp: MmppFit | None = None  # two regimes, when the counts are autocorrelated
    notes: list[str] = field(default_factory=list)  # the choices, as sentences (the YAML comments)


def _counts(t: np.ndarray, span_s: float, w: float) -> np.ndarray:
    k = max(int(span_s // w), 1)
    return np.bincount(np.minimum((t // w).astype(np.int64), k - 1), minlength=k)[:k]


def dispersion_curve(t: np.ndarray, span_s: float, base_s: float) -> list[tuple[float, float]]:
    """(window s, D(window)) for windows base_s * 2**j while at least ``_MIN_WINDOWS`` fit."""
    out, w = [], base_s
    while span_s / w >= _MIN_WINDOWS:
        c = _counts(t, span_s, w)
        out.append((w, float(c.var(ddof=1) / max(c.mean(), 1e-12))))
        w *= 2
    return out


def _base_window(rate: float, span_s: float) -> float:
    """A window of ~10 expected arrivals, on a 1-2-5 grid, leaving at least 30 windows if it can."""
    target = min(max(10.0 / rate, 1.0), span_s / 30.0) if span_s / 30.0 >= 1.0 else span_s / _MIN_WINDOWS
    grid = [m * 10.0**e for e in range(-1, 6) for m in (1, 2, 5)]
    fits = [g for g in grid if g <= target]
    return fits[-1] if fits else target


def _cv_ci(gaps: np.ndarray) -> tuple[float, float]:
    """95% interval of the gaps' coefficient of variation ``c``, by the delta method:
    ``Var(c_hat) ~ (c**4 - c**3 * skew + c**2 * (kurt - 1) / 4) / n`` (sample skewness and
    kurtosis; an exponential sample's is ``1/n``)."""
    mean = gaps.mean()
    d = gaps - mean
    var = float((d * d).mean())
    c = math.sqrt(var) / mean
    skew = float((d**3).mean()) / var**1.5
    kurt = float((d**4).mean()) / var**2
    half = _Z * math.sqrt(max(c**4 - c**3 * skew + c * c * (kurt - 1.0) / 4.0, 0.0) / gaps.size)
    return c - half, c + half


def _hourly(t: np.ndarray, span_s: float, start_epoch_s: float) -> tuple[list[float], float, int]:
    """Mean rate by hour of day (UTC) and the chi-square of the hour-of-day counts against
    rates proportional to each hour's observed exposure."""
    hour = ((start_epoch_s + t) // 3600 % 24).astype(np.int64)
    counts = np.bincount(hour, minlength=24).astype(float)
    # exposure: seconds of the log in each hour of day
    a0, a1 = start_epoch_s, start_epoch_s + span_s
    hs = np.arange(math.floor(a0 / 3600), math.ceil(a1 / 3600))
    overlap = np.minimum((hs + 1) * 3600.0, a1) - np.maximum(hs * 3600.0, a0)
    exposure = np.bincount(hs % 24, weights=np.maximum(overlap, 0.0), minlength=24)
    rates = np.where(exposure > 0, counts / np.maximum(exposure, 1e-9), 0.0)
    seen = exposure > 0
    expected = counts.sum() * exposure[seen] / exposure[seen].sum()
    chi2 = float(((counts[seen] - expected) ** 2 / np.maximum(expected, 1e-9)).sum())
    return [float(r) for r in rates], chi2, int(seen.sum()) - 1


#: Above this fraction of zero gaps the log's timestamps are ticks (a coarse clock or batched
#: sends): the arrivals of a tick are spread evenly over it before the fit.
TIED_FRACTION = 0.5


def spread_ties(t: np.ndarray) -> tuple[np.ndarray, float]:
    """(times with each tick's arrivals spread evenly until the next tick, the tick's median
    length, s); the last tick gets the median length."""
    u, first, counts = np.unique(t, return_index=True, return_counts=True)
    step = np.diff(u)
    tick = float(np.median(step)) if step.size else 1.0
    length = np.append(step, tick)
    j = np.arange(t.size) - np.repeat(first, counts)  # position within its tick (t is sorted)
    return np.repeat(u, counts) + j / np.repeat(counts, counts) * np.repeat(length, counts), tick


#: Most windows the two-regime fit runs on (its forward-backward pass is a Python loop).
MMPP_MAX_WINDOWS = 20_000


def fit_arrivals(arrival_s: np.ndarray, start_epoch_s: float | None, regimes: bool = True) -> ArrivalFit:
    """Fit arrival times (seconds from 0, sorted) of the whole log; ``regimes=False`` skips the
    two-regime fit (a class's own statistics, which are comments only)."""
    t = np.asarray(arrival_s, dtype=float)
    n = t.size
    tied = float((np.diff(t) == 0).mean()) if n > 1 else 0.0
    spread_note = ""
    if tied > TIED_FRACTION:
        t, tick = spread_ties(t)
        spread_note = (
            f"{tied:.0%} of arrivals share their timestamp with the one before (ticks of about {tick:.3g} s: a "
            "coarse clock or batched sends); each tick's arrivals were spread evenly over it before fitting, so "
            "the fitted process has no batches"
        )
    span = float(t[-1] - t[0]) if n > 1 else 0.0
    span = max(span, 1e-9)
    # rate over the log (n events in the span, Poisson interval)
    rate = n / span
    gaps = np.diff(t)
    gaps = gaps[gaps >= 0]
    cv = float(gaps.std() / gaps.mean()) if gaps.size > 1 and gaps.mean() > 0 else 1.0
    cv_ci = _cv_ci(gaps) if gaps.size > 1 and gaps.mean() > 0 else (cv, cv)
    w = _base_window(rate, span)
    c = _counts(t, span, w)
    k = c.size
    d = float(c.var(ddof=1) / max(c.mean(), 1e-12)) if k > 1 else 1.0
    half = _Z * math.sqrt(2.0 / max(k - 1, 1))
    # the count's variance is n times the larger of D and cv**2 (a renewal process's long-run
    # dispersion), not n: a bursty log's rate is known less well than a Poisson one's
    spread = _Z * math.sqrt(n * max(1.0, d, cv * cv))
    rate_ci = (max(n - spread, 0.0) / span, (n + spread) / span)
    cc = c - c.mean()
    lag1 = float((cc[:-1] * cc[1:]).sum() / max((cc * cc).sum(), 1e-12)) if k > 2 else 0.0
    fit = ArrivalFit(
        process="poisson",
        rate_rps=rate,
        rate_ci=rate_ci,
        cv=cv,
        cv_ci=cv_ci,
        window_s=w,
        dispersion=d,
        dispersion_band=(1 - half, 1 + half),
        lag1=lag1,
        lag1_band=_Z / math.sqrt(max(k, 1)),
    )
    stats = (
        f"counts in {k} windows of {w:g} s: dispersion D={d:.2f} (Poisson 95% band {1 - half:.2f}..{1 + half:.2f}), "
        f"lag-1 autocorrelation {lag1:+.2f} (band +-{fit.lag1_band:.2f}); gaps' cv={cv:.2f} "
        f"(95% CI {cv_ci[0]:.2f}..{cv_ci[1]:.2f})"
    )
    if spread_note:
        fit.notes.append(spread_note)
    fit.notes.append(stats)
    if start_epoch_s is not None and span >= 86400.0:
        fit.hourly_rps, raw_chi2, fit.hour_df = _hourly(t, span, start_epoch_s)
        # a bursty log's hourly counts vary more than Poisson's by at least D at the short window
        fit.hour_chi2 = raw_chi2 / max(1.0, d)
        crit = fit.hour_df + _Z * math.sqrt(2.0 * fit.hour_df)  # chi-square 97.5% point, normal approximation
        if fit.hour_chi2 <= crit:
            fit.notes.append(
                f"hour-of-day rates within the noise of a flat rate (chi-square / max(1, D) {fit.hour_chi2:,.1f} on "
                f"{fit.hour_df} df, 97.5% point {crit:.0f}): no daily curve"
            )
        else:
            fit.process = "diurnal"
            fit.notes.append(
                f"hour-of-day rates differ beyond the noise (chi-square / max(1, D) {fit.hour_chi2:,.0f} on {fit.hour_df} df, "
                f"97.5% point {crit:.0f}): diurnal rate curve by hour (UTC), non-homogeneous Poisson within it"
            )
        if span >= 14 * 86400.0:
            day = ((start_epoch_s + t) // 86400 + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
            days = np.bincount(day.astype(np.int64), minlength=7) / (span / 86400.0 / 7.0)
            fit.weekday_ratio = float(days.max() / max(days.min(), 1e-9))
            fit.notes.append(
                f"busiest day of week / quietest: {fit.weekday_ratio:.2f}x; the generator's daily curve has no "
                "day-of-week profile, so the curve is the week's average day"
            )
        if fit.process == "diurnal":
            return fit
    elif start_epoch_s is None or span < 86400.0:
        fit.notes.append(f"the log covers {span / 3600:.1f} h (< 1 day): no hour-of-day profile is fitted")
    if gaps.size > 3:
        ranks = np.argsort(np.argsort(gaps, kind="stable"), kind="stable").astype(float)
        ranks -= ranks.mean()
        fit.gap_lag1 = float((ranks[:-1] * ranks[1:]).sum() / max((ranks * ranks).sum(), 1e-12))
        fit.gap_lag1_band = _Z / math.sqrt(gaps.size)
        fit.notes.append(
            f"successive gaps' rank autocorrelation {fit.gap_lag1:+.3f} (independence band +-{fit.gap_lag1_band:.3f})"
        )
    poisson_d = fit.dispersion_band[0] <= d <= fit.dispersion_band[1]
    poisson_r = abs(lag1) <= fit.lag1_band
    if poisson_d and poisson_r:
        fit.notes.append("D and the autocorrelation are inside Poisson's bands: poisson")
        return fit
    fit.process = "gamma"
    if poisson_r or abs(fit.gap_lag1) <= fit.gap_lag1_band:
        fit.notes.append(
            "D or the counts' autocorrelation outside Poisson's band, successive gaps independent (a renewal "
            f"process): gamma renewal with the gaps' cv={cv:.2f}"
        )
        return fit
    if regimes:
        wh = max(span / MMPP_MAX_WINDOWS, w / 4.0)
        m = fit_mmpp2(_counts(t, span, wh), wh)
        fit.mmpp = m
        apart = m.rates_ci[0][1] < m.rates_ci[1][0]
        stats = (
            f"two regimes on {wh:.3g} s windows: {m.rates_rps[0]:.4g} req/s (95% CI {m.rates_ci[0][0]:.4g}.."
            f"{m.rates_ci[0][1]:.4g}) held {m.mean_sojourn_s[0]:.3g} s (95% CI {m.sojourn_ci[0][0]:.3g}.."
            f"{m.sojourn_ci[0][1]:.3g}) and {m.rates_rps[1]:.4g} req/s ({m.rates_ci[1][0]:.4g}..{m.rates_ci[1][1]:.4g}) "
            f"held {m.mean_sojourn_s[1]:.3g} s ({m.sojourn_ci[1][0]:.3g}..{m.sojourn_ci[1][1]:.3g}); likelihood ratio "
            f"over one rate {m.lr:.1f} (chi-square(3) 95% point {LR_CRITICAL}); "
            f"{min(m.switches):.1f} switches out of the rarer regime (at least {MIN_SWITCHES} needed)"
        )
        if m.lr > LR_CRITICAL and apart and min(m.switches) >= MIN_SWITCHES:
            fit.process = "mmpp"
            fit.notes.append(f"counts are autocorrelated (rate regimes): {stats}: mmpp")
            return fit
        fit.notes.append(f"counts are autocorrelated, but {stats}: not two distinct regimes")
    fit.notes.append(f"gamma renewal with the gaps' cv={cv:.2f}")
    return fit
