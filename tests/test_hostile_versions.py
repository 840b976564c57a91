"""Stop 34's new inputs, hostile: vllm_version forms around the chat-intake window (0.8.2 to 0.9.1)
and duplicated or unknown keys in a traffic class's ``session:`` section, through ``run`` and
``plan`` (exit 2, the file, line and field, nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.scenario.fleet_spec import EngineSpec
from tests.test_hostile import QUICKSTART, _refused, _write


@pytest.mark.parametrize("given, release", [("v0.9.1", "0.9.1"), ("V0.8.5", "0.8.5")])
def test_a_git_tag_as_vllm_version_is_refused_with_the_release_to_write(tmp_path, monkeypatch, capsys, given, release):
    text = QUICKSTART.read_text().replace("engine: {", f"engine: {{vllm_version: '{given}', ")
    path = _write(tmp_path, "s.yaml", text)
    _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"],
             "s.yaml: line 14, field fleet.0.engine.vllm_version", f"got '{given}'",
             f"write the release without the tag's 'v', vllm_version: \"{release}\"")


def test_a_word_after_a_v_gets_no_release_hint(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, "s.yaml", QUICKSTART.read_text().replace("engine: {", "engine: {vllm_version: vlatest, "))
    err = _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"], "got 'vlatest'")
    assert "without the tag's" not in err


@pytest.mark.parametrize("given, kept", [(" 0.9.1 ", "0.9.1"), ("0.9.1rc1", "0.9.1rc1"), ("0.8.2", "0.8.2")])
def test_a_version_is_kept_as_written_less_the_spaces_around_it(given, kept):
    assert EngineSpec(vllm_version=given).vllm_version == kept


SESSION_OK = "      session:\n        mean_turns: 3\n        gap_s: {dist: exponential, mean_s: 5}\n"
SESSION_CASES = {
    "key twice": (SESSION_OK + "        mean_turns: 4\n", ["line 38: key 'mean_turns' is given twice", "lines 36 and 38"]),
    "session twice": ("      session: {mean_turns: 3, gap_s: {dist: fixed, value_s: 1}}\n" * 2,
                      ["line 36: key 'session' is given twice", "lines 35 and 36"]),
    "unknown key": (SESSION_OK + "        gap_form: completion\n",
                    ["line 38, field traffic.classes.1.session.gap_form: unknown key", "Did you mean 'gap_from'?"]),
    "unknown gap key": ("      session:\n        mean_turns: 3\n        gap_s: {dist: exponential, mean: 5}\n",
                        ["line 37, field traffic.classes.1.session.gap_s.mean: unknown key", "Did you mean 'mean_s'?"]),
    "bad gap_from": ("      session: {mean_turns: 3, gap_s: {dist: fixed, value_s: 1}, gap_from: finish}\n",
                     ["line 35, field traffic.classes.1.session.gap_from", "'arrival' or 'completion'", "'finish'"]),
}


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize("case", list(SESSION_CASES))
def test_session_section_duplicates_and_unknown_keys_are_located(tmp_path, monkeypatch, capsys, command, case):
    snippet, expect = SESSION_CASES[case]
    text = QUICKSTART.read_text().replace("      priority: 1\n", "      priority: 1\n" + snippet)
    path: Path = _write(tmp_path, "s.yaml", text)
    _refused(tmp_path, monkeypatch, capsys, [command, path, "--out", tmp_path / "o"], "s.yaml", *expect)


def test_a_key_twice_in_a_flow_mapping_names_both_columns(tmp_path, monkeypatch, capsys):
    """``engine: {max_model_len: 16384, max_num_seqs: 256, max_num_seqs: 128, ...}`` on line 14:
    'engine: {' ends at column 13 after 4 spaces, so max_num_seqs starts at 13 + len('max_model_len:
    16384, ') + 1 = 36 and its repeat at 36 + len('max_num_seqs: 256, ') = 55 (before: "lines 14 and 14")."""
    text = QUICKSTART.read_text().replace("max_num_seqs: 256, ", "max_num_seqs: 256, max_num_seqs: 128, ")
    path = _write(tmp_path, "s.yaml", text)
    _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"],
             "s.yaml, line 14: key 'max_num_seqs' is given twice in one mapping (columns 36 and 55 of line 14)")
