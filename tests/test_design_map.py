"""docs/design.md opens with a map: a drawn picture of the layers and of a request's path,
then every module by layer. The list is generated from the tree (tools/design_map.py);
these tests fail when the tree and the page part ways."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DESIGN = REPO / "docs" / "design.md"


def _tool():
    spec = importlib.util.spec_from_file_location("design_map", REPO / "tools" / "design_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _picture() -> str:
    text = DESIGN.read_text(encoding="utf-8")
    start = text.index("## The map in ten minutes")
    block = re.search(r"```text\n(.*?)```", text[start:], re.S)
    assert block, "the map section has no ```text picture"
    return block.group(1)


def test_module_list_is_the_tree():
    tool = _tool()
    text = DESIGN.read_text(encoding="utf-8")
    assert tool.rewrite(text) == text, "docs/design.md's module map is stale: run python tools/design_map.py docs/design.md"


def test_module_list_has_every_module_once():
    # independent of the generator: the tree walked here, against the paths the block spells out
    text = DESIGN.read_text(encoding="utf-8")
    tool = _tool()
    block = text[text.index(tool.BEGIN):text.index(tool.END)]
    listed: list[str] = []
    for line in block.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 4 or cells[1] in ("layer", "---"):
            continue
        folder = cells[2].strip("`")
        listed += [folder + name.strip(" `") for name in cells[3].split(",")]
    tree = [p.relative_to(REPO).as_posix() for pkg in ("sim", "calibration", "testbed")
            for p in (REPO / pkg).rglob("*.py")]
    assert sorted(listed) == sorted(tree)


def test_stale_list_is_caught(tmp_path):
    tool = _tool()
    for pkg in ("sim", "calibration", "testbed"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    page = f"# x\n\n{tool.BEGIN}\n{tool.END}\n"
    fresh = tool.rewrite(page, tmp_path)
    assert "| base | `sim/` | `__init__.py` |" in fresh
    (tmp_path / "sim" / "perf").mkdir()
    (tmp_path / "sim" / "perf" / "new_model.py").write_text("")
    assert tool.rewrite(fresh, tmp_path) != fresh
    assert "`new_model.py`" in tool.rewrite(fresh, tmp_path)
    (tmp_path / "sim" / "oddname").mkdir()
    (tmp_path / "sim" / "oddname" / "x.py").write_text("")
    with pytest.raises(ValueError, match="in no layer"):
        tool.rewrite(fresh, tmp_path)


def test_picture_names_files_that_exist():
    files = set(re.findall(r"\b((?:sim|calibration|testbed)/[\w/]+\.py)\b", _picture()))
    assert len(files) >= 15, files
    missing = sorted(f for f in files if not (REPO / f).is_file())
    assert not missing, f"the map's picture names files that do not exist: {missing}"


def test_picture_names_code_that_exists():
    picture = _picture()
    files = set(re.findall(r"\b((?:sim|calibration|testbed)/[\w/]+\.py)\b", picture))
    source = "\n".join((REPO / f).read_text(encoding="utf-8") for f in files)
    text = re.sub(r"\b(?:sim|calibration|testbed)/[\w/]+\.py\b", "", picture)
    names = set()
    for token in re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", text):
        for part in token.split("."):
            if "_" in part.strip("_") or re.fullmatch(r"[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*", part) or (
                    "." in token and part == token.split(".")[-1]):
                names.add(part)
    assert {"load_scenario", "build_pool_models", "PoolModel", "step_time_s", "RunSummary", "choose"} <= names
    defined = lambda n: re.search(rf"(\bdef\s+{n}\b|\bclass\s+{n}\b|\b{n}\s*[:=]|\"{n}\")", source)  # noqa: E731
    missing = sorted(n for n in names if not defined(n))
    assert not missing, f"the map's picture names code its files do not define: {missing}"


def test_map_layers_are_the_import_rule_layers():
    # the tool lists sim's layers by name beside tests/test_architecture.py's import rule: one order
    from tests.test_architecture import LAYERS

    assert _tool().LAYERS[: len(LAYERS)] == LAYERS
    assert _tool().LAYERS[len(LAYERS) :] == ["calibration", "testbed"]
