"""The shape of the ``sim`` package: imports go one way, nothing imports in a
function what it could import at the top, every command is registered.

Layers, lowest first (a module may import its own layer and the ones below):

    base      sim, sim.errors, sim.rng, sim.records, sim.outpaths, sim.procs, sim.infiles
    catalog   sim.catalog
    perf      sim.perf.*          (the performance model: PerfModel, measured kernel tables in sim.perf.kernels,
                                   memory plan, profiles, step source, speculative decoding, PoolModel)
    workload  sim.workload.*      (traffic specs, distributions, traces, generation, surges)
    scenario  sim.scenario.*      (the scenario file: pools, plan, events, YAML)
    engine    sim.engine.*        (the event loop: request, replica, policies, KV cache, fleet, routers, SimPy adapter)
    analysis  sim.analysis.*      (metrics, forecast, plan, sweep, compare)
    report    sim.report.*        (all rendering: HTML/PDF/XLSX, terminal tables, compare report)
    cli       sim.cli.*           (one module per command)

The graph is read from the source with ``ast``: every ``import`` and
``from ... import`` of a ``sim`` module, at module level and inside
functions, those under ``if TYPE_CHECKING:`` included: an import made only for
annotations still ties the two modules together.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import sim.cli as cli
from sim.engine.policies import POLICIES
from sim.engine.routers import ROUTERS
from sim.scenario.params import POLICY_PARAMS, ROUTER_PARAMS

ROOT = Path(__file__).resolve().parents[1] / "sim"

LAYERS = ["base", "catalog", "perf", "workload", "scenario", "engine", "analysis", "report", "cli"]

#: Third-party modules that may be imported inside a function: heavy or
#: optional dependencies that only some commands need (start-up time, or an
#: extra that may not be installed).
LAZY_OK = {"matplotlib", "openpyxl", "ray", "scipy", "pandas"}
#: Command modules may import the ``sim`` modules that do their work inside the command, after
#: its cheap checks: `fleetcast --help` and a refusal cost well under a second (issue 26).
LAZY_SIM_OK_IN = "sim.cli"


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "rng", "records", "outpaths", "procs", "infiles"):
        return "base"
    if parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"module {module} is in no layer; add it to a sub-package (see this test's docstring)")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(path: Path, type_checking: bool = True):
    """(imported module, line, inside a function?) for each import in ``path``; those under
    ``if TYPE_CHECKING:`` (annotations only) count unless ``type_checking`` is False."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    mod = module_name(path)
    out = []

    def visit(node, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child) and not type_checking:
                for sub in child.orelse:
                    visit(sub, in_func)
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_func) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative import: resolve against this package
                    base = mod.split(".")
                    if path.name != "__init__.py":
                        base = base[:-1]
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.append((target, child.lineno, in_func))
                # `from sim.x import y` where y is a sub-module
                for a in child.names:
                    sub = f"{target}.{a.name}"
                    if target.startswith("sim") and _exists(sub):
                        out.append((sub, child.lineno, in_func))
            visit(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(tree, False)
    return out


def _exists(module: str) -> bool:
    p = ROOT.parent.joinpath(*module.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for path in sources():
        mod = module_name(path)
        g.setdefault(mod, set())
        for target, _, _ in imports(path):
            if target == "sim" or target.startswith("sim."):
                if target != mod:
                    g[mod].add(target)
    return g


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``g`` as a list of modules, or None (iterative DFS)."""
    color: dict[str, int] = {}
    for start in sorted(g):
        if color.get(start):
            continue
        stack = [(start, iter(sorted(g.get(start, ()))))]
        path = [start]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                path.pop()
                continue
            if color.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not color.get(nxt):
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(g.get(nxt, ())))))
    return None


def test_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    cycle = find_cycle(g)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_go_one_way():
    bad = []
    for path in sources():
        mod = module_name(path)
        rank = LAYERS.index(layer_of(mod))
        for target, line, _ in imports(path):
            if target.startswith("sim.") and LAYERS.index(layer_of(target)) > rank:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: {layer_of(mod)} module {mod} imports "
                           f"{layer_of(target)} module {target}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_function_local_imports():
    bad = []
    for path in sources():
        lazy_sim = module_name(path).startswith(LAZY_SIM_OK_IN)
        for target, line, in_func in imports(path):
            if in_func and target.split(".")[0] not in LAZY_OK and not (lazy_sim and target.startswith("sim.")):
                bad.append(f"{path.relative_to(ROOT.parent)}:{line}: import of {target} inside a function")
    assert not bad, ("imports inside functions (move them to the top; only heavy optional dependencies "
                     f"{sorted(LAZY_OK)} may be imported lazily):\n" + "\n".join(bad))


def test_no_module_shadows_the_standard_library():
    names = {p.stem for p in sources()} | {p.name for p in ROOT.rglob("*") if p.is_dir()}
    shadow = sorted(n for n in names if n in sys.stdlib_module_names)
    assert not shadow, f"sim modules named like standard-library modules: {shadow}"


def test_every_command_module_is_registered():
    """Each module of sim/cli/ (but the shared helpers) adds its command through ``COMMANDS``."""
    modules = {p.stem for p in (ROOT / "cli").glob("*.py")} - {"__init__", "common"}
    registered = {f.__module__.rsplit(".", 1)[-1] for f in cli.COMMANDS if f.__module__.startswith("sim.cli.")}
    assert modules == registered, f"not registered: {sorted(modules - registered)}"
    names = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert {"run", "plan", "sweep", "report", "compare", "schema", "catalog", "testbed", "calibrate",
            "validate"} <= names


def test_policy_and_router_names_agree_between_scenario_and_engine():
    """The scenario validates policy/router params with ``sim.scenario.params``; the engine's
    registries must name the same ones, in the same order, with those same models."""
    assert list(POLICIES) == list(POLICY_PARAMS) and list(ROUTERS) == list(ROUTER_PARAMS)
    assert all(POLICIES[n].Params is POLICY_PARAMS[n] for n in POLICIES)
    assert all(ROUTERS[n].Params is ROUTER_PARAMS[n] for n in ROUTERS)
