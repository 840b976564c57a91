"""``fleetcast catalog``: the GPUs, models, quantization schemes and KV-transfer links fleetcast knows."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from sim.catalog import load_catalog
from sim.cli.common import console
from sim.report.fit_table import Fitting

__all__ = ["register"]


def _cmd_catalog(args: argparse.Namespace) -> int:
    cat = load_catalog([Path(p) for p in args.file])
    t = Table(title="GPUs", title_justify="left")
    for col in ("name", "bf16 TFLOP/s", "HBM GiB", "HBM TB/s", "link GB/s", "W", "$/h", "buy $"):
        t.add_column(col, justify="right" if col != "name" else "left")
    for name in cat.gpu_names():
        g = cat.gpu(name)
        t.add_row(
            name,
            f"{g.peak_flops.get('bf16', 0) / 1e12:,.0f}",
            f"{g.hbm_bytes / 2**30:,.0f}",
            f"{g.hbm_bw_bytes_s / 1e12:.2f}",
            f"{g.interconnect_bw_bytes_s / 1e9:,.0f}",
            f"{g.power_w:,.0f}" if g.power_w else "-",
            f"{g.price_usd_per_hour:.2f}",
            f"{g.purchase_usd:,.0f}" if g.purchase_usd else "-",
        )
    console.print(Fitting(t))
    m = Table(title="Models", title_justify="left")
    for col in ("name", "params (B)", "active (B)", "layers", "hidden", "kv heads", "context"):
        m.add_column(col, justify="right" if col != "name" else "left")
    for name in cat.model_names():
        s = cat.model(name)
        m.add_row(
            name,
            f"{s.params_total / 1e9:.1f}",
            f"{s.params_active / 1e9:.1f}",
            str(s.num_layers),
            str(s.hidden_size),
            str(s.num_kv_heads),
            f"{s.max_position_embeddings:,}",
        )
    console.print(Fitting(m))
    console.print(f"weights: {', '.join(cat.weight_schemes())}; kv_cache: {', '.join(cat.kv_schemes())}")
    k = Table(title="KV-transfer links (disaggregated prefill/decode: kv_transfer.link)", title_justify="left")
    for col in ("name", "GB/s per GPU", "latency us", "scope", "what"):
        k.add_column(col, justify="right" if col in ("GB/s per GPU", "latency us") else "left")
    for name in cat.link_names():
        link = cat.link(name)
        k.add_row(
            name, f"{link.bandwidth_bytes_s / 1e9:,.1f}", f"{link.latency_s * 1e6:,.0f}", link.scope, link.description
        )
    console.print(Fitting(k))
    if args.sources:
        for kind, names, get in (
            ("GPU", cat.gpu_names(), cat.gpu),
            ("model", cat.model_names(), cat.model),
            ("link", cat.link_names(), cat.link),
        ):
            for name in names:
                entry = get(name)
                source = getattr(entry, "source", "")  # a model's one source covers every number (its config.json)
                if source:
                    console.print(f"{kind} {name}: {source}", highlight=False, soft_wrap=True)
                for key, text in (getattr(entry, "sources", None) or {}).items():
                    console.print(f"{kind} {name} {key}: {text}", highlight=False, soft_wrap=True)
    else:
        console.print("[dim]where each number comes from: fleetcast catalog --sources[/dim]")
    return 0


def register(subparsers) -> None:
    """Add the ``catalog`` subcommand."""
    c = subparsers.add_parser("catalog", help="list GPUs, models, quantization schemes and KV-transfer links")
    c.add_argument("--file", action="append", default=[], help="extra catalog YAML file (repeatable)")
    c.add_argument(
        "--sources",
        action="store_true",
        help="also print the source of every number (datasheet, paper, or 'assumption: ...'), one line each",
    )
    c.set_defaults(func=_cmd_catalog)
