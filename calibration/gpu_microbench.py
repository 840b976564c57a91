"""``fleetcast calibrate microbench``: achievable rates of this machine's GPU, with PyTorch.

No vLLM: plain torch GEMMs at the model's layer shapes (qkv, o, gate_up, down of one TP rank,
``m`` = the tokens of a full prefill step) plus one square GEMM, per dtype; a device-to-device
copy for memory bandwidth; scaled-dot-product attention for a prefill (causal, one sequence) and
a decode step (one query per sequence over a cached context). Each timing is the best of its
repeats after a warm-up, within a time budget (about 100 s on a GPU in all). The result becomes a
user catalog entry (calibration/microbench_entry.py): the GPU's ``achievable_flops`` and
``achievable_bw_bytes_s``, which the roofline of a GPU without measured kernels runs at
(sim/perf/achievable.py). The attention timings are recorded in the file's header; the
performance model does not read them (attention runs at the same rates as the linear layers).

torch is imported here only, inside the functions: without it the command says so and exits 2.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from calibration.microbench_entry import GemmTiming, Measurement
from sim.catalog import ModelSpec
from sim.errors import FleetcastError

__all__ = ["import_torch", "open_device", "check_dtype", "gemm_shapes", "measure", "DTYPES"]

DTYPES = ("fp32", "bf16", "fp16", "fp8")
_INSTALL = "pip install torch (a build for your GPU: https://pytorch.org/get-started/locally/)"


def import_torch() -> Any:
    """The torch module, or a FleetcastError (exit 2) saying how to install it."""
    try:
        import torch  # type: ignore[import-not-found,unused-ignore]  # optional: not a fleetcast dependency
    except ImportError:
        raise FleetcastError(
            f"`fleetcast calibrate microbench` needs PyTorch, which is not installed here; {_INSTALL}. "
            "Nothing was written."
        ) from None
    return torch


def open_device(torch: Any, device: str) -> Any:
    """torch.device for ``cuda`` (a CUDA or ROCm GPU) or ``cpu`` (for testing the command)."""
    if device == "cpu":
        return torch.device("cpu")
    if device != "cuda":
        raise FleetcastError(f"--device {device!r}: valid devices are cuda (the GPU) and cpu (a test run)")
    if not torch.cuda.is_available():
        raise FleetcastError(
            f"--device cuda: torch {torch.__version__} sees no GPU on this machine (torch.cuda.is_available() is "
            "False: no CUDA/ROCm device, no driver, or a CPU-only torch build). Run it on the GPU machine, or "
            "--device cpu to try the command. Nothing was written."
        )
    return torch.device("cuda")


def _torch_dtype(torch: Any, dtype: str) -> Any:
    names = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "fp8": "float8_e4m3fn"}
    if dtype not in names:
        raise FleetcastError(f"--dtype {dtype!r}: valid dtypes are {', '.join(DTYPES)}")
    tdt = getattr(torch, names[dtype], None)
    if tdt is None:
        raise FleetcastError(f"--dtype {dtype}: torch {torch.__version__} has no {names[dtype]}. Nothing was written.")
    return tdt


def _matmul(torch: Any, dev: Any, dtype: str, m: int, n: int, k: int):
    """A closure running one (m x k) @ (k x n) GEMM at ``dtype`` on ``dev``."""
    tdt = _torch_dtype(torch, dtype)
    if dtype != "fp8":
        a = torch.randn(m, k, device=dev).to(tdt)
        b = torch.randn(k, n, device=dev).to(tdt)
        return lambda: torch.matmul(a, b)
    # fp8: torch._scaled_mm (per-tensor scales), the kernel fp8 inference GEMMs use; B column-major
    a = torch.randn(m, k, device=dev).to(tdt)
    b = torch.randn(n, k, device=dev).to(tdt).t()
    one = torch.ones((), device=dev, dtype=torch.float32)
    return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def check_dtype(torch: Any, dev: Any, dtype: str) -> None:
    """Refuse (exit 2) a dtype this machine's torch cannot multiply on ``dev``."""
    try:
        _matmul(torch, dev, dtype, 16, 16, 16)()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    except (RuntimeError, TypeError, AttributeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FleetcastError(
            f"--dtype {dtype}: this machine cannot run {dtype} GEMMs on {dev.type} with torch {torch.__version__} "
            f"({first[:200]}); measure another dtype ({', '.join(d for d in DTYPES if d != dtype)}). "
            "Nothing was written."
        ) from None


def gemm_shapes(model: ModelSpec, tp: int, tokens: int) -> list[tuple[str, int, int, int]]:
    """(label, m, n, k) of one TP rank's linear layers for a step of ``tokens`` tokens."""
    h, hd = model.hidden_size, model.head_dim
    q, kv = model.num_heads * hd // tp, max(model.num_kv_heads // tp, 1) * hd
    inter = (model.moe_intermediate_size if model.num_experts > 1 else model.intermediate_size) // tp
    return [
        ("qkv", tokens, q + 2 * kv, h),
        ("o", tokens, h, q),
        ("gate_up", tokens, 2 * inter, h),
        ("down", tokens, h, inter),
    ]


def _best_s(torch: Any, dev: Any, fn, budget_s: float, max_reps: int = 50) -> float:
    """Best wall time of ``fn`` over repeats (at least 3) after one warm-up, within ``budget_s``."""
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    fn()
    sync()
    best, start, reps = float("inf"), time.perf_counter(), 0
    while reps < 3 or (reps < max_reps and time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
        reps += 1
    return best


def _attention(torch: Any, dev: Any, model: ModelSpec, tp: int, tokens: int, dtype: str, budget_s: float) -> dict:
    """Prefill (causal, one sequence of ``tokens``) and decode (``tokens // 16`` sequences over
    a ``tokens``-token context) scaled-dot-product attention of one layer of one TP rank."""
    import torch.nn.functional as F  # type: ignore[import-not-found,unused-ignore]  # optional, as import_torch

    tdt = _torch_dtype(torch, dtype if dtype in ("fp32", "bf16", "fp16") else "bf16")
    heads, kvh, hd = max(model.num_heads // tp, 1), max(model.num_kv_heads // tp, 1), model.head_dim
    rep = heads // kvh

    def qkv(batch: int, q_len: int, ctx: int):
        q = torch.randn(batch, heads, q_len, hd, device=dev).to(tdt)
        k = torch.randn(batch, kvh, ctx, hd, device=dev).to(tdt)
        v = torch.randn(batch, kvh, ctx, hd, device=dev).to(tdt)
        return q, k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)

    q, k, v = qkv(1, tokens, tokens)
    pre_s = _best_s(torch, dev, lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), budget_s)
    batch = max(tokens // 16, 1)
    q, k, v = qkv(batch, 1, tokens)
    dec_s = _best_s(torch, dev, lambda: F.scaled_dot_product_attention(q, k, v), budget_s)
    kv_bytes = 2.0 * batch * kvh * tokens * hd * q.element_size()
    return {
        "prefill_tokens": float(tokens),
        "prefill_seconds": pre_s,
        "prefill_flops_s": 4.0 * heads * hd * tokens * tokens / 2 / pre_s,
        "decode_batch": float(batch),
        "decode_context_tokens": float(tokens),
        "decode_seconds": dec_s,
        "decode_kv_bytes_s": kv_bytes / dec_s,
    }


def measure(
    torch: Any,
    dev: Any,
    dtypes: list[str],
    model: ModelSpec,
    tp: int,
    tokens: int,
    square: int,
    copy_bytes: int,
    budget_s: float,
) -> Measurement:
    """Time the GEMMs (per dtype: the model's shapes and one ``square`` GEMM), the copy and the
    attention; ``budget_s`` bounds each timing's repeats."""
    gemms = []
    for dtype in dtypes:
        for label, m, n, k in [*gemm_shapes(model, tp, tokens), ("square", square, square, square)]:
            s = _best_s(torch, dev, _matmul(torch, dev, dtype, m, n, k), budget_s)
            gemms.append(GemmTiming(dtype=dtype, m=m, n=n, k=k, seconds=s, label=label))
    n = max(copy_bytes // 4, 1)
    src = torch.ones(n, device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    copy_s = _best_s(torch, dev, lambda: dst.copy_(src), budget_s)
    attn = _attention(torch, dev, model, tp, tokens, dtypes[0], budget_s)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return Measurement(
        device_name=name,
        torch_version=str(torch.__version__),
        date_utc=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        model=model.name,
        tensor_parallel=tp,
        gemms=tuple(gemms),
        copy_bytes=4 * n,
        copy_seconds=copy_s,
        attention=attn,
    )
