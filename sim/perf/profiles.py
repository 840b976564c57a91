"""Calibration profiles: the performance-model coefficients a pool runs with.

A profile is a JSON file written by ``fleetcast calibrate``::

    {"name": ..., "coefficients": {"e_compute": ..., "e_memory": ..., ...},
     "provenance": {...}, "validation": {...}, "fitted_range": {...}}

Only ``coefficients`` is needed to simulate; the rest travels into reports.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from sim.catalog import load_architectures
from sim.errors import FleetcastError
from sim.infiles import MAX_PROFILE_BYTES, read_text_limited
from sim.perf.achievable import achievable_efficiencies
from sim.perf.attention_backend import paged_decode_coefficients
from sim.perf.attention_efficiency import attention_efficiencies
from sim.perf.cpu_side import CpuSide
from sim.perf.perf_model import PerfCoefficients
from sim.perf.rocm_stack import stack_coefficients

__all__ = ["load_profile", "coefficients_for", "validation_summary", "profile_validation"]

_COEFF_NAMES = {f.name for f in fields(PerfCoefficients)} - {"source"}
_DEFAULTS = PerfCoefficients()
_ATTN_DTYPES = ("bf16", "fp16")  # attention computes in 16 bits (sim.perf.perf_model)


def load_profile(path: Path) -> dict:
    """Read and check a profile file; returns the parsed JSON."""
    path = Path(path)
    if not path.exists():
        raise FleetcastError(f"calibration profile not found: {path}")
    # a regular file within the profiles' limit; a binary one located (line, byte)
    text = read_text_limited(path, MAX_PROFILE_BYTES, "calibration profile file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FleetcastError(f"calibration profile {path} is not valid JSON: {exc}") from None
    coeffs = data.get("coefficients") if isinstance(data, dict) else None
    if not isinstance(coeffs, dict):
        raise FleetcastError(f"calibration profile {path}: missing the 'coefficients' mapping")
    unknown = sorted(set(coeffs) - _COEFF_NAMES)
    if unknown:
        raise FleetcastError(
            f"calibration profile {path}: unknown coefficient(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(_COEFF_NAMES))}"
        )
    return data


def coefficients_for(
    pool, base_dir: Path, gpu=None, quant=None, cpu: CpuSide | None = None, model=None
) -> PerfCoefficients:
    """The pool's coefficients: its profile's; else the efficiencies of the GPU's
    architecture (``architectures.yaml``, at the linear layers' dtype of ``quant``), the
    engine's per-step CPU work of ``cpu`` (``sim.perf.cpu_side``: ``t_step_s``, ``t_seq_s``,
    ``t_prefill_tok_s``), then the GPU catalog entry's ``perf_defaults``, over the built-in
    defaults (``gpu``/``quant``: its ``catalog.GPU`` / ``catalog.QuantSpec``). A GPU without
    measured kernels (no ``kernel_data``) also gets prefill attention's own efficiency,
    ``e_attn_compute`` (``sim.perf.attention_efficiency``), unless ``perf_defaults`` sets it; on
    a software stack measured below the GPU's achievable rates (``sim.perf.rocm_stack``: vLLM 0.6
    on CDNA3) that stack's rates and fixed costs replace them. ``model`` (its ``catalog.ModelSpec``):
    where vLLM's version and the model's features put decode on PagedAttention
    (``sim.perf.attention_backend``), its V1 kernel's rate."""
    if pool.profile is None:
        said = []
        dtype = quant.compute_dtype_on(gpu) if quant is not None and gpu is not None else "bf16"
        values, text = _linear_efficiencies(gpu, dtype)
        said += text
        stack, stack_text = stack_coefficients(gpu, dtype, getattr(getattr(pool, "engine", None), "vllm_version", None))
        if stack:  # a software stack measured below the GPU's achievable rates (sim.perf.rocm_stack)
            values.update(stack)
            said.append(stack_text)
        version = getattr(getattr(pool, "engine", None), "vllm_version", None)
        paged, paged_text = paged_decode_coefficients(gpu, model, version)
        if paged:  # decode on vLLM's PagedAttention by the attention selector (sim.perf.attention_backend)
            values.update(paged)
            said.append(paged_text)
        extra = dict(getattr(gpu, "perf_defaults", None) or {})
        if gpu is not None and not gpu.kernel_data and "e_attn_compute" not in extra and not stack:
            # a roofline pool: attention at its own efficiency (sim.perf.attention_efficiency); pools with
            # measured kernels keep the linear layers' for any part their tables lack
            if dtype in _ATTN_DTYPES:
                base = extra.get("e_compute", values.get("e_compute"))
            else:
                base = _linear_efficiencies(gpu, "bf16")[0].get("e_compute")
            attn, attn_text = attention_efficiencies(base or _DEFAULTS.e_compute)
            values.update(attn)
            said.append(attn_text)
        if cpu is not None:
            values.update(t_step_s=cpu.t_step_s, t_seq_s=cpu.t_seq_s, t_prefill_tok_s=cpu.t_prefill_tok_s)
            said.append(
                f"CPU side per step {cpu.t_step_s * 1e6:.0f} µs + {cpu.t_seq_s * 1e6:.1f} µs/sequence + "
                f"{cpu.t_prefill_tok_s * 1e6:.2f} µs/prefill token"
                f"{', overlapped by async scheduling' if cpu.async_scheduling else ''} ({cpu.source})"
            )
        if extra:
            src = (gpu.sources or {}).get("perf_defaults", "catalog")
            said.append(
                f"catalog defaults for {gpu.name} "
                f"({', '.join(f'{k} {v:g}' for k, v in sorted(extra.items()))}; not validated: {src})"
            )
            values.update(extra)
        if not values:
            return PerfCoefficients()
        rest = "; other coefficients: fleetcast defaults, uncalibrated (see PerfCoefficients)"
        return PerfCoefficients(**values, source="; ".join(said) + rest)
    path = Path(base_dir) / pool.profile
    data = load_profile(path)
    source = f"profile {data.get('name', path.stem)} ({path.name})"
    summary = validation_summary(data)
    return PerfCoefficients(
        **data["coefficients"], source=f"{source}; validated: {summary}" if summary else f"{source}; not validated"
    )


def _linear_efficiencies(gpu, dtype: str) -> tuple[dict[str, float], list[str]]:
    """``e_compute`` (at ``dtype``) and ``e_memory`` of a pool without a profile, and where they
    come from: the GPU's own achievable rates first (``sim.perf.achievable``), its architecture
    sibling's fractions (``architectures.yaml``) for the rest; empty where neither exists."""
    if gpu is None:
        return {}, []
    values: dict[str, float] = {}
    said = []
    arch = load_architectures().get(getattr(gpu, "architecture", "") or "")
    own, own_text = achievable_efficiencies(gpu, dtype)
    if own_text:
        said.append(own_text)
    if arch is not None and arch.e_memory is not None and len(own) < 2:
        # assumes an architecture with e_memory has e_compute fitted too (architectures.yaml; not checked)
        borrowed = {"e_compute": arch.e_compute_for(dtype), "e_memory": arch.e_memory}
        borrowed = {k: v for k, v in borrowed.items() if k not in own}
        said.append(
            f"{arch.name} efficiencies fitted to {arch.sibling}'s measured vLLM GEMMs "
            f"({', '.join(f'{k} {v:g}' + (f' at {dtype}' if k == 'e_compute' else '') for k, v in borrowed.items())}; "
            f"sim/catalog/architectures.yaml, from aiconfigurator-core data, Apache-2.0)"
        )
        values.update(borrowed)  # type: ignore[arg-type]  # e_compute_for is set where e_memory is
    values.update(own)
    return values, said


def validation_summary(data: dict) -> str | None:
    """One line: the profile's validated (held-out) error, or None if it has none."""
    val = data.get("validation") if isinstance(data, dict) else None
    if not isinstance(val, dict) or not val:
        return None
    return str(val.get("summary") or "see the profile's validation section")


def profile_validation(pool, base_dir: Path) -> dict | None:
    """The pool's profile ``validation`` section (held-out errors), or None."""
    if pool.profile is None:
        return None
    val = load_profile(Path(base_dir) / pool.profile).get("validation")
    return val if isinstance(val, dict) and val else None
