"""Input files and YAML text, read within limits.

Every file a planner names (a scenario, a catalog, a calibration profile, a
trace, an empirical length file) and every YAML value given on the command
line (``--set``, ``--grid``, ``--variant``) is read here, with limits that a
hostile or broken input hits long before it exhausts memory, the stack or the
patience of the person waiting:

- a file must be a regular file (not ``/dev/zero``, a FIFO or a folder) of at
  most a stated size; it is read through a bounded ``read`` (``/proc`` files
  report a size of 0), and an ``OSError`` (EIO, EACCES) becomes a message;
- YAML is parsed once into nodes and refused when it nests deeper than
  ``MAX_YAML_DEPTH``, expands to more than ``MAX_YAML_VALUES`` values through
  aliases ("billion laughs"), or gives one key twice in a mapping (PyYAML
  would silently keep the last one).

Each refusal names the input, the line where one is known, and the limit.
"""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from sim.errors import ScenarioError

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "MAX_CATALOG_BYTES",
    "MAX_PROFILE_BYTES",
    "MAX_DATA_FILE_BYTES",
    "int_arg",
    "check_input_file",
    "read_bytes_limited",
    "read_text_limited",
    "parse_yaml",
]

MAX_YAML_BYTES = 8 * 2**20  # a scenario file; traces and data go in files it names
MAX_YAML_DEPTH = 64  # nested mappings/lists (the format itself nests about 8 deep)
MAX_YAML_VALUES = 200_000  # values once aliases are expanded (a large plan grid is a few thousand)
MAX_CATALOG_BYTES = 8 * 2**20  # an extra catalog file (the bundled ones are ~60 KB together)
MAX_PROFILE_BYTES = 4 * 2**20  # a calibration profile JSON (a written one is ~10 KB)
#: A trace or empirical-length file: 2 GiB is about 40M CSV rows, twice what one run may hold.
MAX_DATA_FILE_BYTES = 2 * 2**30


def int_arg(lo: int, hi: int | None = None, why: str = ""):
    """An argparse ``type``: an integer in ``[lo, hi]``; anything else is argparse's usage error
    (exit 2) naming the bounds, e.g. ``--workers 0`` or ``--max-nfev -1``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if value < lo or (hi is not None and value > hi):
            bounds = f"from {lo:,} to {hi:,}" if hi is not None else f"at least {lo:,}"
            raise argparse.ArgumentTypeError(f"{value:,} is out of range: give a whole number {bounds}{why}")
        return value

    parse.__name__ = "int"
    return parse


def out_arg(text: str) -> str:
    """An argparse ``type`` for ``--out``: an empty name (``--out "$DIR"`` with DIR unset) is argparse's
    usage error (exit 2); it meant the default folder for some commands and the working folder for others."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is empty: give a path (is a shell variable unset?)")
    return text


def _mib(n: int) -> str:
    unit, name = (2**30, "GiB") if n >= 2**30 else (2**20, "MiB")
    return f"{n // unit:,} {name}" if n % unit == 0 else f"{n / unit:,.1f} {name}"


def check_input_file(path: Path, max_bytes: int, what: str) -> Path:
    """Refuse unless ``path`` is a regular file of at most ``max_bytes``; returns it."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ScenarioError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ScenarioError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ScenarioError(f"{what} {path} is a folder; give a file")
    if not stat.S_ISREG(st.st_mode):
        raise ScenarioError(f"{what} {path} is not a regular file (a device, pipe or socket); give a file")
    if st.st_size > max_bytes:
        raise ScenarioError(f"{what} {path} is {_mib(st.st_size)}; at most {_mib(max_bytes)} is read")
    return path


def read_bytes_limited(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (checked again while reading:
    ``/proc`` and growing files do not report their size)."""
    path = check_input_file(path, max_bytes, what)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ScenarioError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ScenarioError(f"{what} {path} holds more than {_mib(max_bytes)}; at most that much is read")
    return data


def read_text_limited(path: Path, max_bytes: int, what: str) -> str:
    """``read_bytes_limited`` decoded as UTF-8; a binary file is refused with the offset of its first bad byte."""
    data = read_bytes_limited(path, max_bytes, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(
            f"{what} {path}, line {line}: not UTF-8 text (byte {exc.start:,} is "
            f"0x{data[exc.start]:02x}); is it a binary file?"
        ) from None


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when installed: ~10x faster


class _Frame:
    """An open mapping or sequence while the events stream by."""

    __slots__ = ("count", "anchor", "line", "keys", "expect_key")

    def __init__(self, anchor, line: int, mapping: bool) -> None:
        self.count, self.anchor, self.line = 0, anchor, line
        self.keys: dict[str, tuple[int, int]] | None = {} if mapping else None  # key -> (line, column)
        self.expect_key = True


def _check_events(text: str, where: str) -> None:
    """One streaming pass over the parser's events (no recursion, nothing built): refuse a
    document nested deeper than MAX_YAML_DEPTH, holding more than MAX_YAML_VALUES values with
    its aliases expanded (an alias counts what its anchor holds, without expanding it), or
    giving one key twice in a mapping. Runs before the composer, which recurses per level."""
    loader = _Loader(text)
    anchors: dict[str, int] = {}
    frames: list[_Frame] = []
    aliased = False

    def add(n: int) -> None:
        if not frames:
            return
        f = frames[-1]
        f.count += n
        if f.count > MAX_YAML_VALUES:
            what = (
                f"expands to {f.count:,} values or more (aliases such as *name repeat what &name marks), "
                f"over the limit of {MAX_YAML_VALUES:,} (MAX_YAML_VALUES); write the values out, or use fewer "
                f"nested aliases"
                if aliased
                else f"holds {f.count:,} values or more, over the limit of {MAX_YAML_VALUES:,} (MAX_YAML_VALUES); "
                f"a scenario holds a few thousand: put long series (requests, rates) in a trace file it names"
            )
            raise ScenarioError(f"{where}, line {f.line}: this part of the document {what}")

    try:
        while loader.check_event():
            ev = loader.get_event()
            if isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                f = frames.pop()
                if f.anchor:
                    anchors[f.anchor] = f.count + 1
                add(f.count + 1)
                continue
            if not isinstance(ev, yaml.NodeEvent):
                continue
            line = ev.start_mark.line + 1 if ev.start_mark is not None else 0
            keys = frames[-1].keys if frames else None
            if keys is not None:
                f = frames[-1]
                if f.expect_key and isinstance(ev, yaml.ScalarEvent) and ev.value != "<<":
                    col = ev.start_mark.column + 1 if ev.start_mark is not None else 0
                    if ev.value in keys:
                        first, first_col = keys[ev.value]
                        both = (
                            f"columns {first_col} and {col} of line {line}"  # a flow mapping: {a: 1, a: 2}
                            if first == line
                            else f"lines {first} and {line}"
                        )
                        raise ScenarioError(
                            f"{where}, line {line}: key '{ev.value}' is given twice in one mapping ({both}); "
                            "YAML would silently keep the last: delete one"
                        )
                    keys[ev.value] = (line, col)
                f.expect_key = not f.expect_key
            if isinstance(ev, yaml.AliasEvent):
                aliased = True
                add(anchors.get(ev.anchor or "", 1))  # an unknown anchor: the composer names it
            elif isinstance(ev, yaml.ScalarEvent):
                if ev.anchor:
                    anchors[ev.anchor] = 1
                add(1)
            else:
                frames.append(_Frame(ev.anchor, line, isinstance(ev, yaml.MappingStartEvent)))
                if len(frames) > MAX_YAML_DEPTH:
                    raise ScenarioError(
                        f"{where}, line {line}: nested more than {MAX_YAML_DEPTH} levels deep (the limit "
                        f"MAX_YAML_DEPTH); a scenario nests about 8 levels"
                    )
    finally:
        loader.dispose()


def _tab_hint(text: str, mark) -> str:
    """Where the parser stopped at a tab (libyaml: "found character that cannot start any token"),
    say so: YAML indents with spaces only, and an editor shows a tab as spaces."""
    if mark is None:
        return ""
    lines = text.splitlines()
    row = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" not in row[: mark.column + 1]:
        return ""
    return f" (a tab at column {row.index(chr(9)) + 1}: YAML indents with spaces only; replace the tab with spaces)"


def parse_yaml(text: str, where: str, invalid_as_text: bool = False) -> tuple[Any, yaml.Node | None]:
    """Parse YAML ``text`` within the limits above; returns (data, root node or None).
    ``where`` names the input in messages (a path, or ``--set 'KEY'``). ``invalid_as_text``:
    text that is not YAML is the string itself (a ``--set`` value), limits still apply."""
    if len(text) > MAX_YAML_BYTES:
        raise ScenarioError(
            f"{where}: {len(text):,} characters of YAML; at most {_mib(MAX_YAML_BYTES)} "
            f"(MAX_YAML_BYTES); put traces and data in files the scenario names by path"
        )
    loader = None
    try:
        _check_events(text, where)  # the reader refuses control characters (a NUL byte) here already
        loader = _Loader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if invalid_as_text and "nesting depth" not in str(getattr(exc, "problem", "")):
            return text, None
        if mark is None and isinstance(exc, yaml.reader.ReaderError):
            raise ScenarioError(
                f"{where}: not valid YAML: a control character (#x{exc.character:04x}) at "
                f"character {exc.position:,}; is it a binary file?"
            ) from None
        at = f"{where}, line {mark.line + 1}" if mark else where
        problem = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in problem:  # libyaml's own limit, met while scanning ahead
            raise ScenarioError(
                f"{at}: nested too deeply for the YAML parser; a scenario nests at most "
                f"{MAX_YAML_DEPTH} levels (MAX_YAML_DEPTH)"
            ) from None
        raise ScenarioError(f"{at}: not valid YAML: {problem}{_tab_hint(text, mark)}") from None
    except RecursionError:  # the parser itself recurses per nesting level
        raise ScenarioError(
            f"{where}: nested too deeply for the YAML parser; a scenario nests at most "
            f"{MAX_YAML_DEPTH} levels (MAX_YAML_DEPTH)"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, node
