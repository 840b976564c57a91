"""The fit report of ``fleetcast traffic fit --report``: one self-contained HTML file
(the procurement report's CSS and table helper), per class the observed log against
one realization of the fitted traffic: the rate over the log's span, QQ plots of the
prompt and output lengths, the inter-arrival CDF, the index of dispersion by window
size and, with an hour-of-week (or hour-of-day) profile, the rate over the week (day); then the fitted YAML and, with ``--check``, the round-trip table.
"""

from __future__ import annotations

from html import escape

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from sim.analysis.traffic_roundtrip import TOLERANCE, RoundTripRow
from sim.report.figures import PALETTE, to_svg
from sim.report.html_page import CSS, _table
from sim.workload.fit.arrivals import ProfileFit, dispersion_curve
from sim.workload.fit.fit import TrafficFit
from sim.workload.generate import Workload

__all__ = ["render_fit_report"]

_OBS, _FIT = PALETTE[0], PALETTE[1]


def _rate_axis(ax, t_obs: np.ndarray, t_fit: np.ndarray, span_s: float) -> None:
    hourly = span_s >= 86400.0
    width = 3600.0 if hourly else max(span_s / 100.0, 1.0)
    edges = np.arange(0.0, span_s + width, width)
    for t, color, label in ((t_obs, _OBS, "observed"), (t_fit, _FIT, "fitted")):
        counts, _ = np.histogram(t, edges)
        x = edges[:-1] / (3600.0 if hourly else 1.0)
        ax.step(x, counts / width, where="post", color=color, label=label, lw=1)
    ax.set_xlabel("hours from the log's start" if hourly else "seconds from the log's start")
    ax.set_ylabel("req/s")
    ax.set_title(f"Rate ({'1 h' if hourly else f'{width:.3g} s'} bins)")
    ax.legend()


def _qq_axis(ax, obs: np.ndarray, fit: np.ndarray, what: str) -> None:
    q = np.linspace(0.5, 99.5, 100)
    a, b = np.percentile(obs, q), np.percentile(fit, q)
    ax.loglog(a, b, ".", color=_FIT, ms=3)
    lo, hi = max(min(a.min(), b.min()), 1), max(a.max(), b.max())
    ax.plot([lo, hi], [lo, hi], color="#888888", lw=0.8)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())  # a narrow range labels every minor tick otherwise
    ax.set_xlabel(f"observed {what}, tokens")
    ax.set_ylabel("fitted, tokens")
    ax.set_title(f"QQ: {what}")


def _gap_axis(ax, t_obs: np.ndarray, t_fit: np.ndarray) -> None:
    for t, color, label in ((t_obs, _OBS, "observed"), (t_fit, _FIT, "fitted")):
        g = np.sort(np.diff(t))
        g = g[g > 0]
        if g.size:
            ax.semilogx(g, np.arange(1, g.size + 1) / g.size, color=color, label=label, lw=1)
    ax.set_xlabel("gap between arrivals, s")
    ax.set_ylabel("CDF")
    ax.set_title("Inter-arrival CDF")
    ax.legend()


def _dispersion_axis(ax, t_obs: np.ndarray, t_fit: np.ndarray, span_s: float) -> None:
    base = max(span_s / 5000.0, 0.1)
    for t, color, label in ((t_obs, _OBS, "observed"), (t_fit, _FIT, "fitted")):
        pts = dispersion_curve(t, span_s, base)
        if pts:
            ax.loglog([w for w, _ in pts], [max(d, 1e-3) for _, d in pts], "o-", color=color, label=label, ms=3)
    ax.axhline(1.0, color="#888888", lw=0.8)
    ax.set_xlabel("window, s")
    ax.set_ylabel("var/mean of counts")
    ax.set_title("Dispersion (Poisson = 1)")
    ax.legend()


def _folded_rates(t: np.ndarray, span_s: float, p: ProfileFit) -> np.ndarray:
    """Mean rate in each bin of the profile's period (arrivals / the span's seconds in the bin)."""
    nbins = len(p.rates_rps)
    counts = np.bincount(((p.start_s + t) // p.bin_s).astype(np.int64) % nbins, minlength=nbins)[:nbins]
    hs = np.arange(int(p.start_s // p.bin_s), int(np.ceil((p.start_s + span_s) / p.bin_s)))
    lo, hi = p.start_s, p.start_s + span_s
    overlap = np.minimum((hs + 1) * p.bin_s, hi) - np.maximum(hs * p.bin_s, lo)
    exposure = np.bincount(hs % nbins, weights=np.maximum(overlap, 0.0), minlength=nbins)
    return np.where(exposure > 0, counts / np.maximum(exposure, 1e-9), np.nan)


def _week_axis(ax, t_obs: np.ndarray, t_fit: np.ndarray, span_s: float, p: ProfileFit) -> None:
    """The rate over the profile's period (hour of week or of day), observed vs fitted."""
    x = np.arange(len(p.rates_rps))
    for t, color, label in ((t_obs, _OBS, "observed"), (t_fit, _FIT, "fitted")):
        ax.step(x, _folded_rates(t, span_s, p), where="post", color=color, label=label, lw=1)
    week = p.kind == "hour-of-week"
    if week:
        ax.set_xticks(np.arange(0, 168, 24), ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
    ax.set_xlabel("hour of week (UTC)" if week else "hour of day (UTC)")
    ax.set_ylabel("req/s")
    ax.set_title(f"Rate over the {'week' if week else 'day'}")
    ax.legend()


def _class_figure(name: str, obs: dict, gen: dict, span_s: float, profile: ProfileFit | None = None) -> str:
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    _rate_axis(axes[0], obs["t"], gen["t"], span_s)
    _gap_axis(axes[1], obs["t"], gen["t"])
    _dispersion_axis(axes[2], obs["t"], gen["t"], span_s)
    _qq_axis(axes[3], obs["p"], gen["p"], "prompt")
    _qq_axis(axes[4], obs["o"], gen["o"], "output")
    if profile is not None and profile.kept and profile.kind != "minutes":
        _week_axis(axes[5], obs["t"], gen["t"], span_s, profile)
        fig.suptitle(
            f"class {name}: observed {obs['t'].size:,} requests, fitted (one realization) {gen['t'].size:,}",
            fontsize=9,
        )
        return to_svg(fig)
    axes[5].axis("off")
    axes[5].text(
        0,
        0.9,
        f"class {name}\nobserved: {obs['t'].size:,} requests\nfitted (one realization): {gen['t'].size:,}",
        va="top",
        fontsize=9,
    )
    return to_svg(fig)


def _round_trip_html(rows: list[RoundTripRow], scenario: str, seeds: int) -> str:
    body = [
        [
            escape(r.label),
            f"{r.replay:.4g}",
            f"{r.fitted:.4g}",
            f"{r.rel_diff:+.1%}",
            r.interval_text,
            f"{r.replay_rank:.0%}",
            _verdict_html(r),
        ]
        for r in rows
    ]
    return (
        f'<section id="round-trip"><h2>Round trip</h2><p>{escape(scenario)}\'s fleet simulated on the replayed '
        f"log and on the fitted traffic (mean of {seeds} seeds). The interval is 95% for the difference: "
        "fitted mean &minus; replay &plusmn; t &middot; sd(seeds) &middot; &radic;(1 + 1/seeds), the replay "
        f"being one realization with one run's spread. Within {TOLERANCE:.0%}: the whole interval inside; "
        f"outside: wholly outside; undecided: the difference is inside the noise. Rank: the share of the fitted "
        "runs below the replay (near 0% or 100%: the replay is unlike them; assumes no shape).</p>"
        + _table(
            ["metric", "replayed log", "fitted", "difference", "95% interval", "rank", ""], body, numeric={1, 2, 3, 5}
        )
        + "</section>"
    )


def _verdict_html(r: RoundTripRow) -> str:
    cls, text = {
        "within": ("st-ok", f"within {TOLERANCE:.0%}"),
        "outside": ("st-bad", f"outside {TOLERANCE:.0%}"),
        "undecided": ("st-nofit", "undecided (noise)"),
    }[r.verdict]
    return f'<span class="{cls}">{text}</span>'


def render_fit_report(
    fit: TrafficFit,
    yaml_text: str,
    generated: Workload,
    rows: list[RoundTripRow] | None = None,
    check_scenario: str = "",
    seeds: int = 0,
) -> str:
    """The complete HTML document; ``generated`` is one realization of the fitted traffic."""
    log = fit.log
    assert log is not None  # fit_traffic keeps it
    parts = []
    for c, cf in enumerate(fit.classes):
        obs = {"t": log.arrival_s[cf.rows], "p": log.prompt_tokens[cf.rows], "o": log.output_tokens[cf.rows]}
        mine = generated.class_idx == c
        gen = {"t": generated.arrival_s[mine], "p": generated.prompt_tokens[mine], "o": generated.output_tokens[mine]}
        if gen["t"].size < 2:
            parts.append(f"<h3>{escape(cf.name)}</h3><p>The fitted realization has no requests of this class.</p>")
            continue
        figure = _class_figure(cf.name, obs, gen, fit.span_s, cf.arrivals.profile)
        parts.append(f"<figure><h3>{escape(cf.name)}</h3>{figure}</figure>")
    warn = "".join(f'<div class="warn">{escape(w)}</div>' for w in fit.warnings)
    title = "Traffic fit report"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>'
        f"<style>{CSS}</style></head><body><main><header><h1>{title}</h1>"
        f'<div class="meta">{escape(", ".join(fit.sources))} · {fit.n:,} requests over {fit.span_s:,.0f} s · '
        f"arrival {escape(fit.arrival.process if len(fit.classes) == 1 else 'by class')} · {len(fit.classes)} class(es)</div></header>"
        + warn
        + (_round_trip_html(rows, check_scenario, seeds) if rows else "")
        + f'<section id="classes"><h2>Observed vs fitted</h2>{"".join(parts)}</section>'
        + f'<section id="yaml"><h2>The fitted section</h2><pre class="yaml">{escape(yaml_text)}</pre></section>'
        + "</main></body></html>\n"
    )
