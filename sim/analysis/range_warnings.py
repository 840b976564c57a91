"""Warnings about how far a forecast can be trusted (printed, never fatal)."""

from __future__ import annotations

from sim.perf.pool_model import PoolModel, memory_warnings
from sim.perf.power_cap import limit_warning
from sim.perf.profiles import load_profile
from sim.perf.step_source import kernel_warnings
from sim.scenario.spec import Scenario

__all__ = ["range_warnings"]


def _max_prompt(scenario: Scenario) -> int | None:
    highs = []
    for c in scenario.traffic.classes:
        dist = c.prompt_tokens
        if dist is None:
            return None  # trace replay: lengths come from the file
        high = getattr(dist, "max", None) or getattr(dist, "value", None)
        if high is None:
            return None
        highs.append(int(high))
    return max(highs) if highs else None


def range_warnings(scenario: Scenario, pools: list[PoolModel]) -> list[str]:
    """Pools that run on uncalibrated coefficients or outside their profile's fitted range, and
    what the step times could not take from measured kernels (``kernel_warnings``), pools whose KV
    cache holds one max_model_len sequence only at the edge of the plan (``memory_warnings``, read
    from ``pools``: the scenario's ``build_pool_models``, which the run then simulates), and
    power limits below half the GPU's TDP (``limit_warning``)."""
    out = kernel_warnings(scenario)
    out += memory_warnings(pools)
    catalog = scenario.load_catalog()
    for pool in scenario.fleet:  # a power limit below where the clock law was fitted (sim.perf.power_cap)
        low = limit_warning(catalog.gpu(pool.gpu), pool.power_limit_w)
        if low:
            out.append(f"pool '{pool.name}': {low}")
    max_prompt = _max_prompt(scenario)
    for pool in scenario.fleet:
        if pool.profile is None:
            out.append(
                f"pool '{pool.name}' has no calibration profile: its step times are not validated against "
                f"this fleet's own measurements; set fleet[].profile for a validated error bound"
            )
            continue
        data = load_profile(scenario.base_dir / pool.profile)
        rng = data.get("fitted_range") or {}
        name = data.get("name", pool.profile)
        checks = [
            ("quantization", rng.get("quantization"), pool.quantization.weights),
            ("gpu", rng.get("gpu"), pool.gpu),
            ("model", rng.get("model"), pool.model),
        ]
        for what, fitted, used in checks:
            if fitted is not None and fitted != used:
                out.append(
                    f"pool '{pool.name}': profile '{name}' was fitted on {what} {fitted}, the scenario uses {used}"
                )
        if rng.get("max_prompt_tokens") and max_prompt and max_prompt > rng["max_prompt_tokens"]:
            out.append(
                f"pool '{pool.name}': prompts up to {max_prompt} tokens, profile '{name}' was fitted "
                f"up to {rng['max_prompt_tokens']}"
            )
        if rng.get("max_batch") and pool.engine.max_num_seqs > rng["max_batch"]:
            out.append(
                f"pool '{pool.name}': max_num_seqs {pool.engine.max_num_seqs} exceeds the largest batch "
                f"profile '{name}' was fitted on ({rng['max_batch']})"
            )
    return out
