"""Conversations (``classes[].session``, ``sim.workload.session_spec``): the turns of each session,
their prompts, and the prefix chains that let the prefix cache see one turn's prompt and output in
the next.

Each arrival event of a session class starts a session; its turns come ``gap_s`` apart. Turn k+1's
prompt is turn k's prompt, turn k's output and new user tokens, so its prefix chain (CSR chunks, as
``Workload`` holds them) is turn k's prompt chunks, then one chunk for turn k's output, then one
for its own new tokens; each turn's chain ends with its own output chunk, past its prompt::

    turn 1: [prefix?] (S1p, P1) (S1o, P1 + O1)
    turn 2: [prefix?] (S1p, P1) (S1o, P1 + O1) (S2p, P2) (S2o, P2 + O2)          P2 = P1 + O1 + N2
    turn 3: [prefix?] (S1p, P1) (S1o, P1 + O1) (S2p, P2) (S2o, P2 + O2) (S3p, P3) (S3o, P3 + O3)

Equal chunk keys at equal positions mean equal content up to the chunk's end, so the engine's block
keys (``sim.engine.prefix_keys``) of turn 2 equal turn 1's for every full block inside P1 + O1.
The engine caches a request's prompt blocks as its prefill computes them and, for a chain that
goes past the prompt, the full blocks its decode filled when it lets go of its blocks (finish or
preemption; ``Replica._release``): turn k ends with P_k + O_k - 1 tokens computed (its last token
is sampled, never fed back), so a replica that still holds them gives turn k+1
floor((P_k + O_k - 1) / block_size) blocks, as vLLM v1 does (``KVCacheManager.allocate_slots``
caches ``min(computed + new, request.num_tokens)`` tokens' full blocks each step). A replayed
trace's chains end at each prompt (its hashes cover prompts only): there a turn's output blocks
are first cached by the turn after it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from sim.workload.distributions import MAX_TOKENS
from sim.workload.session_spec import SessionSpec

__all__ = [
    "SessionTurns",
    "session_turns",
    "turns_by_prompt",
    "continue_probabilities",
    "logistic",
    "turn_prompts",
    "session_chains",
    "session_salt",
    "released_after",
]

_MASK63 = np.uint64((1 << 63) - 1)


@dataclass
class SessionTurns:
    """The turns of ``k`` sessions, session by session (turns in order)."""

    arrival_s: np.ndarray  # float64, in [0, duration_s)
    session: np.ndarray  # int64, index of the turn's session
    turn: np.ndarray  # int64, 0 for a session's first turn
    wrap: np.ndarray  # int64, how many times the turn's time was wrapped past duration_s
    gap_s: np.ndarray  # float64, the gap drawn for the turn (0 for a first turn)


def session_turns(
    spec: SessionSpec,
    starts_s: np.ndarray,
    duration_s: float,
    rng_turns: np.random.Generator,
    rng_gaps,
    sends_s: Optional[np.ndarray] = None,
) -> SessionTurns:
    """Turns of sessions starting at ``starts_s``: sizes from ``rng_turns``, one gap per turn from
    ``rng_gaps`` (a first turn's is drawn and unused, so the draws do not depend on the sizes'
    values). A turn at or after ``duration_s`` is wrapped to ``t mod duration_s``. ``sends_s``
    (sorted; batch arrivals' instants): a later turn waits for the first of them at or after its
    time (after the last: the first, one wrap later)."""
    k = spec.sample_turns(rng_turns, starts_s.size)
    total = int(k.sum())
    session = np.repeat(np.arange(starts_s.size, dtype=np.int64), k)
    first = (np.cumsum(k) - k).astype(np.int64)  # each session's first turn
    turn = np.arange(total, dtype=np.int64) - np.repeat(first, k)
    gaps = spec.gap_s.sample(rng_gaps, total)
    gaps[turn == 0] = 0.0
    return _placed(starts_s, session, turn, k, first, gaps, duration_s, sends_s)


def _placed(
    starts_s: np.ndarray,
    session: np.ndarray,
    turn: np.ndarray,
    k: np.ndarray,
    first: np.ndarray,
    gaps: np.ndarray,
    duration_s: float,
    sends_s: Optional[np.ndarray],
) -> SessionTurns:
    """The turns' times (``session_turns``): rows session by session, ``k`` turns each, the first
    at row ``first``; each turn ``gaps`` after the one before (a first turn's gap is 0)."""
    total = turn.size
    c = np.cumsum(gaps)
    since_start = c - np.repeat(c[first] if total else c, k)
    t = np.repeat(np.asarray(starts_s, dtype=np.float64), k) + since_start
    wrap = np.floor(t / duration_s).astype(np.int64)
    t = t - wrap * duration_s
    t = np.where(t >= duration_s, 0.0, np.maximum(t, 0.0))  # rounding at the edges
    if sends_s is not None and sends_s.size and total:
        later = turn > 0
        i = np.searchsorted(sends_s, t[later], side="left")
        past = i >= sends_s.size
        t[later] = sends_s[np.where(past, 0, i)]
        wrap[later] += past
    return SessionTurns(t, session, turn, wrap, gaps)


def _solve_intercept(target: float, x: np.ndarray) -> float:
    """The ``a`` with mean(sigmoid(a + x)) = ``target`` (0 < target < 1), by bisection: the mean
    rises with ``a``, and at ``logit(target) -+ (max |x| + 1)`` it is below / above the target."""
    centre = math.log(target / (1.0 - target))
    reach = float(np.abs(x).max()) + 1.0
    lo, hi = centre - reach, centre + reach
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(np.mean(logistic(mid + x))) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def logistic(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), through tanh (no overflow); the continuation fit uses it too."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def continue_probabilities(chance: float, prompt: np.ndarray, log_odds_per_ln_tok: float) -> np.ndarray:
    """Each of one depth's turns' chance of a next turn (``continue_by_prompt``): odds proportional
    to ``prompt ** log_odds_per_ln_tok``, their mean the depth's ``chance``."""
    if chance <= 0.0:
        return np.zeros(prompt.size)
    if chance >= 1.0 or prompt.size == 0:
        return np.ones(prompt.size)
    x = log_odds_per_ln_tok * np.log(np.maximum(prompt, 1).astype(np.float64))
    x = x - x.mean()  # the intercept near logit(chance): bisection from a small bracket
    return logistic(_solve_intercept(chance, x) + x)


def turns_by_prompt(
    spec: SessionSpec,
    starts_s: np.ndarray,
    duration_s: float,
    rngs: tuple[np.random.Generator, np.random.Generator, np.random.Generator],
    first_lengths: Callable[[int], tuple[np.ndarray, np.ndarray]],
    later_outputs: Callable[[int], np.ndarray],
    new_tokens: Callable[[np.random.Generator, np.ndarray], np.ndarray],
    sends_s: Optional[np.ndarray] = None,
) -> tuple[SessionTurns, np.ndarray, np.ndarray]:
    """(turns, prompt, output) of sessions whose continuation depends on the prompt's length
    (``spec.continue_by_prompt``), drawn depth by depth: every session's first turn, then at each
    depth one uniform per live turn (``rngs[0]``) against its ``continue_probabilities`` (from
    ``from_turn`` on; the depth's ``continue_chance`` before), and for the turns continued their
    next turn's new tokens (``rngs[2]``), output (``later_outputs``) and gap (``rngs[1]``). Rows
    come back session by session, turns in order, as ``session_turns`` gives them."""
    rule = spec.continue_by_prompt
    assert rule is not None  # the caller's condition
    rng_turns, rng_gaps, rng_new = rngs
    p1, o1 = first_lengths(starts_s.size)
    live = np.arange(starts_s.size, dtype=np.int64)
    prompt_now = np.asarray(p1, dtype=np.int64)
    output_now = np.asarray(o1, dtype=np.int64)
    gap_now = np.zeros(starts_s.size)
    parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]] = []
    depth = 0
    while live.size:
        parts.append((live, depth, prompt_now, output_now, gap_now))
        chance = spec.continue_chance(depth)
        if chance <= 0.0:
            break
        u = rng_turns.random(live.size)
        if depth + 1 >= rule.from_turn and rule.log_odds_per_ln_tok != 0.0:
            go = u < continue_probabilities(chance, prompt_now, rule.log_odds_per_ln_tok)
        else:
            go = u < chance
        m = int(go.sum())
        depth += 1
        new = np.asarray(new_tokens(rng_new, np.full(m, depth, dtype=np.int64)), dtype=np.int64)
        out = np.asarray(later_outputs(m), dtype=np.int64)
        gap_now = spec.gap_s.sample(rng_gaps, m)
        # a prompt past the token bound is cut later (build_class); held there so it cannot overflow
        prompt_now = np.minimum(prompt_now[go] + output_now[go] + new, 2 * MAX_TOKENS)
        output_now = out
        live = live[go]
    session = np.concatenate([p[0] for p in parts])
    turn = np.concatenate([np.full(p[0].size, p[1], dtype=np.int64) for p in parts])
    order = np.lexsort((turn, session))  # session by session, turns in order
    session, turn = session[order], turn[order]
    prompt = np.concatenate([p[2] for p in parts])[order]
    output = np.concatenate([p[3] for p in parts])[order]
    gaps = np.concatenate([p[4] for p in parts])[order]
    k = np.bincount(session, minlength=starts_s.size).astype(np.int64)
    first = (np.cumsum(k) - k).astype(np.int64)
    return _placed(starts_s, session, turn, k, first, gaps, duration_s, sends_s), prompt, output


def turn_prompts(turns: SessionTurns, first_prompt: np.ndarray, output: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Each turn's prompt (int64): the session's first prompt ``first_prompt[session]`` for a first
    turn, else the previous turn's prompt + its ``output`` + this turn's ``new`` tokens."""
    n = turns.turn.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    prev_out = np.concatenate([[0], output[:-1]]).astype(np.int64)
    inc = np.where(turns.turn == 0, first_prompt[turns.session], prev_out + new).astype(np.int64)
    c = np.cumsum(inc)
    starts = np.flatnonzero(turns.turn == 0)
    base = np.repeat(c[starts] - inc[starts], np.diff(np.concatenate([starts, [n]])))
    return c - base


def session_salt(class_name: str, seed: int) -> int:
    """The 64-bit salt of a class's session keys in one workload (the seed keeps a surge's
    sessions apart from the scenario's own)."""
    h = hashlib.blake2b(f"session\0{class_name}\0{int(seed)}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little")


def released_after(turns: SessionTurns) -> np.ndarray:
    """For ``gap_from: completion``: each turn's previous turn (row in ``turns``), whose end releases
    it, or -1 for a turn sent at its own time: a first turn, and the first turn of a wrapped stretch
    (a conversation begun before the run, whose earlier turns the run does not hold)."""
    n = turns.turn.size
    after = np.arange(n, dtype=np.int64) - 1
    if n:
        same = np.concatenate([[False], turns.wrap[1:] == turns.wrap[:-1]])
        after[(turns.turn == 0) | ~same] = -1
    return after


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, element-wise on uint64 (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def session_chains(
    turns: SessionTurns,
    prompt: np.ndarray,
    output: np.ndarray,
    salt: int,
    prefix_end: Optional[np.ndarray] = None,
    prefix_keys: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR chains (offsets, keys, end tokens) of the turns, one per turn in ``turns``' order (see
    the module's doc). ``prefix_end``/``prefix_keys`` (per turn, 0 = none) put the class's shared
    prefix chunk first."""
    n = turns.turn.size
    k = turns.turn
    has_pre = np.zeros(n, dtype=np.int64) if prefix_end is None else (prefix_end > 0).astype(np.int64)
    lens = 2 * k + 2 + has_pre  # turns 0..k's prompt and output chunks (its own output: the blocks its decode fills)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    total = int(offsets[-1])
    row = np.repeat(np.arange(n, dtype=np.int64), lens)
    m = np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], lens) - np.repeat(has_pre, lens)
    keys = np.zeros(total, dtype=np.int64)
    ends = np.zeros(total, dtype=np.int64)
    if prefix_end is not None and prefix_keys is not None:
        pre = m < 0
        keys[pre] = prefix_keys[row[pre]]
        ends[pre] = prefix_end[row[pre]]
    own = m >= 0
    r, mm = row[own], m[own]
    j, part = mm // 2, mm % 2
    src = r - k[r] + j  # turn j of the same session: rows are session by session, turns in order
    ends[own] = prompt[src] + part * output[src]
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(salt) + turns.session[r].astype(np.uint64))
        h = _mix(h + turns.wrap[r].astype(np.uint64))
        h = _mix(h + (2 * j + part).astype(np.uint64))
    keys[own] = (h & _MASK63).astype(np.int64)
    return offsets, keys, ends


def build_class(
    spec: SessionSpec,
    starts_s: np.ndarray,
    duration_s: float,
    rngs: tuple[np.random.Generator, np.random.Generator, np.random.Generator],
    first_lengths: Callable[[int], tuple[np.ndarray, np.ndarray]],
    later_outputs: Callable[[int], np.ndarray],
    new_tokens: Callable[[np.random.Generator, np.ndarray], np.ndarray],
    salt: int,
    prefix: Optional[Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = None,
    sends_s: Optional[np.ndarray] = None,
):
    """One session class's requests: (arrival_s, prompt, output, (offsets, keys, ends), notes,
    released), in session order (not sorted by time); ``released`` is None for ``gap_from:
    arrival``, else (each turn's releasing turn, -1 for none: ``released_after``; its think time, s),
    and a released turn's ``arrival_s`` is only a placeholder (its previous turn's plus its gap). ``rngs``: turns, gaps, new tokens. ``first_lengths(k)``
    gives ``k`` first turns' (prompt, output); ``later_outputs(m)`` ``m`` later turns' outputs;
    ``new_tokens(rng, turn)`` one draw per turn (``turn``: 0 for a first turn, whose draw is unused);
    ``prefix(first_prompts)`` each session's (prefix end token, prefix key), 0 = none; ``sends_s``:
    see ``session_turns``."""
    if spec.continue_by_prompt is not None:
        turns, prompt, output = turns_by_prompt(
            spec, starts_s, duration_s, rngs, first_lengths, later_outputs, new_tokens, sends_s
        )
        p1 = prompt[turns.turn == 0]
    else:
        turns = session_turns(spec, starts_s, duration_s, rngs[0], rngs[1], sends_s)
        n = turns.turn.size
        first = turns.turn == 0
        p1, o1 = first_lengths(int(first.sum()))
        output = np.zeros(n, dtype=np.int64)
        output[first] = o1
        output[~first] = later_outputs(int((~first).sum()))
        new = np.asarray(new_tokens(rngs[2], turns.turn), dtype=np.int64)
        prompt = turn_prompts(turns, np.asarray(p1, dtype=np.int64), output, new)
    limit = spec.max_prompt_tokens if spec.max_prompt_tokens is not None else MAX_TOKENS
    notes = []
    keep = prompt <= limit  # prompts grow along a session: a cut drops the session's last turns
    if not keep.all():
        cut = int((~keep).sum())
        why = "max_prompt_tokens" if spec.max_prompt_tokens is not None else f"the {MAX_TOKENS:,}-token bound"
        if spec.max_prompt_tokens is None:
            notes.append(f"{cut} later turn(s) whose prompt would exceed {why} left out")
    pre_end = pre_key = None
    if prefix is not None:
        s_end, s_key = prefix(np.asarray(p1, dtype=np.int64))
        pre_end, pre_key = s_end[turns.session], s_key[turns.session]
    chains = session_chains(turns, prompt, output, salt, pre_end, pre_key)
    if not keep.all():
        off, keys, ends = chains
        lens = np.diff(off)[keep]
        take = np.repeat(keep, np.diff(off))
        chains = (np.concatenate([[0], np.cumsum(lens)]).astype(np.int64), keys[take], ends[take])
    released = None
    if spec.gap_from == "completion":
        after = released_after(turns)
        renum = np.cumsum(keep) - 1  # a cut drops a session's last turns: a kept turn's previous one is kept
        think = np.where(after >= 0, turns.gap_s, 0.0)  # a turn sent at its own time has none
        released = (np.where(after >= 0, renum[np.maximum(after, 0)], -1)[keep], think[keep])
    return turns.arrival_s[keep], prompt[keep], output[keep], chains, notes, released
