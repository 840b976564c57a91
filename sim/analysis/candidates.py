"""The candidates ``fleetcast plan`` weighs: the cross product of the
scenario's ``plan.candidates`` grid applied to one pool of its fleet."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from sim.errors import FleetcastError, unknown_name
from sim.scenario.disagg_spec import parse_ratio
from sim.scenario.params import POLICY_PARAMS
from sim.scenario.plan_spec import PlanSpec
from sim.scenario.spec import Scenario

__all__ = ["Candidate", "enumerate_candidates", "split_replicas"]


@dataclass(frozen=True)
class Candidate:
    """One point of the candidate cross product, applied to ``plan.pool``."""

    id: str  # slug, unique within the plan
    label: str  # human-readable
    gpu: str
    model: str
    quantization: dict  # {"weights", "kv_cache"}
    tensor_parallel: int
    policy: str
    engine: dict  # the knobs the plan sets (others stay the pool's)
    data_parallel: int = 1  # engine ranks per replica (fleet[].data_parallel)
    expert_parallel: bool = False  # experts sharded over the replica's GPUs (fleet[].expert_parallel)
    prefill_decode: str = ""  # "P:D": split into prefill and decode pools at this ratio ("": co-located)
    link: str = ""  # KV-transfer link of a disaggregated candidate
    overlap: str = ""  # its kv_transfer.overlap
    power_limit_w: float | None = None  # the GPUs' power limit (fleet[].power_limit_w; None: none)


def split_replicas(n: int, ratio: str) -> tuple[int, int]:
    """(prefill, decode) replicas of a disaggregated candidate with ``n`` replicas in all:
    prefill = n·P/(P+D) rounded half up, at least 1; decode the rest, at least 1 (so
    n = 1 runs as 1 + 1). Both never decrease as n grows."""
    p, d = parse_ratio(ratio)
    pre = max(1, (2 * n * p + p + d) // (2 * (p + d)))
    return pre, max(1, n - pre)


def _slug(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9.]+", "-", str(text).lower())).strip("-")


def _knob_abbrev(knob: str) -> str:
    return "".join(w[0] for w in knob.split("_"))


def enumerate_candidates(scenario: Scenario, spec: PlanSpec) -> list[Candidate]:
    """The cross product of ``spec.candidates`` on ``scenario.fleet[spec.pool]``;
    unknown names are a ``FleetcastError`` listing the valid ones."""
    if spec.pool >= len(scenario.fleet):
        raise FleetcastError(
            f"plan.pool is {spec.pool}, but the fleet has {len(scenario.fleet)} pool(s) "
            f"(0..{len(scenario.fleet) - 1}); set plan.pool to the pool the candidates replace"
        )
    pool = scenario.fleet[spec.pool]
    grid = spec.candidates
    dims = grid.dimensions()
    empty = [k for k, v in dims.items() if not v]
    if empty:
        raise FleetcastError(
            f"the candidate set is empty: plan.candidates.{empty[0]} is an empty list, so the cross product has no "
            f"candidates. List at least one value, or omit the key to keep the pool's own value ({_pool_value(pool, empty[0])})."
        )
    catalog = scenario.load_catalog()
    for key, valid, kind in (
        ("gpu", catalog.gpu_names(), "GPU"),
        ("model", catalog.model_names(), "model"),
        ("policy", list(POLICY_PARAMS), "batching policy"),
    ):
        for name in dims.get(key, []):
            if name not in valid:
                raise FleetcastError(f"plan.candidates.{key}: {unknown_name(kind, name, valid)}")

    def uniq(values):
        out = []
        for v in values:
            if v not in out:
                out.append(v)
        return out

    quants = [
        {"weights": q, "kv_cache": "auto"} if isinstance(q, str) else q.model_dump()
        for q in (grid.quantization or [pool.quantization])  # type: ignore[list-item]  # a QuantizationSpec has model_dump too
    ]
    axes = [
        uniq(grid.gpu or [pool.gpu]),
        uniq(grid.model or [pool.model]),
        uniq(quants),
        uniq(grid.tensor_parallel or [pool.tensor_parallel]),
        uniq(grid.policy or [pool.policy.name]),
        uniq(grid.data_parallel or [pool.data_parallel]),
        uniq(grid.expert_parallel or [pool.expert_parallel]),
    ]
    knobs = list(grid.engine)
    knob_values = [uniq(grid.engine[k]) for k in knobs]
    out = []
    for (gpu, model, quant, tp, policy, dp, ep), kv, pl in (
        (a, kv, pl)
        for a, kv in itertools.product(itertools.product(*axes), itertools.product(*knob_values))
        for pl in grid.power_limits_for(a[0], pool.power_limit_w)
    ):
        engine = dict(zip(knobs, kv))
        layout = ([f"dp{dp}"] if dp > 1 or grid.data_parallel else []) + (["ep"] if ep else [])
        parts = [gpu] + ([model] if grid.model else []) + [quant["weights"]]
        parts += ["kvfp8"] if quant["kv_cache"] == "fp8" else []
        parts += [f"tp{tp}", *layout, policy] + [f"{_knob_abbrev(k)}{v}" for k, v in engine.items()]
        parts += [f"pl{pl:g}"] if pl is not None else []
        label = " · ".join(
            [
                gpu,
                model,
                quant["weights"] + ("/kv-fp8" if quant["kv_cache"] == "fp8" else ""),
                f"TP{tp}" + (f" x DP{dp}" if dp > 1 else "") + (" EP" if ep else ""),
                policy,
            ]
            + [f"{k}={v}" for k, v in engine.items()]
            + ([f"{pl:g} W limit"] if pl is not None else [])
        )
        out.append(
            Candidate(
                id=_slug("-".join(map(str, parts))),
                label=label,
                gpu=gpu,
                model=model,
                quantization=dict(quant),
                tensor_parallel=int(tp),
                policy=policy,
                engine=engine,
                data_parallel=int(dp),
                expert_parallel=bool(ep),
                power_limit_w=None if pl is None else float(pl),
            )
        )
    out = _layouts(out, scenario, pool, grid.disaggregated, catalog)
    ids = [c.id for c in out]
    return [
        c if ids.count(c.id) == 1 else Candidate(**{**c.__dict__, "id": f"{c.id}-{i}"}) for i, c in enumerate(out)
    ]  # slugs of distinct values may coincide (0.9 / "0.9")


def _layouts(cands: list[Candidate], scenario: Scenario, pool, spec, catalog) -> list[Candidate]:
    """Each candidate co-located and/or split at each prefill:decode ratio (plan.candidates.disaggregated)."""
    if spec is None:
        return cands
    if pool.role != "both":
        raise FleetcastError(
            f"plan.candidates.disaggregated splits the planned pool into prefill and decode pools, "
            f"but pool '{pool.name}' (plan.pool) already has role {pool.role}: plan a co-located "
            f"pool (role both), or drop plan.candidates.disaggregated"
        )
    link = spec.link or (scenario.kv_transfer.link if scenario.kv_transfer is not None else None)
    if link is None:
        raise FleetcastError(
            "plan.candidates.disaggregated needs a KV-transfer link: set its link, or the scenario's "
            f"kv_transfer.link; catalog links: {', '.join(catalog.link_names())}"
        )
    if link not in catalog.link_names():
        raise FleetcastError(
            f"plan.candidates.disaggregated.link: {unknown_name('KV-transfer link', link, catalog.link_names())}"
        )
    out = []
    for c in cands:
        if spec.colocated:
            out.append(c)
        for ratio in spec.prefill_decode_ratios:
            p, d = parse_ratio(ratio)
            out.append(
                Candidate(
                    **{
                        **c.__dict__,
                        "id": f"{c.id}-pd{p}-{d}",
                        "label": f"{c.label} · P:D {p}:{d}",
                        "prefill_decode": f"{p}:{d}",
                        "link": link,
                        "overlap": spec.overlap,
                    }
                )
            )
    return out


def _pool_value(pool, key: str):
    if key.startswith("engine."):
        return getattr(pool.engine, key.split(".", 1)[1])
    return {"quantization": pool.quantization.weights, "policy": pool.policy.name}.get(key, getattr(pool, key, None))
