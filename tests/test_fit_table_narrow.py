"""A table on a terminal too narrow even for its turned form (COLUMNS=20): lines of
``header: value`` per row, every value whole (before: "T…", "2…" in every cell)."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from sim.report.fit_table import Fitting


def _table() -> Table:
    t = Table(title="Latency and SLO", caption="2 classes")
    for h in ("class", "TTFT p50\nms", "goodput\nreq/s"):
        t.add_column(h)
    t.add_row("chat", "26.0", "11.06")
    t.add_row("code", "60.5", "11.34")
    return t


def _render(width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(Fitting(_table()))
    return out.getvalue()


def test_twenty_columns_get_lines_with_every_value_whole():
    text = _render(20)
    assert "…" not in text and "┃" not in text, text
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines == ["Latency and SLO", "chat", "  TTFT p50 ms: 26.0", "  goodput req/s:", "11.06",
                     "code", "  TTFT p50 ms: 60.5", "  goodput req/s:", "11.34", "2 classes"], lines


def test_wider_terminals_keep_the_table_or_its_turned_form():
    assert "│ chat  │ 26.0" in _render(80)  # fits (30 columns): the table as it is
    wide = Table()
    for h in ("class", *(f"metric {i}" for i in range(8))):
        wide.add_column(h)
    wide.add_row("chat", *(f"{i}.5" for i in range(8)))
    out = io.StringIO()  # 8 x 11 + 9 = 97 columns as it is; turned: 8 + 4 + 7 = 19
    Console(file=out, width=40, color_system=None, legacy_windows=False).print(Fitting(wide))
    side = out.getvalue()
    assert "┃ class    ┃ chat ┃" in side and "│ metric 7 │  7.5 │" in side and "…" not in side, side


def test_catalog_on_an_80_column_terminal_cuts_no_cell(monkeypatch):
    """``fleetcast catalog``'s GPU table is wider than 80 columns; before, rich cut its cells
    ("1.091e…" in sweep's table, "24,8…" here). The A100's purchase price: DGX A100 $199,000 / 8
    GPUs = $24,875 (sim/catalog/gpus.yaml's source)."""
    import sim.cli.catalog as catalog_cli
    from sim.cli import main

    out = io.StringIO()
    monkeypatch.setattr(catalog_cli, "console", Console(file=out, width=80, color_system=None, legacy_windows=False))
    assert main(["catalog"]) == 0
    text = out.getvalue()
    assert "…" not in text, text[:2000]
    block = text[text.index("a100-80gb"):]
    assert "  buy $: 24,875" in block[:300], block[:300]
