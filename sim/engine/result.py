"""What one simulation (or one testbed run) hands to the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sim.perf.pool_model import PoolModel

__all__ = ["ReplicaStats", "SimResult"]


@dataclass
class ReplicaStats:
    """Counters of one replica, accumulated over engine steps that end inside
    the measured window only."""

    pool: str  # pool name from the scenario
    name: str  # "<pool>/<index>"
    gpu: str  # catalog GPU name
    tp: int  # GPUs in this replica (tensor parallel size)
    kv_blocks_total: int  # KV blocks this replica has (memory plan)
    busy_s: float = 0.0  # time spent running engine steps
    cpu_s: float = 0.0  # engine-core CPU work of those steps (sim.perf.cpu_side; inside busy_s, or overlapped)
    front_end_busy_s: float = 0.0  # its API servers' work inside the window, per server (sim.engine.front_end)
    flops: float = 0.0  # FLOPs of those steps (all GPUs of the replica)
    bytes: float = 0.0  # HBM bytes moved by those steps (all GPUs)
    kv_block_s: float = 0.0  # integral of used KV blocks over time (block-seconds)
    steps: int = 0  # engine steps
    peak_flops: float = 0.0  # replica peak FLOP/s for the compute dtype (all GPUs)
    hbm_bw_bytes_s: float = 0.0  # replica HBM bandwidth (all GPUs)
    billed_s: float | None = None  # autoscaled pools only: seconds of the window it was provisioned (paid)


@dataclass
class SimResult:
    """Records of one run: per request, time series, ITL histogram, replicas."""

    requests: pd.DataFrame  # REQUEST_COLUMNS + ttft_s, tpot_s, e2e_s
    timeseries: pd.DataFrame  # TIMESERIES_COLUMNS
    class_names: list[str]
    itl_hist: np.ndarray  # int64 [num_classes, len(ITL_EDGES_S) - 1], window only
    window: tuple[float, float]  # measured window (start_s, end_s) by arrival time
    end_s: float  # simulated time when the run ended
    replicas: list[ReplicaStats] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what workload generation dropped, clamped or fixed
    # autoscaled fleets only (sim.engine.autoscaler.Autoscaler.record): per pool the replica-count
    # steps, billed intervals and scale events
    autoscale: dict | None = None
    # per pool (fleet order): the specs, perf model and memory plan its replicas ran on, built
    # once by the Fleet (the summary reads step-time sources and KV capacity from them)
    pools: list[PoolModel] = field(default_factory=list)
