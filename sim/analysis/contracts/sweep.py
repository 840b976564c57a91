"""One row of ``sweep.parquet`` (``sim.analysis.sweep.evaluate_point``).

Besides the keys below, a row has one column per ``--grid`` key (the point's value, named
as the key) and, for an ok point, four per traffic class: ``<class>.slo_met``,
``<class>.attainment_pct``, ``<class>.p99_ttft_s`` and ``<class>.p99_tpot_s``. Those
open columns are kept aside (``SweepPoint.split``) so the fixed ones stay strict."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field

from sim.analysis.contracts.base import Contract, Number

__all__ = ["SweepPoint", "CLASS_COLUMNS"]

#: the per-class columns of an ok point, after ``<class>.``
CLASS_COLUMNS = ("slo_met", "attainment_pct", "p99_ttft_s", "p99_tpot_s")


class SweepPoint(Contract):
    """One grid point: its key, status and (when ok) its key metrics, flat. Besides these
    columns: one per ``--grid`` key (the point's value) and, for an ok point,
    ``<class>.slo_met``, ``<class>.attainment_pct``, ``<class>.p99_ttft_s`` and
    ``<class>.p99_tpot_s`` per traffic class. The table has no ``schema_version``."""

    point_key: str = Field(description="hash of the base scenario and the point's values")
    status: str = Field(description="ok, invalid (a user error: error says why) or failed (retried by a re-run)")
    error: str | None = Field(description="why not ok")
    slo_met: bool | None = Field(default=None, description="every class's SLO met")
    attainment_pct: float | None = Field(default=None, description="SLO attainment, all window requests, %")
    requests: int | None = Field(default=None, description="window requests")
    requests_ok: int | None = Field(default=None, description="of them served")
    p50_ttft_s: float | None = Field(default=None, description="overall p50 TTFT, s")
    p90_ttft_s: float | None = Field(default=None, description="overall p90 TTFT, s")
    p99_ttft_s: float | None = Field(default=None, description="overall p99 TTFT, s")
    p50_tpot_s: float | None = Field(default=None, description="overall p50 TPOT, s")
    p90_tpot_s: float | None = Field(default=None, description="overall p90 TPOT, s")
    p99_tpot_s: float | None = Field(default=None, description="overall p99 TPOT, s")
    p50_e2e_s: float | None = Field(default=None, description="overall p50 end-to-end latency, s")
    p90_e2e_s: float | None = Field(default=None, description="overall p90 end-to-end latency, s")
    p99_e2e_s: float | None = Field(default=None, description="overall p99 end-to-end latency, s")
    requests_per_s: float | None = Field(default=None, description="ok requests per second")
    output_tokens_per_s: float | None = Field(default=None, description="ok output tokens per second")
    goodput_rps: float | None = Field(default=None, description="requests meeting their SLO per second")
    busy_frac: float | None = Field(default=None, description="fleet busy fraction")
    kv_usage: float | None = Field(default=None, description="fleet mean KV use")
    mfu: float | None = Field(default=None, description="fleet MFU")
    mbu: float | None = Field(default=None, description="fleet MBU")
    fleet_usd_per_hour: Number | None = Field(default=None, description="fleet rent per hour, USD")
    usd_per_month: Number | None = Field(default=None, description="fleet rent per month, USD")
    usd_per_1m_output_tokens: float | None = Field(default=None, description="USD per million output tokens")
    usd_per_1m_total_tokens: float | None = Field(default=None, description="USD per million prompt + output tokens")
    wall_s: float | None = Field(default=None, description="seconds the point took")

    @classmethod
    def split(cls, row: dict[str, Any], grid_keys: Iterable[str]) -> tuple[SweepPoint, dict[str, Any]]:
        """(the fixed columns validated, the open ones: grid values and per-class columns)."""
        grid = set(grid_keys)
        open_cols = {k: v for k, v in row.items() if k in grid or "." in k}
        fixed = {k: v for k, v in row.items() if k not in open_cols}
        return cls.model_validate(fixed), open_cols
