"""Which clock a conversation's gap runs on: from the previous turn's arrival (``gap_from:
arrival``) or from its completion (``gap_from: completion``: the user reads the answer, then
sends the next turn after a think time).

The two differ in how the gap from the previous turn's *arrival* goes with that turn's latency
``L`` (its end as the client saw it minus its arrival). If gaps run from the arrival, the gap
``G`` is drawn without regard to ``L``: Spearman's rank correlation rho(L, G) is 0 and the gap
from the completion, ``G - L``, falls as ``L`` grows (rho(L, G - L) < 0). If they run from the
completion, ``G = L + think`` with the think time drawn without regard to ``L``: rho(L, G - L) is 0
and rho(L, G) > 0. A client that waits for the answer never sends the next turn before the
previous one ended (``G < L``).

The rule: with fewer than ``MIN_PAIRS`` pairs that have a latency, or more than
``EARLY_MAX`` of next turns sent before their previous turn ended, arrival; else completion when
rho(L, G) is over its 1% two-sided point under independence (``2.576 / sqrt(n - 1)``) and
|rho(L, G - L)| is below rho(L, G); else arrival (the log cannot tell the two apart at its
latencies, and arrival is what it measured).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.workload.fit.lengths import spearman

__all__ = ["GapOrigin", "gap_origin", "MIN_PAIRS", "EARLY_MAX"]

#: Fewest (latency, gap) pairs the choice is made on.
MIN_PAIRS = 20
#: Most next turns sent before their previous turn ended (a share) that completion allows (clock skew).
EARLY_MAX = 0.01
_Z99 = 2.5758293035489004


@dataclass
class GapOrigin:
    origin: str  # "arrival" | "completion"
    n: int  # pairs with a latency
    rho_arrival: float  # Spearman rho(latency, gap from the previous arrival)
    rho_completion: float  # Spearman rho(latency, gap from the previous completion)
    critical: float  # |rho|'s 1% two-sided point under independence
    early: int  # next turns sent before their previous turn ended
    note: str


def gap_origin(gap_s: np.ndarray, latency_s: np.ndarray) -> GapOrigin:
    """The clock of the gaps ``gap_s`` (previous turn's arrival to the next turn's arrival) given
    the previous turns' latencies ``latency_s`` (NaN: unknown, e.g. a failed turn; left out)."""
    known = np.isfinite(latency_s) & np.isfinite(gap_s)
    g, lat = np.asarray(gap_s, dtype=float)[known], np.asarray(latency_s, dtype=float)[known]
    n = int(g.size)
    if n < MIN_PAIRS:
        note = (
            f"gap_from arrival: {n} next turn(s) have a previous turn with a completion time, under the "
            f"{MIN_PAIRS} the choice needs"
        )
        return GapOrigin("arrival", n, math.nan, math.nan, math.nan, 0, note)
    early = int((g < lat).sum())
    rho_a, rho_c = (spearman(lat, x) for x in (g, g - lat))
    rho_a, rho_c = (0.0 if math.isnan(r) else r for r in (rho_a, rho_c))  # a constant column: no dependence
    crit = _Z99 / math.sqrt(n - 1)
    stats = (
        f"Spearman rho(previous turn's latency, gap from its arrival) = {rho_a:+.3f}, "
        f"rho(latency, gap from its completion) = {rho_c:+.3f}, 1% point under independence {crit:.3f}, "
        f"{n:,} pairs; {early:,} ({early / n:.1%}) next turn(s) sent before the previous one ended"
    )
    if early > EARLY_MAX * n:
        origin, why = "arrival", f"over {EARLY_MAX:.0%} of next turns came before their previous turn ended"
    elif rho_a > crit and abs(rho_c) < rho_a:
        origin, why = (
            "completion",
            "the gap from the arrival grows with the latency and the gap from the completion does not",
        )
    elif rho_c < -crit:
        origin, why = "arrival", "the gap from the completion falls as the latency grows: the gaps run from the arrival"
    else:
        origin, why = "arrival", "the log's latencies are too short against its gaps to tell the clocks apart"
    return GapOrigin(origin, n, rho_a, rho_c, crit, early, f"gap_from {origin}: {why} ({stats})")
