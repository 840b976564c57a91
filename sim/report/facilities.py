"""The report's facilities section: power per server and rack, racks per candidate, energy and
carbon, and the power over the simulated window against the budget (``summary.json`` ``power``,
``plan.json`` ``candidates[].power``, the scenario's ``plan.power``)."""

from __future__ import annotations

from matplotlib.figure import Figure

from sim.analysis.contracts.summary import Power
from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.perf.power_cap import clock_ratio
from sim.report import fmt
from sim.report.load import ReportInput

__all__ = ["FACILITY_HEADERS", "facility_rows", "facility_sentences", "capping_sentences", "power_profile"]

FACILITY_HEADERS = [
    "candidate",
    "status",
    "servers × peak kW",
    "racks (servers each)",
    "kW per rack",
    "site kW at peak",
    "MWh / month (95% CI)",
    "electricity $ / 1M out tok (95% CI; share of rent)",
]


_STATUS = {"ok": "ok", "cannot-meet-slo": "misses SLO", "does-not-fit": "does not fit"}


def _budget(inp: ReportInput) -> dict:
    return ((inp.scenario.get("plan") or {}).get("power")) or {}


def _kw(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _iv(cp, key: str, show) -> str:
    """' (low-high)': the 95% interval of a power figure over the plan's replications ('' without)."""
    iv = (cp.intervals or {}).get(key) if cp is not None else None
    if not iv or iv[0] is None or iv[1] is None:
        return ""
    return f" ({show(iv[0])} to {show(iv[1])})"  # spaced: a narrow page may wrap it


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
                    _kw(p.mwh_per_month, 2) + _iv(cp, "mwh_per_month", lambda x: f"{x:,.2f}"),
                    ("-" if e1m is None else fmt.usd_small(e1m))
                    + _iv(cp, "energy_usd_per_1m_output_tokens", fmt.usd_small)
                    + share,
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
        rec = inp.recommended if inp.kind == "plan" else None
        iv = (rec.power.intervals or {}) if rec is not None and rec.power is not None else {}
        if iv:
            shown = [
                ("server_avg_kw", "kW per server on average", "{:,.2f}"),
                ("server_peak_kw", "kW per server at peak", "{:,.2f}"),
                ("mwh_per_month", "MWh a month", "{:,.2f}"),
                ("energy_usd_per_month", "of electricity a month", "${:,.0f}"),
                ("kwh_per_1m_output_tokens", "kWh per million output tokens", "{:,.3f}"),
            ]
            parts = [
                f"{f.format(iv[k][0])}-{f.format(iv[k][1])} {what}"
                for k, what, f in shown
                if iv.get(k) and None not in iv[k]
            ]
            if parts:
                out.append(
                    "Over the plan's replications of the recommended fleet (95% intervals): " + "; ".join(parts) + "."
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
    out += capping_sentences(inp)
    ranking = getattr(inp.doc, "ranking", None)
    if ranking:
        out.append(f"Ranking: {ranking}.")
    return out


def _same_but_limit(c) -> tuple:
    return (c.gpu, c.model, str(c.quantization), c.tensor_parallel, c.policy, str(c.engine), c.prefill_decode)


def capping_sentences(inp: ReportInput) -> list[str]:
    """What power capping buys: per candidate searched at several power limits (plan.candidates.
    power_limit_w), the capped fleet against the uncapped one; else what the clock law says a cap
    would cost the shown fleet's GPUs."""
    out = []
    groups: dict[tuple, list] = {}
    for c in inp.candidates:
        groups.setdefault(_same_but_limit(c), []).append(c)
    for cands in groups.values():
        base = next((c for c in cands if c.power_limit_w is None), None)
        if base is None or len(cands) < 2:
            continue
        for c in (c for c in cands if c.power_limit_w is not None):
            out.append(_cap_vs_base(c, base))
    if out:
        return out
    p = _shown(inp)
    if p is None:
        return []
    gpus = sorted({pool.gpu for pool in p.pools.values() if pool.power_limit_w is None})
    for gpu in gpus:
        tdp = _tdp_w(gpu)
        if not tdp:
            continue
        caps = [0.8 * tdp, 0.6 * tdp]
        out.append(
            f"Power capping (not searched): a {gpu} limited to "
            + " or ".join(f"{x:,.0f} W ({x / tdp:.0%})" for x in caps)
            + " runs its compute-bound work (prefill, large batches) at "
            + " or ".join(f"{clock_ratio(x, tdp):.0%}" for x in caps)
            + " of its clock (sim.perf.power_cap), memory-bound decode at full speed, and draws at most the limit; "
            "list limits in plan.candidates.power_limit_w to see the fleet, racks and cost each gives."
        )
    return out


def _tdp_w(gpu: str) -> float | None:
    """The built-in catalog's TDP of ``gpu`` (None: not a built-in GPU)."""
    try:
        return float(load_catalog([]).gpu(gpu).power_w)
    except (FleetcastError, KeyError, LookupError):
        return None


def _cap_vs_base(c, base) -> str:
    def peak(x):
        return x.power.server_peak_kw if x.power is not None else None

    def per_rack(x):
        return x.power.servers_per_rack if x.power is not None else None

    cp, bp = peak(c), peak(base)
    parts = [f"{c.id} (GPUs limited to {c.power_limit_w:g} W) against {base.id}:"]
    if cp is not None and bp is not None:
        parts.append(f"server peak {bp:,.2f} -> {cp:,.2f} kW")
        if per_rack(c) is not None and per_rack(base) is not None:
            parts.append(f"servers per rack {per_rack(base)} -> {per_rack(c)}")
    if c.replicas is not None and base.replicas is not None:
        parts.append(f"replicas {base.replicas} -> {c.replicas}")
    if c.usd_per_1m_output_tokens is not None and base.usd_per_1m_output_tokens is not None:
        parts.append(f"$ per 1M output tokens {base.usd_per_1m_output_tokens:.3f} -> {c.usd_per_1m_output_tokens:.3f}")
    verdict = {
        ("ok", "does-not-fit"): "the cap makes it fit the power budget",
        ("does-not-fit", "ok"): "the cap does not make it fit",
    }.get((c.status, base.status), f"{_STATUS.get(c.status, c.status)} vs {_STATUS.get(base.status, base.status)}")
    return parts[0] + " " + ", ".join(parts[1:]) + f"; {verdict}."


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
