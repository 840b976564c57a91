"""Fit roofline efficiencies per GPU architecture to measured vLLM GEMM kernels.

GPUs without kernel data (RTX 4090, L4, MI300X, a user's own entry) run on the
roofline; their ``e_compute`` (per dtype) and ``e_memory`` come from a sibling
of the same architecture that aiconfigurator-core measured. For each sibling
this script reads the newest vLLM GEMM table
(``aiconfigurator_core/systems/data/<system>/gemm/vllm/<version>/gemm_perf.parquet``;
aiconfigurator-core, Apache-2.0), keeps layer-sized shapes (n, k >= 1024) that are not launch-bound
(ideal time >= 20 µs), and
finds the efficiencies minimising the squared log error of

    t = max(2·m·n·k / (peak_dtype · e_compute), bytes / (hbm_bw · e_memory)),
    bytes = n·k·weight_bytes + 2·(m·k + m·n)

with the peaks and bandwidth of the sibling's fleetcast catalog entry, on a
0.005 grid: bf16 fits e_compute and e_memory together, fp8 fits e_compute with
bf16's e_memory. It writes ``sim/catalog/architectures.yaml`` (deterministic;
``--check`` compares instead of writing).

    python -m calibration.kernel_efficiencies [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sim.catalog import load_catalog
from sim.perf.kernels import data as kd

OUT = Path(__file__).resolve().parents[1] / "sim" / "catalog" / "architectures.yaml"
# architecture -> (fleetcast GPU of the sibling, aiconfigurator system), or None: no sibling in the data
SIBLINGS = {
    "ampere": ("a100-80gb", "a100_sxm"),
    "ada": ("l40s", "l40s"),
    "hopper": ("h100-sxm", "h100_sxm"),
    "blackwell": ("b200", "b200_sxm"),
    "cdna3": None,
}
DTYPES = {"bf16": ("bfloat16", 2.0), "fp8": ("fp8", 1.0)}
MIN_IDEAL_S = 20e-6
"""Shapes whose ideal time is shorter are launch-bound (a fixed ~10-20 µs the roofline
has no term for; fleetcast's t_step_s carries it): they are left out of the fit."""
GRID = np.round(np.arange(0.20, 1.0001, 0.005), 3)


def _rows(root: Path, system: str, version: str, dtype: str):
    t = kd.read_table(root, system, "gemm_perf", version, ["gemm_dtype", "kernel_source", "m", "n", "k", "latency"])
    mask = (t["gemm_dtype"] == dtype) & (t["n"] >= 1024) & (t["k"] >= 1024)
    if not mask.any():
        return None
    names, counts = np.unique(t["kernel_source"][mask].astype(str), return_counts=True)
    mask &= t["kernel_source"] == names[int(np.argmax(counts))]
    m, n, k = (t[c][mask].astype(np.float64) for c in "mnk")
    return m, n, k, t["latency"][mask] * 1e-3


def _fit(flops_s: np.ndarray, bytes_s: np.ndarray, meas_s: np.ndarray, e_memory: float | None):
    """(e_compute, e_memory, median |relative error|) on the grid; flops_s/bytes_s are
    the times at efficiency 1."""
    log_meas = np.log(meas_s)
    mems = GRID if e_memory is None else np.array([e_memory])
    best = None
    for em in mems:  # columns: every e_compute at once
        t = np.maximum(flops_s[:, None] / GRID[None, :], (bytes_s / em)[:, None])
        err = ((np.log(t) - log_meas[:, None]) ** 2).sum(axis=0)
        i = int(np.argmin(err))
        if best is None or err[i] < best[0]:
            best = (err[i], float(GRID[i]), float(em))
    assert best is not None  # GRID is not empty
    _, ec, em = best
    t = np.maximum(flops_s / ec, bytes_s / em)
    return ec, em, float(np.median(np.abs(t / meas_s - 1.0)))


def fit_all(root: Path) -> dict:
    cat = load_catalog()
    out = {}
    for arch, sib in SIBLINGS.items():
        if sib is None:
            out[arch] = {
                "source": "no sibling GPU of this architecture in aiconfigurator-core's vLLM kernel data; "
                "fleetcast's default efficiencies apply"
            }
            continue
        gpu_name, system = sib
        gpu = cat.gpu(gpu_name)
        version = kd.nearest_version(kd.versions(root, system, "gemm_perf"), None)
        entry: dict[str, Any] = {"sibling": system, "e_compute": {}}
        notes = []
        e_mem = None
        for dt, (gemm_dtype, wb) in DTYPES.items():
            rows = _rows(root, system, version, gemm_dtype)  # type: ignore[arg-type]  # assumes gemm_perf tables (not checked)
            if rows is None or dt not in gpu.peak_flops:
                continue
            m, n, k, lat_s = rows
            flops_s = 2.0 * m * n * k / gpu.peak_flops[dt]
            bytes_s = (n * k * wb + 2.0 * (m * k + m * n)) / gpu.hbm_bw_bytes_s
            big = np.maximum(flops_s, bytes_s) >= MIN_IDEAL_S  # not launch-bound
            m, flops_s, bytes_s, lat_s = m[big], flops_s[big], bytes_s[big], lat_s[big]
            ec, em, err = _fit(flops_s, bytes_s, lat_s, e_mem)
            entry["e_compute"][dt] = ec
            if e_mem is None:
                e_mem = entry["e_memory"] = em
            notes.append(f"{dt} {len(m)} shapes, median error {err * 100:.1f}%")
        entry["source"] = (
            f"fitted by calibration/kernel_efficiencies.py to {kd.PACKAGE} {kd.package_version()} "
            f"({kd.LICENSE}) systems/data/{system}/gemm/vllm/{version}/gemm_perf.parquet "
            f"(n, k >= 1024, ideal time >= 20 µs; {'; '.join(notes)}) with the peaks and bandwidth of the catalog's "
            f"{gpu_name}"
        )
        out[arch] = entry
    return out


def render(fits: dict) -> str:
    lines = [
        "# GPU architectures: roofline efficiencies fitted to a sibling GPU's measured vLLM kernels.",
        "#",
        "# GENERATED by `python -m calibration.kernel_efficiencies` (do not edit by hand): derived",
        "# data from aiconfigurator-core (NVIDIA, Apache-2.0), whose kernel tables it reads.",
        "# A GPU names its architecture in gpus.yaml (`architecture:`); without measured kernels",
        "# of its own (`kernel_data:`) its roofline runs at these efficiencies: e_compute per",
        "# linear-layer dtype (bf16 for dtypes not listed), e_memory for bandwidth-bound parts.",
        "",
        "architectures:",
    ]
    for arch, e in fits.items():
        lines.append(f"  {arch}:")
        if "sibling" in e:
            lines.append(f"    sibling: {e['sibling']}")
            lines.append("    e_compute: {" + ", ".join(f"{k}: {v:.3f}" for k, v in e["e_compute"].items()) + "}")
            lines.append(f"    e_memory: {e['e_memory']:.3f}")
        lines.append(f'    source: "{e["source"]}"')
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    a = ap.parse_args(argv)
    root = kd.data_root()
    if root is None:
        print(f"{kd.PACKAGE} is not installed: pip install {kd.PACKAGE}", file=sys.stderr)
        return 2
    text = render(fit_all(root))
    if a.check:
        same = OUT.read_text(encoding="utf-8") == text
        print("architectures.yaml is up to date" if same else "architectures.yaml differs from the data's fit")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
