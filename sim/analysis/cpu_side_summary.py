"""``summary.json`` ``cpu_side``: how much of the step time is vLLM's CPU work, and how busy
each server's API-server process was (``sim.perf.cpu_side``, ``sim.engine.front_end``).

A pool's front end is *the bottleneck* when its busiest API server was busy at least
``FRONT_END_BOUND_UTILIZATION`` of the window and more than that replica's engine was
stepping: requests then wait for the front end, not for the GPU.
"""

from __future__ import annotations

from sim.engine.result import SimResult

__all__ = ["FRONT_END_BOUND_UTILIZATION", "cpu_side_summary", "front_end_warnings"]

FRONT_END_BOUND_UTILIZATION = 0.8
"""Front-end utilization from which a front end busier than its engine is reported as the bottleneck."""


def cpu_side_summary(result: SimResult) -> dict:
    """Pool name -> its CPU-side figures over the measured window."""
    length_s = result.window[1] - result.window[0]
    out: dict[str, dict] = {}
    for pm in result.pools:
        reps = [r for r in result.replicas if r.pool == pm.name]
        busy = sum(r.busy_s for r in reps)
        fe = [r.front_end_busy_s / length_s if length_s > 0 else 0.0 for r in reps]
        bound = [
            r.name
            for r, u in zip(reps, fe)
            if u >= FRONT_END_BOUND_UTILIZATION and length_s > 0 and u > r.busy_s / length_s
        ]
        out[pm.name] = {
            "cpu_share_of_step_time": sum(r.cpu_s for r in reps) / busy if busy > 0 else None,
            "async_scheduling": bool(pm.perf.cpu_overlap),
            "front_end_utilization": sum(fe) / len(fe) if fe else None,
            "front_end_utilization_max": max(fe) if fe else None,
            "front_end_bound_replicas": bound,
            "source": pm.cpu.source,
        }
    return out


def front_end_warnings(block: dict) -> list[str]:
    """One line per pool whose API-server front end, not the GPU, set the pace."""
    out = []
    for name, p in block.items():
        if p["front_end_bound_replicas"]:
            out.append(
                f"pool '{name}': the API-server front end, not the GPU, is the bottleneck "
                f"({len(p['front_end_bound_replicas'])} replica(s) with the front end busy "
                f"{100 * p['front_end_utilization_max']:.0f}% of the window at most, more than their engine): "
                f"tokenizing, admitting and streaming requests takes longer than the steps; more replicas "
                f"(or vLLM's --api-server-count) would help where a faster GPU would not"
            )
    return out
