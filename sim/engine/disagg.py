"""Disaggregated prefill and decode: the hand-off between a prefill and a decode replica.

vLLM's disaggregated serving (a proxy in front of a prefill and a decode instance, the KV
moved by a KV connector such as NixlConnector; llm-d and Dynamo run it the same way):

1. the router picks a prefill replica; it runs the prompt as a request with one output token
   (the arrival process gives prefill replicas ``output = 1``);
2. when that token is sampled, the prefill replica "finishes" the request, reporting to a
   ``Handoff`` in place of the ledger (it has the ledger's ``finish``/``reject``, so the
   replica's compiled code is unchanged); the router picks a decode replica;
3. the KV cache moves: ``kv_transfer_s`` = bytes per link / bandwidth + latency, the bytes
   split over min(TP prefill, TP decode) links; with ``overlap: layerwise`` only the part
   the prefill compute does not hide is waited for (``exposed_transfer_s``);
4. the decode replica receives a fresh request whose prompt KV is remote
   (``Request.remote_tokens = prompt - 1``): admission allocates the prompt's blocks,
   the step computes the last prompt token (vLLM's scheduler recomputes one token so it
   has logits) and samples the first token the client sees; then it decodes. TTFT is that
   token minus the arrival, as the client measures it through the proxy. A decode request
   preempted later recomputes everything locally (``remote_tokens`` is 0 by then).

Modelling choices (docs/design.md, "Disaggregated prefill and decode"): the decode replica
takes the blocks when it admits the request, after the transfer (vLLM takes them before it
pulls; the difference is the blocks held during one transfer); links are not shared (no
contention between transfers); the whole prompt moves (a decode-side prefix-cache hit still
saves compute, not transfer); a request in transfer counts for no replica's load.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from functools import partial

import numpy as np

from sim.engine.eligible import drop_failed
from sim.engine.ledger import Ledger
from sim.engine.request import Request
from sim.engine.wake import wake

__all__ = ["Handoff", "TransferPath", "kv_bytes_per_link", "transfer_s", "exposed_transfer_s"]


def kv_bytes_per_link(
    tokens: int, kv_bytes_per_token: float, kv_bytes_per_token_decode_gpu: float, tp_prefill: int, tp_decode: int
) -> float:
    """Bytes one link carries to move ``tokens`` tokens of KV: the model's KV bytes
    (``kv_bytes_per_token``, all layers and KV heads) split over min(tp_prefill, tp_decode)
    links, but never less than what one decode GPU holds (KV heads replicated when the TP
    size exceeds them; an MLA latent is whole on every GPU)."""
    per_token = max(kv_bytes_per_token / min(tp_prefill, tp_decode), kv_bytes_per_token_decode_gpu)
    return tokens * per_token


def transfer_s(bytes_per_link: float, bandwidth_bytes_s: float, latency_s: float) -> float:
    """Seconds to move ``bytes_per_link`` over every link in parallel: bytes / bandwidth + latency."""
    return bytes_per_link / bandwidth_bytes_s + latency_s


def exposed_transfer_s(
    bytes_per_link: float, bandwidth_bytes_s: float, latency_s: float, overlap: str, prefill_s: float, num_layers: int
) -> float:
    """The part of the transfer the request waits for after its prefill ends.

    ``none``: all of it. ``layerwise``: layer ``i``'s KV leaves once layer ``i`` is computed
    (at ``i/L`` of the prefill's ``prefill_s``), one layer's share ``x = X/L`` at a time, so
    the last byte lands ``max(x, X - prefill_s·(L-1)/L)`` after the prefill ends, plus the
    latency (``X`` = bytes / bandwidth)."""
    x_s = bytes_per_link / bandwidth_bytes_s
    if overlap == "none":
        return x_s + latency_s
    return max(x_s / num_layers, x_s - prefill_s * (num_layers - 1) / num_layers) + latency_s


class TransferPath:
    """What moving one token's KV from a prefill pool to a decode pool costs."""

    __slots__ = ("bytes_per_token", "bandwidth_bytes_s", "latency_s", "overlap", "num_layers")

    def __init__(self, model, quant, tp_prefill: int, tp_decode: int, link, overlap: str) -> None:
        total = model.kv_bytes_per_token(quant.kv_bytes_per_elem)
        if model.is_mla:  # the latent is whole on every GPU
            decode_gpu = total
        else:  # KV heads split over TP, replicated when TP exceeds them
            decode_gpu = total * math.ceil(model.num_kv_heads / tp_decode) / model.num_kv_heads
        self.bytes_per_token = kv_bytes_per_link(1, total, decode_gpu, tp_prefill, tp_decode)
        self.bandwidth_bytes_s = link.bandwidth_bytes_s
        self.latency_s = link.latency_s
        self.overlap = overlap
        self.num_layers = model.num_layers

    def exposed_s(self, tokens: int, prefill_s: float) -> float:
        return exposed_transfer_s(
            tokens * self.bytes_per_token,
            self.bandwidth_bytes_s,
            self.latency_s,
            self.overlap,
            prefill_s,
            self.num_layers,
        )


class Handoff(Ledger):
    """The ledger of prefill replicas: a finished prefill moves on to a decode replica.

    ``ledger`` is the run's real ledger (the request is still active there until its decode
    finishes); ``replicas`` all replicas by index; ``eligible`` the decode replicas per class
    (shrunk in place on failures); ``prefill_eligible`` the prefill replicas per class (for
    a request that must start over); ``outputs`` each request's output tokens; ``paths``
    maps (prefill pool name, decode pool name) to a ``TransferPath``."""

    def __init__(
        self,
        env,
        ledger: Ledger,
        replicas: list,
        eligible: list,
        prefill_eligible: list,
        router,
        prefill_router,
        outputs: Sequence[int],
        paths: dict,
        class_names: list,
    ) -> None:
        super().__init__(0, ledger.done)
        n = len(outputs)
        self.env = env
        self.real = ledger
        self.replicas = replicas
        self.eligible = eligible
        self.prefill_eligible = prefill_eligible
        self.router = router
        self.prefill_router = prefill_router
        self.outputs = outputs
        self.paths = paths
        self.class_names = class_names
        self.prefill_of = array("q", [-1]) * n  # prefill replica of each request's last prefill
        self.transfer_s = array("d", [math.nan]) * n  # exposed KV-transfer seconds of that prefill

    # -- the ledger's interface, for prefill replicas ----------------------------------
    def finish(self, req: Request, t: float) -> None:
        """The prefill of ``req`` sampled its token at ``t``: pick a decode replica, start the move."""
        real, rid = self.real, req.rid
        prefill = self.replicas[real.replica_of[rid]]
        decode = self.router.choose(self.eligible[req.cls], rid, None, t)
        path = self.paths[prefill.pool.name, decode.pool.name]
        q = req.prompt - req.cached_tokens  # tokens the prefill computed: what the transfer can hide behind
        prefill_s = prefill.perf.step_time_s(q, q * (req.cached_tokens + q / 2), 0, 0, num_prefill_seqs=1)
        exposed = path.exposed_s(req.prompt, prefill_s)
        self.prefill_of[rid] = prefill.index
        self.transfer_s[rid] = exposed
        real.replica_of[rid] = decode.index
        new = Request(rid, req.cls, req.prompt, self.outputs[rid], req.arrival_s, req.priority, rid, None)
        new.remote_tokens = req.prompt - 1  # the decode replica recomputes the last prompt token
        new.preemptions = req.preemptions
        new.cached_tokens = req.cached_tokens
        wake(self.env, max(0.0, t + exposed - self.env.now), partial(self._arrived, new, decode))

    def reject(self, req: Request, replica_index: int) -> None:
        self.real.reject(req, replica_index)

    # -- the decode side ---------------------------------------------------------------
    def _arrived(self, req: Request, decode, ev) -> None:
        """The KV has landed on ``decode``: it queues the request (or, failed meanwhile, the
        client retries from the prefill)."""
        if decode.failed:
            self.restart(req)
            return
        decode.enqueue(req)

    def restart(self, req: Request) -> None:
        """Send ``req`` (its decode replica failed) back to a prefill replica, from scratch."""
        req.output = 1
        req.remote_tokens = 0
        req.generated = req.computed = 0
        req.keys = []
        req.first_token_s = req.last_token_s = float("nan")
        prefill = self.prefill_router.choose(self.prefill_eligible[req.cls], req.rid, None, self.env.now)
        self.real.replica_of[req.rid] = prefill.index
        prefill.enqueue(req)

    def drop(self, ranks: list) -> None:
        """Failed replicas leave the decode lists (in place: the router tracks them)."""
        drop_failed(self.eligible, ranks, self.class_names, "decode replicas")

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(prefill replica index or -1, exposed KV-transfer seconds or NaN) per request."""
        return (
            np.frombuffer(self.prefill_of, dtype=np.int64).copy(),
            np.frombuffer(self.transfer_s, dtype=np.float64).copy(),
        )
