"""Replay testbed runs through the simulator with a profile; compare.

Each run's exact workload (arrival times, classes, prompt and output lengths)
goes through ``sim.engine.fleet.simulate`` with the server's real engine settings
(``calibration.runs.run_scenario``). Per run we compare p50/p90/p99 TTFT, TPOT
and E2E, output throughput and the mean number of running and waiting
sequences. ``write_outputs`` writes the error table (CSV + JSON), CDF and
time-series overlays (PNG) and an HTML page that shows them.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.logs.client_cpu import apply_client_cpu
from calibration.runs import Run, measured_metrics, run_scenario
from calibration.steady_state import steady_state_metrics
from sim.analysis.metrics import hist_percentiles
from sim.engine.fleet import simulate
from sim.engine.result import SimResult
from sim.errors import FleetcastError
from sim.perf.step_source import kernel_warnings, perf_sources  # the one import of the perf-model modules
from sim.workload.closed_loop import ClosedLoop

__all__ = [
    "Comparison",
    "validate_run",
    "replay_run",
    "replay_model",
    "error_table",
    "error_pivot",
    "NOT_MEASURED",
    "summarize_errors",
    "write_outputs",
    "METRICS",
    "AGGREGATE_METRICS",
    "TARGETS",
]

METRICS = (
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "tpot_p50_s",
    "tpot_p90_s",
    "tpot_p99_s",
    "e2e_p50_s",
    "e2e_p90_s",
    "e2e_p99_s",
    "output_tok_s",
    "mean_running",
    "mean_waiting",
)
#: compared only where an aggregate entry measured them (a static batch's latency; the means a
#: concurrency point or rate stage may publish instead of percentiles; the inter-token latency
#: percentiles and a saturated burst's steady-window mean batch)
AGGREGATE_METRICS = (
    "batch_latency_s",
    "ttft_mean_s",
    "tpot_mean_s",
    "e2e_mean_s",
    "itl_p50_s",
    "itl_p90_s",
    "itl_p95_s",
    "itl_p99_s",
    "avg_batch_size",
)
TARGETS = {  # the targets on held-out runs: median |error| in %, per metric group
    "ttft_p50_s": 10,
    "ttft_p90_s": 10,
    "tpot_p50_s": 10,
    "tpot_p90_s": 10,
    "ttft_p99_s": 15,
    "tpot_p99_s": 15,
    "output_tok_s": 5,
}


@dataclass
class Comparison:
    """One run: measured vs simulated."""

    run: Run
    measured: dict
    predicted: dict
    sim_requests: pd.DataFrame
    sim_timeseries: pd.DataFrame
    sim_preemptions: int


def replay_model(run: Run, profile: Path | None = None) -> tuple[str, list[str]]:
    """Where the replay's step times come from, as ``fleetcast run`` and ``plan`` would say it for the
    same pool (``perf_sources``), and what could not come from measured kernels (``kernel_warnings``).
    Without a profile this is exactly the model a forecast of that pool uses: the GPU's measured vLLM
    kernels (or the roofline at its architecture's efficiencies) and the catalog defaults."""
    with _replay_located(run):
        sc = run_scenario(run, profile)
        return next(iter(perf_sources(sc).values())), kernel_warnings(sc)


@contextmanager
def _replay_located(run: Run) -> Iterator[None]:
    """An error about the replay's one-pool scenario (built in memory: "<scenario>, field fleet.0
    (pool 'gpu'): ...", e.g. a max_model_len whose KV cache does not fit) names the run and where its
    engine settings came from (the sidecar, or the run folder), whose engine.* fields it speaks of."""
    try:
        yield
    except FleetcastError as exc:
        text = str(exc)
        if not text.startswith("<scenario>"):
            raise
        source = run.meta.get("engine_settings") or str(run.folder)
        why = text.split("): ", 1)[-1] if "): " in text else text.split(": ", 1)[-1]
        raise FleetcastError(f"{source} (the engine settings of {run.name}, replayed): {why}") from None


def replay_run(run: Run, profile: Path | None) -> SimResult:
    """The run's workload simulated with ``profile`` (None: no profile) on its engine settings: a
    concurrency point (``meta['closed_loop']``) from a closed-loop client (sim.workload.closed_loop),
    unless its clients start one by one (a concurrency row's ``warmup_rate_rps``): then its requests come
    chained, each released by its client's previous one (calibration.logs.aggregate)."""
    cl = run.meta.get("closed_loop")
    chained = run.workload.after_rid is not None
    closed = ClosedLoop(int(cl["clients"]), float(cl.get("think_s", 0.0))) if cl and not chained else None
    with _replay_located(run):
        return simulate(
            run_scenario(run, profile), workload=run.workload, closed_loop=closed, api_server=run.api_server
        )


def validate_run(run: Run, profile: Path | None) -> Comparison:
    """Simulate the run's workload with ``profile`` (None: no profile, the model ``fleetcast run`` and
    ``plan`` use for that pool) and collect both sides' metrics. A concurrency point
    (``meta['closed_loop']``) is replayed from a closed-loop client (sim.workload.closed_loop); a
    saturated burst (``meta['steady_state']``) has its throughput and mean batch over its steady
    window (calibration.steady_state). The replay's inter-token latency percentiles come from the
    engine's ITL histogram (every token gap of every request, as a client sees them)."""
    res = replay_run(run, profile)
    ts = res.timeseries
    sim_requests = res.requests
    cc = run.meta.get("client_cpu")
    if cc:  # the client's own CPU in its stamps (calibration/logs/client_cpu.py)
        sim_requests = apply_client_cpu(sim_requests, float(cc["per_request_s"]), float(cc["per_chunk_s"]))
    warmup = int(run.meta.get("warmup_requests", 0))
    if warmup:  # a load generator's warm-up: sent first (request ids 0 .. warmup-1), not measured
        kept = sim_requests[sim_requests["request_id"] >= warmup]
        predicted = measured_metrics(kept, ts, t0_s=float(kept["arrival_s"].min()))
    else:
        predicted = measured_metrics(sim_requests, ts, t0_s=0.0)
    if any(k.startswith("itl_") for k in run.meta.get("aggregate_measured") or {}):  # only where measured
        itl = hist_percentiles(np.asarray(res.itl_hist).sum(axis=0))
        predicted.update({f"itl_{q}_s": np.nan if itl[q] is None else itl[q] for q in ("p50", "p90", "p95", "p99")})
    steady = run.meta.get("steady_state")
    if steady is not None:
        predicted.update(
            steady_state_metrics(res.requests, ts, int(steady["max_num_seqs"]), int(steady["num_requests"]))
        )
    overhead_s = float(run.meta.get("client_overhead_s", 0.0))
    if overhead_s > 0:  # the source's client time outside the server: in its TTFT and E2E (aggregate.py)
        for k in list(predicted):
            if k.startswith(("ttft_", "e2e_")) and k.endswith("_s"):
                predicted[k] += overhead_s
    aggregate = run.meta.get("aggregate_measured")
    if aggregate is not None:  # an aggregate point: its row's figures are the measured side
        if "batch_latency_s" in aggregate:  # a static batch: sent at 0, measured until its last token
            predicted["batch_latency_s"] = predicted["completion_span_s"]
        return Comparison(run, dict(aggregate), predicted, sim_requests, ts, int(res.requests["preemptions"].sum()))
    # both sides from the same origin: the run's first request start is the replay's time 0
    t0 = float(run.requests["arrival_s"].min())
    return Comparison(
        run,
        measured_metrics(run.requests, run.timeseries, t0_s=t0),
        predicted,
        sim_requests,
        ts,
        int(res.requests["preemptions"].sum()),
    )


NOT_MEASURED = "not measured"


def error_table(comps: list[Comparison]) -> pd.DataFrame:
    """One row per (run, metric): measured, predicted, error % (signed), and a note:
    "not measured" where the run's log has no such measurement (a bench-serve result has no
    server time series: no running/waiting), so that the error is skipped, not zero."""
    rows = []
    for c in comps:
        # an aggregate entry's own figures only (a per-request run's measured side also has the means)
        agg = c.run.meta.get("aggregate_measured") or {}
        for m in METRICS + tuple(k for k in AGGREGATE_METRICS if k in agg):
            meas, pred = c.measured.get(m, np.nan), c.predicted.get(m, np.nan)
            if m not in c.measured:
                rows.append(
                    {
                        "run": c.run.name,
                        "mode": c.run.mode,
                        "metric": m,
                        "measured": np.nan,
                        "predicted": pred,
                        "error_pct": np.nan,
                        "note": NOT_MEASURED,
                    }
                )
                continue
            if m == "mean_waiting":  # near zero at low load: relative error is meaningless
                err = np.nan if meas < 0.5 else (pred - meas) / meas * 100
            else:
                err = (pred - meas) / meas * 100 if meas and np.isfinite(meas) else np.nan
            rows.append(
                {
                    "run": c.run.name,
                    "mode": c.run.mode,
                    "metric": m,
                    "measured": meas,
                    "predicted": pred,
                    "error_pct": err,
                    "note": "",
                }
            )
    return pd.DataFrame(rows)


def error_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """Error % per run (rows) and metric (columns) as display strings: signed, one decimal;
    "not measured" where the run has no measurement, "–" where the error is undefined."""

    def cell(r) -> str:
        if r["note"] == NOT_MEASURED:
            return NOT_MEASURED
        v = r["error_pct"]
        return "–" if v != v else f"{v:+.1f}"

    t = table.assign(cell=table.apply(cell, axis=1))
    piv = t.pivot(index="run", columns="metric", values="cell")
    return piv[[m for m in METRICS + AGGREGATE_METRICS if m in piv.columns]]


def summarize_errors(table: pd.DataFrame, mode: str | None = "open") -> dict:
    """Median |error| % per metric over the runs of ``mode`` (None: all), and the targets met."""
    t = table if mode is None else table[table["mode"] == mode]
    out = {}
    for m in METRICS + AGGREGATE_METRICS:
        v = t.loc[t["metric"] == m, "error_pct"].dropna().abs()
        if len(v):
            out[m] = {
                "median_abs_pct": round(float(v.median()), 2),
                "max_abs_pct": round(float(v.max()), 2),
                "runs": int(len(v)),
            }
            if m in TARGETS:
                out[m]["target_pct"] = TARGETS[m]
                out[m]["met"] = bool(v.median() <= TARGETS[m])
    return out


def _cdf(ax, values, label, style):
    v = np.sort(np.asarray(values, float)[np.isfinite(values)])
    if len(v):
        ax.plot(v, np.arange(1, len(v) + 1) / len(v), style, label=label)


def _figures(c: Comparison, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slug = c.run.name.replace("/", "__")
    names = []
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    ok_m = c.run.requests[c.run.requests["status"] == "ok"]
    ok_s = c.sim_requests[c.sim_requests["status"] == "ok"]
    for ax, m in zip(axes, ("ttft_s", "tpot_s", "e2e_s")):
        _cdf(ax, ok_m[m].to_numpy(float) * 1e3, "measured (vLLM)", "k-")
        _cdf(ax, ok_s[m].to_numpy(float) * 1e3, "simulated", "C1--")
        ax.set_xlabel(f"{m[:-2].upper()} (ms)")
        ax.set_ylabel("CDF")
        ax.grid(alpha=0.3)
    names.append(_save(plt, fig, axes[0], "lower right", f"{c.run.name}: latency CDFs", out / f"{slug}-cdf.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for ax, col in zip(axes, ("running", "waiting")):
        if len(c.run.timeseries):
            ax.step(c.run.timeseries["t_s"], c.run.timeseries[col], "k-", where="post", label="measured (/metrics)")
        else:
            ax.set_title(f"measured: {NOT_MEASURED} (the log has no server time series)", fontsize=8)
        ax.step(c.sim_timeseries["t_s"], c.sim_timeseries[col], "C1--", where="post", label="simulated")
        ax.set_xlabel("time (s)")
        ax.set_ylabel(f"{col} sequences")
        ax.grid(alpha=0.3)
    names.append(
        _save(
            plt,
            fig,
            axes[0],
            "upper right",
            f"{c.run.name}: running / waiting over time",
            out / f"{slug}-timeseries.png",
        )
    )
    return names


def _save(plt, fig, legend_ax, legend_loc: str, title: str, path: Path) -> str:
    """Legend, title, layout; write the PNG, close the figure; its file name."""
    legend_ax.legend(loc=legend_loc)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def write_outputs(comps: list[Comparison], table: pd.DataFrame, out: Path, profile_name: str) -> dict:
    """errors.csv, errors.json, one CDF + one time-series PNG per run, index.html.

    Written into a temporary folder inside ``out`` and moved in when all are
    done, so a failure leaves no half-written set; a folder that cannot be
    written is a FleetcastError."""
    out = Path(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".validate-", dir=out))
        try:
            summary = _write_outputs(comps, table, tmp, profile_name)
            for f in sorted(tmp.iterdir()):
                os.replace(f, out / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise FleetcastError(
            f"cannot write the validation outputs to {out}: {exc.strerror or exc}; choose a folder you can write"
        ) from None
    return summary


def _write_outputs(comps: list[Comparison], table: pd.DataFrame, out: Path, profile_name: str) -> dict:
    table.to_csv(out / "errors.csv", index=False, float_format="%.6g")
    summary = {
        "profile": profile_name,
        "held_out_open_loop": summarize_errors(table, "open"),
        "closed_loop": summarize_errors(table, "closed"),
        "runs": {
            c.run.name: {
                "mode": c.run.mode,
                "source": c.run.meta.get("source", "testbed run folder"),
                "gpu": c.run.gpu,
                "tensor_parallel": c.run.tp,
                "measured": c.measured,
                "predicted": c.predicted,
                "not_measured": [m for m in METRICS if m not in c.measured],
                "failed_requests": c.run.failed,
                "notes": list(c.run.notes),
                "sim_preemptions": c.sim_preemptions,
                "server_preemptions": _server_preemptions(c.run),
            }
            for c in comps
        },
    }
    (out / "errors.json").write_text(json.dumps(summary, indent=2, default=float, allow_nan=True) + "\n")
    figs = {c.run.name: _figures(c, out) for c in comps}
    parts = [
        f"<html><head><meta charset='utf-8'><title>validation: {html.escape(profile_name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em} table{border-collapse:collapse} "
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        f"<h1>Validation of profile {html.escape(profile_name)}</h1>",
        "<p>Simulated (same arrivals, classes, lengths and engine settings) vs measured vLLM runs. "
        "Error = (simulated − measured) / measured.</p>",
    ]
    parts.append("<h2>Error (%) per run</h2>" + error_pivot(table).to_html())
    failed = {c.run.name: c.run.failed for c in comps if c.run.failed}
    if failed:
        parts.append(
            "<p>Failed requests (left out of the latencies and throughput, not replayed): "
            + ", ".join(f"{html.escape(k)}: {v}" for k, v in failed.items())
            + "</p>"
        )
    for run, names in figs.items():
        parts.append(
            f"<h3>{html.escape(run)}</h3>" + "".join(f"<img src='{n}' style='max-width:100%'><br>" for n in names)
        )
    parts.append("</body></html>")
    (out / "index.html").write_text("\n".join(parts), encoding="utf-8")
    return summary


def _server_preemptions(run: Run) -> float | None:
    v = ((run.meta.get("server_deltas") or {}).get("counters") or {}).get("preemptions_total")
    return None if v is None else float(v)
