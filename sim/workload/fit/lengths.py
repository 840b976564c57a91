"""Length distributions and the prompt-output dependence, chosen by evidence.

Each marginal is fitted by maximum likelihood to the supported continuous
families (lognormal, normal) and scored by the Kolmogorov-Smirnov statistic
``D`` against the observed counts; a family is kept when ``D`` is under the
test's 1% critical value ``1.628/sqrt(n)``, else the class resamples the
observed values (empirical). The dependence is Spearman's rank correlation:
when it is outside the independence band ``+-1.96/sqrt(n-1)``, the class draws
(prompt, output) pairs from a table of observed pairs (``lengths_table``), which
keeps the dependence and both marginals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["order_note", "FamilyFit", "LengthFit", "PairFit", "fit_length", "fit_pair", "spearman", "TABLE_MAX_ROWS"]

_Z = 1.959963984540054
_KS_1PCT = 1.628
#: A lengths table keeps at most this many observed pairs (a seeded random subset beyond).
TABLE_MAX_ROWS = 200_000
#: Goodness of fit is scored on at most this many values (a seeded subset).
_GOF_MAX = 200_000


@dataclass
class FamilyFit:
    family: str  # lognormal | normal
    params: dict[str, float]  # lognormal: mean, sigma (log-space); normal: mean, std
    ci: dict[str, tuple[float, float]]  # 95% intervals of the parameters
    ks: float


@dataclass
class LengthFit:
    """One marginal: every family's fit, and the choice."""

    n: int
    lo: int
    hi: int
    families: list[FamilyFit]
    ks_critical: float
    chosen: Optional[FamilyFit]  # None: empirical

    @property
    def note(self) -> str:
        scores = ", ".join(f"{f.family} KS D={f.ks:.3f}" for f in self.families)
        if self.chosen is None:
            return f"{scores}; none under the 1% critical value {self.ks_critical:.3f}: empirical"
        return f"{scores} (1% critical value {self.ks_critical:.3f}): {self.chosen.family}"


@dataclass
class PairFit:
    prompt: LengthFit
    output: LengthFit
    spearman: float
    band: float  # independence 95% half-width
    joint: bool  # True: a lengths_table of observed pairs
    notes: list[str] = field(default_factory=list)


def _ks(sorted_x: np.ndarray, cdf) -> float:
    """Two-sided KS statistic of sorted integer data against a continuous CDF evaluated at
    the integer's upper edge (x + 0.5): the CDF of the rounded variable."""
    n = sorted_x.size
    u, last = np.unique(sorted_x, return_index=False, return_counts=True)
    ecdf_hi = np.cumsum(last) / n
    ecdf_lo = ecdf_hi - last / n
    f_hi = cdf(u + 0.5)
    f_lo = cdf(u - 0.5)
    return float(max(np.abs(ecdf_hi - f_hi).max(), np.abs(ecdf_lo - f_lo).max()))


def fit_length(values: np.ndarray, rng: np.random.Generator) -> LengthFit:
    """Fit one length column (integers >= 1)."""
    from scipy.special import ndtr  # only for a fit

    x = np.asarray(values, dtype=float)
    n = x.size
    sample = np.sort(x if n <= _GOF_MAX else rng.choice(x, _GOF_MAX, replace=False))
    m = sample.size
    logx = np.log(x)
    mu, s = float(logx.mean()), float(logx.std(ddof=1)) if n > 1 else 0.0
    fams = []
    mu_ci = (mu - _Z * s / math.sqrt(n), mu + _Z * s / math.sqrt(n))
    s_ci = (s * (1 - _Z / math.sqrt(2 * max(n - 1, 1))), s * (1 + _Z / math.sqrt(2 * max(n - 1, 1))))
    ln_cdf = (
        (lambda q: ndtr((np.log(np.maximum(q, 1e-9)) - mu) / s)) if s > 0 else (lambda q: (q >= math.exp(mu)) * 1.0)
    )
    fams.append(
        FamilyFit(
            "lognormal",
            {"mean": math.exp(mu + s * s / 2), "sigma": s, "mu": mu},
            {"mu": mu_ci, "sigma": s_ci},
            _ks(sample, ln_cdf),
        )
    )
    mean, std = float(x.mean()), float(x.std(ddof=1)) if n > 1 else 0.0
    n_cdf = (lambda q: ndtr((q - mean) / std)) if std > 0 else (lambda q: (q >= mean) * 1.0)
    fams.append(
        FamilyFit(
            "normal",
            {"mean": mean, "std": std},
            {
                "mean": (mean - _Z * std / math.sqrt(n), mean + _Z * std / math.sqrt(n)),
                "std": (std * (1 - _Z / math.sqrt(2 * max(n - 1, 1))), std * (1 + _Z / math.sqrt(2 * max(n - 1, 1)))),
            },
            _ks(sample, n_cdf),
        )
    )
    crit = _KS_1PCT / math.sqrt(m)
    best = min(fams, key=lambda f: f.ks)
    return LengthFit(n, int(x.min()), int(x.max()), fams, crit, best if best.ks <= crit else None)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    end = np.cumsum(counts).astype(float)
    return ((end - counts + 1 + end) / 2.0)[inverse.ravel()]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's of the tie-averaged ranks); NaN for a constant column."""
    rx, ry = _ranks(x), _ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    den = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    return float((rx * ry).sum()) / den if den > 0 else math.nan


def fit_pair(prompt: np.ndarray, output: np.ndarray, rng: np.random.Generator, paired: bool = True) -> PairFit:
    """Both marginals and their dependence (``paired=False``: the log did not observe them together)."""
    if not paired:
        pf = PairFit(fit_length(prompt, rng), fit_length(output, rng), 0.0, 0.0, False)
        pf.notes.append("prompt and output were not observed together (metrics): drawn independently")
        return pf
    n = prompt.size
    if n > _GOF_MAX:
        pick = rng.choice(n, _GOF_MAX, replace=False)
        rho, m = spearman(prompt[pick], output[pick]), _GOF_MAX
    else:
        rho, m = (spearman(prompt, output) if n > 2 else 0.0), n
    if not np.isfinite(rho):  # a constant column
        rho = 0.0
    band = _Z / math.sqrt(max(m - 1, 1))
    pf = PairFit(fit_length(prompt, rng), fit_length(output, rng), rho, band, abs(rho) > band)
    if pf.joint:
        pf.notes.append(
            f"prompt-output Spearman rho={rho:+.3f}, outside the independence band +-{band:.3f}: "
            "pairs drawn from the observed table (lengths_table) keep the dependence"
        )
    else:
        pf.notes.append(
            f"prompt-output Spearman rho={rho:+.3f}, inside the independence band +-{band:.3f}: independent"
        )
    return pf


def order_note(prompt: np.ndarray, output: np.ndarray) -> str | None:
    """A comment when successive requests' lengths are correlated (lag-1 Spearman of the prompts
    and of the outputs in arrival order, outside ``+-1.96/sqrt(n-1)``): the generator draws each
    request's lengths independently of the one before, so that dependence is not reproduced."""
    n = prompt.size
    if n < 10:
        return None
    band = 1.959963984540054 / math.sqrt(n - 1)
    rp, ro = spearman(prompt[:-1], prompt[1:]), spearman(output[:-1], output[1:])
    if not (abs(rp) > band or abs(ro) > band):
        return None
    return (
        f"successive requests' lengths are correlated (lag-1 Spearman: prompt {rp:+.3f}, output {ro:+.3f}; "
        f"independence band +-{band:.3f}): not reproduced, each request's lengths are drawn independently"
    )
