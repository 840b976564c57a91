"""Conversations from block hashes: which requests continue an earlier one, and the session form
(``classes[].session``) fitted to them.

Request B *continues* request A when B's hash list starts with all of A's full blocks (A's prompt
up to its last whole block: the partial last block changes when the conversation grows), A's last
full block was first seen in A or in one of A's earlier turns (so the match is A's own
conversation, not only a system prompt every request shares), and A has no continuation yet; the
latest, longest such A is B's previous turn. A request that continues none starts a session.

The log is a window: a turn near its end may have a next turn after it, and long gaps fit in the
window less often. Both are corrected: each observed gap ``g`` counts ``span / (span - g)`` (the
inverse of the chance that a gap of that length starting in the window ends in it), and a turn at
``t`` had a chance ``G(span - t)`` to show its next turn, ``G`` the corrected gap CDF. The chance
that a turn of depth d continues is ``q_d = (continuations at d) / sum G(span - t)`` over turns at
d; geometric turns (one ``q``) unless a chi-square over the depths refuses it, then
``turn_weights`` from the ``q_d``. Whether a later turn continues may also depend on its prompt's
length: one slope in ln(prompt tokens) with an intercept per depth group
(``sim.workload.fit.continuation``), written as ``continue_by_prompt`` on its likelihood ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from sim.workload.fit.arrivals import Z_95
from sim.workload.fit.continuation import LR_99, SlopeFit, fit_length_slope
from sim.workload.fit.lengths import LengthFit, fit_length
from sim.workload.fit.think import GapOrigin, gap_origin

__all__ = [
    "SessionFit",
    "continuations",
    "conversation_parents",
    "fit_sessions",
    "fit_session_form",
    "thin_sizes",
    "MIN_CONTINUING_FRACTION",
    "GAP_VALUES_MAX",
]

#: Below this fraction of requests continuing an earlier one, no session form is written.
MIN_CONTINUING_FRACTION = 0.05
#: Most observed gaps an empirical gap distribution writes (a weighted resample beyond).
GAP_VALUES_MAX = 10_000
_KS_1PCT = 1.628


@dataclass
class GapFit:
    family: str  # exponential | lognormal | empirical
    params: dict[str, float]  # exponential: mean_s; lognormal: median_s, sigma
    ci: dict[str, tuple[float, float]]
    ks: dict[str, float]  # each family's weighted KS D
    ks_critical: float
    values_s: Optional[np.ndarray] = None  # empirical
    weights: Optional[np.ndarray] = None


@dataclass
class SessionFit:
    parent: np.ndarray  # int64 per request: its previous turn's row, -1 for a session's first turn
    continuing: int
    q: float  # chance a turn has a next turn (geometric)
    q_ci: tuple[float, float]
    mean_turns: float  # of the written form (geometric: 1 / (1 - q); else turn_weights')
    mean_turns_ci: tuple[float, float]  # geometric's
    turn_weights: Optional[list[float]]  # None: geometric
    gap: GapFit
    new_tokens: LengthFit
    new_values: np.ndarray  # observed new tokens (>= 1) of each continuation
    new_by_turn: Optional[list[tuple[LengthFit, np.ndarray]]]  # turn 2, 3, ...: (fit, values); None: one
    output: Optional[LengthFit]  # the later turns' own output lengths (None: the first turns')
    output_values: np.ndarray  # observed output tokens of each continuation
    gap_from: str = "arrival"  # what gap_s counts from (sim.workload.fit.think)
    origin: Optional[GapOrigin] = None  # the choice's statistics (None: the log has no completion times)
    gaps_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # observed gaps from the previous arrival, s
    gap_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))  # each one's span / (span - gap)
    notes: list[str] = field(default_factory=list)
    continue_slope: Optional[SlopeFit] = None  # continue_by_prompt's slope from turn 2 (None: not written)

    @property
    def first_turns(self) -> np.ndarray:
        """Rows that start a session."""
        return np.flatnonzero(self.parent < 0)

    def true_starts(self, first_s: np.ndarray, n: int, span_s: float, rng: np.random.Generator) -> np.ndarray:
        """Which first turns (their times ``first_s`` from the log's start) to keep as session
        starts, each with its ``true_start_chance``."""
        chance = true_start_chance(first_s, n, span_s, self.mean_turns, self.gaps_s, self.gap_weights)
        return rng.random(first_s.size) < chance


def continuations(offsets: np.ndarray, ids: np.ndarray, prompt: np.ndarray, block_tokens: int) -> np.ndarray:
    """Each request's previous turn (row index), -1 for none (see the module's doc)."""
    n = offsets.size - 1
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
    uniq, first_at = np.unique(ids, return_index=True)
    first_owner = dict(zip(uniq.tolist(), owner[first_at].tolist()))
    parent = np.full(n, -1, dtype=np.int64)
    full = (np.asarray(prompt, dtype=np.int64) // block_tokens).tolist()
    ids_l = ids.tolist()
    off = offsets.tolist()
    ends: dict[int, int] = {}  # the last full block's id of a request that may be continued -> the request
    taken = np.zeros(n, dtype=bool)
    for i in range(n):
        h = ids_l[off[i] : off[i + 1]]
        for k in range(len(h), 0, -1):
            j = ends.get(h[k - 1])
            if j is not None and full[j] == k and not taken[j]:
                parent[i] = j
                taken[j] = True
                break
        f = min(full[i], len(h))
        if f >= 1:
            # its own conversation's block: first seen in it or in one of its earlier turns (a turn
            # that added no full block ends where the turn before it did)
            owner_i, a = first_owner[h[f - 1]], i
            while a >= 0 and a != owner_i:
                a = int(parent[a])
            if a >= 0:
                ends[h[f - 1]] = i
    return parent


def conversation_parents(conversation: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """Each request's previous turn (row index; rows sorted by arrival), -1 for none, from a log's
    conversation codes (-1: none) and turn numbers: the latest earlier request of the same
    conversation with a lower turn number (a resent turn keeps its turn's previous one)."""
    parent = np.full(conversation.size, -1, dtype=np.int64)
    last: dict[int, list[tuple[int, int]]] = {}  # conversation -> its requests so far (turn, row)
    for i, (c, t) in enumerate(zip(conversation.tolist(), turn.tolist())):
        if c < 0:
            continue
        seen = last.setdefault(c, [])
        for k in range(len(seen) - 1, -1, -1):
            if seen[k][0] < t:
                parent[i] = seen[k][1]
                break
        seen.append((t, i))
    return parent


def _two_sample_ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic."""
    grid = np.union1d(a, b)
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.abs(fa - fb).max())


def _weighted_ks(x: np.ndarray, w: np.ndarray, cdf) -> float:
    order = np.argsort(x)
    xs, ws = x[order], w[order] / w.sum()
    hi = np.cumsum(ws)
    f = cdf(xs)
    return float(max(np.abs(hi - f).max(), np.abs(hi - ws - f).max()))


def _fit_gaps(g: np.ndarray, w: np.ndarray, rng: np.random.Generator) -> GapFit:
    from scipy.special import ndtr  # only for a fit

    n_eff = float(w.sum() ** 2 / (w * w).sum())
    p = w / w.sum()
    mean = float((p * g).sum())
    pos = np.maximum(g, 1e-3)
    lg = np.log(pos)
    mu = float((p * lg).sum())
    sd = math.sqrt(max(float((p * (lg - mu) ** 2).sum()) * n_eff / max(n_eff - 1, 1), 0.0))
    ks = {
        "exponential": _weighted_ks(g, w, lambda x: 1.0 - np.exp(-x / mean)),
        "lognormal": _weighted_ks(pos, w, lambda x: ndtr((np.log(x) - mu) / sd) if sd > 0 else (x >= math.exp(mu))),
    }
    crit = _KS_1PCT / math.sqrt(n_eff)
    best = min(ks, key=ks.get)  # type: ignore[arg-type]  # dict.get as the key
    # a weighted mean's standard error (a ratio estimator's, by the delta method): the weights
    # grow with the gap, so the long gaps count for more than n_eff equal draws would
    se_mean = math.sqrt(float((p * p * (g - mean) ** 2).sum()))
    se_mu = math.sqrt(float((p * p * (lg - mu) ** 2).sum()))
    if ks[best] <= crit and best == "exponential":
        return GapFit(best, {"mean_s": mean}, {"mean_s": (mean - Z_95 * se_mean, mean + Z_95 * se_mean)}, ks, crit)
    if ks[best] <= crit:
        s_h = Z_95 / math.sqrt(2 * max(n_eff - 1, 1))
        return GapFit(
            best,
            {"median_s": math.exp(mu), "sigma": sd},
            {
                "median_s": (math.exp(mu - Z_95 * se_mu), math.exp(mu + Z_95 * se_mu)),
                "sigma": (sd * (1 - s_h), sd * (1 + s_h)),
            },
            ks,
            crit,
        )
    if g.size > GAP_VALUES_MAX:
        pick = rng.choice(g.size, GAP_VALUES_MAX, p=p)
        return GapFit("empirical", {"mean_s": mean}, {}, ks, crit, np.sort(g[pick]), None)
    return GapFit("empirical", {"mean_s": mean}, {}, ks, crit, g, w)


def _survival(gaps_s: np.ndarray, weights: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """The weighted chance that a gap is longer than ``t_s``."""
    order = np.argsort(gaps_s)
    cdf = np.concatenate([[0.0], np.cumsum(weights[order]) / weights.sum()])
    return 1.0 - cdf[np.searchsorted(gaps_s[order], t_s, side="right")]


def true_start_chance(
    first_s: np.ndarray, n: int, span_s: float, mean_turns: float, gaps_s: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The chance that a first turn in the log at ``first_s`` (from the log's start) starts its
    session rather than continues one begun before the log (its gap longer than ``t``): starts come
    at ``s = n / (mean turns x span)``, later turns at ``c = n / span - s``, those with a gap longer
    than ``t`` at ``c x P(gap > t)``: ``s / (s + c x P(gap > t))``."""
    s = n / (mean_turns * span_s)
    c = max(n / span_s - s, 0.0)
    return s / (s + c * _survival(gaps_s, weights, first_s))


def _new_by_turn(
    new: np.ndarray, parent_depth: np.ndarray, groups: list, rng: np.random.Generator, notes: list[str]
) -> Optional[list[tuple[LengthFit, np.ndarray]]]:
    """New tokens per turn when the turns after the first differ from the later ones (two-sample
    KS over its 1% point): one entry per depth group of the previous turn (``groups``, as for
    ``q``), turn 2 first; else None."""
    if len(groups) < 2:
        return None
    second = new[parent_depth <= groups[0][1]]
    later = new[parent_depth > groups[0][1]]
    if second.size < 20 or later.size < 20:
        return None
    d = _two_sample_ks(second, later)
    crit = _KS_1PCT * math.sqrt((second.size + later.size) / (second.size * later.size))
    means = []
    parts: list[tuple[LengthFit, np.ndarray]] = []
    for a, b, _, _ in groups:
        values = new[(parent_depth >= a) & (parent_depth <= b)]
        if values.size == 0:
            return None
        means.append(f"turn {a + 1}{'' if a == b else f'-{b + 1}'} {values.mean():.4g}")
        for _ in range(a, b + 1 if b < groups[-1][0] else a + 1):
            parts.append((fit_length(values, rng), values))
    if d <= crit:
        notes.append(
            f"new_tokens by turn: mean {', '.join(means)}; two-sample KS (turn 2 against later turns) D={d:.3f} "
            f"under its 1% critical value {crit:.3f}: one distribution"
        )
        return None
    notes.append(
        f"new_tokens by turn: mean {', '.join(means)}; two-sample KS (turn 2 against later turns) D={d:.3f} over "
        f"its 1% critical value {crit:.3f}: new_tokens_by_turn (the last entry for every later turn)"
    )
    return parts


def _depth(parent: np.ndarray) -> np.ndarray:
    d = np.ones(parent.size, dtype=np.int64)
    for i in np.flatnonzero(parent >= 0).tolist():  # a previous turn comes first
        d[i] = d[parent[i]] + 1
    return d


def _chi2_99(df: int) -> float:
    """The chi-square 99% point (Wilson-Hilferty)."""
    z = 2.3263478740408408
    a = 2.0 / (9.0 * df)
    return df * (1 - a + z * math.sqrt(a)) ** 3


def fit_sessions(
    arrival_s: np.ndarray,
    span_s: float,
    offsets: np.ndarray,
    ids: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    block_tokens: int,
    rng: np.random.Generator,
    finish_s: Optional[np.ndarray] = None,
) -> Optional[SessionFit]:
    """The session form of one class's requests (sorted by arrival, times from the log's start,
    ``span_s`` the log's length) whose next turns block hashes tell, or None when too few requests
    continue an earlier one (``fit_session_form``)."""
    parent = continuations(offsets, ids, prompt, block_tokens)
    return fit_session_form(
        arrival_s, span_s, parent, prompt, output, rng, finish_s, "their hash list extends its full blocks"
    )


def fit_session_form(
    arrival_s: np.ndarray,
    span_s: float,
    parent: np.ndarray,
    prompt: np.ndarray,
    output: np.ndarray,
    rng: np.random.Generator,
    finish_s: Optional[np.ndarray] = None,
    how: str = "the log names their conversation and an earlier turn of it",
) -> Optional[SessionFit]:
    """The session form of one class's requests given each one's previous turn (``parent``, -1
    none), or None when too few continue an earlier one; ``finish_s`` (each request's end on
    ``arrival_s``'s clock, NaN unknown) lets the fit choose what the gap counts from
    (``sim.workload.fit.think``)."""
    cont = np.flatnonzero(parent >= 0)
    n = parent.size
    if cont.size < max(MIN_CONTINUING_FRACTION * n, 5):
        return None
    span = max(float(span_s), float(arrival_s[-1] - arrival_s[0]), 1e-9)
    g = arrival_s[cont] - arrival_s[parent[cont]]
    w = span / np.maximum(span - g, span * 1e-3)
    origin = None
    if finish_s is None:
        origin_note = (
            "gap_from arrival: the log has no completion times (a finish or latency per request), so whether "
            "users' gaps run from the previous turn's arrival or its completion cannot be told; the gap is "
            "written as the log measured it, arrival to arrival"
        )
        gap = _fit_gaps(g, w, rng)
        g_fit = g
    else:
        latency = finish_s[parent[cont]] - arrival_s[parent[cont]]
        origin = gap_origin(g, latency)
        origin_note = origin.note
        if origin.origin == "completion":
            known = np.isfinite(latency)  # a gap's weight is still its arrival-to-arrival span's (the window)
            g_fit = np.maximum(g[known] - latency[known], 0.0)
            gap = _fit_gaps(g_fit, w[known], rng)
        else:
            gap = _fit_gaps(g, w, rng)
            g_fit = g
    # the corrected gap CDF at each turn's remaining time: its chance to show a next turn
    order = np.argsort(g)
    cdf = np.cumsum(w[order]) / w.sum()
    left = span - (arrival_s - arrival_s[0])
    chance = np.concatenate([[0.0], cdf])[np.searchsorted(g[order], left, side="right")]
    depth = _depth(parent)
    has_next = np.zeros(n, dtype=bool)
    has_next[parent[cont]] = True
    total = float(chance.sum())
    q = min(cont.size / total, 0.999)
    half = Z_95 * math.sqrt(q * (1 - q) / total)
    q_ci = (max(q - half, 0.0), min(q + half, 0.999))
    notes = [
        f"{cont.size:,} of {n:,} requests ({cont.size / n:.1%}) continue an earlier request ({how}); "
        f"{n - cont.size:,} start a session",
    ]
    # q by depth. A session whose first turn in the log continues one begun before it has its
    # depths counted from the wrong turn: each session counts with the chance that its first
    # turn starts it (true_start_chance), pooled until each group expects 5 continuations and 5 ends
    root = np.arange(n)
    for i in cont.tolist():  # a previous turn comes first
        root[i] = root[parent[i]]
    ws = true_start_chance(arrival_s[root] - arrival_s[0], n, span, 1.0 / (1.0 - q), g, w)
    groups: list[tuple[int, int, float, float]] = []  # (first depth, last depth, continuations, chances)
    c_g, e_g, d0 = 0.0, 0.0, 1
    deepest = int(depth.max())
    for d in range(1, deepest + 1):
        at = depth == d
        c_g += float(ws[has_next & at].sum())
        e_g += float((ws * chance)[at].sum())
        if e_g * q >= 5 and e_g * (1 - q) >= 5:
            groups.append((d0, d, c_g, e_g))
            c_g, e_g, d0 = 0.0, 0.0, d + 1
    if groups:
        a, _, c0, e0 = groups[-1]
        groups[-1] = (a, deepest, c0 + c_g, e0 + e_g)
    # a group's chances from its own gaps (at least 20): deep sessions come back sooner, and
    # the whole log's gaps would undercount their chances to show a next turn
    parent_depth = depth[parent[cont]]
    chance_own = chance.copy()  # each turn's chance from its group's own gaps, where it has 20
    for k, (a, b, c, _) in enumerate(groups):
        mine = (parent_depth >= a) & (parent_depth <= b)
        if mine.sum() >= 20:
            at = (depth >= a) & (depth <= b)
            own = 1.0 - _survival(g[mine], w[mine], left[at])
            chance_own[at] = own
            groups[k] = (a, b, c, float((ws[at] * own).sum()))
    chi2 = sum((c - q * e) ** 2 / (q * e * (1 - q)) for _, _, c, e in groups) if len(groups) > 1 else 0.0
    df = len(groups) - 1
    by_depth = ", ".join(
        f"{a}{'' if a == b else f'-{b}'}: {c / e:.3f}" if e > 0 else f"{a}-{b}: -" for a, b, c, e in groups
    )
    weights = None
    if df >= 1 and chi2 > _chi2_99(df):
        # each depth's q from its group; the log saw no session deeper than `deepest`: it ends there
        q_at = {d: min(c / e, 0.999) if e > 0 else 0.0 for a, b, c, e in groups for d in range(a, b + 1)}
        reach, wts = 1.0, []
        for k in range(1, deepest):
            wts.append(reach * (1 - q_at[k]))
            reach *= q_at[k]
        wts.append(reach)
        weights = [round(x, 6) for x in wts]
        turns_note = (
            f"chi-square {chi2:.1f} on {df} df over its 99% point {_chi2_99(df):.1f}: turn_weights from the q by "
            f"depth, up to the deepest turn seen ({deepest})"
        )
    elif df >= 1:
        turns_note = f"chi-square {chi2:.1f} on {df} df under its 99% point {_chi2_99(df):.1f}: geometric"
    else:
        turns_note = "too few sessions to test depths: geometric"
    notes.append(
        f"turns: a turn continues with q={q:.4f} (95% CI {q_ci[0]:.4f}..{q_ci[1]:.4f}; {cont.size:,} next turns "
        f"against {total:,.1f} expected chances, the window's end corrected); q by depth {by_depth}; {turns_note}"
    )
    slope = _continue_by_prompt(prompt, depth, has_next, chance_own, groups, notes)
    mean_turns = (
        1.0 / (1.0 - q) if weights is None else float(np.dot(np.arange(1, len(weights) + 1), weights) / sum(weights))
    )
    new = (prompt[cont] - prompt[parent[cont]] - output[parent[cont]]).astype(np.int64)
    short = int((new < 1).sum())
    new = np.maximum(new, 1)
    new_fit = fit_length(new, rng)
    if short:
        notes.append(
            f"new_tokens: {short:,} continuation(s) have a prompt shorter than the previous turn's prompt and output "
            "(the client dropped text): counted as 1 new token"
        )
    new_by_turn = _new_by_turn(new, parent_depth, groups, rng, notes)
    later_out = output[cont].astype(np.int64)
    first_out = output[parent < 0]
    ks2 = _two_sample_ks(later_out, first_out)
    crit2 = _KS_1PCT * math.sqrt((later_out.size + first_out.size) / (later_out.size * first_out.size))
    own_output = fit_length(later_out, rng) if ks2 > crit2 else None
    notes.append(
        f"output_tokens of later turns: mean {later_out.mean():.4g} against the first turns' {first_out.mean():.4g}; "
        f"two-sample KS D={ks2:.3f} "
        + (
            f"over its 1% critical value {crit2:.3f}: their own distribution"
            if own_output is not None
            else f"under its 1% critical value {crit2:.3f}: the first turns'"
        )
    )
    fam = ", ".join(f"{k} KS D={v:.3f}" for k, v in gap.ks.items())
    if gap.family == "empirical":
        gap_note = f"{fam}; none under the 1% critical value {gap.ks_critical:.3f}: empirical (mean {gap.params['mean_s']:.4g} s)"
    else:
        gap_note = f"{fam} (1% critical value {gap.ks_critical:.3f}): {gap.family}; " + "; ".join(
            f"{k} 95% CI {a:.4g}..{b:.4g}" for k, (a, b) in gap.ci.items()
        )
    notes.append(origin_note)
    since = "completion" if origin is not None and origin.origin == "completion" else "arrival"
    notes.append(
        f"gap_s ({since} to next arrival): {g_fit.size:,} gaps, median {np.median(g_fit):.4g} s, each weighted "
        f"span/(span - gap from arrival) for the window; {gap_note}"
    )
    return SessionFit(
        parent=parent,
        continuing=int(cont.size),
        q=q,
        q_ci=q_ci,
        mean_turns=mean_turns,
        mean_turns_ci=(1.0 / (1.0 - q_ci[0]), 1.0 / (1.0 - q_ci[1])),
        turn_weights=weights,
        gap=gap,
        new_tokens=new_fit,
        new_values=new,
        new_by_turn=new_by_turn,
        output=own_output,
        output_values=later_out,
        gap_from=since,
        origin=origin,
        gaps_s=g,
        gap_weights=w,
        notes=notes,
        continue_slope=slope,
    )


#: Fewest turns seen continued, and seen ending, for a length slope to be fitted.
SLOPE_MIN_EACH = 20


def _continue_by_prompt(
    prompt: np.ndarray,
    depth: np.ndarray,
    has_next: np.ndarray,
    chance: np.ndarray,
    groups: list[tuple[int, int, float, float]],
    notes: list[str],
) -> Optional[SlopeFit]:
    """The slope of the later turns' (turn 2 on) log-odds of a next turn on ln(prompt tokens), one
    intercept per depth group (``sim.workload.fit.continuation``), written as
    ``continue_by_prompt`` when its likelihood ratio is over the chi-square(1) 99% point; the first
    turns' own slope is a comment (a first turn in a log may continue a session begun before it,
    and the form's slope starts at turn 2)."""
    group = np.zeros(depth.size, dtype=np.int64)
    for k, (a, b, _, _) in enumerate(groups):
        group[(depth >= a) & (depth <= b)] = k
    fits: dict[str, Optional[SlopeFit]] = {}
    for name, sel in (("turn 2 on", depth >= 2), ("first turns", depth == 1)):
        seen = sel & (chance > 0)
        yes = int((has_next & seen).sum())
        if yes < SLOPE_MIN_EACH or int(seen.sum()) - yes < SLOPE_MIN_EACH:
            fits[name] = None
            continue
        fits[name] = fit_length_slope(prompt[sel], has_next[sel], chance[sel], group[sel])

    def said(f: SlopeFit) -> str:
        return (
            f"{f.slope:+.4f} per ln(prompt tokens) (95% CI {f.ci[0]:+.4f}..{f.ci[1]:+.4f}; likelihood ratio against 0 "
            f"{f.lr:.1f}; {f.turns:,} turns, {f.continued:,} seen continued)"
        )

    later, first = fits["turn 2 on"], fits["first turns"]
    first_note = f"; first turns' own slope {said(first)}, not written" if first is not None else ""
    if later is None:
        notes.append(
            f"continuation by prompt length: fewer than {SLOPE_MIN_EACH} later turns seen continued or ending: "
            f"independent of length{first_note}"
        )
        return None
    if later.lr > LR_99:
        notes.append(
            f"continuation by prompt length: later turns' log-odds of a next turn {said(later)}, over the "
            f"chi-square(1) 99% point {LR_99:.3f}: continue_by_prompt from turn 2 (each depth keeps its q){first_note}"
        )
        return later
    notes.append(
        f"continuation by prompt length: later turns' log-odds of a next turn {said(later)}, under the chi-square(1) "
        f"99% point {LR_99:.3f}: independent of length{first_note}"
    )
    return None


def thin_sizes(counts: np.ndarray, p: float) -> np.ndarray:
    """Batch-size weights (index: size - 1) after keeping each member with chance ``p``
    (binomial thinning), batches left empty dropped."""
    from scipy.stats import binom  # only for a fit

    k = np.arange(1, counts.size + 1)
    out = np.zeros(counts.size + 1)
    for size, c in zip(k.tolist(), np.asarray(counts, dtype=float).tolist()):
        if c > 0:
            out[: size + 1] += c * binom.pmf(np.arange(size + 1), size, p)
    return out[1:]
