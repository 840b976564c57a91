"""Where a pool's step times come from, and the PerfModel built from it.

In order: a calibration profile (``pool.profile``: the fitted roofline
coefficients, nothing measured); else the GPU's measured vLLM kernels
(``kernel_data:`` in the catalog, read from aiconfigurator-core by
``sim.perf.kernels``), with the CPU overheads and any part the data lacks from the
roofline at the architecture's efficiencies; else that roofline alone.
``kernel_warnings`` says, once per run, what could not be measured.
"""

from __future__ import annotations

from pathlib import Path

from sim.catalog import load_architectures
from sim.perf.cpu_side import CpuSide, is_v0
from sim.perf.eager import eager_launch_s, eager_step_s, graph_max_tokens
from sim.perf.kernels import data as kd
from sim.perf.kernels.cache import cached_tables
from sim.perf.kernels.tables import TableInputs
from sim.perf.perf_model import PerfModel
from sim.perf.power_cap import clock_ratio
from sim.perf.profiles import coefficients_for
from sim.perf.rocm_stack import stack_coefficients
from sim.perf.sampler import sampler_costs

__all__ = ["pool_perf_model", "perf_sources", "kernel_warnings"]


def _inputs(pool, gpu, model, quant, coeffs) -> TableInputs:
    return TableInputs(
        system=gpu.kernel_data,
        model=model,
        quant=quant,
        tp=int(pool.tensor_parallel),
        max_tokens=int(pool.engine.max_num_batched_tokens),
        vllm_version=pool.engine.vllm_version,
        gpu=gpu,
        e_compute=coeffs.e_compute,
        e_memory=coeffs.e_memory,
        e_comm=coeffs.e_comm,
        t_allreduce_s=coeffs.t_allreduce_s,
        dp=int(pool.data_parallel),
        ep=bool(pool.expert_parallel),
    )


def _kernel_tables(pool, gpu, model, quant, coeffs):
    """The pool's KernelTables, or None (profile, no data for the GPU, data not installed)."""
    if pool.profile is not None or not gpu.kernel_data:
        return None
    root = kd.data_root()
    if root is None or not (root / gpu.kernel_data).is_dir():
        return None
    try:
        return cached_tables(root, _inputs(pool, gpu, model, quant, coeffs))
    except (LookupError, ValueError, OSError):  # unreadable data: the roofline, said by kernel_warnings
        return None


def pool_perf_model(pool, base_dir: Path, gpu, model, quant, cpu: CpuSide | None = None) -> PerfModel:
    """The pool's PerfModel (see the module doc); ``.source`` of the result says where
    its step times come from. ``cpu``: the server's CPU side (``sim.perf.cpu_side``): its
    per-step work, serial or overlapped with the GPU (a profile keeps its own fitted overheads)."""
    coeffs = coefficients_for(pool, base_dir, gpu, quant, cpu, model=model)
    tables = _kernel_tables(pool, gpu, model, quant, coeffs)
    overlap = cpu is not None and cpu.async_scheduling and pool.profile is None
    eng = pool.engine
    version = kd.parse_version(eng.vllm_version) if eng.vllm_version else None
    sampler_row_s, penalty_ctx_s = (
        (0.0, 0.0)  # a profile is fitted end to end: its sampler is in its coefficients
        if pool.profile is not None
        else sampler_costs(gpu, model, version, eng.flashinfer_sampler, eng.sampling, coeffs.e_memory)
    )
    v0 = is_v0(version, eng.engine_core)
    measured = tables is not None and len(tables.lin_s) > 0
    perf = PerfModel(
        gpu,
        model,
        quant,
        pool.tensor_parallel,
        coeffs,
        kernels=tables,
        dp=pool.data_parallel,
        ep=pool.expert_parallel,
        cpu_overlap=overlap,
        clock_ratio=clock_ratio(getattr(pool, "power_limit_w", None), gpu.power_w),
        sampler_row_s=sampler_row_s,
        penalty_ctx_s=penalty_ctx_s,
        # V0 prefills eagerly; the kernel tables are CUDA-graph timings (sim.perf.eager); a roofline's
        # efficiencies and a profile's overheads are fitted end to end and keep what they hold
        eager_prefill_s=eager_step_s(model, pool.tensor_parallel, v0) if measured else 0.0,
        # V1: a step past the largest captured CUDA graph launches its kernels too (sim.perf.eager)
        graph_max_tokens=graph_max_tokens(version, eng.max_num_seqs, v0) if measured else 0,
        eager_over_s=eager_launch_s(model, pool.tensor_parallel),
    )
    if tables is None:
        perf.source = coeffs.source if pool.profile is not None else f"roofline: {coeffs.source}"
    else:
        perf.source = f"{tables.source}; CPU overheads and roofline parts: {coeffs.source}"
        if perf._eager_s > 0.0:
            perf.source += (
                f"; vLLM V0: steps with a prefill run eagerly, +{perf._eager_s * 1e3:.2f} ms of kernel launches "
                "(sim/perf/eager.py)"
            )
        if perf._graph_max_tokens > 0:
            perf.source += (
                f"; steps of more than {perf._graph_max_tokens} tokens run outside a CUDA graph, "
                f"+{perf._eager_over_s * 1e3:.2f} ms of kernel launches (sim/perf/eager.py)"
            )
    return perf


def perf_sources(scenario) -> dict[str, str]:
    """Pool name -> where its step times come from (profile and its validated error,
    measured kernels, or the roofline and its efficiencies). Builds each pool's PerfModel:
    for a run's pools, read ``SimResult.pools`` (``PoolModel.source``) instead."""
    cat = scenario.load_catalog()
    out = {}
    for p in scenario.fleet:
        gpu, model = cat.gpu(p.gpu), cat.model(p.model)
        quant = cat.quant(p.quantization.weights, p.quantization.kv_cache)
        out[p.name] = pool_perf_model(p, scenario.base_dir, gpu, model, quant).source
    return out


def kernel_warnings(scenario) -> list[str]:
    """One line per thing the forecast could not take from measured kernels (each said once)."""
    cat = scenario.load_catalog()
    root = kd.data_root()
    out: list[str] = []
    pools = [p for p in scenario.fleet if p.profile is None]
    if root is None:
        if any(cat.gpu(p.gpu).kernel_data for p in pools):
            out.append(
                f"note: {kd.PACKAGE} is not installed, so step times come from the roofline at the shipped "
                f"architecture efficiencies (pip install '{kd.PACKAGE}>=0.12,<0.13' for measured vLLM kernels)"
            )
        return out
    seen: set[str] = set()
    for p in pools:
        gpu = cat.gpu(p.gpu)
        if gpu.name in seen:
            continue
        if not gpu.kernel_data or not (root / gpu.kernel_data).is_dir():
            seen.add(gpu.name)
            arch = load_architectures().get(gpu.architecture or "")
            quant = cat.quant(p.quantization.weights, p.quantization.kv_cache)
            if stack_coefficients(gpu, quant.compute_dtype_on(gpu), p.engine.vllm_version)[0]:
                out.append(
                    f"no measured kernels for GPU '{gpu.name}': at vLLM {p.engine.vllm_version} its roofline runs at "
                    "that ROCm stack's measured GEMM rate and fitted costs (sim/perf/rocm_stack.py)"
                )
            elif gpu.achievable_flops or gpu.achievable_bw_bytes_s:
                out.append(
                    f"no measured kernels for GPU '{gpu.name}': its roofline runs at its own achievable rates "
                    "(catalog achievable_flops / achievable_bw_bytes_s, sim/perf/achievable.py)"
                )
            elif arch is not None and arch.sibling:
                out.append(
                    f"no measured kernels for GPU '{gpu.name}': its roofline borrows the {arch.name} "
                    f"efficiencies fitted to {arch.sibling}"
                )
            else:
                why = (
                    f"no sibling of its architecture ({arch.name}) in the kernel data"
                    if arch is not None
                    else "no architecture named in its catalog entry"
                )
                out.append(
                    f"no measured kernels for GPU '{gpu.name}' and {why}: fleetcast's default efficiencies apply"
                )
    for p in pools:
        gpu = cat.gpu(p.gpu)
        wanted = p.engine.vllm_version
        if not gpu.kernel_data or not (root / gpu.kernel_data).is_dir() or wanted is None:
            continue
        used = sorted(
            {
                v
                for t in ("gemm_perf", "generation_attention_perf", "context_attention_perf")
                if (v := kd.nearest_version(kd.versions(root, gpu.kernel_data, t), wanted)) is not None
            },
            key=kd.parse_version,  # type: ignore[arg-type]  # nearest_version returns parseable names
        )
        if used and (len(used) > 1 or kd.parse_version(used[0]) != kd.parse_version(wanted)):
            out.append(f"pool '{p.name}': no vLLM {wanted} kernel data for {gpu.kernel_data}; using {', '.join(used)}")
    return out
