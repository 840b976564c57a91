"""``summary.json``: what one run measured (``fleetcast run`` folder; also each plan
point's summary inside ``plan.json``). Built by ``sim.analysis.forecast.summary_of``
(``summarize`` in ``sim.analysis.metrics``, ``disagg_summary``, ``autoscale_summary``)
and completed by ``run_folder_files``."""

from __future__ import annotations

from pydantic import Field

from sim.analysis.contracts.base import Contract, Number

__all__ = [
    "Percentiles",
    "StatusCounts",
    "SloItem",
    "GroupStats",
    "Window",
    "Utilization",
    "UtilizationBlock",
    "PoolCostRow",
    "Cost",
    "Energy",
    "Little",
    "ScenarioRef",
    "MemoryPerGpu",
    "KvCapacity",
    "PoolCpuSide",
    "SimInfo",
    "RoleUtilization",
    "DisaggRole",
    "Disaggregated",
    "ScaleEvent",
    "AutoscalePool",
    "TimelineRow",
    "AutoscaleTimelineRow",
    "Autoscale",
    "PowerCurveInfo",
    "PowerPool",
    "Power",
    "WindowSummary",
    "RunSummary",
]


class Percentiles(Contract):
    """Sample count, mean and percentiles (numpy "linear") of one metric over the window's ok
    requests, seconds; null when there is no sample (p99.9: under 1000 samples)."""

    n: int = Field(description="samples")
    mean: float | None = Field(description="mean, s")
    p50: float | None = Field(description="median, s")
    p90: float | None = Field(description="90th percentile, s")
    p95: float | None = Field(description="95th percentile, s")
    p99: float | None = Field(description="99th percentile, s")
    p99_9: float | None = Field(alias="p99.9", description="99.9th percentile, s (null under 1000 samples)")


class StatusCounts(Contract):
    """Requests arriving in the window, by final status."""

    ok: int = Field(description="served")
    rejected: int = Field(description="rejected (prompt + output beyond max_model_len or the KV cache)")
    error: int = Field(description="failed (e.g. their replica failed)")
    timeout: int = Field(description="timed out")
    cancelled: int = Field(description="cancelled by the client")
    total: int = Field(description="all of them")


class SloItem(Contract):
    """One SLO target of a class and what the run achieved."""

    metric: str = Field(description="ttft_s, tpot_s or e2e_s")
    percentile: str = Field(description="e.g. p99")
    target_s: float = Field(description="the target, s")
    achieved_s: float | None = Field(description="the percentile measured, s (null: no sample)")
    met: bool = Field(description="achieved at or under the target")


class GroupStats(Contract):
    """Counts, latencies, throughput and SLO figures of one class (or of all requests:
    ``overall``, where ``slo`` and ``attainment_target_pct`` are null)."""

    counts: StatusCounts = Field(description="requests arriving in the window, by status")
    ttft_s: Percentiles = Field(description="time to first token")
    tpot_s: Percentiles = Field(description="time per output token after the first (requests with > 1 output token)")
    e2e_s: Percentiles = Field(description="arrival to last token")
    itl_s: Percentiles = Field(description="inter-token latency (from the log-bucket histogram)")
    # added after the first summaries were written: absent in those, read as null
    completion_span_s: float | None = Field(
        default=None, description="first arrival to last ok finish of these requests, s"
    )
    requests_per_s: float | None = Field(description="ok requests / completion_span_s")
    output_tokens_per_s: float | None = Field(description="ok output tokens / completion_span_s")
    total_tokens_per_s: float | None = Field(description="ok prompt + output tokens / completion_span_s")
    window_requests_per_s: float | None = Field(default=None, description="ok requests / window length")
    window_output_tokens_per_s: float | None = Field(default=None, description="ok output tokens / window length")
    window_total_tokens_per_s: float | None = Field(
        default=None, description="ok prompt + output tokens / window length"
    )
    goodput_rps: float | None = Field(
        description="requests meeting every per-request SLO threshold / completion_span_s"
    )
    attainment_pct: float | None = Field(description="% of window requests (all statuses) meeting every threshold")
    slo: dict[str, SloItem] | None = Field(description="'<metric>:<percentile>' -> target and achieved (null overall)")
    attainment_target_pct: float | None = Field(description="the class's required attainment_pct (null: none)")
    slo_met: bool = Field(description="every SLO item and the attainment target met (overall: every class's)")


class Window(Contract):
    """The measured window of the run."""

    start_s: float = Field(description="window start (after warm-up), s")
    end_s: float = Field(description="window end (before cool-down), s")
    length_s: float = Field(description="end_s - start_s")
    note: str = Field(description="what counts")


class Utilization(Contract):
    """Busy fraction, MFU, MBU and mean KV use over the window (an autoscaled pool's replicas
    count for the seconds they were provisioned)."""

    replicas: Number | None = Field(description="replicas (autoscaled: mean provisioned count)")
    busy_frac: float | None = Field(description="share of replica-seconds stepping")
    busy_frac_min: float | None = Field(description="least busy replica's share")
    busy_frac_max: float | None = Field(description="busiest replica's share")
    mfu: float | None = Field(description="model FLOPs utilization (achieved / peak FLOPs)")
    mbu: float | None = Field(description="memory bandwidth utilization (bytes moved / HBM bandwidth)")
    kv_usage: float | None = Field(description="mean share of KV blocks in use")


class UtilizationBlock(Contract):
    """Utilization of the fleet and of each pool."""

    fleet: Utilization = Field(description="all replicas")
    pools: dict[str, Utilization] = Field(description="pool name -> its replicas")


class PoolCostRow(Contract):
    """Price and power of one pool."""

    gpu: str = Field(description="catalog GPU name")
    replicas: Number = Field(description="replicas (autoscaled: mean provisioned count over the window)")
    gpus_per_replica: int = Field(description="GPUs of one replica")
    gpus: Number = Field(description="replicas x gpus_per_replica")
    usd_per_gpu_hour: float = Field(description="rent per GPU-hour, USD")
    usd_per_hour: float = Field(description="the pool's rent per hour, USD")
    usd_per_month: float = Field(description="usd_per_hour x 730")
    output_tokens_per_s: float | None = Field(description="the pool's ok output tokens per second")
    usd_per_1m_output_tokens: float | None = Field(description="USD per million output tokens")
    watts: float | None = Field(description="board power (TDP) x GPUs, W (null: unknown)")


class Cost(Contract):
    """Fleet rent and per-token cost."""

    fleet_usd_per_hour: float = Field(description="all pools, USD per hour")
    usd_per_month: float = Field(description="fleet_usd_per_hour x 730")
    usd_per_1m_output_tokens: float | None = Field(description="USD per million output tokens")
    usd_per_1m_total_tokens: float | None = Field(description="USD per million prompt + output tokens")
    pools: dict[str, PoolCostRow] = Field(description="pool name -> its cost")


class Energy(Contract):
    """Power and energy per token, an upper bound at TDP."""

    fleet_kw: float | None = Field(description="board power of every GPU, kW (null: a pool has no watts)")
    kwh_per_1m_output_tokens: float | None = Field(description="kWh per million output tokens")
    kwh_per_1m_total_tokens: float | None = Field(description="kWh per million prompt + output tokens")
    note: str = Field(description="what the figure includes")


class Little(Contract):
    """Little's law L = λW over the window (a consistency check)."""

    L: float | None = Field(description="mean requests in system")
    lambda_per_s: float | None = Field(description="window arrivals per second")
    W_s: float | None = Field(description="mean time in system of window arrivals, s")
    lambda_W: float | None = Field(description="lambda_per_s x W_s")
    rel_gap: float | None = Field(description="|L - λW| / λW")


class ScenarioRef(Contract):
    """The scenario the run came from."""

    name: str = Field(description="scenario name")
    seed: int = Field(description="its seed")
    path: str | None = Field(description="its file (null: built in memory)")


class MemoryPerGpu(Contract):
    """One GPU's memory plan as vLLM logs it, GiB."""

    device_gib: float = Field(description="device memory")
    budget_gib: float = Field(description="device x gpu_memory_utilization")
    weights_gib: float = Field(description="model weights")
    activation_peak_gib: float = Field(description="peak activations of the profile run")
    non_torch_gib: float = Field(description="non-torch allocations")
    cudagraph_gib: float = Field(description="CUDA graphs")
    kv_cache_gib: float = Field(description="left for the KV cache")


class KvCapacity(Contract):
    """One pool's KV-cache capacity per replica."""

    num_gpu_blocks: int = Field(description="vLLM's num_gpu_blocks")
    usable_blocks: int = Field(description="blocks the scheduler can use")
    block_size: int = Field(description="tokens per block")
    kv_tokens: int = Field(description="usable_blocks x block_size")
    source: str = Field(description="where the count came from")
    memory_per_gpu: MemoryPerGpu = Field(description="the memory plan it came from")


class SimInfo(Contract):
    """The simulation itself."""

    end_s: float = Field(description="simulated time at the end, s")
    requests: int = Field(description="requests simulated (whole run)")
    wall_s: float | None = Field(default=None, description="wall-clock seconds (run folders only)")
    exact_steps: bool | None = Field(default=None, description="--exact-steps was given (run folders only)")


class RoleUtilization(Contract):
    """Utilization of one role's replicas over the window."""

    replicas: int = Field(description="replicas")
    busy_frac: float | None = Field(description="share of replica-seconds stepping")
    mfu: float | None = Field(description="model FLOPs utilization")
    mbu: float | None = Field(description="memory bandwidth utilization")
    kv_usage: float | None = Field(description="mean share of KV blocks in use")


class DisaggRole(Contract):
    """The prefill or decode side of a disaggregated fleet."""

    pools: list[str] = Field(description="its pools")
    replicas: int = Field(description="its engine replicas (replicas x data_parallel)")
    gpus: int = Field(description="its GPUs")
    utilization: RoleUtilization = Field(description="its utilization")


class Disaggregated(Contract):
    """Prefill/decode disaggregation: the KV transfer and the two sides (only when a pool
    has role prefill or decode)."""

    link: str = Field(description="catalog link carrying the KV cache")
    link_bandwidth_bytes_s: float = Field(description="its bandwidth, bytes/s")
    link_latency_s: float = Field(description="its latency, s")
    overlap: str = Field(description="kv_transfer.overlap")
    prefill: DisaggRole = Field(description="the prefill side")
    decode: DisaggRole = Field(description="the decode side")
    gpu_ratio: str = Field(description="prefill:decode GPUs, reduced")
    kv_transfer_s: Percentiles = Field(description="KV-transfer wait of ok window requests (part of TTFT)")
    note: str = Field(description="what kv_transfer_s is")


class ScaleEvent(Contract):
    """One autoscaler decision."""

    t_s: Number = Field(description="simulated time, s")
    pool: str = Field(description="pool")
    from_: int = Field(alias="from", description="wanted replicas before")
    to: int = Field(description="wanted replicas after")
    reason: str = Field(description="why")


class AutoscalePool(Contract):
    """What one autoscaled pool provisioned and cost."""

    replicas_mean: float = Field(description="mean provisioned replicas over the window")
    replicas_min: int = Field(description="fewest provisioned in the window")
    replicas_max: int = Field(description="most provisioned in the window")
    max_replicas: int = Field(description="the pool's autoscale ceiling")
    replica_s: float = Field(description="window integral of provisioned replicas, replica-seconds")
    gpu_hours: float = Field(description="replica_s x GPUs per replica / 3600")
    usd: float = Field(description="the window's rent, USD")
    usd_per_hour: float = Field(description="its mean per hour")
    usd_per_month: float = Field(description="usd_per_hour x 730")
    fixed_at_max_usd_per_hour: float = Field(description="the same pool fixed at max_replicas, USD per hour")
    saving_pct: float | None = Field(description="saving against fixed at max_replicas, %")
    cold_start_s: float = Field(description="seconds a new replica takes to serve")
    scale_ups: int = Field(description="scale-up decisions")
    scale_downs: int = Field(description="scale-down decisions")
    events: list[ScaleEvent] = Field(description="every decision, the whole run")
    series: list[list[Number]] = Field(description="[t_s, active, provisioned] at every change, the whole run")


class TimelineRow(Contract):
    """One time bin of the whole run, by arrival time."""

    start_s: float = Field(description="bin start, s")
    end_s: float = Field(description="bin end, s")
    requests: int = Field(description="arrivals in the bin")
    attainment_pct: float | None = Field(description="% meeting every SLO threshold (all statuses)")
    p99_ttft_s: float | None = Field(description="p99 TTFT of the ok ones, s")
    in_window: bool = Field(description="the bin overlaps the measured window")


class AutoscaleTimelineRow(TimelineRow):
    """A timeline bin with the arrival rate and each autoscaled pool's replicas."""

    rate_rps: float = Field(description="arrivals / bin length")
    replicas: dict[str, float] = Field(description="autoscaled pool -> mean provisioned replicas in the bin")


class Autoscale(Contract):
    """Autoscaled pools (only when a pool autoscales)."""

    pools: dict[str, AutoscalePool] = Field(description="autoscaled pool -> what it provisioned and cost")
    timeline: list[AutoscaleTimelineRow] = Field(description="the run in bins (a diurnal day's 24th, else the run's)")


class PowerCurveInfo(Contract):
    """The GPU power law a pool was billed with (``sim.perf.power``), W per GPU."""

    idle_w: float = Field(description="no engine step running")
    active_w: float = Field(description="a step running, before its FLOPs and bytes")
    w_per_mfu: float = Field(description="W per unit of the step's FLOP utilization")
    w_per_mbu: float = Field(description="W per unit of the step's HBM bandwidth utilization")
    basis: str = Field(description="measured (fit and data), or which curve was scaled to this GPU's TDP")


class PowerPool(Contract):
    """Power of one pool."""

    gpu: str = Field(description="catalog GPU name")
    gpus: int = Field(description="GPUs of the pool's replicas")
    servers: int = Field(description="servers they fill (GPUs / GPUs per server, rounded up)")
    gpu_avg_w_per_gpu: float | None = Field(description="mean GPU power over the window, W")
    gpu_curve: PowerCurveInfo = Field(description="the GPU power law used")
    host_w_per_server: float = Field(description="non-GPU power drawn per server, W")
    host_basis: str = Field(description="where the host figure comes from")
    power_limit_w: float | None = Field(
        default=None, description="fleet[].power_limit_w: the GPUs' power limit, W (absent: none, the TDP)"
    )


class Power(Contract):
    """GPU, server, rack and facility power of the window; energy cost and carbon."""

    gpu_avg_kw: float = Field(description="mean GPU power of the fleet, kW")
    it_avg_kw: float = Field(description="GPUs + hosts, mean, kW")
    it_peak_kw: float = Field(description="GPUs + hosts, highest of 24 equal bins of the window, kW")
    facility_avg_kw: float = Field(description="it_avg_kw x PUE")
    facility_peak_kw: float = Field(description="it_peak_kw x PUE")
    pue: float = Field(description="plan.power.pue, else pricing.own.pue")
    servers: int = Field(description="servers of the fleet")
    server_avg_kw: float | None = Field(description="IT power per server, mean, kW")
    server_peak_kw: float | None = Field(description="IT power per server at the peak bin, kW")
    servers_per_rack: int | None = Field(
        description="servers one rack of plan.power.rack_kw holds at peak (null: no rack_kw)"
    )
    racks_needed: int | None = Field(description="racks the servers need (null: no rack_kw, or a server exceeds it)")
    rack_peak_kw: float | None = Field(description="IT power of a full rack at peak, kW")
    mwh_per_month: float = Field(description="facility energy per month (730 h at the mean), MWh")
    energy_usd_per_month: float = Field(description="mwh_per_month x pricing.own.usd_per_kwh")
    usd_per_kwh: float = Field(description="electricity price used")
    kwh_per_1m_output_tokens: float | None = Field(description="facility kWh per million output tokens")
    energy_usd_per_1m_output_tokens: float | None = Field(description="electricity cost per million output tokens")
    grid_g_co2_per_kwh: float = Field(description="pricing.grid_g_co2_per_kwh")
    t_co2_per_month: float = Field(description="tonnes CO2 per month")
    g_co2_per_1m_output_tokens: float | None = Field(description="grams CO2 per million output tokens")
    profile_kw: list[float] = Field(description="facility kW in 24 equal bins of the window")
    profile_bin_s: float | None = Field(description="length of one profile bin, s")
    pools: dict[str, PowerPool] = Field(description="pool name -> its power")
    note: str = Field(description="what the figures include and how the peak is taken")


class WindowSummary(Contract):
    """What ``summarize`` measures over one run's window (simulated or testbed): the first
    keys of ``summary.json``."""

    window: Window = Field(description="the measured window")
    overall: GroupStats = Field(description="all window requests")
    classes: dict[str, GroupStats] = Field(description="traffic class -> its requests")
    utilization: UtilizationBlock = Field(description="busy fraction, MFU, MBU, KV use")
    cost: Cost = Field(description="rent and per-token cost")
    energy: Energy = Field(description="power and energy per token (upper bound)")
    little: Little = Field(description="Little's law check")


class PoolCpuSide(Contract):
    """vLLM's CPU work in one pool over the window (``sim.perf.cpu_side``, ``sim.engine.front_end``)."""

    cpu_share_of_step_time: float | None = Field(
        description="engine-core CPU work (scheduling, input preparation, sampling, output update) / step time "
        "(with async scheduling it overlaps the GPU, so it is the share the CPU work spans, not adds); "
        "null without steps"
    )
    async_scheduling: bool = Field(description="the CPU work overlaps the GPU's (vLLM >= 0.14 default)")
    front_end_utilization: float | None = Field(
        description="mean share of the window each replica's API server was busy (tokenizing, admitting, "
        "streaming); 0 where not simulated"
    )
    front_end_utilization_max: float | None = Field(description="the busiest API server's share")
    front_end_bound_replicas: list[str] = Field(
        description="replicas whose API server was busy >= 80% of the window and more than their engine: "
        "the front end, not the GPU, was the bottleneck"
    )
    source: str = Field(description="where the CPU-side constants come from")


class RunSummary(WindowSummary):
    """``summary.json``: one run's measured window, per class and overall, with cost,
    energy, utilization and where its numbers came from."""

    scenario: ScenarioRef = Field(description="the scenario")
    profiles: dict[str, str] = Field(description="pool -> where its step times come from")
    kv_capacity: dict[str, KvCapacity] = Field(
        default_factory=dict, description="pool -> its KV-cache capacity (absent in the first summaries written)"
    )
    sim: SimInfo = Field(description="the simulation")
    cpu_side: dict[str, PoolCpuSide] = Field(
        default_factory=dict, description="pool -> vLLM's CPU work (absent in summaries written before it)"
    )
    disaggregated: Disaggregated | None = Field(default=None, description="only for a disaggregated fleet")
    autoscale: Autoscale | None = Field(default=None, description="only when a pool autoscales")
    power: Power | None = Field(
        default=None, description="GPU/server/facility power, energy cost, carbon (simulated runs)"
    )
    warnings: list[str] | None = Field(
        default=None, description="only when some class had rejected requests or a front end was the bottleneck"
    )
    fleetcast_version: str | None = Field(default=None, description="the fleetcast that wrote it (run folders only)")
    schema_version: int = Field(
        default=1, description="this format's version (absent in files written before versions: read as 1)"
    )
