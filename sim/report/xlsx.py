"""The report's tables as an Excel workbook (openpyxl): sheets Summary,
Candidates, Own vs rent, Points and Assumptions, with raw numbers (not formatted text) so
a planner can re-sort and re-compute them.
"""

from __future__ import annotations

import io
import math

import pandas as pd

from sim.errors import FleetcastError
from sim.report.assumptions import Assumptions
from sim.report.fmt import flatten
from sim.report.load import ReportInput
from sim.report.narrative import (
    CANDIDATE_COLUMNS,
    candidate_rows,
    candidate_slo_rows,
    headline,
    key_numbers,
    summary_paragraphs,
)
from sim.report.own_rent import own_rent_assumptions, own_rent_rows, own_rent_sentence
from sim.report.plan_stats import slo_interval_rows, timeline_rows

__all__ = ["render_xlsx", "points_frame", "SHEETS", "CANDIDATE_FIELDS"]

SHEETS = (
    "Summary",
    "Candidates",
    "Own vs rent",
    "Points",
    "Assumptions",
    "Statistics",
)  # Statistics: plans with replications

#: Candidates sheet: (header, candidate key or a callable of the row)
CANDIDATE_FIELDS = (
    ("rank", "rank"),
    ("recommended", "recommended"),
    ("id", "id"),
    ("label", "label"),
    ("status", "status"),
    ("reason", "reason"),
    ("gpu", "gpu"),
    ("model", "model"),
    ("weights", lambda r: (r.get("quantization") or {}).get("weights")),
    ("kv_cache", lambda r: (r.get("quantization") or {}).get("kv_cache")),
    ("tensor_parallel", "tensor_parallel"),
    ("policy", "policy"),
    ("replicas", "replicas"),
    ("gpus", "gpus"),
    ("usd_per_hour", "usd_per_hour"),
    ("usd_per_month", "usd_per_month"),
    ("usd_per_1m_output_tokens", "usd_per_1m_output_tokens"),
    ("usd_per_1m_total_tokens", "usd_per_1m_total_tokens"),
    ("p99_ttft_s", "p99_ttft_s"),
    ("p99_tpot_s", "p99_tpot_s"),
    ("attainment_pct", "attainment_pct"),
    ("headroom_pct", "headroom_pct"),
    ("replicas_ci_low", lambda r: (r.get("replicas_interval") or [None, None])[0]),
    ("replicas_ci_high", lambda r: (r.get("replicas_interval") or [None, None])[1]),
    ("headroom_ci_low_pct", lambda r: (r.get("headroom_interval_pct") or [None, None])[0]),
    ("headroom_ci_high_pct", lambda r: (r.get("headroom_interval_pct") or [None, None])[1]),
    ("one_replica_down", lambda r: (r.get("failure") or {}).get("text")),
)


def _cell(v):
    """A value openpyxl accepts: numbers/text/bools; NaN and containers become text or blank."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "item"):  # numpy scalar
        return _cell(v.item())
    return str(v)


def points_frame(inp: ReportInput) -> pd.DataFrame:
    """Every simulated point: points.parquet; else the candidates' load curves; for a
    single run, the run itself as one point."""
    if inp.points is not None:
        return inp.points
    rows = [{"candidate": c.id, **p.model_dump()} for c in inp.candidates for p in (c.load_curve or [])]
    if rows:
        return pd.DataFrame(rows)
    return pd.DataFrame(
        [
            {
                "candidate": c.id,
                "rate_rps": inp.doc.peak_rate_rps,
                "replicas": c.replicas,
                "p99_ttft_s": c.p99_ttft_s,
                "p99_tpot_s": c.p99_tpot_s,
                "attainment_pct": c.attainment_pct,
                "usd_per_month": c.usd_per_month,
                "slo_met": c.status == "ok",
            }
            for c in inp.candidates
        ]
    )


def _header(ws, names) -> None:
    from openpyxl.styles import Font, PatternFill

    ws.append(list(names))
    for cell in ws[ws.max_row]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="E8EDF3")
    ws.freeze_panes = f"A{ws.max_row + 1}"  # ws.cell() would create an empty row


def _widths(ws, cap: int = 60) -> None:
    from openpyxl.utils import get_column_letter

    for i, col in enumerate(ws.iter_cols(values_only=True), start=1):
        width = max((len(str(v)) for v in col if v is not None), default=8)
        ws.column_dimensions[get_column_letter(i)].width = min(max(width + 2, 8), cap)


def _summary_sheet(ws, inp: ReportInput, a: Assumptions) -> None:
    from openpyxl.styles import Alignment, Font

    ws.append([headline(inp)])
    ws["A1"].font = Font(bold=True, size=14)
    for p in summary_paragraphs(inp, a):
        ws.append([p])
        ws.cell(row=ws.max_row, column=1).alignment = Alignment(wrap_text=True, vertical="top")
    ws.append([])
    _header(ws, ["key number", "value"])
    ws.freeze_panes = None
    for k, v in key_numbers(inp):
        ws.append([k, v])
    c = inp.recommended or (inp.candidates[0] if inp.kind == "run" else None)
    rows, forecast = candidate_slo_rows(c) if c else ([], "forecast")
    if rows:
        ws.append([])
        _header(ws, ["class", "metric", "percentile", "target", forecast, "met"])
        ws.freeze_panes = None
        for r in rows:
            ws.append(
                [
                    r["class"],
                    r["metric"],
                    r["percentile"],
                    _cell(r.get("target_s")),
                    _cell(r.get("achieved_s")),
                    bool(r.get("met")),
                ]
            )
    ws.column_dimensions["A"].width = 110
    for col in "BCDEF":
        ws.column_dimensions[col].width = 16


def _candidates_sheet(ws, inp: ReportInput) -> None:
    _header(ws, [h for h, _ in CANDIDATE_FIELDS])
    fmts = {c.key: c.excel for c in CANDIDATE_COLUMNS}
    for r in candidate_rows(inp):
        ws.append([_cell(key(r) if callable(key) else r.get(key)) for _, key in CANDIDATE_FIELDS])
        for cell, (h, _) in zip(ws[ws.max_row], CANDIDATE_FIELDS):
            if h in fmts and fmts[h] != "General":
                cell.number_format = fmts[h]
    _widths(ws)


def _own_rent_sheet(ws, a: Assumptions) -> None:
    r = a.own_vs_rent
    if r is None:
        ws.append(["own vs rent not computed (see the notes on the Assumptions sheet)"])
        return
    ws.append([own_rent_sentence(r)])
    ws.append([])
    _header(ws, ["item", "own (buy), USD", "rent (cloud), USD"])
    ws.freeze_panes = None
    for item, own, rent in own_rent_rows(r):
        ws.append([item, _cell(own), _cell(rent)])
        for cell in ws[ws.max_row][1:]:
            cell.number_format = "$#,##0.000" if "1M" in item else "$#,##0"
    ws.append([])
    _header(ws, ["assumption", "value", "source"])
    ws.freeze_panes = None
    for row in own_rent_assumptions(r):
        ws.append(list(row))
    ws.append([])
    _header(ws, ["result", "value"])
    ws.freeze_panes = None
    for k in ("cheaper", "saving_usd_per_month", "saving_pct", "breakeven_months", "own_power_kw"):
        ws.append([k, _cell(getattr(r, k))])
    ws.column_dimensions["A"].width = 48
    for col in "BC":
        ws.column_dimensions[col].width = 22


def _points_sheet(ws, inp: ReportInput) -> None:
    df = points_frame(inp)
    _header(ws, [str(c) for c in df.columns])
    for row in df.itertuples(index=False, name=None):
        ws.append([_cell(v) for v in row])
    _widths(ws, cap=30)


def _assumptions_sheet(ws, a: Assumptions) -> None:
    _header(ws, ["kind", "name", "field", "value", "source"])
    for r in a.catalog:
        ws.append([r.kind, r.name, r.field, _cell(r.value), r.source])
    ws.append([])
    ws.append(["calibration", "pool", "calibrated", "note", "coefficients source"])
    for p in a.profiles:
        ws.append(["profile", p.pool, p.calibrated, p.note, p.source])
        for k, v in flatten(p.validation or {}):
            ws.append(["validation", p.pool, k, _cell(v), ""])
    for n in a.notes:
        ws.append(["note", "", "", n, ""])
    _widths(ws, cap=80)


def _statistics_sheet(ws, inp: ReportInput) -> None:
    """The recommended fleet's SLO items over the replications, then hour by hour."""
    _header(
        ws,
        [
            "class",
            "metric",
            "percentile",
            "target",
            "mean",
            "ci_low",
            "ci_high",
            "verdict",
            "samples_min_per_replication",
            "samples_total",
        ],
    )
    for r in slo_interval_rows(inp.recommended) if inp.recommended is not None else []:
        it = r["raw"]
        ws.append(
            [
                _cell(x)
                for x in (
                    it.class_,
                    it.metric,
                    it.percentile,
                    it.target,
                    it.mean,
                    it.ci_low,
                    it.ci_high,
                    it.verdict,
                    it.samples_min,
                    it.samples_total,
                )
            ]
        )
    rows = timeline_rows(inp.doc)
    if rows:
        ws.append([])
        ws.append(["bin", "from_s", "to_s", "requests", "attainment_pct", "p99_ttft_s", "in_window"])
        for r in rows:
            ws.append(
                [
                    _cell(r[k])
                    for k in ("label", "from_s", "to_s", "requests", "attainment_pct", "p99_ttft_s", "in_window")
                ]
            )
    _widths(ws, cap=30)


def render_xlsx(inp: ReportInput, a: Assumptions) -> bytes:
    """The workbook as bytes (the caller writes it atomically)."""
    try:
        from openpyxl import Workbook
    except ImportError:
        raise FleetcastError(
            "the xlsx format needs openpyxl: pip install 'fleetcast[report]' (or leave xlsx out of --format)"
        ) from None
    wb = Workbook()
    ws = wb.active
    ws.title = SHEETS[0]
    _summary_sheet(ws, inp, a)
    _candidates_sheet(wb.create_sheet(SHEETS[1]), inp)
    _own_rent_sheet(wb.create_sheet(SHEETS[2]), a)
    _points_sheet(wb.create_sheet(SHEETS[3]), inp)
    _assumptions_sheet(wb.create_sheet(SHEETS[4]), a)
    if inp.kind == "plan" and inp.doc.statistics:
        _statistics_sheet(wb.create_sheet(SHEETS[5]), inp)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
