"""The check that matters for a fitted traffic section: the same fleet simulated on the
replayed log and on the fitted traffic gives the same p50/p99 TTFT, TPOT and throughput.

``round_trip(scenario_path, fit, traffic, folder)`` takes the fleet (and router, engine,
everything but ``traffic:``) from a scenario file, replays the fitted log (written as a
generic trace under ``folder``, with the log's block hashes when it has them, so the replay
shares prefixes as the log did) and simulates the fitted traffic with ``seeds`` seeds; the
fitted side is the mean over the seeds (one replay has no seed to vary).

Each difference gets a 95% interval (``RoundTripRow.interval``). The replay is one realization of
the log's process and the fitted mean is an average of ``n`` realizations of the fitted one; if the
fit is right both have the spread of one fitted run (sd ``s`` over the seeds), so
``fitted mean - replay`` has sd ``s * sqrt(1 + 1/n)`` and the interval is
``fitted mean - replay +- t(0.975, n - 1) * s * sqrt(1 + 1/n)``, relative to the replay (a Student-t
prediction interval: 0 lies outside it exactly when the replay lies outside the fitted runs' 95%
prediction interval). The verdict is ``plan``'s rule (``sim.analysis.replications``) against the
issue's 5%: ``within`` when the whole interval is inside +-5%, ``outside`` when it lies wholly
outside, else ``undecided`` (the difference is inside the noise of one replay and ``n`` fitted runs).
The interval is not the interval of the fitted mean alone: that one shrinks with ``n`` while the
replay's own noise does not, so with enough seeds it would call a fit wrong for the replay's
realization (docs/traffic-fit.md, "The round trip's noise").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.analysis.forecast import forecast
from sim.analysis.replications import CONFIDENCE, t_interval
from sim.scenario.spec import scenario_from_dict
from sim.scenario.yamlio import load_yaml_with_lines
from sim.workload.fit.fit import TrafficFit

__all__ = [
    "RoundTripRow",
    "round_trip",
    "resolved_traffic",
    "conversation_hashes",
    "difference_interval",
    "METRICS",
    "TOLERANCE",
]

#: (label, summary path) of the compared metrics.
METRICS = (
    ("TTFT p50, s", ("ttft_s", "p50")),
    ("TTFT p99, s", ("ttft_s", "p99")),
    ("TPOT p50, s", ("tpot_s", "p50")),
    ("TPOT p99, s", ("tpot_s", "p99")),
    ("throughput, req/s", ("requests_per_s",)),
    ("throughput, output tok/s", ("output_tokens_per_s",)),
)
#: The issue's bound on the relative difference.
TOLERANCE = 0.05
#: Block size of the hash lists a replay of a conversation log gets (the engine's KV block: a
#: turn shares its previous turns' text to the block, as the fitted sessions' chains do).
CONVERSATION_BLOCK_TOKENS = 16


@dataclass
class RoundTripRow:
    label: str
    replay: float
    fitted: float  # mean over the seeds
    fitted_runs: list[float]

    @property
    def rel_diff(self) -> float:
        return (self.fitted - self.replay) / self.replay if self.replay else math.nan

    @property
    def ok(self) -> bool:
        """The point estimate (fitted mean against the one replay) within the 5%."""
        return abs(self.rel_diff) <= TOLERANCE

    @property
    def interval(self) -> tuple[float, float] | None:
        """95% interval of the relative difference (module docstring); None with one seed."""
        return difference_interval(self.replay, self.fitted_runs)

    @property
    def interval_text(self) -> str:
        """The interval as the terminal and the fit report print it."""
        iv = self.interval
        return f"{iv[0]:+.1%} .. {iv[1]:+.1%}" if iv is not None else "none (1 seed)"

    @property
    def replay_rank(self) -> float:
        """Share of the fitted runs below the replay (ties count half): where the one replay falls
        among them, assuming nothing about their shape (near 0 or 1: the replay is unlike the runs)."""
        v = np.asarray(self.fitted_runs, dtype=float)
        return float(((v < self.replay).sum() + 0.5 * (v == self.replay).sum()) / v.size) if v.size else math.nan

    @property
    def verdict(self) -> str:
        """``within`` / ``outside`` the 5% on the interval, else ``undecided`` (one seed: no
        interval, always ``undecided``)."""
        iv = self.interval
        if iv is None or not (math.isfinite(iv[0]) and math.isfinite(iv[1])):
            return "undecided"
        if -TOLERANCE <= iv[0] and iv[1] <= TOLERANCE:
            return "within"
        if iv[0] > TOLERANCE or iv[1] < -TOLERANCE:
            return "outside"
        return "undecided"


def difference_interval(replay: float, runs: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """(low, high) of ``(mean(runs) - replay) / replay`` at ``confidence``: the Student-t interval
    with ``len(runs) - 1`` degrees of freedom and sd ``sd(runs) * sqrt(1 + 1 / len(runs))`` (the
    replay is one more realization with the spread of one run). None for fewer than two runs or a
    replay of 0 or NaN."""
    v = np.asarray(runs, dtype=float)
    if v.size < 2 or not replay or not math.isfinite(replay) or not np.isfinite(v).all():
        return None
    iv = t_interval(v, confidence)  # the mean's interval: half-width t * sd / sqrt(n)
    assert iv is not None  # two runs or more
    mean, low, _ = iv
    half = (mean - low) * math.sqrt(v.size + 1)  # t * sd * sqrt(1 + 1/n): sqrt(n) * sqrt(1 + 1/n) = sqrt(n + 1)
    d = mean - replay
    return (d - half) / replay, (d + half) / replay


def _metric(summary: dict, path: tuple[str, ...]) -> float:
    node = summary["overall"]
    for key in path:
        node = node[key]
    return float(node) if node is not None else math.nan


def _replay_trace(fit: TrafficFit, folder: Path) -> tuple[Path, bool]:
    """The fitted rows as a generic CSV trace, and whether it carries the log's block
    hashes (a ``hash_ids`` column: the replay then shares prefixes as the log did, as the
    fitted side's ``prefix:`` does)."""
    log = fit.log
    assert log is not None  # fit_traffic keeps it
    names = np.empty(len(log), dtype=object)
    keep = np.zeros(len(log), dtype=bool)
    for cf in fit.classes:
        names[cf.rows] = cf.name
        keep[cf.rows] = True
    hashes = log.hash_offsets is not None and log.hash_ids is not None
    chains = [""] * len(log)
    if hashes:
        off, ids = log.hash_offsets, log.hash_ids
        assert off is not None and ids is not None
        chains = [" ".join(map(str, ids[off[r] : off[r + 1]].tolist())) for r in range(len(log))]
    elif log.conversation is not None:
        chains, hashes = conversation_hashes(log.conversation.values(), log.prompt_tokens, log.output_tokens), True
    path = folder / "replayed-log.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("arrival_s,prompt_tokens,output_tokens,class" + (",hash_ids\n" if hashes else "\n"))
        for r in np.flatnonzero(keep):
            row = f"{float(log.arrival_s[r])!r},{int(log.prompt_tokens[r])},{int(log.output_tokens[r])},{names[r]}"
            fh.write(row + (f",[{chains[r]}]\n" if hashes else "\n"))
    return path, hashes


def conversation_hashes(conversation: np.ndarray, prompt: np.ndarray, output: np.ndarray | None = None) -> list[str]:
    """Block-hash lists (``CONVERSATION_BLOCK_TOKENS``-token blocks, as text) of a log whose rows
    name their conversation ("" none): a conversation is one growing text (each turn's prompt is
    the text so far, as the fitted session form has it), so full block ``j`` of any of its turns
    is the same block; a partial last block, and every block of a request outside any
    conversation, is its own. With ``output``, a conversation turn's list goes on over its
    output (the text grows by it), so the replay caches the full blocks its decode fills as the
    fitted side's chains do (``sim.workload.sessions``); the trace reader keeps ids past a
    prompt's blocks as those blocks."""
    b = CONVERSATION_BLOCK_TOKENS
    ids: dict[tuple[str, int], int] = {}
    out = []
    fresh = 0
    outs = np.zeros(len(prompt), dtype=np.int64) if output is None else np.asarray(output)
    for conv, p, o in zip(conversation.tolist(), np.asarray(prompt).tolist(), outs.tolist()):
        full, part = divmod(int(p) + (int(o) if conv else 0), b)
        row = []
        for j in range(full + (part > 0)):
            if conv and j < full:
                key = ids.setdefault((conv, j), len(ids))
            else:
                key, fresh = -1 - fresh, fresh + 1
            row.append(key)
        out.append(row)
    base = len(ids)  # own blocks after the shared ones: ids >= 0
    return [" ".join(str(k if k >= 0 else base - 1 - k) for k in row) for row in out]


def resolved_traffic(traffic: dict, folder: Path) -> dict:
    """``traffic`` with its classes' table paths made absolute (relative to ``folder``)."""
    out = dict(traffic)
    out["classes"] = []
    for c in traffic["classes"]:
        c = dict(c)
        for key in ("lengths_table", "prompt_tokens", "output_tokens"):
            if isinstance(c.get(key), dict) and "path" in c[key]:
                c[key] = {**c[key], "path": str((folder / c[key]["path"]).resolve())}
        if isinstance(c.get("session"), dict):
            c["session"] = dict(c["session"])
            for key in ("new_tokens", "output_tokens"):
                d = c["session"].get(key)
                if isinstance(d, dict) and "path" in d:
                    c["session"][key] = {**d, "path": str((folder / d["path"]).resolve())}
        out["classes"].append(c)
    return out


def round_trip(scenario_path: Path, fit: TrafficFit, traffic: dict, folder: Path, seeds: int = 3) -> list[RoundTripRow]:
    """Rows of replay vs fitted; ``traffic`` is the rendered section with its table paths
    relative to ``folder``."""
    base, _ = load_yaml_with_lines(Path(scenario_path))
    scenario_path = Path(scenario_path).resolve()
    names = [c.name for c in fit.classes]
    trace_path, hashes = _replay_trace(fit, folder)
    arrival: dict = {"process": "trace", "path": str(trace_path)}
    if hashes:
        assert fit.log is not None
        block = fit.log.hash_block_tokens if fit.log.hash_ids is not None else CONVERSATION_BLOCK_TOKENS
        arrival.update(columns={"hash_ids": "hash_ids"}, hash_block_tokens=block)
    replay_traffic = {
        "duration_s": traffic["duration_s"] + 1,
        "arrival": arrival,
        "classes": [{"name": n} for n in names],
    }
    fitted_traffic = resolved_traffic(traffic, folder)
    _, replay = forecast(scenario_from_dict({**base, "traffic": replay_traffic}, path=scenario_path))
    fitted = []
    for s in range(seeds):
        data = {**base, "traffic": fitted_traffic, "seed": int(base.get("seed", 0)) + s}
        fitted.append(forecast(scenario_from_dict(data, path=scenario_path))[1])
    rows = []
    for label, path in METRICS:
        runs = [_metric(f, path) for f in fitted]
        rows.append(RoundTripRow(label, _metric(replay, path), float(np.mean(runs)), runs))
    return rows
