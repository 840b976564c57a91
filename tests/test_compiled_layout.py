"""The compiled build's layouts and hand-inlined copies, each with one source.

1. Class layouts. A class compiled by Cython (setup.py) as a ``cdef class``
   declares its fields once: ``__slots__`` in its ``.py`` is a dict, field ->
   C type. ``tools/pxd_layout.py`` writes the ``cdef public`` lines of the
   ``.pxd`` from it (setup.py runs it before Cython). These tests check the
   committed ``.pxd`` files are what it writes, that every attribute a class
   assigns is one of its slots, and the generator itself.
2. Hand-inlined copies. A hot path may repeat a short expression instead of
   calling the property, method or function that defines it (a call costs a
   Python attribute lookup or a call in the compiled build). Each such copy
   carries a marker ``# inline: Class.member`` or ``# inline: module.function``
   (the module's full dotted name) and must be, node for node, the
   reference's returned expression (receiver names aside; for a function,
   variable names aside too, since the copy binds its own).
"""

from __future__ import annotations

import ast
import builtins
import copy
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

from sim.records import ITL_EDGES_S, itl_bucket, itl_bucket_one

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "sim"
PXDS = sorted(ROOT.rglob("*.pxd"))


def _load_tool():
    spec = importlib.util.spec_from_file_location("pxd_layout", REPO / "tools" / "pxd_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
COMPILED = tool.compiled_list(REPO)


def assigned_attributes(path: Path) -> dict[str, set[str]]:
    """Class name -> attributes assigned on ``self`` in its methods (module-level classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        assigned = set()
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
        out[cls.name] = assigned
    return out


def test_every_pxd_is_of_a_compiled_module():
    assert PXDS, "no .pxd files found"
    compiled = {REPO / rel for rel in COMPILED}
    for pxd in PXDS:
        assert pxd.with_suffix(".py") in compiled, f"{pxd} is not beside a module in setup.py's COMPILED"


def test_committed_pxd_files_are_what_the_generator_writes():
    stale = tool.stale_pxds(COMPILED, REPO)
    assert not stale, (f"stale .pxd field blocks: {[str(p.relative_to(REPO)) for p in stale]}; "
                       f"run: python tools/pxd_layout.py")


@pytest.mark.parametrize("rel", [r for r in COMPILED if (REPO / r).with_suffix(".pxd").is_file()])
def test_a_compiled_class_assigns_only_its_slots(rel):
    """Pure Python raises on an undeclared attribute only on the paths a run takes; this
    reads every method."""
    path = REPO / rel
    layouts = tool.layouts(path)
    for name, assigned in assigned_attributes(path).items():
        if name in layouts:
            extra = assigned - set(layouts[name])
            assert not extra, f"{rel}: {name} assigns {sorted(extra)}, which are not in its __slots__"


def test_the_layouts_are_read_from_the_python_class():
    """The generator's reading of a known class, against its source as written by hand here."""
    assert tool.layouts(ROOT / "engine" / "wake.py") == {
        "Wake": {"at": "double", "priority": "long long", "eid": "long long", "callback": "object"},
        "WakeQueue": {"now": "double", "heap": "list", "eid": "object"}}


_PY = '''
class A:
    __slots__ = {"x": "double", "y": "double", "n": "long long", "kv": "KVCache"}

class Plain:
    __slots__ = ("z",)
'''

_PXD = """# header
from sim.engine.kvcache cimport KVCache

cdef class A:
    cdef public double x
    cpdef f(self, long long k)
"""


def _tree(tmp_path, py: str, pxd: str | None) -> Path:
    (tmp_path / "m.py").write_text(py)
    if pxd is not None:
        (tmp_path / "m.pxd").write_text(pxd)
    return tmp_path


def test_the_generator_writes_the_fields_and_keeps_the_rest(tmp_path):
    root = _tree(tmp_path, _PY, _PXD)
    assert tool.stale_pxds(["m.py"], root) == [root / "m.pxd"]
    assert tool.write_pxds(["m.py"], root) == [root / "m.pxd"]
    assert (root / "m.pxd").read_text() == (
        "# header\n"
        "from sim.engine.kvcache cimport KVCache\n"
        "\n"
        "cdef class A:\n"
        "    # fields: generated from __slots__ in m.py by tools/pxd_layout.py (do not edit)\n"
        "    cdef public double x, y\n"
        "    cdef public long long n\n"
        "    cdef public KVCache kv\n"
        "    cpdef f(self, long long k)\n")
    assert tool.stale_pxds(["m.py"], root) == [] and tool.write_pxds(["m.py"], root) == []


def test_a_class_missing_from_the_pxd_is_added(tmp_path):
    root = _tree(tmp_path, _PY.replace('"kv": "KVCache"', '"kv": "object"'), None)
    tool.write_pxds(["m.py"], root)
    text = (root / "m.pxd").read_text()
    assert "cdef class A:\n" in text and "    cdef public object kv\n" in text and "Plain" not in text


def test_a_field_of_an_unknown_c_type_is_an_error_naming_it(tmp_path):
    root = _tree(tmp_path, _PY.replace('"n": "long long"', '"n": "int64"'), _PXD)
    with pytest.raises(tool.LayoutError, match=r"A\.__slots__\['n'\] = 'int64' is not a C type.*long long"):
        tool.write_pxds(["m.py"], root)


def test_a_cdef_class_without_a_slots_dict_is_an_error(tmp_path):
    root = _tree(tmp_path, _PY.replace('__slots__ = {"x"', '__slots__ = ("x",)\n    _ = {"x"'), _PXD)
    with pytest.raises(tool.LayoutError, match="declares cdef class A, but m.py gives it no __slots__ dict"):
        tool.write_pxds(["m.py"], root)


def test_the_check_command_names_a_stale_pxd(tmp_path, capsys, monkeypatch):
    """``--check`` fails on this checkout with one field line edited by hand."""
    pxd = ROOT / "engine" / "wake.pxd"
    text = pxd.read_text(encoding="utf-8")
    assert tool.main(["--check"]) == 0
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    for rel in COMPILED:
        src = REPO / rel
        for f in (src, src.with_suffix(".pxd")):
            if f.is_file():
                (tmp_path / f.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / f.relative_to(REPO)).write_text(f.read_text(encoding="utf-8"))
    (tmp_path / "setup.py").write_text((REPO / "setup.py").read_text(encoding="utf-8"))
    edited = text.replace("cdef public double at", "cdef public long long at")
    assert edited != text
    (tmp_path / "sim" / "engine" / "wake.pxd").write_text(edited)
    assert tool.main(["--check"]) == 1
    assert "sim/engine/wake.pxd is stale: run python tools/pxd_layout.py" in capsys.readouterr().err


# ----------------------------------------------------------- inlined copies
_MARK = re.compile(r"#\s*inline:\s*([\w.]+)\.(\w+)")


class _Receiver(ast.NodeTransformer):
    """Rename the object an attribute is read from (``self``, ``kv``, ``seg``) to one placeholder;
    with ``variables``, also number the other names in order of first use (builtins kept)."""

    def __init__(self, variables: bool) -> None:
        self.variables = variables
        self.names: dict[str, str] = {}

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if isinstance(node.value, ast.Name):
            node.value = ast.Name(id="_", ctx=ast.Load())
        return node

    def visit_Name(self, node):
        if self.variables and not hasattr(builtins, node.id):
            node.id = self.names.setdefault(node.id, f"v{len(self.names)}")
        return node


def _norm(node: ast.AST, variables: bool = False) -> str:
    node = _Receiver(variables).visit(copy.deepcopy(node))
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _one_return(fn: ast.FunctionDef, what: str) -> ast.expr:
    returns = [n for n in ast.walk(fn) if isinstance(n, ast.Return)]
    assert len(returns) == 1, f"{what} must have one return to be inlined"
    return returns[0].value


def reference_expr(owner: str, member: str) -> tuple[str, bool]:
    """The normalized expression ``owner.member`` returns, and whether variable names were
    numbered: ``owner`` is a module (dotted, ``sim.…``) whose function ``member`` has one
    return, or a class whose property or method ``member`` has one return."""
    module = REPO.joinpath(*owner.split(".")).with_suffix(".py")
    if module.is_file():
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == member):
            return _norm(_one_return(fn, f"{owner}.{member}"), variables=True), True
        raise AssertionError(f"inline marker names {owner}.{member}: {module.name} has no function {member}")
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner):
            for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == member):
                return _norm(_one_return(fn, f"{owner}.{member}")), False
    raise AssertionError(f"inline marker names {owner}.{member}, which does not exist")


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
    assert {("KVCache", "free"), ("KVCache", "used"), ("Segment", "ctx_sum"),
            ("sim.engine.policies.base", "blocks_for"), ("Request", "num_tokens")} <= names


def test_every_copy_of_blocks_for_in_the_replica_is_marked():
    """The block arithmetic of ``blocks_for`` (``-(-(c + q) // bs) - (-(-c // bs))``) anywhere in
    replica.py is a copy: each carries the marker, so the test below compares it."""
    ref, _ = reference_expr("sim.engine.policies.base", "blocks_for")
    path = ROOT / "engine" / "replica.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    copies = sorted({n.lineno for n in ast.walk(tree) if isinstance(n, ast.expr) and _norm(n, variables=True) == ref})
    assert copies, "replica.py has no copy of blocks_for any more: drop this test and the expectation above"
    for line in copies:
        assert "# inline: sim.engine.policies.base.blocks_for" in lines[line - 1], (
            f"replica.py:{line} copies blocks_for without its marker")


@pytest.mark.parametrize("copy_", inline_copies(), ids=lambda c: f"{c[0].name}:{c[1]}")
def test_inlined_copy_equals_its_reference(copy_):
    path, line, owner, member = copy_
    ref, variables = reference_expr(owner, member)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # what the marked line holds: a simple statement, or the condition of an if / while
    heads = [n.test if isinstance(n, (ast.If, ast.While)) else n for n in ast.walk(tree)
             if isinstance(n, ast.stmt) and n.lineno == line
             and not isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.For, ast.With, ast.Try))]
    assert heads, f"{path.name}:{line}: no statement on the marked line"
    subexprs = {_norm(n, variables) for h in heads for n in ast.walk(h) if isinstance(n, ast.expr)}
    assert ref in subexprs, (f"{path.name}:{line} is marked as an inline copy of {owner}.{member} but holds no "
                             f"expression equal to what {owner}.{member} returns")


def test_a_changed_copy_is_caught():
    """The comparison fails on a copy that drifted (here: the reference with one name changed,
    and blocks_for with its two ceilings swapped or a floor for a ceiling)."""
    ref, _ = reference_expr("KVCache", "free")
    drifted = _norm(ast.parse("kv.num_empty + len(kv.cached) + kv.dormant", mode="eval").body)
    same = _norm(ast.parse("kv.num_empty + len(kv.evictable) + kv.dormant", mode="eval").body)
    assert ref == same and ref != drifted
    assert ref != _norm(ast.parse("kv.num_empty + len(kv.evictable)", mode="eval").body)  # a term left out
    ref, _ = reference_expr("sim.engine.policies.base", "blocks_for")
    same = _norm(ast.parse("-(-(c + q) // bs) - (-(-c // bs))", mode="eval").body, variables=True)
    for drift in ("-(-(c + q) // bs) - (-(-q // bs))", "(c + q) // bs - (-(-c // bs))",
                  "-(-(c + q) // bs) - (-(-c // n))"):
        assert ref != _norm(ast.parse(drift, mode="eval").body, variables=True), drift
    assert ref == same


# ------------------------------------------------- twin implementations
def test_the_scalar_itl_bucket_agrees_with_the_array_one():
    """``itl_bucket_one`` (the engine's per-gap path, math.log10) and ``itl_bucket`` (numpy) are
    two implementations of one formula: they must bucket every gap alike, the edges and the
    floats either side of them included (where a last-bit difference of log10 would show)."""
    edges = ITL_EDGES_S
    gaps = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf),
                           [0.0, -1.0, 1e-9, 5e-6, 0.0123, 1.0, 7.5, 999.0, 1e4, math.nan]])
    scalar = [itl_bucket_one(float(g)) for g in gaps]
    assert scalar == itl_bucket(gaps).tolist()
    # and both put an edge in the bucket it opens (10 us -> 0, 1 ms -> 40, 1 s -> 100)
    assert [itl_bucket_one(g) for g in (1e-5, 1e-3, 1.0)] == [0, 40, 100]
