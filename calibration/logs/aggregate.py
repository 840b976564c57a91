"""Aggregate load points: closed-loop concurrency points (``*.concurrency.csv``), constant-rate
stages (``*.stages.csv``) and saturated bursts (``*.burst.csv``), each row measured only as
percentiles (docs/run-logs.md, "Concurrency points and rate stages", "Saturated bursts").

A public benchmark often publishes, per load point, only aggregate figures (TTFT/TPOT/E2E
percentiles, output throughput) and the workload that produced them, not per-request records. Each
row here is one such point; the replay regenerates its workload and compares the same aggregates:

- a **concurrency point** (``concurrency``, ``num_requests``): a closed-loop client
  (``sim.workload.closed_loop``) keeps ``concurrency`` requests in flight, sending the next one
  ``think_s`` (default 0) after each one ends, until ``num_requests`` were sent (``vllm bench serve
  --max-concurrency``, aiconfigurator's and InferenceX's concurrency points). Mode ``closed``.
  ``warmup_requests`` (optional, default 0): that many requests are sent first by the same
  clients and left out of the compared figures, for a warm-up that runs straight on into the
  measured requests (or a stage that ran on after another, its clients already busy);
  ``num_requests`` are the measured ones after them. A warm-up phase that ends before the
  measured requests start together (aiperf's, ``benchmark_serving``'s ``--num-warmups``) leaves an
  idle server: 0. ``warmup_rate_rps`` (optional, with ``warmup_requests`` >= ``concurrency``): the
  clients start one by one, evenly spaced at that rate, not all at 0, and each later request is sent by
  the client of the request ``concurrency`` before it when that one ends (chained requests of the
  workload, ``_staggered_clients``): a load generator that sends at a rate until its cap binds
  (inference-perf's capped stages). Clients that all start at 0 with equal service times move in
  lock-step waves in a replay.
- a **rate stage** (``rate_rps``, ``duration_s``): requests sent at ``rate_rps`` for ``duration_s``
  seconds, evenly spaced (``arrival`` ``constant``, the default), as a Poisson process
  (``poisson``; seed ``seed``, default 0), or as a Poisson process held to the row's count and span
  (``poisson_fixed``: the same count, exponential gaps scaled to sum to ``duration_s``, what
  inference-perf's ``constant`` load type sends), replayed alone on an idle server. Mode ``open``.
  ``warmup_requests`` (optional, default 0): that many requests are sent first, evenly spaced at
  ``rate_rps``, the stage's own arrivals after them, and left out of the compared figures; warm-up
  request i has prefix group i mod ``prefix_groups`` and the stage's request r, r mod ``prefix_groups``
  (its lengths are drawn apart, so the stage's own are those without it): a stage that ran after others on
  one server with prefix caching finds the prompts they sent cached (inference-perf numbers each stage's
  requests from 0, request n taking prompt n mod the prompt count).
- a **saturated burst** (``num_requests``, ``max_num_seqs``): every request sent at 0 to a server
  whose batch cap (vLLM ``--max-num-seqs``) is the row's, so it runs at that cap until the queue
  drains (the ML.ENERGY Benchmark's method). Measured over its steady window
  (``calibration.steady_state``): output tokens/s, the mean batch (``avg_batch_size``); the ITL
  percentiles over all requests. Mode ``open``; regime ``saturation``.

Lengths, per row: ``prompt_tokens`` / ``output_tokens`` (fixed), or ``prompt_tokens_mean`` and
``prompt_tokens_std`` (a normal distribution, rounded, clipped to ``prompt_tokens_min`` ..
``prompt_tokens_max``, default 1 .. 10,000,000; the same for output), or ``prompt_tokens_min`` and
``prompt_tokens_max`` alone (integers uniform on ``[min, max]``, both ends included: ``vllm bench
serve``'s random dataset with ``--random-range-ratio r`` draws ``randint(int(L*r), L + 1)``), drawn
from the row's ``seed``, or, for outputs, a histogram (``output_tokens_hist_edges`` and ``_counts``,
space-separated bin edges and counts, one length per request: ``calibration.logs.length_hist``).
``prompt_repeats`` (optional, default 1, dividing the requests): ``num_requests / prompt_repeats``
distinct prompts, the whole list sent that many times over (request r has the prompt of request
r mod that count: a whole-prompt prefix a server with prefix caching reuses). Shared prefixes,
optional: ``prefix_tokens`` (the length of a shared prefix) and ``prefix_groups`` (how many distinct ones; request r gets prefix r mod groups), so a server with
prefix caching reuses them as it did. ``client_overhead_s``, optional: seconds the source's own client
adds to every request outside the server (e.g. a new connection per request), which its TTFT and
E2E include and a server-side forecast does not: the replay adds it to the forecast TTFT and E2E,
and a closed-loop client waits it before each next send (``think_s`` plus it). Measured: at least one of ``ttft_p50_s`` ... ``e2e_p99_s``, ``ttft_mean_s``,
``tpot_mean_s``, ``e2e_mean_s``, ``output_tok_s``, ``itl_p50_s`` ... ``itl_p99_s`` (and, for a burst,
``avg_batch_size``); empty cells are "not measured". Engine settings
come from the sidecar as for any log. A bad cell is a FleetcastError naming the file, line and field.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.logs.length_hist import hist_lengths
from calibration.logs.sidecar import LogSettings, load_settings
from calibration.logs.static_batch import read_csv_table
from calibration.runs import Run
from sim.errors import FleetcastError
from sim.rng import stream
from sim.workload.distributions import MAX_TOKENS, Normal, Uniform
from sim.workload.generate import Workload, prefix_key

__all__ = [
    "CONCURRENCY_SUFFIX",
    "STAGES_SUFFIX",
    "BURST_SUFFIX",
    "MEASURED_FIELDS",
    "is_aggregate_table",
    "load_aggregate",
]

CONCURRENCY_SUFFIX = ".concurrency.csv"
STAGES_SUFFIX = ".stages.csv"
BURST_SUFFIX = ".burst.csv"
MEASURED_FIELDS = tuple(f"{m}_p{q}_s" for m in ("ttft", "tpot", "e2e") for q in (50, 90, 99)) + (
    "ttft_mean_s",
    "tpot_mean_s",
    "e2e_mean_s",
    "output_tok_s",
    "itl_p50_s",
    "itl_p90_s",
    "itl_p95_s",
    "itl_p99_s",
)
BURST_MEASURED = MEASURED_FIELDS + ("avg_batch_size",)  # the steady window's mean running sequences
_DOC = 'docs/run-logs.md, "Concurrency points and rate stages"'
_BURST_DOC = 'docs/run-logs.md, "Saturated bursts"'
_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}
_KINDS = {  # suffix -> (kind, the row's load columns)
    CONCURRENCY_SUFFIX: ("concurrency", ("concurrency", "num_requests")),
    STAGES_SUFFIX: ("stages", ("rate_rps", "duration_s")),
    BURST_SUFFIX: ("burst", ("num_requests", "max_num_seqs")),
}
_MAX_NUM_SEQS = 4096  # the sidecar's engine.max_num_seqs bound
_MAX_REQUESTS = 1_000_000  # one row's requests: far above any published point, below a runaway table


def is_aggregate_table(path: Path) -> bool:
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in _KINDS)


def load_aggregate(path: Path, sidecar: Path | None = None, overrides: list[str] | None = None) -> list[Run]:
    """Every row of a concurrency, stage or burst table as a replayable ``Run`` (module doc)."""
    path = Path(path)
    suffix = next(s for s in _KINDS if path.name.lower().endswith(s))
    kind, load_cols = _KINDS[suffix]
    rows = _read(path, load_cols, kind)
    st = load_settings(path, sidecar, overrides)
    return [_run(path, line, rec, st, kind) for line, rec in rows]


def _read(path: Path, load_cols: tuple[str, ...], kind: str) -> list[tuple[int, dict]]:
    measured, doc = _measured_doc(kind)

    def check(header: list[str]) -> None:
        need = list(load_cols)
        for which in ("prompt_tokens", "output_tokens"):
            uniform = f"{which}_min" in header and f"{which}_max" in header
            if which not in header and f"{which}_mean" not in header and f"{which}_hist_edges" not in header:
                if not uniform:
                    hist = f" (or a histogram: {which}_hist_edges and _counts)" if which == "output_tokens" else ""
                    need.append(f"{which} (or {which}_mean and {which}_std, or {which}_min and {which}_max){hist}")
        missing = [f for f in need if f not in header]
        if not any(m in header for m in measured):
            missing.append(f"a measured column ({', '.join(measured)})")
        if missing:
            raise FleetcastError(
                f"{path}, line 1: the header lacks {', '.join(missing)}; a {kind} table has "
                f"{', '.join(load_cols)}, the lengths and measured columns ({doc})"
            )

    return read_csv_table(path, check, f"a {kind} table has one row per measured point", doc)


def _measured_doc(kind: str) -> tuple[tuple[str, ...], str]:
    return (BURST_MEASURED, _BURST_DOC) if kind == "burst" else (MEASURED_FIELDS, _DOC)


def _num(path: Path, line: int, rec: dict, fld: str, *, integer: bool = False, zero_ok: bool = False) -> float:
    text = rec.get(fld, "")
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    ok = math.isfinite(v) and (v >= 0 if zero_ok else v > 0) and (not integer or v == int(v))
    if not ok:
        if integer:
            what = "an integer >= 0" if zero_ok else "an integer >= 1"
        else:
            what = "a number >= 0" if zero_ok else "a number > 0"
        raise FleetcastError(f"{path}, line {line}, field {fld}: must be {what}, got {text!r} ({_DOC})")
    return int(v) if integer else v


def _lengths(path: Path, line: int, rec: dict, which: str, n: int, rng: np.random.Generator) -> tuple:
    """``n`` lengths of ``which`` (prompt_tokens / output_tokens) and their description."""
    if which == "output_tokens" and rec.get(f"{which}_hist_edges", "") != "":
        return hist_lengths(path, line, rec, which, n, rng)
    if rec.get(which, "") != "":
        v = int(_num(path, line, rec, which, integer=True))
        if v > MAX_TOKENS:
            raise FleetcastError(f"{path}, line {line}, field {which}: at most {MAX_TOKENS:,}, got {v} ({_DOC})")
        return np.full(n, v, dtype=np.int32), f"{v}"
    if rec.get(f"{which}_mean", "") == "":
        if rec.get(f"{which}_min", "") != "" and rec.get(f"{which}_max", "") != "":  # uniform on [min, max]
            lo = int(_num(path, line, rec, f"{which}_min", integer=True))
            hi = int(_num(path, line, rec, f"{which}_max", integer=True))
            if not lo <= hi <= MAX_TOKENS:
                raise FleetcastError(
                    f"{path}, line {line}, field {which}_max: must be >= {which}_min ({lo}) and at most "
                    f"{MAX_TOKENS:,}, got {hi} ({_DOC})"
                )
            return Uniform(lo, hi).sample(rng, n).astype(np.int32), f"uniform [{lo}, {hi}]"
        raise FleetcastError(
            f"{path}, line {line}, field {which}: empty; give {which} (fixed), {which}_mean and {which}_std, "
            f"or {which}_min and {which}_max ({_DOC})"
        )
    mean = _num(path, line, rec, f"{which}_mean")
    std = _num(path, line, rec, f"{which}_std", zero_ok=True)
    lo = int(_num(path, line, rec, f"{which}_min", integer=True)) if rec.get(f"{which}_min") else 1
    hi = int(_num(path, line, rec, f"{which}_max", integer=True)) if rec.get(f"{which}_max") else MAX_TOKENS
    if not lo <= mean <= hi:
        raise FleetcastError(
            f"{path}, line {line}, field {which}_mean: {mean:g} is outside {which}_min..{which}_max "
            f"({lo}..{hi}) ({_DOC})"
        )
    values = Normal(mean, std, lo, min(hi, MAX_TOKENS)).sample(rng, n)
    return values.astype(np.int32), f"normal(mean {mean:g}, std {std:g}) in [{lo}, {hi}]"


def _run(path: Path, line: int, rec: dict, st: LogSettings, kind: str) -> Run:
    seed = int(_num(path, line, rec, "seed", integer=True, zero_ok=True)) if rec.get("seed") else 0
    load: dict = {}
    overhead_s = _num(path, line, rec, "client_overhead_s", zero_ok=True) if rec.get("client_overhead_s") else 0.0
    stage_warmup = 0  # a rate stage's warm-up (its distinct prompts sent before it)
    if kind == "concurrency":
        clients = int(_num(path, line, rec, "concurrency", integer=True))
        n = int(_num(path, line, rec, "num_requests", integer=True))
        think_s = _num(path, line, rec, "think_s", zero_ok=True) if rec.get("think_s") else 0.0
        warmup = (
            int(_num(path, line, rec, "warmup_requests", integer=True, zero_ok=True))
            if rec.get("warmup_requests")
            else 0
        )
        default_name = f"c{clients}-n{n}"
        load = {"concurrency": clients, "num_requests": n, "think_s": think_s}
        if warmup:
            load["warmup_requests"] = warmup
            n += warmup  # sent in all: the warm-up first, then the measured ones
        arrival_s = np.zeros(n)
        start_rate = _num(path, line, rec, "warmup_rate_rps") if rec.get("warmup_rate_rps") else 0.0
        if start_rate:  # the clients start one by one at that rate: chained requests (_staggered_clients)
            if warmup < clients:
                raise FleetcastError(
                    f"{path}, line {line}, field warmup_rate_rps: needs warmup_requests >= concurrency ({clients}), "
                    f"got {warmup} (the clients' first requests are the warm-up; {_DOC})"
                )
            load["warmup_rate_rps"] = start_rate
    elif kind == "burst":
        for fld in ("warmup_requests", "warmup_rate_rps"):
            if rec.get(fld):
                raise FleetcastError(
                    f"{path}, line {line}, field {fld}: only a concurrency table has a warm-up ({_BURST_DOC})"
                )
        n = int(_num(path, line, rec, "num_requests", integer=True))
        cap = int(_num(path, line, rec, "max_num_seqs", integer=True))
        if cap > _MAX_NUM_SEQS:
            raise FleetcastError(
                f"{path}, line {line}, field max_num_seqs: at most {_MAX_NUM_SEQS} (the sidecar's limit), got {cap} "
                f"({_BURST_DOC})"
            )
        arrival_s = np.zeros(n)
        load = {"num_requests": n, "max_num_seqs": cap}
        default_name = f"s{cap}-n{n}"
    else:
        if rec.get("warmup_rate_rps"):
            raise FleetcastError(
                f"{path}, line {line}, field warmup_rate_rps: only a concurrency table's clients start at a rate "
                f"(a rate stage's warm-up is sent at rate_rps; {_DOC})"
            )
        rate = _num(path, line, rec, "rate_rps")
        dur = _num(path, line, rec, "duration_s")
        process = rec.get("arrival") or "constant"
        if process not in ("constant", "poisson", "poisson_fixed"):
            raise FleetcastError(
                f"{path}, line {line}, field arrival: must be constant, poisson or poisson_fixed, got {process!r} "
                f"({_DOC})"
            )
        n = max(1, round(rate * dur))
        if process == "constant":
            arrival_s = np.arange(n, dtype=float) / rate
        else:
            gaps_s = stream(seed, "arrivals").exponential(1.0 / rate, size=n)
            if process == "poisson_fixed":  # n exponential gaps scaled to span the stage (module doc)
                gaps_s *= dur / gaps_s.sum()
            arrival_s = np.cumsum(gaps_s)
            arrival_s -= arrival_s[0]
        load = {"rate_rps": rate, "duration_s": dur, "arrival": process}
        default_name = f"r{rate:g}"
        stage_warmup = (
            int(_num(path, line, rec, "warmup_requests", integer=True, zero_ok=True))
            if rec.get("warmup_requests")
            else 0
        )
        if stage_warmup:  # sent first at the stage's rate, the stage after them (module doc)
            arrival_s = np.concatenate([np.arange(stage_warmup) / rate, arrival_s + stage_warmup / rate])
            load["warmup_requests"] = stage_warmup
    if n + stage_warmup > _MAX_REQUESTS:
        raise FleetcastError(
            f"{path}, line {line}: {n + stage_warmup:,} requests; at most {_MAX_REQUESTS:,} per row ({_DOC})"
        )
    repeats = _prompt_repeats(path, line, rec, n)
    if stage_warmup and repeats > 1:
        raise FleetcastError(
            f"{path}, line {line}, field warmup_requests: not with prompt_repeats on a rate stage; give the "
            f"shared prompts as prefix_tokens / prefix_groups ({_DOC})"
        )
    prompts, p_desc = _lengths(path, line, rec, "prompt_tokens", n // repeats, stream(seed, "lengths", 0))
    if repeats > 1:  # the distinct prompts sent again, in order: a whole-prompt prefix each (module doc)
        prompts = np.tile(prompts, repeats)
        rec = {**rec, "prefix_tokens": str(MAX_TOKENS), "prefix_groups": str(n // repeats)}
    outputs, o_desc = _lengths(path, line, rec, "output_tokens", n, stream(seed, "lengths", 1))
    index = None
    if stage_warmup:  # the warm-up's own lengths (the stage's draws unchanged); request r's group: r mod groups
        w_prompts, _ = _lengths(path, line, rec, "prompt_tokens", stage_warmup, stream(seed, "lengths", 2))
        w_outputs, _ = _lengths(path, line, rec, "output_tokens", stage_warmup, stream(seed, "lengths", 3))
        prompts = np.concatenate([w_prompts, prompts])
        outputs = np.concatenate([w_outputs, outputs])
        index = np.concatenate([np.arange(stage_warmup), np.arange(n)])
        n += stage_warmup
    offsets, keys, ends, prefix = _prefixes(path, line, rec, prompts, index)
    if repeats > 1:
        prefix = {"prompt_repeats": repeats}
    fields, doc = _measured_doc(kind)
    measured = {m: _num(path, line, rec, m) for m in fields if rec.get(m, "") != ""}
    if not measured:
        raise FleetcastError(
            f"{path}, line {line}: no measured value; fill at least one of {', '.join(fields)} ({doc})"
        )
    engine = dict(st.engine)
    if kind == "burst":  # the row's batch cap is the server's (the sweep's variable)
        engine["max_num_seqs"] = load["max_num_seqs"]
    released = (
        _staggered_clients(n, load["concurrency"], load["warmup_rate_rps"], load["think_s"] + overhead_s)
        if load.get("warmup_rate_rps")
        else None
    )
    wl = Workload(
        arrival_s=arrival_s if released is None else released[0],
        class_idx=np.zeros(n, dtype=np.int16),
        prompt_tokens=prompts,
        output_tokens=outputs,
        prefix_offsets=offsets,
        prefix_keys=keys,
        prefix_end_tok=ends,
        class_names=["default"],
        after_rid=None if released is None else released[1],
        think_s=None if released is None else released[2],
    )
    if overhead_s > 0:
        load["client_overhead_s"] = overhead_s
    meta: dict = {
        "source": f"{kind} table",
        "log": str(path),
        "line": line,
        "engine_settings": st.source,
        "vllm_version": st.vllm_version,
        "hardware": {"gpu": st.gpu, "tensor_parallel": st.tensor_parallel}
        | ({"expert_parallel": True} if st.expert_parallel else {}),
        "engine_args": dict(engine),
        "aggregate_measured": measured,
        "aggregate_load": {**load, "prompt_tokens": p_desc, "output_tokens": o_desc, "seed": seed, **prefix},
        "notes": list(st.notes),
    }
    if st.policy:
        meta["policy"] = st.policy
    if st.client_cpu:  # the client's stamps per request: a per-request log's (calibration/logs/client_cpu.py)
        raise FleetcastError(f"{st.source}: client_cpu is for per-request logs only, not {path.name}")
    if overhead_s > 0:
        meta["client_overhead_s"] = overhead_s
    if kind == "concurrency":
        # the client's own time outside the server also passes between a response and its next send
        meta["closed_loop"] = {"clients": load["concurrency"], "think_s": load["think_s"] + overhead_s}
        if load.get("warmup_requests"):
            meta["warmup_requests"] = load["warmup_requests"]
    if stage_warmup:
        meta["warmup_requests"] = stage_warmup
    if kind == "burst":
        meta["steady_state"] = {"max_num_seqs": load["max_num_seqs"], "num_requests": n}
    name = rec.get("name") or default_name
    return Run(
        path,
        f"{path.parent.name}/{name}" if path.parent.name not in ("", ".") else name,
        meta,
        _no_requests(),
        pd.DataFrame(),
        wl,
        "closed" if kind == "concurrency" else "open",
        st.model,
        _DTYPE.get(st.weights, "bfloat16"),
        st.weights,
        st.kv_cache,
        engine,
        gpu=st.gpu,
        tp=st.tensor_parallel,
        catalogs=st.catalogs,
        notes=tuple(st.notes),
        expert_parallel=st.expert_parallel,
    )


def _staggered_clients(n: int, clients: int, rate_rps: float, think_s: float) -> tuple:
    """(arrival_s, after_rid, think_s) of a closed loop whose ``clients`` start one by one, evenly spaced at
    ``rate_rps`` (``warmup_rate_rps``), rather than all at 0: client ``c`` sends request ``c`` at
    ``c / rate_rps`` and each later request ``r`` ``think_s`` after request ``r - clients`` ends (its client's
    previous one, as the client saw it; the engine's rule for a released turn, ``sim.engine.fleet``). A later
    request's ``arrival_s`` is a placeholder, non-decreasing, replaced by its send time in the run."""
    rid = np.arange(n)
    after = np.where(rid >= clients, rid - clients, -1).astype(np.int64)
    arrival_s = np.minimum(rid, clients - 1) / rate_rps + np.where(rid >= clients, think_s, 0.0)
    return arrival_s, after, np.full(n, think_s)


def _prompt_repeats(path: Path, line: int, rec: dict, n: int) -> int:
    """``prompt_repeats`` of the row (default 1): it must divide the requests, and it stands for
    whole-prompt prefixes, so it does not combine with ``prefix_tokens``."""
    if not rec.get("prompt_repeats"):
        return 1
    r = int(_num(path, line, rec, "prompt_repeats", integer=True))
    if n % r:
        raise FleetcastError(
            f"{path}, line {line}, field prompt_repeats: {r} does not divide the {n} requests; the row sends "
            f"requests / prompt_repeats distinct prompts, each prompt_repeats times ({_DOC})"
        )
    if r > 1 and (rec.get("prefix_tokens") or rec.get("prefix_groups")):
        raise FleetcastError(
            f"{path}, line {line}, field prompt_repeats: not with prefix_tokens/prefix_groups (a repeated prompt "
            f"is its own whole prefix) ({_DOC})"
        )
    return r


def _prefixes(path: Path, line: int, rec: dict, prompts: np.ndarray, index: np.ndarray | None = None) -> tuple:
    """The prefix chains (CSR, ``Workload``) of the row's shared prefixes: one chunk per request
    covering its first min(prefix_tokens, prompt - 1) tokens, keyed by its group (request number ``index``,
    default its position, mod ``prefix_groups``); none without ``prefix_tokens``."""
    n = len(prompts)
    if not rec.get("prefix_tokens"):
        if rec.get("prefix_groups"):
            raise FleetcastError(f"{path}, line {line}, field prefix_tokens: empty but prefix_groups is given ({_DOC})")
        return np.zeros(n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), {}
    tokens = int(_num(path, line, rec, "prefix_tokens", integer=True))
    groups = int(_num(path, line, rec, "prefix_groups", integer=True)) if rec.get("prefix_groups") else 1
    covered = np.minimum(tokens, prompts.astype(np.int64) - 1)
    has = covered > 0
    group = (np.arange(n) if index is None else index) % groups
    table = {(int(g), int(c)): prefix_key("aggregate", int(g), int(c)) for g, c in set(zip(group[has], covered[has]))}
    keys = np.array([table[int(g), int(c)] for g, c in zip(group[has], covered[has])], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(has)]).astype(np.int64)
    return offsets, keys, covered[has].astype(np.int32), {"prefix_tokens": tokens, "prefix_groups": groups}


def _no_requests() -> pd.DataFrame:
    """An aggregate point has no per-request records: the measured side is the row's figures."""
    cols = ("request_id", "arrival_s", "first_token_s", "finish_s", "prompt_tokens", "output_tokens")
    return pd.DataFrame({c: pd.Series(dtype=float) for c in cols + ("ttft_s", "tpot_s", "e2e_s")}).assign(
        status=pd.Series(dtype=object)
    )
