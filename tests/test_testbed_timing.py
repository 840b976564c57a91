"""The streaming client's timestamps match a local SSE server's write times.

Guards against stream buffering (Locust's FastHttpUser.iter_lines merged
events and delayed TTFT by ~20 ms): the client must see every chunk within
2 ms of the moment the server wrote it.
"""

from __future__ import annotations

import numpy as np
import pytest

from testbed.fake_server import FakeVllm
from testbed.sse_client import completion_payload, stream_completion

TOL_S = 0.002


@pytest.fixture
def fake():
    srv = FakeVllm(ttft_s=0.030, itl_s=0.008)
    port = srv.serve_in_thread()
    srv.port = port
    yield srv
    srv.shutdown()


def _check_once(fake, n_out):
    fake.write_log.clear()
    fake.recv_log.clear()
    res = stream_completion("127.0.0.1", fake.port, completion_payload("m", [5] * 7, n_out), timeout_s=10)
    assert res.status == "ok", res.error
    assert res.output_tokens == n_out and res.prompt_tokens == 7
    assert res.chunk_tokens == list(range(1, n_out + 1))
    writes = np.array([t for (_r, _i, t) in fake.write_log])
    got = np.array(res.chunk_t)
    assert len(writes) == len(got) == n_out
    # every chunk seen within 2 ms of being written, never before
    lag = got - writes
    assert (lag >= 0).all() and (lag < TOL_S).all(), lag
    # TTFT = first chunk seen - send time: its error is the first chunk's lag (< 2 ms,
    # checked above); it is never shorter than the server's own (scripted 30 ms) TTFT.
    ttft = res.first_token_t - res.sent_t
    server_ttft = writes[0] - fake.recv_log[0][1]
    assert server_ttft >= 0.030 and ttft >= server_ttft
    if n_out > 1:
        gaps = np.diff(got)
        assert np.abs(gaps - np.diff(writes)).max() < TOL_S
        assert np.abs(gaps - 0.008).max() < TOL_S


@pytest.mark.parametrize("n_out", [1, 2, 25])
def test_ttft_and_itl_match_server_write_times(fake, n_out):
    # Buffering shifts timestamps on every attempt; a busy CI core (vLLM starting
    # next door) only now and then. So: pass if one of three attempts is exact.
    for attempt in range(3):
        try:
            _check_once(fake, n_out)
            return
        except AssertionError:
            if attempt == 2:
                raise


def test_http_error_becomes_error_status(fake):
    res = stream_completion("127.0.0.1", fake.port, {"prompt": "text", "max_tokens": 3}, timeout_s=5)
    assert res.status == "error" and res.http_status == 400
    assert "HTTP 400" in res.error


def test_connection_refused_is_an_error_not_an_exception():
    from testbed.server import free_port

    res = stream_completion("127.0.0.1", free_port(), completion_payload("m", [1], 2), timeout_s=2)
    assert res.status == "error" and "Refused" in res.error


def test_timeout_status():
    srv = FakeVllm(ttft_s=2.0, itl_s=0.0)
    port = srv.serve_in_thread()
    try:
        res = stream_completion("127.0.0.1", port, completion_payload("m", [1], 2), timeout_s=0.3)
        assert res.status == "timeout"
    finally:
        srv.shutdown()
