"""The ``fleetcast`` command: one module per subcommand, registered here.

Every user-caused error is a ``FleetcastError``: printed as one paragraph,
exit status 2, no traceback, nothing half-written. Ctrl-C at any moment
(start-up included) exits 130 with one line, SIGTERM 143.

Subcommand modules are imported lazily: ``COMMAND_TABLE`` names each command,
the module that registers it and its one-line help, so ``fleetcast --help``
imports no subcommand and ``fleetcast run ...`` imports only ``sim.cli.run``
(the others appear in the parser as help-only entries). ``build_parser()``
without arguments imports them all: a command that fails to import is then an
error of the whole program (``tests/test_architecture.py`` builds it, and
checks that the table's help agrees with each module's own).
"""

from __future__ import annotations

# First of all: Ctrl-C while the rest of this module loads exits 130 with one line, not a
# traceback (main() takes over from there). What is left before this line is Python's own
# start-up (site, the editable-install finder) and the import of ``sim/__init__.py``.
import os
import signal


def _interrupted_while_importing(signum, frame) -> None:
    os.write(2, b"interrupted\n")
    os._exit(130)


try:
    _SIGINT_BEFORE = signal.signal(signal.SIGINT, _interrupted_while_importing)
except ValueError:  # imported outside the main thread: signals are not ours to set
    _SIGINT_BEFORE = None

import argparse  # noqa: E402 - after the handler, on purpose
import importlib  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402

__all__ = ["main", "build_parser", "COMMANDS", "COMMAND_TABLE"]

#: (command, module, its register function, one-line help), in ``--help`` order. A module may
#: register several commands (calibration.cli: calibrate and validate). The help is the module's
#: own, repeated so that --help imports nothing (tests/test_cli_hostile.py checks they agree).
COMMAND_TABLE = (
    ("run", "sim.cli.run", "register", "simulate a scenario and summarize it"),
    ("schema", "sim.cli.schema", "register", "print the scenario format reference (Markdown)"),
    ("catalog", "sim.cli.catalog", "register", "list GPUs, models, quantization schemes and KV-transfer links"),
    ("testbed", "testbed.cli", "add_testbed_commands", "real vLLM server + Locust load (calibration data)"),
    ("plan", "sim.cli.plan", "register", "find the cheapest fleet per candidate that meets every SLO"),
    ("sweep", "sim.cli.sweep", "register", "forecast every point of a grid of scenario overrides"),
    ("report", "sim.cli.report", "register", "write a procurement report (HTML, PDF, XLSX) from a plan or run folder"),
    (
        "compare",
        "sim.cli.compare",
        "register",
        "compare variants of a scenario against it (paired, common random numbers)",
    ),
    ("calibrate", "calibration.cli", "register", "fit performance coefficients to testbed runs (a profile)"),
    ("validate", "calibration.cli", "register", "replay testbed runs in the simulator and compare"),
    ("traffic", "sim.cli.traffic", "register", "fit a scenario traffic section to request logs"),
)


def _register_fn(module: str, fn: str):
    return getattr(importlib.import_module(module), fn)


def __getattr__(name: str):
    # COMMANDS (the register functions) imports every subcommand module: only tests and
    # documentation generators ask for it.
    if name == "COMMANDS":
        seen, out = set(), []
        for _, module, fn, _ in COMMAND_TABLE:
            if (module, fn) not in seen:
                seen.add((module, fn))
                out.append(_register_fn(module, fn))
        return tuple(out)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version() -> str:
    return importlib.import_module("sim").__version__


def build_parser(only: str | None = "*") -> argparse.ArgumentParser:
    """The ``fleetcast`` parser. ``only="*"`` (default): every command, fully registered;
    ``only=NAME``: that command fully, the others as help-only entries; ``only=None``: help only."""
    p = argparse.ArgumentParser(prog="fleetcast", description="Forecast an LLM serving fleet before you buy it.")
    p.add_argument("--version", action="version", version=f"fleetcast {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{" + ",".join(c[0] for c in COMMAND_TABLE) + "}")
    full = {(m, f) for n, m, f, _ in COMMAND_TABLE if only in ("*", n)}  # a module registers all its commands
    done: set[tuple[str, str]] = set()
    for name, module, fn, help_text in COMMAND_TABLE:
        if (module, fn) in full:
            if (module, fn) not in done:
                done.add((module, fn))
                _register_fn(module, fn)(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    if only != "*":  # keep --help order as in the table
        order = [c[0] for c in COMMAND_TABLE]
        sub._choices_actions.sort(key=lambda a: order.index(a.dest) if a.dest in order else len(order))
    return p


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (its first word that is not an option), if known."""
    names = {c[0] for c in COMMAND_TABLE}
    for word in argv:
        if not word.startswith("-"):
            return word if word in names else None
    return None


class Terminated(Exception):
    """SIGTERM arrived: unwind like Ctrl-C, so partial outputs are removed."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def _on_lost_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt()


def _raise_again(unraisable) -> None:
    """``sys.unraisablehook`` while a command runs. Python runs a signal's handler at the next bytecode it
    executes, which may be inside a weakref callback or a ``__del__`` that the garbage collector runs: an
    exception raised there is printed ("Exception ignored in ...", a traceback) and dropped, so a SIGTERM
    or a Ctrl-C arriving then was lost and the command ran on to exit 0. Such an interrupt is raised again
    by a one-shot timer (SIGALRM, 5 ms) in the command's own code; any other exception goes to the hook
    that was there before."""
    exc = unraisable.exc_value
    handler = _on_sigterm if isinstance(exc, Terminated) else _on_lost_interrupt
    if not isinstance(exc, (Terminated, KeyboardInterrupt)) or not hasattr(signal, "setitimer"):
        _unraisable_before(unraisable)
        return
    signal.signal(signal.SIGALRM, handler)  # neither call runs pending handlers (so not raised in here)
    signal.setitimer(signal.ITIMER_REAL, 0.005)


_unraisable_before = sys.unraisablehook


def _catch_lost_interrupts() -> None:
    """Install ``_raise_again`` (main thread only, as signal handlers are)."""
    global _unraisable_before
    if sys.unraisablehook is not _raise_again:
        _unraisable_before = sys.unraisablehook
        sys.unraisablehook = _raise_again


def _say(markup: str) -> None:
    """One line on stderr through rich (imported only now: an error costs no renderer import)."""
    console = importlib.import_module("sim.report.console").make_console(stderr=True)
    console.print(markup, highlight=False, soft_wrap=True)


def _escape(text: str) -> str:
    return importlib.import_module("rich.markup").escape(text)


def _each_key_once(args: argparse.Namespace, error: type[Exception]) -> None:
    """``--set`` (or ``--sidecar-set``) naming one key twice is refused, as a YAML key given twice is:
    the last one won, silently."""
    for name in ("set", "sidecar_set"):
        flag, seen = "--" + name.replace("_", "-"), dict[str, str]()
        for text in getattr(args, name, None) or []:
            key = text.partition("=")[0].strip()
            if "=" in text and key in seen:
                raise error(f"{flag} {text}: key '{key}' is already set by {flag} {seen[key]}; set each key once")
            seen[key] = text


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except KeyboardInterrupt:  # at any moment, imports included
        sys.stderr.write("interrupted\n")
        return 130


def _main(argv: list[str]) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # default SIGTERM kills without running cleanups
        _catch_lost_interrupts()  # an interrupt that lands in a garbage collector's callback: raised again
    errors = importlib.import_module("sim.errors")
    try:
        parser = build_parser(only=_command_of(argv))
        args = parser.parse_args(argv)
        _each_key_once(args, errors.FleetcastError)
        stale = importlib.import_module("sim").stale_compiled_modules()
        if stale:
            _say(
                f"[yellow]warning:[/yellow] compiled engine modules are older than their Python sources "
                f"({', '.join(stale)}): the compiled ones run. Rebuild with `pip install -e .`, or set "
                f"FLEETCAST_PURE_PYTHON=1 to run the sources."
            )
        importlib.import_module("sim.procs").return_freed_memory()
        return int(args.func(args) or 0)
    except errors.FleetcastError as exc:
        _say("[bold red]error:[/bold red] " + _escape(str(exc)))
        return exc.exit_code
    except Terminated:
        sys.stderr.write("terminated (SIGTERM); nothing half-written was left\n")
        return 143


if _SIGINT_BEFORE is not None:  # loaded: Ctrl-C is a KeyboardInterrupt again (main() catches it)
    signal.signal(signal.SIGINT, _SIGINT_BEFORE)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
