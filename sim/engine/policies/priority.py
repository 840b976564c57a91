"""``priority``: continuous batching with per-class priorities.

Waiting requests are served highest class ``priority`` first (then by arrival);
when the KV cache runs out, the lowest-priority, newest running request is
preempted first. Like vLLM's ``--scheduling-policy priority`` (where a lower
number is more important; in fleetcast scenarios a higher number is).
"""

from __future__ import annotations

from sim.engine.policies.continuous import ContinuousBatching
from sim.engine.request import PriorityQueue

__all__ = ["PriorityBatching"]


class PriorityBatching(ContinuousBatching):
    name = "priority"

    def make_queue(self):
        return PriorityQueue()

    def victim_order(self, rep):
        return sorted(rep.running, key=lambda r: (r.priority, -r.seq))
