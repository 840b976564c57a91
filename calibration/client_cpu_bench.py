"""Microbenchmark of a single-threaded streaming client's own CPU: LMBenchmark's ShareGPT client.

LMBenchmark (LMCache/LMBenchmark, ``sharegpt/sharegpt-qa.py``, Apache-2.0; the client of llm-d-benchmark's
exp-0 and exp-4 runs) sends every request of a run from one ``openai.AsyncOpenAI`` client on one asyncio
loop in one thread, and stamps a request's first token and its end when that loop reads the chunks
(calibration/logs/client_cpu.py says how that enters its TTFT and E2E). This measures that loop's CPU:
a local aiohttp server (a process of its own, 127.0.0.1) streams ``S`` concurrent chat completions of
``N`` chunks each, in vLLM's chat-chunk shape (a role chunk, ``N`` content chunks, a usage chunk for
``stream_options.include_usage``, ``[DONE]``), and the client reads them as LMBenchmark does (``async for``
over the stream, each chunk's ``choices[0].delta.content``). The client process's CPU time
(``time.process_time``) over the ``S`` streams, after one warm-up stream, is fitted by least squares,
no intercept, as ``per_request_s · S + per_chunk_s · S · N`` over the grid.

Run with the testbed venv (openai, aiohttp; not in the main venv)::

    PYTHONPATH=. .testbed-venv/bin/python -m calibration.client_cpu_bench --out calibration/public/llm-d/client_cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import multiprocessing as mp
import platform
import time
from pathlib import Path

__all__ = ["fit", "main"]

PORT = 18431
GRID = ((50, 10), (50, 100), (50, 400), (10, 200), (100, 100))  # (streams S, chunks per stream N)
CHUNK = {
    "id": "chatcmpl-0",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": " tok"}, "logprobs": None, "finish_reason": None}],
}


def _serve(port: int, n_chunks: int) -> None:
    from aiohttp import web  # type: ignore[import-not-found]  # testbed venv only

    role = dict(CHUNK, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    usage = dict(CHUNK, choices=[], usage={"prompt_tokens": 8, "completion_tokens": n_chunks, "total_tokens": 8})

    async def handler(request):
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(f"data: {json.dumps(role)}\n\n".encode())
        for _ in range(n_chunks):
            await resp.write(f"data: {json.dumps(CHUNK)}\n\n".encode())
            await asyncio.sleep(0.002)  # a step apart: each chunk is read on its own
        await resp.write(f"data: {json.dumps(usage)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


async def _client(port: int, streams: int, n_chunks: int) -> tuple[float, int]:
    import openai  # type: ignore[import-not-found]  # testbed venv only

    client = openai.AsyncOpenAI(api_key="x", base_url=f"http://127.0.0.1:{port}/v1")

    async def one() -> int:
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=n_chunks,
            stream=True,
            stream_options={"include_usage": True},
        )
        k = 0
        async for chunk in stream:  # as sharegpt-qa.py's _async_request
            if chunk.choices and chunk.choices[0].delta.content:
                k += 1
        return k

    await one()  # warm-up: the connection pool and the first parse
    t0 = time.process_time()
    read = await asyncio.gather(*[one() for _ in range(streams)])
    return time.process_time() - t0, sum(read)


def fit(rows: list[dict]) -> tuple[float, float]:
    """Least squares, no intercept: ``cpu_s = per_request_s · requests + per_chunk_s · chunks``."""
    a11 = sum(r["requests"] ** 2 for r in rows)
    a12 = sum(r["requests"] * r["chunks"] for r in rows)
    a22 = sum(r["chunks"] ** 2 for r in rows)
    b1 = sum(r["requests"] * r["client_cpu_s"] for r in rows)
    b2 = sum(r["chunks"] * r["client_cpu_s"] for r in rows)
    det = a11 * a22 - a12 * a12
    return (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    rows = []
    for streams, n in GRID:
        for _ in range(args.repeat):
            server = mp.Process(target=_serve, args=(PORT, n), daemon=True)
            server.start()
            time.sleep(2.0)
            try:
                cpu_s, chunks = asyncio.run(_client(PORT, streams, n))
            finally:
                server.terminate()
                server.join()
            row: dict = {"streams": streams, "chunks_per_stream": n, "requests": streams, "chunks": chunks}
            row["client_cpu_s"] = round(cpu_s, 5)
            rows.append(row)
            print(json.dumps(rows[-1]))
    per_request_s, per_chunk_s = fit(rows)
    out = {
        "what": "LMBenchmark-style openai.AsyncOpenAI streaming client: its process CPU per request and per chunk",
        "per_request_s": round(per_request_s, 6),
        "per_chunk_s": round(per_chunk_s, 7),
        "rows": rows,
        "python": platform.python_version(),
        "packages": {p: importlib.metadata.version(p) for p in ("openai", "httpx", "pydantic", "aiohttp")},
        "cpu": platform.processor() or platform.machine(),
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"per_request_s {per_request_s * 1e3:.2f} ms, per_chunk_s {per_chunk_s * 1e6:.1f} µs -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
