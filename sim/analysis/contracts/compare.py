"""``compare.json``: baseline vs variants, paired over replications
(``sim.analysis.compare.CompareResult.to_json``)."""

from __future__ import annotations

from pydantic import Field

from sim.analysis.contracts.base import Contract

__all__ = ["CompareScenario", "CompareMetric", "CompareRow", "CompareDoc"]


class CompareScenario(Contract):
    """The baseline scenario."""

    name: str = Field(description="scenario name")
    path: str = Field(description="its file")


class CompareMetric(Contract):
    """One compared metric."""

    label: str = Field(description="its name in tables")
    lower_is_better: bool = Field(description="a decrease is an improvement")


class CompareRow(Contract):
    """One variant x class x metric: the paired difference variant - baseline."""

    variant: str = Field(description="variant name")
    class_: str = Field(alias="class", description="traffic class ('all': every class)")
    metric: str = Field(description="metric name (a key of metrics)")
    n: int = Field(description="replications where both have a value")
    baseline_mean: float | None = Field(description="baseline mean over them")
    variant_mean: float | None = Field(description="variant mean over them")
    diff_mean: float | None = Field(description="mean of variant - baseline")
    diff_sd: float | None = Field(description="its standard deviation (null under 2 replications)")
    diff_rel_pct: float | None = Field(description="diff_mean / |baseline_mean|, %")
    ci_low: float | None = Field(description="95% Student-t interval of the difference, low end")
    ci_high: float | None = Field(description="its high end")
    significant: bool | None = Field(description="the interval excludes 0")
    direction: str | None = Field(description="better, worse or same")


class CompareDoc(Contract):
    """``compare.json``: per variant, class and metric the paired difference against the
    baseline with a confidence interval (common random numbers)."""

    scenario: CompareScenario = Field(description="the baseline scenario")
    base_seed: int = Field(description="replication r uses base_seed + r")
    replications: int = Field(description="replications per variant")
    seeds: list[int] = Field(description="their seeds")
    variants: dict[str, list[str]] = Field(description="variant -> its overrides (baseline: none)")
    runs: dict[str, list[str]] = Field(description="variant -> every override applied (common, its own, stress)")
    stress: list[str] = Field(description="canned stresses applied")
    classes: list[str] = Field(description="traffic classes compared, then 'all'")
    requests_per_run: dict[str, list[int]] = Field(description="variant -> simulated requests per replication")
    note: str | None = Field(description="a caveat (one replication: no interval)")
    confidence: float = Field(description="interval confidence")
    method: str = Field(description="how differences are computed")
    metrics: dict[str, CompareMetric] = Field(description="metric name -> its label and direction")
    rows: list[CompareRow] = Field(description="one per variant x class x metric")
    schema_version: int = Field(
        default=1, description="this format's version (absent in files written before versions: read as 1)"
    )
