"""The arrival model, chosen by the counts' dispersion and autocorrelation.

Three layers, each kept only on evidence, each written with its statistic:

1. **Batches** (``batch:``): requests with equal timestamps. Without batches,
   ties come only from two arrivals within one tick of the clock (its resolution,
   the smallest positive gap); the gaps' density near 0 (from the gaps under
   1 ms, taken flat) predicts how many. More ties than that beyond ``z = 3.09``
   (one-sided 99.9%), and at least 5% of the gaps: each run of equal timestamps
   is a batch; sizes geometric when a chi-square allows it, else their observed
   frequencies. (Gaps that are small but not zero are the process's own: a
   heavy-tailed gap distribution clumps arrivals without batching them.)
2. **A rate profile** (``profile:``): the rate by hour of week (a log of 14 days
   or more) or by hour of day (1 to 14 days). A shorter log gets the log's own
   rate in bins of whole minutes (the smallest of 1, 2, 5, 10, 15, 30, 60 min with
   at least 100 expected arrivals and at least 10 bins) only when the process
   below finds the rate drifting (counts autocorrelated, gaps dependent, no two
   distinct regimes): a short log cannot tell slow regimes from a curve, so the
   stationary processes are tried first. A profile is kept when the bins'
   counts differ from a flat rate beyond Poisson noise (chi-square divided by
   ``max(1, D, cv**2)`` of the arrivals without a profile, their short window's
   dispersion and their gaps' squared cv (a renewal process's dispersion at long
   windows), beyond its 97.5% point).
3. **The process** in the profile's time (the arrivals time-rescaled by the
   profile, so what is left is stationary): counts of arrivals in windows of ``w``
   seconds: a Poisson process has index of dispersion ``D(w) = var/mean = 1`` at
   every ``w`` and uncorrelated counts; a renewal process with gap coefficient of
   variation ``cv`` has ``D(w) -> cv**2`` and (nearly) uncorrelated counts; a
   Markov-modulated process has ``D(w)`` growing with ``w`` and positively
   correlated counts. When successive gaps are independent (their lag-1 rank
   autocorrelation inside ``+-1.96/sqrt(n)``) the process is a renewal one: gamma
   with the gaps' cv (Poisson when 1 is inside the cv's interval: a profile fitted
   bin by bin leaves the counts slightly under-dispersed); when they are not, two rate regimes (``sim.workload.fit.mmpp``)
   if the log switches between them often enough; else the rate drifts: a log
   shorter than a day gets its own rate curve (2.) and the process is fitted again
   in its time; else (or if still drifting) gamma with the gaps' cv.

The rate's 95% interval is ``(n +- 1.96 sqrt(n max(1, D, cv**2))) / span``. Every
statistic comes with its 95% interval under the Poisson hypothesis (``D``:
``1 +- 1.96 sqrt(2/(k-1))``; lag-1 autocorrelation: ``+-1.96/sqrt(k)``, ``k``
windows), and every fitted parameter with its 95% confidence interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.workload.fit.mmpp import LR_CRITICAL, MAX_REGIMES, MIN_SWITCHES, MmppFit, fit_mmpp, fit_mmpp2

__all__ = ["ArrivalFit", "fit_arrivals", "dispersion_curve", "Z_95"]

Z_95 = 1.959963984540054  # two-sided 95%
_MIN_WINDOWS = 10


@dataclass
class ProfileFit:
    """A rate curve and the evidence for it."""

    kind: str  # hour-of-week | hour-of-day | minutes (the log's own curve)
    bin_s: float
    start_s: float  # where the log's first arrival falls in the period, s
    rates_rps: list[float]  # mean rate in each bin of the period (arrivals / exposure)
    chi2: float  # of the bins' counts against a flat rate, divided by max(1, D)
    df: int
    critical: float  # chi-square 97.5% point
    kept: bool

    @property
    def factors(self) -> np.ndarray:
        r = np.asarray(self.rates_rps, dtype=float)
        return r / r.mean()


@dataclass
class BatchFit:
    """Requests arriving together (equal timestamps) and the evidence."""

    resolution_s: float  # the clock's: the smallest positive gap
    ties: int  # gaps of 0
    expected: float  # ties a process without batches has at that resolution
    z: float
    excess: float  # (ties - expected) / gaps
    sizes: np.ndarray  # count of batches of size 1, 2, ... (index size - 1)
    geometric_chi2: float = math.nan
    geometric_df: int = 0
    geometric_ok: bool = False

    @property
    def mean_size(self) -> float:
        return float((self.sizes * np.arange(1, self.sizes.size + 1)).sum() / self.sizes.sum())

    @property
    def mean_size_ci(self) -> tuple[float, float]:
        """95% interval of the mean size (the batches' sample mean and standard deviation)."""
        k = np.arange(1, self.sizes.size + 1)
        n = self.sizes.sum()
        m = self.mean_size
        sd = math.sqrt(float((self.sizes * (k - m) ** 2).sum() / max(n - 1, 1)))
        half = Z_95 * sd / math.sqrt(n)
        return m - half, m + half


@dataclass
class ArrivalFit:
    """The chosen process and its evidence."""

    process: str  # poisson | gamma | mmpp | constant (in the profile's time, of the batches)
    rate_rps: float  # requests/s over the log
    rate_ci: tuple[float, float]
    cv: float  # inter-arrival gaps' coefficient of variation (of the batches, in the profile's time)
    cv_ci: tuple[float, float]
    window_s: float
    dispersion: float  # D at window_s
    dispersion_band: tuple[float, float]  # Poisson's 95% band of D
    lag1: float  # lag-1 autocorrelation of the counts
    lag1_band: float  # Poisson's 95% half-width
    gap_lag1: float = 0.0  # lag-1 rank autocorrelation of the gaps (0 for any renewal process)
    gap_lag1_band: float = 0.0  # its 95% half-width under independence
    profile: ProfileFit | None = None  # the rate curve (when kept: profile.kept)
    batch: BatchFit | None = None  # batches (when the evidence holds)
    weekday_ratio: float = math.nan  # busiest / quietest day-of-week mean rate (>= 14 days of log)
    mmpp: MmppFit | None = None  # two regimes, when the counts are autocorrelated
    drift: bool = False  # counts autocorrelated, gaps dependent, no two distinct regimes (gamma, or a rate curve)
    notes: list[str] = field(default_factory=list)  # the choices, as sentences (the YAML comments)

    @property
    def has_profile(self) -> bool:
        return self.profile is not None and self.profile.kept


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
    if var == 0.0:  # equal gaps (a load generator at a fixed rate): c is 0 exactly
        return 0.0, 0.0
    c = math.sqrt(var) / mean
    skew = float((d**3).mean()) / var**1.5
    kurt = float((d**4).mean()) / var**2
    half = Z_95 * math.sqrt(max(c**4 - c**3 * skew + c * c * (kurt - 1.0) / 4.0, 0.0) / gaps.size)
    return c - half, c + half


def chi2_critical(df: int, z: float = Z_95) -> float:
    """Chi-square upper point (``z`` = its normal quantile; 1.96: 97.5%), Wilson-Hilferty."""
    a = 2.0 / (9.0 * df)
    return df * (1.0 - a + z * math.sqrt(a)) ** 3


#: Bins of the short-log profile, s (whole minutes), and what each must expect at least.
MINUTE_BINS_S = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
MIN_BIN_ARRIVALS = 100
_WEEK_S, _DAY_S = 7 * 86400.0, 86400.0
_MONDAY_S = 3 * 86400.0  # 1970-01-01 was a Thursday: epoch + 3 days is a whole number of weeks from a Monday


def _exposure(x0: float, x1: float, bin_s: float, nbins: int) -> np.ndarray:
    """Seconds of [x0, x1) (period time, any number of periods) in each bin of the period."""
    hs = np.arange(math.floor(x0 / bin_s), math.ceil(x1 / bin_s))
    overlap = np.minimum((hs + 1) * bin_s, x1) - np.maximum(hs * bin_s, x0)
    return np.bincount(hs % nbins, weights=np.maximum(overlap, 0.0), minlength=nbins)


def fit_profile(t: np.ndarray, span_s: float, start_epoch_s: float | None, d: float) -> ProfileFit | None:
    """The rate curve of arrivals ``t`` (from 0) with its chi-square against a flat rate
    (divided by ``max(1, d)``, the short window's dispersion); None when no rule applies."""
    rate = t.size / span_s
    if start_epoch_s is not None and span_s >= 14 * _DAY_S:
        kind, bin_s, nbins, start = "hour-of-week", 3600.0, 168, (start_epoch_s + _MONDAY_S) % _WEEK_S
    elif start_epoch_s is not None and span_s >= _DAY_S:
        kind, bin_s, nbins, start = "hour-of-day", 3600.0, 24, start_epoch_s % _DAY_S
    else:
        fits = [b for b in MINUTE_BINS_S if b * rate >= MIN_BIN_ARRIVALS and span_s / b >= _MIN_WINDOWS]
        if not fits:
            return None
        kind, bin_s, start = "minutes", fits[0], 0.0
        nbins = math.ceil(span_s / bin_s)
    x = start + t
    counts = np.bincount((x // bin_s).astype(np.int64) % nbins, minlength=nbins).astype(float)
    exposure = _exposure(start, start + span_s, bin_s, nbins)
    seen = exposure > 0
    rates = np.where(seen, counts / np.maximum(exposure, 1e-9), 0.0)
    if not seen.all():  # a bin the log never covered (a short log's hours): the mean of the others
        rates[~seen] = counts.sum() / exposure.sum()
    expected = counts.sum() * exposure[seen] / exposure[seen].sum()
    raw = float(((counts[seen] - expected) ** 2 / np.maximum(expected, 1e-9)).sum())
    df = int(seen.sum()) - 1
    if df < 1:
        return None
    chi2 = raw / max(1.0, d)
    crit = chi2_critical(df)
    return ProfileFit(kind, bin_s, float(start), [float(r) for r in rates], chi2, df, crit, chi2 > crit)


def profile_time(t: np.ndarray, p: ProfileFit) -> np.ndarray:
    """Arrivals ``t`` in the profile's time (``u(t) = int_0^t factor``, factors of mean 1):
    what is left of them is the process without the curve (the generator's inverse)."""
    f = p.factors
    nbins = f.size
    period = p.bin_s * nbins
    edges_u = np.concatenate([[0.0], np.cumsum(f * p.bin_s)])
    edges_t = np.arange(nbins + 1, dtype=float) * p.bin_s

    def u(x):
        k = np.floor(x / period)
        return k * edges_u[-1] + np.interp(x - k * period, edges_t, edges_u)

    return u(p.start_s + np.asarray(t, dtype=float)) - u(np.float64(p.start_s))


#: The evidence a batch form needs: more equal timestamps than the clock's resolution explains,
#: beyond z (one-sided 99.9%), and a material share of the gaps.
BATCH_Z = 3.090
BATCH_MIN_EXCESS = 0.05
#: Gaps under this predict the ties a process without batches has (its gap density near 0, taken flat).
NEAR_GAP_S = 1e-3


def fit_batches(t: np.ndarray) -> BatchFit | None:
    """Batches of requests with equal timestamps, when there are more of them than the clock's
    resolution explains; None when there are not.

    Without batches, ties come from two arrivals within one tick of the clock (its resolution:
    the smallest positive gap). The gaps' density near 0, from the positive gaps under 1 ms
    taken as flat, predicts ``E = (gaps under 1 ms) x resolution / 1 ms`` ties (a density that
    rises towards 0 makes this an underestimate only below 1 ms)."""
    gaps = np.diff(t)
    if gaps.size < 10:
        return None
    ties = int((gaps == 0).sum())
    pos = gaps[gaps > 0]
    if ties == 0 or pos.size == 0:
        return None
    res = float(pos.min())
    near = int((pos < NEAR_GAP_S).sum())
    expected = near * min(res / NEAR_GAP_S, 1.0)
    z = (ties - expected) / math.sqrt(max(expected, 1.0))
    excess = (ties - expected) / gaps.size
    if z <= BATCH_Z or excess < BATCH_MIN_EXCESS:
        return None
    starts = np.flatnonzero(np.concatenate([[True], gaps > 0]))
    sizes = np.diff(np.append(starts, t.size))
    counts = np.bincount(sizes)[1:].astype(float)
    bf = BatchFit(res, ties, expected, z, excess, counts)
    # geometric on 1, 2, ... with the observed mean: chi-square over sizes pooled so each expects >= 5
    q = 1.0 - 1.0 / bf.mean_size
    k = counts.sum()
    exp = k * (1.0 - q) * q ** np.arange(counts.size)
    exp[-1] = k - exp[:-1].sum()  # the tail from the largest size on
    obs: list[float] = []
    e_acc: list[float] = []
    o_acc, pool_e = 0.0, 0.0
    for o, e in zip(counts, exp):
        o_acc += o
        pool_e += e
        if pool_e >= 5.0:
            obs.append(o_acc)
            e_acc.append(pool_e)
            o_acc, pool_e = 0.0, 0.0
    if pool_e > 0 and e_acc:
        obs[-1] += o_acc
        e_acc[-1] += pool_e
    if len(obs) >= 3:
        o_arr, e_arr = np.asarray(obs), np.asarray(e_acc)
        bf.geometric_chi2 = float(((o_arr - e_arr) ** 2 / e_arr).sum())
        bf.geometric_df = len(obs) - 2  # one parameter estimated
        bf.geometric_ok = bf.geometric_chi2 <= chi2_critical(bf.geometric_df, 2.326)  # 99%
    return bf


#: Above this fraction of zero gaps, on a clock whose tick is a tenth of the mean gap or more, the
#: log's timestamps are ticks (a coarse clock): the arrivals of a tick are spread evenly over it
#: before the fit. On a finer clock ties are batches (``fit_batches``).
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


def _profile_note(p: ProfileFit, d: float) -> str:
    what = {
        "hour-of-week": "rates by hour of week (UTC, Monday 00:00 first)",
        "hour-of-day": "rates by hour of day (UTC)",
        "minutes": f"the log's own rate in {p.bin_s / 60:g}-minute bins (a log shorter than a day has no daily shape)",
    }[p.kind]
    stat = (
        f"chi-square / max(1, D, cv**2 = {d:.2f}) {p.chi2:,.1f} on {p.df} df against a flat rate, 97.5% point "
        f"{p.critical:.1f}"
    )
    if not p.kept:
        return f"{what}: within the noise of a flat rate ({stat}): no rate profile"
    f = p.factors
    return f"{what} differ beyond the noise ({stat}): rate profile, {f.min():.2f}x to {f.max():.2f}x the mean"


def _batch_note(b: BatchFit) -> str:
    stat = (
        f"{b.ties:,} equal timestamps against {b.expected:.1f} that a clock of {b.resolution_s:.3g} s resolution "
        f"explains (z={b.z:.1f}, one-sided 99.9% point {BATCH_Z}; excess {b.excess:.1%} of gaps, at least "
        f"{BATCH_MIN_EXCESS:.0%} needed)"
    )
    shape = (
        f"geometric sizes (chi-square {b.geometric_chi2:.1f} on {b.geometric_df} df, within the 99% point)"
        if b.geometric_ok
        else (
            f"sizes as observed (geometric refused: chi-square {b.geometric_chi2:.1f} on {b.geometric_df} df)"
            if b.geometric_df
            else "sizes as observed"
        )
    )
    lo, hi = b.mean_size_ci
    return (
        f"requests arrive in batches: {stat}; mean size {b.mean_size:.3f} (95% CI {lo:.3f}..{hi:.3f}), largest "
        f"{b.sizes.size}: {shape}"
    )


def fit_arrivals(
    arrival_s: np.ndarray,
    start_epoch_s: float | None,
    regimes: bool = True,
    origin_s: float | None = None,
    span_s: float | None = None,
    ties: str = "spread",
) -> ArrivalFit:
    """Fit arrival times (sorted; ``start_epoch_s`` the wall-clock time of 0): batches, the rate
    profile, then the process in the profile's time; ``regimes=False`` skips the two-regime fit.
    The fitted traffic starts at ``origin_s`` and lasts ``span_s`` (default: the first and last
    arrival's; a class of a log gives the log's). A coarse clock's ties are spread over their
    tick, or with ``ties="batch"`` fitted as batches."""
    t = np.asarray(arrival_s, dtype=float)
    origin = float(t[0]) if origin_s is None else float(origin_s)
    if start_epoch_s is not None:
        start_epoch_s += origin
    t = t - origin
    n = t.size
    gaps0 = np.diff(t)
    tied = float((gaps0 == 0).mean()) if n > 1 else 0.0
    positive = gaps0[gaps0 > 0]
    # a clock whose tick (the smallest positive gap) is a tenth of the mean gap or more makes ties of
    # its own: they are the clock's, not batches
    coarse = positive.size > 0 and float(positive.min()) >= float(gaps0.mean()) / 10.0
    spread_note = ""
    if tied > TIED_FRACTION and coarse and ties != "batch":
        t, tick = spread_ties(t)
        spread_note = (
            f"{tied:.0%} of arrivals share their timestamp with the one before (ticks of about {tick:.3g} s: a "
            "coarse clock or batched sends); each tick's arrivals were spread evenly over it before fitting, so "
            "the fitted process has no batches (--ties batch fits them as batches)"
        )
    span = max(float(t[-1]) if span_s is None else float(span_s), 1e-9)
    rate = n / span  # requests over the log
    notes = [spread_note] if spread_note else []
    batch = fit_batches(t) if tied > 0 and (not coarse or ties == "batch") else None
    events = t
    if batch is not None:
        events = t[np.concatenate([[True], np.diff(t) > 0])]
        notes.append(_batch_note(batch))
    # the events' burstiness without a profile discounts the profile's chi-square: the short window's
    # dispersion and the gaps' cv**2 (a renewal process's dispersion at long windows)
    w0 = _base_window(events.size / span, span)
    c0 = _counts(events, span, w0)
    g0 = np.diff(events)
    d0 = max(
        float(c0.var(ddof=1) / max(c0.mean(), 1e-12)) if c0.size > 1 else 1.0,
        float((g0.std() / g0.mean()) ** 2) if g0.size > 1 and g0.mean() > 0 else 1.0,
    )
    daily = start_epoch_s is not None and span >= _DAY_S
    profile = fit_profile(events, span, start_epoch_s, d0) if daily and events.size > 1 else None
    if profile is not None:
        notes.append(_profile_note(profile, d0))
    elif not daily:
        notes.append(f"the log covers {span / 3600:.2g} h (< 1 day, or no wall-clock times): no daily profile")
    weekday_ratio = math.nan
    if start_epoch_s is not None and span >= 14 * _DAY_S:
        day = ((start_epoch_s + t) // 86400 + 3) % 7  # 0 = Monday
        days = np.bincount(day.astype(np.int64), minlength=7) / (span / 86400.0 / 7.0)
        weekday_ratio = float(days.max() / max(days.min(), 1e-9))
        notes.append(f"busiest day of week / quietest: {weekday_ratio:.2f}x")
    kept = profile is not None and profile.kept
    s = profile_time(events, profile) if kept and profile is not None else events
    fit = _fit_process(s, rate, n, regimes, notes)
    if fit.drift and not daily:
        # the counts drift without distinct regimes: a log shorter than a day gets its own rate curve
        short = fit_profile(events, span, None, d0)
        if short is None:
            notes.append(
                f"no rate curve of the log's own: {events.size:,} arrivals are too few for {_MIN_WINDOWS} bins of "
                f"{MIN_BIN_ARRIVALS} expected arrivals each"
            )
        else:
            notes.append(_profile_note(short, d0))
            if short.kept:
                profile = short
                notes.append("the process again, in the rate curve's time:")
                fit = _fit_process(profile_time(events, short), rate, n, False, notes)
        if fit.drift:
            notes.append(f"gamma renewal with the gaps' cv={fit.cv:.2f}")
    elif fit.drift:
        notes.append(f"gamma renewal with the gaps' cv={fit.cv:.2f}")
    fit.profile, fit.batch, fit.weekday_ratio = profile, batch, weekday_ratio
    return fit


def _fit_process(t: np.ndarray, rate: float, n: int, regimes: bool, notes: list[str]) -> ArrivalFit:
    """The stationary process of event times ``t`` (batches, in the profile's time); ``rate`` and
    ``n`` are the requests' (what rate_rps and its interval are)."""
    m_ev = t.size
    span = max(float(t[-1] - t[0]) if m_ev > 1 else 0.0, 1e-9)
    ev_rate = m_ev / span
    gaps = np.diff(t)
    gaps = gaps[gaps >= 0]
    cv = float(gaps.std() / gaps.mean()) if gaps.size > 1 and gaps.mean() > 0 else 1.0
    cv_ci = _cv_ci(gaps) if gaps.size > 1 and gaps.mean() > 0 else (cv, cv)
    w = _base_window(ev_rate, span)
    c = _counts(t, span, w)
    k = c.size
    d = float(c.var(ddof=1) / max(c.mean(), 1e-12)) if k > 1 else 1.0
    half = Z_95 * math.sqrt(2.0 / max(k - 1, 1))
    # the count's variance is n times the larger of D and cv**2 (a renewal process's long-run
    # dispersion), not n: a bursty log's rate is known less well than a Poisson one's
    spread = Z_95 * math.sqrt(n * max(1.0, d, cv * cv) * (n / max(m_ev, 1)))
    rate_ci = (max(n - spread, 0.0) / (n / rate), (n + spread) / (n / rate))
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
        lag1_band=Z_95 / math.sqrt(max(k, 1)),
        notes=notes,
    )
    what = "batches'" if m_ev < n else "arrivals'"
    fit.notes.append(
        f"{what} counts in {k} windows of {w:g} s: dispersion D={d:.2f} (Poisson 95% band {1 - half:.2f}..{1 + half:.2f}), "
        f"lag-1 autocorrelation {lag1:+.2f} (band +-{fit.lag1_band:.2f}); gaps' cv={cv:.2f} "
        f"(95% CI {cv_ci[0]:.2f}..{cv_ci[1]:.2f})"
    )
    if cv_ci[1] == 0.0:
        # every gap the same (a load generator's fixed rate): no renewal law with a positive cv is it
        fit.process = "constant"
        fit.notes.append("every gap equal (cv 0): constant, evenly spaced arrivals")
        return fit
    if gaps.size > 3:
        ranks = np.argsort(np.argsort(gaps, kind="stable"), kind="stable").astype(float)
        ranks -= ranks.mean()
        fit.gap_lag1 = float((ranks[:-1] * ranks[1:]).sum() / max((ranks * ranks).sum(), 1e-12))
        fit.gap_lag1_band = Z_95 / math.sqrt(gaps.size)
        fit.notes.append(
            f"successive gaps' rank autocorrelation {fit.gap_lag1:+.3f} (independence band +-{fit.gap_lag1_band:.3f})"
        )
    poisson_d = fit.dispersion_band[0] <= d <= fit.dispersion_band[1]
    poisson_r = abs(lag1) <= fit.lag1_band
    if poisson_d and poisson_r:
        fit.notes.append("D and the autocorrelation are inside Poisson's bands: poisson")
        return fit
    renewal = poisson_r or abs(fit.gap_lag1) <= fit.gap_lag1_band
    if renewal and cv_ci[0] <= 1.0 <= cv_ci[1]:
        fit.notes.append(
            "D or the counts' autocorrelation outside Poisson's band, successive gaps independent (a renewal "
            "process) and their cv 1 within its interval: poisson"
        )
        return fit
    fit.process = "gamma"
    if renewal:
        fit.notes.append(
            "D or the counts' autocorrelation outside Poisson's band, successive gaps independent (a renewal "
            f"process): gamma renewal with the gaps' cv={cv:.2f}"
        )
        return fit
    if regimes:
        wh = max(span / MMPP_MAX_WINDOWS, w / 4.0)
        counts = _counts(t, span, wh)
        m = fit_mmpp2(counts, wh)
        fit.mmpp = m
        if m.lr > LR_CRITICAL and m.distinct:
            # more regimes while each lowers the BIC and stays distinct
            for regimes_k in range(3, MAX_REGIMES + 1):
                more = fit_mmpp(counts, wh, regimes_k)
                if more.bic < m.bic and more.distinct:
                    fit.notes.append(
                        f"{regimes_k} regimes lower the BIC from {m.bic:,.1f} to {more.bic:,.1f}, each distinct"
                    )
                    m = more
                else:
                    fit.notes.append(
                        f"{regimes_k} regimes: BIC {more.bic:,.1f} against {m.bic:,.1f}"
                        + ("" if more.distinct else ", not each distinct")
                        + f": {m.regimes} regimes"
                    )
                    break
            fit.mmpp = m
            fit.process = "mmpp"
            fit.notes.append(f"counts are autocorrelated (rate regimes): {_regimes_note(m)}: mmpp")
            return fit
        fit.notes.append(f"counts are autocorrelated, but {_regimes_note(m)}: not two distinct regimes")
    else:
        fit.notes.append("counts are autocorrelated and successive gaps dependent: the rate drifts")
    fit.drift = True  # gamma, unless the caller finds a rate curve
    return fit


def _regimes_note(m: MmppFit) -> str:
    each = "; ".join(
        f"{r:.4g} /s (95% CI {lo:.4g}..{hi:.4g}) held {h:.3g} s (95% CI {hl:.3g}..{hh:.3g})"
        for r, (lo, hi), h, (hl, hh) in zip(m.rates_rps, m.rates_ci, m.mean_sojourn_s, m.sojourn_ci)
    )
    return (
        f"{m.regimes} regimes on {m.window_s:.3g} s windows: {each}; likelihood ratio over one rate {m.lr:.1f} "
        f"(chi-square(3) 95% point {LR_CRITICAL}); {min(m.switches):.1f} switches out of the rarest-left regime "
        f"(at least {MIN_SWITCHES} needed)"
    )
