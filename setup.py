"""Build hook: compile the simulator's hot modules with Cython when possible.

The modules stay plain Python (``sim/**/*.py``, the reference); the ``.pxd``
files next to them add C types when Cython compiles them. A ``cdef class``'s
fields are declared once, as a ``__slots__`` dict (field -> C type) in its
``.py``; ``tools/pxd_layout.py`` writes them into the ``.pxd`` before Cython
runs (and tests check the committed ``.pxd`` files are what it writes). When Cython or a C
compiler is missing, or ``FLEETCAST_PURE_PYTHON=1`` is set at install time,
fleetcast installs as pure Python and gives the same results, only slower
(``sim.engine_build()`` says which one runs; ``FLEETCAST_PURE_PYTHON=1`` at
run time forces the Python modules even when compiled ones exist).
"""

from __future__ import annotations

import importlib.util
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
    "sim/engine/front_end.py",
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


def write_pxd_layouts(compiled: list[str]) -> None:
    """Write the ``.pxd`` field blocks from the classes' ``__slots__`` (tools/pxd_layout.py; standard
    library only, as nothing else is installed yet). A source tree without the tool (an sdist made
    without it) compiles with the ``.pxd`` files as they are."""
    here = os.path.dirname(os.path.abspath(__file__))
    tool = os.path.join(here, "tools", "pxd_layout.py")
    if not os.path.isfile(tool):
        return
    spec = importlib.util.spec_from_file_location("fleetcast_pxd_layout", tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        written = module.write_pxds(compiled, root=module.Path(here))
    except module.LayoutError as exc:
        raise SystemExit(f"fleetcast: {exc}") from None
    for pxd in written:
        print(f"fleetcast: wrote the fields of {os.path.relpath(pxd, here)} from its .py", file=sys.stderr)


def extensions() -> list:
    if os.environ.get("FLEETCAST_PURE_PYTHON", "") not in ("", "0"):
        print("fleetcast: FLEETCAST_PURE_PYTHON is set, installing the pure-Python engine", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("fleetcast: Cython is not available, installing the pure-Python engine", file=sys.stderr)
        return []
    write_pxd_layouts(COMPILED)
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
