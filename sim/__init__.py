"""fleetcast simulator: scenario in, fleet forecast out.

The package is laid out by the flow of a request (see docs/design.md):
``perf`` (the performance model: step times, memory plan, kernel tables),
``workload`` (what arrives) and ``scenario`` (the file that describes a
fleet and its traffic) feed the ``engine`` (replicas, policies, KV cache,
routers, the event loop); ``analysis`` turns runs into
metrics, plans, sweeps and comparisons; ``report`` renders them and ``cli``
is the ``fleetcast`` command. Imports go one way, in that order.

The engine's hot modules may be compiled by Cython at install time (see
``setup.py``); the Python sources are the reference and give identical
results. ``FLEETCAST_PURE_PYTHON=1`` in the environment makes this package
import the Python sources even where compiled modules exist.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib.machinery import EXTENSION_SUFFIXES, SOURCE_SUFFIXES, FileFinder, SourceFileLoader
from importlib.util import find_spec
from pathlib import Path

__version__ = "0.1.0"
__all__ = ["__version__", "engine_build", "stale_compiled_modules"]

_ROOT = Path(__file__).resolve().parent


class _SourceOnly:
    """Meta-path finder: ``sim.*`` modules from their ``.py`` files, never a compiled module."""

    def __init__(self, root: str) -> None:
        self.root = root

    def find_spec(self, fullname: str, path=None, target=None):
        if not fullname.startswith("sim."):
            return None
        for folder in path or [self.root]:
            spec = FileFinder(folder, (SourceFileLoader, SOURCE_SUFFIXES)).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


if os.environ.get("FLEETCAST_PURE_PYTHON", "") not in ("", "0"):
    sys.meta_path.insert(0, _SourceOnly(__path__[0]))


def stale_compiled_modules() -> list[str]:
    """Compiled engine modules older than their ``.py`` or ``.pxd`` source, in a source checkout.

    Python imports a compiled module in preference to the ``.py`` beside it,
    so in an editable install an edit to the source does nothing until the
    next ``pip install -e .``. Installed copies (no ``setup.py`` above the
    package) are not checked: their file times say nothing about edits.
    Empty when the Python sources run (``FLEETCAST_PURE_PYTHON=1``).
    """
    if os.environ.get("FLEETCAST_PURE_PYTHON", "") not in ("", "0") or not (_ROOT.parent / "setup.py").is_file():
        return []
    stale = []
    for suffix in EXTENSION_SUFFIXES:
        for built in sorted(_ROOT.rglob(f"*{suffix}")):
            stem = built.name[: -len(suffix)]
            built_s = built.stat().st_mtime
            sources = [built.with_name(stem + ext) for ext in (".py", ".pxd")]
            if any(src.is_file() and src.stat().st_mtime > built_s for src in sources):
                stale.append(".".join(built.relative_to(_ROOT.parent).parent.parts + (stem,)))
    return stale


def engine_build() -> str:
    """``"compiled"`` when the engine runs Cython-compiled modules, else ``"pure Python"``.

    Warns (``RuntimeWarning``) when compiled modules are older than their
    sources (``stale_compiled_modules``)."""
    spec = find_spec("sim.engine.replica")
    build = "pure Python" if spec is None or (spec.origin or "").endswith(".py") else "compiled"
    stale = stale_compiled_modules() if build == "compiled" else []
    if stale:
        warnings.warn(
            f"compiled engine modules older than their sources: {', '.join(stale)}; the compiled ones "
            f"run. Rebuild with `pip install -e .` or set FLEETCAST_PURE_PYTHON=1.",
            RuntimeWarning,
            stacklevel=2,
        )
    return build
