"""A small streaming client for OpenAI-style ``/v1/completions`` (SSE).

Standard library only (``http.client``), so it is testable without Locust and
without a server; under Locust, gevent's monkey patching makes the same code
cooperative. It reads the response **line by line** and takes a timestamp the
moment each ``data:`` line arrives: Locust's ``FastHttpUser.iter_lines`` buffers
1 KiB and merges events, which would hide inter-token gaps and delay TTFT.

Token counting uses ``usage.completion_tokens`` of each chunk
(``stream_options.continuous_usage_stats``); without usage, every chunk with
choices counts as one token. A chunk "carries tokens" when the cumulative count
grows; its timestamp is recorded with that count (``token_index``).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["StreamResult", "completion_payload", "stream_completion"]

#: longest error body kept in a record
_MAX_ERROR_CHARS = 500


@dataclass
class StreamResult:
    """What one streamed request produced; filled in as the stream arrives, so a
    caller that is interrupted still sees everything received so far."""

    status: str = "pending"  # ok | error | timeout | cancelled (sim.records.STATUSES)
    http_status: int | None = None
    sent_t: float = float("nan")  # clock() just before the request was written
    chunk_t: list[float] = field(default_factory=list)  # clock() of each token-carrying chunk
    chunk_tokens: list[int] = field(default_factory=list)  # cumulative output tokens at that chunk
    prompt_tokens: int | None = None  # as the server reports it (usage)
    output_tokens: int = 0  # as the server reports it (usage), else chunks counted
    cached_prompt_tokens: int = 0  # usage.prompt_tokens_details.cached_tokens, if reported
    finish_reason: str | None = None
    error: str | None = None

    @property
    def first_token_t(self) -> float:
        return self.chunk_t[0] if self.chunk_t else float("nan")

    @property
    def last_token_t(self) -> float:
        return self.chunk_t[-1] if self.chunk_t else float("nan")


def completion_payload(model: str, prompt_ids: list[int], max_tokens: int) -> dict:
    """The request body: exact prompt (token ids) and exact output length."""
    return {
        "model": model,
        "prompt": [int(t) for t in prompt_ids],
        "max_tokens": int(max_tokens),
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True},
    }


def _apply_chunk(res: StreamResult, obj: dict, now: float) -> None:
    if "error" in obj and not obj.get("choices"):
        err = obj["error"]
        res.error = (err.get("message") if isinstance(err, dict) else str(err))[:_MAX_ERROR_CHARS]  # type: ignore[index]  # assumes vLLM's error object has a message (not checked)
        res.status = "error"
        return
    choices = obj.get("choices") or []
    usage = obj.get("usage") or {}
    if usage:
        if usage.get("prompt_tokens") is not None:
            res.prompt_tokens = int(usage["prompt_tokens"])
        details = usage.get("prompt_tokens_details") or {}
        if details.get("cached_tokens") is not None:
            res.cached_prompt_tokens = int(details["cached_tokens"])
    if usage.get("completion_tokens") is not None:
        count = int(usage["completion_tokens"])
    else:
        count = res.output_tokens + (1 if choices else 0)
    for choice in choices:
        if choice.get("finish_reason"):
            res.finish_reason = choice["finish_reason"]
    if count > res.output_tokens:
        res.chunk_t.append(now)
        res.chunk_tokens.append(count)
        res.output_tokens = count


def stream_completion(
    host: str,
    port: int,
    payload: dict,
    *,
    path: str = "/v1/completions",
    timeout_s: float = 600.0,
    clock: Callable[[], float] = time.perf_counter,
    result: StreamResult | None = None,
) -> StreamResult:
    """POST ``payload`` and read the SSE stream, one timestamp per token chunk.

    ``timeout_s`` bounds the whole request (and each socket read). Never raises
    for HTTP or network failures (they become ``status="error"`` /
    ``"timeout"``); an interrupt (e.g. greenlet kill) marks the result
    ``"cancelled"`` and propagates.
    """
    res = result if result is not None else StreamResult()
    body = json.dumps(payload).encode("utf-8")
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    deadline = None
    try:
        res.sent_t = clock()
        deadline = res.sent_t + timeout_s
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        resp = conn.getresponse()
        res.http_status = resp.status
        if resp.status != 200:
            text = resp.read(4096).decode("utf-8", "replace")
            res.status = "error"
            res.error = f"HTTP {resp.status}: {text}"[:_MAX_ERROR_CHARS]
            return res
        while True:
            line = resp.readline()
            now = clock()
            if not line:
                break  # server closed the stream
            if now > deadline:
                res.status = "timeout"
                res.error = f"request exceeded {timeout_s:g} s"
                return res
            line = line.strip()
            if not line.startswith(b"data:"):
                continue  # blank separators, comments, "event:" lines
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                obj = json.loads(data)
            except ValueError:
                res.status = "error"
                res.error = f"bad SSE data: {data[:200]!r}"
                return res
            _apply_chunk(res, obj, now)
            if res.status == "error":
                return res
        if res.status == "pending":
            res.status = "ok"
        return res
    except TimeoutError as exc:
        res.status = "timeout"
        res.error = f"socket timeout: {exc}"
        return res
    except (OSError, http.client.HTTPException) as exc:
        res.status = "error"
        res.error = f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        return res
    except BaseException:
        if res.status == "pending":
            res.status = "cancelled"
        raise
    finally:
        conn.close()
