"""The compiled build's two sources of truth, kept equal by test.

1. Class layouts. A class compiled by Cython (setup.py) has its fields
   declared in the ``.pxd`` beside its ``.py``; the ``.py`` names the same
   fields in ``__slots__`` (where it has them) and assigns them in its
   methods. A field missing from the ``.pxd`` is an AttributeError only in the
   compiled build, one missing from ``__slots__`` only in pure Python: this
   test compares the three lists for every ``cdef class``.
2. Hand-inlined copies. A hot path may repeat a short expression instead of
   calling the property or method that defines it (a property call costs a
   Python attribute lookup in the compiled build). Each such copy carries a
   marker ``# inline: Class.member`` and must be, node for node, the
   reference's returned expression (receiver names aside).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "sim"
PXDS = sorted(ROOT.rglob("*.pxd"))


def pxd_classes(path: Path) -> dict[str, set[str]]:
    """``cdef class`` name -> declared field names, from a ``.pxd``."""
    classes: dict[str, set[str]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"cdef class (\w+)", line)
        if m:
            current = classes.setdefault(m.group(1), set())
            continue
        if not line.startswith((" ", "\t")):
            current = None
            continue
        m = re.match(r"\s+cdef (?:public |readonly )?(.+)$", line)
        if current is None or m is None:
            continue
        first, *rest = m.group(1).split(",")
        current.add(first.split()[-1])  # "long long a" -> "a"
        current.update(name.strip() for name in rest)
    return classes


def py_classes(path: Path) -> dict[str, tuple[set[str] | None, set[str]]]:
    """Class name -> (``__slots__`` or None, attributes assigned on ``self`` in its methods)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        slots, assigned = None, set()
        for node in cls.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                    for t in node.targets):
                slots = set(ast.literal_eval(node.value))
        for node in ast.walk(cls):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
                targets = [node.target]
            for t in targets:
                for el in (t.elts if isinstance(t, ast.Tuple) else [t]):
                    if isinstance(el, ast.Attribute) and isinstance(el.value, ast.Name) and el.value.id == "self":
                        assigned.add(el.attr)
        out[cls.name] = (slots, assigned)
    return out


def test_every_pxd_has_its_py():
    assert PXDS, "no .pxd files found"
    for pxd in PXDS:
        assert pxd.with_suffix(".py").is_file(), f"{pxd} has no .py beside it"


def test_the_parsers_read_a_known_layout():
    """The parsers themselves: a hand-written pxd and class."""
    assert pxd_classes(ROOT / "engine" / "wake.pxd") == {"Wake": {"at", "priority", "eid", "callback"}}
    slots, assigned = py_classes(ROOT / "engine" / "decode_group.py")["Segment"]
    assert slots == {"t0", "k0", "c0", "n", "a", "b", "f0", "f1", "y0", "y1"} == assigned


@pytest.mark.parametrize("pxd", PXDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pxd_fields_match_the_python_class(pxd):
    declared = pxd_classes(pxd)
    defined = py_classes(pxd.with_suffix(".py"))
    for name, fields in declared.items():
        assert name in defined, f"{pxd.name} declares cdef class {name}, which {pxd.stem}.py does not define"
        slots, assigned = defined[name]
        if slots is not None:  # __slots__ is the layout; fields set by other classes are in it too
            assert fields == slots, (f"{name}: .pxd fields and __slots__ differ: only in .pxd "
                                     f"{sorted(fields - slots)}, only in __slots__ {sorted(slots - fields)}")
            assert assigned <= fields, f"{name}: assigns undeclared attributes {sorted(assigned - fields)}"
        else:  # the methods' assignments are the layout
            assert fields == assigned, (f"{name}: .pxd fields and attributes assigned in {pxd.stem}.py differ: "
                                        f"only in .pxd {sorted(fields - assigned)}, only assigned "
                                        f"{sorted(assigned - fields)}")


# ----------------------------------------------------------- inlined copies
_MARK = re.compile(r"#\s*inline:\s*(\w+)\.(\w+)")


class _Receiver(ast.NodeTransformer):
    """Rename the object an attribute is read from (``self``, ``kv``, ``seg``) to one placeholder."""

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name):
            node.value = ast.Name(id="_", ctx=ast.Load())
        return node


def _norm(node: ast.AST) -> str:
    return ast.dump(_Receiver().visit(node), annotate_fields=False, include_attributes=False)


def reference_expr(cls_name: str, member: str) -> str:
    """The normalized expression ``cls_name.member`` returns (a property or a one-return method)."""
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name):
            for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == member):
                returns = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
                assert len(returns) == 1, f"{cls_name}.{member} must have one return to be inlined"
                return _norm(returns[0].value)
    raise AssertionError(f"inline marker names {cls_name}.{member}, which does not exist")


def inline_copies() -> list[tuple[Path, int, str, str]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = _MARK.search(line)
            if m:
                found.append((path, i, m.group(1), m.group(2)))
    return found


def test_inline_markers_exist():
    names = {(c, m) for _, _, c, m in inline_copies()}
    assert {("KVCache", "free"), ("KVCache", "used"), ("Segment", "ctx_sum")} <= names


@pytest.mark.parametrize("copy", inline_copies(), ids=lambda c: f"{c[0].name}:{c[1]}")
def test_inlined_copy_equals_its_reference(copy):
    path, line, cls_name, member = copy
    ref = reference_expr(cls_name, member)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    stmts = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and n.lineno == line
             and not isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.If, ast.For, ast.While))]
    assert stmts, f"{path.name}:{line}: no statement on the marked line"
    subexprs = {_norm(n) for s in stmts for n in ast.walk(s) if isinstance(n, ast.expr)}
    assert ref in subexprs, (f"{path.name}:{line} is marked as an inline copy of {cls_name}.{member} but holds no "
                             f"expression equal to what {cls_name}.{member} returns")


def test_a_changed_copy_is_caught(tmp_path):
    """The comparison fails on a copy that drifted (here: the reference with one name changed)."""
    ref = reference_expr("KVCache", "free")
    drifted = _norm(ast.parse("kv.num_empty + len(kv.cached)", mode="eval").body)
    same = _norm(ast.parse("kv.num_empty + len(kv.evictable)", mode="eval").body)
    assert ref == same and ref != drifted
