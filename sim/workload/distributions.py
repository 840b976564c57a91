"""Token-length distributions.

Each distribution is a small class with ``sample(rng, n)`` (an ``int64`` array
of ``n`` token counts drawn from the ``numpy.random.Generator`` passed in, never
a global RNG) and analytic ``mean`` / ``variance`` (like Ciw's
distributions). Every distribution is clipped to the integer range
``[lo, hi]`` (``lo >= 1``): draws below ``lo`` become ``lo``, draws above
``hi`` become ``hi``, so the number of draws never depends on the values —
what keeps common random numbers aligned between runs.

``mean`` and ``variance`` are those of the *clipped* distribution (what the
simulator actually sees); for the continuous ones (normal, lognormal) they
ignore the rounding to integers, which moves the mean by far less than a token.

The pydantic specs of a traffic class's ``prompt_tokens:`` / ``output_tokens:``
(``FixedLength`` ... ``EmpiricalLength``, discriminated on ``dist``) live here
too; ``spec.build(base_dir)`` returns the distribution.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.workload.traces import read_values

__all__ = [
    "MAX_TOKENS",
    "Distribution",
    "Fixed",
    "Uniform",
    "Normal",
    "LogNormal",
    "Empirical",
    "FixedLength",
    "UniformLength",
    "NormalLength",
    "LogNormalLength",
    "EmpiricalLength",
    "LengthSpec",
    "LENGTH_NAMES",
]

#: Upper bound of any token count (keeps lengths well inside int32).
MAX_TOKENS = 10_000_000

_SQRT_2PI = math.sqrt(2.0 * math.pi)


def ndtr(z):
    """The standard normal CDF (scipy's ``ndtr``, imported when first needed: loading a scenario
    does not pay for scipy)."""
    from scipy.special import ndtr as _ndtr

    return _ndtr(z)


def _pdf(z: float) -> float:
    """Standard normal density (0 at +-inf)."""
    return 0.0 if math.isinf(z) else math.exp(-0.5 * z * z) / _SQRT_2PI


class Distribution(ABC):
    """A length distribution clipped to the integers ``[lo, hi]``; a subclass gives
    ``_draw`` and its ``mean`` and ``variance``."""

    lo: int = 1
    hi: int = MAX_TOKENS

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` token counts (``int64``), drawn from ``rng``."""
        x = self._draw(rng, int(n))
        return np.clip(np.rint(x), self.lo, self.hi).astype(np.int64)

    @abstractmethod
    def _draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` raw draws, before rounding and clipping."""

    @property
    @abstractmethod
    def mean(self) -> float:
        """Mean token count."""

    @property
    @abstractmethod
    def variance(self) -> float:
        """Variance of the token count (tokens squared)."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def _bounds(lo: int, hi: int) -> tuple[int, int]:
    lo, hi = int(lo), int(hi)
    if not 1 <= lo <= hi <= MAX_TOKENS:
        raise ValueError(f"need 1 <= min <= max <= {MAX_TOKENS}, got min={lo}, max={hi}")
    return lo, hi


class Fixed(Distribution):
    """Always ``value`` tokens."""

    def __init__(self, value: int):
        self.value = int(value)
        self.lo, self.hi = _bounds(self.value, self.value)

    def _draw(self, rng, n):
        return np.full(n, self.value, dtype=np.float64)

    @property
    def mean(self) -> float:
        return float(self.value)

    @property
    def variance(self) -> float:
        return 0.0


class Uniform(Distribution):
    """Integers uniform on ``[lo, hi]``, both ends included."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = _bounds(lo, hi)

    def _draw(self, rng, n):
        return rng.integers(self.lo, self.hi + 1, size=n).astype(np.float64)

    @property
    def mean(self) -> float:
        return (self.lo + self.hi) / 2.0

    @property
    def variance(self) -> float:
        return ((self.hi - self.lo + 1) ** 2 - 1) / 12.0


class _ClippedContinuous(Distribution):
    """Mean/variance of ``clip(X, lo, hi)`` from the partial moments
    ``E[X^k; a < X < b]`` of the underlying continuous ``X``."""

    @abstractmethod
    def _cdf(self, x: float) -> float:
        """P(X <= x) of the underlying continuous X."""

    @abstractmethod
    def _partial_moment(self, k: int, a: float, b: float) -> float:
        """E[X^k; a < X < b]."""

    def _clipped_moment(self, k: int) -> float:
        lo, hi = float(self.lo), float(self.hi)
        p_lo, p_hi = self._cdf(lo), 1.0 - self._cdf(hi)
        return lo**k * p_lo + self._partial_moment(k, lo, hi) + hi**k * p_hi

    @property
    def mean(self) -> float:
        return self._clipped_moment(1)

    @property
    def variance(self) -> float:
        m = self._clipped_moment(1)
        return max(self._clipped_moment(2) - m * m, 0.0)


class Normal(_ClippedContinuous):
    """Normal(``mu``, ``std``) rounded and clipped to ``[lo, hi]``."""

    def __init__(self, mu: float, std: float, lo: int = 1, hi: int = MAX_TOKENS):
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        self.mu, self.std = float(mu), float(std)
        self.lo, self.hi = _bounds(lo, hi)

    def _draw(self, rng, n):
        return rng.normal(self.mu, self.std, size=n)

    def _z(self, x: float) -> float:
        if self.std == 0:
            return math.copysign(math.inf, x - self.mu) if x != self.mu else 0.0
        return (x - self.mu) / self.std

    def _cdf(self, x):
        return float(ndtr(self._z(x)))

    def _partial_moment(self, k, a, b):
        za, zb = self._z(a), self._z(b)
        mass = float(ndtr(zb) - ndtr(za))
        s, mu = self.std, self.mu
        if k == 1:
            return mu * mass - s * (_pdf(zb) - _pdf(za))
        fa = 0.0 if math.isinf(za) else (a + mu) * _pdf(za)
        fb = 0.0 if math.isinf(zb) else (b + mu) * _pdf(zb)
        return (mu * mu + s * s) * mass - s * (fb - fa)


class LogNormal(_ClippedContinuous):
    """Lognormal with the given (unclipped) ``mean`` and log-space ``sigma``,
    rounded and clipped to ``[lo, hi]``.

    ``LogNormal.from_cv(mean, cv)`` takes the coefficient of variation instead:
    ``sigma**2 = log(1 + cv**2)``.
    """

    def __init__(self, mean: float, sigma: float, lo: int = 1, hi: int = MAX_TOKENS):
        if mean <= 0 or sigma < 0:
            raise ValueError(f"lognormal needs mean > 0 and sigma >= 0, got {mean}, {sigma}")
        self.target_mean, self.sigma = float(mean), float(sigma)
        self.mu = math.log(mean) - sigma * sigma / 2.0  # log-space location
        self.lo, self.hi = _bounds(lo, hi)

    @classmethod
    def from_cv(cls, mean: float, cv: float, lo: int = 1, hi: int = MAX_TOKENS) -> LogNormal:
        return cls(mean, math.sqrt(math.log1p(cv * cv)), lo, hi)

    def _draw(self, rng, n):
        return rng.lognormal(self.mu, self.sigma, size=n)

    def _cdf(self, x):
        if self.sigma == 0:
            return 1.0 if x >= self.target_mean else 0.0
        return float(ndtr((math.log(x) - self.mu) / self.sigma))

    def _partial_moment(self, k, a, b):
        # E[X^k; X <= x] = exp(k mu + k^2 s^2 / 2) * Phi((ln x - mu - k s^2) / s)
        s, mu = self.sigma, self.mu
        full = math.exp(k * mu + k * k * s * s / 2.0)
        if s == 0:
            return full if a < self.target_mean <= b else 0.0

        def below(x: float) -> float:
            return float(ndtr((math.log(x) - mu - k * s * s) / s))

        return full * (below(b) - below(a))


class Empirical(Distribution):
    """Draws uniformly (with replacement) from observed ``values``, each
    clipped to ``[lo, hi]``; reproduces the values' frequencies."""

    def __init__(self, values, lo: int = 1, hi: int = MAX_TOKENS):
        self.lo, self.hi = _bounds(lo, hi)
        v = np.asarray(values)
        if v.ndim != 1 or v.size == 0:
            raise ValueError("empirical distribution needs at least one value")
        self._values = np.clip(v.astype(np.int64), self.lo, self.hi)

    @property
    def values(self) -> np.ndarray:
        """The (clipped) values drawn from."""
        return self._values

    def _draw(self, rng, n):
        return self._values[rng.integers(0, self._values.size, size=n)].astype(np.float64)

    @property
    def mean(self) -> float:
        return float(self._values.mean())

    @property
    def variance(self) -> float:
        return float(self._values.var())

    def __repr__(self) -> str:
        return f"Empirical(n={self._values.size}, lo={self.lo}, hi={self.hi})"


# ------------------------------------------------- scenario specs (pydantic)
# The `prompt_tokens:` / `output_tokens:` entries of a traffic class; each
# spec's `build(base_dir)` returns the distribution above.
_CFG = ConfigDict(extra="forbid")
_TOK: dict[str, Any] = dict(ge=1, le=MAX_TOKENS)


class _Clip(BaseModel):
    model_config = _CFG
    min: int = Field(1, **_TOK, description="Smallest token count; draws below are raised to it.")
    max: int = Field(MAX_TOKENS, **_TOK, description="Largest token count; draws above are lowered to it.")

    @model_validator(mode="after")
    def _order(self):
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        return self


class FixedLength(BaseModel):
    """Always the same number of tokens."""

    model_config = _CFG
    dist: Literal["fixed"] = Field(description="Distribution name.")
    value: int = Field(..., **_TOK, description="Token count.")

    def build(self, base_dir: Path) -> Distribution:
        return Fixed(self.value)


class UniformLength(_Clip):
    """Integers uniform on [min, max], both included."""

    dist: Literal["uniform"] = Field(description="Distribution name.")

    def build(self, base_dir: Path) -> Distribution:
        return Uniform(self.min, self.max)


class NormalLength(_Clip):
    """Normal, rounded and clipped to [min, max]."""

    dist: Literal["normal"] = Field(description="Distribution name.")
    mean: float = Field(..., gt=0, le=MAX_TOKENS, description="Mean before clipping, tokens.")
    std: float = Field(..., ge=0, le=MAX_TOKENS, description="Standard deviation before clipping, tokens.")

    def build(self, base_dir: Path) -> Distribution:
        return Normal(self.mean, self.std, self.min, self.max)


class LogNormalLength(_Clip):
    """Lognormal given by its mean and either `cv` or `sigma`, rounded and
    clipped to [min, max]."""

    dist: Literal["lognormal"] = Field(description="Distribution name.")
    mean: float = Field(..., gt=0, le=MAX_TOKENS, description="Mean before clipping, tokens.")
    cv: Optional[float] = Field(
        None, ge=0, le=100, description="Coefficient of variation (std / mean) before clipping; give this or sigma."
    )
    sigma: Optional[float] = Field(None, ge=0, le=10, description="Standard deviation of log(tokens); give this or cv.")

    @model_validator(mode="after")
    def _one_shape(self):
        if (self.cv is None) == (self.sigma is None):
            raise ValueError("lognormal needs exactly one of `cv` or `sigma`")
        return self

    def build(self, base_dir: Path) -> Distribution:
        if self.cv is not None:
            return LogNormal.from_cv(self.mean, self.cv, self.min, self.max)
        return LogNormal(self.mean, self.sigma, self.min, self.max)  # type: ignore[arg-type]  # validator: cv or sigma


class EmpiricalLength(_Clip):
    """Resamples observed token counts: inline `values`, or one `column` of a
    CSV / JSONL file at `path`."""

    dist: Literal["empirical"] = Field(description="Distribution name.")
    values: Optional[list[Annotated[int, Field(ge=0, le=MAX_TOKENS)]]] = Field(
        None, min_length=1, description="Observed token counts (give this, or path + column)."
    )
    path: Optional[str] = Field(
        None,
        min_length=1,
        description="CSV or JSONL file with observed token counts, relative to the scenario file's folder.",
    )
    column: Optional[str] = Field(
        None, min_length=1, description="CSV column name or JSONL key holding the counts (with path)."
    )

    @model_validator(mode="after")
    def _source(self):
        if (self.values is None) == (self.path is None):
            raise ValueError("empirical needs exactly one of `values` or `path` (+ `column`)")
        if self.path is not None and self.column is None:
            raise ValueError("empirical with `path` needs `column` (CSV column name or JSONL key)")
        return self

    def build(self, base_dir: Path, field: str = "empirical.path") -> Distribution:
        if self.values is not None:
            return Empirical(self.values, self.min, self.max)
        # validator: without values, path and column are set
        return Empirical(read_values(Path(base_dir) / self.path, self.column, field), self.min, self.max)  # type: ignore[operator, arg-type]


_LENGTHS = (FixedLength, UniformLength, NormalLength, LogNormalLength, EmpiricalLength)
LENGTH_NAMES = [get_args(m.model_fields["dist"].annotation)[0] for m in _LENGTHS]
LengthSpec = Annotated[
    Union[FixedLength, UniformLength, NormalLength, LogNormalLength, EmpiricalLength],  # = _LENGTHS
    Field(discriminator="dist"),
]
