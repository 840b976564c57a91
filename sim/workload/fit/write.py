"""Render a ``TrafficFit`` as a scenario ``traffic:`` section (YAML, a comment per
choice with its statistic) and the lengths tables it refers to (CSV).

``render(fit, table_name)`` returns ``(yaml_text, {file name: csv text})``; the
YAML's paths are file names, relative to the YAML's folder.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import yaml

from sim.workload.fit.arrivals import ArrivalFit
from sim.workload.fit.fit import ClassFit, TrafficFit
from sim.workload.fit.lengths import LengthFit
from sim.workload.fit.sessions import SessionFit

__all__ = ["render", "traffic_dict", "peak_rate_rps"]


def _g(x: float, digits: int = 4) -> str:
    return f"{float(x):.{digits}g}"


def _fixed(x: float) -> str:
    """A weight to 6 decimals without an exponent (YAML reads ``2e-06`` as a string)."""
    return f"{float(x):.6f}".rstrip("0").rstrip(".") or "0"


def _count(x: float) -> str:
    """A batch-size weight: an observed count as an integer, a thinned weight to 4 digits."""
    return str(int(x)) if float(x).is_integer() else _g(x)


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


def _class_yaml(cf: ClassFit, table: str, own: bool, scale: float) -> list[str]:
    a = cf.arrivals
    lines = [f"    # {cf.name}: {cf.n:,} requests ({cf.share:.1%})"]
    if own:
        lines += [f"    # arrivals: {n}" for n in a.notes]
        lines.append(f"    # rate {a.rate_rps:.5g} req/s (95% CI {a.rate_ci[0]:.5g}..{a.rate_ci[1]:.5g})")
    lines += [
        f"    # prompt_tokens: {cf.lengths.prompt.note}",
        f"    # output_tokens: {cf.lengths.output.note}",
    ]
    for fam in (cf.lengths.prompt.chosen, cf.lengths.output.chosen):
        if fam is not None:
            lines.append(f"    #   {fam.family}: {_ci(fam)}")
    lines += [f"    # {n}" for n in cf.lengths.notes]
    lines.append(f"    - name: {cf.name}")
    if own:
        lines.append(f"      arrival: {_process_yaml(a, scale)}")
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
    if cf.session is not None:
        lines += _session_yaml(cf.session, turns_table(table))
    return lines


def turns_table(table: str) -> str:
    """The file of a class's later turns (observed new tokens and output tokens), beside its
    lengths table."""
    return table.replace(".csv", ".turns.csv")


def _dist_yaml(lf: LengthFit, table: str, column: str) -> tuple[str, list[str]]:
    """A fitted length as a YAML flow mapping (empirical: ``table``'s ``column``), and its CI comment."""
    f = lf.chosen
    if f is None:
        return f"{{dist: empirical, path: {table}, column: {column}}}", []
    if f.family == "lognormal":
        text = f"{{dist: lognormal, mean: {_g(f.params['mean'])}, sigma: {_g(f.params['sigma'])}, min: {lf.lo}, max: {lf.hi}}}"
    else:
        text = f"{{dist: normal, mean: {_g(f.params['mean'])}, std: {_g(f.params['std'])}, min: {lf.lo}, max: {lf.hi}}}"
    return text, [f"{f.family}: {_ci(f)}"]


def _gap_yaml(g) -> str:
    if g.family == "exponential":
        return f"{{dist: exponential, mean_s: {_g(g.params['mean_s'])}}}"
    if g.family == "lognormal":
        return f"{{dist: lognormal, median_s: {_g(g.params['median_s'])}, sigma: {_g(g.params['sigma'])}}}"
    values = ", ".join(f"{v:.3f}".rstrip("0").rstrip(".") for v in g.values_s)
    if g.weights is None:
        return f"{{dist: empirical, values_s: [{values}]}}"
    return f"{{dist: empirical, values_s: [{values}], weights: [{', '.join(_g(w) for w in g.weights)}]}}"


def _session_yaml(sf: SessionFit, table: str) -> list[str]:
    lines = [f"      # session: {n}" for n in sf.notes]
    new, ci = _dist_yaml(sf.new_tokens, table, "new_tokens")
    if sf.new_by_turn is None:
        lines += [f"      # session new_tokens: {sf.new_tokens.note}", *[f"      #   {c}" for c in ci]]
    else:
        lines += [f"      # session new_tokens_by_turn[{i}]: {lf.note}" for i, (lf, _) in enumerate(sf.new_by_turn)]
    parts = []
    if sf.turn_weights is None:
        parts.append(f"mean_turns: {_g(sf.mean_turns, 5)}")
        lines.append(
            f"      # session mean_turns: 1 / (1 - q) = {sf.mean_turns:.4g} (95% CI {sf.mean_turns_ci[0]:.4g}..{sf.mean_turns_ci[1]:.4g})"
        )
    else:
        parts.append(f"turn_weights: [{', '.join(_fixed(w) for w in sf.turn_weights)}]")
    parts.append(f"gap_s: {_gap_yaml(sf.gap)}")
    if sf.gap_from != "arrival":  # the default left out: a fit without completion times reads as before
        parts.append(f"gap_from: {sf.gap_from}")
    if sf.new_by_turn is None:
        parts.append(f"new_tokens: {new}")
    else:
        entries = []
        for lf, values in sf.new_by_turn:
            text, _ = _dist_yaml(lf, table, "new_tokens")
            if lf.chosen is None:  # each turn's observed values inline
                text = f"{{dist: empirical, values: [{', '.join(str(int(v)) for v in values.tolist())}]}}"
            entries.append(text)
        parts.append(f"new_tokens_by_turn: [{', '.join(entries)}]")
    if sf.output is not None:
        out, ci = _dist_yaml(sf.output, table, "output_tokens")
        lines += [f"      # session output_tokens: {sf.output.note}", *[f"      #   {c}" for c in ci]]
        parts.append(f"output_tokens: {out}")
    if sf.continue_slope is not None:
        parts.append(f"continue_by_prompt: {{log_odds_per_ln_tok: {sf.continue_slope.slope:.4f}, from_turn: 2}}")
    lines.append(f"      session: {{{', '.join(parts)}}}")
    return lines


def _process_yaml(a: ArrivalFit, s: float) -> str:
    """One arrival process as a YAML flow mapping, its rates x ``s``."""
    parts = [f"process: {a.process}", f"rate_rps: {_g(a.rate_rps * s, 6)}"]
    if a.process == "gamma":
        parts.append(f"cv: {_g(a.cv)}")
    if a.process == "mmpp" and a.mmpp is not None:
        m = a.mmpp
        parts.append(f"levels: [{', '.join(_g(r, 5) for r in m.rates_rps)}]")
        parts.append(f"mean_sojourn_s: [{', '.join(_g(h, 5) for h in m.mean_sojourn_s)}]")
        if m.regimes > 2:
            rows = ", ".join("[" + ", ".join(_g(x, 4) for x in row) + "]" for row in m.jumps)
            parts.append(f"jumps: [{rows}]")
    if a.has_profile:
        p = a.profile
        assert p is not None
        factors = ", ".join(_g(f, 4) for f in p.factors)
        # start_s to the millisecond, never rounded up to the period (it must stay below it)
        start = min(math.floor(p.start_s * 1000.0) / 1000.0, p.bin_s * len(p.rates_rps) - 0.001)
        start_txt = f"{start:.3f}".rstrip("0").rstrip(".")
        parts.append(f"profile: {{bin_s: {p.bin_s:g}, start_s: {start_txt}, factors: [{factors}]}}")
    if a.batch is not None:
        b = a.batch
        if b.geometric_ok:
            parts.append(f"batch: {{mean_size: {_g(b.mean_size, 5)}}}")
        else:
            parts.append(f"batch: {{size_weights: [{', '.join(_count(x) for x in b.sizes)}]}}")
    return "{" + ", ".join(parts) + "}"


def peak_rate_rps(a: ArrivalFit) -> float:
    """The fitted rate at its profile's busiest bin (the mean rate without a profile)."""
    return a.rate_rps * (float(a.profile.factors.max()) if a.has_profile and a.profile is not None else 1.0)


def _arrival_yaml(fit: TrafficFit) -> tuple[list[str], float]:
    """The arrival lines and the peak rate (what plan's demand scales)."""
    a, s = fit.arrival, fit.scale
    several = len(fit.classes) > 1
    head = "the whole log (comments only: each class has its own process)" if several else ""
    lines = [f"  # arrivals{', ' + head if head else ''}: {n}" for n in a.notes]
    lines.append(f"  # rate {a.rate_rps:.5g} req/s (95% CI {a.rate_ci[0]:.5g}..{a.rate_ci[1]:.5g})")
    if s != 1.0:
        lines.append(f"  # --scale {s:g}: every rate below is the fitted rate x {s:g}")
    if several:
        lines.append("  arrival: {process: by_class}")
    else:
        lines.append(f"  arrival: {_process_yaml(a, s)}")
    return lines, peak_rate_rps(a) * s


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
    for cf in fit.classes:
        name = table_name if not several else table_name.replace(".csv", f".{cf.name}.csv")
        body += _class_yaml(cf, name, several, fit.scale)
        needs = cf.lengths.joint or cf.lengths.prompt.chosen is None or cf.lengths.output.chosen is None
        if needs:
            pairs = zip(cf.table_prompt.tolist(), cf.table_output.tolist())
            tables[name] = "prompt_tokens,output_tokens\n" + "".join(f"{p},{o}\n" for p, o in pairs)
        sf = cf.session
        new_file = sf is not None and sf.new_by_turn is None and sf.new_tokens.chosen is None
        if sf is not None and (new_file or (sf.output is not None and sf.output.chosen is None)):
            pairs = zip(sf.new_values.tolist(), sf.output_values.tolist())
            tables[turns_table(name)] = "new_tokens,output_tokens\n" + "".join(f"{v},{o}\n" for v, o in pairs)
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
