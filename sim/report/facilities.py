"""The report's facilities section: power per server and rack, racks per candidate, energy and
carbon, and the power over the simulated window against the budget (``summary.json`` ``power``,
``plan.json`` ``candidates[].power``, the scenario's ``plan.power``)."""

from __future__ import annotations

from matplotlib.figure import Figure

from sim.analysis.contracts.summary import Power
from sim.report import fmt
from sim.report.load import ReportInput

__all__ = ["FACILITY_HEADERS", "facility_rows", "facility_sentences", "power_profile"]

FACILITY_HEADERS = [
    "candidate",
    "status",
    "servers × peak kW",
    "racks (servers each)",
    "kW per rack",
    "site kW at peak",
    "MWh / month",
    "electricity $ / 1M out tok (share of rent)",
]


_STATUS = {"ok": "ok", "cannot-meet-slo": "misses SLO", "does-not-fit": "does not fit"}


def _budget(inp: ReportInput) -> dict:
    return ((inp.scenario.get("plan") or {}).get("power")) or {}


def _kw(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def facility_rows(inp: ReportInput) -> list[tuple[str, list[str]]]:
    """(candidate id, the other cells as plain text) per candidate whose fleet was simulated."""
    rows = []
    for c in inp.candidates:
        p: Power | None = c.summary.power if c.summary is not None else None
        if p is None:
            continue
        cp = c.power
        per_rack = cp.servers_per_rack if cp is not None else p.servers_per_rack
        racks = cp.racks_needed if cp is not None else p.racks_needed
        rack_kw = cp.rack_peak_kw if cp is not None else p.rack_peak_kw
        site = cp.facility_peak_kw if cp is not None else p.facility_peak_kw
        e1m = p.energy_usd_per_1m_output_tokens
        rent1m = c.usd_per_1m_output_tokens
        share = f" ({fmt.pct(100 * e1m / rent1m, 1)})" if e1m is not None and rent1m else ""
        rows.append(
            (
                c.id,
                [
                    _STATUS.get(c.status, c.status) + (f" ({c.limiting})" if c.limiting else ""),
                    f"{p.servers} × {_kw(p.server_peak_kw, 2)}",
                    "-" if racks is None else f"{racks} ({per_rack})",
                    _kw(rack_kw),
                    _kw(site),
                    _kw(p.mwh_per_month, 2),
                    ("-" if e1m is None else fmt.usd_small(e1m)) + share,
                ],
            )
        )
    return rows


def _shown(inp: ReportInput) -> Power | None:
    """The power block of the recommended (or only) run."""
    if inp.run is not None and inp.run.summary.power is not None:
        return inp.run.summary.power
    rec = inp.recommended
    return rec.summary.power if rec is not None and rec.summary is not None else None


def facility_sentences(inp: ReportInput) -> list[str]:
    p = _shown(inp)
    out = []
    if p is not None:
        which = "The recommended fleet" if inp.kind == "plan" else "The simulated fleet"
        out.append(
            f"{which} draws {p.it_avg_kw:,.1f} kW of IT power on average ({p.gpu_avg_kw:,.1f} kW of it GPUs) and "
            f"{p.it_peak_kw:,.1f} kW at its peak, {p.facility_avg_kw:,.1f} kW / {p.facility_peak_kw:,.1f} kW at the "
            f"site with PUE {p.pue:g}: {p.mwh_per_month:,.1f} MWh and {fmt.usd(p.energy_usd_per_month)} of "
            f"electricity a month at ${p.usd_per_kwh:g}/kWh."
        )
        if p.g_co2_per_1m_output_tokens is not None:
            out.append(
                f"Carbon: {p.t_co2_per_month:,.2f} t CO2 a month, {p.g_co2_per_1m_output_tokens:,.0f} g per million "
                f"output tokens, at {p.grid_g_co2_per_kwh:g} g CO2/kWh (pricing.grid_g_co2_per_kwh)."
            )
    budget = _budget(inp)
    if budget:
        parts = [f"{k} {v:g}" for k, v in budget.items() if isinstance(v, (int, float)) and v is not None]
        rejected = [c for c in inp.candidates if c.limiting == "power"]
        out.append(
            f"Power budget (plan.power): {', '.join(parts)}. "
            + (
                "Rejected for power: " + "; ".join(f"{c.id}: {c.reason}" for c in rejected) + "."
                if rejected
                else "Every candidate that met its SLO fits it."
            )
        )
    out.append(
        "What power capping would buy is not shown: fleetcast does not model GPU power limits yet "
        "(fleet[].power_limit_w), so every GPU runs at its TDP limit."
    )
    return out


def power_profile(inp: ReportInput) -> Figure | None:
    """Facility kW over the measured window (24 bins) against the budget lines; None without data."""
    p = _shown(inp)
    if p is None or not p.profile_kw or not p.profile_bin_s:
        return None
    w = inp.run.summary.window if inp.run is not None else None
    start = w.start_s if w is not None else 0.0
    n = len(p.profile_kw)
    t = [start + i * p.profile_bin_s for i in range(n + 1)]
    fig = Figure(figsize=(10, 3.2), layout="constrained")
    ax = fig.subplots()
    ax.stairs(p.profile_kw, t, color="#1f5fa8", lw=1.4, label="facility power (IT x PUE)")
    ax.axhline(p.facility_avg_kw, color="#5a5a5a", lw=0.8, ls="--", label=f"mean {p.facility_avg_kw:,.1f} kW")
    budget = _budget(inp)
    top = max(p.profile_kw)
    if budget.get("site_kw"):
        ax.axhline(budget["site_kw"], color="#b8322f", lw=1.2, label=f"site budget {budget['site_kw']:g} kW")
        top = max(top, budget["site_kw"])
    if budget.get("rack_kw") and budget.get("racks"):
        racks_kw = budget["rack_kw"] * budget["racks"] * p.pue
        ax.axhline(racks_kw, color="#d9741c", lw=1.2, label=f"racks x rack_kw x PUE = {racks_kw:,.1f} kW")
        top = max(top, racks_kw)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel("kW")
    ax.set_title("Power over the measured window against the budget")
    ax.legend(loc="lower right", ncols=3)
    return fig
