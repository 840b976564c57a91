"""Paired comparison of scenario variants with common random numbers.

A *variant* is a name and a list of ``dotted.key=value`` overrides of the
scenario file (``fast:fleet.0.replicas=4,router.name=round-robin``). The
baseline (no overrides) and every variant are simulated over ``N``
replications; replication ``r`` uses seed ``base_seed + r`` for *every*
variant, so all of them see the same arrivals, lengths, surges and routing
draws (named streams, see ``sim.rng``) and differences come from the change,
not from the luck of the draw.

For each variant, class (plus ``all``) and metric the paired differences
``d_r = variant_r - baseline_r`` give a mean and a 95% confidence interval
from the t distribution with ``n - 1`` degrees of freedom (``n`` =
replications where both values exist). With ``n < 2`` the interval is
undefined (``None``). A difference is *significant* when its interval
excludes 0; *better*/*worse* follows the metric's direction (lower latency
and cost are better, higher goodput and attainment are better).
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.analysis.contracts import SCHEMA_VERSION, CompareDoc
from sim.analysis.forecast import forecast
from sim.analysis.replications import CONFIDENCE, replication_seeds, t_interval
from sim.analysis.variants import BASELINE, STRESSES, Variant, parse_variant
from sim.errors import FleetcastError
from sim.procs import worker_pool
from sim.scenario.events import check_events
from sim.scenario.spec import load_scenario

__all__ = [
    "Variant",
    "Metric",
    "METRICS",
    "STRESSES",
    "BASELINE",
    "parse_variant",
    "metric_values",
    "paired_stats",
    "stress_overrides",
    "CompareResult",
    "run_compare",
]


@dataclass(frozen=True)
class Metric:
    """One compared figure of a summary."""

    name: str  # column-style name with its unit, e.g. "ttft_p99_s"
    label: str  # human label, e.g. "TTFT p99"
    unit: str  # display unit ("ms", "req/s", "%", "$")
    scale: float  # display value = value * scale
    lower_is_better: bool
    overall_only: bool = False  # fleet-level figure: reported for class "all" only


METRICS: tuple[Metric, ...] = (
    Metric("ttft_p50_s", "TTFT p50", "ms", 1e3, True),
    Metric("ttft_p99_s", "TTFT p99", "ms", 1e3, True),
    Metric("tpot_p50_s", "TPOT p50", "ms", 1e3, True),
    Metric("tpot_p99_s", "TPOT p99", "ms", 1e3, True),
    Metric("e2e_p50_s", "E2E p50", "ms", 1e3, True),
    Metric("e2e_p99_s", "E2E p99", "ms", 1e3, True),
    Metric("goodput_rps", "goodput", "req/s", 1.0, False),
    Metric("attainment_pct", "attainment", "%", 1.0, False),
    Metric("usd_per_1m_output_tokens", "cost", "$/1M out tok", 1.0, True, overall_only=True),
    # the fleet's mean $/hour: an autoscaled pool's integrates its replicas over the window
    Metric("usd_per_hour", "cost", "$/hour", 1.0, True, overall_only=True),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}


# ----------------------------------------------------------------- metrics
def metric_values(summary: dict) -> dict[str, dict[str, float | None]]:
    """Class name (and ``"all"``) -> metric name -> value (``None`` when undefined)."""

    def group(g: dict, overall: bool) -> dict:
        out = {}
        for m in METRICS:
            if m.overall_only and not overall:
                continue
            if m.name == "usd_per_1m_output_tokens":
                v = summary["cost"].get("usd_per_1m_output_tokens")
            elif m.name == "usd_per_hour":
                v = summary["cost"].get("fleet_usd_per_hour")
            elif m.name in ("goodput_rps", "attainment_pct"):
                v = g.get(m.name)
            else:
                base, pct = m.name.rsplit("_", 2)[0], m.name.split("_")[1]
                v = (g.get(f"{base}_s") or {}).get(pct)
            out[m.name] = None if v is None or not math.isfinite(v) else float(v)
        return out

    res = {name: group(g, False) for name, g in summary["classes"].items()}
    res["all"] = group(summary["overall"], True)
    return res


def paired_stats(base, var, lower_is_better: bool, confidence: float = CONFIDENCE) -> dict:
    """Paired-t summary of ``var - base`` over the replications where both exist."""
    b = np.asarray([np.nan if x is None else x for x in base], dtype=float)
    v = np.asarray([np.nan if x is None else x for x in var], dtype=float)
    both = np.isfinite(b) & np.isfinite(v)
    d = v[both] - b[both]
    n = int(d.size)
    out: dict[str, Any] = {
        "n": n,
        "baseline_mean": _num(b[both].mean()) if n else None,
        "variant_mean": _num(v[both].mean()) if n else None,
        "diff_mean": _num(d.mean()) if n else None,
        "diff_sd": None,
        "diff_rel_pct": None,
        "ci_low": None,
        "ci_high": None,
        "significant": None,
        "direction": None,
    }
    if n == 0:
        return out
    mean = float(d.mean())
    if out["baseline_mean"]:
        out["diff_rel_pct"] = _num(100.0 * mean / abs(out["baseline_mean"]))
    if n >= 2:
        _, low, high = t_interval(d, confidence)  # type: ignore[misc]  # None only for no values (n >= 2 here)
        out.update(diff_sd=_num(d.std(ddof=1)), ci_low=_num(low), ci_high=_num(high))
        out["significant"] = bool(low > 0 or high < 0)
    if mean == 0:
        out["direction"] = "same"
    else:
        out["direction"] = "better" if (mean < 0) == lower_is_better else "worse"
    return out


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# ----------------------------------------------------------------- stress
def stress_overrides(scenario, stresses) -> list[str]:
    """Overrides that put ``scenario`` under the canned stresses: ``surge``
    (x3 for the middle third of the duration), ``bursty`` (gamma arrivals,
    cv=4, same rate), ``failure`` (the first replica fails at a third of the
    duration). A surge or failure is added only when the scenario has no
    event of that kind (its own events win)."""
    out: list[str] = []
    events = [ev.model_dump(mode="json") for ev in scenario.events]
    kinds = {ev["kind"] for ev in events}
    d = float(scenario.traffic.duration_s)
    for s in stresses:
        if s not in STRESSES:
            raise FleetcastError(f"unknown stress '{s}'; valid stresses: {', '.join(STRESSES)}")
        if s == "surge" and "surge" not in kinds:
            events.append({"kind": "surge", "start_s": d / 3.0, "end_s": 2.0 * d / 3.0, "factor": 3.0})
        elif s == "failure" and "replica-failure" not in kinds:
            if sum(p.replicas for p in scenario.fleet) < 2:
                raise FleetcastError("--stress failure needs a fleet of at least 2 replicas (one fails)")
            events.append({"kind": "replica-failure", "replica": f"{scenario.fleet[0].name}/0", "at_s": d / 3.0})
        elif s == "bursty":
            tr = scenario.traffic
            if tr.arrival.process == "by_class":
                raise FleetcastError(
                    "--stress bursty replaces the traffic's one arrival process; this scenario's classes each "
                    "have their own (process: by_class): give each class's arrival a gamma cv instead"
                )
            if tr.total_rate_rps() is None:
                raise FleetcastError(
                    f"--stress bursty needs a poisson, gamma or constant arrival process "
                    f"(a rate to keep), not {tr.arrival.process}"
                )
            arrival = {"process": "gamma", "cv": 4.0}
            if tr.arrival.rate_rps is not None:
                arrival["rate_rps"] = float(tr.arrival.rate_rps)
            out.append("traffic.arrival=" + json.dumps(arrival))
    if len(events) != len(scenario.events):
        out.append("events=" + json.dumps(events))
    return out


# ----------------------------------------------------------------- running
def _load(path: Path, overrides: list[str], seed: int | None, who: str):
    try:
        return load_scenario(path, overrides=overrides, seed=seed)
    except FleetcastError as exc:
        raise FleetcastError(f"variant '{who}': {exc}") from None


def _one_run(
    path: Path, overrides: list[str], seed: int, keep_records: bool, progress: Callable[[int, int], None] | None = None
):
    """Simulate one (variant, replication): metric values and, for
    replication 0, the window's ok requests (class, ttft_s, e2e_s)."""
    scenario = load_scenario(path, overrides=overrides, seed=seed)
    result, summary = forecast(scenario, progress=progress)
    records = None
    if keep_records:
        df = result.requests
        start, end = result.window
        arr = df["arrival_s"].to_numpy(dtype=float)
        keep = (arr >= start) & (arr < end) & (df["status"].astype(str) == "ok").to_numpy()
        records = pd.DataFrame(
            {
                "class": df["class"].astype(str).to_numpy()[keep],
                "ttft_s": df["ttft_s"].to_numpy(dtype=float)[keep],
                "e2e_s": df["e2e_s"].to_numpy(dtype=float)[keep],
            }
        )
    return metric_values(summary), records, len(result.requests)


@dataclass
class CompareResult:
    """Everything ``compare`` found: the table rows, the raw values, the
    replication-0 records and what was run."""

    rows: list[dict]  # one per variant x class x metric: paired_stats + labels
    raw: pd.DataFrame  # one row per variant x class x metric x replication
    records: dict[str, pd.DataFrame]  # variant (baseline included) -> rep-0 window ok requests
    meta: dict = field(default_factory=dict)  # scenario, seeds, variants, stress, events

    def to_json(self) -> dict:
        """JSON-ready (no NaN), identical for identical inputs."""
        return {
            **self.meta,
            "confidence": CONFIDENCE,
            "method": "paired t over replications "
            "(common random numbers: replication r uses seed base_seed + r for every variant)",
            "metrics": {m.name: {"label": m.label, "lower_is_better": m.lower_is_better} for m in METRICS},
            "rows": self.rows,
        }

    def contract(self) -> CompareDoc:
        """``to_json`` validated as ``compare.json``'s contract, with its ``schema_version``."""
        return CompareDoc.model_validate({**self.to_json(), "schema_version": SCHEMA_VERSION})


def run_compare(
    path: str | Path,
    variants: list[Variant],
    replications: int,
    *,
    seed: int | None = None,
    common_overrides: list[str] | tuple = (),
    stress: list[str] | tuple = (),
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> CompareResult:
    """Simulate the baseline and every variant over ``replications`` seeds and
    compare them pairwise (see the module doc). ``common_overrides`` apply to
    all (before the variant's); ``stress`` names canned stresses
    (``STRESSES``); ``jobs`` > 1 runs simulations in that many processes
    (same numbers). Errors (bad keys, events that do not fit) surface before
    anything runs."""
    path = Path(path)
    if replications < 1:
        raise FleetcastError(f"--replications must be at least 1, got {replications}")
    names = [v.name for v in variants]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise FleetcastError(f"variant names must be unique; repeated: {', '.join(dup)}")
    all_variants = [Variant(BASELINE, ())] + list(variants)
    base = _load(path, list(common_overrides), seed, BASELINE)
    base_seed = int(base.seed)
    seeds = replication_seeds(base_seed, replications)

    plan: dict[str, list[str]] = {}
    for v in all_variants:  # validate every variant (and its stressed events) up front
        ov = list(common_overrides) + list(v.overrides)
        sc = _load(path, ov, base_seed, v.name)
        try:
            ov += stress_overrides(sc, stress)
            sc = _load(path, ov, base_seed, v.name)
            check_events(sc)
        except FleetcastError as exc:
            msg = str(exc)
            raise FleetcastError(msg if msg.startswith("variant '") else f"variant '{v.name}': {msg}") from None
        plan[v.name] = ov

    tasks = [(v.name, r) for v in all_variants for r in range(replications)]
    total = len(tasks)
    results: dict[tuple[str, int], tuple] = {}
    if jobs <= 1:
        for k, (name, r) in enumerate(tasks):
            sub = (lambda d, n, k=k: progress(k * 1000 + int(1000 * d / max(n, 1)), total * 1000)) if progress else None
            results[(name, r)] = _one_run(path, plan[name], seeds[r], r == 0, sub)
        if progress:
            progress(total * 1000, total * 1000)
    else:
        with worker_pool(jobs, mp_context=multiprocessing.get_context("spawn")) as ex:  # Ctrl-C: stopped at once
            futs = {ex.submit(_one_run, path, plan[name], seeds[r], r == 0): (name, r) for name, r in tasks}
            for k, fut in enumerate(as_completed(futs), 1):
                results[futs[fut]] = fut.result()
                if progress:
                    progress(k * 1000, total * 1000)
    return _assemble(base, all_variants, plan, seeds, results, list(stress), path)


def _assemble(base, all_variants, plan, seeds, results, stress, path) -> CompareResult:
    classes = list(base.traffic.class_names) + ["all"]
    raw_rows, rows = [], []
    R = len(seeds)
    for v in all_variants[1:]:
        for cname in classes:
            for m in METRICS:
                if m.overall_only and cname != "all":
                    continue
                b = [results[(BASELINE, r)][0].get(cname, {}).get(m.name) for r in range(R)]
                x = [results[(v.name, r)][0].get(cname, {}).get(m.name) for r in range(R)]
                for r in range(R):
                    diff = None if b[r] is None or x[r] is None else x[r] - b[r]
                    raw_rows.append((v.name, cname, m.name, r, seeds[r], b[r], x[r], diff))
                rows.append(
                    {"variant": v.name, "class": cname, "metric": m.name, **paired_stats(b, x, m.lower_is_better)}
                )
    raw = pd.DataFrame(
        raw_rows,
        columns=["variant", "class", "metric", "replication", "seed", "baseline_value", "variant_value", "diff"],
    )
    raw = raw.astype(
        {
            "variant": "string",
            "class": "string",
            "metric": "string",
            "replication": "int64",
            "seed": "int64",
            "baseline_value": "float64",
            "variant_value": "float64",
            "diff": "float64",
        }
    )
    records = {v.name: results[(v.name, 0)][1] for v in all_variants}
    meta = {
        "scenario": {"name": base.name, "path": str(path)},
        "base_seed": seeds[0],
        "replications": R,
        "seeds": seeds,
        "variants": {v.name: list(v.overrides) for v in all_variants},
        "runs": {v.name: plan[v.name] for v in all_variants},
        "stress": stress,
        "classes": classes,
        "requests_per_run": {v.name: [int(results[(v.name, r)][2]) for r in range(R)] for v in all_variants},
        "note": None
        if R >= 2
        else "with 1 replication the confidence interval is undefined; use --replications 2 or more",
    }
    return CompareResult(rows=rows, raw=raw, records=records, meta=meta)
