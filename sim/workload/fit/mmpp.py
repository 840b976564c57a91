"""A two-regime Markov-modulated Poisson process fitted to windowed counts.

Counts ``c_j`` of ``k`` windows of ``w`` seconds are a hidden Markov chain with
Poisson emissions (mean ``lam_i`` in regime ``i``); Baum-Welch (EM, scaled
forward-backward) gives the regimes' rates ``lam_i / w``, the per-window switch
probabilities ``p_ij`` and so the mean holding times ``w / p_ij``. The gain over one
Poisson rate is a likelihood ratio (3 more parameters: chi-square 95% point 7.81);
regimes are only evidence when the log switches between them several times
(``MIN_SWITCHES`` out of each).
Intervals: a rate's from the expected arrivals in its regime (Poisson), a holding
time's from the expected number of switches out of it (exponential mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MmppFit", "fit_mmpp2", "LR_CRITICAL", "MIN_SWITCHES"]

_Z = 1.959963984540054
#: chi-square(3) 95% point: the likelihood-ratio threshold for two regimes over one.
LR_CRITICAL = 7.815
#: Fewest switches out of each regime for the two regimes to count as evidence.
MIN_SWITCHES = 5


@dataclass
class MmppFit:
    rates_rps: tuple[float, float]  # low, high
    rates_ci: tuple[tuple[float, float], tuple[float, float]]
    mean_sojourn_s: tuple[float, float]
    sojourn_ci: tuple[tuple[float, float], tuple[float, float]]
    switches: tuple[float, float]  # expected switches out of each regime over the log
    lr: float  # 2 * (log L of two regimes - log L of one Poisson rate)
    window_s: float
    iterations: int


def _log_poisson(c: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """log P(c | lam) for each window (rows) and regime (columns), up to the c! term."""
    lam = np.maximum(lam, 1e-12)
    return c[:, None] * np.log(lam)[None, :] - lam[None, :]


def fit_mmpp2(counts: np.ndarray, window_s: float, iterations: int = 200) -> MmppFit:
    """Fit two regimes to the counts (a few thousand windows or more for tight intervals)."""
    c = np.asarray(counts, dtype=float)
    k = c.size
    lo, hi = np.percentile(c, [25, 75])
    lam = np.array([max(min(lo, c.mean() * 0.9), 1e-3), max(hi, c.mean() * 1.1)])
    p = np.array([[0.9, 0.1], [0.1, 0.9]])
    pi = np.array([0.5, 0.5])
    loglik = -math.inf
    it = 0
    for step in range(1, iterations + 1):
        it = step
        logb = _log_poisson(c, lam)
        shift = logb.max(axis=1, keepdims=True)
        b = np.exp(logb - shift)
        alpha = np.empty((k, 2))
        scale = np.empty(k)
        a = pi * b[0]
        scale[0] = a.sum()
        alpha[0] = a / scale[0]
        for j in range(1, k):
            a = (alpha[j - 1] @ p) * b[j]
            scale[j] = a.sum()
            alpha[j] = a / scale[j]
        beta = np.empty((k, 2))
        beta[-1] = 1.0
        for j in range(k - 2, -1, -1):
            beta[j] = (p @ (b[j + 1] * beta[j + 1])) / scale[j + 1]
        gamma = alpha * beta
        gamma /= gamma.sum(axis=1, keepdims=True)
        xi = alpha[:-1, :, None] * p[None, :, :] * (b[1:] * beta[1:])[:, None, :] / scale[1:, None, None]
        trans = xi.sum(axis=0)
        new = float(np.log(scale).sum() + shift.sum())
        pi = gamma[0]
        p = trans / np.maximum(trans.sum(axis=1, keepdims=True), 1e-300)
        lam = (gamma * c[:, None]).sum(axis=0) / np.maximum(gamma.sum(axis=0), 1e-300)
        if new - loglik < 1e-6 * abs(new):
            loglik = new
            break
        loglik = new
    one = float((c * math.log(max(c.mean(), 1e-12)) - c.mean()).sum())
    order = np.argsort(lam)
    lam, p, occupancy = lam[order], p[np.ix_(order, order)], gamma.sum(axis=0)[order]
    switches = trans[np.ix_(order, order)]
    rates, rates_ci, hold, hold_ci = [], [], [], []
    for i in range(2):
        exposure_s = occupancy[i] * window_s
        r = lam[i] / window_s
        n_i = lam[i] * occupancy[i]
        rates.append(r)
        half = _Z * math.sqrt(max(n_i, 1e-12)) / max(exposure_s, 1e-12)
        rates_ci.append((max(r - half, 0.0), r + half))
        out = max(1.0 - p[i, i], 1e-12)
        h = window_s / out
        m = max(switches[i, 1 - i], 1.0)
        hold.append(h)
        hold_ci.append((h / (1 + _Z / math.sqrt(m)), h / max(1 - _Z / math.sqrt(m), 1e-3)))
    return MmppFit(
        (rates[0], rates[1]),
        (rates_ci[0], rates_ci[1]),
        (hold[0], hold[1]),
        (hold_ci[0], hold_ci[1]),
        (float(switches[0, 1]), float(switches[1, 0])),
        2.0 * (loglik - one),
        window_s,
        it,
    )
