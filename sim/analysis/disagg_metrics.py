"""What a disaggregated run adds to its summary: the KV transfer and the two pools.

``summary.json`` ``disaggregated`` (present only when some pool has role prefill or
decode): the link and overlap, each role's pools, replicas and GPUs (and the prefill:decode
GPU ratio), each role's utilization over the window (busy fraction, MFU, MBU, KV use, as
``summarize`` defines them per pool), and the KV-transfer seconds the window's ok requests
waited for (percentiles; they are part of TTFT).
"""

from __future__ import annotations

from math import gcd

import numpy as np

from sim.analysis.metrics import percentiles
from sim.engine.result import SimResult
from sim.scenario.disagg_spec import is_disaggregated
from sim.scenario.spec import Scenario

__all__ = ["disagg_summary"]


def _ratio(a: int, b: int) -> str:
    g = gcd(a, b) or 1
    return f"{a // g}:{b // g}"


def _role_utilization(reps: list, length_s: float) -> dict:
    def div(a, b):
        return float(a / b) if b > 0 else None

    return {
        "replicas": len(reps),
        "busy_frac": div(sum(r.busy_s for r in reps), len(reps) * length_s),
        "mfu": div(sum(r.flops for r in reps), sum(r.peak_flops for r in reps) * length_s),
        "mbu": div(sum(r.bytes for r in reps), sum(r.hbm_bw_bytes_s for r in reps) * length_s),
        "kv_usage": div(sum(r.kv_block_s for r in reps), sum(r.kv_blocks_total for r in reps) * length_s),
    }


def disagg_summary(scenario: Scenario, result: SimResult) -> dict | None:
    """The ``disaggregated`` block of a run's summary; None for a co-located fleet."""
    if not is_disaggregated(scenario.fleet):
        return None
    link = scenario.load_catalog().link(scenario.kv_transfer.link)  # type: ignore[union-attr]  # disaggregated: kv_transfer is set (Scenario validator)
    start_s, end_s = (float(x) for x in result.window)
    length_s = max(end_s - start_s, 0.0)
    roles: dict[str, dict] = {}
    for role in ("prefill", "decode"):
        pools = [p for p in scenario.fleet if p.role == role]
        names = {p.name for p in pools}
        roles[role] = {
            "pools": sorted(names),
            "replicas": sum(p.replicas * p.data_parallel for p in pools),
            "gpus": sum(p.replicas * p.gpus_per_replica for p in pools),
            "utilization": _role_utilization([r for r in result.replicas if r.pool in names], length_s),
        }
    df = result.requests
    arr = df["arrival_s"].to_numpy(dtype=float)
    ok = (df["status"].astype(str).to_numpy() == "ok") & (arr >= start_s) & (arr < end_s)
    transfer = df["kv_transfer_s"].to_numpy(dtype=float)[ok]
    return {
        "link": link.name,
        "link_bandwidth_bytes_s": link.bandwidth_bytes_s,
        "link_latency_s": link.latency_s,
        "overlap": scenario.kv_transfer.overlap,  # type: ignore[union-attr]  # as above
        "prefill": roles["prefill"],
        "decode": roles["decode"],
        "gpu_ratio": _ratio(roles["prefill"]["gpus"], roles["decode"]["gpus"]),
        "kv_transfer_s": percentiles(transfer[np.isfinite(transfer)]),
        "note": "kv_transfer_s: seconds each ok window request waited for its KV cache to reach the decode "
        "replica after its prefill (bytes per link / bandwidth + latency; with overlap layerwise only "
        "the part the prefill did not hide); it is part of TTFT",
    }
