"""Power limits (``nvidia-smi -pl``): the clock a GPU runs at under one, and the valid range.

Under a power limit the board lowers its SM clock until its draw fits. A board at clock ratio
``s`` (clock / the clock at its default limit) draws ``P0 · s^k``, ``P0`` what the same work draws
uncapped, so a limit ``C < P0`` gives ``s = (C / P0)^(1/k)``. The SM clock paces the
compute-bound parts of a step (GEMMs at large batch, prefill attention); HBM traffic runs on its
own clock, so memory-bound parts (decode's weight and KV reads) keep their time. A limit therefore
costs prefill-heavy, large-batch steps up to ``1/s`` and leaves a memory-bound decode step as it
was: the H200 decode measurements of Ma et al. (arXiv 2605.11999, "The Illusion of Power Capping
in LLM Decode") draw 137-300 W of 700 W and never reach a limit.

``P0`` of a compute-bound LLM step is taken to be the board's default limit (TDP): the ML.ENERGY
v3 H100 runs reach 690 W of 700 at 256 sequences (issue 27), and the fitted law of
``sim.perf.power`` puts a step at the GEMMs' efficiency above TDP. ``k`` is fitted
(``calibration/power_cap_fit.py``) to the Zeus NSDI '23 power traces (epoch time and power of DNN
training at each ``nvidia-smi -pl`` limit; ``calibration/public/zeus/``): training V100 and A40,
held back RTX 6000 and P100, limits at or above half the default (mean |error| of the time ratio
3.2% held back). Below half the default the law under-predicts the loss (the A40 rows run up to
3x slower), and ``limit_warning`` says so.

``sim.perf.perf_model.PerfModel`` takes the ratio as ``clock_ratio``: its compute-bound FLOP
rates (and its measured tables' compute-bound share) scale by ``s``; 1.0 changes nothing.
"""

from __future__ import annotations

__all__ = [
    "CLOCK_POWER_EXPONENT",
    "LOW_LIMIT_FRACTION",
    "clock_ratio",
    "limit_range_w",
    "limit_error",
    "limit_warning",
    "board_limit_w",
]

#: k of ``P ∝ s^k``: fitted by ``python -m calibration.power_cap_fit`` (tests/test_power_cap.py re-fits)
CLOCK_POWER_EXPONENT = 2.13

#: below this fraction of the default limit the clock law is extrapolated (see the module docstring)
LOW_LIMIT_FRACTION = 0.5


def clock_ratio(limit_w: float | None, tdp_w: float) -> float:
    """SM clock ratio of a compute-bound step under ``limit_w`` (None: no limit -> 1.0)."""
    if limit_w is None or tdp_w <= 0 or limit_w >= tdp_w:
        return 1.0
    return float((limit_w / tdp_w) ** (1.0 / CLOCK_POWER_EXPONENT))


def board_limit_w(limit_w: float | None, tdp_w: float) -> float:
    """The most one board draws on average: its power limit, else its TDP."""
    return tdp_w if limit_w is None else min(float(limit_w), tdp_w)


def limit_range_w(gpu) -> tuple[float, float] | None:
    """(min, max) of ``nvidia-smi -pl`` for a catalog GPU, or None when the catalog has none."""
    lo, hi = float(getattr(gpu, "power_limit_min_w", 0.0)), float(getattr(gpu, "power_limit_max_w", 0.0))
    return (lo, hi) if lo > 0 and hi > 0 else None


def limit_error(gpu, limit_w: float) -> str | None:
    """Why ``limit_w`` is not a valid power limit for ``gpu`` (None: it is)."""
    rng = limit_range_w(gpu)
    src = gpu.sources.get("power_limit_min_w", "") if hasattr(gpu, "sources") else ""
    if rng is None:
        return (
            f"the catalog has no power-limit range for GPU '{gpu.name}' (power_limit_min_w / power_limit_max_w); "
            "add it in a catalog file, or leave power_limit_w out"
        )
    lo, hi = rng
    if not lo <= limit_w <= hi:
        return (
            f"power_limit_w {limit_w:g} W is outside the range of a {gpu.name}: nvidia-smi -pl accepts "
            f"{lo:g} to {hi:g} W (catalog power_limit_min_w / power_limit_max_w; source: {src.split(':')[0] or 'catalog'})"
        )
    return None


def limit_warning(gpu, limit_w: float | None) -> str | None:
    """A warning when the limit is below ``LOW_LIMIT_FRACTION`` of the default (TDP)."""
    if limit_w is None or limit_w >= LOW_LIMIT_FRACTION * gpu.power_w:
        return None
    return (
        f"power_limit_w {limit_w:g} W is below {LOW_LIMIT_FRACTION:.0%} of the {gpu.name}'s {gpu.power_w:g} W: the "
        "clock law was fitted at or above half the default limit, and measured boards lose more there "
        "(calibration/public/zeus/README.md); read its throughput as optimistic"
    )
