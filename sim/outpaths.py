"""Output paths: refuse a bad ``--out`` before any work, and write folders all at once.

Every command that writes results checks its ``--out`` first: a file where a
folder is wanted (or the reverse) is refused, and so is a place that cannot
take new files. The check creates a probe folder in the nearest existing
ancestor and removes it at once: asking ``os.access`` is not enough, since
root ignores permission bits and some file systems (``/proc``) refuse anyway.
``staged_folder`` builds a result folder beside its destination and swaps it
in with one rename, so a failure, Ctrl-C or SIGTERM leaves the old one intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.errors import FleetcastError

__all__ = ["check_writable", "check_out_folder", "check_out_file", "out_error", "swap_in", "staged_folder",
           "results_kind", "RESULT_MARKERS"]


def out_error(out: Path, reason: str, what: str = "the results") -> FleetcastError:
    return FleetcastError(f"cannot write {what} to {out}: {reason}; choose a folder you can write")


def check_writable(folder: Path, out: Path, what: str = "the results") -> None:
    """Refuse unless ``folder`` (created later if missing) can take new files; writes nothing."""
    base = Path(folder)
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir():
        raise out_error(out, f"{base} is a file, not a folder", what)
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fleetcast-probe-", dir=base))
    except OSError as exc:
        raise out_error(out, f"{base} does not accept new files ({exc.strerror or exc})", what) from None


#: The file that marks a folder as the results of each command (checked in this order).
RESULT_MARKERS = (("plan", "plan.json"), ("compare", "compare.json"), ("sweep", "sweep.parquet"),
                  ("run", "summary.json"))


def results_kind(folder: Path) -> str | None:
    """Which command's results ``folder`` holds: a command name, "other" for a folder of
    other files, None when it is missing or empty."""
    if not folder.is_dir():
        return None
    for kind, marker in RESULT_MARKERS:
        if (folder / marker).is_file():
            return kind
    return "other" if any(folder.iterdir()) else None


def check_out_folder(out: Path, what: str = "the results", kind: str | None = None, force: bool = False) -> Path:
    """``--out`` names a folder to create or replace: refuse a file or an unwritable place,
    and (for a command ``kind``) a folder holding another command's results or other files,
    unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FleetcastError(f"--out {out} is a file; give a folder for {what} (it is created if missing)")
    found = results_kind(out) if kind is not None and not force else None
    if found not in (None, kind):
        held = (f"the results of `fleetcast {found}`" if found != "other" else
                f"other files (e.g. {next(iter(sorted(p.name for p in out.iterdir())))})")
        raise FleetcastError(f"{out} holds {held}; `fleetcast {kind}` would replace the whole folder. Choose another "
                             f"--out, or add --force to replace it")
    check_writable(out, out, what)
    return out


def check_out_file(out: Path, what: str) -> Path:
    """``--out`` names a file to write: refuse a folder or an unwritable place."""
    out = Path(out)
    if out.is_dir():
        raise FleetcastError(f"--out {out} is a folder; give a file path for {what}, e.g. {out / 'NAME.json'}")
    check_writable(out.parent, out, what)
    return out


def swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out``, replacing what was there in one rename."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextmanager
def staged_folder(out: Path, what: str = "the results", kind: str | None = None,
                  force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` to fill; on success it replaces ``out`` in one
    rename, on any error (or Ctrl-C, SIGTERM) it is removed and ``out`` is untouched."""
    out = check_out_folder(out, what, kind, force)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        yield tmp
        swap_in(tmp, out)
    except OSError as exc:
        raise out_error(out, exc.strerror or str(exc), what) from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
