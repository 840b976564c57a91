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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import numpy as np

from sim.workload.distributions import MAX_TOKENS
from sim.workload.session_spec import SessionSpec

__all__ = ["SessionTurns", "session_turns", "turn_prompts", "session_chains", "session_salt", "released_after"]

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
