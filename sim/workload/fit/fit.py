"""Fit a whole log: classes, the arrival model, each class's lengths and prefix.

``fit_traffic(log, ...)`` returns a ``TrafficFit``; ``sim.workload.fit.write``
renders it. Each class gets its own arrival process (batches, rate profile,
process: ``sim.workload.fit.arrivals``), written as ``process: by_class`` when
there are several; the whole log's fit is kept for the comments and the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from sim.workload.fit.arrivals import ArrivalFit, fit_arrivals
from sim.workload.fit.classes import split_by_clusters, split_by_field
from sim.workload.fit.lengths import TABLE_MAX_ROWS, PairFit, fit_pair, order_note
from sim.workload.fit.log import RequestLog
from sim.workload.fit.prefix import PrefixFit, fit_prefix
from sim.workload.fit.sessions import SessionFit, conversation_parents, fit_session_form, fit_sessions, thin_sizes

__all__ = ["ClassFit", "TrafficFit", "fit_traffic"]


@dataclass
class ClassFit:
    name: str
    n: int
    share: float
    rows: np.ndarray  # the class's rows of the log
    lengths: PairFit
    table_prompt: np.ndarray  # the observed pairs the lengths table (or empirical columns) holds
    table_output: np.ndarray
    prefix: Optional[PrefixFit]
    arrivals: ArrivalFit  # the class's own arrival process
    session: Optional[SessionFit] = None  # conversations (lengths, prefix, arrivals: of the first turns)


@dataclass
class TrafficFit:
    sources: list[str]
    n: int
    span_s: float
    start_epoch_s: Optional[float]
    arrival: ArrivalFit
    classes: list[ClassFit]
    split: str  # how the classes were made, as a sentence
    scale: float = 1.0
    growth: Optional[tuple[float, int]] = None  # (monthly growth %, months)
    log: Optional[RequestLog] = None  # the fitted log (the round-trip check replays it)
    warnings: list[str] = field(default_factory=list)


def _table(prompt: np.ndarray, output: np.ndarray, rng: np.random.Generator):
    if prompt.size <= TABLE_MAX_ROWS:
        return prompt, output
    pick = np.sort(rng.choice(prompt.size, TABLE_MAX_ROWS, replace=False))
    return prompt[pick], output[pick]


def _as_request_rate(a: ArrivalFit, n: int, span_s: float, sess: SessionFit) -> None:
    """A process fitted to session starts, its rate made the class's request rate (the generator
    starts sessions at rate / mean turns); the interval scaled alike. Batches keep their
    cadence: their sizes are thinned to the true starts' share of the log's first turns."""
    first = int(sess.first_turns.size)
    k = (n / max(span_s, 1e-9)) / a.rate_rps
    a.notes.insert(
        0,
        f"fitted to the {first:,} first turns (session starts); rate_rps is the class's requests/s "
        f"({k:.4g} x the first turns'): sessions start at rate_rps / mean turns",
    )
    a.rate_rps *= k
    a.rate_ci = (a.rate_ci[0] * k, a.rate_ci[1] * k)
    if a.batch is not None:
        p = min((n / sess.mean_turns) / first, 1.0)
        a.batch.sizes = thin_sizes(a.batch.sizes, p)
        a.notes.insert(
            1,
            f"batches: the log's first turns include later turns of conversations begun before it, which the "
            f"generated sessions make themselves; each batch's sizes are thinned to the starts' share p={p:.4f} "
            f"((requests / mean turns) / first turns), mean size {a.batch.mean_size:.4g}, so batches keep the log's cadence",
        )


def fit_traffic(
    log: RequestLog,
    *,
    by: Optional[str] = None,
    classes: Optional[int] = None,
    scale: float = 1.0,
    growth: Optional[tuple[float, int]] = None,
    seed: int = 0,
    ties: str = "spread",
) -> TrafficFit:
    """Fit ``log`` (cleaned, sorted, starting at 0); ``ties="batch"`` fits a coarse clock's tied
    timestamps as batches instead of spreading them over their tick."""
    rng = np.random.default_rng(seed)
    warnings = list(log.warnings)
    if by is not None:
        groups = split_by_field(log, by, warnings)
        split = f"classes by the log's {by} field"
    elif classes is not None and classes > 1:
        groups = split_by_clusters(log, classes, rng)
        split = f"{classes} classes by k-means on log(prompt), log(output) (named p<median prompt>-o<median output>)"
    else:
        groups = [("default", np.arange(len(log)))]
        split = "one class"
    used = np.sort(np.concatenate([rows for _, rows in groups]))
    whole = log if used.size == len(log) else log.take(used)
    several = len(groups) > 1
    arrival = fit_arrivals(whole.arrival_s, whole.start_epoch_s, regimes=not several, ties=ties)
    out = []
    for name, rows in groups:
        part = log.take(rows)
        sess = None
        finish = None if part.finish_s is None else part.finish_s - whole.arrival_s[0]
        if part.hash_ids is not None and part.hash_offsets is not None:
            sess = fit_sessions(
                part.arrival_s - whole.arrival_s[0],
                whole.span_s,
                part.hash_offsets,
                part.hash_ids,
                part.prompt_tokens,
                part.output_tokens,
                part.hash_block_tokens,
                rng,
                finish,
            )
        elif part.conversation is not None and part.turn is not None:  # the log names each request's turn
            codes = np.where(part.conversation.values() == "", -1, part.conversation.codes)
            sess = fit_session_form(
                part.arrival_s - whole.arrival_s[0],
                whole.span_s,
                conversation_parents(codes, part.turn),
                part.prompt_tokens,
                part.output_tokens,
                rng,
                finish,
            )
        # with sessions, lengths, prefix and arrivals are the first turns' (later turns follow from them)
        first = part if sess is None else part.take(sess.first_turns)
        starts = first
        if sess is not None:  # lengths: of the first turns likely to start a session
            keep = sess.true_starts(first.arrival_s - whole.arrival_s[0], rows.size, whole.span_s, rng)
            if keep.any():  # none (e.g. one conversation holds the whole log): every first turn
                starts = first.take(np.flatnonzero(keep))
        pair = fit_pair(starts.prompt_tokens, starts.output_tokens, rng, paired=starts.paired)
        if sess is not None:
            pair.notes.append(
                f"session starts' lengths: {starts.prompt_tokens.size:,} of the {first.prompt_tokens.size:,} first "
                "turns, each kept with the chance it starts a session rather than continues one begun before the log "
                f"(prompt mean {starts.prompt_tokens.mean():.0f} kept, {first.prompt_tokens.mean():.0f} of all first turns)"
            )
        if starts.paired:
            note = order_note(starts.prompt_tokens, starts.output_tokens)
            if note is not None:
                pair.notes.append(note)
        tp, to = _table(starts.prompt_tokens, starts.output_tokens, rng)
        pre = None
        if first.hash_ids is not None and first.hash_offsets is not None:
            pre = fit_prefix(first.hash_offsets, first.hash_ids, first.prompt_tokens, first.hash_block_tokens)
        if sess is not None:
            own = fit_arrivals(
                first.arrival_s,
                whole.start_epoch_s,
                regimes=not several,
                origin_s=whole.arrival_s[0],
                span_s=whole.span_s,
                ties=ties,
            )
            _as_request_rate(own, rows.size, whole.span_s, sess)
            if not several:
                arrival = own
        else:
            own = (
                arrival
                if not several
                else fit_arrivals(
                    part.arrival_s, whole.start_epoch_s, origin_s=whole.arrival_s[0], span_s=whole.span_s, ties=ties
                )
            )
        out.append(ClassFit(name, rows.size, rows.size / used.size, rows, pair, tp, to, pre, own, sess))
    return TrafficFit(
        sources=list(log.sources),
        n=int(used.size),
        span_s=whole.span_s,
        start_epoch_s=whole.start_epoch_s,
        arrival=arrival,
        classes=out,
        split=split,
        scale=scale,
        growth=growth,
        log=log,
        warnings=warnings,
    )
