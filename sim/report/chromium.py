"""Headless Chromium: find it and run it safely (no network, throwaway profile).

Used to print the HTML report to PDF, and by the tests to screenshot it.
``FLEETCAST_CHROMIUM`` names the binary explicitly; otherwise the usual names
are looked up on PATH (Debian's package installs ``/usr/bin/chromium``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["find_chromium", "run_chromium", "CHROMIUM_FLAGS"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: flags for a quiet, offline, sandbox-free (containers) headless run.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    env = os.environ.get("FLEETCAST_CHROMIUM")
    if env:
        return env if Path(env).is_file() or shutil.which(env) else None
    return next((p for p in map(shutil.which, _NAMES) if p), None)


def run_chromium(html: Path, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``html`` with extra ``args`` (e.g. ``--print-to-pdf=...``).

    Raises ``FileNotFoundError`` when there is no Chromium and
    ``subprocess.SubprocessError`` when it fails or times out.
    """
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("no chromium binary found (set FLEETCAST_CHROMIUM or install chromium)")
    with tempfile.TemporaryDirectory(prefix="fleetcast-chromium-") as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, Path(html).resolve().as_uri()]
        proc = subprocess.run(
            cmd, capture_output=True, timeout=timeout_s, check=False, env={**os.environ, "HOME": profile}
        )
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
    return proc
