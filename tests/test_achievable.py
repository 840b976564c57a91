"""Achievable rates (issue 24 item 2): catalog fields and their checks, the rule that turns them into
roofline efficiencies, the microbench's catalog entry (a fake measurement: no torch here) and the
command's refusals on a machine without torch."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from calibration.microbench_entry import GemmTiming, Measurement, achievable_rates, entry_yaml, write_entry
from sim.catalog import load_catalog
from sim.cli import main
from sim.errors import FleetcastError
from sim.perf.achievable import KAPPA_COMPUTE, KAPPA_MEMORY
from sim.perf.kernels import data as kd
from sim.perf.profiles import coefficients_for
from sim.scenario.fleet_spec import PoolSpec

ROOT = Path(__file__).resolve().parents[1]
CAT = load_catalog()
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _pool(gpu: str) -> PoolSpec:
    return PoolSpec(name="p", gpu=gpu, replicas=1, model="llama-3.1-8b")


def test_built_in_gpus_without_kernel_data_carry_cited_achievable_rates():
    for name in ("rtx-4090", "mi300x"):
        gpu = CAT.gpu(name)
        assert not gpu.kernel_data and gpu.achievable_flops and gpu.achievable_bw_bytes_s, name
        assert all(r <= gpu.peak_flops[dt] for dt, r in gpu.achievable_flops.items()), name
        assert gpu.achievable_bw_bytes_s <= gpu.hbm_bw_bytes_s, name
        for f in ("achievable_flops", "achievable_bw_bytes_s"):
            assert "https://github.com/" in gpu.sources[f], (name, f)  # a published microbenchmark, cited
    # the figures as their sources print them (TFLOPS, GB/s, TB/s)
    assert CAT.gpu("mi300x").achievable_flops["bf16"] == 668.4e12 and CAT.gpu("mi300x").achievable_bw_bytes_s == 4.11e12
    assert CAT.gpu("rtx-4090").achievable_bw_bytes_s == 921.85e9
    assert "179.20" in CAT.gpu("rtx-4090").sources["achievable_flops"]  # measured above the peak: capped, said


def test_the_rule_uses_the_gpus_own_rates_not_a_siblings_fractions():
    c = coefficients_for(_pool("rtx-4090"), Path("."), CAT.gpu("rtx-4090"), CAT.quant("bf16"))
    # by hand: kappa_c 0.927 x 165.2 / 165.2; kappa_m 0.919 x 921.85 / 1008 GB/s
    assert (KAPPA_COMPUTE["bf16"], KAPPA_MEMORY) == (0.927, 0.919)
    assert c.e_compute == pytest.approx(0.927) and c.e_memory == pytest.approx(0.8404565, rel=1e-6)
    assert c.source.startswith("achievable rates of rtx-4090") and "ada efficiencies" not in c.source
    m = coefficients_for(_pool("mi300x"), Path("."), CAT.gpu("mi300x"), CAT.quant("bf16"))
    # 0.927 x 668.4 / 1307.4 and 0.919 x 4.11 / 5.3 TB/s
    assert m.e_compute == pytest.approx(0.4739229, rel=1e-6) and m.e_memory == pytest.approx(0.7126585, rel=1e-6)
    m8 = coefficients_for(_pool("mi300x"), Path("."), CAT.gpu("mi300x"), CAT.quant("fp8"))
    assert m8.e_compute == pytest.approx(0.736 * 1159.23 / 2614.9)  # fp8 has its own kappa and rate


def test_a_rate_for_one_part_keeps_the_siblings_fraction_for_the_other(tmp_path):
    f = tmp_path / "cat.yaml"
    f.write_text("gpus:\n  l4:\n    achievable_flops: {bf16: 90.0e+12}\n")
    gpu = load_catalog([f]).gpu("l4")
    c = coefficients_for(_pool("l4"), Path("."), gpu, CAT.quant("bf16"))
    assert c.e_compute == pytest.approx(0.927 * 90 / 121)
    assert c.e_memory == 0.75  # ada's e_memory, fitted to the L40S (architectures.yaml)
    assert "achievable rates of l4" in c.source and "ada efficiencies fitted to l40s" in c.source


@pytest.mark.parametrize(
    "fields, where, what",
    [
        ("achievable_flops: {bf16: 179.2e+12}", "field 'achievable_flops.bf16'", "above the datasheet peak"),
        ("achievable_bw_bytes_s: 1.2e+12", "field 'achievable_bw_bytes_s'", "above the datasheet bandwidth"),
        ("achievable_flops: {fp4: 1.0e+12}", "field 'achievable_flops.fp4'", "no datasheet peak for fp4"),
        ("achievable_flops: {bf16: -3}", "field 'achievable_flops'.bf16", "a positive number"),
    ],
)
def test_a_user_entry_with_rates_above_the_peak_is_a_located_error(tmp_path, fields, where, what):
    f = tmp_path / "mine.yaml"
    f.write_text(f"gpus:\n  rtx-4090:\n    {fields}\n")
    with pytest.raises(FleetcastError) as e:
        load_catalog([f])
    msg = str(e.value)
    assert f"catalog file {f}" in msg and "gpu 'rtx-4090'" in msg and where in msg and what in msg
    if "above" in what:
        assert f"catalog file {f}, line 3, gpu" in msg  # the line of the offending value


def test_a_scenario_naming_such_a_catalog_file_is_refused_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "mine.yaml").write_text("gpus:\n  rtx-4090:\n    achievable_flops: {bf16: 179.2e+12}\n")
    sc = (ROOT / "scenarios" / "quickstart.yaml").read_text()
    (tmp_path / "s.yaml").write_text("catalog: [mine.yaml]\n" + sc)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"catalog file {tmp_path / 'mine.yaml'}, line 3, gpu 'rtx-4090', field 'achievable_flops.bf16'" in err
    assert "Traceback" not in err and not out.exists()


def _fake(dtype="bf16", seconds=1e-4, copy_seconds=0.01) -> Measurement:
    # 2 * 1000^3 FLOPs in 1e-4 s = 2e13 FLOP/s; 2 * 1e9 bytes in 0.01 s = 2e11 B/s
    gemms = (GemmTiming(dtype, 1000, 1000, 1000, seconds, "square"), GemmTiming(dtype, 100, 1000, 1000, seconds, "o"))
    return Measurement("Fake GPU 0", "0.0-fake", "2026-01-01T00:00:00Z", "llama-3.1-8b", 1, gemms, 10**9, copy_seconds)


def test_the_entry_loads_as_a_catalog_file_and_drives_the_rule(tmp_path):
    out = tmp_path / "l4.yaml"
    text = write_entry(out, CAT.gpu("l4"), _fake())
    assert out.read_text() == text and not list(tmp_path.glob(".*tmp"))
    gpu = load_catalog([out]).gpu("l4")
    assert gpu.achievable_flops["bf16"] == pytest.approx(2e13) and gpu.achievable_bw_bytes_s == pytest.approx(2e11)
    src = gpu.sources["achievable_flops"]
    assert "fleetcast calibrate microbench" in src and "Fake GPU 0" in src and "torch 0.0-fake" in src
    assert "square 1000x1000x1000" in src and "2026-01-01" in src  # provenance: device, torch, date, shapes
    c = coefficients_for(_pool("l4"), Path("."), gpu, CAT.quant("bf16"))
    assert c.e_compute == pytest.approx(0.927 * 2e13 / 121e12) and c.e_memory == pytest.approx(0.919 * 2e11 / 300e9)


def test_a_measurement_above_the_peak_is_capped_and_says_so():
    # 2e13 FLOP/s at 1e-4 s; at 1e-5 s: 2e14 > the L4's 1.21e14 bf16 peak; 2e12 B/s > 300 GB/s
    rates, bw, notes = achievable_rates(_fake(seconds=1e-5, copy_seconds=0.001), CAT.gpu("l4"))
    assert rates["bf16"] == 121e12 and bw == 300e9 and len(notes) == 2 and "capped" in notes[0]
    assert "capped" in entry_yaml(CAT.gpu("l4"), _fake(seconds=1e-5))


def test_a_refused_entry_writes_nothing(tmp_path):
    out = tmp_path / "x.yaml"
    with pytest.raises(FleetcastError, match="no datasheet peak for fp4"):
        write_entry(out, CAT.gpu("l4"), _fake(dtype="fp4"))  # the L4's entry has no fp4 peak
    assert not out.exists()


def test_the_check_reads_the_entry_over_the_users_catalogs(tmp_path):
    # the user's catalog lowers the L4's bf16 peak under the measured rate: refused, located, nothing written
    low = tmp_path / "low.yaml"
    low.write_text("gpus:\n  l4:\n    peak_flops: {bf16: 1.0e+13}\n")
    out = tmp_path / "x.yaml"
    with pytest.raises(FleetcastError) as e:
        write_entry(out, CAT.gpu("l4"), _fake(), [low])
    assert f"catalog file {out}" in str(e.value) and "achievable_flops.bf16" in str(e.value)
    assert "not written" in str(e.value) and not out.exists() and not list(tmp_path.glob(".*tmp"))


@pytest.mark.skipif(HAS_TORCH, reason="checks the message of a machine without PyTorch")
def test_microbench_without_torch_says_so_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "gpu.yaml"
    assert main(["calibrate", "microbench", "--gpu", "rtx-4090", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs PyTorch" in err and "pip install torch" in err and not out.exists()


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--out", "{d}/gpu.yaml"], "needs --gpu NAME"),
        (["--gpu", "rtx-4090", "--out", "{d}/gpu.json"], "give a .yaml file"),
        (["--gpu", "rtx-pro-6000", "--dtype", "fp32", "--out", "{d}/gpu.yaml"], "no datasheet peak for it"),
        (["--gpu", "rtx-4099", "--out", "{d}/gpu.yaml"], "Did you mean 'rtx-4090'"),
    ],
)
def test_microbench_refuses_before_measuring(tmp_path, capsys, args, msg):
    argv = ["calibrate", "microbench", *(a.format(d=tmp_path) for a in args)]
    assert main(argv) == 2
    assert msg in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.skipif(kd.data_root() is None, reason="aiconfigurator-core (kernel data) not installed")
def test_the_shipped_kappas_are_the_leave_one_out_benchs_fit():
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "achievable_loo.py"), "--check"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| h200_sxm | bf16 | compute |" in r.stdout and "kappas match" in r.stdout
    assert "| l40s |" in r.stdout and "attention_efficiency.py rho_c matches" in r.stdout
