"""A microbenchmark's result as a user catalog entry (no torch here).

``fleetcast calibrate microbench`` (calibration/gpu_microbench.py) measures; this module turns a
``Measurement`` into the YAML of a user catalog file that overrides one GPU's
``achievable_flops`` / ``achievable_bw_bytes_s`` (sim/catalog/gpus.yaml conventions), with the
provenance in its ``sources:`` and every timing in a header comment, checks it through
``load_catalog`` exactly as a scenario would read it, and writes it atomically: a refused entry
leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sim.catalog import GPU, load_catalog
from sim.errors import FleetcastError

__all__ = ["GemmTiming", "Measurement", "achievable_rates", "entry_yaml", "write_entry"]


@dataclass(frozen=True)
class GemmTiming:
    """One timed GEMM: (m x k) @ (k x n) at ``dtype``, best seconds over the repeats."""

    dtype: str
    m: int
    n: int
    k: int
    seconds: float
    label: str = ""  # which layer's shape (qkv, o, gate_up, down, square)

    @property
    def flops_s(self) -> float:
        return 2.0 * self.m * self.n * self.k / self.seconds


@dataclass(frozen=True)
class Measurement:
    """What one microbenchmark run saw on one device."""

    device_name: str  # torch's name of the device
    torch_version: str
    date_utc: str  # ISO date-time of the run
    model: str  # catalog model whose layer shapes were timed
    tensor_parallel: int
    gemms: tuple[GemmTiming, ...]
    copy_bytes: int  # bytes of the tensor copied (read once, written once)
    copy_seconds: float
    attention: dict[str, float] = field(default_factory=dict)  # prefill_flops_s, decode_bytes_s, and their shapes

    @property
    def bw_bytes_s(self) -> float:
        return 2.0 * self.copy_bytes / self.copy_seconds


def achievable_rates(meas: Measurement, gpu: GPU) -> tuple[dict[str, float], float, list[str]]:
    """(FLOP/s per dtype, bytes/s, notes): the best GEMM per dtype and the copy bandwidth, each
    capped at ``gpu``'s datasheet peak (a card that boosts past the clock its datasheet assumes
    measures more; the catalog refuses achievable > peak) with a note when capped."""
    notes = []
    best: dict[str, float] = {}
    for g in meas.gemms:
        best[g.dtype] = max(best.get(g.dtype, 0.0), g.flops_s)
    for dt, rate in list(best.items()):
        peak = gpu.peak_flops.get(dt)
        if peak is None:
            raise FleetcastError(
                f"GPU '{gpu.name}' has no datasheet peak for {dt} (peak_flops has {', '.join(sorted(gpu.peak_flops))}); "
                f"measure one of those dtypes (--dtype), or add peak_flops.{dt} to its catalog entry"
            )
        if rate > peak:
            notes.append(f"{dt}: measured {rate / 1e12:.4g} TFLOPS, above the datasheet peak {peak / 1e12:.4g}: capped")
            best[dt] = peak
    bw = meas.bw_bytes_s
    if bw > gpu.hbm_bw_bytes_s:
        notes.append(
            f"copy: measured {bw / 1e9:.4g} GB/s, above the datasheet {gpu.hbm_bw_bytes_s / 1e9:.4g} GB/s "
            "(a cache held the copy?): capped"
        )
        bw = gpu.hbm_bw_bytes_s
    return best, bw, notes


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def entry_yaml(gpu: GPU, meas: Measurement) -> str:
    """The user catalog file (text) giving ``gpu`` the measured achievable rates."""
    rates, bw, notes = achievable_rates(meas, gpu)
    prov = (
        f"measured by `fleetcast calibrate microbench` on {meas.device_name} (torch {meas.torch_version}, "
        f"{meas.date_utc}), {meas.model} TP{meas.tensor_parallel} layer shapes"
    )
    shapes = "; ".join(
        f"{dt} best of " + ", ".join(f"{g.label} {g.m}x{g.n}x{g.k}" for g in meas.gemms if g.dtype == dt)
        for dt in rates
    )
    lines = [
        f"# Achievable rates of {gpu.name}, written by `fleetcast calibrate microbench`.",
        f"# device: {meas.device_name}; torch {meas.torch_version}; {meas.date_utc}",
        "# GEMM timings (dtype label m x n x k: best seconds, TFLOPS):",
        *(f"#   {g.dtype} {g.label} {g.m}x{g.n}x{g.k}: {g.seconds:.6g} s, {g.flops_s / 1e12:.4g}" for g in meas.gemms),
        f"# copy {meas.copy_bytes} bytes: {meas.copy_seconds:.6g} s, {meas.bw_bytes_s / 1e9:.4g} GB/s (read + write)",
        *(f"# attention {k}: {v:.6g}" for k, v in sorted(meas.attention.items())),
        *(f"# note: {n}" for n in notes),
        "# Use it with `catalog: [this file]` in a scenario (or --catalog); it overrides only these fields.",
        "gpus:",
        f"  {gpu.name}:",
        "    achievable_flops:",
        *(f"      {dt}: {rate:.6g}" for dt, rate in sorted(rates.items())),
        f"    achievable_bw_bytes_s: {bw:.6g}",
        "    sources:",
        f"      achievable_flops: {_q(f'{prov}: {shapes}' + (' (' + '; '.join(notes) + ')' if notes else ''))}",
        f"      achievable_bw_bytes_s: {_q(f'{prov}: copy of {meas.copy_bytes} bytes, read + write bytes / time')}",
    ]
    return "\n".join(lines) + "\n"


def write_entry(out: Path, gpu: GPU, meas: Measurement, catalogs: Sequence[Path] = ()) -> str:
    """Check the entry as a scenario would read it (over ``catalogs``), then write ``out``
    atomically; returns the text. A refused entry raises FleetcastError and writes nothing."""
    text = entry_yaml(gpu, meas)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        try:
            load_catalog([*map(Path, catalogs), tmp]).gpu(gpu.name)
        except FleetcastError as exc:
            raise FleetcastError(str(exc).replace(str(tmp), str(out)) + f" ({out} not written)") from None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return text
