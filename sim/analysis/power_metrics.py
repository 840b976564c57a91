"""Power of one run: GPUs (``sim.perf.power``), servers, racks, the facility, energy cost and carbon.

Energy over the measured window is exact from the replicas' step sums (``ReplicaStats``). The power
*profile* (24 equal bins of the window, for the peak and the day's figure) spreads each pool's
stepping time over the bins by the share of time-series samples whose engine was stepping, and its
FLOP/byte energy by the share of tokens processed (prompt tokens at the first token, output tokens
evenly between first token and finish); the bins sum to the exact energy, except that a bin is capped
at the GPUs' TDP, or their power limit (``fleet[].power_limit_w``), as the mean is.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from sim.analysis.metrics import HOURS_PER_MONTH
from sim.engine.result import SimResult
from sim.perf.power import energy_j, gpu_curve, host_power
from sim.perf.power_cap import board_limit_w
from sim.scenario.spec import Scenario

__all__ = ["PROFILE_BINS", "power_summary", "rack_fit"]

PROFILE_BINS = 24


def _token_share(result: SimResult, edges: np.ndarray, pool: str) -> np.ndarray:
    """Share of the pool's tokens processed in each bin (see the module docstring)."""
    req = result.requests
    mine = req["replica"].astype(str).str.startswith(f"{pool}/").to_numpy()
    a = req["first_token_s"].to_numpy(dtype=float)[mine]
    b = req["finish_s"].to_numpy(dtype=float)[mine]
    out = req["output_tokens"].to_numpy(dtype=float)[mine]
    prompt = (req["prompt_tokens"] - req["cached_prompt_tokens"]).to_numpy(dtype=float)[mine]
    ok = np.isfinite(a)
    a, out, prompt = a[ok], out[ok], prompt[ok]
    b = np.where(np.isfinite(b[ok]), b[ok], a)
    mass = np.histogram(a, bins=edges, weights=prompt)[0]
    span = np.maximum(b - a, 1e-12)
    cum = np.array([float((out * np.clip((e - a) / span, 0.0, 1.0)).sum()) for e in edges])
    mass = mass + np.diff(cum)
    total = mass.sum()
    return mass / total if total > 0 else np.full(len(edges) - 1, 1.0 / (len(edges) - 1))


def _busy_share(result: SimResult, edges: np.ndarray, pool: str) -> np.ndarray:
    ts = result.timeseries
    mine = ts["replica"].astype(str).str.startswith(f"{pool}/").to_numpy()
    t = ts["t_s"].to_numpy(dtype=float)[mine]
    stepping = (ts["batch_tokens"].to_numpy()[mine] > 0).astype(float)
    mass = np.histogram(t, bins=edges, weights=stepping)[0]
    total = mass.sum()
    return mass / total if total > 0 else np.full(len(edges) - 1, 1.0 / (len(edges) - 1))


def rack_fit(server_peak_kw: float, servers: int, rack_kw: float | None, racks: int | None) -> dict:
    """Servers per rack at peak power, racks needed, kW per rack."""
    if rack_kw is None or server_peak_kw <= 0:
        return {"servers_per_rack": None, "racks_needed": None, "rack_peak_kw": None}
    per_rack = int(math.floor(rack_kw / server_peak_kw + 1e-9))
    if per_rack < 1:
        return {"servers_per_rack": 0, "racks_needed": None, "rack_peak_kw": None}
    return {
        "servers_per_rack": per_rack,
        "racks_needed": int(math.ceil(servers / per_rack)),
        "rack_peak_kw": min(per_rack, servers) * server_peak_kw,
    }


def power_summary(scenario: Scenario, result: SimResult, out_tokens_per_s: float | None) -> dict:
    """The ``power`` block of ``summary.json``."""
    catalog = scenario.load_catalog()
    w0, w1 = (float(x) for x in result.window)
    length = max(w1 - w0, 0.0)
    edges = np.linspace(w0, w1, PROFILE_BINS + 1) if length > 0 else np.array([w0, w0 + 1.0])
    bin_s = float(edges[1] - edges[0])
    plan_power = scenario.plan.power if scenario.plan is not None else None
    pue = plan_power.pue if plan_power is not None and plan_power.pue is not None else scenario.pricing.own.pue
    gpu_w_bins = np.zeros(len(edges) - 1)
    pools, servers_total, host_w_total, gpu_j_total = {}, 0, 0.0, 0.0
    for pool in scenario.fleet:
        gpu = catalog.gpu(pool.gpu)
        curve = gpu_curve(pool.gpu, gpu.architecture, float(gpu.power_w), pool.gpus_per_replica)
        if pool.power_limit_w is not None:  # nvidia-smi -pl: the board's mean never above its limit
            curve = replace(curve, tdp_w=board_limit_w(pool.power_limit_w, float(gpu.power_w)))
        host = host_power(pool.gpu, float(gpu.power_w), gpu.gpus_per_node)
        reps = [r for r in result.replicas if r.pool == pool.name]
        n = pool.gpus_per_replica
        busy = dyn = idle = 0.0
        for r in reps:
            held = length if r.billed_s is None else min(r.billed_s, length)
            per_gpu_peak = r.peak_flops / max(r.tp, 1)
            per_gpu_bw = r.hbm_bw_bytes_s / max(r.tp, 1)
            total = energy_j(curve, n, held, r.busy_s, r.flops, r.bytes, per_gpu_peak, per_gpu_bw)
            b = min(max(r.busy_s, 0.0), held)
            busy += n * curve.active_w * b
            idle += n * curve.idle_w * (held - b)
            dyn += total - n * curve.active_w * b - n * curve.idle_w * (held - b)
        joules = busy + idle + dyn
        gpu_j_total += joules
        if length > 0 and joules > 0:
            busy_bins = busy * _busy_share(result, edges, pool.name)
            dyn_bins = dyn * _token_share(result, edges, pool.name)
            idle_bins = np.full(len(edges) - 1, idle / (len(edges) - 1))
            # a bin never above the boards' limit (energy_j caps the mean likewise)
            cap_w = len(reps) * n * curve.tdp_w
            gpu_w_bins += np.minimum((busy_bins + dyn_bins + idle_bins) / bin_s, cap_w)
        gpus = len(reps) * n
        servers = int(math.ceil(gpus / host.gpus_per_server)) if gpus else 0
        servers_total += servers
        host_w_total += servers * host.host_w
        pools[pool.name] = {
            "gpu": pool.gpu,
            "gpus": gpus,
            "servers": servers,
            "gpu_avg_w_per_gpu": joules / length / gpus if length > 0 and gpus else None,
            "gpu_curve": {
                "idle_w": curve.idle_w,
                "active_w": curve.active_w,
                "w_per_mfu": curve.w_per_mfu,
                "w_per_mbu": curve.w_per_mbu,
                "basis": curve.basis,
            },
            "host_w_per_server": host.host_w,
            "host_basis": host.basis,
        }
        if pool.power_limit_w is not None:
            pools[pool.name]["power_limit_w"] = float(pool.power_limit_w)
    gpu_avg_kw = gpu_j_total / length / 1000.0 if length > 0 else 0.0
    it_avg_kw = gpu_avg_kw + host_w_total / 1000.0
    it_bins_kw = gpu_w_bins / 1000.0 + host_w_total / 1000.0
    it_peak_kw = float(it_bins_kw.max()) if length > 0 else it_avg_kw
    fac_avg_kw = it_avg_kw * pue
    server_avg = it_avg_kw / servers_total if servers_total else None
    server_peak = it_peak_kw / servers_total if servers_total else None
    fit = rack_fit(
        server_peak or 0.0,
        servers_total,
        plan_power.rack_kw if plan_power else None,
        plan_power.racks if plan_power else None,
    )
    mwh_month = fac_avg_kw * HOURS_PER_MONTH / 1000.0
    usd_kwh = scenario.pricing.own.usd_per_kwh
    g_kwh = scenario.pricing.grid_g_co2_per_kwh
    kwh_per_1m = fac_avg_kw * 1e6 / (out_tokens_per_s * 3600.0) if out_tokens_per_s else None
    return {
        "gpu_avg_kw": gpu_avg_kw,
        "it_avg_kw": it_avg_kw,
        "it_peak_kw": it_peak_kw,
        "facility_avg_kw": fac_avg_kw,
        "facility_peak_kw": it_peak_kw * pue,
        "pue": pue,
        "servers": servers_total,
        "server_avg_kw": server_avg,
        "server_peak_kw": server_peak,
        **fit,
        "mwh_per_month": mwh_month,
        "energy_usd_per_month": mwh_month * 1000.0 * usd_kwh,
        "usd_per_kwh": usd_kwh,
        "kwh_per_1m_output_tokens": kwh_per_1m,
        "energy_usd_per_1m_output_tokens": kwh_per_1m * usd_kwh if kwh_per_1m is not None else None,
        "grid_g_co2_per_kwh": g_kwh,
        "t_co2_per_month": mwh_month * g_kwh / 1000.0,
        "g_co2_per_1m_output_tokens": kwh_per_1m * g_kwh if kwh_per_1m is not None else None,
        "profile_kw": [float(x) * pue for x in it_bins_kw] if length > 0 else [],
        "profile_bin_s": bin_s if length > 0 else None,
        "pools": pools,
        "note": "GPU power from the ML.ENERGY-fitted curve (sim.perf.power) over the window's engine steps; host "
        "per server from DGX datasheets or assumptions (pools.*.host_basis); facility = IT x PUE; peak = the "
        "highest of 24 equal bins of the window; profile_kw = facility kW per bin",
    }
