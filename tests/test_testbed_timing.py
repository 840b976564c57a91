"""The streaming client's timestamps match a local SSE server's write times.

Guards against stream buffering (Locust's FastHttpUser.iter_lines merged
events and delayed TTFT by ~20 ms): the client must see every chunk after the
server wrote it and before the server writes the next one, and its TTFT may
exceed the server's by under half of it: orderings and ratios within one run,
no absolute time threshold.
"""

from __future__ import annotations

import numpy as np
import pytest

from testbed.fake_server import FakeVllm
from testbed.sse_client import completion_payload, stream_completion


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
    assert res.chunk_tokens == list(range(1, n_out + 1))  # one token per chunk, none merged
    writes = np.array([t for (_r, _i, t) in fake.write_log])
    got = np.array(res.chunk_t)
    assert len(writes) == len(got) == n_out
    recv = fake.recv_log[0][1]  # same clock (time.perf_counter, one process)
    lag = got - writes
    # never seen before it was written (causality, not a time threshold)
    assert (lag >= 0).all(), lag
    # TTFT as the client measures it (send to first chunk): never shorter than the server's own (request
    # read to first write), and longer only by the request's trip and the first chunk's lag: under half of
    # the server's TTFT (a buffering client: Locust's ~20 ms against the scripted 30 ms)
    ttft = res.first_token_t - res.sent_t
    server_ttft = writes[0] - recv
    assert server_ttft <= ttft < 1.5 * server_ttft, (ttft, server_ttft)
    if n_out > 1:
        # No chunk held back: the client sees each chunk before the server writes the next one (a buffering
        # client sees it no earlier). Checked where the server kept its schedule, i.e. its gap to the next
        # write is at least half its median gap in this run; after a stall it writes the late chunks back to
        # back, and client and server share one process (and GIL), so no reader could beat those writes.
        server_gaps = np.diff(writes)
        on_schedule = server_gaps >= 0.5 * np.median(server_gaps)
        assert on_schedule.mean() >= 0.5, server_gaps  # else the run says nothing: the server itself stalled
        assert (got[:-1] < writes[1:])[on_schedule].all(), (lag, server_gaps)
        # and the last chunk before the next would have been due
        assert lag[-1] < np.median(server_gaps), (lag, server_gaps)


@pytest.mark.parametrize("n_out", [1, 2, 25])
def test_ttft_and_itl_match_server_write_times(fake, n_out):
    # Why one clean attempt of three suffices: buffering is a property of the client's code path, so it
    # makes every attempt fail (each has a chunk held until the next write). What fails an attempt
    # otherwise is this machine, not the client: the test shares CI cores (a vLLM server may be starting
    # next door), and one descheduling of the reader thread for an inter-token gap (8 ms), or of the
    # server for most of the run, spoils one attempt now and then. The thresholds themselves are ratios
    # and orderings within the attempt, never absolute times.
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
