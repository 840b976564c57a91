"""Typed contracts of the results files fleetcast writes and reads: ``summary.json``
(``RunSummary``), ``plan.json`` (``PlanDoc``), ``compare.json`` (``CompareDoc``) and the
rows of ``sweep.parquet`` (``SweepPoint``). Writers dump them with ``contract_json``;
readers validate with ``read_contract`` / ``validate_contract`` (a located error, never
a traceback)."""

from sim.analysis.contracts.base import SCHEMA_VERSION, Contract, contract_json, read_contract, validate_contract
from sim.analysis.contracts.compare import CompareDoc, CompareRow
from sim.analysis.contracts.plan import PlanCandidate, PlanDoc
from sim.analysis.contracts.summary import GroupStats, Percentiles, RunSummary, WindowSummary
from sim.analysis.contracts.sweep import SweepPoint

__all__ = [
    "SCHEMA_VERSION",
    "Contract",
    "contract_json",
    "read_contract",
    "validate_contract",
    "RunSummary",
    "WindowSummary",
    "GroupStats",
    "Percentiles",
    "PlanDoc",
    "PlanCandidate",
    "CompareDoc",
    "CompareRow",
    "SweepPoint",
]
