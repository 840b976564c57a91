"""Readers of the logs planners have: OpenAI-style gateway logs and the bundled
public traces (Azure LLM inference 2023, Mooncake), into a ``RequestLog``.

Gateway logs (CSV or JSON Lines, one request per row; docs/traffic-fit.md):
the columns are found by their usual names (``GATEWAY_COLUMNS``) or mapped
with ``--map FIELD=COLUMN``; a JSONL key may be dotted (``usage.prompt_tokens``).
Optional columns name each request's conversation (and turn) and give its completion (an end
time, or a latency in s or ms): the fit then writes sessions and chooses their ``gap_from``.
A row that cannot be read (bad JSON, a token count that is no number, a time
that is no time) is dropped and counted by reason, with the first one's file,
line and column; a column missing from the whole file is an error.

The traces are read by ``sim.workload.traces.load_trace`` (the reader replay
uses), so a bad row is the same located error there and here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from sim.errors import FleetcastError
from sim.infiles import MAX_DATA_FILE_BYTES, check_input_file
from sim.workload.distributions import MAX_TOKENS
from sim.workload.fit.log import Labels, RequestLog
from sim.workload.spec import MAX_LATENCY_S, TraceArrival
from sim.workload.traces import load_trace

__all__ = ["GATEWAY_COLUMNS", "GROUP_FIELDS", "read_gateway", "read_trace", "sniff_format"]

#: Gateway log field -> the column names tried, in order (the first present is used).
GATEWAY_COLUMNS: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "created", "time", "start_time", "request_time"),
    "prompt_tokens": ("usage.prompt_tokens", "prompt_tokens", "input_tokens"),
    "output_tokens": ("usage.completion_tokens", "completion_tokens", "output_tokens"),
    "model": ("model",),
    "tenant": ("tenant", "user", "api_key_id", "org"),
    "route": ("route", "endpoint", "path", "url"),
    "class": ("class",),
    # conversations and completion times (optional): ``traffic fit`` fits sessions on the first and
    # chooses ``gap_from`` on the second (sim.workload.fit.think)
    "conversation": ("conversation", "conversation_id", "session_id", "thread_id"),
    "turn": ("turn", "turn_index"),
    "finish_time": ("finish_time", "end_time", "completed_at"),
    "latency_s": ("latency_s", "duration_s", "elapsed_s"),
    "latency_ms": ("latency_ms", "duration_ms", "elapsed_ms"),
}
#: Fields a log may be split into classes by (``--by``).
GROUP_FIELDS = ("model", "tenant", "route", "class")
#: Optional fields that give each request's completion (the first present is used).
_FINISH_FIELDS = ("finish_time", "latency_s", "latency_ms")
_REQUIRED = ("timestamp", "prompt_tokens", "output_tokens")
#: The largest turn number read (a larger one is a bad value: past it a float no longer holds every whole number).
MAX_TURN = 1_000_000_000


def _check(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FleetcastError(f"{path}: file not found (give a request log: .csv, .jsonl or .json)")
    return check_input_file(path.resolve(), MAX_DATA_FILE_BYTES, "log file")


def sniff_format(path: Path) -> str:
    """``azure-2023``, ``mooncake``, ``request-log`` (validate's per-request log), ``bench-serve``,
    ``prometheus-json`` (range-query answers), ``metrics-scrapes`` or ``gateway``, from the file's
    first bytes, line or object."""
    path = _check(path)
    with open(path, "rb") as fh:
        start = fh.read(4096).decode("utf-8", errors="replace")
    if start.lstrip().startswith("# scrape"):
        return "metrics-scrapes"
    if '"resultType"' in start or start.lstrip().startswith("["):
        return "prometheus-json"
    if path.suffix.lower() == ".json":
        return "bench-serve"
    with open(path, "rb") as fh:
        head = fh.readline(1 << 20).decode("utf-8", errors="replace").strip()
    if path.suffix.lower() == ".csv":
        cols = [c.strip() for c in head.split(",")]
    else:
        try:
            obj = json.loads(head)
            cols = list(obj) if isinstance(obj, dict) else []
        except json.JSONDecodeError:
            cols = []
    if {"TIMESTAMP", "ContextTokens", "GeneratedTokens"} <= set(cols):
        return "azure-2023"
    if {"input_length", "output_length", "timestamp"} <= set(cols):
        return "mooncake"
    if "arrival_s" in cols:
        return "request-log"
    return "gateway"


def read_trace(path: Path, preset: str) -> RequestLog:
    """A bundled public trace (``azure-2023`` or ``mooncake``) via the replay reader."""
    path = _check(path)
    spec = TraceArrival(process="trace", path=str(path), preset=preset)
    tr = load_trace(spec, path.parent, where=str(path))
    epoch = _azure_epoch(path) if preset == "azure-2023" else None
    return RequestLog(
        arrival_s=tr.arrival_s,
        prompt_tokens=tr.prompt_tokens,
        output_tokens=tr.output_tokens,
        hash_offsets=tr.hash_offsets,
        hash_ids=tr.hash_ids,
        hash_block_tokens=spec.hash_block_tokens,
        start_epoch_s=epoch,
        sources=[str(path)],
        warnings=list(tr.notes),
    )


def _azure_epoch(path: Path) -> Optional[float]:
    import pandas as pd  # only for a log file

    t = pd.to_datetime(pd.read_csv(path, usecols=["TIMESTAMP"])["TIMESTAMP"], format="ISO8601", errors="coerce")
    return None if t.isna().all() else float(t.min().value / 1e9)


def _pick(found: list[str], mapping: dict[str, str], path: Path) -> dict[str, str]:
    cols: dict[str, str] = {}
    for f, names in GATEWAY_COLUMNS.items():
        if f in mapping:
            if mapping[f] not in found:
                raise FleetcastError(
                    f"{path}: --map {f}={mapping[f]}: the log has no column '{mapping[f]}'; columns found: "
                    f"{', '.join(found) or '(none)'}"
                )
            cols[f] = mapping[f]
            continue
        hit = next((c for c in names if c in found), None)
        if hit is not None:
            cols[f] = hit
    _one_field_per_column(cols, mapping, path)
    gone = [f for f in _REQUIRED if f not in cols]
    if gone:
        raise FleetcastError(
            f"{path}: no column for {', '.join(gone)}; columns found: {', '.join(found) or '(none)'}. "
            f"Looked for {'; '.join(f'{f}: ' + ', '.join(GATEWAY_COLUMNS[f]) for f in gone)}; "
            f"map another column with --map FIELD=COLUMN (docs/traffic-fit.md)"
        )
    return cols


def _one_field_per_column(cols: dict[str, str], mapping: dict[str, str], path: Path) -> None:
    """A column read as two fields (``--map conversation=turn`` beside the log's own ``turn``
    column) is refused, naming both fields and how each can have its own column."""
    by_column: dict[str, list[str]] = {}
    for f, c in cols.items():
        by_column.setdefault(c, []).append(f)
    for c, fields in by_column.items():
        if len(fields) > 1:
            mapped = [f for f in fields if mapping.get(f) == c]
            found = [f for f in fields if f not in mapped]
            how = "; ".join([f"{f} from --map {f}={c}" for f in mapped] + [f"{f} by its usual name" for f in found])
            fix = (
                f"give {found[0]} a column of its own (--map {found[0]}=COLUMN) or map {mapped[0]} to another column"
                if found and mapped
                else f"map {' and '.join(fields)} to different columns"
            )
            raise FleetcastError(
                f"{path}: column '{c}' would be read as {' and as '.join(fields)} ({how}); one column gives one "
                f"field: {fix}"
            )


def _flat(obj: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _read_rows(path: Path, mapping: dict[str, str]):
    """(column -> raw values, file lines, bad-JSON lines). A CSV reads only the columns the fit
    uses, numbers as numbers and the class fields as categories (a 10-million-row log in
    well under 2 GB)."""
    import pandas as pd  # only for a log file

    if path.suffix.lower() == ".csv":
        try:
            header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            cols = _pick(header, mapping, path)
            groups = {cols[f] for f in (*GROUP_FIELDS, "conversation") if f in cols}
            df = pd.read_csv(
                path,
                usecols=sorted(set(cols.values())),
                dtype={c: "category" for c in groups},
                skip_blank_lines=False,
                low_memory=False,
            )
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
            raise FleetcastError(f"{path}: cannot read the CSV: {str(e).strip()}") from None
        blank = df.isna().all(axis=1).to_numpy()
        lines = np.arange(2, len(df) + 2, dtype=np.int64)[~blank]
        df = df[~blank]
        return {c: df[c] for c in df.columns}, lines, []
    rows: list[dict] = []
    at: list[int] = []
    bad: list[int] = []
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad.append(i)
                continue
            if not isinstance(obj, dict):
                bad.append(i)
                continue
            rows.append(_flat(obj))
            at.append(i)
    keys: dict[str, None] = {}
    for r in rows[:1000]:
        keys.update(dict.fromkeys(r))
    data = {k: pd.Series([r.get(k) for r in rows], dtype=object) for k in keys}
    return data, np.array(at, dtype=np.int64), bad


def _numbers(raw) -> np.ndarray:
    """A column (pandas Series) as float64; what is no number becomes NaN."""
    import pandas as pd  # only for a log file

    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        return raw.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(raw.astype(object), errors="coerce").to_numpy(dtype=float)


def _cell(value) -> str:
    """A cell as the log wrote it, for a message (a NumPy number as a plain one: -1.0, not np.float64(-1.0))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _times(raw) -> tuple[np.ndarray, bool]:
    """Seconds (UNIX time for dates and epoch numbers), and whether they are wall-clock."""
    import pandas as pd  # only for a log file

    num = _numbers(raw)
    if np.isfinite(num).mean() > 0.5:  # epoch seconds (or ms / us, told apart by size)
        med = float(np.nanmedian(num))
        scale = 1e-6 if med > 1e14 else 1e-3 if med > 1e11 else 1.0
        return num * scale, med > 1e8
    t = pd.to_datetime(raw.astype(object), format="ISO8601", errors="coerce", utc=True)
    secs = (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
    return secs, True


def _labels(raw, keep: np.ndarray) -> Labels:
    """A class field's kept values (via pandas categories: one string per distinct value)."""
    import pandas as pd  # only for a log file

    cat = raw if isinstance(raw.dtype, pd.CategoricalDtype) else raw.astype(object).astype("category")
    codes = cat.cat.codes.to_numpy()[keep]
    names = np.asarray([str(c) for c in cat.cat.categories] + (["(none)"] if (codes < 0).any() else []))
    return Labels(np.where(codes < 0, names.size - 1, codes).astype(np.int32), names)


def read_gateway(path: Path, mapping: dict[str, str]) -> RequestLog:
    """An OpenAI-style gateway log; unreadable rows are dropped and counted (see the module doc)."""
    path = _check(path)
    data, lines, bad_json = _read_rows(path, mapping)
    if not len(lines) and not bad_json:
        raise FleetcastError(f"{path}: the log holds no requests")
    cols = _pick(list(data), mapping, path)
    t, wall = _times(data[cols["timestamp"]])
    prompt = _numbers(data[cols["prompt_tokens"]])
    output = _numbers(data[cols["output_tokens"]])
    warnings = []
    n_read = len(lines) + len(bad_json)
    if bad_json:
        warnings.append(
            f"{path}: {len(bad_json):,} of {n_read:,} line(s) dropped: not one JSON object (the first at line {bad_json[0]})."
        )
    bad = np.zeros(len(lines), dtype=bool)
    checks = (
        ("timestamp", ~np.isfinite(t), "a time (UNIX seconds or an ISO 8601 date-time)"),
        ("prompt_tokens", ~np.isfinite(prompt) | (prompt != np.floor(prompt)), "a whole number of tokens"),
        ("output_tokens", ~np.isfinite(output) | (output != np.floor(output)), "a whole number of tokens"),
    )
    for f, mask, what in checks:
        new = mask & ~bad
        if new.any():
            i = int(np.argmax(new))
            warnings.append(
                f"{path}: {int(new.sum()):,} of {n_read:,} row(s) dropped: column '{cols[f]}' is not {what} "
                f"(the first at line {lines[i]}: {data[cols[f]].iloc[i]!r})."
            )
        bad |= mask
    keep = ~bad
    fields = {f: _labels(data[cols[f]], keep) for f in GROUP_FIELDS if f in cols}
    finish = _finish(data, cols, t, wall, lines, keep, n_read, path, warnings)
    conv, turn = _conversations(data, cols, t, lines, keep, n_read, path, warnings)
    return RequestLog(
        arrival_s=t[keep],
        prompt_tokens=np.clip(prompt[keep], -1, MAX_TOKENS + 1).astype(np.int64),  # huge stays "above", cast-safe
        output_tokens=np.clip(output[keep], -1, MAX_TOKENS + 1).astype(np.int64),
        fields=fields,
        start_epoch_s=0.0 if wall else None,
        lines=lines[keep],
        finish_s=finish,
        conversation=conv,
        turn=turn,
        sources=[str(path)],
        warnings=warnings,
    )


def _finish(data, cols, t, wall: bool, lines, keep, n_read: int, path: Path, warnings: list) -> Optional[np.ndarray]:
    """Each kept row's completion on the arrival clock (NaN: unknown), from the first of
    ``finish_time`` (a time like ``timestamp``'s), ``latency_s`` or ``latency_ms`` (from the
    arrival) the log has; None without any. A value that is no time, a negative latency or a
    completion on another clock than the timestamps is unknown for that row, counted in a
    warning with the first one's line (the row is kept: its arrival and lengths are fine)."""
    f = next((f for f in _FINISH_FIELDS if f in cols), None)
    if f is None:
        return None
    raw = data[cols[f]]
    if f == "finish_time":
        end, end_wall = _times(raw)
        if end_wall != wall:
            warnings.append(
                f"{path}: column '{cols[f]}' ({f}) is not on the timestamps' clock (one is a date or UNIX time, "
                "the other is not): completion times are not used."
            )
            return None
        lat = end - t
        what = f"a time from the row's timestamp to {MAX_LATENCY_S:,.0f} s after it (UNIX seconds or an ISO 8601 date-time)"
    else:
        lat = _numbers(raw) * (1e-3 if f == "latency_ms" else 1.0)
        end = t + lat
        what = "a latency from 0 to " + (
            f"{MAX_LATENCY_S * 1e3:,.0f} ms" if f == "latency_ms" else f"{MAX_LATENCY_S:,.0f} s"
        )
    with np.errstate(invalid="ignore"):  # inf - inf: NaN, a bad value either way
        bad = ~np.isfinite(lat) | (lat < 0) | (lat > MAX_LATENCY_S)
    given = raw.notna().to_numpy()  # an empty cell is an unknown completion, not a bad one
    new = bad & given & keep
    if new.any():
        i = int(np.argmax(new))
        warnings.append(
            f"{path}: {int(new.sum()):,} of {n_read:,} row(s) without a usable completion time: column "
            f"'{cols[f]}' is not {what} (the first at line {lines[i]}: {_cell(raw.iloc[i])}); they are fitted "
            "without one."
        )
    return np.where(bad, np.nan, end)[keep]


def _conversations(data, cols, t, lines, keep, n_read: int, path: Path, warnings: list):
    """(conversation labels, turn numbers) of the kept rows, or (None, None) without a
    ``conversation`` column. An empty value is a request outside any conversation. Without a
    ``turn`` column a conversation's turns are numbered 1, 2, ... by arrival; a turn that is no
    whole number of 1 or more takes its row out of its conversation, counted in a warning with
    the first one's line."""
    if "conversation" not in cols:
        if "turn" in cols:
            warnings.append(f"{path}: column '{cols['turn']}' (turn) is not used without a conversation column.")
        return None, None
    raw = data[cols["conversation"]]
    name = raw.astype(object).where(raw.notna(), "").astype(str).to_numpy()[keep]
    name = np.char.strip(name.astype(str))
    if "turn" in cols:
        turn = _numbers(data[cols["turn"]])[keep]
        bad = (name != "") & (~np.isfinite(turn) | (turn < 1) | (turn > MAX_TURN) | (turn != np.floor(turn)))
        if bad.any():
            i = int(np.argmax(bad))
            kept_lines = lines[keep]
            warnings.append(
                f"{path}: {int(bad.sum()):,} of {n_read:,} row(s) taken out of their conversation: column "
                f"'{cols['turn']}' is not a whole number from 1 to {MAX_TURN:,} (the first at line {kept_lines[i]}: "
                f"{_cell(data[cols['turn']].iloc[np.flatnonzero(keep)[i]])}); they are fitted as single requests."
            )
            name = np.where(bad, "", name)
        turn = np.where(name != "", np.nan_to_num(turn), 0).astype(np.int64)
    else:  # numbered by arrival within each conversation
        order = np.lexsort((t[keep], name))
        turn = np.zeros(name.size, dtype=np.int64)
        sorted_names = name[order]
        start = np.concatenate([[True], sorted_names[1:] != sorted_names[:-1]]) if name.size else np.zeros(0, bool)
        idx = np.arange(name.size)
        first = np.maximum.accumulate(np.where(start, idx, 0)) if name.size else idx
        turn[order] = idx - first + 1
        turn = np.where(name != "", turn, 0)
    return Labels.of(name), turn
