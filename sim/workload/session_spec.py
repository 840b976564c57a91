"""A traffic class's conversations (multi-turn sessions): ``classes[].session:``.

Each event of the class's arrival process starts a session of K turns (geometric with
``mean_turns``, or ``turn_weights``); turn k+1 arrives ``gap_s`` after turn k arrived (``gap_from:
arrival``, the default) or after turn k ended (``gap_from: completion``: the user reads the answer,
thinks, and sends the next turn; the engine releases it, ``sim.engine.fleet``), and its
prompt is turn k's prompt, turn k's output and ``new_tokens`` new user tokens, in that order, so
the prefix cache finds turn k's prompt blocks in turn k+1 (``sim.workload.sessions``). The class's
``rate_rps`` stays requests/s: sessions start at ``rate_rps / mean turns``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sim.errors import unknown_name
from sim.workload.distributions import LENGTH_NAMES, MAX_TOKENS, LengthSpec

__all__ = [
    "FixedGap",
    "ExponentialGap",
    "LogNormalGap",
    "EmpiricalGap",
    "GapSpec",
    "GAP_NAMES",
    "SessionSpec",
    "ContinueByPrompt",
    "MAX_TURNS",
]

_CFG = ConfigDict(extra="forbid")
#: Most turns one session may have (a bound on turn_weights' length and on a draw).
MAX_TURNS = 10_000
_GAP_MAX_S = 1e7


class FixedGap(BaseModel):
    """Always the same gap."""

    model_config = _CFG
    dist: Literal["fixed"] = Field(description="Distribution name.")
    value_s: float = Field(..., ge=0, le=_GAP_MAX_S, description="The gap, s.")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, float(self.value_s))

    def mean(self) -> float:
        """Mean gap, s."""
        return float(self.value_s)


class ExponentialGap(BaseModel):
    """Exponential gaps (memoryless: a user equally likely to come back at any moment)."""

    model_config = _CFG
    dist: Literal["exponential"] = Field(description="Distribution name.")
    mean_s: float = Field(..., gt=0, le=_GAP_MAX_S, description="Mean gap, s.")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(float(self.mean_s), n)

    def mean(self) -> float:
        """Mean gap, s."""
        return float(self.mean_s)


class LogNormalGap(BaseModel):
    """Lognormal gaps: ``log(gap)`` normal with median ``median_s`` and standard deviation ``sigma``."""

    model_config = _CFG
    dist: Literal["lognormal"] = Field(description="Distribution name.")
    median_s: float = Field(..., gt=0, le=_GAP_MAX_S, description="Median gap, s (exp of log(gap)'s mean).")
    sigma: float = Field(..., ge=0, le=10, description="Standard deviation of log(gap).")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(rng.lognormal(math.log(self.median_s), self.sigma, n), _GAP_MAX_S)

    def mean(self) -> float:
        """Mean gap, s."""
        return float(self.median_s) * math.exp(self.sigma * self.sigma / 2.0)


class EmpiricalGap(BaseModel):
    """Resamples observed gaps with replacement: uniformly, or by `weights`."""

    model_config = _CFG
    dist: Literal["empirical"] = Field(description="Distribution name.")
    values_s: list[Annotated[float, Field(ge=0, le=_GAP_MAX_S)]] = Field(
        ..., min_length=1, max_length=1_000_000, description="Observed gaps, s."
    )
    weights: Optional[list[Annotated[float, Field(ge=0, le=1e12)]]] = Field(
        None,
        description="Weight of each value (any scale; e.g. a fit's correction for gaps too long to fit in the log); omitted = equal.",
    )

    @model_validator(mode="after")
    def _weights(self):
        if self.weights is not None:
            if len(self.weights) != len(self.values_s):
                raise ValueError(
                    f"weights ({len(self.weights)}) needs one entry per value of values_s ({len(self.values_s)})"
                )
            if max(self.weights) <= 0:
                raise ValueError("weights need at least one value > 0")
        return self

    def _p(self) -> Optional[np.ndarray]:
        if self.weights is None:
            return None
        w = np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        v = np.asarray(self.values_s, dtype=float)
        p = self._p()
        if p is None:
            return v[rng.integers(0, v.size, size=n)]
        return v[rng.choice(v.size, size=n, p=p)]

    def mean(self) -> float:
        """Mean gap, s."""
        p = self._p()
        return float(np.mean(self.values_s)) if p is None else float((np.asarray(self.values_s) * p).sum())


_GAPS = (FixedGap, ExponentialGap, LogNormalGap, EmpiricalGap)
GAP_NAMES = [get_args(m.model_fields["dist"].annotation)[0] for m in _GAPS]
GapSpec = Annotated[Union[FixedGap, ExponentialGap, LogNormalGap, EmpiricalGap], Field(discriminator="dist")]


def _tag(value, kind: str, valid: list[str]):
    if isinstance(value, dict):
        if "dist" not in value:
            raise ValueError(f"missing `dist:`; valid {kind} names: {', '.join(sorted(valid))}")
        if value["dist"] not in valid:
            raise ValueError(unknown_name(kind, value["dist"], valid))
    return value


class ContinueByPrompt(BaseModel):
    """Whether a turn is continued depends on its prompt's length: among the turns of one depth
    (turn number) from `from_turn` on, the odds that a turn has a next turn are proportional to
    `prompt_tokens ** log_odds_per_ln_tok` (a logistic in ln(prompt tokens) with a common slope).
    How many of a depth's turns continue stays what mean_turns / turn_weights give: the generator
    solves each depth's intercept over the turns it drew, so the mean turns and the request rate
    are kept and only which turns continue changes."""

    model_config = _CFG
    log_odds_per_ln_tok: float = Field(
        ...,
        ge=-20,
        le=20,
        allow_inf_nan=False,
        description="Change in a turn's log-odds of a next turn per unit of ln(prompt tokens) (per e-fold of its "
        "prompt); < 0: longer turns are continued less often; 0: no dependence.",
    )
    from_turn: int = Field(
        2,
        ge=1,
        le=MAX_TURNS,
        description="First turn (1 = a session's first) whose continuation depends on its prompt's length; earlier "
        "turns continue independently of it.",
    )


class SessionSpec(BaseModel):
    """Conversations: each arrival of the class starts a session of turns (geometric on 1, 2,
    ... with mean `mean_turns`, or `turn_weights`). Turn k+1 arrives `gap_s` after turn k arrived
    (`gap_from: arrival`, the default: turns are drawn before the run), or `gap_s` after turn k
    ended as its client saw it (`gap_from: completion`: the run sends it then; a rejected turn
    releases the next one too), and its
    prompt is turn k's prompt, turn k's output and `new_tokens` new tokens, so the prefix cache
    finds turn k's prompt blocks in it (`new_tokens_by_turn`: a distribution per turn). The first turn's lengths are the class's (prompt_tokens
    and output_tokens, or lengths_table); later turns draw their output from `output_tokens`, else
    from the class's. The class's rate stays requests/s: sessions start at rate / mean turns.
    With batch arrivals (arrival.batch) a later turn goes with the next batch at or after its
    time. Turns falling after the run's end come at its start (time modulo duration_s), as the
    later turns of conversations begun before the run, with prefix keys of their own, so the
    rate holds from the first second. `continue_by_prompt` makes which turns of a depth continue
    depend on their prompt's length (the depth's share continued unchanged)."""

    model_config = _CFG
    mean_turns: Optional[float] = Field(
        None, ge=1, le=MAX_TURNS, description="Mean turns per session (geometric on 1, 2, ...); or give turn_weights."
    )
    turn_weights: Optional[list[Annotated[float, Field(ge=0, le=1e12)]]] = Field(
        None, min_length=1, max_length=MAX_TURNS, description="Weight of a session of 1, 2, ... turns (any scale)."
    )
    gap_s: GapSpec = Field(
        ...,
        description="Time from one turn's arrival (or end: gap_from) to the next turn's arrival, s (dist: fixed|exponential|lognormal|empirical).",
    )
    gap_from: Literal["arrival", "completion"] = Field(
        "arrival",
        description="What gap_s counts from: the previous turn's arrival (drawn before the run) or its completion (the last token as the client saw it: think time; the run sends the next turn then).",
    )
    new_tokens: Optional[LengthSpec] = Field(
        None,
        description="New user tokens each later turn adds after the previous turn's prompt and output (dist: fixed|uniform|normal|lognormal|empirical); or give new_tokens_by_turn.",
    )
    new_tokens_by_turn: Optional[list[LengthSpec]] = Field(
        None,
        min_length=1,
        max_length=100,
        description="New tokens of turn 2, 3, ... (one length distribution each; the last holds for every later turn), instead of new_tokens.",
    )
    output_tokens: Optional[LengthSpec] = Field(
        None,
        description="Output length of the later turns (dist: fixed|uniform|normal|lognormal|empirical); omitted = the class's output_tokens (or lengths_table's output column).",
    )
    continue_by_prompt: Optional[ContinueByPrompt] = Field(
        None,
        description="Continuation depending on the turn's prompt length ({log_odds_per_ln_tok, from_turn}); omitted = "
        "a turn continues independently of its length.",
    )
    max_prompt_tokens: Optional[int] = Field(
        None,
        ge=2,
        le=MAX_TOKENS,
        description="A session ends before a turn whose prompt would be longer than this (a client's context limit); omitted = no limit.",
    )

    @field_validator("gap_s", mode="before")
    @classmethod
    def _gap_name(cls, v):
        return _tag(v, "gap distribution", GAP_NAMES)

    @field_validator("new_tokens", "output_tokens", mode="before")
    @classmethod
    def _length_name(cls, v):
        return _tag(v, "length distribution", LENGTH_NAMES)

    @field_validator("new_tokens_by_turn", mode="before")
    @classmethod
    def _length_names(cls, v):
        if isinstance(v, list):
            for i, x in enumerate(v):
                try:
                    _tag(x, "length distribution", LENGTH_NAMES)
                except ValueError as exc:
                    raise ValueError(f"entry {i}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one(self):
        if (self.mean_turns is None) == (self.turn_weights is None):
            raise ValueError("give mean_turns or turn_weights (one of them)")
        if (self.new_tokens is None) == (self.new_tokens_by_turn is None):
            raise ValueError("give new_tokens or new_tokens_by_turn (one of them)")
        if self.turn_weights is not None and max(self.turn_weights) <= 0:
            raise ValueError("turn_weights need at least one value > 0")
        return self

    def mean(self) -> float:
        """Mean turns per session (before ``max_prompt_tokens`` cuts any)."""
        if self.turn_weights is None:
            return float(self.mean_turns)  # type: ignore[arg-type]  # _one: one of them is given
        w = np.asarray(self.turn_weights, dtype=float)
        return float((w * np.arange(1, w.size + 1)).sum() / w.sum())

    def sample_turns(self, rng: np.random.Generator, k: int) -> np.ndarray:
        """``k`` session sizes (int64, 1..MAX_TURNS)."""
        if self.turn_weights is None:
            p = 1.0 / float(self.mean_turns)  # type: ignore[arg-type]
            return np.minimum(rng.geometric(p, k), MAX_TURNS).astype(np.int64)
        w = np.asarray(self.turn_weights, dtype=float)
        return rng.choice(w.size, size=k, p=w / w.sum()).astype(np.int64) + 1

    def continue_chance(self, turn: int) -> float:
        """The chance that a session's turn ``turn`` (0-based) has a next turn, from mean_turns
        (geometric: ``1 - 1 / mean_turns``) or turn_weights (``P(K > turn + 1) / P(K > turn)``); 0
        at ``MAX_TURNS - 1`` and past the last weight."""
        if turn >= MAX_TURNS - 1:
            return 0.0
        if self.turn_weights is None:
            return 1.0 - 1.0 / float(self.mean_turns)  # type: ignore[arg-type]  # _one: one of them is given
        w = self.turn_weights
        if turn >= len(w) - 1:
            return 0.0
        here = float(sum(w[turn:]))
        return float(sum(w[turn + 1 :])) / here if here > 0 else 0.0
