"""What every results contract shares: the base model, the schema version, writing a
contract as JSON and reading one back with a located error.

A contract is a pydantic model of a JSON file fleetcast writes (``summary.json``,
``plan.json``, ``compare.json``). Writers build the document, validate it through its
model and dump the model (``contract_json``): same keys, same order, same numbers as
the document, so a model cannot drift from what is written. Readers validate through
the model (``read_contract``); a file without ``schema_version`` was written before
versions existed and is read as version 1 when it fits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ConfigDict, ValidationError

from sim.errors import FleetcastError
from sim.infiles import read_text_limited

__all__ = ["SCHEMA_VERSION", "Contract", "Number", "contract_json", "validate_contract", "read_contract"]

#: the version every contract written by this fleetcast carries (``schema_version``).
SCHEMA_VERSION = 1

#: a JSON number kept as written: an int stays an int, a float a float (so the bytes
#: written do not change when a count happens to be whole).
Number = Union[int, float]

C = TypeVar("C", bound="Contract")


class Contract(BaseModel):
    """A part of a results file: every key known (``extra="forbid"``), so a typo in
    the code that writes it fails its tests."""

    # by alias only ("p99.9", "class", "from"): a producer writing the Python name is a typo
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def contract_json(model: BaseModel) -> str:
    """``model`` as the file's text: the keys it was built from, in field order,
    2-space indent, no NaN, a final newline (the format fleetcast has always written)."""
    doc = model.model_dump(mode="python", by_alias=True, exclude_unset=True)
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _located(path: str | Path, exc: ValidationError, what: str) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        got = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {json.dumps(got, default=str)[:60]})"
        lines.append(f"field {_where(loc)}: {err['msg']}{shown}")
    more = f"; and {exc.error_count() - 5} more" if exc.error_count() > 5 else ""
    return (
        f"{path} does not fit the {what} format this fleetcast reads: "
        + "; ".join(lines)
        + more
        + ". It was edited, or written by another fleetcast version: re-run the command that wrote it."
    )


def validate_contract(model: type[C], data: Any, path: str | Path, what: str) -> C:
    """``data`` (a parsed JSON document) as ``model``; ``FleetcastError`` naming
    ``path``, the field and what was expected when it does not fit, or when it was
    written by a newer fleetcast (a ``schema_version`` above ``SCHEMA_VERSION``)."""
    if not isinstance(data, dict):
        raise FleetcastError(f"{path} must hold a JSON object ({what}), got {type(data).__name__}")
    version = data.get("schema_version", 1)  # absent: written before versions, read as 1
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FleetcastError(f"{path}, field schema_version: expected a whole number of at least 1, got {version!r}")
    if version > SCHEMA_VERSION:
        raise FleetcastError(
            f"{path} has schema_version {version}, written by a newer fleetcast; this one "
            f"({what}) reads up to version {SCHEMA_VERSION}. Upgrade fleetcast to read it."
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FleetcastError(_located(path, exc, what)) from None


#: the largest results JSON read (a plan.json with its scenario is well under 1 MB)
MAX_RESULTS_JSON_BYTES = 64 * 2**20


def read_contract(model: type[C], path: str | Path, what: str) -> C:
    """Read and validate the JSON file ``path`` as ``model`` (see ``validate_contract``)."""
    try:
        data = json.loads(read_text_limited(Path(path), MAX_RESULTS_JSON_BYTES, "results file"))
    except (OSError, json.JSONDecodeError) as exc:
        raise FleetcastError(f"results file {path} could not be read as JSON: {exc}") from None
    return validate_contract(model, data, path, what)
