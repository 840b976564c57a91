"""Kernel tables cached on disk, one ``.npz`` per pool configuration.

The key is a SHA-256 of everything a build reads: the build's ``FORMAT``, the
aiconfigurator-core version and the size of each data file used, and the
``TableInputs`` (system, model shape, quantization, TP, token range, vLLM
version asked for, the GPU numbers and efficiencies the roofline parts use).
Files are written atomically (temp file + ``os.replace``) with fixed zip
timestamps, so equal inputs give equal bytes. An entry that cannot be read, or
whose content does not check out (key, shapes, finite values), is rebuilt and
overwritten, never trusted. Folder: ``$FLEETCAST_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/fleetcast/kernels`` (default ``~/.cache/fleetcast/kernels``);
an unwritable folder only costs the rebuild.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import numpy as np

from sim.perf.kernels import data as kd
from sim.perf.kernels.tables import FORMAT, KernelTables, TableInputs, build_tables

__all__ = ["cache_dir", "cache_key", "cached_tables", "ARRAYS"]

ARRAYS = ("lin_s", "lm_head_s", "gemm_s", "comm_s", "decode_s", "prefill_s")
_memo: dict[str, KernelTables] = {}


def cache_dir() -> Path:
    if os.environ.get("FLEETCAST_CACHE_DIR"):
        return Path(os.environ["FLEETCAST_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleetcast" / "kernels"


def _plain(obj) -> dict:
    out = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        out[f.name] = dict(sorted(v.items())) if isinstance(v, Mapping) else v
    return out


def cache_key(root: Path, inp: TableInputs) -> str:
    files = []
    for table in kd.TABLES:
        v = kd.nearest_version(kd.versions(root, inp.system, table), inp.vllm_version)
        if v is not None:
            p = kd.table_path(root, inp.system, table, v)
            files.append([str(p.relative_to(root)), p.stat().st_size])
    gpu = inp.gpu
    doc = {
        "format": FORMAT,
        "package": kd.package_version(),
        "files": files,
        "inputs": {
            **{k: v for k, v in _plain(inp).items() if k not in ("model", "quant", "gpu")},
            "model": {k: v for k, v in _plain(inp.model).items() if k not in ("source", "hf_id")},
            "quant": _plain(inp.quant),
            "gpu": {
                "name": gpu.name,
                "peak_flops": dict(sorted(gpu.peak_flops.items())),
                "hbm_bw_bytes_s": gpu.hbm_bw_bytes_s,
                "interconnect_bw_bytes_s": gpu.interconnect_bw_bytes_s,
            },
        },
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _encode(tables: KernelTables, key: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        items = [(name, np.ascontiguousarray(getattr(tables, name), dtype=np.float64)) for name in ARRAYS]
        items.append(("meta", np.array(json.dumps({**tables.meta, "key": key}, sort_keys=True))))
        for name, arr in items:
            one = io.BytesIO()
            np.lib.format.write_array(one, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, one.getvalue())
    return buf.getvalue()


def _decode(path: Path, key: str, max_tokens: int) -> KernelTables:
    """The cached tables, or an exception when anything does not check out."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: np.array(z[name], dtype=np.float64) for name in ARRAYS}
        meta = json.loads(str(z["meta"][()]))
    if meta.pop("key", None) != key:
        raise ValueError("cache key mismatch")
    n = max_tokens + 1
    sizes = {
        "lin_s": (0, n),
        "lm_head_s": (0, n),
        "gemm_s": (0, n),
        "comm_s": (0, n),
        "decode_s": (0, 3),
        "prefill_s": (0, 4),
    }
    for name, arr in arrays.items():
        if arr.ndim != 1 or len(arr) not in sizes[name] or not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"bad array {name}")
    if not isinstance(meta.get("source"), str):
        raise ValueError("no source")
    return KernelTables(**arrays, meta=meta)


def _write_atomic(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_tables(root: Path, inp: TableInputs) -> KernelTables:
    """The pool's tables: from this process's memo, else the disk cache, else built
    (and written to the cache)."""
    key = cache_key(root, inp)
    hit = _memo.get(key)
    if hit is not None:
        return hit
    path = cache_dir() / f"{inp.system}-{key[:32]}.npz"
    try:
        tables = _decode(path, key, inp.max_tokens)
    except Exception:  # missing, unreadable or corrupt: rebuild, never trust
        tables = build_tables(root, inp)
        try:
            _write_atomic(path, _encode(tables, key))
        except OSError:
            pass  # a read-only cache folder only costs the rebuild next time
    _memo[key] = tables
    return tables
