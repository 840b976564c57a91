"""A pool's ``autoscale:`` section: replica bounds, the scaling policy, the cold start.

Kubernetes' HorizontalPodAutoscaler (and KEDA, which feeds it external metrics such as
vLLM's ``vllm:num_requests_waiting``) is the model: every ``sync_period_s`` the controller
averages its metric over ``metric_window_s``, proposes ``ceil(current x metric / target)``
replicas (nothing when the ratio is within ``tolerance`` of 1), clamps it to
``[min_replicas, max_replicas]`` and applies the stabilization windows
(``scale_up_cooldown_s``, ``scale_down_cooldown_s``). The engine side is
``sim.engine.autoscaler``; this module only holds and checks the scenario.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AutoscaleSpec",
    "ColdStartSpec",
    "ScheduleStep",
    "check_autoscale",
    "DEFAULT_PROVISION_S",
    "DEFAULT_LOAD_BANDWIDTH_BYTES_S",
]

#: Assumption: a GPU node joining a Kubernetes cluster (cloud VM boot, kubelet registration,
#: the GPU driver/device plugin and the vLLM container image pull) plus vLLM's engine start
#: (CUDA graph capture, profile run). Cluster-autoscaler's scale-up is documented as
#: "typically" under a minute for the node request alone; GPU images of several GB and the
#: driver set-up add minutes. 180 s is a middle figure; set it from your own node pool.
DEFAULT_PROVISION_S = 180.0
#: Assumption: weights read from a node's local NVMe SSD or a fast network volume at about
#: 2 GB/s per GPU's shard (PCIe Gen4 NVMe drives read 3-7 GB/s sequentially; network file
#: systems and object stores often deliver 0.5-2 GB/s per client). Set it to what you measure.
DEFAULT_LOAD_BANDWIDTH_BYTES_S = 2.0e9


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColdStartSpec(_Strict):
    """What a scale-up waits for before the new replica takes requests: the node, then the
    model's weights (weight bytes per GPU of the pool's model and quantization / bandwidth)."""

    provision_s: float = Field(
        DEFAULT_PROVISION_S,
        ge=0,
        le=86_400,
        description="Seconds from the scale-up decision until the node and the vLLM engine are up, before the "
        "weights load (VM boot, image pull, engine start). Default 180 s, an assumption (docs/design.md, "
        "'Autoscaling').",
    )
    load_bandwidth_bytes_s: float = Field(
        DEFAULT_LOAD_BANDWIDTH_BYTES_S,
        gt=0,
        le=1e13,
        description="Bytes/s at which one GPU reads its shard of the weights (local NVMe, network volume). "
        "Default 2e9, an assumption; load time = weight bytes per GPU / this.",
    )


class ScheduleStep(_Strict):
    """From ``at_s`` on, the schedule policy wants ``replicas``."""

    at_s: float = Field(..., ge=0, description="Scenario time (s) from which this count applies.")
    replicas: int = Field(..., ge=1, le=100_000, description="Replicas wanted from at_s on.")


class AutoscaleSpec(_Strict):
    """Autoscaling of one pool (HPA/KEDA style); the pool's ``replicas`` is the count at time 0."""

    min_replicas: int = Field(..., ge=1, le=100_000, description="Fewest replicas the autoscaler keeps.")
    max_replicas: int = Field(..., ge=1, le=100_000, description="Most replicas the autoscaler may run.")
    policy: Literal["target-utilization", "queue-length", "schedule"] = Field(
        ...,
        description="target-utilization: keep the mean concurrency (running requests / max_num_seqs, "
        "vLLM's num_requests_running over its cap) at target; queue-length: keep waiting requests per replica at "
        "target (KEDA on vllm:num_requests_waiting); schedule: follow the schedule table.",
    )
    target: float | None = Field(
        None,
        gt=0,
        le=100_000,
        description="target-utilization: the concurrency fraction in (0, 1], e.g. 0.7; queue-length: waiting "
        "requests per replica, > 0. Not used by schedule.",
    )
    metric_window_s: float = Field(
        60.0,
        gt=0,
        le=86_400,
        description="The metric is the mean of the samples taken in this window (HPA/KEDA metric window; "
        "Prometheus rate windows of 1 min are common). Default 60 s.",
    )
    sync_period_s: float = Field(
        15.0,
        gt=0,
        le=3_600,
        description="Control interval: sample and decide this often (HPA's --horizontal-pod-autoscaler-sync-period, "
        "default 15 s).",
    )
    tolerance: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="No change while |metric / target - 1| <= tolerance (HPA's default 0.1).",
    )
    scale_up_cooldown_s: float = Field(
        0.0,
        ge=0,
        le=86_400,
        description="Scale-up stabilization window: scale up to the lowest count proposed in this window "
        "(HPA default 0 s: at once).",
    )
    scale_down_cooldown_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="Scale-down stabilization window: scale down only to the highest count proposed in this "
        "window (HPA default 300 s).",
    )
    schedule: list[ScheduleStep] = Field(
        default_factory=list,
        max_length=10_000,
        description="schedule policy only: steps (at_s, replicas), at_s increasing; before the first step the pool "
        "keeps its replicas.",
    )
    cold_start: ColdStartSpec = Field(
        default_factory=ColdStartSpec,
        description="Scale-up delay: node provisioning plus model load.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AutoscaleSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})")
        if self.policy == "schedule":
            if not self.schedule:
                raise ValueError("policy schedule needs a schedule: a list of {at_s, replicas}")
            times = [s.at_s for s in self.schedule]
            if times != sorted(times) or len(set(times)) != len(times):
                raise ValueError(f"schedule at_s must be strictly increasing, got {times}")
        else:
            if self.target is None:
                raise ValueError(
                    f"policy {self.policy} needs a target (target-utilization: a fraction in (0, 1], "
                    f"e.g. 0.7; queue-length: waiting requests per replica, e.g. 2)"
                )
            if self.policy == "target-utilization" and self.target > 1:
                raise ValueError(f"target-utilization's target is a fraction in (0, 1], got {self.target:g}")
            if self.schedule:
                raise ValueError(f"schedule is for policy schedule only, not {self.policy}")
        return self


def check_autoscale(scenario, fail) -> None:
    """The pool's ``replicas`` within [min, max], schedule counts within them and inside the
    run; only co-located pools of single-rank replicas scale (``scenario``: a ``Scenario``)."""
    duration_s = scenario.traffic.duration_s
    for i, pool in enumerate(scenario.fleet):
        a = pool.autoscale
        if a is None:
            continue
        where = ("fleet", i, "autoscale")
        if not a.min_replicas <= pool.replicas <= a.max_replicas:
            fail(
                ("fleet", i, "replicas"),
                f"pool '{pool.name}' starts with {pool.replicas} replicas, outside its autoscale bounds "
                f"[{a.min_replicas}, {a.max_replicas}]; replicas is the count at time 0, between min_replicas and "
                f"max_replicas",
            )
        if pool.role != "both" or pool.data_parallel != 1:
            fail(
                where,
                f"pool '{pool.name}': autoscale is for co-located pools (role both) with data_parallel 1; "
                f"this pool has role {pool.role}, data_parallel {pool.data_parallel}",
            )
        for j, step in enumerate(a.schedule):
            if not a.min_replicas <= step.replicas <= a.max_replicas:
                fail(
                    where + ("schedule", j, "replicas"),
                    f"schedule step wants {step.replicas} replicas, outside [{a.min_replicas}, {a.max_replicas}] "
                    f"(min_replicas, max_replicas)",
                )
            if step.at_s >= duration_s:
                fail(
                    where + ("schedule", j, "at_s"),
                    f"schedule step at {step.at_s:g} s is not inside the run (traffic.duration_s {duration_s:g}); "
                    f"valid: 0 <= at_s < {duration_s:g}",
                )
        if a.cold_start.provision_s >= duration_s:
            fail(
                where + ("cold_start", "provision_s"),
                f"a cold start of {a.cold_start.provision_s:g} s provisioning is not shorter than the run "
                f"(traffic.duration_s {duration_s:g}): no scale-up could ever serve; valid: provision_s + model load "
                f"< {duration_s:g}",
            )
