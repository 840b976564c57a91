"""A per-request log in JSON Lines or CSV: one record per request (docs/run-logs.md, "Per-request logs").

Fields (seconds on any one clock; the earliest ``arrival_s`` becomes 0):

| field | type | required |
|---|---|---|
| ``arrival_s`` | number: when the request was sent | yes |
| ``first_token_s`` | number: when its first output token arrived | when ok |
| ``last_token_s`` | number: when its last output token arrived | when ok |
| ``prompt_tokens`` | integer >= 1 | yes |
| ``output_tokens`` | integer >= 1 (tokens produced) | when ok |
| ``class`` | string (default ``default``) | no |
| ``ok`` | boolean (default true) | no |
| ``error`` | string; non-empty means failed | no |
| ``conversation``, ``turn`` | string, integer >= 1: the request is that turn of that conversation | no |
| ``prefix_tokens`` | integer >= 0: leading prompt tokens equal to the conversation's previous turn's | no (default 0) |
| ``warmup`` | boolean (default false): sent before the measured requests, replayed, not measured | no |

Other fields are ignored. A record is failed when ``ok`` is false or
``error`` is non-empty; failed records are counted, not replayed. Requests of the
same conversation and turn have the same prompt (a client that sends it again); a
turn with ``prefix_tokens`` > 0 shares them with the previous turn, which the log
holds. A warm-up record needs ``arrival_s``, ``prompt_tokens`` and
``output_tokens`` only, and arrives before every measured one.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd

from calibration.log_files import REQUEST_LOG_SUFFIXES
from sim.errors import FleetcastError
from sim.infiles import MAX_DATA_FILE_BYTES, check_input_file
from sim.workload.spec import MAX_LATENCY_S

__all__ = ["read_request_log", "LOG_FIELDS", "REQUEST_LOG_SUFFIXES"]

LOG_FIELDS = ("arrival_s", "first_token_s", "last_token_s", "prompt_tokens", "output_tokens", "class", "ok", "error")
OPTIONAL_FIELDS = ("conversation", "turn", "prefix_tokens", "warmup")
"""Prefix sharing and warm-up (docs/run-logs.md, "Conversations and warm-up")."""
_DOC = 'docs/run-logs.md, "Per-request logs"'
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def read_request_log(path: Path) -> pd.DataFrame:
    """Records in file order: ``class, arrival_s, first_token_s, finish_s, prompt_tokens, output_tokens,
    status, error``, and ``conversation, prefix_tokens, warmup`` when the log has any of them (docs/run-logs.md,
    "Conversations and warm-up"); a malformed record is a FleetcastError naming the file, line and field."""
    path = check_input_file(Path(path), MAX_DATA_FILE_BYTES, "run log")  # a 3 GiB one took 6.4 GB of memory
    csv_file = path.suffix.lower() == ".csv"
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            raw = list(_csv_records(path, fh) if csv_file else _jsonl_records(path, fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetcastError(f"cannot read {path}: {exc}") from None
    if not raw:
        raise FleetcastError(f"{path} holds no records; a per-request log has one record per request ({_DOC})")
    rows = [_record(path, line, rec) for line, rec in raw]
    extra = any(f in rec for _line, rec in raw for f in OPTIONAL_FIELDS)
    if extra:
        rows = [r + _sharing(path, line, rec, r) for (line, rec), r in zip(raw, rows)]
        _check_sharing(path, [line for line, _rec in raw], rows)
    df = pd.DataFrame(
        rows,
        columns=[
            "class",
            "arrival_s",
            "first_token_s",
            "finish_s",
            "prompt_tokens",
            "output_tokens",
            "status",
            "error",
            *(OPTIONAL_FIELDS if extra else ()),
        ],
    )
    t0 = float(df["arrival_s"].min())
    for c in ("arrival_s", "first_token_s", "finish_s"):
        df[c] = df[c] - t0
    return df


def _jsonl_records(path: Path, fh):
    for line, text in enumerate(fh, 1):
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FleetcastError(
                f"{path}, line {line}, column {exc.colno}: not valid JSON ({exc.msg}); each "
                f"line of a .jsonl log is one JSON object ({_DOC})"
            ) from None
        if not isinstance(rec, dict):
            raise FleetcastError(
                f"{path}, line {line}: each line of a .jsonl log is one JSON object (a record), "
                f"got a JSON {type(rec).__name__} ({_DOC})"
            )
        yield line, rec


def _csv_records(path: Path, fh):
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    need = [f for f in ("arrival_s", "prompt_tokens") if f not in header]
    if need:
        raise FleetcastError(
            f"{path}, line 1: the header lacks the column(s) {', '.join(need)}; a .csv log starts "
            f"with a header naming its columns ({', '.join(LOG_FIELDS)}; {_DOC})"
        )
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise FleetcastError(
                f"{path}, line {line}: {len(row)} cells but the header names {len(header)} columns ({_DOC})"
            )
        yield line, {h: c.strip() for h, c in zip(header, row) if c.strip() != ""}


def _number(
    path: Path,
    line: int,
    rec: dict,
    fld: str,
    *,
    integer: bool = False,
    minimum: float | None = None,
    required: bool = True,
):
    v = rec.get(fld)
    if v is None:
        if required:
            raise FleetcastError(
                f"{path}, line {line}: field {fld} is missing; "
                f"{'a record' if fld in ('arrival_s', 'prompt_tokens') else 'a request that succeeded'} "
                f"needs it ({_DOC})"
            )
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            pass
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (not integer or v == int(v)) and (minimum is None or v >= minimum)  # type: ignore[operator]  # ok is False unless v is a number
    if not ok:
        kind = (
            f"an integer >= {minimum:g}"
            if integer
            else "a finite number (seconds)"
            if minimum is None
            else f"a finite number >= {minimum:g}"
        )
        raise FleetcastError(f"{path}, line {line}, field {fld}: must be {kind}, got {rec.get(fld)!r} ({_DOC})")
    return int(v) if integer else float(v)


def _record(path: Path, line: int, rec: dict) -> tuple:
    arrival = _number(path, line, rec, "arrival_s")
    prompt = _number(path, line, rec, "prompt_tokens", integer=True, minimum=1)
    cls = rec.get("class", "default")
    if not isinstance(cls, str) or not cls:
        raise FleetcastError(f"{path}, line {line}, field class: must be a non-empty string, got {cls!r} ({_DOC})")
    ok = rec.get("ok", True)
    if isinstance(ok, str) and ok.lower() in _TRUE + _FALSE:
        ok = ok.lower() in _TRUE
    if not isinstance(ok, bool):
        raise FleetcastError(f"{path}, line {line}, field ok: must be true or false, got {ok!r} ({_DOC})")
    err = rec.get("error") or ""
    if not isinstance(err, str):
        raise FleetcastError(
            f"{path}, line {line}, field error: must be a string (empty or absent when the "
            f"request succeeded), got {err!r} ({_DOC})"
        )
    if not ok or err:
        return (cls, arrival, math.nan, math.nan, prompt, 0, "error", err or "ok: false")
    if _flag(path, line, rec, "warmup") and rec.get("first_token_s") is None:  # replayed only: no timings needed
        out = _number(path, line, rec, "output_tokens", integer=True, minimum=1)
        return (cls, arrival, math.nan, math.nan, prompt, out, "ok", "")
    first = _number(path, line, rec, "first_token_s")
    last = _number(path, line, rec, "last_token_s")
    out = _number(path, line, rec, "output_tokens", integer=True, minimum=1)
    if first < arrival:
        raise FleetcastError(
            f"{path}, line {line}, field first_token_s: {first:g} is before arrival_s "
            f"{arrival:g}; the first token comes after the request is sent ({_DOC})"
        )
    if last < first:
        raise FleetcastError(
            f"{path}, line {line}, field last_token_s: {last:g} is before first_token_s {first:g} ({_DOC})"
        )
    if last - arrival > MAX_LATENCY_S:
        fld, t = ("first_token_s", first) if first - arrival > MAX_LATENCY_S else ("last_token_s", last)
        raise FleetcastError(
            f"{path}, line {line}, field {fld}: {t:g} is {t - arrival:g} s after arrival_s {arrival:g}; a latency "
            f"is at most {MAX_LATENCY_S:g} s ({_DOC})"
        )
    return (cls, arrival, first, last, prompt, out, "ok", "")


def _flag(path: Path, line: int, rec: dict, fld: str) -> bool:
    v = rec.get(fld, False)
    if isinstance(v, str) and v.lower() in _TRUE + _FALSE:
        v = v.lower() in _TRUE
    if not isinstance(v, bool):
        raise FleetcastError(f"{path}, line {line}, field {fld}: must be true or false, got {v!r} ({_DOC})")
    return v


def _sharing(path: Path, line: int, rec: dict, row: tuple) -> tuple:
    """(conversation, turn, prefix_tokens, warmup) of one record (no conversation: "", 0)."""
    conv = rec.get("conversation", "")
    conv = conv if isinstance(conv, str) else str(conv)
    turn = _number(path, line, rec, "turn", integer=True, minimum=1, required=False) or 0
    if bool(conv) != bool(turn):
        raise FleetcastError(
            f"{path}, line {line}, field {'turn' if conv else 'conversation'}: missing; a turn of a conversation "
            f"names both the conversation and its turn number ({_DOC})"
        )
    shared = _number(path, line, rec, "prefix_tokens", integer=True, minimum=0, required=False) or 0
    if shared and turn < 2:
        raise FleetcastError(
            f"{path}, line {line}, field prefix_tokens: {shared} tokens shared with a previous turn, but the "
            f"request is {'turn 1' if turn else 'no turn of a conversation'} ({_DOC})"
        )
    if shared >= row[4]:
        raise FleetcastError(
            f"{path}, line {line}, field prefix_tokens: {shared} is not below prompt_tokens {row[4]}; a turn "
            f"computes at least its last prompt token ({_DOC})"
        )
    return (conv, turn, shared, _flag(path, line, rec, "warmup"))


def _check_sharing(path: Path, lines: list[int], rows: list[tuple]) -> None:
    """Warm-up records arrive before every measured one; the requests of one conversation turn agree
    on its prompt and shared prefix; a shared prefix is at most the previous turn's prompt, which the
    log holds."""
    first_measured = min((r[1] for r in rows if not r[11]), default=math.inf)
    turns: dict[tuple[str, int], tuple[int, int, int]] = {}  # (conversation, turn) -> prompt, shared, line
    for line, r in zip(lines, rows):
        conv, turn, shared, warm = r[8], r[9], r[10], r[11]
        if warm and r[1] > first_measured:
            raise FleetcastError(
                f"{path}, line {line}, field warmup: the warm-up request arrives at {r[1]:g}, after the first "
                f"measured one ({first_measured:g}); warm-up requests are sent first ({_DOC})"
            )
        if not conv:
            continue
        seen = turns.setdefault((conv, turn), (r[4], shared, line))
        if seen[:2] != (r[4], shared):
            raise FleetcastError(
                f"{path}, line {line}: turn {turn} of conversation {conv!r} has prompt_tokens {r[4]} and "
                f"prefix_tokens {shared}, but line {seen[2]} gives {seen[0]} and {seen[1]}; the requests of one "
                f"turn send the same prompt ({_DOC})"
            )
    for (conv, turn), (_prompt, shared, line) in turns.items():
        if shared:
            prev = turns.get((conv, turn - 1))
            if prev is None or shared > prev[0]:
                raise FleetcastError(
                    f"{path}, line {line}, field prefix_tokens: {shared} tokens shared with turn {turn - 1} of "
                    f"conversation {conv!r}, "
                    + ("which the log does not hold" if prev is None else f"whose prompt has only {prev[0]}")
                    + f" ({_DOC})"
                )
