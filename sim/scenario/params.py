"""The parameters each batching policy and router accepts, by name.

The scenario names a policy (``fleet[].policy``) and a router (``router``)
with a ``params:`` mapping; these models validate those mappings when the
scenario loads. The engine implements the policies and routers
(``sim.engine.policies``, ``sim.engine.routers``) and takes its ``Params``
from here, so the scenario never imports the engine; a test checks that both
sides name the same policies and routers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["NoParams", "StaticParams", "AffinityParams", "POLICY_PARAMS", "ROUTER_PARAMS"]


class NoParams(BaseModel):
    """A policy or router without parameters: any key is an error."""

    model_config = ConfigDict(extra="forbid")


class StaticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(8, ge=1, le=4096, description="Requests per batch.")
    timeout_s: float = Field(1.0, ge=0, le=3600, description="Longest wait for a full batch, from the oldest arrival.")


class AffinityParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_imbalance: float = Field(
        2.0,
        ge=1.0,
        le=1000.0,
        description="Fall back to least-outstanding when the prefix's home replica has more than "
        "this many times (+1) the outstanding requests of the least loaded one.",
    )


#: Batching policy name -> its parameters (the engine's ``POLICIES`` has the same names, in this order).
POLICY_PARAMS: dict[str, type[BaseModel]] = {
    "continuous": NoParams,
    "prefill-first": NoParams,
    "static": StaticParams,
    "priority": NoParams,
}

#: Router name -> its parameters (the engine's ``ROUTERS`` has the same names, in this order).
ROUTER_PARAMS: dict[str, type[BaseModel]] = {
    "round-robin": NoParams,
    "random": NoParams,
    "least-outstanding": NoParams,
    "least-kv": NoParams,
    "power-of-two": NoParams,
    "prefix-affinity": AffinityParams,
}
