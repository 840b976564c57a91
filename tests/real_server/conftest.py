"""Fixtures that start a REAL vLLM server (testbed venv only; `-m real_server`).

One server per session (starting vLLM takes 30-80 s on 2 cores), always
stopped by its process group in a ``finally`` even when a test fails. The model
comes from ``FLEETCAST_TESTBED_MODEL`` (the CI stage builds it once) or is
built here (tiny, ~10 s). ``FLEETCAST_TESTBED_URL`` attaches to a running
server instead of starting one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

try:  # Locust monkey-patches the standard library: import it before anything opens sockets
    import testbed.load  # noqa: F401
    import transformers  # noqa: F401
except ImportError:  # the light .venv: nothing here can run
    collect_ignore_glob = ["test_*.py"]


def cpu_dtype() -> str:
    """The dtype the calibration catalog describes for this device: bfloat16 on a GPU;
    float32 on a CPU, whatever its instruction set. ``calibration/catalog-cpu.yaml``
    gives a CPU an fp32 peak only (bf16 is emulated on AVX2, and no bf16 peak was
    measured for AVX-512-BF16/AMX CPUs), so a bf16 server there could not be fitted
    or replayed; float32 gives the same test on AVX2, AVX-512 and AMX machines."""
    from testbed.server import has_gpu

    return "bfloat16" if has_gpu() else "float32"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    prebuilt = os.environ.get("FLEETCAST_TESTBED_MODEL")
    if prebuilt:
        return Path(prebuilt)
    from testbed.models import build_model

    path = tmp_path_factory.mktemp("model") / "tiny"
    build_model(path, "tiny", seed=0)
    return path


@pytest.fixture(scope="session")
def vllm_server(tiny_model, tmp_path_factory):
    from testbed.server import AttachedServer, EngineArgs, start_server

    if os.environ.get("FLEETCAST_TESTBED_URL"):  # a server you started (quick iterations)
        srv = AttachedServer(os.environ["FLEETCAST_TESTBED_URL"])
        srv.engine = None
        yield srv
        return
    log_dir = Path(os.environ.get("FLEETCAST_TESTBED_LOGS") or tmp_path_factory.mktemp("server"))
    engine = EngineArgs(model=str(tiny_model), dtype=cpu_dtype(), kv_cache_space_gib=1.0)
    srv = None
    try:
        srv = start_server(engine, log_dir, timeout_s=420)
        print(f"\nvLLM healthy after {srv.time_to_healthy_s:.1f} s (pid {srv.pid}, dtype {engine.dtype})")
        srv.engine = engine
        yield srv
    finally:
        if srv is not None:
            srv.stop()
