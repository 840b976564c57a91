"""Request-trace readers (CSV / JSONL) with column mappings and presets.

``load_trace(spec, base_dir)`` reads a trace named by a scenario's
``traffic.arrival`` (``process: trace``) and returns a ``Trace``: arrival
times shifted to start at 0 (after the ``start_s`` cut), scaled, sorted
(stable), lengths clamped to >= 1, optional class values and Mooncake-style
``hash_ids`` chains. Every problem with the file is a ``ScenarioError`` that
names the file (as resolved), the scenario field, and for a bad row its line,
column and value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from sim.errors import ScenarioError
from sim.infiles import MAX_DATA_FILE_BYTES, check_input_file, read_bytes_limited

__all__ = ["TracePreset", "PRESETS", "Trace", "load_trace", "read_values"]


@dataclass(frozen=True)
class TracePreset:
    """Column layout of a known trace format."""

    name: str
    format: Optional[str]  # "csv" | "jsonl" | None (from the extension)
    columns: dict[str, str]  # trace field -> column name / JSONL key
    time_unit: str  # "s" | "ms" | "us" | "datetime"
    optional: frozenset = frozenset()  # fields used only when the file has them


PRESETS: dict[str, TracePreset] = {
    "azure-2023": TracePreset(
        "azure-2023",
        "csv",
        {"arrival_s": "TIMESTAMP", "prompt_tokens": "ContextTokens", "output_tokens": "GeneratedTokens"},
        "datetime",
    ),
    "mooncake": TracePreset(
        "mooncake",
        "jsonl",
        {
            "arrival_s": "timestamp",
            "prompt_tokens": "input_length",
            "output_tokens": "output_length",
            "hash_ids": "hash_ids",
        },
        "ms",
    ),
    "generic": TracePreset(
        "generic",
        None,
        {
            "arrival_s": "arrival_s",
            "prompt_tokens": "prompt_tokens",
            "output_tokens": "output_tokens",
            "class": "class",
        },
        "s",
        frozenset({"class"}),
    ),
}

_UNIT_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


@dataclass
class Trace:
    """A trace ready to replay, sorted by arrival."""

    arrival_s: np.ndarray  # float64, first at 0, scaled
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    classes: Optional[np.ndarray]  # object array of class values, or None
    hash_offsets: Optional[np.ndarray]  # int64 (n+1) CSR into hash_ids, or None
    hash_ids: Optional[np.ndarray]  # int64
    path: Path
    notes: list[str] = field(default_factory=list)


def _fmt(path: Path, fmt: Optional[str], where: str) -> str:
    if fmt:
        return fmt
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise ScenarioError(
        f"{where}: cannot tell the format of {path} from its extension; set `format: csv` or `format: jsonl`."
    )


def _check_file(path: Path, where: str) -> Path:
    path = Path(path).resolve()
    if not path.exists():
        raise ScenarioError(f"{where}: file not found: {path} (paths are relative to the scenario file's folder).")
    try:  # a regular file within MAX_DATA_FILE_BYTES (not /dev/zero, a FIFO, a folder)
        return check_input_file(path, MAX_DATA_FILE_BYTES, "data file")
    except ScenarioError as exc:
        raise ScenarioError(f"{where}: {exc}") from None


def _read_table(path: Path, fmt: str, wanted: dict[str, str], optional: set, where: str):
    """Columns ``wanted`` (field -> column) as raw arrays, plus file line numbers."""
    if fmt == "csv":
        return _read_csv(path, wanted, optional, where)
    return _read_jsonl(path, wanted, optional, where)


def _missing(path, where, found, wanted, optional):
    need = [c for f, c in wanted.items() if f not in optional]
    gone = [c for c in need if c not in found]
    if gone:
        raise ScenarioError(
            f"{where}: {path} has no column {', '.join(map(repr, gone))}. Columns found: "
            f"{', '.join(map(str, found)) or '(none)'}; expected: {', '.join(need)}. "
            "Map other names with `columns:` or pick another `preset:`."
        )
    return {f: c for f, c in wanted.items() if c in found}


def _read_csv(path, wanted, optional, where):
    import pandas as pd  # only for a trace file: loading a scenario does not pay for pandas

    try:
        header = list(pd.read_csv(path, nrows=0).columns)
        cols = _missing(path, where, header, wanted, optional)
        df = pd.read_csv(
            path,
            usecols=list(set(cols.values())),
            skip_blank_lines=False,
            low_memory=False,
            dtype=str if "hash_ids" in cols else None,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise ScenarioError(f"{where}: cannot read CSV {path}: {str(e).strip()}") from None
    except OSError as e:  # EIO (/proc/self/mem), EACCES
        raise ScenarioError(f"{where}: cannot read {path}: {e.strerror or e}") from None
    blank = df.isna().all(axis=1).to_numpy()
    lines = np.arange(2, len(df) + 2)[~blank]  # header is line 1
    df = df[~blank]
    data = {f: df[c].to_numpy() for f, c in cols.items()}
    if "hash_ids" in data:
        data["hash_ids"] = [_parse_ids(v) for v in data["hash_ids"]]
    return data, lines, cols


def _parse_ids(v):
    if not isinstance(v, str):
        return v
    parts = [p for p in re.split(r"[\s,\[\]]+", v) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        return v  # reported as a malformed row by _ids_csr


def _read_jsonl(path, wanted, optional, where):
    body = read_bytes_limited(path, MAX_DATA_FILE_BYTES, f"{where}: data file").rstrip()
    try:  # one C-level parse of the whole file; line by line only to locate an error
        rows = json.loads(b"[" + body.replace(b"\n", b",") + b"]")
        ok = len(rows) == body.count(b"\n") + 1 and all(type(o) is dict for o in rows)
    except (json.JSONDecodeError, UnicodeDecodeError):
        ok = False
    if ok:
        lines = np.arange(1, len(rows) + 1, dtype=np.int64)
    else:  # blank lines, or a bad line to report
        numbered = [(i, raw) for i, raw in enumerate(body.splitlines(), start=1) if raw.strip()]
        lines = np.array([i for i, _ in numbered], dtype=np.int64)
        rows = []
        for i, raw in numbered:
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ScenarioError(f"{where}: {path} line {i}: not valid JSON ({e}).") from None
            if not isinstance(obj, dict):
                raise ScenarioError(f"{where}: {path} line {i}: expected one JSON object, got {str(obj)[:60]!r}.")
            rows.append(obj)
    cols = _missing(path, where, list(rows[0]) if rows else [], wanted, optional)
    data = {}
    for f, key in cols.items():
        try:
            out = [obj[key] for obj in rows]
        except KeyError:
            j = next(j for j, obj in enumerate(rows) if key not in obj)
            raise ScenarioError(f"{where}: {path} line {lines[j]}: column '{key}' is missing.") from None
        data[f] = out if f == "hash_ids" else np.array(out, dtype=object)
    return data, lines, cols


def _bad_row(path, where, line, col, value, what):
    raise ScenarioError(f"{where}: {path} line {line}, column '{col}': {value!r} is not {what}.")


def _ints(raw, lines, path, where, col) -> np.ndarray:
    import pandas as pd  # only for a trace file: loading a scenario does not pay for pandas

    num = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(num) | (num < 0) | (num != np.floor(num)) | (num > 2**31 - 1)
    if bad.any():
        i = int(np.argmax(bad))
        _bad_row(path, where, lines[i], col, raw[i], "a whole number of tokens >= 0")
    return num.astype(np.int64)


def _times(raw, unit, lines, path, where, col) -> np.ndarray:
    import pandas as pd  # only for a trace file: loading a scenario does not pay for pandas

    if unit == "datetime":
        t = pd.to_datetime(pd.Series(raw, dtype=object), format="ISO8601", errors="coerce")
        bad = t.isna().to_numpy()
        what = "a date-time (YYYY-MM-DD HH:MM:SS.ffffff)"
        secs = (t - t.min()).dt.total_seconds().to_numpy() if not bad.all() else None
    else:
        num = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(num)
        what = f"a time in {unit} (set `time_unit:` if it is another unit)"
        secs = num * _UNIT_S[unit]
    if bad.any():
        i = int(np.argmax(bad))
        _bad_row(path, where, lines[i], col, raw[i], what)
    return np.asarray(secs, dtype=np.float64)


def _ids_csr(lists, lines, path, where, col):
    lens = np.zeros(len(lists) + 1, dtype=np.int64)
    for j, ids in enumerate(lists):
        if not isinstance(ids, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) and -(2**63) <= x < 2**63 for x in ids
        ):
            _bad_row(path, where, lines[j], col, ids, "a list of integer block hashes (64-bit)")
        lens[j + 1] = len(ids)
    offsets = np.cumsum(lens)
    flat = np.fromiter((x for ids in lists for x in ids), dtype=np.int64, count=int(offsets[-1]))
    return offsets, flat


def read_values(path: Path, column: str, where: str) -> np.ndarray:
    """One integer column of a CSV / JSONL file (empirical length values)."""
    path = _check_file(path, where)
    data, lines, _ = _read_table(path, _fmt(path, None, where), {"v": column}, set(), where)
    values = _ints(data["v"], lines, path, where, column)
    if values.size == 0:
        raise ScenarioError(f"{where}: {path} has no values in column '{column}'.")
    return values


def load_trace(spec, base_dir: Path, where: str = "traffic.arrival.path") -> Trace:
    """Read and prepare the trace of ``spec``, a ``sim.workload.spec.TraceArrival`` (not
    imported: that module imports this one); see the module docstring."""
    preset = PRESETS[spec.preset]
    path = _check_file(Path(base_dir) / spec.path, where)
    fmt = _fmt(path, spec.format or preset.format, where)
    wanted = {**preset.columns, **spec.columns}
    optional = set(preset.optional) - set(spec.columns)
    data, lines, cols = _read_table(path, fmt, wanted, optional, where)
    n = len(lines)
    if n == 0:
        raise ScenarioError(f"{where}: {path} has no requests.")
    t = _times(data["arrival_s"], spec.time_unit or preset.time_unit, lines, path, where, cols["arrival_s"])
    prompt = _ints(data["prompt_tokens"], lines, path, where, cols["prompt_tokens"])
    output = _ints(data["output_tokens"], lines, path, where, cols["output_tokens"])
    classes = data["class"].astype(str) if "class" in data else None
    offsets = ids = None
    if "hash_ids" in data:
        offsets, ids = _ids_csr(data["hash_ids"], lines, path, where, cols["hash_ids"])

    fixups = []
    unsorted = int((np.diff(t) < 0).sum())
    if unsorted:
        fixups.append(
            f"{path.name}: {unsorted} request(s) listed before an earlier arrival were sorted by arrival time."
        )
    if t.min() < 0:
        fixups.append(
            f"{path.name}: {int((t < 0).sum())} arrival time(s) below 0; all times were shifted to start at 0."
        )
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order[0]]
    keep = order[t >= spec.start_s]
    t = t[t >= spec.start_s]
    if spec.max_requests is not None:
        keep, t = keep[: spec.max_requests], t[: spec.max_requests]
    if keep.size == 0:
        raise ScenarioError(f"{where}: no request of {path} arrives after start_s={spec.start_s:g}.")
    t = t - t[0]
    if spec.time_scale is not None:
        t = t * spec.time_scale
    elif spec.target_rate_rps is not None and t.size > 1 and t[-1] > 0:
        t = t * ((t.size - 1) / t[-1] / spec.target_rate_rps)

    notes = fixups
    prompt, output = prompt[keep], output[keep]
    for name, arr in (("prompt", prompt), ("output", output)):
        zero = int((arr < 1).sum())
        if zero:
            notes.append(f"{path.name}: {zero} request(s) with 0 {name} tokens clamped to 1.")
    if offsets is not None:
        lens = (offsets[1:] - offsets[:-1])[keep]
        starts = offsets[:-1][keep]
        new_off = np.concatenate([[0], np.cumsum(lens)])
        idx = np.repeat(starts - new_off[:-1], lens) + np.arange(new_off[-1])
        offsets, ids = new_off.astype(np.int64), ids[idx]  # type: ignore[index]  # set together with offsets
    return Trace(
        arrival_s=t.astype(np.float64),
        prompt_tokens=np.maximum(prompt, 1),
        output_tokens=np.maximum(output, 1),
        classes=None if classes is None else classes[keep],
        hash_offsets=offsets,
        hash_ids=ids,
        path=path,
        notes=notes,
    )
