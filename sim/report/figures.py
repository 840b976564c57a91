"""The report's matplotlib figures, built without pyplot (no global state).

Each builder returns a ``matplotlib.figure.Figure`` or ``None`` when its data
is absent; ``build_figures`` lists the ones that exist. ``to_svg`` renders a
figure deterministically: fixed ``svg.hashsalt``, no date, text kept as text.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.analysis.contracts import PlanCandidate, RunSummary
from sim.report.autoscale_figure import autoscaling
from sim.report.load import ReportInput, gpus_per_replica

__all__ = ["ReportFigure", "build_figures", "to_svg", "RC", "pareto_front", "pareto_note", "slo_use_pct"]

#: rcParams for every figure: deterministic SVG, readable on paper.
RC = {
    "svg.hashsalt": "fleetcast-report",
    "svg.fonttype": "none",
    "font.size": 9,
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.fontsize": 8,
    "legend.frameon": False,
}
PALETTE = ("#1f5fa8", "#d9741c", "#2a9d55", "#b8322f", "#7b52ab", "#8c6d31", "#d04f9c", "#5a5a5a")
OK, MISS, NOFIT, SLO = "#2a9d55", "#b8322f", "#9a9a9a", "#b8322f"
METRICS = (("ttft_s", "Time to first token"), ("tpot_s", "Time per output token"), ("e2e_s", "End-to-end latency"))


@dataclass(frozen=True)
class ReportFigure:
    id: str  # HTML anchor
    title: str
    caption: str  # what it shows, in one or two sentences
    figure: Figure


def to_svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog, no date)."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):  # type: ignore[arg-type]  # matplotlib's stubs key rc by the Literal names
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "fleetcast"}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # the RDF metadata block only names the creator; inline it is noise
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    text = re.sub(r' xmlns:(dc|cc|rdf)="[^"]*"', "", text)
    # sized by CSS (max-width 100%), keep the aspect via viewBox
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


def _new(width: float, height: float, ncols: int = 1, nrows: int = 1, **kw):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes.ravel()


def _tick_seconds(v: float, _pos=None) -> str:
    return f"{v * 1e3:g} ms" if v < 1 else f"{v:g} s"


def _seconds_axis(axis) -> None:
    """Log axis with human tick labels (5 ms, 20 ms, 1 s) instead of 10^-2;
    call after plotting: the tick density follows the data range."""
    lo, hi = sorted(axis.get_view_interval())
    decades = np.log10(hi / lo) if lo > 0 and hi > lo else 1.0
    subs = (
        (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        if decades <= 0.8
        else (1.0, 2.0, 5.0)
        if decades <= 1.6
        else (1.0, 3.0)
        if decades <= 2.6
        else (1.0,)
    )
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_seconds))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _p99_targets(summary: RunSummary, metric: str) -> dict[str, float]:
    """class -> p99 target of ``metric`` (the highest-percentile target if no p99)."""
    out = {}
    for name, cls in summary.classes.items():
        rows = [r for r in (cls.slo or {}).values() if r.metric == metric]
        p99 = [r for r in rows if r.percentile == "p99"] or rows[-1:]
        if p99:
            out[name] = float(p99[0].target_s)
    return out


def _window_ok(inp: ReportInput) -> pd.DataFrame | None:
    run = inp.run
    if run is None or run.requests is None or run.requests.empty:
        return None
    w = run.summary.window
    df = run.requests
    a = df["arrival_s"].to_numpy(float)
    keep = (a >= w.start_s) & (a < w.end_s) & (df["status"].astype(str) == "ok")
    return df[keep]


def latency_cdfs(inp: ReportInput) -> Figure | None:
    df = _window_ok(inp)
    if df is None or df.empty or inp.run is None:
        return None
    classes = list(inp.run.summary.classes) or sorted(df["class"].astype(str).unique())
    fig, axes = _new(10, 3.4, ncols=3)
    ticks = [0.1, 0.5, 0.9, 0.99, 0.999]
    for ax, (metric, title) in zip(axes, METRICS):
        targets = _p99_targets(inp.run.summary, metric)
        for i, cls in enumerate(classes):
            v = np.sort(df.loc[df["class"].astype(str) == cls, metric].to_numpy(float))
            v = v[np.isfinite(v) & (v > 0)]
            if v.size < 2:
                continue
            color = PALETTE[i % len(PALETTE)]
            y = (np.arange(1, v.size + 1) - 0.5) / v.size
            ax.plot(v, y, color=color, lw=1.6, label=cls)
            if cls in targets:
                ax.axvline(targets[cls], color=color, ls="--", lw=1.0)
                ax.plot([targets[cls]], [0.99], marker="o", ms=4, color=SLO, zorder=5)
        ax.set_xscale("log")
        ax.set_yscale("logit")
        ax.set_ylim(0.05, 0.999)
        _seconds_axis(ax.xaxis)
        ax.set_yticks(ticks, ["p10", "p50", "p90", "p99", "p99.9"])
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(title)
        ax.set_xlabel("latency (log scale)")
    axes[0].set_ylabel("share of requests at or below")
    axes[0].legend(loc="upper left", title="class (dashed: SLO)")
    return fig


def _class_p99_targets(summary: RunSummary | None) -> list[tuple[str, str, float]]:
    """(class, metric, target_s) for every p99 SLO target of every class (TTFT, TPOT)."""
    out = []
    for name, cls in (summary.classes if summary is not None else {}).items():
        for row in (cls.slo or {}).values():
            if row.percentile == "p99" and row.metric in ("ttft_s", "tpot_s"):
                out.append((name, row.metric, float(row.target_s)))
    return out


def _curve_points(inp: ReportInput, c: PlanCandidate) -> pd.DataFrame | None:
    """Every simulated point of candidate ``c`` at its found fleet size, by rate (the
    load curve, the headroom bisection, growth months): per-class p99 columns."""
    pts = inp.points
    if pts is None or pts.empty or "candidate" not in pts or c.replicas is None:
        return None
    mine = pts[(pts["candidate"] == c.id) & (pts["replicas"] == c.replicas)]
    if mine.empty:
        return None
    return mine.drop_duplicates("rate_rps").sort_values("rate_rps")


def load_curve(inp: ReportInput) -> Figure | None:
    """One panel per (class, metric) with a p99 target: that class's p99 against
    that class's own target as the arrival rate rises."""
    c = inp.recommended or next((x for x in inp.candidates if x.replicas is not None and x.status == "ok"), None)
    if c is None:
        return None
    curve = _curve_points(inp, c)
    targets = [
        (cls, m, t) for cls, m, t in _class_p99_targets(c.summary) if curve is not None and f"{cls}.p99_{m}" in curve
    ]
    if not targets:
        return None
    peak = inp.doc.peak_rate_rps
    classes = list(c.summary.classes) if c.summary is not None else []
    ncols = min(len(targets), 3)
    nrows = -(-len(targets) // ncols)
    fig, axes = _new(10, 2.9 * nrows, ncols=ncols, nrows=nrows)
    short = {"ttft_s": "TTFT", "tpot_s": "TPOT"}
    for ax, (cls, metric, target) in zip(axes, targets):
        x = curve["rate_rps"].to_numpy(float)  # type: ignore[index]  # targets is empty without a curve
        y = pd.to_numeric(curve[f"{cls}.p99_{metric}"], errors="coerce").to_numpy(float)  # type: ignore[index]  # as above
        ok = np.isfinite(y)
        color = PALETTE[classes.index(cls) % len(PALETTE)] if cls in classes else PALETTE[0]
        ax.plot(x[ok], y[ok], color=color, lw=1.6, label=f"{cls} p99")
        within = ok & (y <= target)
        ax.scatter(x[within], y[within], color=OK, s=16, zorder=4, label="within this target")
        over = ok & (y > target)
        if over.any():
            ax.scatter(x[over], y[over], color=MISS, marker="x", s=22, zorder=4, label="over this target")
        ax.axhline(target, color=SLO, ls="--", lw=1.0, label=f"{cls} p99 {short[metric]} SLO {_tick_seconds(target)}")
        if peak:
            ax.axvline(peak, color="#555555", ls=":", lw=1.0, label="forecast peak")
        ax.set_yscale("log")
        _seconds_axis(ax.yaxis)
        ax.set_title(f"{cls}: p99 {short[metric]} vs load")
        ax.set_xlabel("arrival rate, all classes (requests/s)")
        ax.set_ylabel("p99 latency (log scale)")
        ax.legend(loc="upper left", fontsize=7)
    for ax in axes[len(targets) :]:
        ax.set_visible(False)
    return fig


def utilization(inp: ReportInput) -> Figure | None:
    run = inp.run
    ts = run.timeseries if run is not None else None
    if run is None or ts is None or ts.empty:
        return None
    g = ts.groupby("t_s", sort=True).agg(
        running=("running", "sum"), waiting=("waiting", "sum"), kv_mean=("kv_usage", "mean"), kv_max=("kv_usage", "max")
    )
    t = g.index.to_numpy(float)
    w = run.summary.window
    fig, axes = _new(10, 4.6, nrows=2, sharex=True)
    ax = axes[0]
    ax.plot(t, g["running"], color=PALETTE[0], lw=1.1, label="running (in a batch)")
    ax.plot(t, g["waiting"], color=PALETTE[1], lw=1.1, label="waiting (queued)")
    ax.set_ylabel("requests, whole fleet")
    ax.set_title("Requests in the engines and in the queue")
    ax.legend(loc="upper left", ncols=2)
    ax = axes[1]
    ax.plot(t, 100 * g["kv_mean"], color=PALETTE[2], lw=1.1, label="mean over replicas")
    ax.plot(t, 100 * g["kv_max"], color=PALETTE[3], lw=0.8, alpha=0.8, label="fullest replica")
    ax.set_ylim(0, min(100.0, max(10.0, 120 * float(g["kv_max"].max()))))
    ax.set_ylabel("KV cache used (%)")
    ax.set_xlabel("simulated time (s)")
    ax.set_title("KV-cache memory in use")
    ax.legend(loc="upper left", ncols=2)
    for ax in axes:
        if w.start_s:
            ax.axvspan(t.min(), w.start_s, color="#eeeeee", zorder=0)
        if w.end_s < t.max():
            ax.axvspan(w.end_s, t.max(), color="#eeeeee", zorder=0)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (latency, cost) points, by increasing latency (both: lower is better)."""
    front, best = [], np.inf
    for x, y in sorted(set(points)):
        if y < best:
            front.append((x, y))
            best = y
    return front


def slo_use_pct(summary: RunSummary | None) -> float | None:
    """The largest ratio, over every class and every latency target of its SLO, of the
    forecast percentile to its target, in %: 100 means some class is exactly at its own
    target. What the plan's choice is constrained by (each class against its own SLO)."""
    ratios = [
        row.achieved_s / row.target_s
        for cls in (summary.classes if summary is not None else {}).values()
        for row in (cls.slo or {}).values()
        if row.achieved_s is not None and row.target_s
    ]
    return 100.0 * max(ratios) if ratios else None


def pareto_note(inp: ReportInput) -> str:
    """Whether the recommendation is on the cost-vs-SLO-use front, and if not, why."""
    rec = inp.recommended
    pts = _pareto_points(inp)
    if rec is None or rec.id not in {c.id for _, _, c in pts}:
        return ""
    front = pareto_front([(x, y) for x, y, _ in pts])
    me = next((x, y) for x, y, c in pts if c.id == rec.id)
    if me in front:
        return "The recommendation is on the front: no candidate is both cheaper and further within its SLOs."
    better = min((p for p in pts if p[0] < me[0] and p[1] <= me[1]), key=lambda p: (p[1], p[0]))
    name = better[2].label or better[2].id
    return (
        f"The recommendation is not on the front: {name} costs the same ({'$' + format(better[1], ',.0f')} "
        f"per month) and keeps its slowest class at {better[0]:.0f}% of its target against {me[0]:.0f}%. "
        "The plan chooses on cost subject to every SLO, and ranks equal monthly costs by $ per 1M tokens, "
        "then headroom, not by latency margin."
    )


def _pareto_points(inp: ReportInput) -> list[tuple[float, float, PlanCandidate]]:
    out = []
    for c in inp.candidates:
        use = slo_use_pct(c.summary)
        if c.status == "ok" and c.usd_per_month is not None and use is not None:
            out.append((use, float(c.usd_per_month), c))
    return out


def cost_vs_latency(inp: ReportInput) -> Figure | None:
    """$/month against SLO use (each class's percentile over its own target, the
    worst of them): the metrics the plan's choice uses."""
    pts = _pareto_points(inp)
    if len(pts) < 2:
        return None
    fig, axes = _new(10, 3.8)
    ax = axes[0]
    rid = inp.doc.recommended
    ax.scatter(
        [x for x, _, _ in pts],
        [y for _, y, _ in pts],
        color=OK,
        s=24,
        alpha=0.85,
        zorder=3,
        label="candidate (meets every SLO)",
    )
    front = pareto_front([(x, y) for x, y, _ in pts])
    ax.step(*zip(*front), where="post", color="#333333", lw=1.2, label="Pareto front", zorder=2)
    for x, y, c in pts:
        if c.id == rid:
            ax.scatter([x], [y], marker="*", s=220, color="#f2b701", edgecolor="#333333", zorder=5, label="recommended")
            ax.annotate(c.label or c.id, (x, y), xytext=(8, 6), textcoords="offset points", fontsize=8)
    ax.axvline(100.0, color=SLO, ls="--", lw=1.0, label="a class at its own SLO target")
    ax.set_xlim(0, max(105.0, max(x for x, _, _ in pts) * 1.05))
    ax.set_title("Monthly cost vs SLO use at the forecast peak")
    ax.set_xlabel("slowest class's latency as % of its own SLO target (lower = more margin)")
    ax.set_ylabel("$ per month")
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("${x:,.0f}"))
    ax.legend(loc="upper right")
    return fig


def growth(inp: ReportInput) -> Figure | None:
    c = inp.recommended
    rows = pd.DataFrame([g.model_dump() for g in (c.growth if c is not None else None) or []])
    if c is None or rows.empty or "month" not in rows:
        return None
    gpus = rows["replicas"].astype(float) * gpus_per_replica(c)
    fig, axes = _new(10, 3.2)
    ax = axes[0]
    bars = ax.bar(rows["month"].astype(str), gpus, color=PALETTE[0], width=0.6)
    for b, usd in zip(bars, rows.get("usd_per_month", [None] * len(rows))):
        if usd is not None and np.isfinite(usd):
            ax.annotate(
                f"${usd:,.0f}/mo",
                (b.get_x() + b.get_width() / 2, b.get_height()),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    ax.set_xlabel("month")
    ax.set_ylabel(f"GPUs ({c.gpu})")
    ax.set_title("GPUs needed as demand grows (labels: monthly cost)")
    ax.set_ylim(0, max(float(gpus.max()) * 1.18, 1))
    return fig


_FIGURES = (
    (
        "fig-latency",
        "Latency distribution by class",
        latency_cdfs,
        "Cumulative distribution of each latency over the measured window of the {which} run; dashed "
        "lines are each class's p99 SLO target. Further right is slower.",
    ),
    (
        "fig-load",
        "Latency vs load, each class against its own SLO",
        load_curve,
        "Each class's p99 latency as the arrival rate rises, for the {which_curve} at its planned size; the "
        "dashed line is that class's own p99 target, points are marked against it, and the dotted line is the "
        "forecast peak.",
    ),
    (
        "fig-utilization",
        "Utilization and queue over time",
        utilization,
        "Requests running and waiting, summed over replicas, and KV-cache use over the {which} run; "
        "grey bands are warm-up/cool-down, excluded from the figures above.",
    ),
    (
        "fig-autoscale",
        "Autoscaling: replicas, load and p99 over the run",
        autoscaling,
        "The autoscaled pools' replicas over the {which} run (solid: provisioned and paid for, from the scale-up "
        "decision; dashed: serving, after the cold start), the arrival rate and the p99 time to first token per "
        "bin of arrivals: a p99 that rises while the dashed line lags the solid one is the cold start's cost.",
    ),
    (
        "fig-pareto",
        "Cost vs SLO margin across candidates",
        cost_vs_latency,
        "Each dot is one candidate fleet that meets every SLO, at the forecast peak: its monthly cost against "
        "its slowest class's latency as a share of that class's own target (the plan chooses on cost subject to "
        "these targets). The line is the Pareto front (no other candidate is both cheaper and further within "
        "its targets); the star is the recommendation. {pareto_note}",
    ),
    (
        "fig-growth",
        "GPUs over the forecast horizon",
        growth,
        "GPUs the recommended configuration needs each month as demand grows.",
    ),
)


def build_figures(inp: ReportInput) -> list[ReportFigure]:
    """Every figure the input has data for, in report order."""
    which = "recommended" if inp.kind == "plan" else "simulated"
    out = []
    for fid, title, build, caption in _FIGURES:
        with matplotlib.rc_context(RC):  # type: ignore[arg-type]  # as above
            fig = build(inp)
        if fig is not None:
            curve = (
                "recommended fleet"
                if inp.recommended is not None
                else "cheapest candidate with a load curve (none met the SLO)"
            )
            text = caption.format(which=which, which_curve=curve, pareto_note=pareto_note(inp)).strip()
            out.append(ReportFigure(fid, title, text, fig))
    return out
