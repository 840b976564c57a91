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

from sim.report.load import ReportInput

__all__ = ["ReportFigure", "build_figures", "to_svg", "RC"]

#: rcParams for every figure: deterministic SVG, readable on paper.
RC = {"svg.hashsalt": "fleetcast-report", "svg.fonttype": "none", "font.size": 9,
      "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False,
      "axes.grid": True, "grid.color": "#dddddd", "grid.linewidth": 0.6, "axes.titlesize": 10,
      "axes.titleweight": "bold", "legend.fontsize": 8, "legend.frameon": False}
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
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "fleetcast"}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # the RDF metadata block only names the creator; inline it is noise
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    text = re.sub(r' xmlns:(dc|cc|rdf)="[^"]*"', "", text)
    # sized by CSS (max-width 100%), keep the aspect via viewBox
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r'<svg\1', text, count=1)


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
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades <= 0.8 else (1.0, 2.0, 5.0) if decades <= 1.6 else (1.0, 3.0) if decades <= 2.6 else (1.0,)
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick_seconds))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _p99_targets(summary: dict, metric: str) -> dict[str, float]:
    """class -> p99 target of ``metric`` (the highest-percentile target if no p99)."""
    out = {}
    for name, cls in (summary.get("classes") or {}).items():
        rows = [r for r in (cls.get("slo") or {}).values() if r.get("metric") == metric]
        p99 = [r for r in rows if r.get("percentile") == "p99"] or rows[-1:]
        if p99:
            out[name] = float(p99[0]["target_s"])
    return out


def _window_ok(inp: ReportInput) -> pd.DataFrame | None:
    run = inp.run
    if run is None or run.requests is None or run.requests.empty:
        return None
    w = run.summary.get("window") or {}
    df = run.requests
    a = df["arrival_s"].to_numpy(float)
    keep = (a >= w.get("start_s", -np.inf)) & (a < w.get("end_s", np.inf)) & (df["status"].astype(str) == "ok")
    return df[keep]


def latency_cdfs(inp: ReportInput) -> Figure | None:
    df = _window_ok(inp)
    if df is None or df.empty:
        return None
    classes = list((inp.run.summary.get("classes") or {}).keys()) or sorted(df["class"].astype(str).unique())
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


def load_curve(inp: ReportInput) -> Figure | None:
    c = inp.recommended or next((x for x in inp.candidates if x.get("load_curve")), None)
    curve = pd.DataFrame((c or {}).get("load_curve") or [])
    if curve.empty or "rate_rps" not in curve:
        return None
    curve = curve.sort_values("rate_rps")
    summary = c.get("summary") or {}
    peak = (inp.plan.get("demand") or {}).get("peak_rate_rps")
    fig, axes = _new(10, 3.2, ncols=2)
    for ax, (metric, title) in zip(axes, METRICS[:2]):
        col = f"p99_{metric}"
        y = pd.to_numeric(curve.get(col), errors="coerce")
        met = curve.get("slo_met", pd.Series(True, index=curve.index)).astype(bool)
        ax.plot(curve["rate_rps"], y, color=PALETTE[0], lw=1.6, label=f"p99, {c.get('label') or c.get('id')}")
        if met.any():
            ax.scatter(curve["rate_rps"][met], y[met], color=OK, s=16, zorder=4, label="SLO met")
        if (~met).any():
            ax.scatter(curve["rate_rps"][~met], y[~met], color=MISS, marker="x", s=20, zorder=4,
                       label="SLO missed")
        targets = _p99_targets(summary, metric)
        if targets:
            t = min(targets.values())
            ax.axhline(t, color=SLO, ls="--", lw=1.0, label=f"p99 SLO {_tick_seconds(t)}")
        if peak:
            ax.axvline(peak, color="#555555", ls=":", lw=1.0, label="forecast peak")
        ax.set_yscale("log")
        _seconds_axis(ax.yaxis)
        ax.set_title(f"p99 {title.lower()} vs load")
        ax.set_xlabel("arrival rate (requests/s)")
        ax.set_ylabel("p99 latency (log scale)")
    axes[0].legend(loc="center left")
    return fig


def utilization(inp: ReportInput) -> Figure | None:
    run = inp.run
    ts = run.timeseries if run is not None else None
    if ts is None or ts.empty:
        return None
    g = ts.groupby("t_s", sort=True).agg(running=("running", "sum"), waiting=("waiting", "sum"),
                                          kv_mean=("kv_usage", "mean"), kv_max=("kv_usage", "max"))
    t = g.index.to_numpy(float)
    w = run.summary.get("window") or {}
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
        if w.get("start_s"):
            ax.axvspan(t.min(), w["start_s"], color="#eeeeee", zorder=0)
        if w.get("end_s") is not None and w["end_s"] < t.max():
            ax.axvspan(w["end_s"], t.max(), color="#eeeeee", zorder=0)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (latency, cost) points, by increasing latency (both: lower is better)."""
    front, best = [], np.inf
    for x, y in sorted(set(points)):
        if y < best:
            front.append((x, y))
            best = y
    return front


def cost_vs_latency(inp: ReportInput) -> Figure | None:
    cands = [c for c in inp.candidates if c.get("usd_per_month") is not None
             and (c.get("p99_ttft_s") is not None or c.get("p99_tpot_s") is not None)]
    if len(cands) < 2:
        return None
    fig, axes = _new(10, 3.6, ncols=2)
    rid = inp.plan.get("recommended")
    for ax, (metric, title) in zip(axes, METRICS[:2]):
        pts = [(c[f"p99_{metric}"], c["usd_per_month"], c) for c in cands if c.get(f"p99_{metric}")]
        for status, color, label in (("ok", OK, "meets SLO"), ("cannot-meet-slo", MISS, "misses SLO")):
            sel = [(x, y) for x, y, c in pts if c.get("status") == status]
            if sel:
                ax.scatter(*zip(*sel), color=color, s=22, alpha=0.8, label=label, zorder=3)
        front = pareto_front([(x, y) for x, y, _ in pts])
        if front:
            ax.step(*zip(*front), where="post", color="#333333", lw=1.2, label="Pareto front", zorder=2)
        for x, y, c in pts:
            if c.get("id") == rid:
                ax.scatter([x], [y], marker="*", s=180, color="#f2b701", edgecolor="#333333", zorder=5,
                           label="recommended")
                ax.annotate(c.get("label") or c.get("id"), (x, y), xytext=(6, 6), textcoords="offset points",
                            fontsize=8)
        targets = _p99_targets(next((c.get("summary") or {} for _, _, c in pts), {}), metric)
        if targets:
            ax.axvline(min(targets.values()), color=SLO, ls="--", lw=1.0, label="p99 SLO")
        ax.set_xscale("log")
        _seconds_axis(ax.xaxis)
        ax.set_title(f"Monthly cost vs p99 {title.lower()}")
        ax.set_xlabel("p99 at forecast peak (log scale)")
        ax.set_ylabel("$ per month")
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("${x:,.0f}"))
    axes[0].legend(loc="upper right")
    return fig


def growth(inp: ReportInput) -> Figure | None:
    c = inp.recommended
    rows = pd.DataFrame((c or {}).get("growth") or [])
    if rows.empty or "month" not in rows:
        return None
    tp = int(c.get("tensor_parallel") or 1)
    gpus = rows["replicas"].astype(float) * tp
    fig, axes = _new(10, 3.2)
    ax = axes[0]
    bars = ax.bar(rows["month"].astype(str), gpus, color=PALETTE[0], width=0.6)
    for b, usd in zip(bars, rows.get("usd_per_month", [None] * len(rows))):
        if usd is not None and np.isfinite(usd):
            ax.annotate(f"${usd:,.0f}/mo", (b.get_x() + b.get_width() / 2, b.get_height()), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=7)
    ax.set_xlabel("month")
    ax.set_ylabel(f"GPUs ({c.get('gpu')})")
    ax.set_title("GPUs needed as demand grows (labels: monthly cost)")
    ax.set_ylim(0, max(float(gpus.max()) * 1.18, 1))
    return fig


_FIGURES = (
    ("fig-latency", "Latency distribution by class", latency_cdfs,
     "Cumulative distribution of each latency over the measured window of the {which} run; dashed "
     "lines are each class's p99 SLO target. Further right is slower."),
    ("fig-load", "Latency vs load", load_curve,
     "p99 latency as the arrival rate rises, for the {which_curve}; the dashed line is the SLO "
     "and the dotted line the forecast peak."),
    ("fig-utilization", "Utilization and queue over time", utilization,
     "Requests running and waiting, summed over replicas, and KV-cache use over the {which} run; "
     "grey bands are warm-up/cool-down, excluded from the figures above."),
    ("fig-pareto", "Cost vs latency across candidates", cost_vs_latency,
     "Each dot is one candidate fleet at the forecast peak; the line is the Pareto front (no other "
     "candidate is both cheaper and faster); the star is the recommendation."),
    ("fig-growth", "GPUs over the forecast horizon", growth,
     "GPUs the recommended configuration needs each month as demand grows."),
)


def build_figures(inp: ReportInput) -> list[ReportFigure]:
    """Every figure the input has data for, in report order."""
    which = "recommended" if inp.kind == "plan" else "simulated"
    out = []
    for fid, title, build, caption in _FIGURES:
        with matplotlib.rc_context(RC):
            fig = build(inp)
        if fig is not None:
            curve = ("recommended fleet" if inp.recommended is not None
                     else "cheapest candidate with a load curve (none met the SLO)")
            out.append(ReportFigure(fid, title, caption.format(which=which, which_curve=curve), fig))
    return out
