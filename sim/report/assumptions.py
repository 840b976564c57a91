"""What the forecast assumed: the catalog numbers it used (each with its
source), price overrides, and the performance-model calibration of each pool
with its validated error — or a plain statement that there is none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sim.analysis.contracts import PlanCandidate, PlanDoc
from sim.analysis.ownership import OwnVsRent
from sim.catalog import load_catalog
from sim.errors import FleetcastError
from sim.report.own_rent import compute_own_vs_rent

__all__ = ["CatalogRow", "ProfileRow", "Assumptions", "collect_assumptions", "grouped_catalog", "UNCALIBRATED"]

UNCALIBRATED = "uncalibrated defaults — no validated error bound"
MEASURED_KERNELS = (
    "step times from measured vLLM kernels of this GPU (aiconfigurator-core), with fleetcast's "
    "default CPU overheads; KV capacity from vLLM's memory accounting — not validated for this model "
    "end to end: no error bound (calibration/README.md says what was checked)"
)
ARCH_ROOFLINE = (
    "roofline at the efficiencies fitted to the kernel data of this GPU's architecture sibling — not "
    "validated for this model: no error bound"
)
CATALOG_DEFAULTS = (
    "coefficients from the GPU's catalog entry (perf_defaults, with its source) — not validated for "
    "this model: no error bound"
)


@dataclass(frozen=True)
class CatalogRow:
    """One catalog number the forecast used."""

    kind: str  # gpu | model | weights | kv_cache
    name: str  # catalog entry name
    field: str  # dotted field path, e.g. "peak_flops.bf16"
    value: object  # the number (None when not exposed by the catalog objects)
    source: str  # where the number comes from


@dataclass(frozen=True)
class ProfileRow:
    """The performance-model coefficients of one pool."""

    pool: str
    source: str  # summary["profiles"][pool]
    calibrated: bool
    validation: dict | None  # the profile's "validation" section, when found
    note: str  # one sentence for the reader


@dataclass(frozen=True)
class Assumptions:
    catalog: list[CatalogRow]
    pricing: dict[str, float]  # scenario pricing overrides, GPU -> $/GPU-hour
    profiles: list[ProfileRow]
    notes: list[str]  # caveats (user catalog files not found, ...)
    own_vs_rent: OwnVsRent | None = None  # the shown fleet bought instead of rented


def _scenario_dir(plan: PlanDoc) -> Path | None:
    p = plan.scenario.path
    return Path(p).parent if p else None


def _catalog(scenario: dict, base: Path | None, notes: list[str]):
    files = [Path(f) if Path(f).is_absolute() or base is None else base / f for f in scenario.get("catalog") or []]
    present = [f for f in files if f.is_file()]
    for f in files:
        if f not in present:
            notes.append(
                f"user catalog file {f} was not found when the report was made; "
                "its numbers are shown from the built-in catalog instead"
            )
    try:
        return load_catalog(present)
    except FleetcastError as exc:
        notes.append(f"user catalog files could not be read ({exc}); built-in catalog shown")
        return load_catalog()


def _value(obj, path: str):
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if hasattr(obj, "get") and not hasattr(obj, part) else getattr(obj, part, None)
    return obj if isinstance(obj, (int, float, str)) else None


def _entry(cat, kind: str, name: str):
    if kind == "gpu":
        return cat.gpu(name)
    if kind == "model":
        return cat.model(name)
    if kind == "weights":
        return cat.quant(name, cat.kv_schemes()[0])
    if kind == "link":
        return cat.link(name)
    return cat.quant(cat.weight_schemes()[0], name)


def _used(plan: PlanDoc, scenario: dict) -> list[tuple[str, str]]:
    """(kind, name) of every catalog entry the candidates / pools use."""
    used: set[tuple[str, str]] = set()
    rows = [c.model_dump(mode="python", by_alias=True) for c in plan.candidates] + list(scenario.get("fleet") or [])
    for c in rows:
        q = c.get("quantization") or {}
        for kind, name in (
            ("gpu", c.get("gpu")),
            ("model", c.get("model")),
            ("weights", q.get("weights", "bf16")),
            ("kv_cache", q.get("kv_cache", "auto")),
        ):
            if name:
                used.add((kind, str(name)))
        if c.get("link"):  # a disaggregated plan candidate's KV-transfer link
            used.add(("link", str(c["link"])))
    if (scenario.get("kv_transfer") or {}).get("link"):
        used.add(("link", str(scenario["kv_transfer"]["link"])))
    order = {"gpu": 0, "model": 1, "weights": 2, "kv_cache": 3, "link": 4}
    return sorted(used, key=lambda kn: (order[kn[0]], kn[1]))


def _profile_file(pool: str, scenario: dict, base: Path | None) -> Path | None:
    pools = {p.get("name"): p for p in scenario.get("fleet") or []}
    rel = (pools.get(pool) or {}).get("profile")
    if not rel:
        return None
    cands = (
        [Path(rel)]
        if Path(rel).is_absolute()
        else [*([base / rel] if base else []), Path.cwd() / rel, Path("calibration/profiles") / Path(rel).name]
    )
    return next((c for c in cands if c.is_file()), cands[0])


def _profile(pool: str, source: str, scenario: dict, base: Path | None) -> ProfileRow:
    if source.startswith("catalog defaults"):
        return ProfileRow(pool, source, False, None, CATALOG_DEFAULTS)
    if source.startswith("measured vLLM"):
        return ProfileRow(pool, source, False, None, MEASURED_KERNELS)
    if source.startswith("roofline:"):
        return ProfileRow(pool, source, False, None, ARCH_ROOFLINE)
    if source.startswith("fleetcast defaults") or not source.startswith("profile"):
        return ProfileRow(pool, source, False, None, UNCALIBRATED)
    path = _profile_file(pool, scenario, base)
    data: dict = {}
    if path is not None and path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            data = {}
    val = data.get("validation") if isinstance(data, dict) else None
    if isinstance(val, dict) and val:
        return ProfileRow(pool, source, True, val, "calibrated; validated on runs it was not fitted to (error below)")
    where = f" ({path})" if path else ""
    if not data:
        return ProfileRow(
            pool,
            source,
            True,
            None,
            f"calibrated profile, but its file{where} was not found when the report was "
            "made — no validated error bound shown",
        )
    return ProfileRow(
        pool, source, True, None, "calibrated, but the profile has no validation section — no validated error bound"
    )


def collect_assumptions(plan: PlanDoc, scenario: dict) -> Assumptions:
    """Catalog rows, pricing overrides and calibration of the plan's candidates."""
    notes: list[str] = []
    base = _scenario_dir(plan)
    cat = _catalog(scenario, base, notes)
    rows: list[CatalogRow] = []
    for kind, name in _used(plan, scenario):
        try:
            sources, entry = cat.source_of(kind, name), _entry(cat, kind, name)
        except FleetcastError as exc:
            notes.append(f"{kind} '{name}': {exc}")
            continue
        rows += [CatalogRow(kind, name, f, _value(entry, f), src or "(no source given)") for f, src in sources.items()]
    pricing = {str(k): float(v) for k, v in (scenario.get("pricing") or {}).items() if k != "own"}
    for gpu, price in sorted(pricing.items()):
        rows.append(CatalogRow("gpu", gpu, "price_usd_per_hour", price, "scenario pricing: (overrides the catalog)"))
    profiles = [_profile(str(pool), str(src), scenario, base) for pool, src in sorted(plan.profiles.items())]
    shown = _shown_candidate(plan)
    summary = shown.summary.model_dump(mode="python", by_alias=True) if shown and shown.summary else None
    own = compute_own_vs_rent(summary, scenario, cat, notes)
    return Assumptions(rows, pricing, profiles, notes, own)


def _shown_candidate(plan: PlanDoc) -> PlanCandidate | None:
    """The recommended candidate; for a run folder (kind "run") its only candidate."""
    if plan.recommended:
        return plan.recommended_candidate
    return plan.candidates[0] if plan.kind == "run" and plan.candidates else None


def grouped_catalog(rows: list[CatalogRow]) -> list[tuple[str, str, list[tuple[str, object]], str]]:
    """Consecutive rows of one entry with the same source merged:
    ``(kind, name, [(field, value), ...], source)`` — a readable table."""
    out: list[tuple[str, str, list[tuple[str, object]], str]] = []
    for r in rows:
        if out and out[-1][0] == r.kind and out[-1][1] == r.name and out[-1][3] == r.source:
            out[-1][2].append((r.field, r.value))
        else:
            out.append((r.kind, r.name, [(r.field, r.value)], r.source))
    return out
