"""``fleetcast calibrate microbench`` with real PyTorch on this machine's CPU.

Needs torch, which fleetcast's own environment does not install: CI runs this module in the testbed
stage (.ci/testbed-stage.sh, whose venv has torch); elsewhere it is skipped. Marked ``torch``."""

from __future__ import annotations

import time

import pytest

from sim.catalog import load_catalog
from sim.cli import main

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

# a CPU "GPU" with peaks no 2-core CPU reaches, so a measurement is never capped
ENTRY = """gpus:
  test-cpu:
    peak_flops: {fp32: 1.0e+15, bf16: 1.0e+15, fp8: 2.0e+15}
    hbm_bytes: 16.0e+9
    hbm_bw_bytes_s: 1.0e+13
    interconnect_bw_bytes_s: 1.0e+9
    power_w: 100
    price_usd_per_hour: 0.1
"""


def _argv(tmp_path, *extra):
    cat = tmp_path / "cpu.yaml"
    cat.write_text(ENTRY)
    return ["calibrate", "microbench", "--gpu", "test-cpu", "--model", "llama-3.1-8b", "--catalog", str(cat),
            "--device", "cpu", "--tokens", "16", *extra]


def test_microbench_on_cpu_writes_a_catalog_entry_with_provenance(tmp_path, capsys):
    out = tmp_path / "test-cpu.yaml"
    start = time.perf_counter()
    assert main(_argv(tmp_path, "--out", str(out))) == 0
    assert time.perf_counter() - start < 120  # the budget, here on a shared 2-core CPU
    printed = capsys.readouterr().out
    assert "fp32 GEMM:" in printed and f"wrote {out}" in printed
    gpu = load_catalog([tmp_path / "cpu.yaml", out]).gpu("test-cpu")
    assert 0 < gpu.achievable_flops["fp32"] < 1e15 and 0 < gpu.achievable_bw_bytes_s < 1e13
    src = gpu.sources["achievable_flops"]
    assert f"torch {torch.__version__}" in src and "llama-3.1-8b TP1" in src and "gate_up 16x28672x4096" in src
    text = out.read_text()
    assert "attention prefill_flops_s" in text and "attention decode_kv_bytes_s" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_naming_a_gpu_on_a_machine_without_one_is_refused(tmp_path, capsys):
    out = tmp_path / "x.yaml"
    argv = [a for a in _argv(tmp_path, "--out", str(out)) if a != "cpu"]
    argv[argv.index("--device") + 1: argv.index("--device") + 1] = ["cuda"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "sees no GPU" in err and "--device cpu" in err and not out.exists()


def test_a_dtype_this_machine_cannot_multiply_is_refused(tmp_path, capsys, monkeypatch):
    """torch 2.13's CPU build does run fp8 GEMMs (slowly), so the missing kernel is simulated: what a
    machine without fp8 raises (RuntimeError from torch._scaled_mm) must become exit 2, nothing written."""

    def no_fp8(*args, **kwargs):
        raise RuntimeError("_scaled_mm is not supported on this device")

    monkeypatch.setattr(torch, "_scaled_mm", no_fp8)
    out = tmp_path / "x.yaml"
    assert main(_argv(tmp_path, "--dtype", "fp8", "--out", str(out))) == 2
    err = capsys.readouterr().err
    assert "cannot run fp8 GEMMs on cpu" in err and "not supported" in err and not out.exists()
