"""One testbed run end to end: server (started or attached), scraper, load,
run folder. Also the server-side counter deltas the checks compare against.

``execute_run`` never loses data: whatever happens (the server dies, Ctrl-C,
an exception) the folder gets the records gathered so far and a ``run.json``
that says ``completed: false`` and why.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import testbed.load as load  # first: Locust monkey-patches the standard library
from testbed import runfolder as rf
from testbed.prompts import RequestSpec
from testbed.scrape import MetricsScraper, cache_config, histogram, row_of, scrape

__all__ = ["execute_run", "server_version", "SERVER_HISTOGRAMS"]

#: histograms whose bucket deltas go into run.json (server-side latency view)
SERVER_HISTOGRAMS = (
    "vllm:time_to_first_token_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:iteration_tokens_total",
    "vllm:request_num_preemptions",
)


_START_LEAD_S = 0.25


def server_version(base_url: str) -> str | None:
    """vLLM's ``GET /version`` (None if the server does not answer it)."""
    try:
        with urllib.request.urlopen(base_url + "/version", timeout=5) as resp:  # noqa: S310
            return json.loads(resp.read()).get("version")
    except (OSError, ValueError):
        return None


def _safe_scrape(base_url: str):
    try:
        return scrape(base_url)
    except OSError:
        return None


def _server_deltas(before, after) -> dict:
    """Counter and histogram deltas between two scrapes (None if one is missing)."""
    if before is None or after is None:
        return {}
    r0, r1 = row_of(before), row_of(after)
    counters = {
        k: r1[k] - r0[k]
        for k in r0
        if k.endswith(("_total", "_sum", "_count")) and not (math.isnan(r0[k]) or math.isnan(r1[k]))
    }
    hists = {}
    for name in SERVER_HISTOGRAMS:
        e1, c1 = histogram(after, name)
        e0, c0 = histogram(before, name)
        if len(e1) and len(e0) == len(e1):
            hists[name] = {
                "le": [float(e) if math.isfinite(e) else "+Inf" for e in e1],
                "cumulative_count": [float(v) for v in (c1 - c0)],
            }
    return {"counters": counters, "histograms": hists}


def execute_run(
    out_dir: Path,
    specs: list[RequestSpec],
    server,
    *,
    mode: str = "open",
    users: int = 1,
    meta: dict | None = None,
    time_limit_s: float | None = None,
    request_timeout_s: float = 600.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run ``specs`` against ``server`` (a ``ServerProcess`` or ``AttachedServer``)
    and write the run folder ``out_dir``; returns the final run.json dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "kind": "fleetcast-testbed-run",
        "mode": mode,
        "users": users if mode == "closed" else None,
        "num_requests_planned": len(specs),
        **(meta or {}),
        "server_url": server.base_url,
        "server_pid": server.pid,
        "vllm_version": server_version(server.base_url),
        "hardware": rf.hardware_info(),
        "start_time": rf.now_iso(),
        "stop_time": None,
        "completed": False,
        "reason": "running (or the process died before finishing)",
        "client_pid": os.getpid(),
    }
    rf.write_run_json(out_dir, info)
    journal = rf.RecordJournal(out_dir)
    clock = time.perf_counter
    before = _safe_scrape(server.base_url)
    cache = cache_config(before or [])
    info["kv_cache"] = {
        "block_size": _int(cache.get("block_size")),
        "num_blocks": _int(cache.get("num_gpu_blocks")),
        "enable_prefix_caching": cache.get("enable_prefix_caching"),
        "cache_config_info": cache,
    }
    rf.write_run_json(out_dir, info)  # what an interrupted run's folder will say about the server
    # time 0 lies a little ahead, so Locust is up before the first scheduled send
    t0 = clock() + _START_LEAD_S
    scraper = MetricsScraper(server.base_url, clock, t0).start()
    result = None
    try:
        result = load.run_load(
            specs,
            server.host,
            server.port,
            mode=mode,
            users=users,
            model=info.get("served_model_name", "model"),
            time_limit_s=time_limit_s,
            request_timeout_s=request_timeout_s,
            watchdog=server.exit_reason,
            progress=progress,
            clock=clock,
            t0=t0,
            journal=journal.append,
        )
    finally:
        scraper.stop()
        died = server.exit_reason()
        if died and result is not None:  # even if every request came back (as an error)
            cause = getattr(server, "likely_cause", lambda: "")()
            result.completed = False
            result.reason = died + (f" ({cause})" if cause else "")
        if result is not None and result.completed:
            time.sleep(0.5)  # let the server's counters catch up with the last response
        sent_s = clock() - t0
        after = _safe_scrape(server.base_url) if not died else None
        if after is not None:
            scraper.add_row(sent_s, after)
        ts, raw = scraper.to_frames()
        if result is None:  # an exception inside the load loop: keep what we know
            info["reason"] = "aborted by an exception (see the console)"
            rows, itl = [], []
        else:
            info["completed"], info["reason"] = result.completed, result.reason
            rows, itl = result.requests, result.itl
            info.update(
                duration_s=result.duration_s,
                errors=result.errors,
                send_lag_s=result.send_lag_s,
                not_sent=result.not_sent,
                locust_stats=result.locust_stats,
            )
        df = rf.requests_frame(rows)
        rf.write_tables(out_dir, df, itl, ts, raw)
        journal.finish()  # requests.parquet holds every record now
        info["num_requests"] = len(df)
        info["status_counts"] = {k: int(v) for k, v in df["status"].value_counts().items()}
        info["server_deltas"] = _server_deltas(before, after)
        info["scrape_failures"] = scraper.failures
        info["stop_time"] = rf.now_iso()
        rf.write_run_json(out_dir, info)
    if result is not None and result.abort is not None:
        raise result.abort
    return info


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
