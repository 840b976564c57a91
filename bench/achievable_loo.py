"""Leave-one-GPU-out: predict aiconfigurator's measured vLLM GEMMs from achievable rates.

For every GPU that aiconfigurator-core measured (vLLM GEMM tables) and that has a PUBLISHED
achievable rate (a microbenchmark run by someone else: GEMM TFLOPS per dtype, copy bandwidth;
``PUBLISHED`` below, each cited), the rule of ``sim.perf.achievable`` is

    t = FLOPs / (kappa_c * achievable_flops)          compute-bound shapes
    t = bytes / (kappa_m * achievable_bw)             bandwidth-bound shapes

with one kappa per regime shared by all GPUs. Held out one GPU at a time, kappa is the geometric
mean of the other GPUs' own kappas (each GPU's own: the geometric mean over its shapes of
measured throughput / achievable rate); the held-out GPU's kernels are predicted from its own
achievable rates and that kappa. Beside it, the rule fleetcast used before (the held-out GPU's
datasheet peak times the fraction of peak the OTHER GPUs reach, ``peak fraction``), and today's
sibling rule where the GPU has a sibling (hopper: h200 from h100's fit; ``architectures.yaml``).
Then one layer's attention kernels with the same (GEMM) kappas, as the performance model ran them
before attention had its own efficiency, and with it (``attention_rows``, last column). Then the
fit of that efficiency (``attention_ratio_study``): attention's throughput over the same GPU's GEMM
throughput (ρ_c prefill / compute-bound GEMMs, ρ_m decode / bandwidth-bound GEMMs) over the training
split ``sim.perf.attention_efficiency.TRAINING_SYSTEMS``, each GPU held out in turn (before: its
attention at its own GEMMs' efficiency; after: times ρ from the others).

Shapes: layer-sized (n, k >= 1024), not launch-bound (ideal time >= 20 us at the datasheet
peaks), the table's most common kernel; compute-bound where FLOP time >= 4x byte time at the
peaks, bandwidth-bound where byte time >= 4x FLOP time. Printed: a Markdown table (median
|error| per GPU, dtype and regime), then the kappas over all GPUs that sim/perf/achievable.py
ships, the ρ table and ρ over all training GPUs (``--check`` exits 1 if the kappas or ρ_c differ
from sim/perf/achievable.py and sim/perf/attention_efficiency.py).

    python bench/achievable_loo.py [--check]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.kernel_efficiencies import DTYPES, MIN_IDEAL_S, _rows  # noqa: E402
from sim.catalog import load_architectures, load_catalog  # noqa: E402
from sim.perf import achievable, attention_efficiency  # noqa: E402
from sim.perf.kernels import data as kd  # noqa: E402

_MAMF = (
    "stas00/ml-engineering compute/accelerator/README.md @b9e29720 (https://github.com/stas00/ml-engineering/"
    "blob/master/compute/accelerator/README.md#maximum-achievable-matmul-flops-comparison-table), MAMF table"
)
_AZURE = (
    "Azure AI-benchmarking-guide results (fork samuel-bohman/AI-benchmarking-guide, Azure_Results/{f}), "
    "HBM Bandwidth table, Copy"
)
_XZW = "xzwgit/gpu-flops-bench README.md @14a1e5e2 (cuBLASLt dense GEMM, best-shape median)"
# aiconfigurator system -> (catalog GPU, achievable FLOP/s per dtype, achievable bandwidth or None, sources)
PUBLISHED: dict[str, tuple[str, dict[str, float], float | None, str]] = {
    "a100_sxm": ("a100-80gb", {"bf16": 271.2e12}, 1.61e12, f"BF16 {_MAMF}; {_AZURE.format(f='ND_A100_v4_results.md')}"),
    "h100_sxm": (
        "h100-sxm",
        {"bf16": 794.5e12, "fp8": 1402.6e12},
        2.90e12,
        f"BF16, FP8 {_MAMF}; {_AZURE.format(f='ND_H100_v5_results.md')}",
    ),
    "h200_sxm": (
        "h200",
        {"bf16": 794.5e12, "fp8": 1453.4e12},
        4.01e12,
        f"BF16 (row H100 SXM, note 'H200 is the same'), FP8 {_MAMF}; {_AZURE.format(f='ND_H200_v5_results.md')}",
    ),
    "b200_sxm": ("b200", {"bf16": 1745.0e12, "fp8": 3432.5e12}, None, f"BF16, FP8 {_MAMF}; no bandwidth found"),
    "rtx_pro_6000_server": (
        "rtx-pro-6000",
        {"bf16": 457.61e12, "fp8": 905.32e12},
        None,
        f"BF16, FP8 E4M3 {_XZW}; no bandwidth found",
    ),
}
RATIO = 4.0  # a regime's shapes: one time at least this many times the other
_SIBLING_OF = {"h200_sxm": "hopper"}  # GPUs whose architecture's efficiencies were fitted on ANOTHER GPU


def _gmean(x) -> float:
    return float(np.exp(np.mean(np.log(np.asarray(x, dtype=np.float64)))))


def shapes(root: Path, system: str, dtype: str, gpu_name: str | None = None) -> dict[str, np.ndarray] | None:
    """One dtype's layer-sized, not launch-bound GEMMs of ``system`` (catalog GPU ``gpu_name``,
    else PUBLISHED's): FLOPs, bytes, measured s, and the regime masks at the GPU's datasheet peaks."""
    gpu = load_catalog().gpu(gpu_name or PUBLISHED[system][0])
    gemm_dtype, wb = DTYPES[dtype]
    version = kd.nearest_version(kd.versions(root, system, "gemm_perf"), None)
    rows = _rows(root, system, version, gemm_dtype)
    if rows is None or dtype not in gpu.peak_flops:
        return None
    m, n, k, lat_s = rows
    flops = 2.0 * m * n * k
    nbytes = n * k * wb + 2.0 * (m * k + m * n)
    t_f, t_b = flops / gpu.peak_flops[dtype], nbytes / gpu.hbm_bw_bytes_s
    keep = np.maximum(t_f, t_b) >= MIN_IDEAL_S
    out = {"flops": flops[keep], "bytes": nbytes[keep], "s": lat_s[keep], "t_f": t_f[keep], "t_b": t_b[keep]}
    out["compute"] = out["t_f"] >= RATIO * out["t_b"]
    out["memory"] = out["t_b"] >= RATIO * out["t_f"]
    return out


def own(sh: dict, regime: str, rate: float) -> float:
    """Geometric mean over the regime's shapes of measured throughput / ``rate``."""
    sel = sh[regime]
    work = sh["flops"] if regime == "compute" else sh["bytes"]
    return _gmean(work[sel] / sh["s"][sel] / rate)


def median_err(sh: dict, regime: str, rate: float) -> float:
    """Median |predicted / measured - 1| of t = work / rate over the regime's shapes."""
    sel = sh[regime]
    work = sh["flops"] if regime == "compute" else sh["bytes"]
    return float(np.median(np.abs(work[sel] / rate / sh["s"][sel] - 1.0)))


def study(root: Path) -> tuple[list[dict], dict[str, float]]:
    """Rows of the leave-one-out table and the kappas over all GPUs (compute per dtype, memory)."""
    cat = load_catalog()
    data: dict[tuple[str, str], dict] = {}
    for system, (_gpu, rates, _bw, _src) in PUBLISHED.items():
        if not (root / system).is_dir():
            continue
        for dtype in rates:
            sh = shapes(root, system, dtype)
            if sh is not None:
                data[(system, dtype)] = sh
    kap_c = {(s, d): own(sh, "compute", PUBLISHED[s][1][d]) for (s, d), sh in data.items() if sh["compute"].any()}
    frac_c = {
        (s, d): own(sh, "compute", cat.gpu(PUBLISHED[s][0]).peak_flops[d])
        for (s, d), sh in data.items()
        if sh["compute"].any()
    }
    mem = {(s, d): sh for (s, d), sh in data.items() if d == "bf16" and sh["memory"].any()}
    kap_m = {s: own(sh, "memory", PUBLISHED[s][2]) for (s, _d), sh in mem.items() if PUBLISHED[s][2]}
    frac_m = {s: own(sh, "memory", cat.gpu(PUBLISHED[s][0]).hbm_bw_bytes_s) for (s, _d), sh in mem.items()}
    rows = []
    for (s, d), sh in sorted(data.items()):
        gpu = cat.gpu(PUBLISHED[s][0])
        if (s, d) in kap_c:
            others = [v for (s2, d2), v in kap_c.items() if d2 == d and s2 != s]
            others_f = [v for (s2, d2), v in frac_c.items() if d2 == d and s2 != s]
            row = {
                "gpu": s,
                "dtype": d,
                "regime": "compute",
                "n": int(sh["compute"].sum()),
                "rate_vs_peak": PUBLISHED[s][1][d] / gpu.peak_flops[d],
                "own_kappa": kap_c[(s, d)],
                "loo_kappa": _gmean(others) if others else math.nan,
                "err_rule": median_err(sh, "compute", _gmean(others) * PUBLISHED[s][1][d]) if others else math.nan,
                "err_peak_fraction": median_err(sh, "compute", _gmean(others_f) * gpu.peak_flops[d])
                if others_f
                else math.nan,
                "err_sibling": math.nan,
            }
            arch = load_architectures().get(_SIBLING_OF.get(s, ""))
            if arch is not None:
                e = arch.e_compute_for(d)
                row["err_sibling"] = median_err(sh, "compute", e * gpu.peak_flops[d]) if e else math.nan
            rows.append(row)
        if d == "bf16" and s in kap_m:
            others = [v for s2, v in kap_m.items() if s2 != s]
            others_f = [v for s2, v in frac_m.items() if s2 != s]
            row = {
                "gpu": s,
                "dtype": d,
                "regime": "memory",
                "n": int(sh["memory"].sum()),
                "rate_vs_peak": PUBLISHED[s][2] / gpu.hbm_bw_bytes_s,
                "own_kappa": kap_m[s],
                "loo_kappa": _gmean(others) if others else math.nan,
                "err_rule": median_err(sh, "memory", _gmean(others) * PUBLISHED[s][2]) if others else math.nan,
                "err_peak_fraction": median_err(sh, "memory", _gmean(others_f) * gpu.hbm_bw_bytes_s)
                if others_f
                else math.nan,
                "err_sibling": math.nan,
            }
            arch = load_architectures().get(_SIBLING_OF.get(s, ""))
            if arch is not None and arch.e_memory:
                row["err_sibling"] = median_err(sh, "memory", arch.e_memory * gpu.hbm_bw_bytes_s)
            rows.append(row)
    kappas = {f"compute_{d}": _gmean([v for (_s, d2), v in kap_c.items() if d2 == d]) for d in ("bf16", "fp8")}
    kappas["memory"] = _gmean(list(kap_m.values()))
    ratio_rows, _rho = attention_ratio_study(root)
    rows += attention_rows(root, kap_c, frac_c, kap_m, frac_m, {r["gpu"]: r["loo_rho_c"] for r in ratio_rows})
    return rows, kappas


def _attention(root: Path, system: str, table: str):
    """bf16-KV, full-attention, single-beam rows of the table's most common kernel."""
    version = kd.nearest_version(kd.versions(root, system, table), None)
    if version is None:
        return None
    cols = ["kernel_source", "batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "kv_cache_dtype"]
    t = kd.read_table(
        root,
        system,
        table,
        version,
        [*cols, "step", "window_size", "beam_width", "latency"],
        {"window_size": 0, "beam_width": 1},
    )
    mask = (t["kv_cache_dtype"] == "bfloat16") & (t["window_size"] == 0) & (t["beam_width"] == 1)
    names, counts = np.unique(t["kernel_source"][mask].astype(str), return_counts=True)
    if not len(names):
        return None
    mask &= t["kernel_source"] == names[int(np.argmax(counts))]
    return {
        c: t[c][mask].astype(np.float64)
        for c in ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "step", "latency"]
    }


def attention_rows(
    root: Path, kap_c: dict, frac_c: dict, kap_m: dict, frac_m: dict, rho_c_loo: dict | None = None
) -> list[dict]:
    """The same held-out prediction for one layer's attention kernels, with the GEMMs' kappas (the
    performance model runs attention at the linear layers' efficiencies): decode attention as KV
    bytes / (kappa_m x achievable bandwidth), prefill attention (causal, no cached prefix) as
    FLOPs / (kappa_c x achievable bf16 GEMM rate). Kept: rows whose ideal time at the datasheet
    peak is >= 20 us; prefill also isl >= 1024 (compute-bound). ``err_after``: prefill attention
    at ρ_c (``rho_c_loo``: the held-out GPU's ρ_c from the OTHER GPUs, ``attention_ratio_study``)
    times that rate, as ``sim.perf.attention_efficiency`` runs it; decode keeps the GEMMs' rate."""
    rho_c_loo = rho_c_loo or {}
    cat = load_catalog()
    rows = []
    for system, (gpu_name, rates, bw, _src) in PUBLISHED.items():
        gpu = cat.gpu(gpu_name)
        dec = _attention(root, system, "generation_attention_perf") if (root / system).is_dir() else None
        if dec is not None and bw and system in kap_m:
            nbytes = (
                dec["batch_size"] * (dec["step"] + dec["isl"]) * 2 * dec["num_key_value_heads"] * dec["head_dim"] * 2
            )
            keep = nbytes / gpu.hbm_bw_bytes_s >= MIN_IDEAL_S
            sh = {"bytes": nbytes[keep], "flops": nbytes[keep], "s": dec["latency"][keep] * 1e-3}
            sh["memory"] = np.ones(int(keep.sum()), dtype=bool)
            kap = _gmean([v for s2, v in kap_m.items() if s2 != system])
            frac = _gmean([v for s2, v in frac_m.items() if s2 != system])
            arch = load_architectures().get(_SIBLING_OF.get(system, ""))
            rows.append(
                {
                    "gpu": system,
                    "dtype": "bf16 KV",
                    "regime": "decode attention",
                    "n": int(keep.sum()),
                    "rate_vs_peak": bw / gpu.hbm_bw_bytes_s,
                    "own_kappa": own(sh, "memory", bw),
                    "loo_kappa": kap,
                    "err_rule": median_err(sh, "memory", kap * bw),
                    "err_peak_fraction": median_err(sh, "memory", frac * gpu.hbm_bw_bytes_s),
                    "err_sibling": median_err(sh, "memory", arch.e_memory * gpu.hbm_bw_bytes_s)
                    if arch is not None and arch.e_memory
                    else math.nan,
                    "err_after": median_err(sh, "memory", kap * bw),
                }
            )
        pre = _attention(root, system, "context_attention_perf") if (root / system).is_dir() else None
        if pre is not None and (system, "bf16") in kap_c:
            q = pre["isl"]
            flops = 4.0 * pre["num_heads"] * pre["head_dim"] * pre["batch_size"] * q * q / 2
            keep = (pre["step"] == 0) & (q >= 1024) & (flops / gpu.peak_flops["bf16"] >= MIN_IDEAL_S)
            sh = {"flops": flops[keep], "bytes": flops[keep], "s": pre["latency"][keep] * 1e-3}
            sh["compute"] = np.ones(int(keep.sum()), dtype=bool)
            kap = _gmean([v for (s2, d2), v in kap_c.items() if d2 == "bf16" and s2 != system])
            frac = _gmean([v for (s2, d2), v in frac_c.items() if d2 == "bf16" and s2 != system])
            arch = load_architectures().get(_SIBLING_OF.get(system, ""))
            e_sib = arch.e_compute_for("bf16") if arch is not None else None
            rows.append(
                {
                    "gpu": system,
                    "dtype": "bf16",
                    "regime": "prefill attention",
                    "n": int(keep.sum()),
                    "rate_vs_peak": rates["bf16"] / gpu.peak_flops["bf16"],
                    "own_kappa": own(sh, "compute", rates["bf16"]),
                    "loo_kappa": kap,
                    "err_rule": median_err(sh, "compute", kap * rates["bf16"]),
                    "err_peak_fraction": median_err(sh, "compute", frac * gpu.peak_flops["bf16"]),
                    "err_sibling": median_err(sh, "compute", e_sib * gpu.peak_flops["bf16"]) if e_sib else math.nan,
                    "err_after": median_err(sh, "compute", rho_c_loo[system] * kap * rates["bf16"])
                    if system in rho_c_loo
                    else math.nan,
                }
            )
    return rows


def _attention_work(root: Path, system: str, gpu) -> dict[str, np.ndarray] | None:
    """One layer's attention kernels of ``system`` with the filters of ``attention_rows``: decode
    (KV bytes, measured s) and causal prefill without a cached prefix (FLOPs, measured s)."""
    dec = _attention(root, system, "generation_attention_perf")
    pre = _attention(root, system, "context_attention_perf")
    if dec is None or pre is None:
        return None
    nbytes = dec["batch_size"] * (dec["step"] + dec["isl"]) * 2 * dec["num_key_value_heads"] * dec["head_dim"] * 2
    kd_ = nbytes / gpu.hbm_bw_bytes_s >= MIN_IDEAL_S
    q = pre["isl"]
    flops = 4.0 * pre["num_heads"] * pre["head_dim"] * pre["batch_size"] * q * q / 2
    kp = (pre["step"] == 0) & (q >= 1024) & (flops / gpu.peak_flops["bf16"] >= MIN_IDEAL_S)
    return {
        "dec_bytes": nbytes[kd_],
        "dec_s": dec["latency"][kd_] * 1e-3,
        "pre_flops": flops[kp],
        "pre_s": pre["latency"][kp] * 1e-3,
    }


def _med(work: np.ndarray, rate: float, s: np.ndarray) -> float:
    return float(np.median(np.abs(work / rate / s - 1.0)))


def attention_ratio_study(root: Path) -> tuple[list[dict], dict[str, float]]:
    """Attention's efficiency relative to the same GPU's GEMMs, per GPU of
    ``attention_efficiency.TRAINING_SYSTEMS`` (the catalog GPU whose ``kernel_data`` it is):
    ρ_c = prefill attention FLOP/s / compute-bound GEMM FLOP/s at bf16, ρ_m = decode attention KV
    bytes/s / bandwidth-bound GEMM bytes/s (geometric means over each one's kernels). Held out one
    GPU at a time: its attention predicted at its own GEMMs' efficiency (before: ρ = 1) and at ρ
    from the other GPUs (after), median |error|. Returns the rows and ρ over all of them."""
    cat = load_catalog()
    by_system = {g.kernel_data: g for g in (cat.gpu(n) for n in cat.gpu_names()) if g.kernel_data}
    own_c: dict[str, float] = {}
    own_m: dict[str, float] = {}
    base: dict[str, tuple] = {}
    for system in attention_efficiency.TRAINING_SYSTEMS:
        gpu = by_system.get(system)
        if gpu is None or not (root / system).is_dir():
            continue
        sh = shapes(root, system, "bf16", gpu.name)
        w = _attention_work(root, system, gpu)
        if sh is None or w is None or not sh["compute"].any() or not sh["memory"].any():
            continue
        lin_c, lin_m = own(sh, "compute", gpu.peak_flops["bf16"]), own(sh, "memory", gpu.hbm_bw_bytes_s)
        own_c[system] = _gmean(w["pre_flops"] / w["pre_s"] / gpu.peak_flops["bf16"]) / lin_c
        own_m[system] = _gmean(w["dec_bytes"] / w["dec_s"] / gpu.hbm_bw_bytes_s) / lin_m
        base[system] = (gpu, w, lin_c, lin_m)
    rows = []
    for system, (gpu, w, lin_c, lin_m) in base.items():
        rho_c = _gmean([v for s2, v in own_c.items() if s2 != system])
        rho_m = _gmean([v for s2, v in own_m.items() if s2 != system])
        peak, bw = gpu.peak_flops["bf16"], gpu.hbm_bw_bytes_s
        rows.append(
            {
                "gpu": system,
                "lin_c": lin_c,
                "lin_m": lin_m,
                "n_pre": len(w["pre_s"]),
                "own_rho_c": own_c[system],
                "loo_rho_c": rho_c,
                "pre_before": _med(w["pre_flops"], lin_c * peak, w["pre_s"]),
                "pre_after": _med(w["pre_flops"], rho_c * lin_c * peak, w["pre_s"]),
                "n_dec": len(w["dec_s"]),
                "own_rho_m": own_m[system],
                "loo_rho_m": rho_m,
                "dec_before": _med(w["dec_bytes"], lin_m * bw, w["dec_s"]),
                "dec_candidate": _med(w["dec_bytes"], rho_m * lin_m * bw, w["dec_s"]),
            }
        )
    return rows, {"rho_c": _gmean(list(own_c.values())), "rho_m": _gmean(list(own_m.values()))}


def ratio_table_lines(rows: list[dict]) -> list[str]:
    head = [
        "GPU (aiconfigurator)",
        "GEMM e, compute / memory",
        "prefill shapes",
        "own ρ_c",
        "ρ_c from the others",
        "prefill error before → after (%)",
        "decode shapes",
        "own ρ_m",
        "ρ_m from the others",
        "decode error before → with ρ_m (not shipped) (%)",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append(
            f"| {r['gpu']} | {r['lin_c']:.3f} / {r['lin_m']:.3f} | {r['n_pre']} | {r['own_rho_c']:.3f} | "
            f"{r['loo_rho_c']:.3f} | {_pct(r['pre_before'])} → {_pct(r['pre_after'])} | {r['n_dec']} | "
            f"{r['own_rho_m']:.3f} | {r['loo_rho_m']:.3f} | {_pct(r['dec_before'])} → {_pct(r['dec_candidate'])} |"
        )
    return out


def _pct(x: float) -> str:
    return "–" if x != x else f"{x * 100:.1f}"


def table_lines(rows: list[dict]) -> list[str]:
    head = [
        "GPU (aiconfigurator)",
        "dtype",
        "regime",
        "shapes",
        "achievable / peak",
        "own κ",
        "κ from the others",
        "error, achievable rule (%)",
        "error, others' fraction of peak (%)",
        "error, today's sibling (%)",
        "error after attention efficiency (%)",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append(
            f"| {r['gpu']} | {r['dtype']} | {r['regime']} | {r['n']} | {r['rate_vs_peak']:.3f} | "
            f"{r['own_kappa']:.3f} | {r['loo_kappa']:.3f} | {_pct(r['err_rule'])} | "
            f"{_pct(r['err_peak_fraction'])} | {_pct(r['err_sibling'])} | {_pct(r.get('err_after', math.nan))} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when sim/perf/achievable.py ships other kappas")
    a = ap.parse_args(argv)
    root = kd.data_root()
    if root is None:
        print(f"{kd.PACKAGE} is not installed: pip install '{kd.PACKAGE}>=0.12,<0.13'", file=sys.stderr)
        return 2
    rows, kappas = study(root)
    print("\n".join(table_lines(rows)))
    print()
    for name, v in kappas.items():
        print(f"kappa {name} over all GPUs: {v:.3f}")
    shipped = {
        "compute_bf16": achievable.KAPPA_COMPUTE["bf16"],
        "compute_fp8": achievable.KAPPA_COMPUTE["fp8"],
        "memory": achievable.KAPPA_MEMORY,
    }
    same = all(round(kappas[k], 3) == shipped[k] for k in shipped)
    print("sim/perf/achievable.py kappas " + ("match" if same else f"differ: shipped {shipped}"))
    ratio_rows, rho = attention_ratio_study(root)
    print()
    print("\n".join(ratio_table_lines(ratio_rows)))
    print()
    print(f"rho_c over {', '.join(r['gpu'] for r in ratio_rows)}: {rho['rho_c']:.3f}; rho_m: {rho['rho_m']:.3f}")
    same_rho = round(rho["rho_c"], 3) == attention_efficiency.RHO_ATTN_COMPUTE
    print(
        "sim/perf/attention_efficiency.py rho_c "
        + ("matches" if same_rho else f"differs: shipped {attention_efficiency.RHO_ATTN_COMPUTE}")
    )
    return 0 if (same and same_rho) or not a.check else 1


if __name__ == "__main__":
    sys.exit(main())
