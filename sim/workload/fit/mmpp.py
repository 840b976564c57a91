"""A Markov-modulated Poisson process (2 to ``MAX_REGIMES`` regimes) fitted to windowed counts.

Counts ``c_j`` of ``k`` windows of ``w`` seconds are a hidden Markov chain with
Poisson emissions (mean ``lam_i`` in regime ``i``); Baum-Welch (EM, scaled
forward-backward) gives the regimes' rates ``lam_i / w``, the per-window switch
probabilities ``p_ij`` and so the mean holding times ``w / (1 - p_ii)`` and where
a regime goes when it leaves (``p_ij / (1 - p_ii)``). Two regimes are kept over
one Poisson rate by a likelihood ratio (3 more parameters: chi-square 95% point
7.81); each further regime when it lowers the Bayesian information criterion
(``-2 log L + (K + K(K-1)) log k``). Regimes are only evidence when the log
switches out of each several times (``MIN_SWITCHES``) and their rate intervals
do not overlap.
Intervals: a rate's from the expected arrivals in its regime (Poisson), a holding
time's from the expected number of switches out of it (exponential mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MmppFit", "fit_mmpp", "fit_mmpp2", "LR_CRITICAL", "MIN_SWITCHES", "MAX_REGIMES"]

_Z = 1.959963984540054
#: chi-square(3) 95% point: the likelihood-ratio threshold for two regimes over one.
LR_CRITICAL = 7.815
#: Fewest switches out of each regime for the two regimes to count as evidence.
MIN_SWITCHES = 5


@dataclass
class MmppFit:
    rates_rps: tuple[float, ...]  # low to high
    rates_ci: tuple[tuple[float, float], ...]
    mean_sojourn_s: tuple[float, ...]
    sojourn_ci: tuple[tuple[float, float], ...]
    switches: tuple[float, ...]  # expected switches out of each regime over the log
    lr: float  # 2 * (log L of these regimes - log L of one Poisson rate)
    window_s: float
    iterations: int
    jumps: tuple[tuple[float, ...], ...] = ()  # where each regime goes when it leaves (rows sum to 1)
    loglik: float = 0.0
    windows: int = 0

    @property
    def regimes(self) -> int:
        return len(self.rates_rps)

    @property
    def bic(self) -> float:
        k = self.regimes
        return -2.0 * self.loglik + (k + k * (k - 1)) * math.log(max(self.windows, 2))

    @property
    def distinct(self) -> bool:
        """Each regime's rate interval apart from the next one's, and switched out of often enough."""
        apart = all(self.rates_ci[i][1] < self.rates_ci[i + 1][0] for i in range(self.regimes - 1))
        return apart and min(self.switches) >= MIN_SWITCHES


#: Most regimes the fit tries (the scenario format's limit).
MAX_REGIMES = 8


def _log_poisson(c: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """log P(c | lam) for each window (rows) and regime (columns), up to the c! term."""
    lam = np.maximum(lam, 1e-12)
    return c[:, None] * np.log(lam)[None, :] - lam[None, :]


def fit_mmpp2(counts: np.ndarray, window_s: float, iterations: int = 200) -> MmppFit:
    """Two regimes (see ``fit_mmpp``)."""
    return fit_mmpp(counts, window_s, 2, iterations)


def fit_mmpp(counts: np.ndarray, window_s: float, regimes: int, iterations: int = 200) -> MmppFit:
    """Fit ``regimes`` regimes to the counts (a few thousand windows or more for tight intervals)."""
    c = np.asarray(counts, dtype=float)
    k = c.size
    K = regimes
    if K == 2:
        lo, hi = np.percentile(c, [25, 75])
        lam = np.array([max(min(lo, c.mean() * 0.9), 1e-3), max(hi, c.mean() * 1.1)])
    else:
        # the lowest regime at the 10% point, the others spread geometrically over the windows with
        # arrivals, up to their 99.9% point (quantiles of all windows stack regimes on 0 when most are empty)
        busy = c[c > 0] if (c > 0).any() else c + 1.0
        top = max(float(np.quantile(busy, 0.999)), 1e-3)
        bottom = min(max(float(np.quantile(busy, 0.25)), 1e-3), top)
        lam = np.concatenate([[max(float(np.quantile(c, 0.1)), 1e-3)], np.geomspace(bottom, top, K - 1)])
        lam = np.maximum(lam, 1e-3 * np.arange(1, K + 1))
    p = np.full((K, K), 0.1 / (K - 1))
    np.fill_diagonal(p, 0.9)
    pi = np.full(K, 1.0 / K)
    loglik = -math.inf
    it = 0
    for step in range(1, iterations + 1):
        it = step
        logb = _log_poisson(c, lam)
        shift = logb.max(axis=1, keepdims=True)
        b = np.exp(logb - shift)
        alpha = np.empty((k, K))
        scale = np.empty(k)
        a = pi * b[0]
        scale[0] = a.sum()
        alpha[0] = a / scale[0]
        for j in range(1, k):
            a = (alpha[j - 1] @ p) * b[j]
            scale[j] = a.sum()
            alpha[j] = a / scale[j]
        beta = np.empty((k, K))
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
    rates, rates_ci, hold, hold_ci, outs, jumps = [], [], [], [], [], []
    for i in range(K):
        exposure_s = occupancy[i] * window_s
        r = lam[i] / window_s
        n_i = lam[i] * occupancy[i]
        rates.append(float(r))
        half = _Z * math.sqrt(max(n_i, 1e-12)) / max(exposure_s, 1e-12)
        rates_ci.append((max(float(r - half), 0.0), float(r + half)))
        out = max(1.0 - p[i, i], 1e-12)
        h = window_s / out
        m_out = float(switches[i].sum() - switches[i, i])
        m = max(m_out, 1.0)
        hold.append(float(h))
        hold_ci.append((h / (1 + _Z / math.sqrt(m)), h / max(1 - _Z / math.sqrt(m), 1e-3)))
        outs.append(m_out)
        row = np.array([p[i, j] if j != i else 0.0 for j in range(K)])
        jumps.append(tuple(float(x) for x in row / max(row.sum(), 1e-300)))
    return MmppFit(
        tuple(rates),
        tuple(rates_ci),
        tuple(hold),
        tuple(hold_ci),
        tuple(outs),
        2.0 * (loglik - one),
        window_s,
        it,
        tuple(jumps),
        loglik,
        k,
    )
