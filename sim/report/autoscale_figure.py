"""The report's autoscaling figure: replicas, load and p99 TTFT over the run, from
``summary.json`` ``autoscale`` (``series`` per pool, ``timeline`` per bin)."""

from __future__ import annotations

from matplotlib.figure import Figure

from sim.report.load import ReportInput

__all__ = ["autoscaling"]

_COLORS = ("#1f5fa8", "#d9741c", "#2a9d55", "#b8322f", "#7b52ab")


def _steps(series: list, end_s: float, col: int) -> tuple[list, list]:
    """A step line through ``[t_s, active, provisioned]`` rows, held to ``end_s``."""
    t = [r[0] for r in series] + [end_s]
    v = [r[col] for r in series]
    return t, v + v[-1:]


def autoscaling(inp: ReportInput) -> Figure | None:
    """Three panels sharing the time axis; None for a fixed fleet."""
    a = inp.run.summary.autoscale if inp.run is not None else None
    if not a:
        return None
    timeline = a.timeline
    end_s = max([b.end_s for b in timeline] + [r[0] for p in a.pools.values() for r in p.series])
    fig = Figure(figsize=(10, 6.2), layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    ax = axes[0]
    for i, (pool, p) in enumerate(a.pools.items()):
        color = _COLORS[i % len(_COLORS)]
        ax.step(*_steps(p.series, end_s, 2), where="post", color=color, lw=1.4, label=f"{pool}: provisioned (paid)")
        ax.step(*_steps(p.series, end_s, 1), where="post", color=color, lw=0.9, ls="--", label=f"{pool}: serving")
        ax.axhline(p.max_replicas, color=color, lw=0.6, ls=":")
    ax.set_ylabel("replicas")
    ax.set_ylim(bottom=0)
    ax.set_title("Replicas (dotted: max_replicas, the fixed fleet it is compared with)")
    ax.legend(loc="upper left", ncols=2)
    mid = [(b.start_s + b.end_s) / 2 for b in timeline]
    axes[1].plot(mid, [b.rate_rps for b in timeline], color="#5a5a5a", marker="o", ms=3, lw=1.1)
    axes[1].set_ylabel("arrivals (req/s)")
    axes[1].set_ylim(bottom=0)
    axes[1].set_title("Load")
    p99 = [(m, b.p99_ttft_s) for m, b in zip(mid, timeline) if b.p99_ttft_s is not None]
    axes[2].plot([m for m, _ in p99], [v * 1e3 for _, v in p99], color="#b8322f", marker="o", ms=3, lw=1.1)
    axes[2].set_ylabel("p99 TTFT (ms)")
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("simulated time (s)")
    axes[2].set_title("p99 time to first token of the requests arriving in each bin")
    return fig
