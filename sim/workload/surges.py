"""Traffic surges: extra arrivals on top of a workload.

A surge (the scenario's ``events:`` entry of kind ``surge``: ``start_s``,
``end_s``, ``factor``) adds arrivals during its window. The extra requests
come from the separate named stream ``"surge"`` (one sub-seed per event), with
the same class mix, length distributions and shared prefixes, so the base
arrivals stay identical (common random numbers) and are merged with the extra
ones by arrival time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.rng import stream
from sim.workload.generate import Workload, generate_workload
from sim.workload.spec import DiurnalArrival, TrafficSpec

__all__ = ["merge_workloads", "add_surge", "with_surges"]


def merge_workloads(base: Workload, extra: Workload) -> Workload:
    """``base`` and ``extra`` requests in one workload sorted by arrival
    (stable: on a tie the base request comes first); every array, the prefix
    CSR included, is permuted consistently."""
    arrival = np.concatenate([base.arrival_s, extra.arrival_s])
    order = np.argsort(arrival, kind="stable")
    lens = np.concatenate([np.diff(base.prefix_offsets), np.diff(extra.prefix_offsets)])
    starts = np.concatenate([base.prefix_offsets[:-1], extra.prefix_offsets[:-1] + len(base.prefix_keys)])
    keys = np.concatenate([base.prefix_keys, extra.prefix_keys])
    ends = np.concatenate([base.prefix_end_tok, extra.prefix_end_tok])
    new_lens = lens[order]
    offsets = np.concatenate([[0], np.cumsum(new_lens)]).astype(np.int64)
    # chunk k of new request i sits at starts[order[i]] + k in the concatenated arrays
    gather = np.repeat(starts[order] - offsets[:-1], new_lens) + np.arange(offsets[-1], dtype=np.int64)
    after = think = None
    if base.after_rid is not None or extra.after_rid is not None:  # conversations released by a turn's end
        b_after, b_think = _released(base)
        e_after, e_think = _released(extra)
        where = np.empty(order.size, dtype=np.int64)
        where[order] = np.arange(order.size, dtype=np.int64)
        a = np.concatenate([b_after, np.where(e_after >= 0, e_after + len(base), -1)])[order]
        after = np.where(a >= 0, where[np.maximum(a, 0)], -1).astype(np.int64)
        think = np.concatenate([b_think, e_think])[order]
    return Workload(
        arrival_s=np.ascontiguousarray(arrival[order], dtype=np.float64),
        class_idx=np.concatenate([base.class_idx, extra.class_idx])[order].astype(np.int16),
        prompt_tokens=np.concatenate([base.prompt_tokens, extra.prompt_tokens])[order].astype(np.int32),
        output_tokens=np.concatenate([base.output_tokens, extra.output_tokens])[order].astype(np.int32),
        prefix_offsets=offsets,
        prefix_keys=np.ascontiguousarray(keys[gather], dtype=np.int64),
        prefix_end_tok=np.ascontiguousarray(ends[gather], dtype=np.int32),
        class_names=list(base.class_names),
        notes=list(base.notes) + list(extra.notes),
        after_rid=after,
        think_s=think,
    )


def _released(wl: Workload) -> tuple[np.ndarray, np.ndarray]:
    """(after_rid, think_s) of ``wl``, none released when it has none."""
    if wl.after_rid is None or wl.think_s is None:
        return np.full(len(wl), -1, dtype=np.int64), np.zeros(len(wl))
    return wl.after_rid, wl.think_s


def _shifted(arrival, ev, rate_rps: float) -> dict:
    """``arrival`` (a poisson/gamma/constant/mmpp process) as a mapping at ``rate_rps``, its
    profile moved so that the surge's time 0 is ``ev.start_s`` of the scenario's axis."""
    out = arrival.model_dump(exclude_none=True)
    out["rate_rps"] = rate_rps
    if arrival.profile is not None:
        p = arrival.profile
        start = (p.start_s + ev.start_s) % p.period_s
        out["profile"]["start_s"] = start if start < p.period_s else 0.0
    return out


def _surge_traffic(traffic, ev):
    """A TrafficSpec for the extra arrivals of ``ev``: the scenario's classes
    (as shares) at ``factor - 1`` times its rate, over the surge window.
    A rate profile (``arrival.profile``) is followed where the surge falls
    on it, and batches (``arrival.batch``) are kept; the classes' own
    processes (``by_class``) each at ``factor - 1`` times their rate when
    any has a profile or batches (else Poisson at their total rate)."""
    a = traffic.arrival
    length = ev.end_s - ev.start_s
    own = [c.arrival for c in traffic.classes] if a.process == "by_class" else []
    if any(o is not None and (o.profile is not None or o.batch is not None) for o in own):
        classes = []
        for cls in traffic.classes:
            data = cls.model_dump(exclude={"share", "rate_rps", "arrival"}, exclude_none=True)
            data["arrival"] = _shifted(cls.arrival, ev, cls.arrival.rate_rps * (ev.factor - 1.0))
            classes.append(data)
        return TrafficSpec.model_validate(
            {"duration_s": length, "arrival": {"process": "by_class"}, "classes": classes}
        )
    if a.process != "by_class" and not isinstance(a, DiurnalArrival) and (a.profile is not None or a.batch is not None):
        arrival = _shifted(a, ev, traffic.total_rate_rps() * (ev.factor - 1.0))
        return _with_classes(traffic, length, arrival)
    if isinstance(a, DiurnalArrival):
        arrival = {
            "process": "diurnal",
            "day_length_s": a.day_length_s,
            "start_hour": (a.start_hour + 24.0 * ev.start_s / a.day_length_s) % 24.0,
            "rate_points": [[h, r * (ev.factor - 1.0)] for h, r in a.rate_points],
        }
    elif a.process == "by_class":  # the classes' processes together: Poisson at their total rate, their shares
        arrival = {"process": "poisson", "rate_rps": traffic.total_rate_rps() * (ev.factor - 1.0)}
    else:
        arrival = {"process": a.process, "rate_rps": traffic.total_rate_rps() * (ev.factor - 1.0)}
        if a.process == "gamma":
            arrival["cv"] = a.cv
        if a.process == "mmpp":
            arrival["levels"], arrival["mean_sojourn_s"] = list(a.levels), list(a.mean_sojourn_s)
    return _with_classes(traffic, length, arrival)


def _with_classes(traffic, length: float, arrival: dict):
    """The surge's TrafficSpec: ``arrival`` with the scenario's classes as shares."""
    shares = traffic.shares()
    classes = []
    for c, cls in enumerate(traffic.classes):
        data = cls.model_dump(exclude={"share", "rate_rps", "arrival"}, exclude_none=True)
        if len(traffic.classes) > 1:
            data["share"] = float(shares[c])
        classes.append(data)
    if len(classes) > 1:  # shares must sum to 1 exactly after the float round trip
        classes[-1]["share"] = 1.0 - sum(c["share"] for c in classes[:-1])
    return TrafficSpec.model_validate({"duration_s": length, "arrival": arrival, "classes": classes})


def _bootstrap_surge(base: Workload, ev, rng: np.random.Generator) -> Workload:
    """Extra arrivals for a trace: Poisson at ``factor - 1`` times the trace's
    rate inside the window, each a copy (class, lengths, prefix chain) of a
    random trace request of the window."""
    pool = np.flatnonzero((base.arrival_s >= ev.start_s) & (base.arrival_s < ev.end_s))
    length = ev.end_s - ev.start_s
    rate = pool.size / length * (ev.factor - 1.0)
    n = int(rng.poisson(rate * length)) if pool.size else 0
    times = np.sort(rng.uniform(ev.start_s, ev.end_s, n))
    rows = pool[rng.integers(0, pool.size, n)] if n else np.zeros(0, dtype=np.int64)
    lens = np.diff(base.prefix_offsets)[rows]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    gather = np.repeat(base.prefix_offsets[rows] - offsets[:-1], lens) + np.arange(offsets[-1], dtype=np.int64)
    return Workload(
        arrival_s=times,
        class_idx=base.class_idx[rows],
        prompt_tokens=base.prompt_tokens[rows],
        output_tokens=base.output_tokens[rows],
        prefix_offsets=offsets,
        prefix_keys=base.prefix_keys[gather],
        prefix_end_tok=base.prefix_end_tok[gather],
        class_names=list(base.class_names),
    )


def add_surge(base: Workload, traffic, ev, seed: int, index: int, base_dir) -> Workload:
    """``base`` plus the extra arrivals of surge event number ``index``.

    The extra requests come from sub-seed ``stream(seed, "surge", index)``
    only, so ``base``'s requests are unchanged (and the same for every variant
    of a comparison). Synthetic traffic: generated like the scenario's own
    (classes, lengths, prefixes) at ``factor - 1`` times the rate; a trace:
    resampled from the trace's requests inside the window.
    """
    rng = stream(seed, "surge", index)
    if traffic.is_trace:
        extra = _bootstrap_surge(base, ev, rng)
    else:
        sub_seed = int(rng.integers(0, 2**63 - 1))
        extra = generate_workload(_surge_traffic(traffic, ev), sub_seed, base_dir)
        extra.arrival_s = extra.arrival_s + ev.start_s
        keep = extra.arrival_s < ev.end_s  # float shift may round onto the end
        if not keep.all():
            n = int(keep.sum())  # arrivals are sorted: the kept ones are a prefix
            extra = Workload(
                extra.arrival_s[:n],
                extra.class_idx[:n],
                extra.prompt_tokens[:n],
                extra.output_tokens[:n],
                extra.prefix_offsets[: n + 1],
                extra.prefix_keys[: extra.prefix_offsets[n]],
                extra.prefix_end_tok[: extra.prefix_offsets[n]],
                list(extra.class_names),
                after_rid=None if extra.after_rid is None else extra.after_rid[:n],  # a turn's releaser comes first
                think_s=None if extra.think_s is None else extra.think_s[:n],
            )
    extra.notes = [f"surge {index}: {len(extra)} extra arrival(s) in {ev.start_s:g}-{ev.end_s:g} s (x{ev.factor:g})"]
    return merge_workloads(base, extra)


def with_surges(traffic: TrafficSpec, seed: int, base_dir: Path, surges) -> Workload:
    """The generated workload of ``traffic`` plus the extra arrivals of each
    ``(index, surge)`` in ``surges`` (index: the event's place in ``events:``)."""
    workload = generate_workload(traffic, seed, base_dir)
    for i, ev in surges:
        workload = add_surge(workload, traffic, ev, seed, i, base_dir)
    return workload
