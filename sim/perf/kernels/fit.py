"""Small, deterministic numerics for the kernel tables: grid lookups and a
non-negative relative least-squares fit.

Sums go through ``math.fsum`` (exactly rounded), so a fit gives the same bits
whatever BLAS, thread count or row order within a sum: a table built twice is
byte-identical.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["bracket", "nonneg_rel_lstsq", "interp_extrap"]


def bracket(grid: np.ndarray, x: float) -> list[tuple[int, float]]:
    """(index, weight) of the grid points around ``x`` for linear interpolation;
    outside the grid, the one end point with weight 1 (callers scale from it)."""
    if x <= grid[0]:
        return [(0, 1.0)]
    if x >= grid[-1]:
        return [(len(grid) - 1, 1.0)]
    hi = int(np.searchsorted(grid, x, side="left"))
    if grid[hi] == x:
        return [(hi, 1.0)]
    lo = hi - 1
    w = (x - grid[lo]) / (grid[hi] - grid[lo])
    return [(lo, 1.0 - w), (hi, w)]


def interp_extrap(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Linear interpolation of (xs, ys) at x; beyond the last point, the last
    segment's slope continues; below the first point, its value holds."""
    out = np.interp(x, xs, ys)
    if len(xs) > 1:
        slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
        over = x > xs[-1]
        out[over] = ys[-1] + slope * (x[over] - xs[-1])
    return out


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (tiny systems)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        if m[p][c] == 0.0:
            raise np.linalg.LinAlgError("singular fit")
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for j in range(c, n + 1):
                m[r][j] -= f * m[c][j]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - math.fsum(m[r][j] * x[j] for j in range(r + 1, n))) / m[r][r]
    return x


def nonneg_rel_lstsq(cols: list[np.ndarray], y: np.ndarray) -> list[float]:
    """Coefficients c >= 0 minimising Σ((Σ_j c_j·cols_j − y) / y)²: least squares on
    relative errors, so microsecond kernels weigh as much as long ones. A
    coefficient that comes out negative is fixed at 0 and the rest refitted
    (most negative first)."""
    y = np.asarray(y, dtype=np.float64)
    scaled = []
    for c in cols:  # columns scaled to max 1 (conditioning), relative weights 1/y
        c = np.asarray(c, dtype=np.float64)
        s = float(np.max(np.abs(c))) or 1.0
        scaled.append((c / s / y, s))
    ones = np.ones_like(y)
    active = list(range(len(cols)))
    while active:
        a = [[math.fsum(scaled[i][0] * scaled[j][0]) for j in active] for i in active]
        b = [math.fsum(scaled[i][0] * ones) for i in active]
        x = _solve(a, b)
        worst = min(range(len(active)), key=lambda i: x[i])
        if x[worst] >= 0.0:
            out = [0.0] * len(cols)
            for i, v in zip(active, x):
                out[i] = v / scaled[i][1]
            return out
        active.pop(worst)
    return [0.0] * len(cols)
