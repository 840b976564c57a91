"""``sim.outpaths.swap_in``: replacing a results folder is two renames; a signal or a failure between
them must not leave the user without a folder (old or new)."""

from __future__ import annotations

import os
import signal

import pytest

from sim import outpaths


def _folders(tmp_path):
    out, new = tmp_path / "out", tmp_path / ".out.partial-abcdefgh"
    out.mkdir()
    (out / "summary.json").write_text("old")
    new.mkdir()
    (new / "summary.json").write_text("new")
    return out, new


def test_ctrl_c_between_the_two_renames_arrives_after_the_swap(tmp_path, monkeypatch):
    out, new = _folders(tmp_path)
    real, calls = os.replace, []

    def replace_then_ctrl_c(src, dst):
        real(src, dst)
        calls.append(dst)
        if len(calls) == 1:  # out is now aside: Ctrl-C here used to leave no out at all
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace_then_ctrl_c)
    # Ctrl-C as a user's shell delivers it, whatever earlier tests left: Python's handler, not blocked
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        with pytest.raises(KeyboardInterrupt):
            outpaths.swap_in(new, out)
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    assert len(calls) == 2  # the second rename ran before the interrupt was delivered
    assert (out / "summary.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing set aside is left beside it


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    out, new = _folders(tmp_path)
    real, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError):
        outpaths.swap_in(new, out)
    assert (out / "summary.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.partial-abcdefgh", "out"]
