"""One pool's performance model, built once per run and carried with its result.

``build_pool_models`` turns each pool of a scenario into a ``PoolModel``: the
catalog specs, the ``PerfModel`` (step times, from the source
``sim.perf.step_source`` picks), the vLLM memory plan and the KV blocks the
scheduler can use. The engine runs on them, and ``SimResult.pools`` hands the
same objects to the summary, so nothing rebuilds them (or re-enters the kernel
tables) after the run.

``scenario`` here is a ``sim.scenario.spec.Scenario`` (read by its fields and
``load_catalog()``; this layer sits below the scenario package and does not
import it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.catalog import GPU, ModelSpec, QuantSpec
from sim.errors import FleetcastError, ScenarioError
from sim.perf.cpu_side import CpuSide, cpu_side_for, with_chat_intake, with_tensor_parallel
from sim.perf.kernels.data import parse_version
from sim.perf.memory import (
    MemoryPlan,
    check_max_model_len,
    hold_one_sequence,
    plan_memory,
)
from sim.perf.perf_model import PerfModel
from sim.perf.speculative import with_proposer_memory
from sim.perf.step_source import pool_perf_model

__all__ = ["PoolModel", "build_pool_models", "memory_warnings"]


@dataclass(frozen=True)
class PoolModel:
    """What one pool's replicas run on (every replica of a pool shares it)."""

    name: str  # pool name from the scenario
    gpu: GPU  # catalog GPU
    model: ModelSpec  # catalog model (the target model of a speculative pool)
    quant: QuantSpec  # weights + KV-cache scheme
    perf: PerfModel  # step times of one engine rank
    memory: MemoryPlan  # vLLM's per-GPU memory split (proposer included where one runs)
    num_gpu_blocks: int  # vLLM's num_gpu_blocks: engine.num_gpu_blocks_override, else the plan's count
    kv_blocks: int  # blocks the scheduler can use: num_gpu_blocks less vLLM's null block
    block_size: int  # tokens per KV block
    blocks_overridden: bool  # num_gpu_blocks came from engine.num_gpu_blocks_override
    max_model_len: int  # the longest sequence the engine accepts (tokens)
    cpu: CpuSide  # the server's CPU side: engine-core work per step, API-server work per request/token

    @property
    def source(self) -> str:
        """Where the step times come from: profile, measured kernels or the roofline (one line)."""
        return self.perf.source

    def kv_capacity(self) -> dict:
        """The replicas' KV capacity (vLLM's ``num_gpu_blocks``, the usable blocks, tokens) and
        the per-GPU memory breakdown it came from (``summary.json`` ``kv_capacity``)."""
        return {
            "num_gpu_blocks": int(self.num_gpu_blocks),
            "usable_blocks": int(self.kv_blocks),
            "block_size": int(self.block_size),
            "kv_tokens": int(self.kv_blocks * self.block_size),
            "source": "engine.num_gpu_blocks_override" if self.blocks_overridden else self.memory.accounting,
            "memory_per_gpu": self.memory.breakdown_gib(),
        }


def _pool_memory(scenario, i: int, catalog, gpu: GPU, model: ModelSpec, quant: QuantSpec, version) -> MemoryPlan:
    """One pool's memory plan (proposer included), held at the edge of one ``max_model_len``
    sequence where ``hold_one_sequence`` says vLLM would start it."""
    pool = scenario.fleet[i]
    eng = pool.engine
    try:
        mem = plan_memory(
            gpu,
            model,
            quant,
            pool.tensor_parallel,
            eng.gpu_memory_utilization,
            eng.block_size,
            eng.max_num_batched_tokens,
            eng.max_num_seqs,
            version,
            dp=pool.data_parallel,
            ep=pool.expert_parallel,
            flashinfer_sampler=eng.flashinfer_sampler,
        )
        if eng.speculative is not None:  # the draft model / EAGLE layer share the GPUs with the target
            mem = with_proposer_memory(mem, pool, catalog, model, quant, eng.block_size)
    except FleetcastError as exc:
        raise ScenarioError(f"{scenario.locate(('fleet', i))} (pool '{pool.name}'): {exc}") from None
    if eng.num_gpu_blocks_override:
        return mem
    return hold_one_sequence(mem, pool.max_model_len(model), eng.block_size, version)


def memory_warnings(pools: list[PoolModel]) -> list[str]:
    """One line per pool whose KV cache holds one ``max_model_len`` sequence only within the
    plan's uncertainty or by giving back the CUDA-graph estimate (``hold_one_sequence``), read from
    the pool models' plans (``build_pool_models``: nothing is planned again)."""
    return [f"pool '{p.name}': KV cache at the edge: {p.memory.edge_note}" for p in pools if p.memory.edge_note]


def _pool_model(scenario, i: int, catalog) -> PoolModel:
    pool = scenario.fleet[i]
    gpu = catalog.gpu(pool.gpu)
    model = catalog.model(pool.model)
    quant = catalog.quant(pool.quantization.weights, pool.quantization.kv_cache)
    eng = pool.engine
    version = parse_version(eng.vllm_version) if eng.vllm_version else None  # None: the newest vLLM
    method = eng.speculative.method if eng.speculative is not None else None
    cpu = cpu_side_for(version, method, eng.async_scheduling, eng.engine_core)
    cpu = with_tensor_parallel(cpu, version, pool.tensor_parallel, eng.engine_core)
    cpu = with_chat_intake(cpu, version, pool.model, eng.chat_endpoint)  # vLLM 0.8.2-0.9.1's per-request template parse
    perf = pool_perf_model(pool, scenario.base_dir, gpu, model, quant, cpu)
    if pool.profile is not None:  # a profile is fitted to its server end to end: its overheads, no front end
        c = perf.coeffs
        cpu = replace(
            cpu,
            t_step_s=c.t_step_s,
            t_seq_s=c.t_seq_s,
            t_prefill_tok_s=c.t_prefill_tok_s,
            fe_request_s=0.0,
            fe_prompt_tok_s=0.0,
            fe_token_s=0.0,
            async_scheduling=False,
            source=f"the profile's fitted overheads, no separate front end ({c.source})",
        )
    mem = _pool_memory(scenario, i, catalog, gpu, model, quant, version)
    max_len = pool.max_model_len(model)
    # vLLM v1 takes one block out of the pool as its "null block" (BlockPool.null_block, a
    # placeholder for skipped blocks): a server with num_gpu_blocks N schedules N - 1
    num_gpu_blocks = eng.num_gpu_blocks_override or mem.num_kv_blocks
    blocks = num_gpu_blocks - 1
    if eng.num_gpu_blocks_override:  # measured (CPU testbed, vLLM 0.32): 16 blocks of 128 refuse 2048
        why = (
            None
            if blocks * eng.block_size >= max_len
            else f"the KV cache holds {blocks * eng.block_size:,} tokens, less than one sequence of "
            f"max_model_len {max_len:,}"
        )
    else:
        why = check_max_model_len(mem, max_len, eng.block_size, version)
    if why:
        role = (
            "; a decode pool holds the whole prompt's KV cache of every request it receives (moved from "
            "the prefill pool) plus its output, so it needs room for one max_model_len sequence too"
            if pool.role == "decode"
            else ""
        )
        raise ScenarioError(
            f"{scenario.locate(('fleet', i))} (pool '{pool.name}'): vLLM refuses to start: {why}{role}. Set "
            f"engine.max_model_len lower, raise engine.gpu_memory_utilization, or add tensor_parallel / a "
            f"smaller quantization to make room."
        )
    return PoolModel(
        name=pool.name,
        gpu=gpu,
        model=model,
        quant=quant,
        perf=perf,
        memory=mem,
        num_gpu_blocks=num_gpu_blocks,
        kv_blocks=blocks,
        block_size=eng.block_size,
        blocks_overridden=bool(eng.num_gpu_blocks_override),
        max_model_len=max_len,
        cpu=cpu,
    )


def build_pool_models(scenario) -> list[PoolModel]:
    """A ``PoolModel`` per pool, in fleet order; a pool whose model does not fit (or whose
    ``max_model_len`` does not) is a ScenarioError naming the pool."""
    catalog = scenario.load_catalog()
    return [_pool_model(scenario, i, catalog) for i in range(len(scenario.fleet))]
