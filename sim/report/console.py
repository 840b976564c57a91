"""The rich consoles every command prints through (light: only ``rich.console``, so an
error message costs no import of the renderers)."""

from __future__ import annotations

from rich.console import Console

__all__ = ["PIPED_WIDTH", "make_console"]

PIPED_WIDTH = 240
"""Columns of a console writing to a pipe or file: wider than any table here, so nothing
is cut to 80 columns (rich's default without a terminal)."""


def make_console(stderr: bool = False) -> Console:
    """A rich console: the terminal's own when there is one; else PIPED_WIDTH columns, no colour."""
    c = Console(stderr=stderr)
    return c if c.is_terminal else Console(stderr=stderr, width=PIPED_WIDTH, no_color=True)
