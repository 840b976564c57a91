"""``sim.engine_build()`` and the warning about compiled modules older than their sources."""

from __future__ import annotations

import os
import types
import warnings
from importlib.machinery import EXTENSION_SUFFIXES

import pytest

import sim


def _tree(tmp_path, *, so_age_s: float, pxd_age_s: float | None = None):
    """A source checkout in tmp_path: setup.py, sim/engine/replica.py and a compiled replica module."""
    (tmp_path / "setup.py").write_text("")
    pkg = tmp_path / "sim" / "engine"
    pkg.mkdir(parents=True)
    src, built = pkg / "replica.py", pkg / f"replica{EXTENSION_SUFFIXES[0]}"
    src.write_text("")
    built.write_bytes(b"")
    now = 1_700_000_000.0
    os.utime(src, (now, now))
    os.utime(built, (now - so_age_s, now - so_age_s))
    if pxd_age_s is not None:
        pxd = pkg / "replica.pxd"
        pxd.write_text("")
        os.utime(pxd, (now + pxd_age_s, now + pxd_age_s))
    return tmp_path / "sim"


def test_compiled_module_older_than_its_source_is_stale(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEETCAST_PURE_PYTHON", raising=False)
    monkeypatch.setattr(sim, "_ROOT", _tree(tmp_path, so_age_s=60))
    assert sim.stale_compiled_modules() == ["sim.engine.replica"]


def test_compiled_module_newer_than_its_sources_is_not_stale(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEETCAST_PURE_PYTHON", raising=False)
    monkeypatch.setattr(sim, "_ROOT", _tree(tmp_path, so_age_s=-60))
    assert sim.stale_compiled_modules() == []


def test_a_newer_pxd_makes_it_stale_too(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEETCAST_PURE_PYTHON", raising=False)
    monkeypatch.setattr(sim, "_ROOT", _tree(tmp_path, so_age_s=-60, pxd_age_s=120))
    assert sim.stale_compiled_modules() == ["sim.engine.replica"]


def test_installed_copies_and_pure_python_are_not_checked(tmp_path, monkeypatch):
    root = _tree(tmp_path, so_age_s=60)
    monkeypatch.setattr(sim, "_ROOT", root)
    monkeypatch.setenv("FLEETCAST_PURE_PYTHON", "1")
    assert sim.stale_compiled_modules() == []
    monkeypatch.delenv("FLEETCAST_PURE_PYTHON")
    (tmp_path / "setup.py").unlink()  # not a source checkout: file times say nothing about edits
    assert sim.stale_compiled_modules() == []


def test_engine_build_warns_when_the_compiled_engine_is_stale(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEETCAST_PURE_PYTHON", raising=False)
    root = _tree(tmp_path, so_age_s=60)
    monkeypatch.setattr(sim, "_ROOT", root)
    compiled = types.SimpleNamespace(origin=str(root / "engine" / f"replica{EXTENSION_SUFFIXES[0]}"))
    monkeypatch.setattr(sim, "find_spec", lambda name: compiled)
    with pytest.warns(RuntimeWarning, match=r"older than their sources: sim\.engine\.replica"):
        assert sim.engine_build() == "compiled"
    monkeypatch.setattr(sim, "find_spec", lambda name: types.SimpleNamespace(origin="/x/replica.py"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sim.engine_build() == "pure Python"


def test_this_checkout_is_not_stale():
    """The build under test runs the sources it was built from (else rebuild: pip install -e .)."""
    assert sim.stale_compiled_modules() == []
