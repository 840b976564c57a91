"""Writes the field blocks of the compiled engine's ``.pxd`` files from the Python classes.

A class that Cython compiles as a ``cdef class`` (a module in setup.py's
``COMPILED`` list) declares its fields once, in its ``.py``: ``__slots__`` is
a dict, field name -> C type::

    class Wake:
        __slots__ = {"at": "double", "priority": "long long", "eid": "long long", "callback": "object"}

Pure Python uses the keys as the slots (a dict's values are only the slot
descriptors' docstrings); Cython ignores ``__slots__`` and reads the
``cdef public`` lines this module writes into the ``cdef class`` block of the
``.pxd`` beside the ``.py``. A class whose ``__slots__`` is a tuple stays a
plain Python class. The rest of the ``.pxd`` (``cimport`` lines, ``cpdef``
method and function declarations with their ``@cython.locals``) is written by
hand; only the field lines are owned here.

A C type is one of ``C_TYPES`` or a ``cdef class`` the ``.pxd`` cimports or
defines. Every field is ``cdef public``: the compiled class exposes the same
attributes as the Python one.

setup.py calls ``write_pxds(COMPILED)`` before it compiles; tests check the
committed ``.pxd`` files are what it writes. By hand::

    python tools/pxd_layout.py           # rewrite the .pxd field blocks
    python tools/pxd_layout.py --check   # exit 1 and name the stale .pxd files

Standard library only: setup.py runs it before fleetcast or its
dependencies are installed.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

__all__ = ["C_TYPES", "LayoutError", "layouts", "render", "expected_pxd", "write_pxds", "stale_pxds",
           "compiled_list"]

ROOT = Path(__file__).resolve().parents[1]

#: The C types a field may have besides a cimported or local ``cdef class`` (and typed memoryviews,
#: indexed in C: read-only int64 / int32 / int16 / float64 numpy columns, writable double / int64 / int8 arrays).
C_TYPES = ("double", "long long", "bint", "object", "list", "dict", "tuple", "const long long[:]", "const int[:]",
           "double[:]", "long long[:]", "signed char[:]", "const double[:]", "const short[:]")

GENERATED = "    # fields: generated from __slots__ in {py} by tools/pxd_layout.py (do not edit)"
_CLASS = re.compile(r"cdef class (\w+)\s*:")
_FIELD = re.compile(r"\s+cdef (?!class\b)[^(]*$")  # an indented ``cdef`` line without "(": a field, not a method
_CIMPORT = re.compile(r"from \S+ cimport (.+)$")


class LayoutError(ValueError):
    """A layout declaration the generator cannot turn into a ``.pxd`` (says where and what is valid)."""


def layouts(py_path: Path) -> dict[str, dict[str, str]]:
    """Class name -> {field: C type}, in declaration order, for each class of ``py_path``
    whose ``__slots__`` is a dict (module-level classes only)."""
    tree = ast.parse(py_path.read_text(encoding="utf-8"), str(py_path))
    out: dict[str, dict[str, str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for node in cls.body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                    and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)):
                continue
            try:
                fields = ast.literal_eval(node.value)
            except ValueError:
                fields = None
            if not fields or not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
                raise LayoutError(f"{py_path}:{node.lineno}: {cls.name}.__slots__ must be a literal dict of "
                                  f"field name -> C type string")
            out[cls.name] = {k: " ".join(v.split()) for k, v in fields.items()}
    return out


def _known_types(pxd_text: str) -> set[str]:
    known = set(C_TYPES)
    for line in pxd_text.splitlines():
        m = _CIMPORT.match(line) or _CLASS.match(line)
        if m:
            known.update(n.strip().split(" as ")[-1] for n in m.group(1).split(","))
    return known


def _field_lines(layout: dict[str, str]) -> list[str]:
    """``cdef public`` lines, consecutive fields of one type on one line (declaration order kept:
    it is the C struct's order)."""
    lines: list[str] = []
    run_type, run = None, []
    for name, ctype in [*layout.items(), (None, None)]:
        if ctype != run_type and run:
            lines.append(f"    cdef public {run_type} {', '.join(run)}")
            run = []
        run_type = ctype
        run.append(name)
    return lines


def render(pxd_text: str, classes: dict[str, dict[str, str]], py_name: str, where: str = "") -> str:
    """``pxd_text`` with the field lines of each ``cdef class`` replaced by those of ``classes``;
    a class missing from the ``.pxd`` is appended. Raises ``LayoutError`` for a ``cdef class``
    without a dict ``__slots__`` or a field of an unknown C type."""
    where = where or py_name
    known = _known_types(pxd_text) | set(classes)
    for cls, layout in classes.items():
        for field, ctype in layout.items():
            if ctype not in known:
                raise LayoutError(f"{where}: {cls}.__slots__[{field!r}] = {ctype!r} is not a C type here; valid: "
                                  f"{', '.join(C_TYPES)}, or a cdef class the .pxd cimports "
                                  f"({', '.join(sorted(known - set(C_TYPES))) or 'none'})")
    header = GENERATED.format(py=py_name)
    out: list[str] = []
    seen: set[str] = set()
    in_class = False
    for line in pxd_text.splitlines():
        m = _CLASS.match(line)
        if m:
            name = m.group(1)
            if name not in classes:
                raise LayoutError(f"{where}: the .pxd declares cdef class {name}, but {py_name} gives it no "
                                  f"__slots__ dict (field -> C type)")
            seen.add(name)
            out += [line, header, *_field_lines(classes[name])]
            in_class = True
            continue
        if in_class and line.strip() and not line[0].isspace():
            in_class = False
        if in_class and (line == header or _FIELD.match(line)):
            continue  # a field line: written from the .py above
        out.append(line)
    for name in classes:
        if name not in seen:
            out += ["", f"cdef class {name}:", header, *_field_lines(classes[name])]
    return "\n".join(out).rstrip("\n") + "\n"


def expected_pxd(py_path: Path) -> str | None:
    """What the ``.pxd`` beside ``py_path`` should hold (None: the module needs none)."""
    pxd = py_path.with_suffix(".pxd")
    classes = layouts(py_path)
    if not pxd.is_file() and not classes:
        return None
    text = pxd.read_text(encoding="utf-8") if pxd.is_file() else (
        f"# C types for {py_path.name} when Cython compiles it (setup.py); {py_path.name} is the reference.\n")
    return render(text, classes, py_path.name, where=str(pxd))


def _pairs(compiled: list[str], root: Path):
    for rel in compiled:
        py = root / rel
        want = expected_pxd(py)
        if want is not None:
            yield py.with_suffix(".pxd"), want


def stale_pxds(compiled: list[str], root: Path = ROOT) -> list[Path]:
    """The ``.pxd`` files of ``compiled`` (paths relative to ``root``) that differ from what
    ``write_pxds`` would write."""
    return [pxd for pxd, want in _pairs(compiled, root)
            if not pxd.is_file() or pxd.read_text(encoding="utf-8") != want]


def write_pxds(compiled: list[str], root: Path = ROOT) -> list[Path]:
    """Rewrite the ``.pxd`` files of ``compiled`` whose field blocks are stale; returns those
    written (an unchanged file is not touched: its time is what marks a compiled module stale)."""
    written = []
    for pxd, want in _pairs(compiled, root):
        if not pxd.is_file() or pxd.read_text(encoding="utf-8") != want:
            pxd.write_text(want, encoding="utf-8")
            written.append(pxd)
    return written


def compiled_list(root: Path) -> list[str]:
    """setup.py's ``COMPILED`` list, read from its source (importing setup.py would run setup())."""
    tree = ast.parse((root / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "COMPILED" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise LayoutError(f"{root / 'setup.py'} has no COMPILED list")


def main(argv: list[str]) -> int:
    compiled = compiled_list(ROOT)
    try:
        if "--check" in argv:
            stale = stale_pxds(compiled, ROOT)
            for pxd in stale:
                print(f"{pxd.relative_to(ROOT)} is stale: run python tools/pxd_layout.py", file=sys.stderr)
            return 1 if stale else 0
        for pxd in write_pxds(compiled, ROOT):
            print(f"wrote {pxd.relative_to(ROOT)}")
    except LayoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
