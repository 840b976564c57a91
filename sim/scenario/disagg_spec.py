"""The ``kv_transfer:`` section and the rules of a disaggregated fleet.

A fleet is disaggregated when some pool has ``role: prefill`` or ``role: decode``
(``fleet[].role``): a request prefills on a prefill replica, its KV cache moves over
``kv_transfer.link`` (a catalog link, ``links.yaml``) and it decodes on a decode
replica. The engine side is ``sim.engine.disagg``; this module only checks the
scenario (names and pairing), with the file, line and field of each problem.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator

from sim.errors import unknown_name
from sim.scenario.fleet_spec import Strict

__all__ = ["KVTransferSpec", "DisaggCandidates", "parse_ratio", "is_disaggregated", "check_disaggregation"]

_RATIO = re.compile(r"^\s*(\d{1,2})\s*:\s*(\d{1,2})\s*$")


def parse_ratio(text: str) -> tuple[int, int]:
    """'1:3' -> (1, 3): prefill to decode replicas, each 1..64 (the caller checked the form)."""
    m = _RATIO.match(str(text))
    return int(m.group(1)), int(m.group(2))  # type: ignore[union-attr]  # the caller checked the form


class KVTransferSpec(Strict):
    """How a request's KV cache moves from its prefill replica to its decode replica
    (vLLM's KV connector: NixlConnector, LMCache; llm-d and Dynamo run it)."""

    link: str = Field(
        ...,
        description="KV-transfer link from the catalog (fleetcast catalog lists them: nvlink4, ib-ndr-400g, "
        "ib-hdr-200g, roce-400g, roce-200g, roce-100g, ethernet-100g, ethernet-25g; a scenario's catalog: file "
        "may add links:). Its per-GPU bandwidth and per-transfer latency time the move.",
    )
    overlap: Literal["none", "layerwise"] = Field(
        "none",
        description="none: the transfer starts when the prefill ends (vLLM's NixlConnector: the decode replica "
        "pulls the finished KV), so TTFT carries all of it; layerwise: each layer's KV is sent as soon as it is "
        "computed (LMCache / Dynamo layer-wise transfer), so only the part the prefill compute does not hide is "
        "exposed, at least one layer's share.",
    )


class DisaggCandidates(Strict):
    """Disaggregated layouts for ``fleetcast plan`` to weigh: the planned pool split into a
    prefill pool and a decode pool of the same GPU, model and engine, at each ratio of
    prefill to decode replicas; the planner searches the total replica count (split at the
    ratio, rounded, at least one of each)."""

    prefill_decode_ratios: list[str] = Field(
        ...,
        min_length=1,
        max_length=16,
        description="Ratios of prefill to decode replicas to try, 'P:D' with P and D in 1..64, e.g. ['1:1', '1:2', "
        "'1:3'].",
    )
    link: Optional[str] = Field(
        None,
        description="KV-transfer link from the catalog for these candidates; default: the scenario's kv_transfer.link.",
    )
    overlap: Literal["none", "layerwise"] = Field(
        "none",
        description="As kv_transfer.overlap: none (transfer after the prefill) or layerwise.",
    )
    colocated: bool = Field(
        True,
        description="Also try the pool co-located (role both), so the plan compares both layouts.",
    )

    @field_validator("prefill_decode_ratios")
    @classmethod
    def _ratios(cls, v: list[str]) -> list[str]:
        for text in v:
            m = _RATIO.match(str(text))
            if not m or not (1 <= int(m.group(1)) <= 64 and 1 <= int(m.group(2)) <= 64):
                raise ValueError(
                    f"a prefill:decode ratio is 'P:D' with P and D whole numbers in 1..64 (e.g. '1:3'), got {text!r}"
                )
        return v


def is_disaggregated(fleet) -> bool:
    """Whether some pool of ``fleet`` is a prefill or a decode pool."""
    return any(p.role != "both" for p in fleet)


def check_disaggregation(scenario, catalog, fail) -> None:
    """Prefill and decode pools come in pairs over the same classes, with a known link.

    ``scenario`` is a ``sim.scenario.spec.Scenario`` (not imported: it imports this module);
    ``fail(loc, message)`` raises the located ScenarioError."""
    declared = [c.name for c in scenario.traffic.classes]
    if not is_disaggregated(scenario.fleet):
        if scenario.kv_transfer is not None:
            fail(
                ("kv_transfer",),
                "kv_transfer is for a disaggregated fleet, but no pool has role prefill or "
                "decode: give a pool role: prefill and another role: decode, or drop kv_transfer",
            )
        return
    first = next(i for i, p in enumerate(scenario.fleet) if p.role != "both")
    if scenario.kv_transfer is None:
        fail(
            ("fleet", first, "role"),
            f"pool '{scenario.fleet[first].name}' is a {scenario.fleet[first].role} "
            f"pool, so the KV cache moves between pools: add kv_transfer: {{link: <name>}} with a link from "
            f"the catalog ({', '.join(catalog.link_names())})",
        )
    if scenario.kv_transfer.link not in catalog.link_names():
        fail(("kv_transfer", "link"), unknown_name("KV-transfer link", scenario.kv_transfer.link, catalog.link_names()))
    served: dict[str, dict[str, list[int]]] = {c: {"both": [], "prefill": [], "decode": []} for c in declared}
    for i, pool in enumerate(scenario.fleet):
        for cname in pool.classes or declared:
            served[cname][pool.role].append(i)
    for cname, roles in served.items():
        if roles["prefill"] and not roles["decode"]:
            i = roles["prefill"][0]
            fail(
                ("fleet", i, "role"),
                f"prefill pool '{scenario.fleet[i].name}' serves class '{cname}', but no "
                f"decode pool does: a prefilled request needs a decode pool for the same class (add a pool "
                f"with role: decode serving '{cname}')",
            )
        if roles["decode"] and not roles["prefill"]:
            i = roles["decode"][0]
            fail(
                ("fleet", i, "role"),
                f"decode pool '{scenario.fleet[i].name}' serves class '{cname}', but no "
                f"prefill pool does: a decode pool only receives requests prefilled elsewhere (add a pool "
                f"with role: prefill serving '{cname}')",
            )
        pools = roles["prefill"] + roles["decode"]
        kinds = {(scenario.fleet[i].model, scenario.fleet[i].quantization.kv_cache) for i in pools}
        if len(kinds) > 1:
            i = next(
                i
                for i in pools
                if (scenario.fleet[i].model, scenario.fleet[i].quantization.kv_cache)
                != (scenario.fleet[pools[0]].model, scenario.fleet[pools[0]].quantization.kv_cache)
            )
            held = ", ".join(
                f"{scenario.fleet[j].name}: {scenario.fleet[j].model}, kv_cache "
                f"{scenario.fleet[j].quantization.kv_cache}"
                for j in pools
            )
            fail(
                ("fleet", i, "model"),
                f"class '{cname}' is prefilled and decoded by pools running different "
                f"models or KV-cache dtypes ({held}); the decode replica reads the prefill replica's KV cache "
                f"as it is: give them the same model and quantization.kv_cache",
            )
        if roles["both"] and roles["prefill"]:
            i = roles["both"][0]
            fail(
                ("fleet", i, "role"),
                f"class '{cname}' is served both co-located (pool "
                f"'{scenario.fleet[i].name}', role both) and disaggregated (pool "
                f"'{scenario.fleet[roles['prefill'][0]].name}', role prefill); a class takes one path: give "
                f"the pools' classes: lists disjoint classes",
            )
