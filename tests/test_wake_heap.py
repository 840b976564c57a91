"""The compiled engine's wake heap (sim.engine.wake._push/_pop) pops in heapq's order."""

from __future__ import annotations

import heapq
import random

from sim.engine.wake import Wake, _pop, _push


def _wake(at: float, priority: int, eid: int) -> Wake:
    w = Wake.__new__(Wake)
    w.at, w.priority, w.eid, w.callback = at, priority, eid, None
    return w


def test_push_pop_order_matches_heapq_on_key_tuples():
    rng = random.Random(7)
    heap: list = []
    ref: list = []
    eid = 0
    popped, expected = [], []
    for _ in range(20_000):
        if heap and rng.random() < 0.45:
            popped.append(_pop(heap).eid)
            expected.append(heapq.heappop(ref)[2])
        else:
            # few distinct times and both priorities: ties are broken by priority, then event id
            at, priority = float(rng.randint(0, 50)), rng.choice((0, 1))
            _push(heap, _wake(at, priority, eid))
            heapq.heappush(ref, (at, priority, eid))
            eid += 1
        assert (heap[0].at, heap[0].priority, heap[0].eid) == ref[0] if heap else not ref
    while heap:
        popped.append(_pop(heap).eid)
        expected.append(heapq.heappop(ref)[2])
    assert not ref
    assert popped == expected
    assert len(popped) > 10_000
