"""Whether a turn is continued depending on its prompt's length (``session.continue_by_prompt``).

The model is the generator's (``sim.workload.sessions.continue_probabilities``): among the turns
of one depth, a turn has a next turn with ``q = sigmoid(a_g + beta x)``, ``x = ln(prompt tokens)``,
one intercept ``a_g`` per depth group and a common slope ``beta``. The log is a window: a turn at
``t`` shows its next turn only with the chance ``G`` that the gap fits in what is left of the
window (``sim.workload.fit.sessions``), so a turn is seen continued with ``q G``; the likelihood is
Bernoulli in ``q G`` and is maximized by Newton's method (analytic gradient and Hessian, step
halving). The slope's standard error is the observed information's; the likelihood-ratio
statistic against ``beta = 0`` (the intercepts refitted) decides whether the slope is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.workload.fit.arrivals import Z_95
from sim.workload.sessions import logistic

__all__ = ["SlopeFit", "fit_length_slope", "LR_99"]

#: The chi-square(1) 99% point: a slope is written when the likelihood ratio is over it.
LR_99 = 6.634896601021214


@dataclass
class SlopeFit:
    slope: float  # change in log-odds per unit of ln(prompt tokens)
    ci: tuple[float, float]  # 95%, from the observed information
    lr: float  # likelihood ratio against slope 0
    turns: int  # turns used
    continued: int  # of them seen continued


def _ll_parts(eta: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood, and its first and second derivatives in each turn's ``eta``."""
    q = logistic(eta)
    q = np.clip(q, 1e-12, 1.0 - 1e-12)
    one = 1.0 - q * g
    one = np.maximum(one, 1e-300)
    ll = float(np.where(y, np.log(q * g), np.log(one)).sum())
    v = q * (1.0 - q)
    d1 = np.where(y, 1.0 - q, -g * v / one)
    d2 = np.where(y, -v, -g * v * ((1.0 - 2.0 * q) * one + g * v) / (one * one))
    return ll, d1, d2


def _newton(x: np.ndarray, y: np.ndarray, g: np.ndarray, group: np.ndarray, k: int, free_slope: bool):
    """(parameters, log-likelihood, Hessian) at the maximum: ``k`` intercepts, then the slope."""
    m = k + 1 if free_slope else k
    theta = np.zeros(k + 1)
    rate = max(float(y.sum()) / max(float(g.sum()), 1e-12), 1e-6)
    theta[:k] = math.log(min(rate, 0.999) / (1.0 - min(rate, 0.999)))

    def parts(th):
        return _ll_parts(th[group] + th[k] * x, y, g)

    def hessian(d2):
        h = np.zeros((m, m))
        h[np.arange(k), np.arange(k)] = np.bincount(group, d2, minlength=k)
        if free_slope:
            h[k, :k] = h[:k, k] = np.bincount(group, d2 * x, minlength=k)
            h[k, k] = float((d2 * x * x).sum())
        return h

    ll, d1, d2 = parts(theta)
    for _ in range(100):
        grad = np.zeros(m)
        grad[:k] = np.bincount(group, d1, minlength=k)
        if free_slope:
            grad[k] = float((d1 * x).sum())
        h = hessian(d2)
        try:
            step = np.linalg.solve(h, -grad)
        except np.linalg.LinAlgError:
            step = grad * 1e-3
        if float(grad @ step) <= 0:  # not an ascent direction: the gradient's
            step = grad / max(float(np.abs(np.diag(h)).max()), 1.0)
        t, ok = 1.0, False
        while t > 1e-8 and not ok:
            trial = theta.copy()
            trial[:m] += t * step
            ll_t, d1_t, d2_t = parts(trial)
            ok = ll_t >= ll - 1e-12
            t *= 0.5
        if not ok:  # no step improves it: at the maximum to rounding
            break
        done = abs(ll_t - ll) < 1e-10 * max(1.0, abs(ll))
        theta, ll, d1, d2 = trial, ll_t, d1_t, d2_t
        if done and float(np.abs(grad).max()) < 1e-6 * max(1.0, float(y.size)):
            break
    return theta, ll, hessian(d2)  # at the parameters returned, not at the last step's start


def fit_length_slope(prompt: np.ndarray, continued: np.ndarray, chance: np.ndarray, group: np.ndarray) -> SlopeFit:
    """The slope of a turn's log-odds of continuing on ln(its prompt tokens), given whether each
    turn was seen continued, its chance ``G`` to show a next turn in the window, and its depth
    group (0, 1, ...: one intercept each). Turns with no chance are left out."""
    use = chance > 0
    x = np.log(np.maximum(prompt[use], 1).astype(np.float64))
    x = x - x.mean()  # centred: the intercepts and the slope nearly independent
    y = continued[use].astype(bool)
    g = np.minimum(chance[use].astype(np.float64), 1.0)
    _, group = np.unique(group[use], return_inverse=True)
    k = int(group.max()) + 1 if group.size else 1
    th1, ll1, h1 = _newton(x, y, g, group, k, True)
    _, ll0, _ = _newton(x, y, g, group, k, False)
    try:
        var = float(np.linalg.inv(-h1)[k, k])
    except np.linalg.LinAlgError:
        var = math.inf
    se = math.sqrt(var) if var > 0 and math.isfinite(var) else math.inf
    b = float(th1[k])
    return SlopeFit(b, (b - Z_95 * se, b + Z_95 * se), max(2.0 * (ll1 - ll0), 0.0), int(y.size), int(y.sum()))
