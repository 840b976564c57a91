"""Render a ``TrafficFit`` as a scenario ``traffic:`` section (YAML, a comment per
choice with its statistic) and the lengths tables it refers to (CSV).

``render(fit, table_name)`` returns ``(yaml_text, {file name: csv text})``; the
YAML's paths are file names, relative to the YAML's folder.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import yaml

from sim.workload.fit.fit import ClassFit, TrafficFit

__all__ = ["render", "traffic_dict"]


def _g(x: float, digits: int = 4) -> str:
    return f"{float(x):.{digits}g}"


def _length_yaml(cf: ClassFit, which: str, table: str) -> str:
    lf = cf.lengths.prompt if which == "prompt_tokens" else cf.lengths.output
    f = lf.chosen
    if f is None:
        return f"{{dist: empirical, path: {table}, column: {which}}}"
    if f.family == "lognormal":
        return f"{{dist: lognormal, mean: {_g(f.params['mean'])}, sigma: {_g(f.params['sigma'])}, min: {lf.lo}, max: {lf.hi}}}"
    return f"{{dist: normal, mean: {_g(f.params['mean'])}, std: {_g(f.params['std'])}, min: {lf.lo}, max: {lf.hi}}}"


def _ci(f) -> str:
    return "; ".join(f"{k} 95% CI {_g(a)}..{_g(b)}" for k, (a, b) in f.ci.items())


def _class_yaml(cf: ClassFit, table: str, share: float | None) -> list[str]:
    a = cf.arrivals
    lines = [
        f"    # {cf.name}: {cf.n:,} requests ({cf.share:.1%}); its own arrivals: {a.rate_rps:.4g} req/s, "
        f"D={a.dispersion:.2f} in {a.window_s:g} s windows, gaps' cv={a.cv:.2f}",
        f"    # prompt_tokens: {cf.lengths.prompt.note}",
        f"    # output_tokens: {cf.lengths.output.note}",
    ]
    for fam in (cf.lengths.prompt.chosen, cf.lengths.output.chosen):
        if fam is not None:
            lines.append(f"    #   {fam.family}: {_ci(fam)}")
    lines += [f"    # {n}" for n in cf.lengths.notes]
    lines.append(f"    - name: {cf.name}")
    if share is not None:
        lines.append(f"      share: {share!r}")
    if cf.lengths.joint:
        lines.append(
            f"      lengths_table: {{path: {table}, prompt_column: prompt_tokens, output_column: output_tokens}}"
        )
    else:
        lines.append(f"      prompt_tokens: {_length_yaml(cf, 'prompt_tokens', table)}")
        lines.append(f"      output_tokens: {_length_yaml(cf, 'output_tokens', table)}")
    if cf.prefix is not None:
        lines.append(f"      # prefix: {cf.prefix.note}")
        if cf.prefix.tokens > 0:
            z = f", zipf_s: {cf.prefix.zipf_s:g}" if cf.prefix.zipf_s else ""
            lines.append(f"      prefix: {{tokens: {cf.prefix.tokens}, num_distinct: {cf.prefix.num_distinct}{z}}}")
    return lines


def _arrival_yaml(fit: TrafficFit) -> tuple[list[str], float]:
    """The arrival lines and the peak rate (what plan's demand scales)."""
    a, s = fit.arrival, fit.scale
    lines = [f"  # arrivals: {n}" for n in a.notes]
    lines.append(f"  # rate {a.rate_rps:.5g} req/s (95% CI {a.rate_ci[0]:.5g}..{a.rate_ci[1]:.5g})")
    if s != 1.0:
        lines.append(f"  # --scale {s:g}: every rate below is the fitted rate x {s:g}")
    if a.process == "diurnal":
        pts = ", ".join(f"[{h}, {_g(r * s, 5)}]" for h, r in enumerate(a.hourly_rps))
        lines.append(f"  arrival: {{process: diurnal, start_hour: {_start_hour(fit):g}, rate_points: [{pts}]}}")
        return lines, max(a.hourly_rps) * s
    if a.process == "mmpp" and a.mmpp is not None:
        m = a.mmpp
        lines.append(
            f"  arrival: {{process: mmpp, rate_rps: {_g(a.rate_rps * s, 6)}, levels: [{_g(m.rates_rps[0] * s, 5)}, "
            f"{_g(m.rates_rps[1] * s, 5)}], mean_sojourn_s: [{_g(m.mean_sojourn_s[0], 5)}, {_g(m.mean_sojourn_s[1], 5)}]}}"
        )
        return lines, a.rate_rps * s
    if a.process == "gamma":
        lines.append(f"  arrival: {{process: gamma, rate_rps: {_g(a.rate_rps * s, 6)}, cv: {_g(a.cv)}}}")
    else:
        lines.append(f"  arrival: {{process: poisson, rate_rps: {_g(a.rate_rps * s, 6)}}}")
    return lines, a.rate_rps * s


def _start_hour(fit: TrafficFit) -> float:
    return round(((fit.start_epoch_s or 0.0) % 86400.0) / 3600.0, 4) % 24


def render(fit: TrafficFit, table_name: str) -> tuple[str, dict[str, str]]:
    """The YAML text and the CSV tables (file name -> text)."""
    when = (
        datetime.fromtimestamp(fit.start_epoch_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        if fit.start_epoch_s is not None
        else "relative times"
    )
    head = [
        "# Fitted by `fleetcast traffic fit` from:",
        *[f"#   {s}" for s in fit.sources],
        f"# {fit.n:,} requests over {fit.span_s:,.1f} s from {when}; {fit.split}.",
        "# Paths are relative to this file's folder: keep the lengths table beside the scenario.",
    ]
    head += [f"# warning: {w}" for w in fit.warnings]
    arrival, peak = _arrival_yaml(fit)
    duration = max(math.ceil(fit.span_s), 1)
    body = ["traffic:", f"  duration_s: {duration}", *arrival, "  classes:"]
    several = len(fit.classes) > 1
    tables: dict[str, str] = {}
    # shares to 6 digits, the last one what makes them sum to 1 (the format checks the sum to 1e-6)
    shares = [round(cf.share, 6) for cf in fit.classes]
    shares[-1] = round(1.0 - sum(shares[:-1]), 9)
    for cf, share in zip(fit.classes, shares):
        name = table_name if not several else table_name.replace(".csv", f".{cf.name}.csv")
        body += _class_yaml(cf, name, share if several else None)
        needs = cf.lengths.joint or cf.lengths.prompt.chosen is None or cf.lengths.output.chosen is None
        if needs:
            pairs = zip(cf.table_prompt.tolist(), cf.table_output.tolist())
            tables[name] = "prompt_tokens,output_tokens\n" + "".join(f"{p},{o}\n" for p, o in pairs)
    if fit.growth is not None:
        g, months = fit.growth
        body += [
            "# plan's growth forecast from the fitted rate (merge into the scenario's plan: section):",
            "plan:",
            f"  demand: {{start_rate_rps: {_g(peak, 6)}, monthly_growth_pct: {g:g}, months: {months}}}",
        ]
    return "\n".join(head + body) + "\n", tables


def traffic_dict(text: str) -> dict:
    """The ``traffic:`` mapping of rendered YAML (for checks)."""
    return yaml.safe_load(text)["traffic"]
