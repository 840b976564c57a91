"""The generated workload: one arrival stream that the simulator and the
testbed both replay.

``generate_workload(traffic, seed, base_dir)`` draws arrival times from the
``"arrivals"`` stream, classes from ``"classes"``, lengths from ``"lengths"``
(sub-streams per class and per prompt/output) and shared-prefix choices from
``"prefix"`` (per class), so changing one class's length distribution moves
neither the arrival times nor the other classes (common random numbers).
Same seed -> byte-identical arrays.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from sim.errors import ScenarioError
from sim.rng import stream
from sim.workload.distributions import Empirical
from sim.workload.sessions import build_class, session_salt
from sim.workload.spec import (
    ByClassArrival,
    ConstantArrival,
    DiurnalArrival,
    GammaArrival,
    MmppArrival,
    PoissonArrival,
    RateProfile,
    TraceArrival,
    TrafficSpec,
)
from sim.workload.traces import load_trace

__all__ = ["Workload", "generate_workload", "prefix_key", "arrival_times", "class_arrivals"]

_KEY_MASK = (1 << 63) - 1


@dataclass(eq=False)
class Workload:
    """Requests sorted by arrival; request id = index. A request released by another's end
    (``after_rid`` >= 0: a conversation's turn with ``gap_from: completion``) has a placeholder
    ``arrival_s`` (its previous turn's plus its think time) until the run sends it; it comes after
    the request that releases it.

    Prefix chains are CSR: request ``r``'s chunks are
    ``prefix_offsets[r]:prefix_offsets[r+1]``; chunk ``j`` covers prompt
    tokens ``[0, prefix_end_tok[j])`` (cumulative) and two chunks with the
    same key at the same position have equal content up to their end,
    everything before included (like Mooncake ``hash_ids``). A conversation
    turn's last chunk goes past its prompt, to the end of its output: the
    blocks its decode fills (``sim.workload.sessions``).
    """

    arrival_s: np.ndarray  # float64, seconds from run start, non-decreasing
    class_idx: np.ndarray  # int16, index into class_names
    prompt_tokens: np.ndarray  # int32 >= 1
    output_tokens: np.ndarray  # int32 >= 1
    prefix_offsets: np.ndarray  # int64, n + 1
    prefix_keys: np.ndarray  # int64, one per chunk
    prefix_end_tok: np.ndarray  # int32, cumulative end token of each chunk
    class_names: list[str]
    notes: list[str] = field(default_factory=list)  # what generation dropped or clamped
    # conversations with ``gap_from: completion`` (None: every request is sent at its arrival_s):
    after_rid: Optional[np.ndarray] = None  # int64, the request whose end releases this one; -1: sent at arrival_s
    think_s: Optional[np.ndarray] = None  # float64, from that end (as the client saw it) to this one's send, s

    def __post_init__(self):
        n = len(self.arrival_s)
        if (self.after_rid is None) != (self.think_s is None):
            raise ValueError("Workload.after_rid and think_s go together")
        for name in ("class_idx", "prompt_tokens", "output_tokens") + (
            ("after_rid", "think_s") if self.after_rid is not None else ()
        ):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Workload.{name} has {len(getattr(self, name))} rows, arrival_s has {n}")
        if len(self.prefix_offsets) != n + 1 or len(self.prefix_keys) != len(self.prefix_end_tok):
            raise ValueError("Workload prefix CSR arrays are inconsistent")

    def __len__(self) -> int:
        return len(self.arrival_s)

    def packed(self, name: str) -> memoryview:
        """Column ``name`` as a read-only ``memoryview`` of the numpy array itself: what the
        engine indexes one request at a time. Indexing it gives a Python number as fast as
        an ``array.array`` does, and it copies nothing (a list would hold a Python number per
        request, ~30 bytes more each; a copy would double the column)."""
        values = getattr(self, name)
        if not values.flags.c_contiguous:
            values = np.ascontiguousarray(values)
        return memoryview(values).toreadonly()

    def chain(self, r: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, end_toks) of request ``r``'s prefix chain (empty if none)."""
        a, b = self.prefix_offsets[r], self.prefix_offsets[r + 1]
        return self.prefix_keys[a:b], self.prefix_end_tok[a:b]

    def to_frame(self) -> pd.DataFrame:
        """One row per request: request_id, class, arrival_s, prompt/output tokens."""
        return pd.DataFrame(
            {
                "request_id": np.arange(len(self), dtype=np.int64),
                "class": pd.Series(np.asarray(self.class_names, dtype=object)[self.class_idx], dtype="string"),
                "arrival_s": self.arrival_s,
                "prompt_tokens": self.prompt_tokens.astype(np.int64),
                "output_tokens": self.output_tokens.astype(np.int64),
            }
        )


def prefix_key(class_name: str, prefix_index: int, covered_tokens: int) -> int:
    """Stable 63-bit key of a synthetic shared prefix covering its first
    ``covered_tokens`` tokens (not Python's salted ``hash``)."""
    h = hashlib.blake2b(f"{class_name}\0{prefix_index}\0{covered_tokens}".encode(), digest_size=8)
    return int.from_bytes(h.digest(), "little") & _KEY_MASK


# ------------------------------------------------------------- arrivals
def _renewal(rng: np.random.Generator, draw, mean_gap: float, cv: float, duration_s: float) -> np.ndarray:
    """Cumulative sums of gaps ``draw(rng, k)`` until ``duration_s``."""
    expected = duration_s / mean_gap
    chunk = int(expected + 6.0 * max(cv, 1.0) * math.sqrt(expected) + 16)
    parts, t0 = [], 0.0
    while True:
        t = t0 + np.cumsum(draw(rng, chunk))
        parts.append(t[t < duration_s])
        if t[-1] >= duration_s:
            return np.concatenate(parts)
        t0 = float(t[-1])


def _mmpp(rng: np.random.Generator, a: MmppArrival, rate: float, duration_s: float) -> np.ndarray:
    """Regimes (a start drawn from their time fractions, exponential holds, jumps uniformly to
    another regime or by ``jumps``), then Poisson arrivals within each: counts, uniform times, sorted."""
    rates, frac = a.regime_rates(rate)
    hold = np.asarray(a.mean_sojourn_s, dtype=float)
    jumps = a.jump_matrix()
    k = rates.size
    states, lengths, t = [int(rng.choice(k, p=frac))], [], 0.0
    while True:
        lengths.append(rng.exponential(hold[states[-1]]))
        t += lengths[-1]
        if t >= duration_s:
            break
        if a.jumps is None:
            states.append(int((states[-1] + rng.integers(1, k)) % k))  # one of the other regimes
        else:
            states.append(int(rng.choice(k, p=jumps[states[-1]])))
    ends = np.minimum(np.cumsum(lengths), duration_s)
    starts = np.concatenate([[0.0], ends[:-1]])
    seg = ends - starts
    counts = rng.poisson(rates[np.asarray(states)] * seg)
    times = np.repeat(starts, counts) + rng.random(int(counts.sum())) * np.repeat(seg, counts)
    return np.sort(times[times < duration_s])


def _stationary(a: PoissonArrival, rng: np.random.Generator, rate: float, duration: float) -> np.ndarray:
    """Times in [0, duration) of a poisson, gamma, constant or mmpp process at ``rate``."""
    if isinstance(a, ConstantArrival):
        t = np.arange(int(math.ceil(duration * rate)) + 1, dtype=np.float64) / rate
        return t[t < duration]
    if isinstance(a, MmppArrival):
        return _mmpp(rng, a, rate, duration)
    if isinstance(a, GammaArrival):
        shape = 1.0 / (a.cv * a.cv)
        return _renewal(rng, lambda g, k: g.gamma(shape, a.cv * a.cv / rate, k), 1.0 / rate, a.cv, duration)
    return _renewal(rng, lambda g, k: g.exponential(1.0 / rate, k), 1.0 / rate, 1.0, duration)


def _rescaled(p: RateProfile, duration: float) -> tuple[float, object]:
    """(the curve's time at ``duration``, the map from curve time back to run time): the
    curve's time advances at the rate's multiplier (mean 1) ``u(t) = int_0^t factor``."""
    f = p.normalized()
    edges_u = np.concatenate([[0.0], np.cumsum(f * p.bin_s)])  # curve time at each bin edge of one period
    edges_t = np.arange(f.size + 1, dtype=float) * p.bin_s
    per = float(edges_u[-1])  # = the period (mean factor 1)

    def u(t):  # run time (from the period's start) -> curve time
        k = np.floor(t / p.period_s)
        return k * per + np.interp(t - k * p.period_s, edges_t, edges_u)

    u0 = float(u(np.float64(p.start_s)))

    def back(s: np.ndarray) -> np.ndarray:
        x = s + u0
        k = np.floor(x / per)
        return k * p.period_s + np.interp(x - k * per, edges_u, edges_t) - p.start_s

    return float(u(np.float64(p.start_s + duration))) - u0, back


def _process(a: PoissonArrival, rng: np.random.Generator, rate: float, duration: float) -> np.ndarray:
    """A poisson, gamma, constant or mmpp process at mean ``rate``, with its rate profile and
    batches when it has them (the process then runs in the curve's time, at the batches' rate)."""
    if a.profile is None and a.batch is None:
        return _stationary(a, rng, rate, duration)
    events = rate / a.batch.mean() if a.batch is not None else rate
    if a.profile is not None:
        span, back = _rescaled(a.profile, duration)
        t = back(_stationary(a, rng, events, span))  # type: ignore[operator]  # the map _rescaled returns
    else:
        t = _stationary(a, rng, events, duration)
    if a.batch is not None:
        t = np.repeat(t, a.batch.sample(rng, t.size))
    return np.sort(t[t < duration])


def arrival_times(traffic: TrafficSpec, rng: np.random.Generator, rate_scale: float = 1.0) -> np.ndarray:
    """Arrival times in [0, duration_s) of a synthetic arrival process (of every class's own
    process together for ``by_class``: see ``class_arrivals``); ``rate_scale`` multiplies the rate
    (sessions: the process's events are session starts)."""
    a, duration = traffic.arrival, traffic.duration_s
    if isinstance(a, DiurnalArrival):
        # thinning: Poisson candidates at the peak rate, kept with rate(t)/peak
        peak = max(r for _, r in a.rate_points)
        cand = _renewal(rng, lambda g, k: g.exponential(1.0 / peak, k), 1.0 / peak, 1.0, duration)
        u = rng.random(cand.size)
        if rate_scale != 1.0:
            return cand[u * peak < a.rate_at(cand) * rate_scale]
        return cand[u * peak < a.rate_at(cand)]
    if isinstance(a, ByClassArrival):
        return class_arrivals(traffic, rng)[0]
    rate = traffic.total_rate_rps()
    assert rate is not None  # a poisson, gamma or constant process (the others returned above)
    assert isinstance(a, PoissonArrival)
    return _process(a, rng, rate * rate_scale if rate_scale != 1.0 else rate, duration)


def class_arrivals(
    traffic: TrafficSpec, rng: np.random.Generator, turns: list[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(arrival times, class index) of ``by_class`` traffic: each class's own process, drawn
    one class after another from ``rng``, merged by time (stable: on a tie the earlier class first).
    ``turns``: each class's mean turns per session (its process then starts sessions, at its rate
    divided by them)."""
    times, idx = [], []
    for c, cls in enumerate(traffic.classes):
        a = cls.arrival
        assert a is not None and a.rate_rps is not None  # TrafficSpec._check_by_class
        rate = float(a.rate_rps) if turns is None or turns[c] == 1.0 else float(a.rate_rps) / turns[c]
        t = _process(a, rng, rate, traffic.duration_s)
        times.append(t)
        idx.append(np.full(t.size, c, dtype=np.int16))
    t_all = np.concatenate(times)
    order = np.argsort(t_all, kind="stable")
    return t_all[order], np.concatenate(idx)[order]


# ------------------------------------------------------------- prefixes
def _synthetic_chains(traffic: TrafficSpec, seed: int, class_idx, prompt):
    """One chunk per request of a class with a prefix (see ``prefix_key``)."""
    n = len(class_idx)
    end = np.zeros(n, dtype=np.int64)
    keys = np.zeros(n, dtype=np.int64)
    for c, cls in enumerate(traffic.classes):
        if cls.prefix is None or cls.session is not None:  # a session's chains hold its prefix
            continue
        rows = np.flatnonzero(class_idx == c)
        if rows.size == 0:
            continue
        p = cls.prefix
        which = stream(seed, "prefix", c).choice(p.num_distinct, size=rows.size, p=p.probabilities())
        covered = np.minimum(p.tokens, prompt[rows] - 1)
        end[rows] = covered
        code = which.astype(np.int64) * (p.tokens + 1) + covered  # one int per (prefix, length)
        combos, inverse = np.unique(code, return_inverse=True)
        table = np.array(
            [prefix_key(cls.name, int(k) // (p.tokens + 1), int(k) % (p.tokens + 1)) for k in combos], dtype=np.int64
        )
        keys[rows] = table[inverse.ravel()]
    has = end > 0
    offsets = np.concatenate([[0], np.cumsum(has)]).astype(np.int64)
    return offsets, keys[has], end[has].astype(np.int32)


def _trace_chains(offsets, ids, prompt, block: int, output):
    """Mooncake chains: chunk j of a request ends at min(block*(j+1), prompt);
    hash ids beyond the prompt's last block are dropped. A request with ids past its
    prompt's blocks (a conversation turn whose text goes on with its output, as the round
    trip's replay of a conversation log writes it; no Mooncake trace has any) keeps them
    up to its output's last block, as the blocks its decode fills: its chunks end at
    min(block*(j+1), prompt + output)."""
    n_ids = offsets[1:] - offsets[:-1]
    text = np.where(n_ids > -(-prompt // block), prompt + output, prompt)  # tokens the ids cover
    lens = np.minimum(n_ids, -(-text // block))
    starts = offsets[:-1]
    new_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    pos = np.arange(new_off[-1]) - np.repeat(new_off[:-1], lens)  # chunk position j
    keys = ids[np.repeat(starts, lens) + pos]
    ends = np.minimum(block * (pos + 1), np.repeat(text, lens))
    return new_off, keys.astype(np.int64), ends.astype(np.int32)


# ------------------------------------------------------------- workload
def _assign_classes(traffic: TrafficSpec, seed: int, n: int, why: str) -> np.ndarray:
    shares = traffic.shares()
    if shares is None:
        raise ScenarioError(f"traffic.classes: {why}; give every class a share.")
    if len(shares) == 1:
        return np.zeros(n, dtype=np.int16)
    return stream(seed, "classes").choice(len(shares), size=n, p=shares).astype(np.int16)


def _from_trace(traffic: TrafficSpec, seed: int, base_dir: Path):
    spec = traffic.arrival
    assert isinstance(spec, TraceArrival)  # the caller's condition
    tr = load_trace(spec, base_dir)
    notes = list(tr.notes)
    if any(c.prompt_tokens or c.output_tokens for c in traffic.classes):
        notes.append("classes' prompt_tokens/output_tokens are ignored: the trace gives the lengths.")
    late = tr.arrival_s >= traffic.duration_s
    if late.any():
        notes.append(
            f"{tr.path.name}: {int(late.sum())} request(s) arriving at or after duration_s={traffic.duration_s:g} s dropped."
        )
    n = int((~late).sum())  # arrivals are sorted: the kept ones are a prefix
    names = traffic.class_names
    if tr.classes is not None:
        values = tr.classes[:n]
        known = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(values.tolist()) - set(known))
        if unknown:
            raise ScenarioError(
                f"traffic.arrival.path: {tr.path} has class values {', '.join(map(repr, unknown))} "
                f"that are not declared classes; declared: {', '.join(names)}."
            )
        class_idx = np.array([known[v] for v in values.tolist()], dtype=np.int16) if n else np.zeros(0, np.int16)
    else:
        class_idx = _assign_classes(traffic, seed, n, f"{tr.path.name} has no class column")
    prompt = tr.prompt_tokens[:n]
    if tr.hash_offsets is not None:
        if any(c.prefix for c in traffic.classes):
            notes.append("classes' prefix is ignored: the trace's hash_ids give the prefix chains.")
        chains = _trace_chains(
            tr.hash_offsets[: n + 1], tr.hash_ids, prompt, spec.hash_block_tokens, tr.output_tokens[:n]
        )
    else:
        chains = _synthetic_chains(traffic, seed, class_idx, prompt)
    return tr.arrival_s[:n], class_idx, prompt, tr.output_tokens[:n], chains, notes


def _plain_lengths(traffic: TrafficSpec, c: int, seed: int, base_dir: Path, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(prompt, output) of ``k`` requests of class ``c`` (without sessions), from its streams."""
    cls = traffic.classes[c]
    if cls.lengths_table is not None:  # one observed (prompt, output) row per request
        table_p, table_o = cls.lengths_table.build(base_dir, f"traffic.classes[{c}].lengths_table.path")
        pick = stream(seed, "lengths", c, 2).integers(0, table_p.size, size=k)
        return table_p[pick], table_o[pick]
    out = []
    for part, spec in enumerate((cls.prompt_tokens, cls.output_tokens)):
        which = "prompt_tokens" if part == 0 else "output_tokens"
        assert spec is not None  # required without a trace (TrafficSpec's validator)
        kw = {"field": f"traffic.classes[{c}].{which}.path"} if spec.dist == "empirical" else {}
        dist = spec.build(base_dir, **kw)
        out.append(dist.sample(stream(seed, "lengths", c, part), k))
    return out[0], out[1]


def _synthetic(traffic: TrafficSpec, seed: int, base_dir: Path):
    if any(c.session is not None for c in traffic.classes):
        return _with_sessions(traffic, seed, base_dir)
    if isinstance(traffic.arrival, ByClassArrival):
        arrival, class_idx = class_arrivals(traffic, stream(seed, "arrivals"))
        n = arrival.size
    else:
        arrival = arrival_times(traffic, stream(seed, "arrivals"))
        n = arrival.size
        class_idx = _assign_classes(traffic, seed, n, "no class shares")
    prompt = np.zeros(n, dtype=np.int64)
    output = np.zeros(n, dtype=np.int64)
    for c in range(len(traffic.classes)):
        rows = np.flatnonzero(class_idx == c)
        prompt[rows], output[rows] = _plain_lengths(traffic, c, seed, base_dir, rows.size)
    chains = _synthetic_chains(traffic, seed, class_idx, prompt)
    return arrival, class_idx, prompt, output, chains, []


# ------------------------------------------------------------- sessions
def _reorder_chains(offsets: np.ndarray, keys: np.ndarray, ends: np.ndarray, order: np.ndarray):
    """The CSR chains of requests ``order`` (in that order)."""
    lens = np.diff(offsets)[order]
    new_off = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    src = np.repeat(offsets[:-1][order], lens) + (np.arange(new_off[-1]) - np.repeat(new_off[:-1], lens))
    return new_off, keys[src], ends[src]


def _session_events(traffic: TrafficSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(event times, class index) when some class has sessions: a session class's events are
    session starts, at its request rate divided by its mean turns."""
    turns = [c.session.mean() if c.session is not None else 1.0 for c in traffic.classes]
    rng = stream(seed, "arrivals")
    if isinstance(traffic.arrival, ByClassArrival):
        return class_arrivals(traffic, rng, turns)
    shares = traffic.shares()
    if shares is None:
        raise ScenarioError("traffic.classes: no class shares; give every class a share.")
    w = shares / np.asarray(turns)
    arrival = arrival_times(traffic, rng, float(w.sum()))
    if len(shares) == 1:
        return arrival, np.zeros(arrival.size, dtype=np.int16)
    p = w / w.sum()
    return arrival, stream(seed, "classes").choice(len(p), size=arrival.size, p=p).astype(np.int16)


def _dist(spec, base_dir: Path, field: str):
    """The distribution of a length spec (``field`` locates an empirical file's errors)."""
    return spec.build(base_dir, field=f"{field}.path") if spec.dist == "empirical" else spec.build(base_dir)


def _session_class(traffic: TrafficSpec, c: int, seed: int, base_dir: Path, starts: np.ndarray):
    """The requests of session class ``c`` (sim.workload.sessions.build_class)."""
    cls = traffic.classes[c]
    spec = cls.session
    assert spec is not None  # the caller's condition
    where = f"traffic.classes[{c}]"
    if cls.lengths_table is not None:
        table_p, table_o = cls.lengths_table.build(base_dir, f"{where}.lengths_table.path")

        def first(k: int):
            pick = stream(seed, "lengths", c, 2).integers(0, table_p.size, size=k)
            return table_p[pick], table_o[pick]

        later_dist = Empirical(table_o)  # a row's output, uniformly
    else:
        assert cls.prompt_tokens is not None and cls.output_tokens is not None  # TrafficSpec's validator
        p_dist = _dist(cls.prompt_tokens, base_dir, f"{where}.prompt_tokens")
        later_dist = o_dist = _dist(cls.output_tokens, base_dir, f"{where}.output_tokens")

        def first(k: int):
            return p_dist.sample(stream(seed, "lengths", c, 0), k), o_dist.sample(stream(seed, "lengths", c, 1), k)

    if spec.output_tokens is not None:  # the later turns' own output lengths
        later_dist = _dist(spec.output_tokens, base_dir, f"{where}.session.output_tokens")
    if spec.new_tokens_by_turn is not None:
        by_turn = [
            _dist(d, base_dir, f"{where}.session.new_tokens_by_turn[{i}]")
            for i, d in enumerate(spec.new_tokens_by_turn)
        ]
    else:
        assert spec.new_tokens is not None  # SessionSpec._one
        by_turn = [_dist(spec.new_tokens, base_dir, f"{where}.session.new_tokens")]

    def new_tokens(rng: np.random.Generator, turn: np.ndarray) -> np.ndarray:
        """Turn k's (0-based) draw from entry min(k - 1, last); every entry draws for every turn,
        so the number of draws never depends on the values."""
        if len(by_turn) == 1:
            return by_turn[0].sample(rng, turn.size)
        draws = np.stack([d.sample(rng, turn.size) for d in by_turn])
        which = np.clip(turn - 1, 0, len(by_turn) - 1)
        return draws[which, np.arange(turn.size)]

    prefix = None
    if cls.prefix is not None:
        pre = cls.prefix

        def prefix(first_prompt: np.ndarray):
            which = stream(seed, "prefix", c).choice(pre.num_distinct, size=first_prompt.size, p=pre.probabilities())
            covered = np.minimum(pre.tokens, first_prompt - 1)
            pairs = zip(which.tolist(), covered.tolist())
            return covered, np.array([prefix_key(cls.name, int(w), int(k)) for w, k in pairs], dtype=np.int64)

    rngs = (stream(seed, "session-turns", c), stream(seed, "session-gaps", c), stream(seed, "session-new", c))
    process = cls.arrival if cls.arrival is not None else traffic.arrival
    batched = isinstance(process, PoissonArrival) and process.batch is not None
    rng_later = stream(seed, "lengths", c, 3)  # one stream: continue_by_prompt draws depth by depth
    return build_class(
        spec,
        starts,
        traffic.duration_s,
        rngs,
        first,
        lambda m: later_dist.sample(rng_later, m),
        new_tokens,
        session_salt(cls.name, seed),
        prefix,
        np.unique(starts) if batched else None,  # a later turn goes with the next batch
    )


def _with_sessions(traffic: TrafficSpec, seed: int, base_dir: Path):
    """``_synthetic`` when some class has sessions: the classes' requests (a session class's
    turns), merged by time (stable)."""
    arrival, class_idx = _session_events(traffic, seed)
    times, classes, prompts, outputs, offs, keys, ends, notes = [], [], [], [], [], [], [], []
    afters: list[np.ndarray] = []
    thinks: list[np.ndarray] = []
    base = done = 0  # chunks and rows before this class's
    for c, cls in enumerate(traffic.classes):
        rows = np.flatnonzero(class_idx == c)
        released = None
        if cls.session is not None:
            t, p, o, (off, k, e), why, released = _session_class(traffic, c, seed, base_dir, arrival[rows])
            notes += [f"class {cls.name}: {w}" for w in why]
        else:
            t = arrival[rows]
            p, o = _plain_lengths(traffic, c, seed, base_dir, rows.size)
            idx = np.full(rows.size, c, dtype=np.int16)
            off, k, e = _synthetic_chains(traffic, seed, idx, p)
        afters.append(
            np.full(t.size, -1, np.int64) if released is None else np.where(released[0] >= 0, released[0] + done, -1)
        )
        thinks.append(np.zeros(t.size) if released is None else released[1])
        done += t.size
        times.append(t)
        classes.append(np.full(t.size, c, dtype=np.int16))
        prompts.append(p)
        outputs.append(o)
        offs.append(off[1:] + base if off.size > 1 else off[:0])
        base += int(off[-1])
        keys.append(k)
        ends.append(e)
    t_all = np.concatenate(times)
    order = np.argsort(t_all, kind="stable")
    off_all = np.concatenate([[0], *offs]).astype(np.int64)
    chains = _reorder_chains(off_all, np.concatenate(keys), np.concatenate(ends), order)
    released = None
    if any(c.session is not None and c.session.gap_from == "completion" for c in traffic.classes):
        released = _permuted_after(np.concatenate(afters), order), np.concatenate(thinks)[order]
    return (
        t_all[order],
        np.concatenate(classes)[order],
        np.concatenate(prompts)[order],
        np.concatenate(outputs)[order],
        chains,
        notes,
        released,
    )


def _permuted_after(after: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``after`` (row numbers, -1 none) of the rows ``order``, renumbered to their new places."""
    where = np.empty(order.size, dtype=np.int64)
    where[order] = np.arange(order.size, dtype=np.int64)
    a = after[order]
    return np.where(a >= 0, where[np.maximum(a, 0)], -1).astype(np.int64)


def generate_workload(traffic: TrafficSpec, seed: int, base_dir: Path) -> Workload:
    """The workload of ``traffic`` for ``seed``; files are relative to ``base_dir``
    (the scenario file's folder). Raises ``ScenarioError`` for bad trace or
    empirical files."""
    make = _from_trace if traffic.is_trace else _synthetic
    arrival, class_idx, prompt, output, (off, keys, ends), notes, *rest = make(traffic, int(seed), Path(base_dir))
    released = rest[0] if rest else None  # (after_rid, think_s) of conversations with gap_from: completion
    return Workload(
        arrival_s=np.ascontiguousarray(arrival, dtype=np.float64),
        class_idx=np.ascontiguousarray(class_idx, dtype=np.int16),
        prompt_tokens=np.ascontiguousarray(prompt, dtype=np.int32),
        output_tokens=np.ascontiguousarray(output, dtype=np.int32),
        prefix_offsets=np.ascontiguousarray(off, dtype=np.int64),
        prefix_keys=np.ascontiguousarray(keys, dtype=np.int64),
        prefix_end_tok=np.ascontiguousarray(ends, dtype=np.int32),
        class_names=list(traffic.class_names),
        notes=notes,
        after_rid=None if released is None else np.ascontiguousarray(released[0], dtype=np.int64),
        think_s=None if released is None else np.ascontiguousarray(released[1], dtype=np.float64),
    )
