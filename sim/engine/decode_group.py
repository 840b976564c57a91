"""The decode group of a replica, and the timing of a decode-only run.

Every running request past its prefill gets exactly one token per decode step,
so the group is kept as aggregates instead of a list walked every step:

- ``k``: decode steps the group has taken. A member that joined at ``k_join``
  with ``c_join`` computed tokens has ``c_join + (k - k_join)`` now.
- ``ctx``: attention context of the next step, ``sum(computed + 1)``.
- block needs by phase: a member needs a new KV block at step ``k`` when its
  computed tokens are a multiple of the block size, i.e. when
  ``(phase + k) % block_size == 0`` with ``phase = (c_join - k_join) % block_size``.
- a heap of finish steps (lazy deletion for members that left early): each entry is one int,
  ``finish step << 32 | join id`` (int comparisons, no tuples), ordered as (finish step, join
  id); ``members`` maps the join ids of the current members to their requests. The heap is a
  binary min-heap in an ``array('q')`` (compiled: a typed memoryview, each sift step C
  compares instead of a rich comparison of boxed ints); entries are unique (join ids), so it
  pops them in the same order ``heapq`` would.

``Segment`` times a run of decode-only steps with a fixed group: step ``s``
(0-based from the anchor) takes ``a + b*(C0 + n*s)`` seconds, and its end is
computed in closed form from the anchor. Both stepping modes (fast-forward and
``--exact-steps``) use the same closed form, which is why they produce
identical records.
"""

from __future__ import annotations

from array import array
from typing import Any

from sim.engine.request import DECODING, RUNNING, Request

__all__ = ["DecodeGroup", "Segment", "new_segment"]

_JOIN_BITS = 32  # heap entry: finish step << _JOIN_BITS | join id
_JOIN_MASK = (1 << _JOIN_BITS) - 1


class DecodeGroup:
    __slots__ = {
        "block_size": "long long",
        "k": "long long",
        "n": "long long",
        "ctx": "long long",
        "joins": "long long",
        "heap_n": "long long",
        "cnt": "list",
        "heap_arr": "object",
        "heap": "long long[:]",
        "ncls": "list",
        "members": "dict",
        "last_t": "double",
        "stalled": "bint",
    }

    def __init__(self, block_size: int, num_classes: int) -> None:
        self.block_size = block_size
        self.k = 0  # decode steps taken
        self.n = 0  # members
        self.ctx = 0  # sum over members of (computed + 1): context of the next step
        self.cnt = [0] * block_size  # members by phase
        # finish step << _JOIN_BITS | join id (entries of left members stay), a min-heap in heap[:heap_n]
        self.heap_arr = array("q", [0]) * 64
        self.heap: Any = memoryview(self.heap_arr)  # Any: typeshed types a memoryview of ints
        self.heap_n = 0
        self.members: dict[int, Request] = {}  # join id -> member
        self.ncls = [0] * num_classes  # members by class
        self.last_t = 0.0  # when the group's last decode step ended
        self.stalled = False  # a step without decodes ran while the group had members
        self.joins = 0  # joins so far: tells a heap entry of an earlier membership from the current one

    def join(self, req: Request) -> None:
        """``req`` has sampled a token and now decodes one token per step."""
        req.state = DECODING
        req.k_join = self.k
        req.c_join = req.computed
        req.g_join = req.generated
        req.phase = (req.computed - self.k) % self.block_size
        self.cnt[req.phase] += 1
        self.n += 1
        self.ctx += req.computed + 1
        self.ncls[req.cls] += 1
        self.joins += 1
        if self.joins > _JOIN_MASK:
            raise OverflowError("more decode-group joins than a heap entry holds")  # 4.3 billion
        req.join_id = self.joins
        self.members[self.joins] = req
        # << 32 (_JOIN_BITS) as a literal: compiled, the key is C arithmetic (overflow-checked)
        key = ((self.k + req.output - req.generated - 1) << 32) | self.joins
        i = self.heap_n
        if i == len(self.heap):
            self._grow()
        heap = self.heap
        self.heap_n = i + 1
        while i > 0:  # sift up
            parent = (i - 1) >> 1
            if heap[parent] <= key:
                break
            heap[i] = heap[parent]
            i = parent
        heap[i] = key

    def _grow(self) -> None:
        """Twice the heap's room (a new array: the old one's buffer is exported)."""
        self.heap_arr = self.heap_arr + array("q", [0]) * len(self.heap_arr)
        self.heap = memoryview(self.heap_arr)

    def _pop_min(self) -> int:
        """Take the heap's smallest entry (the heap is not empty)."""
        heap = self.heap
        n = self.heap_n - 1
        top = heap[0]
        last = heap[n]
        self.heap_n = n
        if n:
            i = 0
            while True:  # sift the last entry down from the root
                c = 2 * i + 1
                if c >= n:
                    break
                if c + 1 < n and heap[c + 1] < heap[c]:
                    c += 1
                if heap[c] >= last:
                    break
                heap[i] = heap[c]
                i = c
            heap[i] = last
        return top

    def leave(self, req: Request) -> None:
        """Materialise ``req``'s counters and take it out of the group."""
        done = self.k - req.k_join
        req.computed = req.c_join + done
        req.generated = req.g_join + done
        req.state = RUNNING
        self.cnt[req.phase] -= 1
        self.n -= 1
        self.ctx -= req.computed + 1
        self.ncls[req.cls] -= 1
        del self.members[req.join_id]

    def computed_of(self, req: Request) -> int:
        return req.c_join + (self.k - req.k_join)

    def need_now(self) -> int:
        """New KV blocks the next decode step needs."""
        return self.cnt[(-self.k) % self.block_size]

    def needs_block_now(self, req: Request) -> bool:
        return (req.phase + self.k) % self.block_size == 0

    def next_finish_k(self) -> int | None:
        """Step index at whose end the first member finishes."""
        members, mask = self.members, _JOIN_MASK  # a C local compiled: C arithmetic
        while self.heap_n:
            key = self.heap[0]
            if (key & mask) in members:
                return key >> 32  # _JOIN_BITS (a literal: C arithmetic compiled)
            self._pop_min()
        return None

    def finished_any(self) -> bool:
        """Whether a member's last token came from a step before ``k`` (``pop_finished`` has work)."""
        return self.heap_n > 0 and self.heap[0] < self.k << 32  # _JOIN_BITS (a literal: C arithmetic compiled)

    def pop_finished(self) -> list[Request]:
        """Members whose last token came from a step before ``k`` (in join order)."""
        out = []
        members, mask = self.members, _JOIN_MASK  # a C local compiled: C arithmetic
        limit = self.k << 32  # _JOIN_BITS (a literal: C arithmetic compiled)
        while self.heap_n and self.heap[0] < limit:
            req = members.get(self._pop_min() & mask)
            if req is not None:  # None: it left the group before finishing
                out.append(req)
        return out

    def blocks_needed(self, steps: int) -> int:
        """New blocks the next ``steps`` decode steps need in total."""
        bs = self.block_size
        full, rest = divmod(steps, bs)
        need = full * self.n
        if rest:
            # step s of the rest needs the members of phase (p - s) % bs: a cyclic run of phases
            cnt = self.cnt
            p = (-(self.k + full * bs)) % bs
            lo = p - rest + 1
            # plain index loops: compiled, C loops (no slice, no call of sum)
            if lo >= 0:
                for s in range(lo, p + 1):
                    need += cnt[s]
            else:
                for s in range(p + 1):
                    need += cnt[s]
                for s in range(bs + lo, bs):
                    need += cnt[s]
        return need

    def steps_until_exhaustion(self, free: int) -> int:
        """How many decode steps fit in ``free`` blocks (a large number if all)."""
        n, bs = self.n, self.block_size
        if n == 0:
            return 1 << 62
        cycles, rem = divmod(free, n)
        cnt, k0 = self.cnt, self.k + cycles * bs
        need = 0
        for s in range(bs):
            need += cnt[(-(k0 + s)) % bs]
            if need > rem:
                return cycles * bs + s
        return cycles * bs + bs  # unreachable: a full cycle needs exactly n > rem

    def advance(self, steps: int) -> None:
        self.k += steps
        self.ctx += self.n * steps


class Segment:
    """Closed-form timing of decode-only steps with a fixed group.

    Anchored at time ``t0`` before step ``k0``, with ``n`` members and context
    ``c0``; step ``k`` ends at ``t0 + (m*a + b*(m*c0 + n*(m-1)*m/2))`` with
    ``m = k - k0 + 1`` (an exact integer context sum, then float ops in a
    fixed order).
    """

    __slots__ = {
        "t0": "double",
        "a": "double",
        "b": "double",
        "f0": "double",
        "f1": "double",
        "y0": "double",
        "y1": "double",
        "k0": "long long",
        "c0": "long long",
        "n": "long long",
    }
    # set by _set_segment (annotations only: no class attributes beside __slots__)
    t0: float
    a: float
    b: float
    f0: float
    f1: float
    y0: float
    y1: float
    k0: int
    c0: int
    n: int

    def __init__(
        self,
        t0: float,
        k0: int,
        c0: int,
        n: int,
        a: float,
        b: float,
        flops: tuple[float, float],
        bytes_: tuple[float, float],
    ) -> None:
        _set_segment(self, t0, k0, c0, n, a, b, flops, bytes_)

    def ctx_sum(self, m: int) -> int:
        """Sum of contexts of the first ``m`` steps."""
        return m * self.c0 + self.n * (m - 1) * m // 2

    def t_end(self, k: int) -> float:
        m = k - self.k0 + 1
        if m <= 0:
            return self.t0
        return self.t0 + (m * self.a + self.b * (m * self.c0 + self.n * (m - 1) * m // 2))  # inline: Segment.ctx_sum

    def duration(self, k: int) -> float:
        """Nominal duration of step ``k``: ``a + b * context``."""
        return self.a + self.b * (self.c0 + self.n * (k - self.k0))

    def first_step_ending_at_or_after(self, x: float) -> int:
        """Smallest step ``k >= k0`` with ``t_end(k) >= x``."""
        y = x - self.t0
        if y <= 0:
            return self.k0
        qa = self.b * self.n / 2.0
        qb = self.a + self.b * self.c0 - qa
        # A first guess (m > 0: the root of a quadratic with a positive value at y; ** 0.5, not
        # math.sqrt, and the ceiling by hand: compiled, C operations instead of module look-ups and
        # calls). Only a guess: the loops below settle it with the exact closed form.
        if qa > 0:
            m = (-qb + (qb * qb + 4.0 * qa * y) ** 0.5) / (2.0 * qa)
        else:
            m = y / qb if qb > 0 else 1.0
        c = int(m)
        if c < m:
            c += 1
        k = self.k0 + max(0, c - 1)
        # Settle rounding with the exact closed form.
        while k > self.k0 and self.t_end(k - 1) >= x:
            k -= 1
        while self.t_end(k) < x:
            k += 1
        return k


def new_segment(
    t0: float, k0: int, c0: int, n: int, a: float, b: float, flops: tuple[float, float], bytes_: tuple[float, float]
) -> Segment:
    """``Segment(t0, k0, c0, n, a, b, flops, bytes_)``; compiled, a C call that skips a class
    call's argument parsing (a replica starts one whenever its decode group changes)."""
    seg = Segment.__new__(Segment)
    _set_segment(seg, t0, k0, c0, n, a, b, flops, bytes_)
    return seg


def _set_segment(
    seg: Segment,
    t0: float,
    k0: int,
    c0: int,
    n: int,
    a: float,
    b: float,
    flops: tuple[float, float],
    bytes_: tuple[float, float],
) -> None:
    """A segment's fields (``Segment.__init__``, ``new_segment``)."""
    seg.t0, seg.k0, seg.c0, seg.n, seg.a, seg.b = t0, k0, c0, n, a, b
    seg.f0, seg.f1 = flops  # step FLOPs = f0 + f1 * context
    seg.y0, seg.y1 = bytes_  # step bytes = y0 + y1 * context
