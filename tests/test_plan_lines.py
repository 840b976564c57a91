"""``fleetcast plan`` in a terminal too narrow for its table (80 columns): a line per candidate."""

from __future__ import annotations

import io

from rich.console import Console

from sim.cli import plan as plan_cli


def _doc() -> dict:
    ok = {
        "id": "h100-sxm-int4-awq-tp2-continuous",
        "status": "ok",
        "replicas": 2,
        "replicas_interval": [2, 2],
        "gpus": 4,
        "usd_per_month": 8731.0,
        "usd_per_1m_output_tokens": 2.577,
        "headroom_pct": 40.6,
        "headroom_interval_pct": [40.6, 52.3],
        "attainment_pct": 100.0,
        "p99_ttft_s": 0.792,
        "p99_tpot_s": 0.0405,
    }
    empty = dict.fromkeys(ok, None) | {"replicas_interval": None, "headroom_interval_pct": None}
    pruned = empty | {"id": "l40s-int4-awq-tp2-continuous", "status": "pruned", "replicas_at_least": 6}
    unfit = empty | {"id": "l40s-bf16-tp1-continuous", "status": "does-not-fit"}
    return {
        "scenario": {"name": "x"},
        "demand": {"peak_rate_rps": 8.045},
        "tried": 66,
        "recommended": ok["id"],
        "candidates": [ok, pruned, unfit],
    }


def test_plan_lines_say_every_column_that_has_a_value():
    text = [Console(file=io.StringIO(), width=400).render_str(line).plain for line in plan_cli._plan_lines(_doc())]
    assert text == [
        " 1 h100-sxm-int4-awq-tp2-continuous: ok, replicas 2 (2-2), GPUs 4, $/month 8,731, $/1M out tok 2.577, "
        "headroom 40.6 (40.6-52.3) %, attainment 100.0 %, p99 TTFT 0.792 s, p99 TPOT 0.0405 s",
        " 2 l40s-int4-awq-tp2-continuous: pruned, replicas >= 6",
        " 3 l40s-bf16-tp1-continuous: does-not-fit",
    ]


def test_the_table_is_wider_than_80_columns_and_fits_200():
    """What picks the lines: the table's natural width (the longest candidate id is 33 characters, with
    ten more columns) against the terminal's."""
    table = plan_cli._plan_table(_doc())
    for width, fits in ((80, False), (200, True)):
        console = Console(file=io.StringIO(), width=width)
        assert (console.measure(table, options=console.options.update_width(10_000)).maximum <= width) is fits
