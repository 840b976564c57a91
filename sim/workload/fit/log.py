"""A request log in memory, as the fit reads it: one row per request.

``RequestLog.clean`` drops the rows that cannot be fitted (negative or absurd
token counts) and says how many and why; it never drops silently. Times are
seconds from the log's first request after cleaning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from sim.errors import FleetcastError
from sim.workload.distributions import MAX_TOKENS

__all__ = ["RequestLog", "Labels", "MIN_REQUESTS", "CLOCK_JUMP_S"]

#: Fewest requests the fit accepts (per log, and per class).
MIN_REQUESTS = 50
#: A gap between consecutive requests longer than this (and 1000 mean gaps) is a clock jump or an outage.
CLOCK_JUMP_S = 3600.0


@dataclass
class Labels:
    """A class field's value per request as codes into ``names`` (a 10-million-row log holds
    4 bytes per request, not a string)."""

    codes: np.ndarray  # int32, index into names
    names: np.ndarray  # str, one per distinct value

    @classmethod
    def of(cls, values) -> Labels:
        names, inverse = np.unique(np.asarray(values).astype(str), return_inverse=True)
        return cls(inverse.ravel().astype(np.int32), names)

    def __getitem__(self, rows) -> Labels:
        return Labels(self.codes[rows], self.names)

    def values(self) -> np.ndarray:
        return self.names[self.codes]

    @classmethod
    def concat(cls, parts: list[Labels]) -> Labels:
        names = np.unique(np.concatenate([p.names for p in parts]))
        return cls(np.concatenate([np.searchsorted(names, p.names).astype(np.int32)[p.codes] for p in parts]), names)


@dataclass
class RequestLog:
    """Requests of one or more files, sorted by arrival."""

    arrival_s: np.ndarray  # float64, first at 0
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    fields: dict[str, Labels] = field(default_factory=dict)  # model / tenant / route / class
    hash_offsets: Optional[np.ndarray] = None  # int64 (n+1) CSR into hash_ids
    hash_ids: Optional[np.ndarray] = None  # int64 block hashes (Mooncake hash_ids)
    hash_block_tokens: int = 512
    start_epoch_s: Optional[float] = None  # wall-clock time of arrival 0 (UNIX s), when the log has dates
    lines: Optional[np.ndarray] = None  # int64 file line of each row (for messages)
    paired: bool = True  # False: prompt and output were not observed together (metrics)
    finish_s: Optional[np.ndarray] = None  # float64, each request's end on arrival_s's clock (NaN: unknown)
    conversation: Optional[Labels] = None  # the conversation each request is a turn of ("" none)
    turn: Optional[np.ndarray] = None  # int64, its turn number in it (>= 1; 0 none)
    sources: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def span_s(self) -> float:
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) else 0.0

    def take(self, rows: np.ndarray) -> RequestLog:
        """The log restricted to ``rows`` (sorted indices); hash chains follow."""
        offsets = ids = None
        if self.hash_offsets is not None and self.hash_ids is not None:
            lens = (self.hash_offsets[1:] - self.hash_offsets[:-1])[rows]
            starts = self.hash_offsets[:-1][rows]
            offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
            ids = self.hash_ids[np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])]
        return RequestLog(
            arrival_s=self.arrival_s[rows],
            prompt_tokens=self.prompt_tokens[rows],
            output_tokens=self.output_tokens[rows],
            fields={k: v[rows] for k, v in self.fields.items()},
            hash_offsets=offsets,
            hash_ids=ids,
            hash_block_tokens=self.hash_block_tokens,
            start_epoch_s=self.start_epoch_s,
            lines=None if self.lines is None else self.lines[rows],
            paired=self.paired,
            finish_s=None if self.finish_s is None else self.finish_s[rows],
            conversation=None if self.conversation is None else self.conversation[rows],
            turn=None if self.turn is None else self.turn[rows],
            sources=list(self.sources),
            warnings=[],
        )

    @classmethod
    def concat(cls, logs: list[RequestLog]) -> RequestLog:
        """Several files of one log (e.g. one per day), on one clock when they have dates."""
        if len(logs) == 1:
            return logs[0]
        if any(lg.start_epoch_s is None for lg in logs):
            raise FleetcastError(
                "several logs can be fitted together only when each has wall-clock timestamps "
                f"({', '.join(s for lg in logs if lg.start_epoch_s is None for s in lg.sources)} has relative times); "
                "fit them one at a time"
            )
        t0 = min(lg.start_epoch_s for lg in logs)  # type: ignore[type-var]  # all set (checked above)
        keys = sorted(set.intersection(*(set(lg.fields) for lg in logs)))
        with_hash = all(lg.hash_ids is not None for lg in logs)
        arrival = np.concatenate([lg.arrival_s + (lg.start_epoch_s - t0) for lg in logs])  # type: ignore[operator]
        order = np.argsort(arrival, kind="stable")
        lines = [lg.lines for lg in logs]
        finish = None
        if all(lg.finish_s is not None for lg in logs):
            finish = np.concatenate([lg.finish_s + (lg.start_epoch_s - t0) for lg in logs])  # type: ignore[operator]
        merged = RequestLog(
            arrival_s=arrival,
            prompt_tokens=np.concatenate([lg.prompt_tokens for lg in logs]),
            output_tokens=np.concatenate([lg.output_tokens for lg in logs]),
            fields={k: Labels.concat([lg.fields[k] for lg in logs]) for k in keys},
            start_epoch_s=t0,
            lines=None if any(x is None for x in lines) else np.concatenate(lines),  # type: ignore[arg-type]
            paired=all(lg.paired for lg in logs),
            finish_s=finish,  # conversations are one file's: several files are fitted without them
            sources=[s for lg in logs for s in lg.sources],
            warnings=[w for lg in logs for w in lg.warnings],
        )
        if with_hash:
            offs, parts, base = [np.zeros(1, np.int64)], [], 0
            for lg in logs:
                offs.append(lg.hash_offsets[1:] + base)  # type: ignore[index]
                parts.append(lg.hash_ids)
                base += int(lg.hash_offsets[-1])  # type: ignore[index]
            merged.hash_offsets, merged.hash_ids = np.concatenate(offs), np.concatenate(parts)  # type: ignore[arg-type]
        out = merged.take(order)
        out.warnings = merged.warnings
        return out

    def require(self, min_requests: int, where: str, read: int | None = None) -> RequestLog:
        """This log, if it has at least ``min_requests`` requests; else a FleetcastError."""
        if len(self) < min_requests:
            of = f" (of {read:,} read)" if read is not None else ""
            raise FleetcastError(f"{where}: {len(self)} usable request(s){of}; fitting needs at least {min_requests}")
        return self

    def clean(self, where: str, min_requests: int = MIN_REQUESTS) -> RequestLog:
        """Drop rows the fit cannot use, with a warning that counts them by reason; sort by
        arrival; shift times to start at 0; warn about clock jumps. Raises when fewer than
        ``min_requests`` requests are left."""
        n = len(self)
        reasons = {
            "a negative prompt token count": self.prompt_tokens < 0,
            "a negative output token count": self.output_tokens < 0,
            f"a token count above {MAX_TOKENS:,}": (self.prompt_tokens > MAX_TOKENS)
            | (self.output_tokens > MAX_TOKENS),
            "no arrival time": ~np.isfinite(self.arrival_s),
        }
        bad = np.zeros(n, dtype=bool)
        warnings = list(self.warnings)
        for why, mask in reasons.items():
            new = mask & ~bad
            if new.any():
                first = int(np.argmax(new))
                at = f"line {self.lines[first]}" if self.lines is not None else f"request {first + 1}"
                warnings.append(
                    f"{where}: {int(new.sum()):,} of {n:,} request(s) dropped for {why} (the first at {at})."
                )
            bad |= mask
        rows = np.flatnonzero(~bad)
        t = self.arrival_s[rows]
        unsorted = int((np.diff(t) < 0).sum())
        if unsorted:
            warnings.append(f"{where}: {unsorted:,} request(s) listed before an earlier arrival were sorted by time.")
        rows = rows[np.argsort(t, kind="stable")]
        out = self.take(rows)
        zero = int(((out.prompt_tokens < 1) | (out.output_tokens < 1)).sum())
        if zero:
            warnings.append(f"{where}: {zero:,} request(s) with 0 prompt or output tokens counted as 1 token.")
        out.prompt_tokens = np.maximum(out.prompt_tokens, 1)
        out.output_tokens = np.maximum(out.output_tokens, 1)
        out.require(min_requests, where, n)
        t0 = float(out.arrival_s[0])
        out.arrival_s = out.arrival_s - t0
        if out.finish_s is not None:
            out.finish_s = out.finish_s - t0
            early = out.finish_s < out.arrival_s
            if early.any():
                first = int(np.argmax(early))
                at = f"line {out.lines[first]}" if out.lines is not None else f"request {first + 1}"
                warnings.append(
                    f"{where}: {int(early.sum()):,} request(s) end before they arrive (the first at {at}); "
                    "their completion times are not used (a completion time is at or after the arrival)."
                )
                out.finish_s = np.where(early, np.nan, out.finish_s)
        if out.start_epoch_s is not None:
            out.start_epoch_s += t0
        gaps = np.diff(out.arrival_s)
        limit = max(CLOCK_JUMP_S, 1000.0 * float(np.median(gaps))) if gaps.size else CLOCK_JUMP_S
        jumps = np.flatnonzero(gaps > limit)
        if jumps.size:
            j = int(jumps[0])
            at = f"line {out.lines[j]}" if out.lines is not None else f"request {j + 1}"
            warnings.append(
                f"{where}: {jumps.size} gap(s) longer than {limit:,.0f} s between requests (the first, "
                f"{gaps[j]:,.0f} s, after {at}): a clock jump or an outage; the fitted rate "
                "includes the gap, so fit the log's parts separately if it is an artefact."
            )
        out.warnings = warnings
        return out
