"""The scenario's ``traffic:`` section as pydantic models.

Unknown keys are errors (``extra="forbid"``); every field has bounds and a
description, which become the generated format reference and the CLI help.
``sim.scenario.spec`` embeds ``TrafficSpec``; ``sim.workload.generate.generate_workload``
turns it into a ``Workload``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from sim.errors import unknown_name
from sim.workload import distributions as dists
from sim.workload.distributions import (
    LENGTH_NAMES,
    EmpiricalLength,
    FixedLength,
    LengthSpec,
    LogNormalLength,
    NormalLength,
    UniformLength,
)
from sim.workload.session_spec import SessionSpec
from sim.workload.traces import read_values

__all__ = [
    "MAX_LATENCY_S",
    "PERCENTILES",
    "SLO_METRICS",
    "SloSpec",
    "PrefixSpec",
    "SessionSpec",
    "FixedLength",
    "UniformLength",
    "NormalLength",
    "LogNormalLength",
    "EmpiricalLength",
    "LengthSpec",
    "PoissonArrival",
    "GammaArrival",
    "ConstantArrival",
    "MmppArrival",
    "DiurnalArrival",
    "TraceArrival",
    "ByClassArrival",
    "RateProfile",
    "BatchSpec",
    "ArrivalSpec",
    "ClassArrivalSpec",
    "JointLengthsSpec",
    "ClassSpec",
    "TrafficSpec",
]

_CFG = ConfigDict(extra="forbid")
_TOK: dict[str, Any] = dict(ge=1, le=dists.MAX_TOKENS)

#: SLO percentile keys -> percentile (YAML: write ``p99.9`` as a plain key).
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}
#: SLO metrics, named like the record columns.
SLO_METRICS = ("ttft_s", "tpot_s", "e2e_s")


def _check_tag(value, key: str, kind: str, valid: list[str]):
    """Friendlier error than pydantic's for a bad discriminator (did you mean)."""
    if isinstance(value, dict):
        if key not in value:
            raise ValueError(f"missing `{key}:`; valid {kind} names: {', '.join(sorted(valid))}")
        if value[key] not in valid:
            raise ValueError(unknown_name(kind, value[key], valid))
    return value


# --------------------------------------------------------------------- SLOs
#: The longest latency the scenario format and the log readers take, s (11.6 days): an SLO threshold, or a
#: request's time to first token or completion read from a log, past it is a bad value (1e300 was read as one).
MAX_LATENCY_S = 1e6
_Thresholds = Optional[dict[str, Annotated[float, Field(gt=0, le=MAX_LATENCY_S)]]]


class SloSpec(BaseModel):
    """Latency objectives of one class. Each metric maps percentile keys
    (``p50 p90 p95 p99 p99.9``) to a threshold in seconds, e.g.
    ``ttft_s: {p99: 2.0, p50: 0.5}``."""

    model_config = _CFG
    ttft_s: _Thresholds = Field(
        None, description="Time to first token thresholds, s, by percentile key (p50, p90, p95, p99, p99.9)."
    )
    tpot_s: _Thresholds = Field(
        None, description="Time per output token (after the first) thresholds, s, by percentile key."
    )
    e2e_s: _Thresholds = Field(None, description="End-to-end latency thresholds, s, by percentile key.")
    attainment_pct: float = Field(
        99.0,
        gt=0,
        le=100,
        description="Percent of the class's requests that must meet their per-request thresholds (see `request_thresholds`) for the class to meet its SLO.",
    )

    @field_validator("ttft_s", "tpot_s", "e2e_s", mode="before")
    @classmethod
    def _keys(cls, v):
        if isinstance(v, dict):
            for k in v:
                if str(k) not in PERCENTILES:
                    raise ValueError(unknown_name("percentile", str(k), PERCENTILES))
            v = {str(k): x for k, x in v.items()}
        return v

    def thresholds(self) -> dict[str, tuple[tuple[float, float], ...]]:
        """Metric -> ``((percentile, seconds), ...)`` sorted by percentile,
        e.g. ``{"ttft_s": ((50.0, 0.5), (99.0, 2.0))}``; metrics without a
        threshold are left out."""
        out = {}
        for metric in SLO_METRICS:
            given = getattr(self, metric)
            if given:
                out[metric] = tuple(sorted((PERCENTILES[k], float(s)) for k, s in given.items()))
        return out

    def request_thresholds(self) -> dict[str, float]:
        """Metric -> per-request threshold, s: the value given for the highest
        percentile. A request meets its SLO when every metric is at or under
        its threshold."""
        return {m: pairs[-1][1] for m, pairs in self.thresholds().items()}

    def met(self, ttft_s, tpot_s, e2e_s) -> np.ndarray:
        """Boolean array: which requests meet every per-request threshold.

        NaN TTFT/E2E (never served) is a miss; NaN TPOT (a single output
        token has no inter-token time) meets the TPOT threshold.
        """
        values = {"ttft_s": ttft_s, "tpot_s": tpot_s, "e2e_s": e2e_s}
        ok = np.ones(np.shape(np.asarray(ttft_s, dtype=float)), dtype=bool)
        for metric, limit in self.request_thresholds().items():
            x = np.asarray(values[metric], dtype=float)
            ok &= (x <= limit) | (np.isnan(x) if metric == "tpot_s" else False)
        ok &= ~np.isnan(np.asarray(ttft_s, dtype=float)) & ~np.isnan(np.asarray(e2e_s, dtype=float))
        return ok


# ------------------------------------------------------- shared prefixes
class PrefixSpec(BaseModel):
    """A shared prompt prefix (a system prompt, a few-shot preamble): the
    first `tokens` prompt tokens of each request of the class are one of
    `num_distinct` shared prefixes."""

    model_config = _CFG
    tokens: int = Field(
        ...,
        **_TOK,
        description="Length of the shared prefix, tokens. A prompt no longer than this shares only its first prompt_tokens - 1 tokens.",
    )
    num_distinct: int = Field(1, ge=1, le=10_000_000, description="How many different prefixes the class uses.")
    zipf_s: Optional[float] = Field(
        None,
        gt=0,
        le=10,
        description="Zipf exponent of prefix popularity (prefix i has weight i^-zipf_s); omitted = uniform.",
    )

    def probabilities(self) -> np.ndarray:
        """Probability of each prefix index."""
        if self.zipf_s is None:
            return np.full(self.num_distinct, 1.0 / self.num_distinct)
        w = np.arange(1, self.num_distinct + 1, dtype=float) ** -self.zipf_s
        return w / w.sum()


# -------------------------------------------------------------- arrivals
_RATE_DOC = "Total arrival rate, requests/s; omit when every class gives rate_rps (the total is their sum)."


class RateProfile(BaseModel):
    """A repeating rate curve on top of a process: in bin ``i`` of the period the rate is
    ``rate_rps x factors[i] / mean(factors)`` (piecewise constant; the period is
    ``bin_s x len(factors)``), so ``rate_rps`` stays the long-run mean rate. The process runs
    in the curve's time (time rescaling: a gamma or mmpp process keeps its burstiness,
    stretched where the rate is low). ``fleetcast traffic fit`` writes hour-of-week (168
    bins of 3600 s), hour-of-day (24 bins) or, for a log shorter than a day, the log's own
    rate by minutes."""

    model_config = _CFG
    bin_s: float = Field(3600.0, ge=1, le=1e7, description="Length of one bin of the curve, s.")
    factors: list[Annotated[float, Field(ge=0, le=1e6)]] = Field(
        ...,
        min_length=1,
        max_length=10_080,
        description="Relative rate of each bin (any scale; rescaled to mean 1); the curve repeats after the last bin.",
    )
    start_s: float = Field(0.0, ge=0, le=1e9, description="Where in the period time 0 falls, s from its first bin.")

    @model_validator(mode="after")
    def _shape(self):
        if max(self.factors) <= 0:
            raise ValueError("factors need at least one value > 0")
        if self.start_s >= self.period_s:
            raise ValueError(
                f"start_s ({self.start_s:g}) must be less than the period bin_s x len(factors) = {self.period_s:g} s"
            )
        return self

    @property
    def period_s(self) -> float:
        return self.bin_s * len(self.factors)

    def normalized(self) -> np.ndarray:
        """The factors rescaled to mean 1."""
        f = np.asarray(self.factors, dtype=float)
        return f / f.mean()

    def factor_at(self, t_s) -> np.ndarray:
        """The rate's multiplier (mean 1) at run times ``t_s``."""
        i = ((np.asarray(t_s, dtype=float) + self.start_s) // self.bin_s).astype(np.int64) % len(self.factors)
        return self.normalized()[i]


class BatchSpec(BaseModel):
    """Compound (batch) arrivals: each event of the process brings several requests at the same
    instant. Sizes are geometric on 1, 2, ... with mean ``mean_size``, or ``size_weights``
    (the weight of size 1, 2, ...). The process's events then come at ``rate_rps / mean size``,
    so ``rate_rps`` stays requests/s."""

    model_config = _CFG
    mean_size: Optional[float] = Field(
        None, ge=1, le=1000, description="Mean batch size (geometric sizes on 1, 2, ...); or give size_weights."
    )
    size_weights: Optional[list[Annotated[float, Field(ge=0, le=1e12)]]] = Field(
        None, min_length=1, max_length=10_000, description="Weight of each batch size 1, 2, ... (any scale)."
    )

    @model_validator(mode="after")
    def _one(self):
        if (self.mean_size is None) == (self.size_weights is None):
            raise ValueError("give mean_size or size_weights (one of them)")
        if self.size_weights is not None and max(self.size_weights) <= 0:
            raise ValueError("size_weights need at least one value > 0")
        return self

    def mean(self) -> float:
        """Mean batch size."""
        if self.size_weights is None:
            return float(self.mean_size)  # type: ignore[arg-type]  # _one: one of them is given
        w = np.asarray(self.size_weights, dtype=float)
        return float((w * np.arange(1, w.size + 1)).sum() / w.sum())

    def sample(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k`` batch sizes (int64, >= 1)."""
        if self.size_weights is None:
            return rng.geometric(1.0 / float(self.mean_size), k).astype(np.int64)  # type: ignore[arg-type]
        w = np.asarray(self.size_weights, dtype=float)
        return rng.choice(w.size, size=k, p=w / w.sum()).astype(np.int64) + 1


class PoissonArrival(BaseModel):
    """Poisson arrivals: exponential gaps at a constant rate (open loop)."""

    model_config = _CFG
    process: Literal["poisson"] = Field(description="Arrival process name.")
    rate_rps: Optional[float] = Field(None, gt=0, le=1e6, description=_RATE_DOC)
    profile: Optional[RateProfile] = Field(
        None,
        description="A repeating rate curve (hour of week, hour of day) the process follows; omitted = a constant rate.",
    )
    batch: Optional[BatchSpec] = Field(
        None, description="Requests arrive in batches (several at one instant); omitted = one at a time."
    )


class GammaArrival(PoissonArrival):
    """Renewal arrivals with gamma gaps: `cv` > 1 is burstier than Poisson."""

    process: Literal["gamma"] = Field(description="Arrival process name.")  # type: ignore[assignment]  # the discriminator
    cv: float = Field(
        ...,
        gt=0,
        le=100,
        description="Coefficient of variation of the inter-arrival gaps (1 = Poisson; higher = burstier).",
    )


class ConstantArrival(PoissonArrival):
    """Evenly spaced arrivals, the first at 0 s."""

    process: Literal["constant"] = Field(description="Arrival process name.")  # type: ignore[assignment]  # the discriminator


class MmppArrival(PoissonArrival):
    """Markov-modulated Poisson arrivals: the rate switches between levels (regimes),
    each held for an exponential time; Poisson within a regime. The chain jumps to
    one of the other levels, uniformly, so level i holds a fraction of the time
    proportional to its mean_sojourn_s; the levels are rescaled so the long-run
    mean rate is rate_rps."""

    process: Literal["mmpp"] = Field(description="Arrival process name.")  # type: ignore[assignment]  # the discriminator
    levels: list[Annotated[float, Field(ge=0, le=1e6)]] = Field(
        ...,
        min_length=2,
        max_length=8,
        description="Relative rate of each regime (any scale; rescaled so the mean rate is rate_rps), 2 to 8 of them.",
    )
    mean_sojourn_s: list[Annotated[float, Field(gt=0, le=1e8)]] = Field(
        ..., min_length=2, max_length=8, description="Mean time the process stays in each regime, s (one per level)."
    )
    jumps: Optional[list[list[Annotated[float, Field(ge=0, le=1e12)]]]] = Field(
        None,
        description="Where each regime goes when it leaves: row i holds the weights of moving to each regime (row i's own entry is ignored); omitted = uniformly to one of the others.",
    )

    @model_validator(mode="after")
    def _shape(self):
        if len(self.levels) != len(self.mean_sojourn_s):
            raise ValueError(
                f"levels ({len(self.levels)}) and mean_sojourn_s ({len(self.mean_sojourn_s)}) need one entry per regime each"
            )
        if max(self.levels) <= 0:
            raise ValueError("levels need at least one value > 0")
        if self.jumps is not None:
            k = len(self.levels)
            if len(self.jumps) != k or any(len(row) != k for row in self.jumps):
                raise ValueError(f"jumps needs {k} rows of {k} weights (one per regime)")
            empty = [i for i in range(k) if sum(w for j, w in enumerate(self.jumps[i]) if j != i) <= 0]
            if empty:
                raise ValueError(f"jumps row {empty[0]} gives no other regime a weight > 0")
        return self

    def jump_matrix(self) -> np.ndarray:
        """Probabilities of moving from regime i (row) to j when i ends; the diagonal is 0."""
        k = len(self.levels)
        j = np.ones((k, k)) if self.jumps is None else np.asarray(self.jumps, dtype=float)
        np.fill_diagonal(j, 0.0)
        return j / j.sum(axis=1, keepdims=True)

    def regime_rates(self, mean_rate_rps: float) -> tuple[np.ndarray, np.ndarray]:
        """(rate of each regime, requests/s; its long-run fraction of time)."""
        hold = np.asarray(self.mean_sojourn_s, dtype=float)
        if self.jumps is None:
            frac = hold / hold.sum()
        else:  # visits: the jump chain's stationary distribution; time: visits x holding time
            vals, vecs = np.linalg.eig(self.jump_matrix().T)
            visits = np.abs(np.real(vecs[:, int(np.argmin(np.abs(vals - 1.0)))]))
            frac = visits * hold / float((visits * hold).sum())
        lv = np.asarray(self.levels, dtype=float)
        return lv * (mean_rate_rps / float((frac * lv).sum())), frac


class DiurnalArrival(BaseModel):
    """Non-homogeneous Poisson arrivals following a daily rate curve
    (piecewise linear, wraps around midnight), generated by thinning."""

    model_config = _CFG
    process: Literal["diurnal"] = Field(description="Arrival process name.")
    rate_points: list[tuple[Annotated[float, Field(ge=0, lt=24)], Annotated[float, Field(ge=0, le=1e6)]]] = Field(
        ...,
        min_length=1,
        description="[[hour, rps], ...]: the rate at those hours of the day (0 <= hour < 24), linear in between, wrapping from the last point to the first.",
    )
    day_length_s: float = Field(
        86400.0,
        gt=0,
        le=1e8,
        description="Seconds of simulated time per day; less than 86400 compresses a day into the run.",
    )
    start_hour: float = Field(0.0, ge=0, lt=24, description="Hour of the day at time 0.")

    @field_validator("rate_points")
    @classmethod
    def _points(cls, pts):
        hours = [h for h, _ in pts]
        if len(set(hours)) != len(hours):
            raise ValueError(f"rate_points repeat an hour: {sorted(hours)}")
        if max(r for _, r in pts) <= 0:
            raise ValueError("rate_points need at least one rate > 0")
        return sorted(pts)

    def rate_at(self, t_s) -> np.ndarray:
        """Arrival rate, requests/s, at run times ``t_s``."""
        hours = (self.start_hour + 24.0 * np.asarray(t_s, dtype=float) / self.day_length_s) % 24.0
        h = np.array([p[0] for p in self.rate_points])
        r = np.array([p[1] for p in self.rate_points])
        return np.interp(hours, np.r_[h[-1] - 24, h, h[0] + 24], np.r_[r[-1], r, r[0]])


class TraceArrival(BaseModel):
    """Replays a request trace: arrival times and prompt/output lengths come
    from the file (the classes' length distributions are not used)."""

    model_config = _CFG
    process: Literal["trace"] = Field(description="Arrival process name.")
    path: str = Field(..., min_length=1, description="Trace file, relative to the scenario file's folder.")
    preset: Literal["azure-2023", "mooncake", "generic"] = Field(
        "generic",
        description="Column layout: azure-2023 (TIMESTAMP, ContextTokens, GeneratedTokens), mooncake (timestamp ms, input_length, output_length, hash_ids), generic (arrival_s, prompt_tokens, output_tokens[, class]).",
    )
    format: Optional[Literal["csv", "jsonl"]] = Field(
        None, description="File format; default from the preset, else from the file extension."
    )
    columns: dict[Literal["arrival_s", "prompt_tokens", "output_tokens", "class", "hash_ids"], str] = Field(
        default_factory=dict,
        description="Overrides of the preset's column names (CSV header or JSONL key) for arrival_s, prompt_tokens, output_tokens, class, hash_ids.",
    )
    time_unit: Optional[Literal["s", "ms", "us", "datetime"]] = Field(
        None, description="Unit of the arrival column (datetime = wall-clock strings); default from the preset."
    )
    time_scale: Optional[float] = Field(
        None, gt=0, le=1e6, description="Multiply every inter-arrival gap by this (2 = half the rate)."
    )
    target_rate_rps: Optional[float] = Field(
        None, gt=0, le=1e6, description="Rescale the gaps so the replayed requests' mean rate is this, requests/s."
    )
    start_s: float = Field(
        0.0, ge=0, le=1e9, description="Skip the trace's first seconds (trace time, before scaling)."
    )
    max_requests: Optional[int] = Field(None, ge=1, le=1_000_000_000, description="Replay at most this many requests.")
    hash_block_tokens: int = Field(
        512, ge=1, le=1_000_000, description="Prompt tokens per hash_ids entry (Mooncake: 512)."
    )

    @model_validator(mode="after")
    def _scale(self):
        if self.time_scale is not None and self.target_rate_rps is not None:
            raise ValueError("give time_scale or target_rate_rps, not both")
        return self


class ByClassArrival(BaseModel):
    """Each class has its own arrival process (``classes[].arrival``, each with its rate); the
    traffic is their superposition."""

    model_config = _CFG
    process: Literal["by_class"] = Field(description="Arrival process name.")


_ARRIVALS = (PoissonArrival, GammaArrival, ConstantArrival, MmppArrival, DiurnalArrival, TraceArrival, ByClassArrival)
ARRIVAL_NAMES = [get_args(m.model_fields["process"].annotation)[0] for m in _ARRIVALS]
ArrivalSpec = Annotated[
    Union[
        PoissonArrival, GammaArrival, ConstantArrival, MmppArrival, DiurnalArrival, TraceArrival, ByClassArrival
    ],  # = _ARRIVALS
    Field(discriminator="process"),
]
_CLASS_ARRIVALS = (PoissonArrival, GammaArrival, MmppArrival)
CLASS_ARRIVAL_NAMES = [get_args(m.model_fields["process"].annotation)[0] for m in _CLASS_ARRIVALS]
ClassArrivalSpec = Annotated[Union[PoissonArrival, GammaArrival, MmppArrival], Field(discriminator="process")]


# ------------------------------------------------- joint prompt/output lengths
class JointLengthsSpec(BaseModel):
    """Prompt and output lengths drawn together: each request takes one row of a
    table of observed (prompt, output) pairs, uniformly with replacement, so the
    dependence between the two (and each one's distribution) is the table's."""

    model_config = _CFG
    path: str = Field(
        ..., min_length=1, description="CSV or JSONL file of observed pairs, relative to the scenario file's folder."
    )
    prompt_column: str = Field("prompt_tokens", min_length=1, description="Column (or JSONL key) of the prompt tokens.")
    output_column: str = Field("output_tokens", min_length=1, description="Column (or JSONL key) of the output tokens.")

    def build(self, base_dir, field: str) -> tuple[np.ndarray, np.ndarray]:
        """(prompt, output) token counts of the table's rows, each >= 1 (0 is raised to 1)."""
        path = Path(base_dir) / self.path
        prompt = read_values(path, self.prompt_column, field)
        output = read_values(path, self.output_column, field)
        return np.maximum(prompt, 1), np.maximum(output, 1)


# --------------------------------------------------------------- classes
class ClassSpec(BaseModel):
    """One traffic class: its share of the arrivals, lengths, prefix and SLO."""

    model_config = _CFG
    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Class name (letters, digits, _ . : -), unique; trace class values must match it.",
    )
    share: Optional[float] = Field(
        None,
        gt=0,
        le=1,
        description="Fraction of the arrivals in this class; shares of all classes sum to 1. A single class may omit it.",
    )
    rate_rps: Optional[float] = Field(
        None,
        gt=0,
        le=1e6,
        description="This class's arrival rate, requests/s (instead of share; all classes then give one).",
    )
    prompt_tokens: Optional[LengthSpec] = Field(
        None,
        description="Prompt length distribution (dist: fixed|uniform|normal|lognormal|empirical). Required for synthetic arrivals; ignored for trace arrivals.",
    )
    output_tokens: Optional[LengthSpec] = Field(
        None,
        description="Output length distribution, like prompt_tokens. Required for synthetic arrivals; ignored for trace arrivals.",
    )
    lengths_table: Optional[JointLengthsSpec] = Field(
        None,
        description="Prompt and output lengths drawn together from a table of observed pairs (keeps their dependence), instead of prompt_tokens and output_tokens.",
    )
    prefix: Optional[PrefixSpec] = Field(
        None, description="Shared prompt prefix of this class (for prefix caching); omitted = none."
    )
    session: Optional[SessionSpec] = Field(
        None,
        description="Conversations: each arrival starts a session of turns, each turn's prompt extending the previous turn's prompt and output (see SessionSpec); omitted = single requests.",
    )
    arrival: Optional[ClassArrivalSpec] = Field(
        None,
        description="This class's own arrival process (poisson|gamma|mmpp, with its rate_rps) when traffic.arrival is `process: by_class`.",
    )
    slo: Optional[SloSpec] = Field(None, description="Latency objectives of this class; omitted = none.")
    priority: int = Field(
        0, ge=-1000, le=1000, description="Higher = more important (used by the priority batching policy)."
    )
    acceptance_rate: Optional[float] = Field(
        None,
        ge=0,
        le=1,
        description="Speculative decoding: probability each token a speculative pool proposes for this class is accepted, in [0, 1] (i.i.d. per token); omitted = the pool's engine.speculative.acceptance_rate.",
    )

    @field_validator("prompt_tokens", "output_tokens", mode="before")
    @classmethod
    def _dist_name(cls, v):
        return _check_tag(v, "dist", "length distribution", LENGTH_NAMES)

    @field_validator("arrival", mode="before")
    @classmethod
    def _process_name(cls, v):
        return _check_tag(v, "process", "class arrival process", CLASS_ARRIVAL_NAMES)


# --------------------------------------------------------------- traffic
class TrafficSpec(BaseModel):
    """What arrives: when (the arrival process), which class, how long."""

    model_config = _CFG
    duration_s: float = Field(..., gt=0, le=1e8, description="Arrivals are generated in [0, duration_s), seconds.")
    warmup_s: float = Field(
        0.0,
        ge=0,
        le=1e8,
        description="Requests arriving in the first seconds are left out of the steady-state metrics.",
    )
    cooldown_s: float = Field(0.0, ge=0, le=1e8, description="Requests arriving in the last seconds are left out too.")
    arrival: ArrivalSpec = Field(
        ..., description="Arrival process (process: poisson|gamma|constant|mmpp|diurnal|trace|by_class)."
    )
    classes: list[ClassSpec] = Field(..., min_length=1, max_length=1000, description="Traffic classes.")

    @field_validator("arrival", mode="before")
    @classmethod
    def _process_name(cls, v):
        return _check_tag(v, "process", "arrival process", ARRIVAL_NAMES)

    @model_validator(mode="after")
    def _consistent(self):
        if self.warmup_s + self.cooldown_s >= self.duration_s:
            raise ValueError(
                f"warmup_s + cooldown_s ({self.warmup_s:g} + {self.cooldown_s:g}) must be less than duration_s ({self.duration_s:g})"
            )
        names = [c.name for c in self.classes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"class names must be unique; repeated: {', '.join(dup)}")
        self._check_rates()
        both = [c.name for c in self.classes if c.lengths_table and (c.prompt_tokens or c.output_tokens)]
        if both:
            raise ValueError(
                f"give a class lengths_table or prompt_tokens/output_tokens, not both (class {', '.join(both)})"
            )
        sessions = [i for i, c in enumerate(self.classes) if c.session is not None]
        if sessions and self.is_trace:  # located at the (first) session's own line, not the traffic block's
            i = sessions[0]
            raise ValidationError.from_exception_data(
                "TrafficSpec",
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "value_error",
                            f"class {', '.join(self.classes[j].name for j in sessions)}: session needs synthetic "
                            "arrivals (the trace gives every request); drop session or use a poisson, gamma, "
                            "constant, mmpp, diurnal or by_class process",
                        ),
                        loc=("classes", i, "session"),
                        input=self.classes[i].session,
                    )
                ],
            )
        if not self.is_trace:
            missing = [
                f"{c.name}.{f}"
                for c in self.classes
                if c.lengths_table is None
                for f in ("prompt_tokens", "output_tokens")
                if getattr(c, f) is None
            ]
            if missing:
                raise ValueError(
                    f"synthetic arrivals need a length distribution (or a class lengths_table) for: {', '.join(missing)}"
                )
        return self

    def _check_by_class(self) -> None:
        own = [c.name for c in self.classes if c.arrival is not None]
        if not isinstance(self.arrival, ByClassArrival):
            if own:
                raise ValueError(
                    f"classes {', '.join(own)} give their own arrival: set traffic.arrival to {{process: by_class}}"
                )
            return
        missing = [c.name for c in self.classes if c.arrival is None or c.arrival.rate_rps is None]
        if missing:
            raise ValueError(
                f"arrival process by_class: every class needs an arrival with its rate_rps (missing: {', '.join(missing)})"
            )
        mixed = [c.name for c in self.classes if c.share is not None or c.rate_rps is not None]
        if mixed:
            raise ValueError(
                f"arrival process by_class: a class's rate is its arrival.rate_rps; drop share/rate_rps from {', '.join(mixed)}"
            )

    def _check_rates(self) -> None:
        self._check_by_class()
        if isinstance(self.arrival, ByClassArrival):
            return
        with_share = [c.name for c in self.classes if c.share is not None]
        with_rate = [c.name for c in self.classes if c.rate_rps is not None]
        if with_share and with_rate:
            raise ValueError(
                f"give every class a share or every class a rate_rps, not a mix (share: {', '.join(with_share)}; rate_rps: {', '.join(with_rate)})"
            )
        if with_rate:
            if not isinstance(self.arrival, PoissonArrival):  # poisson/gamma/constant (and subclasses)
                raise ValueError(
                    f"per-class rate_rps needs a poisson, gamma, constant or mmpp arrival process, not {self.arrival.process}; use share"
                )
            if len(with_rate) != len(self.classes):
                raise ValueError(
                    f"every class needs rate_rps (missing: {', '.join(c.name for c in self.classes if c.rate_rps is None)})"
                )
            total = sum(c.rate_rps for c in self.classes)  # type: ignore[misc]  # every class has one (checked above)
            if self.arrival.rate_rps is not None and not math.isclose(total, self.arrival.rate_rps, rel_tol=1e-6):
                raise ValueError(
                    f"arrival.rate_rps ({self.arrival.rate_rps:g}) differs from the sum of the classes' rate_rps ({total:g}); omit arrival.rate_rps"
                )
            return
        if isinstance(self.arrival, PoissonArrival) and self.arrival.rate_rps is None:
            raise ValueError(
                f"arrival.rate_rps is required for a {self.arrival.process} process unless every class gives rate_rps"
            )
        if with_share:
            if len(with_share) != len(self.classes):
                raise ValueError(
                    f"every class needs a share (missing: {', '.join(c.name for c in self.classes if c.share is None)})"
                )
            total = sum(c.share for c in self.classes)  # type: ignore[misc]  # every class has one (checked above)
            if abs(total - 1.0) > 1e-6:
                parts = ", ".join(f"{c.name}={c.share:g}" for c in self.classes)
                raise ValueError(f"class shares sum to {total:g} ({parts}); they must sum to 1")
        elif len(self.classes) > 1 and not self.is_trace:
            raise ValueError("with more than one class, give every class a share (or a rate_rps)")

    @property
    def is_trace(self) -> bool:
        return isinstance(self.arrival, TraceArrival)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def shares(self) -> Optional[np.ndarray]:
        """Fraction of arrivals per class (declared order), or None when
        several classes give neither (a trace whose class column decides)."""
        if isinstance(self.arrival, ByClassArrival):
            r = np.array(self._class_rates(), dtype=float)
            return r / r.sum()
        if all(c.rate_rps is not None for c in self.classes):
            r = np.array([c.rate_rps for c in self.classes], dtype=float)
            return r / r.sum()
        if len(self.classes) == 1:
            return np.ones(1)
        if all(c.share is not None for c in self.classes):
            s = np.array([c.share for c in self.classes], dtype=float)
            return s / s.sum()
        return None

    def _class_rates(self) -> list[float]:
        """Each class's own arrival rate, requests/s (``by_class``: every class has one)."""
        return [float(c.arrival.rate_rps) if c.arrival and c.arrival.rate_rps else 0.0 for c in self.classes]

    def total_rate_rps(self) -> Optional[float]:
        """Total (long-run mean) rate of a poisson/gamma/constant/mmpp process or of the classes'
        own processes, requests/s."""
        if isinstance(self.arrival, ByClassArrival):
            return float(sum(self._class_rates()))
        if not isinstance(self.arrival, PoissonArrival):
            return None
        if self.arrival.rate_rps is not None:
            return float(self.arrival.rate_rps)
        return float(sum(c.rate_rps for c in self.classes))  # type: ignore[misc]  # _check_rates: then every class has one

    def window(self) -> tuple[float, float]:
        """Steady-state window (start_s, end_s) by arrival time."""
        return (self.warmup_s, self.duration_s - self.cooldown_s)
