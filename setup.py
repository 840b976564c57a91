"""Build hook: compile the simulator's hot modules with Cython when possible.

The modules stay plain Python (``sim/**/*.py``, the reference); the ``.pxd``
files next to them add C types when Cython compiles them. When Cython or a C
compiler is missing, or ``FLEETCAST_PURE_PYTHON=1`` is set at install time,
fleetcast installs as pure Python and gives the same results, only slower
(``sim.engine_build()`` says which one runs; ``FLEETCAST_PURE_PYTHON=1`` at
run time forces the Python modules even when compiled ones exist).
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The engine's hot path: per-event code (replica loop, decode group, KV cache,
# the continuous policy, arrivals) and what it calls every step.
COMPILED = [
    "sim/records.py",
    "sim/engine/request.py",
    "sim/engine/decode_group.py",
    "sim/engine/kvcache.py",
    "sim/engine/replica.py",
    "sim/engine/wake.py",
    "sim/perf/perf_model.py",
    "sim/engine/ledger.py",
    "sim/engine/prefix_keys.py",
    "sim/engine/fleet.py",
    "sim/engine/step_plan.py",
    "sim/engine/routers/__init__.py",
    "sim/engine/policies/base.py",
    "sim/engine/policies/continuous.py",
]

DIRECTIVES = {
    "language_level": 3,
    "binding": False,
    "annotation_typing": False,  # types come from the .pxd files only, never from hints
    "cdivision": False,  # Python semantics for // and % (negative operands)
    "overflowcheck": True,  # a C integer overflow raises instead of wrapping
    "embedsignature": False,  # class docstrings stay as written (the scenario reference quotes them)
    "infer_types": True,  # C types for locals computed from C-typed values (overflowcheck guards them)
}


def extensions() -> list:
    if os.environ.get("FLEETCAST_PURE_PYTHON", "") not in ("", "0"):
        print("fleetcast: FLEETCAST_PURE_PYTHON is set, installing the pure-Python engine", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("fleetcast: Cython is not available, installing the pure-Python engine", file=sys.stderr)
        return []
    # -ffp-contract=off: no fused multiply-add, so float results match CPython's bit for bit
    exts = [Extension(path[:-3].replace("/", "."), [path],
                      extra_compile_args=["-O2", "-ffp-contract=off"]) for path in COMPILED]
    out = []
    for ext in exts:  # one at a time: a module Cython rejects stays Python, the others compile
        try:
            out += cythonize([ext], compiler_directives=DIRECTIVES, quiet=True)
        except Exception as exc:
            print(f"fleetcast: Cython failed on {ext.sources[0]} ({exc}); it runs as Python", file=sys.stderr)
    return out


class OptionalBuildExt(build_ext):
    """Compile what compiles: a module the C compiler cannot build (or no compiler at all)
    leaves that module as Python instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"fleetcast: no compiled engine ({exc}); installing the pure-Python engine", file=sys.stderr)

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"fleetcast: could not compile {ext.name} ({exc}); it runs as Python", file=sys.stderr)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
