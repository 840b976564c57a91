"""The terminal's power lines of a run (``summary.json`` ``power``)."""

from __future__ import annotations

from sim.analysis.contracts.summary import Power

__all__ = ["power_lines", "candidate_power_text"]


def candidate_power_text(rec: dict) -> str | None:
    """A plan candidate's power with the 95% intervals over its replications (``plan.json``
    ``candidates[].power``, its summary's ``power``), and its owned total when ranked by it."""
    p = ((rec.get("summary") or {}).get("power")) or {}
    iv = ((rec.get("power") or {}).get("intervals")) or {}
    if not p:
        return None

    def show(key: str, f: str) -> str:
        x, lo_hi = p.get(key), iv.get(key) or [None, None]
        if x is None:
            return "-"
        out = format(x, f)
        return out + (f" ({format(lo_hi[0], f)}-{format(lo_hi[1], f)})" if None not in lo_hi else "")

    text = (
        f"power: per server {show('server_avg_kw', ',.2f')} kW mean, {show('server_peak_kw', ',.2f')} kW peak; "
        f"{show('mwh_per_month', ',.2f')} MWh and ${show('energy_usd_per_month', ',.0f')} electricity a month; "
        f"{show('kwh_per_1m_output_tokens', ',.3f')} kWh (${show('energy_usd_per_1m_output_tokens', ',.4f')}) per 1M "
        f"output tokens" + (" (95% intervals over the replications)" if iv else "")
    )
    if rec.get("total_usd_per_month") is not None:
        text += (
            f"; owned: ${rec['total_usd_per_month']:,.0f}/month in all, ${rec['energy_usd_per_month']:,.0f} of it "
            "electricity (the ranking's cost, plan.rank_by own)"
        )
    return text


def power_lines(p: Power | None) -> list[tuple[str, str]]:
    """(label, text) lines: GPU, server and facility power, racks, energy per month and carbon."""
    if p is None:
        return []
    per_server = (
        f"; per server {p.server_avg_kw:,.2f} kW mean, {p.server_peak_kw:,.2f} kW peak ({p.servers} servers)"
        if p.server_avg_kw is not None and p.server_peak_kw is not None
        else ""
    )
    lines = [
        (
            "power",
            f"GPUs {p.gpu_avg_kw:,.2f} kW mean (ML.ENERGY-fitted curve){per_server}; facility "
            f"{p.facility_avg_kw:,.2f} kW mean, {p.facility_peak_kw:,.2f} kW peak at PUE {p.pue:g}",
        )
    ]
    if p.servers_per_rack is not None:
        if p.racks_needed is None:
            lines.append(("racks", f"one server at peak ({p.server_peak_kw or 0:,.2f} kW) exceeds a rack's budget"))
        else:
            lines.append(
                (
                    "racks",
                    f"{p.servers_per_rack} servers per rack at peak -> {p.racks_needed} racks, "
                    f"{p.rack_peak_kw or 0:,.2f} kW per full rack",
                )
            )
    per_1m = (
        f"; {p.kwh_per_1m_output_tokens:,.3f} kWh (${p.energy_usd_per_1m_output_tokens:,.4f}) per 1M output tokens"
        if p.kwh_per_1m_output_tokens is not None and p.energy_usd_per_1m_output_tokens is not None
        else ""
    )
    lines.append(
        (
            "energy/month",
            f"{p.mwh_per_month:,.2f} MWh, ${p.energy_usd_per_month:,.0f} at ${p.usd_per_kwh:g}/kWh{per_1m}",
        )
    )
    g1m = f", {p.g_co2_per_1m_output_tokens:,.0f} g per 1M output tokens" if p.g_co2_per_1m_output_tokens else ""
    lines.append(("carbon", f"{p.t_co2_per_month:,.2f} t CO2/month at {p.grid_g_co2_per_kwh:g} g/kWh{g1m}"))
    return lines
