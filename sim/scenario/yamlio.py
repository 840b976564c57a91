"""YAML with line numbers, dotted overrides, readable validation errors.

Scenario files are small documents written by people, so they are read with
limits that a hostile or broken file hits long before it can exhaust memory
or the stack (``sim.infiles``): a file size (``MAX_YAML_BYTES``), a nesting
depth (``MAX_YAML_DEPTH``), a number of values after aliases are expanded
(``MAX_YAML_VALUES``; "billion laughs" documents multiply a few lines into
billions of values through nested aliases) and no key given twice. A
``--set`` value goes through the same limits. Each refusal names the limit.
"""

from __future__ import annotations

import copy
import math
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from sim.errors import ScenarioError, did_you_mean
from sim.infiles import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, parse_yaml, read_text_limited

__all__ = [
    "load_yaml_with_lines",
    "apply_overrides",
    "format_validation_error",
    "parse_override",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
]


def _walk(node: yaml.Node, loc: tuple, lines: dict) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[loc + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, loc + (key,), lines)
            lines[loc + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, loc + (i,), lines)


def load_yaml_with_lines(path: Path, what: str = "scenario file") -> tuple[Any, dict[tuple, int]]:
    """Parse ``path`` within the limits of ``sim.infiles``; return (data, {field path tuple: 1-based line})."""
    text = read_text_limited(path, MAX_YAML_BYTES, what)
    data, node = parse_yaml(text, str(path))
    lines: dict[tuple, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _line_for(loc: tuple, lines: dict) -> int | None:
    # The deepest prefix of the error's path that exists in the file (not the document
    # itself: a field that is not in the file, e.g. set by --set, has no line).
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _real_path(loc: tuple, lines: dict) -> tuple:
    """Drop tagged-union tags (``arrival.gamma.cv`` -> ``arrival.cv``): a string part
    that is not a key in the file while the part after it is."""
    out: tuple = ()
    for i, part in enumerate(loc):
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if lines and isinstance(part, str) and out + (part,) not in lines and nxt is not None and out + (nxt,) in lines:
            continue
        out += (part,)
    return out


def _model_types(annotation) -> list[type]:
    """The pydantic models an annotation may hold (through Optional, Union, Annotated, list, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is dict:
        args = args[1:]
    elif typing.get_origin(annotation) is typing.Annotated:
        args = args[:1]
    return [m for a in args for m in _model_types(a)]


def _keys_at(model: type[BaseModel] | None, loc: tuple) -> list[str]:
    """The keys the format allows in the mapping at ``loc`` (empty when unknown)."""
    if model is None:
        return []
    current = [model]
    for part in loc:
        if isinstance(part, int):
            continue  # a list item: the list's model types are already current
        current = [t for m in current if part in m.model_fields for t in _model_types(m.model_fields[part].annotation)]
    return sorted({k for m in current for k in m.model_fields})


_NUMBER_ERRORS = ("greater_than", "less_than", "finite_number", "float_", "int_", "multiple_of")
"""pydantic's error types of a number's checks (its bounds, finiteness, parsing); a text field's
(a pattern, a literal) keep their own wording even when the text reads as inf or nan."""


def _not_finite(value) -> bool:
    """A float that is inf or NaN, or text pydantic reads as one (``nan``, ``-inf``)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def format_validation_error(
    exc: ValidationError, where: str, lines: dict, limit: int = 4, model: type[BaseModel] | None = None
) -> str:
    """One paragraph naming file, line and field of each problem: every unknown key (with the
    valid key it most likely meant, when ``model`` is given), and the first ``limit`` others."""
    parts = []
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    others = [e for e in errors if e["type"] != "extra_forbidden"]
    for err in unknown + others[:limit]:
        # pydantic adds the union/discriminator tag to the path: keep real keys only.
        loc = _real_path(
            tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))), lines
        )
        line = _line_for(loc, lines)
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            hint = did_you_mean(str(loc[-1]), _keys_at(model, loc[:-1])) if loc else ""
            msg = "unknown key (not part of the format; see docs/scenario-reference.md)" + (f".{hint}" if hint else "")
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error":
            msg = f"{msg}, got {err.get('input')!r}"
        elif err["type"].startswith(_NUMBER_ERRORS) and _not_finite(err.get("input")):
            # .inf in YAML, or nan/inf text (--set x=nan) pydantic reads as one, in a number's check
            msg = f"must be a finite number, got {err['input']}"
        elif err["type"] == "value_error":  # our validators' ValueError: their text, without pydantic's "Value error, "
            msg = str((err.get("ctx") or {}).get("error") or msg.removeprefix("Value error, "))
        at = f"line {line}, " if line else ""
        parts.append(f"{at}field {field}: {msg}")
    more = f" (and {len(others) - limit} more)" if len(others) > limit else ""
    return f"{where}: " + "; ".join(parts) + more


def parse_override(text: str, where: str = "override") -> tuple[list[str], Any]:
    """``a.b.0.c=value`` -> (["a","b","0","c"], parsed YAML value)."""
    if "=" not in text:
        raise ScenarioError(f"{where}: '{text}' is not KEY=VALUE (e.g. fleet.0.replicas=8)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ScenarioError(f"{where}: '{text}' has an empty key")
    value, _ = parse_yaml(raw, f"{where}: the value of '{key}'", invalid_as_text=True)
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str], where: str) -> dict:
    """Return a copy of ``data`` with each ``dotted.key=value`` set.

    The key must name a field that exists in the file or in the format; list
    items are addressed by index (``fleet.0.replicas``). Unknown keys are
    caught by validation afterwards, which names them.
    """
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text, where)
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ScenarioError(
                        f"{where}: override '{text}': '{'.'.join(parts[: depth + 1])}' needs a list index "
                        f"0..{len(node) - 1}"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, {})
            else:
                raise ScenarioError(
                    f"{where}: override '{text}': '{'.'.join(parts[:depth])}' is a value, not a section"
                )
    return data
