"""The autoscaler of a fleet: HPA/KEDA-style control of each autoscaled pool.

The fleet builds ``max_replicas`` replicas per autoscaled pool up front; only the active
ones sit in the router's eligible lists (changed in place, as ``Fleet._fail`` does, and
re-tracked by a router that keeps per-list state). An inactive replica is idle with no
pending event, so it costs no simulation time. Each pool's replicas are in one of four
states:

- ``off``: not provisioned, not billed;
- ``provisioning``: billed from the scale-up decision (a node is paid while it boots);
  after the cold start (``provision_s`` + weight bytes per GPU / ``load_bandwidth_bytes_s``)
  it becomes active;
- ``active``: eligible for new requests, billed;
- ``draining``: scaled down, out of the eligible lists, finishing its running and waiting
  requests; billed until the first control tick that finds it empty, then ``off``.

Scale-up takes draining replicas first (still warm: they rejoin at once), then ``off`` ones
(lowest index). Scale-down cancels provisioning replicas first (newest first), then drains
the highest-index active ones. The control loop (``sync_period_s``) samples the pool's
metric summed over its active replicas, averages it over ``metric_window_s``, proposes
``ceil(total / target)`` clamped to [min, max] (no change within ``tolerance``), and
stabilizes as HPA does: up to the lowest proposal of the scale-up window, down to the
highest of the scale-down window. The schedule policy changes the count at its exact times.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from sim.engine.wake import wake
from sim.errors import ScenarioError

__all__ = ["Autoscaler", "PoolScaler", "cold_start_s"]


def cold_start_s(cold_start, weight_bytes_per_gpu: int) -> float:
    """Seconds from a scale-up decision to a serving replica: provisioning, then each GPU
    reading its shard of the weights at the load bandwidth (the GPUs read in parallel)."""
    return float(cold_start.provision_s) + weight_bytes_per_gpu / float(cold_start.load_bandwidth_bytes_s)


class PoolScaler:
    """The replicas, states, billing and decisions of one autoscaled pool."""

    def __init__(self, env, pool, replicas: list, eligible: list, router, cold_s: float) -> None:
        self.env = env
        self.pool = pool
        self.spec = pool.autoscale
        self.replicas = replicas  # all max_replicas of the pool, index order
        self.eligible = eligible  # the eligible lists (of the pool's classes) the active ones sit in
        self.router = router
        self.cold_s = cold_s
        self.state = ["active" if j < pool.replicas else "off" for j in range(len(replicas))]
        self.billed: list[list[list[float]]] = [
            [[0.0, math.inf]] if j < pool.replicas else [] for j in range(len(replicas))
        ]
        self.samples: deque = deque()  # (t, metric total over active replicas)
        # (t, proposed count) for the stabilization windows; the start count counts as proposed at 0
        self.proposals: deque = deque([(0.0, pool.replicas)])
        self.series: list[tuple] = [(0.0, pool.replicas, pool.replicas)]  # (t_s, active, billed)
        self.events: list[dict] = []

    # -- counts -------------------------------------------------------------------
    def count(self, *states: str) -> int:
        return sum(1 for s in self.state if s in states)

    def note(self) -> None:
        row = (self.env.now, self.count("active"), self.count("active", "provisioning", "draining"))
        if self.series[-1][1:] != row[1:]:
            if self.series[-1][0] == row[0]:
                self.series[-1] = row
            else:
                self.series.append(row)

    # -- membership ---------------------------------------------------------------
    def _join(self, j: int) -> None:
        rep = self.replicas[j]
        for reps in self.eligible:
            bisect.insort(reps, rep, key=_index)
            if hasattr(self.router, "retrack"):
                self.router.retrack(reps)

    def _leave(self, j: int) -> None:
        rep = self.replicas[j]
        for reps in self.eligible:
            reps[:] = [r for r in reps if r is not rep]  # in place: the arrival process holds these lists
            if hasattr(self.router, "retrack"):
                self.router.retrack(reps)

    def _bill_end(self, j: int) -> None:
        self.billed[j][-1][1] = self.env.now

    # -- scaling ------------------------------------------------------------------
    def scale_to(self, n: int, reason: str) -> None:
        """Set the wanted count (active + provisioning) to ``n``."""
        current = self.count("active", "provisioning")
        if n == current:
            return
        self.events.append({"t_s": self.env.now, "pool": self.pool.name, "from": current, "to": n, "reason": reason})
        if n > current:
            self._up(n - current)
        else:
            self._down(current - n)
        self.note()

    def _up(self, k: int) -> None:
        for j in reversed(range(len(self.state))):  # draining ones are warm: they rejoin at once
            if k and self.state[j] == "draining":
                self.state[j] = "active"
                self._join(j)
                k -= 1
        for j in range(len(self.state)):
            if k and self.state[j] == "off":
                self.state[j] = "provisioning"
                self.billed[j].append([self.env.now, math.inf])
                wake(self.env, self.cold_s, self._ready_cb(j, len(self.billed[j])))
                k -= 1

    def _ready_cb(self, j: int, period: int):
        def ready(ev) -> None:  # still the same provisioning period: it serves now
            if self.state[j] == "provisioning" and len(self.billed[j]) == period:
                self.state[j] = "active"
                self._join(j)
                self.note()

        return ready

    def _down(self, k: int) -> None:
        for j in reversed(range(len(self.state))):
            if k and self.state[j] == "provisioning":
                self.state[j] = "off"
                self._bill_end(j)
                k -= 1
        for j in reversed(range(len(self.state))):
            if k and self.state[j] == "active":
                self.state[j] = "draining"
                self._leave(j)
                k -= 1
        self.release_drained()

    def release_drained(self) -> None:
        """Draining replicas with nothing left stop being billed; failed ones are gone."""
        for j, rep in enumerate(self.replicas):
            if rep.failed and self.state[j] not in ("off", "failed"):
                self.state[j] = "failed"
                self._bill_end(j)
            elif self.state[j] == "draining" and rep.outstanding == 0:
                self.state[j] = "off"
                self._bill_end(j)

    # -- the control loop ---------------------------------------------------------
    def metric_total(self) -> float:
        """The policy's metric summed over the active replicas, now."""
        active = [r for r, s in zip(self.replicas, self.state) if s == "active"]
        if self.spec.policy == "queue-length":
            return float(sum(len(r.waiting) for r in active))
        return sum(len(r.running) / r.max_num_seqs for r in active)

    def control(self) -> None:
        """One sync period: sample, average over the window, propose, stabilize, scale."""
        now, a = self.env.now, self.spec
        self.release_drained()
        self.note()
        self.samples.append((now, self.metric_total()))
        while self.samples and self.samples[0][0] <= now - a.metric_window_s:
            self.samples.popleft()
        total = sum(v for _, v in self.samples) / len(self.samples)
        current = self.count("active", "provisioning")
        ratio = total / (a.target * max(1, self.count("active")))
        # 1e-9: a ratio of exactly 1 +- tolerance (1.1 - 1.0 is 0.10000000000000009) counts as within it
        proposal = current if abs(ratio - 1.0) <= a.tolerance + 1e-9 else math.ceil(total / a.target - 1e-9)
        proposal = min(a.max_replicas, max(a.min_replicas, proposal))
        self.proposals.append((now, proposal))
        keep = max(a.scale_up_cooldown_s, a.scale_down_cooldown_s)
        while self.proposals and self.proposals[0][0] < now - keep:
            self.proposals.popleft()
        up = min(p for t, p in self.proposals if t >= now - a.scale_up_cooldown_s)
        down = max(p for t, p in self.proposals if t >= now - a.scale_down_cooldown_s)
        desired = min(max(current, up), down)
        what = "utilization" if a.policy == "target-utilization" else "waiting per replica"
        self.scale_to(desired, f"{what} {total / max(1, self.count('active')):.3g} vs target {a.target:g}")

    def settle(self, end_s: float, window: tuple[float, float]) -> dict:
        """Close the billing of replicas still up at the end of the window or of the run,
        whichever is later (a fixed pool is paid for the whole window too); set each replica's
        ``stats.billed_s`` (within the window) and return the pool's record."""
        self.release_drained()
        w0, w1 = window
        end_s = max(end_s, w1)
        for j, rep in enumerate(self.replicas):
            for period in self.billed[j]:
                if period[1] == math.inf:
                    period[1] = end_s
            rep.stats.billed_s = sum(max(0.0, min(e, w1) - max(s, w0)) for s, e in self.billed[j])
        self.note()
        return {
            "series": [list(r) for r in self.series],
            "events": self.events,
            "cold_start_s": self.cold_s,
            "billed": [[list(p) for p in periods] for periods in self.billed],
        }


def _index(rep) -> int:
    return rep.index


class Autoscaler:
    """Every autoscaled pool's ``PoolScaler`` and the processes that drive them."""

    def __init__(self, env, scalers: list[PoolScaler]) -> None:
        self.env = env
        self.scalers = scalers
        for sc in scalers:
            if sc.spec.policy == "schedule":
                env.process(self._schedule(sc))
            env.process(self._loop(sc))

    def _loop(self, sc: PoolScaler):
        """Every sync period: decide (metric policies), release drained replicas (all)."""
        while True:
            yield self.env.timeout(sc.spec.sync_period_s)
            if sc.spec.policy == "schedule":
                sc.release_drained()
                sc.note()
            else:
                sc.control()

    def _schedule(self, sc: PoolScaler):
        for step in sc.spec.schedule:
            yield self.env.timeout(step.at_s - self.env.now)
            sc.scale_to(step.replicas, f"schedule at {step.at_s:g} s")

    def record(self, end_s: float, window: tuple[float, float]) -> dict:
        return {sc.pool.name: sc.settle(end_s, window) for sc in self.scalers}


def check_cold_start(scenario, i: int, cold_s: float) -> None:
    """A cold start not shorter than the run is a located error (``scenario``: a ``Scenario``)."""
    duration_s = scenario.traffic.duration_s
    if cold_s >= duration_s:
        cs = scenario.fleet[i].autoscale.cold_start
        raise ScenarioError(
            f"{scenario.locate(('fleet', i, 'autoscale', 'cold_start'))} (pool '{scenario.fleet[i].name}'): a cold "
            f"start of {cold_s:,.1f} s (provision_s {cs.provision_s:g} + model load {cold_s - cs.provision_s:,.1f} s "
            f"at load_bandwidth_bytes_s {cs.load_bandwidth_bytes_s:g}) is not shorter than the run "
            f"(traffic.duration_s {duration_s:g}); valid: a cold start < {duration_s:g} s: lower provision_s or raise "
            f"load_bandwidth_bytes_s, or run longer"
        )
