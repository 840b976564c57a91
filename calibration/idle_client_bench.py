"""Microbenchmark: inference-perf's per-request aiohttp session against a reused one, idle and loaded.

inference-perf @ 7ff81506 (the client of the kubecon-na-2025 runs; kubernetes-sigs/inference-perf,
Apache-2.0, ``inference_perf/client/modelserver/openai_client.py`` ``process_request``) opens a new
``aiohttp.ClientSession`` with a new ``TCPConnector`` for every request and starts its clock
(``time.perf_counter``) after creating them, before ``session.post``: so each request's TTFT holds a
name look-up, a TCP connect and the first byte of the stream; later versions keep one session. This
times that path on 127.0.0.1 (a local aiohttp server in its own process that answers each POST with one
server-sent-event chunk at once, then ends the stream): time from just before ``session.post`` to the
first body byte, with a new session per request ("new") and with one reused session ("reused"),
requests sent at a fixed interval at 1 and 30 per second, the host given as ``localhost`` (resolved by
``getaddrinfo`` in aiohttp's thread pool, as a service name would be) and as ``127.0.0.1``. What it
can show is whether that path costs more when requests are 1 s apart than when they are 33 ms apart on
one machine (a cold client loop, the thread pool, the kernel's idle states); the network and DNS of
the source's cluster are not here.

Run with the testbed venv (aiohttp; not in the main venv)::

    PYTHONPATH=. .testbed-venv/bin/python -m calibration.idle_client_bench --out /tmp/idle_client.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import platform
import statistics
import time
from pathlib import Path

__all__ = ["main"]

PORT = 18437
CASES = ((1.0, 20), (30.0, 150))  # (requests per second, requests)


def _serve(port: int) -> None:
    from aiohttp import web  # type: ignore[import-not-found]  # testbed venv only

    async def handler(request):
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices":[{"text":"x"}]}\n\n')
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def _one(url: str, session) -> float:
    import aiohttp

    if session is None:  # inference-perf @ 7ff81506: a new session and connector per request
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as s:
            return await _first_byte_s(url, s)
    return await _first_byte_s(url, session)


async def _first_byte_s(url: str, session) -> float:
    """Seconds from the POST to the first streamed bytes (the rest of the body read after)."""
    body = json.dumps({"prompt": "x", "stream": True})
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        await r.content.readany()
        t1 = time.perf_counter()
        await r.read()
    return t1 - t0


async def _case(host: str, mode: str, rate: float, n: int) -> list[float]:
    import aiohttp

    url = f"http://{host}:{PORT}/v1/completions"
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) if mode == "reused" else None
    try:
        await _one(url, session)  # warm-up, not counted
        t_start = time.perf_counter()
        tasks = []
        for i in range(n):
            delay = t_start + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_one(url, session)))
        return list(await asyncio.gather(*tasks))
    finally:
        if session is not None:
            await session.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = ap.parse_args(argv)
    server = mp.get_context("spawn").Process(target=_serve, args=(PORT,), daemon=True)
    server.start()
    try:
        time.sleep(3.0)
        rows = []
        for host in ("localhost", "127.0.0.1"):
            for mode in ("new", "reused"):
                for rate, n in CASES:
                    xs = asyncio.run(_case(host, mode, rate, n))
                    q = statistics.quantiles(xs, n=10)
                    row = {
                        "host": host,
                        "mode": mode,
                        "rate_per_s": rate,
                        "requests": n,
                        "p50_ms": statistics.median(xs) * 1e3,
                        "p10_ms": q[0] * 1e3,
                        "p90_ms": q[-1] * 1e3,
                    }
                    rows.append(row)
                    print(
                        f"{host:>9} {mode:>6} {rate:>4g}/s: first byte p10/p50/p90 {row['p10_ms']:.2f} / "
                        f"{row['p50_ms']:.2f} / {row['p90_ms']:.2f} ms"
                    )
    finally:
        server.terminate()
        server.join(5)
    if args.out:
        out = {"rows": rows, "host": {"python": platform.python_version(), "machine": platform.machine()}}
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
