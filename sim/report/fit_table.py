"""A table that never cuts a cell: ``Fitting(table)`` renders ``table`` as it is when it
fits the terminal's width, else another form (``narrow``), by default turned on its side (one row per column header, one column
per row of the table), which fits a terminal of any usual width for the few pools or
classes a summary holds; where even that is too wide (a 20-column terminal), one block of
``header: value`` lines per row (``as_lines``), which wraps and cuts nothing. rich would otherwise
shrink every column and cut numbers with an ellipsis ("27,8…") on an 80-column terminal. Piped
output is wide (``make_console``) and never turned."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Fitting", "turned", "as_lines"]


def _plain(header) -> str:
    """A header on one line: its lines joined by a space, or by nothing after a hyphen or an
    underscore ("busy min-" + "max %" -> "busy min-max %", "num_gpu_" + "blocks")."""
    out = ""
    for line in str(header.plain if isinstance(header, Text) else header).split("\n"):
        line = line.strip()
        out += line if not out or out.endswith(("-", "_")) else " " + line
    return out


def turned(table: Table) -> Table:
    """``table`` on its side: the first column's cells become the headers; every other
    column becomes a row led by its header (line breaks in a header read as spaces). Title,
    caption and the cells' styles are kept."""
    cols = table.columns
    first = list(cols[0].cells)
    out = Table(title=table.title, title_justify=table.title_justify, caption=table.caption)
    out.add_column(_plain(cols[0].header), justify="left")
    for cell in first:
        out.add_column(cell if isinstance(cell, Text) else Text(str(cell)), justify="right")
    for col in cols[1:]:
        out.add_row(Text(_plain(col.header)), *col.cells)
    return out


def _text(cell) -> Text:
    return cell if isinstance(cell, Text) else Text(str(cell))


def as_lines(table: Table) -> Group:
    """``table`` as lines: its title, then per row its first cell and one indented
    ``header: value`` line per other column (a cell's line breaks read as spaces), then its
    caption. Text that wraps, at any width."""
    cols = table.columns
    heads = [_plain(c.header) for c in cols]
    out: list[RenderableType] = [_text(table.title)] if table.title else []
    for row in zip(*(list(c.cells) for c in cols)):
        out.append(Text.assemble(_text(row[0])))
        for head, cell in zip(heads[1:], row[1:]):
            value = _text(cell).copy()
            value.plain = _plain(value.plain) if "\n" in value.plain else value.plain
            out.append(Text.assemble("  ", head, ": ", value))
    if table.caption:
        out.append(_text(table.caption))
    return Group(*out)


class Fitting:
    """Render a table whole, or, when it is wider than the output, ``narrow()`` (by default the
    table turned on its side; ``fleetcast plan`` gives a line per candidate, its rows being many)."""

    def __init__(self, table: Table, narrow: Callable[[], RenderableType] | None = None) -> None:
        self.table = table
        self.narrow = narrow

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        need = Measurement.get(console, options.update_width(10**6), self.table).maximum
        if need <= options.max_width:
            yield self.table
        elif self.narrow is not None:
            yield self.narrow()
        else:
            side = turned(self.table)
            fits = Measurement.get(console, options.update_width(10**6), side).maximum <= options.max_width
            yield side if fits else as_lines(self.table)
