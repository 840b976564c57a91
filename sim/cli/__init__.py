"""The ``fleetcast`` command: one module per subcommand, registered here.

Every user-caused error is a ``FleetcastError``: printed as one paragraph,
exit status 2, no traceback, nothing half-written. Every subcommand module is
imported at the top: a command that fails to import is an error of the whole
program, never a command that silently disappears.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from rich.markup import escape

import calibration.cli
import testbed.cli
from sim import __version__, stale_compiled_modules
from sim.cli import catalog, compare, plan, report, run, schema, sweep
from sim.cli.common import err_console
from sim.errors import FleetcastError
from sim.procs import return_freed_memory

__all__ = ["main", "build_parser", "COMMANDS"]

#: The subcommands in ``--help`` order: each module's ``register(subparsers)`` adds its parsers.
COMMANDS = (run.register, schema.register, catalog.register, testbed.cli.add_testbed_commands, plan.register,
            sweep.register, report.register, compare.register, calibration.cli.register)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetcast", description="Forecast an LLM serving fleet before you buy it.")
    p.add_argument("--version", action="version", version=f"fleetcast {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for register in COMMANDS:
        register(sub)
    return p


class Terminated(Exception):
    """SIGTERM arrived: unwind like Ctrl-C, so partial outputs are removed."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)  # default SIGTERM kills without running cleanups
    return_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    stale = stale_compiled_modules()
    if stale:
        err_console.print(f"[yellow]warning:[/yellow] compiled engine modules are older than their Python sources "
                          f"({', '.join(stale)}): the compiled ones run. Rebuild with `pip install -e .`, or set "
                          f"FLEETCAST_PURE_PYTHON=1 to run the sources.", highlight=False, soft_wrap=True)
    try:
        return int(args.func(args) or 0)
    except FleetcastError as exc:
        err_console.print("[bold red]error:[/bold red] " + escape(str(exc)), highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]")
        return 130
    except Terminated:
        err_console.print("[red]terminated[/red] (SIGTERM); nothing half-written was left")
        return 143


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
