"""Output paths: refuse a bad ``--out`` before any work, and write folders all at once.

Every command that writes results checks its ``--out`` first: a file where a
folder is wanted (or the reverse) is refused, and so is a place that cannot
take new files. The check creates a probe folder in the nearest existing
ancestor and removes it at once: asking ``os.access`` is not enough, since
root ignores permission bits and some file systems (``/proc``) refuse anyway.
``staged_folder`` builds a result folder beside its destination and swaps it
in with one rename, so a failure, Ctrl-C or SIGTERM leaves the old one intact.

``out_lock`` makes one process at a time the writer of an ``--out``: a lock
file named by a hash of its absolute path in the user's temp folder
(``flock``-ed, holding the writer's pid; nothing is created beside ``--out``
before the results are), so a
second run into the same folder is refused at once ("in use by pid N") instead
of silently replacing the first one's results. Whoever holds the lock also
removes the staging folders (``.NAME.partial-*``) that a killed writer left.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sim.errors import FleetcastError

__all__ = [
    "check_writable",
    "check_out_folder",
    "check_out_file",
    "out_error",
    "swap_in",
    "staged_folder",
    "results_kind",
    "RESULT_MARKERS",
    "out_lock",
    "remove_stale_staging",
    "default_out",
]


def default_out(out: str | None, name: str, suffix: str, where: str) -> Path:
    """``--out`` as given, else ``out/<name><suffix>``: the scenario ``name`` must then be one folder
    name (a name of ``../../x`` wrote the results two folders above ``out/``; ``a/b`` a folder inside
    another), else a FleetcastError naming the scenario file ``where`` and the field."""
    if out:
        return Path(out)
    folder = f"{name}{suffix}"
    seps = [c for c in name if c in ("/", "\\")]
    why = (
        "it is empty"
        if not name.strip()
        else "it names a folder, not a name in one"
        if name in (".", "..")
        else f"it holds {seps[0]!r}"
        if seps
        else "a file name holds at most 255 bytes"
        if len(os.fsencode(folder)) > 255
        else ""
    )
    if not why:
        return Path("out") / folder
    raise FleetcastError(
        f"{where}: field name: {name!r} cannot name the default output folder out/<name>{suffix} ({why}); "
        "give --out DIR, or a scenario name that is one folder name"
    )


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
RESULT_MARKERS = (
    ("plan", "plan.json"),
    ("compare", "compare.json"),
    ("sweep", "sweep.parquet"),
    ("run", "summary.json"),
)


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
    try:
        return _check_out_folder(out, what, kind, force)
    except OSError as exc:  # a name too long, a component that is a file, EIO
        raise out_error(out, exc.strerror or str(exc), what) from None


#: Bytes of one file name (NAME_MAX on Linux); a folder's staging copy adds ``.`` and ``.partial-XXXXXXXX``.
NAME_MAX = 255
_STAGING_EXTRA = 18


def _check_out_folder(out: Path, what: str, kind: str | None, force: bool) -> Path:
    longest = max((p for p in out.parts), key=lambda p: len(p.encode("utf-8", "surrogateescape")), default="")
    n = len(longest.encode("utf-8", "surrogateescape"))
    if n > NAME_MAX - (_STAGING_EXTRA if longest == out.name else 0):
        raise out_error(
            out,
            f"the name '{longest[:40]}...' is {n} bytes long; a folder name may be at most "
            f"{NAME_MAX - _STAGING_EXTRA} bytes here ({NAME_MAX}, less room for the staging copy)",
            what,
        )
    if out.exists() and not out.is_dir():
        raise FleetcastError(f"--out {out} is a file; give a folder for {what} (it is created if missing)")
    found = results_kind(out) if kind is not None and not force else None
    if found not in (None, kind):
        held = (
            f"the results of `fleetcast {found}`"
            if found != "other"
            else f"other files (e.g. {next(iter(sorted(p.name for p in out.iterdir())))})"
        )
        raise FleetcastError(
            f"{out} holds {held}; `fleetcast {kind}` would replace the whole folder. Choose another "
            f"--out, or add --force to replace it"
        )
    check_writable(out, out, what)
    return out


def check_out_file(out: Path, what: str) -> Path:
    """``--out`` names a file to write: refuse a folder or an unwritable place."""
    out = Path(out)
    try:
        if out.is_dir():
            raise FleetcastError(f"--out {out} is a folder; give a file path for {what}, e.g. {out / 'NAME.json'}")
        if len(out.name.encode("utf-8", "surrogateescape")) > 255:
            raise out_error(out, "File name too long", what)
        check_writable(out.parent, out, what)
    except OSError as exc:
        raise out_error(out, exc.strerror or str(exc), what) from None
    return out


def swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` at ``out``, replacing what was there in one rename.

    Replacing a folder takes two renames (``out`` aside, ``tmp`` in). Ctrl-C or SIGTERM between
    them would leave no ``out`` at all (the caller then removes ``tmp``, and the next writer the
    copy set aside), so both signals are held until the swap and the old copy's removal are done;
    a failed second rename puts the old folder back."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    with _signals_held():
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)  # held too: a signal now would leave the old copy beside out


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM arrive after the block, not inside it: their Python handlers are swapped for
    one that notes them, then put back and the noted signals raised again. (Blocking the signals with
    ``pthread_sigmask`` is not enough: the kernel hands a process's signal to any thread that does not
    block it, and Python then runs the handler in the main thread at once.) Main thread only: elsewhere
    the handlers cannot be set, and do not run in that thread anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noted: list[int] = []
    before = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not None:  # None: a handler not set from Python, left alone
            before[sig] = signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(noted):
            signal.raise_signal(signum)


#: Paths this process holds the lock of (flock conflicts between two opens of one file, even
#: in one process: a command that locks its --out early and then stages into it takes it once).
_HELD: dict[Path, int] = {}


def _lock_path(out: Path) -> Path:
    digest = hashlib.sha1(os.path.realpath(out).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"fleetcast-{os.getuid()}" / "locks" / f"{digest}.lock"


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders of ``out`` (and old copies swapped out) that a killed writer
    left; call only while holding ``out_lock(out)``, so none of them is a live writer's."""
    out = Path(out)
    pattern = re.compile(
        re.escape(_staging_prefix(out)) + r"[A-Za-z0-9_]{8}$|" + re.escape(f".{out.name}.old-") + r"[0-9]+$"
    )
    gone: list[Path] = []
    try:
        entries = list(out.parent.iterdir()) if out.parent.is_dir() else []
    except OSError:
        return gone
    for p in entries:
        if pattern.match(p.name) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


@contextmanager
def out_lock(out: Path, what: str = "the results") -> Iterator[None]:
    """Hold the writer's lock of ``out`` (re-entrant within this process); refuse at once when
    another process holds it. Stale staging folders of dead writers are removed on entry."""
    out = Path(os.path.abspath(out))
    if out in _HELD:
        _HELD[out] += 1
        try:
            yield
        finally:
            _HELD[out] -= 1
        return
    lock = _lock_path(out)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise FleetcastError(
            f"cannot create the lock file {lock} for --out {out}: {exc.strerror or exc}; "
            f"set TMPDIR to a folder you can write"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise FleetcastError(
                f"--out {out} is in use by pid {holder} (another fleetcast command writing its "
                f"results there); wait for it to finish, or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_staging(out)
        _HELD[out] = 1
        try:
            yield
        finally:
            del _HELD[out]
            try:
                os.unlink(lock)
            except OSError:
                pass
    finally:
        os.close(fd)


@contextmanager
def staged_folder(out: Path, what: str = "the results", kind: str | None = None, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` to fill; on success it replaces ``out`` in one
    rename, on any error (or Ctrl-C, SIGTERM) it is removed and ``out`` is untouched."""
    out = check_out_folder(out, what, kind, force)
    tmp = None
    with out_lock(out, what):
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(out), dir=out.parent))
            yield tmp
            swap_in(tmp, out)
        except OSError as exc:
            raise out_error(out, exc.strerror or str(exc), what) from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
