"""Locate and read the measured kernel tables of aiconfigurator-core.

The package is only a data source: ``data_root()`` finds its install folder
without importing it, and the parquet tables are read with pyarrow. Layout::

    <root>/<system>/gemm/vllm/<version>/gemm_perf.parquet
    <root>/<system>/attention/vllm/<version>/{context,generation}_attention_perf.parquet
    <root>/<system>/comm/vllm/<version>/custom_allreduce_perf.parquet
    <root>/<system>/moe/vllm/<version>/moe_perf.parquet

Latencies in the tables are milliseconds; ``read_table`` returns them as such
(callers convert, and name the unit).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

__all__ = [
    "PACKAGE",
    "LICENSE",
    "TABLES",
    "data_root",
    "package_version",
    "parse_version",
    "versions",
    "nearest_version",
    "read_table",
    "table_path",
    "systems",
]

PACKAGE = "aiconfigurator-core"
LICENSE = "Apache-2.0"
TABLES = {  # table -> the op folder holding it
    "gemm_perf": "gemm",
    "context_attention_perf": "attention",
    "generation_attention_perf": "attention",
    "custom_allreduce_perf": "comm",
    "moe_perf": "moe",
}
_VERSION = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-]?(?:post|rc|dev|a|b)\d*)?$")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``'0.24.0'`` -> (0, 24, 0); a release suffix (``.post1``, ``rc2``) is ignored;
    anything else (``'latest'``, ``'0.x'``) -> None."""
    m = _VERSION.match(str(text).strip())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def data_root() -> Path | None:
    """``systems/data`` of the installed aiconfigurator-core, or None when it is
    not installed (found without importing the package: it is data only here)."""
    try:
        spec = importlib.util.find_spec("aiconfigurator_core")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        root = Path(loc) / "systems" / "data"
        if root.is_dir():
            return root
    return None


@functools.cache
def package_version() -> str:
    """The installed aiconfigurator-core version ('unknown' if its metadata is missing)."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def systems(root: Path) -> list[str]:
    """Systems with at least one vLLM GEMM table."""
    return sorted(
        p.name for p in root.iterdir() if p.is_dir() and list((p / "gemm" / "vllm").glob("*/gemm_perf.parquet"))
    )


def table_path(root: Path, system: str, table: str, version: str) -> Path:
    return root / system / TABLES[table] / "vllm" / version / f"{table}.parquet"


def versions(root: Path, system: str, table: str) -> list[str]:
    """vLLM versions holding ``table`` for ``system``, oldest first (unparsable names skipped)."""
    base = root / system / TABLES[table] / "vllm"
    if not base.is_dir():
        return []
    found = [p.name for p in base.iterdir() if (p / f"{table}.parquet").is_file() and parse_version(p.name)]
    return sorted(found, key=lambda v: (parse_version(v), v))


def nearest_version(available: list[str], wanted: str | None) -> str | None:
    """The available version nearest ``wanted`` (None: the newest). Distance is taken
    on (major, minor, patch) in that order of weight; a tie goes to the newer one."""
    if not available:
        return None
    if wanted is None:
        return available[-1]
    w = parse_version(wanted)
    if w is None:
        raise ValueError(f"not a version: {wanted!r}")

    def key(v: str) -> tuple:
        p = parse_version(v)
        dist = tuple(abs(a - b) for a, b in zip(p, w))  # type: ignore[arg-type]  # versions() lists parseable names
        first = next((i for i, d in enumerate(dist) if d), 3)  # the most significant part that differs
        return (-first, dist[first] if first < 3 else 0, tuple(-x for x in p))  # type: ignore[union-attr]  # as above

    return min(available, key=key)


def read_table(
    root: Path, system: str, table: str, version: str, columns: list[str], defaults: dict | None = None
) -> dict[str, np.ndarray]:
    """The named columns of one table as numpy arrays (strings as object arrays). A
    column some tables lack (older collections have no ``window_size``) takes its
    value from ``defaults``."""
    path = table_path(root, system, table, version)
    names = set(pq.read_schema(path).names)
    defaults = defaults or {}
    missing = [c for c in columns if c not in names]
    if any(c not in defaults for c in missing):
        raise LookupError(f"{path}: no column(s) {', '.join(c for c in missing if c not in defaults)}")
    tab = pq.read_table(path, columns=[c for c in columns if c in names])
    out = {c: tab.column(c).to_numpy(zero_copy_only=False) for c in columns if c in names}
    for c in missing:
        out[c] = np.full(tab.num_rows, defaults[c])
    return out
