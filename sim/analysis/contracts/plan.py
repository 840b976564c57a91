"""``plan.json``: what ``fleetcast plan`` tried and found (``sim.analysis.plan.run_plan``,
completed by the ``plan`` command). A run folder read by ``fleetcast report`` is shown
as a plan with one candidate built from its summary (``PlanCandidate`` fields the run
cannot say are left unset)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_serializer

from sim.analysis.contracts.base import Contract, Number
from sim.analysis.contracts.summary import RunSummary, TimelineRow

__all__ = [
    "CandidatePower",
    "PlanScenario",
    "PointWindow",
    "SloStatItem",
    "PointStats",
    "Boundary",
    "OneDown",
    "LoadPoint",
    "GrowthMonth",
    "PlanCandidate",
    "ClassNeed",
    "Statistics",
    "PlanWindowDoc",
    "Timeline",
    "AutoscaleOutcome",
    "AutoscaledOutcome",
    "AutoscaleComparison",
    "SearchCounts",
    "CandidateSearchCounts",
    "PlanSearch",
    "PlanDoc",
]


class PlanScenario(Contract):
    """The scenario planned."""

    name: str | None = Field(description="scenario name")
    seed: int | None = Field(description="its seed")
    path: str | None = Field(description="its file (null: built in memory)")
    yaml: str = Field(description="the scenario as loaded (overrides applied), YAML")


class PointWindow(Contract):
    """The window one point was measured over."""

    kind: str = Field(description="stationary, surge-plateau, peak-hour, peak-bin, peak-window, whole-cycle or user")
    window_s: float = Field(description="window length, s")
    start_s: float = Field(description="window start on the simulated time axis, s")
    mean_rate_rps: float = Field(description="mean arrival rate in the window, req/s")
    peak_rate_rps: float = Field(description="peak arrival rate, req/s")
    warmup_s: float = Field(description="warm-up before it, s")
    cooldown_s: float = Field(description="cool-down after it, s")


class SloStatItem(Contract):
    """One SLO item of one class over a point's replications."""

    class_: str = Field(alias="class", description="traffic class")
    metric: str = Field(description="ttft_s, tpot_s, e2e_s or attainment_pct")
    percentile: str | None = Field(description="e.g. p99 (null for attainment_pct)")
    target: float = Field(description="the target (s, or % for attainment)")
    mean: float | None = Field(description="mean over the replications")
    ci_low: float | None = Field(description="95% interval, low end")
    ci_high: float | None = Field(description="95% interval, high end")
    verdict: str = Field(description="met, missed or undecided")
    samples_min: int = Field(description="fewest samples of one replication")
    samples_total: int = Field(description="samples over the replications")


class PointStats(Contract):
    """What plan.json keeps of one simulated point (no per-replication summaries)."""

    verdict: str = Field(description="met, missed or undecided")
    replications: int | None = Field(description="replications simulated")
    items: list[SloStatItem] | None = Field(description="every SLO item")
    attainment_pct: float | None = Field(description="mean SLO attainment, %")
    attainment_interval_pct: list[float | None] | None = Field(description="its 95% interval")
    p99_ttft_s: float | None = Field(description="mean p99 TTFT, s")
    p99_tpot_s: float | None = Field(description="mean p99 TPOT, s")
    p99_e2e_s: float | None = Field(description="mean p99 end-to-end latency, s")
    requests_per_replication: list[int] | None = Field(description="window requests of each replication")
    window: PointWindow | None = Field(description="the window measured")


class Boundary(Contract):
    """One replica fewer than the SLO needs: the point that misses."""

    replicas: int = Field(description="replicas planned at that point")
    running: int = Field(description="replicas running")
    verdict: str = Field(description="missed or undecided")
    slo_met: bool = Field(description="always false")
    stats: PointStats = Field(description="its statistics")
    summary: RunSummary | None = Field(description="its first replication's summary")


class OneDown(Contract):
    """The recommended count with one replica down."""

    replicas_down: int = Field(description="1")
    running: int = Field(description="replicas running")
    verdict: str = Field(description="met, missed or undecided")
    stats: PointStats | None = Field(description="its statistics (null with one replica)")
    text: str = Field(description="in words")


class LoadPoint(Contract):
    """The found fleet at a share of the demand."""

    load_pct: float = Field(description="% of the demand")
    rate_rps: float = Field(description="arrival rate, req/s")
    p99_ttft_s: float | None = Field(description="mean p99 TTFT, s")
    p99_tpot_s: float | None = Field(description="mean p99 TPOT, s")
    attainment_pct: float | None = Field(description="mean SLO attainment, %")
    verdict: str = Field(description="met, missed or undecided")
    slo_met: bool = Field(description="verdict is met")


class GrowthMonth(Contract):
    """One month of a growth forecast."""

    month: int = Field(description="month, from 1")
    rate_rps: float = Field(description="that month's rate, req/s")
    replicas: int | None = Field(description="replicas needed (null: none up to max_replicas)")
    usd_per_month: float | None = Field(description="their rent per month, USD")


class CandidatePower(Contract):
    """A candidate's fleet against the plan's power budget (``sim.analysis.power_budget``)."""

    servers: int = Field(description="servers of the fleet")
    server_peak_kw: float = Field(description="IT power of one server at the peak bin, kW")
    it_peak_kw: float = Field(description="IT power of the fleet at the peak bin, kW")
    facility_peak_kw: float = Field(description="it_peak_kw x pue")
    facility_avg_kw: float = Field(description="mean IT power x pue")
    pue: float = Field(description="plan.power.pue, else pricing.own.pue")
    servers_per_rack: int | None = Field(description="servers a rack of plan.power.rack_kw holds at peak")
    racks_needed: int | None = Field(description="racks the servers need")
    rack_peak_kw: float | None = Field(description="IT power of a full rack at peak, kW")
    limit: str | None = Field(description="the budget it breaks, in words (null: it fits)")
    intervals: dict[str, list[float | None]] | None = Field(
        default=None,
        description="95% Student-t interval over the found point's replications of server_avg_kw, "
        "server_peak_kw, it_peak_kw, mwh_per_month, energy_usd_per_month, kwh_per_1m_output_tokens, "
        "energy_usd_per_1m_output_tokens (each [low, high] of its summary.power figure)",
    )


class PlanCandidate(Contract):
    """One candidate (GPU x quantization x TP x policy x engine knobs) and the fleet found for it."""

    id: str = Field(description="slug, unique in the plan")
    label: str = Field(description="human-readable")
    gpu: str | None = Field(description="catalog GPU")
    model: str | None = Field(description="catalog model")
    quantization: dict[str, Any] = Field(description="weights and kv_cache")
    tensor_parallel: int = Field(description="GPUs per engine rank")
    policy: str | None = Field(description="batching policy")
    engine: dict[str, Any] = Field(description="the engine knobs the candidate sets")
    data_parallel: int = Field(default=1, description="engine ranks per replica")
    expert_parallel: bool = Field(default=False, description="experts sharded over the replica's GPUs")
    prefill_decode: str = Field(default="", description="'P:D' ratio of a disaggregated candidate ('' co-located)")
    link: str = Field(default="", description="its KV-transfer link")
    overlap: str = Field(default="", description="its kv_transfer.overlap")
    power_limit_w: float | None = Field(
        default=None, description="the GPUs' power limit, W (plan.candidates.power_limit_w; absent: none)"
    )
    status: str = Field(description="ok, pruned, cannot-meet-slo or does-not-fit")
    reason: str | None = Field(default=None, description="why not ok")
    limiting: str | None = Field(default=None, description="what limits it (e.g. memory)")
    searched: str = Field(
        default="full",
        description="full: searched to the end; count: only its count at the peak (it costs more than the "
        "cheapest); pruned: its count search stopped once even the fewest count still possible cost more",
    )
    not_searched: str | None = Field(
        default=None, description="for searched count: what was not searched and the costs that decided it"
    )
    replicas: int | None = Field(default=None, description="replicas recommended")
    replicas_interval: list[int] | None = Field(default=None, description="95% interval of the count")
    replicas_at_least: int | None = Field(
        default=None, description="pruned: the fewest replicas it can need (one fewer not proven to meet)"
    )
    usd_per_month_at_least: float | None = Field(default=None, description="pruned: their rent per month, USD")
    replicas_for_slo: int | None = Field(default=None, description="fewest meeting the SLO, before failure headroom")
    failures_down: int = Field(default=0, description="replicas added for plan.failures")
    failures_text: str | None = Field(default=None, description="plan.failures in words")
    gpus: Number | None = Field(default=None, description="GPUs of the planned pool(s)")
    usd_per_hour: float | None = Field(default=None, description="fleet rent per hour, USD")
    usd_per_month: float | None = Field(default=None, description="fleet rent per month, USD")
    total_usd_per_month: float | None = Field(
        default=None,
        description="plan.rank_by own: owning the fleet per month (amortisation + hosting + electricity), USD; "
        "the ranking's cost (sim.analysis.total_cost)",
    )
    energy_usd_per_month: float | None = Field(
        default=None, description="plan.rank_by own: its electricity per month, USD (part of total_usd_per_month)"
    )
    usd_per_1m_output_tokens: float | None = Field(default=None, description="USD per million output tokens")
    usd_per_1m_total_tokens: float | None = Field(default=None, description="USD per million prompt + output tokens")
    headroom_pct: float | None = Field(default=None, description="proven headroom over the demand, %")
    headroom_interval_pct: list[float | None] | None = Field(
        default=None, description="its interval (high end null: no tested rate proven to miss)"
    )
    attainment_pct: float | None = Field(default=None, description="mean SLO attainment, %")
    attainment_interval_pct: list[float | None] | None = Field(default=None, description="its 95% interval")
    p99_ttft_s: float | None = Field(default=None, description="mean p99 TTFT, s")
    p99_tpot_s: float | None = Field(default=None, description="mean p99 TPOT, s")
    slo_stats: PointStats | None = Field(default=None, description="statistics of the recommended point")
    summary: RunSummary | None = Field(default=None, description="its first replication's summary")
    boundary: Boundary | None = Field(default=None, description="one replica fewer (null at 1 replica)")
    failure: OneDown | None = Field(default=None, description="one replica down")
    growth: list[GrowthMonth] | None = Field(default=None, description="replicas by month (growth forecast)")
    load_curve: list[LoadPoint] | None = Field(default=None, description="the fleet at shares of the demand")
    profile: str | None = Field(default=None, description="where its step times come from")
    power: CandidatePower | None = Field(
        default=None, description="what its fleet draws and needs under plan.power (candidates that met the SLO)"
    )
    prefill_replicas: int | None = Field(default=None, description="prefill replicas (disaggregated only)")
    decode_replicas: int | None = Field(default=None, description="decode replicas (disaggregated only)")


class ClassNeed(Contract):
    """Samples one class needs per replication."""

    class_: str = Field(alias="class", description="traffic class")
    share: float = Field(description="its share of the arrivals")
    percentile_pct: float = Field(description="its highest SLO percentile, %")
    from_: str = Field(alias="from", description="which SLO item sets it")
    samples_per_replication: int = Field(description="requests needed per replication")


class Statistics(Contract):
    """How every point was measured."""

    replications: int = Field(description="replications per point")
    seeds: list[int] = Field(description="their seeds")
    confidence: float = Field(description="interval confidence")
    tail_samples: float = Field(description="plan.tail_samples")
    rule: str = Field(description="the sample rule")
    needs: list[ClassNeed] = Field(description="per class")
    decision: str = Field(description="when a point meets or misses")
    crn: str = Field(description="common random numbers")
    monotonicity: str = Field(description="the search's assumption")


class PlanWindowDoc(PointWindow):
    """The window every point is measured over, and why there."""

    peak_s: float | None = Field(description="the demand's peak on the time axis, s")
    text: str = Field(description="the kind in words")
    day_length_s: float | None = Field(description="a diurnal day, s")
    surge_multiplier: float | None = Field(description="the surge's rate multiplier (surge-plateau only)")


class Timeline(Contract):
    """The recommended fleet over the scenario's own time axis (when skipped: ``skipped``
    and empty ``rows`` only, in that order)."""

    bin_s: float | None = Field(default=None, description="bin length, s")
    unit: str | None = Field(default=None, description="hour, bin (a rate profile's bin) or slice")
    duration_s: float | None = Field(default=None, description="the scenario's duration, s")
    replicas: int | None = Field(default=None, description="replicas simulated")
    attainment_pct: float | None = Field(default=None, description="SLO attainment over the whole run, %")
    slo_met: bool | None = Field(default=None, description="every SLO met over the window")
    rows: list[TimelineRow] = Field(description="one per bin")
    skipped: str | None = Field(description="why it was not simulated (null: it was)")

    @model_serializer(mode="wrap")
    def _skipped_first(self, handler):
        out = handler(self)
        if "bin_s" not in self.model_fields_set and isinstance(out, dict):  # the skipped form, as written
            out = {k: out[k] for k in ("skipped", "rows") if k in out} | out
        return out


class AutoscaleOutcome(Contract):
    """One way of running the recommended fleet over the scenario's time axis."""

    usd_per_hour: float = Field(description="mean rent per hour, USD")
    usd_per_month: float = Field(description="x 730")
    attainment_pct: float | None = Field(description="SLO attainment, %")
    slo_met: bool = Field(description="every SLO met")
    ttft_p99_s: float | None = Field(description="p99 TTFT, s")


class AutoscaledOutcome(AutoscaleOutcome):
    """The autoscaled way, with what the autoscaler did."""

    replicas_mean: float = Field(description="mean provisioned replicas")
    replicas_min: int = Field(description="fewest provisioned")
    replicas_max: int = Field(description="most provisioned")
    cold_start_s: float = Field(description="seconds a new replica takes to serve")
    scale_ups: int = Field(description="scale-up decisions")


class AutoscaleComparison(Contract):
    """The recommended fleet fixed vs autoscaled up to it (autoscaled pools only)."""

    replicas: int = Field(description="the recommended count (the autoscaled max)")
    min_replicas: int = Field(description="the autoscaled min")
    fixed: AutoscaleOutcome = Field(description="fixed at replicas")
    autoscaled: AutoscaledOutcome = Field(description="autoscaled up to replicas")
    saving_pct: float | None = Field(description="rent saved by autoscaling, %")
    duration_s: float = Field(description="simulated, s")


class SearchCounts(Contract):
    """Points and simulations of a plan (or of one candidate) and what the early stops saved."""

    points: int = Field(description="search points (candidate, replica count, rate) simulated")
    simulations: int = Field(description="simulations run over those points")
    saved_by_early_stop: int = Field(description="replications_max x points - simulations")
    early_stops: int = Field(description="points that stopped before replications_max replications")


class CandidateSearchCounts(Contract):
    """``SearchCounts`` of one candidate (the candidate's id first, as plan.json writes it)."""

    candidate: str = Field(description="candidate id")
    points: int = Field(description="its search points simulated")
    simulations: int = Field(description="simulations run over those points")
    saved_by_early_stop: int = Field(description="replications_max x points - simulations")
    early_stops: int = Field(description="points that stopped before replications_max replications")


class PlanSearch(SearchCounts):
    """How the plan spent its simulations: the sequential rule and its counts."""

    replications_min: int = Field(description="replications every point starts with")
    replications_max: int = Field(description="plan.replications: the most one point runs")
    early_met_replications: int = Field(description="fewest replications for an early met")
    early_met_confidence: float = Field(description="two-sided confidence of the interval an early met needs")
    early_missed_confidence: float = Field(description="two-sided confidence of the interval an early missed needs")
    rule: str = Field(description="the stopping rule in words")
    by_candidate: list[CandidateSearchCounts] = Field(description="the counts per candidate")
    candidates_pruned: int = Field(default=0, description="candidates whose count search was pruned (status pruned)")
    candidates_counted_only: int = Field(
        default=0, description="ok candidates searched for their count only (searched: count; dearer than the cheapest)"
    )


class PlanDoc(Contract):
    """``plan.json``: the candidates tried, ranked (ok first, then cheapest), the
    recommended one, and how every point was measured."""

    kind: str = Field(description="plan (run: a run folder shown as a plan)")
    fleetcast_version: str | None = Field(description="the fleetcast that wrote it")
    scenario: PlanScenario = Field(description="the scenario")
    demand: dict[str, Any] | None = Field(
        description="plan.demand as given (see the scenario reference) with "
        "peak_rate_rps and, for growth, monthly_rates_rps"
    )
    candidates: list[PlanCandidate] = Field(description="ranked: ok first, then cheapest")
    recommended: str | None = Field(description="id of the cheapest ok candidate (null: none)")
    tried: int = Field(description="points simulated")
    profiles: dict[str, str] = Field(description="pool -> where its step times come from")
    max_replicas: int | None = Field(default=None, description="plan.max_replicas")
    pool: int | None = Field(default=None, description="plan.pool")
    duration_s: float | None = Field(default=None, description="simulated per replication, s")
    statistics: Statistics | None = Field(default=None, description="how each point was measured")
    window: PlanWindowDoc | None = Field(default=None, description="the measured window")
    failures: dict[str, Any] | None = Field(default=None, description="plan.failures as given")
    warnings: list[str] = Field(default_factory=list, description="warnings")
    ranking: str | None = Field(
        default=None,
        description="what the ok candidates are ranked by, in words (present with plan.rank_by own: the total "
        "cost of owning, energy included; absent: rent per month)",
    )
    timeline: Timeline | None = Field(default=None, description="the recommended fleet over time (time-varying demand)")
    autoscale: AutoscaleComparison | None = Field(default=None, description="fixed vs autoscaled")
    headroom_definition: str | None = Field(default=None, description="what headroom_pct means")
    error: str | None = Field(default=None, description="the input error that stopped the plan")
    simulations: int | None = Field(default=None, description="simulations run (sum of the points' replications)")
    search: PlanSearch | None = Field(default=None, description="how the search spent its simulations")
    wall_s: float | None = Field(default=None, description="wall-clock seconds")
    command: str | None = Field(default=None, description="the command line that wrote it")
    cwd: str | None = Field(default=None, description="the folder it ran from")
    schema_version: int = Field(
        default=1, description="this format's version (absent in files written before versions: read as 1)"
    )

    @property
    def peak_rate_rps(self) -> float | None:
        """The demand the fleet is sized for, req/s."""
        return (self.demand or {}).get("peak_rate_rps")

    @property
    def recommended_candidate(self) -> PlanCandidate | None:
        """The candidate ``recommended`` names."""
        return next((c for c in self.candidates if c.id == self.recommended), None) if self.recommended else None
