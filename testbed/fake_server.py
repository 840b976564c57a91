"""A stand-in for a vLLM OpenAI server, standard library only.

Serves ``/health``, ``/metrics`` (a few ``vllm:*`` series) and streamed
``/v1/completions`` with scripted delays (time to first token, then a fixed gap
per token). Used by the fast tests (timing accuracy, lifecycle and fault
handling without vLLM) and handy to try the CLI on a laptop:

    python -m testbed.fake_server --port 8011 --ttft-ms 20 --itl-ms 5
    fleetcast testbed run scenario.yaml --model DIR --url http://127.0.0.1:8011

It records the clock time of every chunk it writes (``write_log``), so a test
can compare the client's timestamps with the server's in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeVllm", "main"]


class FakeVllm:
    """The fake server's state and settings; ``serve_in_thread`` starts it."""

    def __init__(self, ttft_s=0.02, itl_s=0.005, die_after_requests=0, clock=time.perf_counter):
        self.ttft_s = ttft_s
        self.itl_s = itl_s
        self.die_after_requests = die_after_requests  # 0: never; else os._exit mid-stream
        self.clock = clock
        self.lock = threading.Lock()
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.requests_total = 0
        self.running = 0
        self.write_log: list[tuple[int, int, float]] = []  # (request no., token index, clock)
        self.recv_log: list[tuple[int, float]] = []  # (request no., clock when the body was read)
        self.httpd: ThreadingHTTPServer | None = None

    def metrics_text(self) -> str:
        with self.lock:
            lab = '{model_name="fake"}'
            return (
                "# TYPE vllm:num_requests_running gauge\n"
                f"vllm:num_requests_running{lab} {self.running}\n"
                f"vllm:num_requests_waiting{lab} 0\n"
                f"vllm:kv_cache_usage_perc{lab} {min(1.0, self.running / 16):.3f}\n"
                "# TYPE vllm:prompt_tokens_total counter\n"
                f"vllm:prompt_tokens_total{lab} {float(self.prompt_tokens_total)}\n"
                f"vllm:generation_tokens_total{lab} {float(self.generation_tokens_total)}\n"
                f"vllm:num_preemptions_total{lab} 0.0\n"
                'vllm:cache_config_info{block_size="16",num_gpu_blocks="1024",'
                'enable_prefix_caching="False"} 1.0\n'
            )

    def serve_in_thread(self, port: int = 0) -> int:
        """Start serving on 127.0.0.1 (``port`` 0: any free one); returns the port."""
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.httpd.server_address[1]

    def shutdown(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def _make_handler(fake: FakeVllm):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep test output quiet
            pass

        def _send_plain(self, code: int, text: str) -> None:
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/health":
                self._send_plain(200, "")
            elif self.path == "/metrics":
                self._send_plain(200, fake.metrics_text())
            else:
                self._send_plain(404, "not found")

        def _chunk(self, obj) -> None:
            data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
            event = b"data: " + data + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            recv_t = fake.clock()
            if self.path != "/v1/completions" or not isinstance(body.get("prompt"), list):
                self._send_plain(400, '{"error": "want /v1/completions with token ids"}')
                return
            n_prompt, n_out = len(body["prompt"]), int(body["max_tokens"])
            with fake.lock:
                fake.requests_total += 1
                req_no = fake.requests_total
                fake.recv_log.append((req_no, recv_t))
                fake.running += 1
                fake.prompt_tokens_total += n_prompt
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                start = fake.clock()
                for i in range(n_out):
                    due = start + fake.ttft_s + i * fake.itl_s
                    while (left := due - fake.clock()) > 0:
                        time.sleep(min(left, 0.0005) if left < 0.002 else left - 0.001)
                    if fake.die_after_requests and req_no > fake.die_after_requests and i == 1:
                        os._exit(17)  # simulate a crash mid-stream
                    usage = {"prompt_tokens": n_prompt, "completion_tokens": i + 1, "total_tokens": n_prompt + i + 1}
                    choice = {"index": 0, "text": "x", "finish_reason": "length" if i == n_out - 1 else None}
                    with fake.lock:
                        fake.generation_tokens_total += 1
                    written_t = fake.clock()  # just before the write: the client cannot see it earlier
                    self._chunk({"choices": [choice], "usage": usage})
                    fake.write_log.append((req_no, i + 1, written_t))
                self._chunk({"choices": [], "usage": usage})
                self._chunk(b"[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (timeouts, cancellation tests)
            finally:
                with fake.lock:
                    fake.running -= 1

    return Handler


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8011)
    p.add_argument("--ttft-ms", type=float, default=20.0)
    p.add_argument("--itl-ms", type=float, default=5.0)
    p.add_argument("--die-after-requests", type=int, default=0)
    p.add_argument("--fail-start", action="store_true", help="print an error and exit 3")
    p.add_argument("--startup-s", type=float, default=0.0, help="sleep before listening")
    args, _unknown = p.parse_known_args(argv)  # tolerate vLLM flags when used as a stand-in
    if args.fail_start:
        print("fake server: ValueError: no such model (scripted failure)", flush=True)
        raise SystemExit(3)
    time.sleep(args.startup_s)
    fake = FakeVllm(args.ttft_ms / 1000, args.itl_ms / 1000, args.die_after_requests)
    fake.serve_in_thread(args.port)
    print(f"fake server listening on 127.0.0.1:{args.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
