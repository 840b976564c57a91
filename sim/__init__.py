"""fleetcast simulator: scenario in, fleet forecast out.

The engine's hot modules may be compiled by Cython at install time (see
``setup.py``); the Python sources are the reference and give identical
results. ``FLEETCAST_PURE_PYTHON=1`` in the environment makes this package
import the Python sources even where compiled modules exist.
"""

from __future__ import annotations

import os
import sys
from importlib.machinery import SOURCE_SUFFIXES, FileFinder, SourceFileLoader

__version__ = "0.1.0"
__all__ = ["__version__", "engine_build"]


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


def engine_build() -> str:
    """``"compiled"`` when the engine runs Cython-compiled modules, else ``"pure Python"``."""
    from sim import replica

    return "pure Python" if replica.__file__.endswith(".py") else "compiled"
