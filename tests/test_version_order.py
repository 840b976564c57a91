"""vLLM versions are read as vLLM builds them. A release candidate of X is tagged on X's own
release branch, cut 1-2 days before X (vllm-project/vllm RELEASE.md, "Release branch"), so it
holds X's changes and is X in every version rule; a development build of X (a nightly from main,
``X.devN``) may lack them, so it sorts before X and after the release before it (as PEP 440 orders
it, packaging.python.org "Version specifiers"); a post-release or local build of X is X.
Expected sides below are read off each rule's documented edge, not computed by the code under
test."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from sim.perf.cpu_side import FE_CHAT_FORMAT_DETECT_S, HOST_CPU_SPEEDUP, cpu_side_for, is_v0, with_chat_intake
from sim.perf.kernels.versions import parse_version
from sim.perf.memory import moe_workspace_held
from sim.scenario.fleet_spec import EngineSpec
from tests.test_hostile import QUICKSTART, _refused, _write


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("0.9.1", "0.9.2rc1"),
        ("0.9.2.dev3", "0.9.2rc1"),
        ("0.9.2.dev364+gb1235c3e1", "0.9.2"),
        ("0.9.1.post1", "0.9.2.dev1"),
        ("0.9.99", "0.10rc1"),
        ("0.10.0.dev1", "0.10.0"),
    ],
)
def test_a_dev_build_sorts_before_its_release_and_after_the_one_before(lower, higher):
    assert parse_version(lower) < parse_version(higher)
    assert parse_version(higher) > parse_version(lower)


@pytest.mark.parametrize(
    "text, release", [("0.9.2rc1", (0, 9, 2)), ("0.10.0rc2", (0, 10, 0)), ("0.9.2a1", (0, 9, 2)), ("0.9.2b1", (0, 9, 2))]
)
def test_a_release_candidate_is_its_release(text, release):
    assert parse_version(text) == release


@pytest.mark.parametrize("text, release", [("0.9.1.post1", (0, 9, 1)), ("0.9.1+cu126", (0, 9, 1)), ("0.9.2-1", (0, 9, 2))])
def test_a_post_release_or_local_build_is_its_release_for_every_rule(text, release):
    assert parse_version(text) == release


@pytest.mark.parametrize("text", ["0.9.x", "0.9.2foo", "latest", "0.9.2rc1rc2", "9", "0.9.2 rc1"])
def test_what_is_not_a_version_is_none(text):
    assert parse_version(text) is None


def test_a_dev_build_prints_as_written_and_survives_a_worker_hand_off():
    v = parse_version("0.9.2.dev3")
    assert ".".join(map(str, v)) == "0.9.2.dev3"
    back = pickle.loads(pickle.dumps(v))
    assert back < (0, 9, 2) and back > (0, 9, 1)


def _chat_extra_s(version: str) -> float:
    v = parse_version(version)
    cpu = cpu_side_for(v)
    return with_chat_intake(cpu, v, "llama-3.1-8b").fe_request_s - cpu.fe_request_s


@pytest.mark.parametrize(
    "version, charged",
    [
        ("0.8.2.dev5", False),  # before 0.8.2, the window's first release
        ("0.8.2rc1", True),  # 0.8.2's own candidate
        ("0.8.2", True),
        ("0.9.1.post1", True),
        ("0.9.2.dev5", True),  # before 0.9.2, the first release without the re-parse: still inside
        ("0.9.2rc1", False),  # 0.9.2's own candidate (stop 35 read it as 0.9.2 too; polish9's first
        ("0.9.2", False),  # version of this rule had it inside)
    ],
)
def test_chat_intake_window_edges_read_dev_builds_as_before_and_candidates_as_their_release(version, charged):
    per_request_s = FE_CHAT_FORMAT_DETECT_S["llama-3.1"] / HOST_CPU_SPEEDUP
    assert _chat_extra_s(version) == pytest.approx(per_request_s if charged else 0.0)


def test_v0_and_memory_rules_read_dev_builds_as_before_and_candidates_as_their_release():
    assert is_v0(parse_version("0.8.0.dev1")) and not is_v0(parse_version("0.8.0rc1"))  # V1 default from 0.8.0
    assert not is_v0(parse_version("0.8.0"))
    assert not moe_workspace_held(parse_version("0.14.0.dev2")) and moe_workspace_held(parse_version("0.14.0rc2"))


def test_async_scheduling_on_a_dev_build_of_its_first_release_is_refused():
    """--async-scheduling came in 0.9.2 (vLLM PR #19970): 0.9.2.dev3 is before it, 0.9.2rc1 is it."""
    with pytest.raises(ValidationError, match="async_scheduling needs vLLM >= 0.9.2"):
        EngineSpec(vllm_version="0.9.2.dev3", async_scheduling=True)
    assert EngineSpec(vllm_version="0.9.2rc1", async_scheduling=True).async_scheduling
    assert EngineSpec(vllm_version="0.9.2.post1", async_scheduling=True).async_scheduling


def test_engine_core_v0_on_a_dev_build_of_0_11_is_accepted_and_on_its_candidate_refused():
    """V0 was removed in 0.11.0: its dev builds are before it, its candidates are it."""
    assert EngineSpec(vllm_version="0.11.0.dev1", engine_core="v0").engine_core == "v0"
    for v in ("0.11.0rc1", "0.11.0"):
        with pytest.raises(ValidationError, match="before 0.11.0"):
            EngineSpec(vllm_version=v, engine_core="v0")


@pytest.mark.parametrize("given", ["0.9.2foo", "0.9.2rc1rc2", "0.9.x"])
def test_a_string_that_is_no_version_is_a_located_error_naming_the_forms(tmp_path, monkeypatch, capsys, given):
    text = QUICKSTART.read_text().replace("engine: {", f"engine: {{vllm_version: '{given}', ")
    path = _write(tmp_path, "s.yaml", text)
    _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"],
             "s.yaml: line 14, field fleet.0.engine.vllm_version", f"got '{given}'", "'0.9.2rc1'")


def test_async_scheduling_on_a_dev_build_is_refused_through_run_with_its_line(tmp_path, monkeypatch, capsys):
    text = QUICKSTART.read_text().replace("engine: {", "engine: {vllm_version: '0.9.2.dev3', async_scheduling: true, ")
    path = _write(tmp_path, "s.yaml", text)
    _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"],
             "s.yaml: line 14, field fleet.0.engine", "async_scheduling needs vLLM >= 0.9.2")
