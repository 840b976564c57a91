"""GPU power from what the engine's steps did, fitted to ML.ENERGY Benchmark v3.

One GPU draws

    W = idle_w                                   while no engine step runs,
    W = active_w + w_per_mfu · mfu + w_per_mbu · mbu   while one runs,

where a curve's ``active_w`` holds its GPU-count term for the replica's GPUs: ``active_1gpu_w +
w_per_log2_gpus · log2(GPUs per replica)`` (H100 SXM: −28.6 W per doubling; B200: 0), the GPU count held
within the fit's 1..8 (``GPUS_FITTED``).

with ``mfu`` the step's FLOPs / (duration · the GPU's peak at the compute dtype) and ``mbu`` its HBM
bytes / (duration · HBM bandwidth). The law is linear in FLOPs and bytes, so a replica's energy over
the window is exact from the sums the engine already keeps (``ReplicaStats.busy_s``, ``flops``,
``bytes``) and costs the hot loop nothing::

    E = gpus · (idle_w · (held_s - busy_s) + active_w · busy_s)
        + w_per_mfu · flops / peak_flops_per_gpu + w_per_mbu · bytes / hbm_bw_per_gpu

The coefficients are fitted (``calibration/power_fit.py``) on the training split of
``calibration/public/ml_energy/configs.csv``: H100 SXM for Hopper (with the GPU-count term, robust relative
criterion: the form ``calibration/power_cv.py`` chose by cross-validation within the training split), B200
for Blackwell (non-negative least squares, no GPU-count term). A GPU without measurements uses its architecture's curve (else Hopper's)
scaled by its TDP over the measured GPU's, and says so in ``basis``. ``idle_w`` is an assumption: the
data has no idle periods (every run keeps the engine stepping).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "PowerCurve",
    "MEASURED",
    "IDLE_FRACTION_OF_TDP",
    "GPUS_FITTED",
    "gpu_curve",
    "energy_j",
    "HostPower",
    "SERVER_MAX_W",
    "host_power",
]

#: assumption: a GPU held by a serving process with no step running draws ~10% of its TDP
#: (H100 SXM: 70 W), the order of nvidia-smi's idle readings of an SXM board with a CUDA context.
IDLE_FRACTION_OF_TDP = 0.10

_SOURCE = (
    "fitted by calibration/power_fit.py to ML.ENERGY Benchmark v3 (ml-energy/leaderboard @ 0cd52dab, "
    "Apache-2.0; vLLM 0.11.1), training split of calibration/public/ml_energy/configs.csv"
)


@dataclass(frozen=True)
class PowerCurve:
    """Power law of one GPU (see the module docstring); watts per GPU."""

    idle_w: float
    active_w: float
    w_per_mfu: float
    w_per_mbu: float
    tdp_w: float
    basis: str  # measured, or which curve it was scaled from and why


#: catalog GPU -> (architecture, active W at one GPU, w_per_mfu, w_per_mbu, W per doubling of the
#: replica's GPUs, TDP W): the fitted curves (``python -m calibration.power_fit`` prints them;
#: tests/test_power.py re-fits and compares).
MEASURED: dict[str, tuple[str, float, float, float, float, float]] = {
    "h100-sxm": ("hopper", 490.0, 940.0, 0.0, -28.6, 700.0),
    "b200": ("blackwell", 579.2, 1491.1, 397.1, 0.0, 1000.0),
}

#: the GPUs per server the fit saw (ML.ENERGY v3: 1, 2, 4, 8): a replica's GPU count is held within
#: them for the GPU-count term (no data says how the draw goes on past one 8-GPU server)
GPUS_FITTED = (1, 8)


def _gpu_term(gpus: int) -> tuple[float, str]:
    """log2 of the replica's GPU count held within ``GPUS_FITTED``, and that count as the basis names it."""
    held = min(max(gpus, GPUS_FITTED[0]), GPUS_FITTED[1])
    return math.log2(held), f"{held} GPUs per replica" + (f"; {gpus} held to the fit's {held}" if held != gpus else "")


def gpu_curve(name: str, architecture: str, tdp_w: float, gpus: int = 1) -> PowerCurve:
    """The power curve of a catalog GPU in a replica of ``gpus`` GPUs: measured, else its
    architecture's (else Hopper's) scaled to its TDP."""
    lg, count = _gpu_term(gpus)
    if name in MEASURED:
        _, a, m, b, g, tdp = MEASURED[name]
        term = f"; active_w = {a:g} {g:+g} W x log2({count})" if g else ""
        return PowerCurve(IDLE_FRACTION_OF_TDP * tdp, a + g * lg, m, b, tdp, f"measured: {_SOURCE}{term}")
    src = next((gg for gg, v in MEASURED.items() if v[0] == architecture), "h100-sxm")
    arch, a, m, b, g, tdp = MEASURED[src]
    k = tdp_w / tdp
    why = f"its architecture ({arch})" if arch == architecture else f"no {architecture or 'known'} curve; Hopper's"
    term = f"; active_w = ({a:g} {g:+g} W x log2({count})) x the TDP ratio" if g else ""
    return PowerCurve(
        IDLE_FRACTION_OF_TDP * tdp_w,
        (a + g * lg) * k,
        m * k,
        b * k,
        tdp_w,
        f"not measured: {why} curve from {src} scaled by TDP {tdp_w:g} W / {tdp:g} W{term}",
    )


def energy_j(
    curve: PowerCurve,
    gpus: int,
    held_s: float,
    busy_s: float,
    flops: float,
    bytes_moved: float,
    peak_flops_per_gpu: float,
    hbm_bw_per_gpu: float,
) -> float:
    """Energy of one replica of ``gpus`` GPUs held for ``held_s`` whose steps ran ``busy_s`` and
    moved ``flops`` / ``bytes_moved`` in all (all its GPUs), J; at most TDP x GPUs x ``held_s`` (the
    law is linear, a board is not: above its limit it throttles, so the mean is capped there)."""
    busy = min(max(busy_s, 0.0), held_s)
    e = gpus * (curve.idle_w * (held_s - busy) + curve.active_w * busy)
    if peak_flops_per_gpu > 0:
        e += curve.w_per_mfu * flops / peak_flops_per_gpu
    if hbm_bw_per_gpu > 0:
        e += curve.w_per_mbu * bytes_moved / hbm_bw_per_gpu
    # a board never averages above its power limit (it throttles): cap the replica's mean at TDP
    return min(e, gpus * curve.tdp_w * held_s)


#: catalog GPU -> (server system power max W, GPUs per server, source): the non-GPU share of a
#: server (CPUs, memory, NICs, NVSwitches, fans, PSU losses) is the system maximum less the GPUs' TDP.
SERVER_MAX_W: dict[str, tuple[float, int, str]] = {
    "h100-sxm": (10200.0, 8, "NVIDIA DGX H100 datasheet: system power usage ~10.2 kW max (8x H100 SXM)"),
    "h200": (10200.0, 8, "NVIDIA DGX H200 datasheet: system power usage ~10.2 kW max (8x H200 SXM)"),
    "b200": (14300.0, 8, "NVIDIA DGX B200 datasheet: system power usage ~14.3 kW max (8x B200)"),
    "a100-80gb": (6500.0, 8, "NVIDIA DGX A100 datasheet: system power usage 6.5 kW max (8x A100 SXM)"),
}

#: assumption for a GPU without a DGX-class datasheet: 300 W of host per GPU slot at most (a
#: dual-socket server, 2 x ~350 W CPUs, memory, NICs and fans over 8 GPUs, ~2.4 kW).
HOST_MAX_W_PER_GPU_DEFAULT = 300.0

#: assumption: the host draws half its maximum on average and at the fleet's peak (CPUs scheduling,
#: fans at part speed); the GPUs are what move with load.
HOST_LOAD_FRACTION = 0.5


@dataclass(frozen=True)
class HostPower:
    """Non-GPU power of one server."""

    gpus_per_server: int
    host_w: float  # drawn per server, W
    basis: str


def host_power(name: str, tdp_w: float, gpus_per_node: int) -> HostPower:
    """The non-GPU draw of a server of ``name`` GPUs (see ``SERVER_MAX_W``)."""
    if name in SERVER_MAX_W:
        sys_w, n, src = SERVER_MAX_W[name]
        host_max = sys_w - n * tdp_w
        return HostPower(
            n,
            HOST_LOAD_FRACTION * host_max,
            f"{src}; host max = {sys_w:g} W - {n} x {tdp_w:g} W GPUs = {host_max:g} W, drawn at "
            f"{HOST_LOAD_FRACTION:.0%} (assumption)",
        )
    n = gpus_per_node or 8
    host_max = HOST_MAX_W_PER_GPU_DEFAULT * n
    return HostPower(
        n,
        HOST_LOAD_FRACTION * host_max,
        f"assumption: {HOST_MAX_W_PER_GPU_DEFAULT:g} W of host per GPU at most ({n} GPUs per server), drawn at "
        f"{HOST_LOAD_FRACTION:.0%}",
    )
