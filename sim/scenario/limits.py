"""What one run may hold, checked before anything is allocated.

A scenario can ask for more than a machine holds with one number: a rate of a
million requests per second, a time-series interval of a microsecond. These
checks estimate the two things that grow with such numbers (requests, and
time-series rows) from the validated scenario and refuse, naming the field,
the estimate and the limit, before the engine allocates anything.
"""

from __future__ import annotations

import math

from sim.workload.spec import DiurnalArrival

# Each function takes the ``sim.scenario.spec.Scenario`` that module has just validated (it
# imports this one), so the type is named in words, not imported.

__all__ = [
    "MAX_REQUESTS",
    "MAX_TIMESERIES_ROWS",
    "MAX_TIMELINE_BINS",
    "expected_requests",
    "timeseries_rows",
    "size_problems",
]

#: Requests one run may generate. Memory grows with requests (records, per-request state):
#: bench/sim_speed.py case b, 1M requests on 64 replicas, peaked at 867 MB (2026-11-26), so
#: this many take about 15 GB, within a 24 GB machine.
MAX_REQUESTS = 20_000_000
#: Rows of the per-replica time series (one per replica per tick, over the run and its drain).
MAX_TIMESERIES_ROWS = 5_000_000
#: Bins of the timeline a run reports (one per simulated hour of a diurnal curve: ``day_length_s / 24``).
#: A day of 1 ms over an hour's run asked for 86 million (300 s and 3.2 GB, no progress line).
MAX_TIMELINE_BINS = 100_000


def expected_requests(scenario) -> float | None:
    """Requests the traffic generates on average (None for a trace: its file bounds it)."""
    tr = scenario.traffic
    if isinstance(tr.arrival, DiurnalArrival):  # an upper bound: the peak rate all day
        return max(r for _, r in tr.arrival.rate_points) * tr.duration_s
    rate = tr.total_rate_rps()
    return None if rate is None else rate * tr.duration_s


def timeseries_rows(scenario) -> float:
    """Time-series rows of a run at most: replicas x ticks over the traffic and the drain."""
    replicas = sum(p.max_replicas for p in scenario.fleet)
    ticks = math.ceil((scenario.traffic.duration_s + scenario.sim.drain_s) / scenario.timeseries_interval_s) + 1
    return replicas * ticks


def size_problems(scenario) -> list[tuple[tuple, str]]:
    """(field path, message) for each limit the scenario exceeds."""
    out: list[tuple[tuple[str, ...], str]] = []
    n = expected_requests(scenario)
    if n is not None and n > MAX_REQUESTS:
        tr = scenario.traffic
        field: tuple[str, ...] = (
            ("traffic", "arrival", "rate_rps") if getattr(tr.arrival, "rate_rps", None) else ("traffic",)
        )
        out.append(
            (
                field,
                f"the traffic generates about {n:,.0f} requests (rate x duration_s "
                f"{tr.duration_s:g} s), more than the {MAX_REQUESTS:,} one run may hold; lower the "
                f"rate or traffic.duration_s",
            )
        )
    interval = scenario.sim.timeseries_interval_s
    span_s = scenario.traffic.duration_s + scenario.sim.drain_s
    if interval is not None and not interval <= span_s:  # .inf as well: one sample at t = 0
        out.append(
            (
                ("sim", "timeseries_interval_s"),
                f"an interval of {interval:g} s is longer than the run (traffic.duration_s + sim.drain_s = "
                f"{span_s:g} s), so the time series would hold one sample at 0 s; give at most {span_s:g} s, "
                f"or leave it out (duration/1000)",
            )
        )
        return out
    arrival = scenario.traffic.arrival
    if isinstance(arrival, DiurnalArrival):
        bins = span_s / (arrival.day_length_s / 24.0)
        if bins > MAX_TIMELINE_BINS:
            out.append(
                (
                    ("traffic", "arrival", "day_length_s"),
                    f"a day of {arrival.day_length_s:g} s repeats {span_s / arrival.day_length_s:,.0f} times in "
                    f"the run (traffic.duration_s + sim.drain_s = {span_s:g} s): its hourly timeline would have "
                    f"{bins:,.0f} bins, more than {MAX_TIMELINE_BINS:,} (MAX_TIMELINE_BINS); give at least "
                    f"{24 * span_s / MAX_TIMELINE_BINS:.3g} s",
                )
            )
    rows = timeseries_rows(scenario)
    if rows > MAX_TIMESERIES_ROWS:
        field = ("sim", "timeseries_interval_s") if scenario.sim.timeseries_interval_s else ("fleet",)
        out.append(
            (
                field,
                f"the time series would have {rows:,.0f} rows (replicas x ticks every "
                f"{scenario.timeseries_interval_s:g} s over traffic.duration_s + sim.drain_s), more than "
                f"{MAX_TIMESERIES_ROWS:,}; set sim.timeseries_interval_s to at least "
                f"{scenario.timeseries_interval_s * rows / MAX_TIMESERIES_ROWS:.3g} s",
            )
        )
    return out
