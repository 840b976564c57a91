"""Uncalibrated forecasts against the public real-GPU corpus (calibration/public/).

Every entry of the corpus (a per-request log of a real vLLM run on GPUs, or one row of a static-batch,
concurrency, rate-stage or saturated-burst table, with its sidecar) is
replayed with no calibration profile: exactly the model ``fleetcast run`` and ``plan`` use for that
pool (the GPU's measured vLLM kernels, catalog defaults). Printed: forecast vs measured per entry
(source, GPU, model, regime), then the median |error| per metric and set against the issue's
targets, then the entries skipped and the public sources not in the corpus, each with its reason.
Nothing is fitted here. Writes bench/results/public_gpu.json (and, with --figure, the forecast vs
measured figure of calibration/README.md).

    python bench/public_gpu.py [--out bench/results/public_gpu.json] [--figure calibration/public/forecast-vs-measured.png]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibration.public_corpus import COMPARED, CORPUS, NOT_IN_CORPUS, discover, replay_entry, summarize  # noqa: E402
from sim.errors import FleetcastError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHOWN = ("ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s", "e2e_p50_s",
         "e2e_p90_s", "e2e_p99_s", "output_tok_s", "batch_latency_s", "itl_p50_s", "itl_p99_s", "avg_batch_size")
#: the latency shown measured -> forecast per entry: the first one the entry measured
HEADLINE = ("ttft_p50_s", "batch_latency_s", "itl_p50_s")


def _short(m: str) -> str:
    return m.removesuffix("_s").replace("output_tok", "tok/s").replace("avg_batch_size", "batch")


def table_lines(results: list[dict]) -> list[str]:
    """Markdown: one row per entry, error % per metric (forecast - measured) / measured."""
    head = (["entry", "GPU", "model", "TP", "req/s", "regime", "TTFT p50, batch latency or ITL p50, meas→fcst (ms)"]
            + [_short(m) for m in SHOWN])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        m0 = next((m for m in HEADLINE if r["measured"].get(m) is not None), HEADLINE[0])
        ttft = ("–" if r["measured"].get(m0) is None else
                f"{r['measured'][m0] * 1e3:.{0 if m0 != 'itl_p50_s' else 1}f} → {r['forecast'][m0] * 1e3:.{0 if m0 != 'itl_p50_s' else 1}f}")
        errs = ["–" if r["error_pct"][m] is None else f"{r['error_pct'][m]:+.1f}" for m in SHOWN]
        rps = "–" if r["offered_rps"] != r["offered_rps"] else f"{r['offered_rps']:.2f}"
        lines.append(f"| {r['entry']} | {r['gpu']} | {r['model']} | {r['tensor_parallel']} | "
                     f"{rps} | {r['regime']} | {ttft} | " + " | ".join(errs) + " |")
    return lines


def _set(r: dict) -> str:
    return f"{r['source']}/{r['set']}"


def _columns(results: list[dict]) -> list[str]:
    """The compared metrics some entry measured (a mean only where a source gives one)."""
    return [m for m in COMPARED if any(r["error_pct"].get(m) is not None for r in results)]


def summary_lines(summary: dict, results: list[dict]) -> list[str]:
    cols = _columns(results)
    head = ["source / set", "GPU, model", "entries"] + [_short(m) for m in cols] + ["targets met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for src, per in summary.items():
        rs0 = [r for r in results if _set(r) == src]
        n = len(rs0)
        what = f"{rs0[0]['gpu']} ×{rs0[0]['tensor_parallel']}, {rs0[0]['model']} ({rs0[0]['weights']})"
        cells = [("–" if m not in per else f"{per[m]['median_abs_pct']:.1f}" + ("" if per[m]["met"] else " ✗"))
                 for m in cols]
        met = sum(per[m]["met"] for m in per)
        lines.append(f"| {src} | {what} | {n} | " + " | ".join(cells) + f" | {met} of {len(per)} |")
        for reg in ("static batch", "moderate load", "saturation", "rate stage", "closed loop"):
            rs = [r for r in rs0 if r["regime"] == reg]
            if rs and len(rs) < n:
                sub = summarize(rs)[src]
                cells = [("–" if m not in sub else f"{sub[m]['median_abs_pct']:.1f}") for m in cols]
                lines.append(f"| {src}, {reg} | | {len(rs)} | " + " | ".join(cells) + " | |")
    return lines


def _group(r: dict) -> str:
    """Figure colour: a source on one GPU (about a dozen groups, so the legend stays readable; the
    per-set detail is in the tables)."""
    kind = ", static batches" if r["regime"] == "static batch" else ""
    return f"{r['source']} ({r['gpu']}{kind})"


def skipped_groups(corpus: Path = CORPUS) -> list[dict]:
    """The rows of each source's skipped.csv (what its converter left out, and why)."""
    out = []
    for f in sorted(Path(corpus).glob("*/skipped.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            out += [{"source": f.parent.name, **row} for row in csv.DictReader(fh)]
    return out


def figure(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    panels = (("ttft_p50_s", "TTFT p50 (s)"), ("ttft_p99_s", "TTFT p99 (s)"), ("tpot_p50_s", "TPOT p50 (s)"),
              ("e2e_p50_s", "E2E p50 (s)"), ("output_tok_s", "output tok/s"),
              ("batch_latency_s", "static batch latency (s)"))
    fig, axes = plt.subplots(2, 3, figsize=(14, 10.5))
    axes = axes.ravel()
    groups = sorted({_group(r) for r in results})
    for ax, (m, label) in zip(axes, panels):
        lo, hi = float("inf"), 0.0
        for i, g in enumerate(groups):
            rs = [r for r in results if _group(r) == g and r["measured"].get(m) is not None]
            if not rs:
                continue
            x = [r["measured"][m] for r in rs]
            y = [r["forecast"][m] for r in rs]
            ax.scatter(x, y, s=10, color=plt.get_cmap("tab20")(i % 20), label=g, alpha=0.8)
            lo, hi = min(lo, *x, *y), max(hi, *x, *y)
        lo, hi = lo / 1.5, hi * 1.5
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.8", alpha=0.6,
                        label="±10 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # decade labels only (minor ones overlap on short ranges)
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"measured {label}")
        ax.set_ylabel(f"forecast {label}")
        ax.grid(alpha=0.3, which="both")
    handles, labels = [], []
    for ax in axes:  # one legend for all panels (a group may be absent from some)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 4))
    fig.suptitle("fleetcast uncalibrated forecast vs real vLLM GPU runs (one point per corpus entry)")
    fig.tight_layout(rect=(0, 0.11, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "public_gpu.json")
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="corpus folder (default calibration/public)")
    ap.add_argument("--figure", type=Path, help="also write the forecast vs measured figure (PNG)")
    ap.add_argument("--figure-from", type=Path, metavar="JSON",
                    help="only draw the figure from a results JSON this script wrote (no replay)")
    args = ap.parse_args(argv)
    if args.figure_from:
        figure(json.loads(args.figure_from.read_text())["entries"], args.figure or ROOT / "calibration" / "public" /
               "forecast-vs-measured.png")
        return 0
    results, skipped = [], []
    t0 = time.perf_counter()
    for e in discover(args.corpus):
        try:
            results.append(replay_entry(e))
        except FleetcastError as exc:
            skipped.append({"entry": e.name, "reason": str(exc)})
    wall_s = time.perf_counter() - t0
    summary = summarize(results)
    print("forecast vs measured, error % = (forecast - measured) / measured; no calibration profile\n")
    print("\n".join(table_lines(results)))
    print("\nmedian |error| % per set (one source, GPU, model and server; ✗: target missed; targets 10 on "
          "p50/p90 and batch latency, 15 on p99, 5 on tok/s)\n")
    print("\n".join(summary_lines(summary, results)))
    by_source = summarize(results, key="source")
    print("\nmedian |error| % per source (all its sets together)\n")
    head = ["source", "entries"] + [_short(m) for m in _columns(results)] + ["targets met"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for src, per in by_source.items():
        n = sum(1 for r in results if r["source"] == src)
        cells = [("–" if m not in per else f"{per[m]['median_abs_pct']:.1f}" + ("" if per[m]["met"] else " ✗"))
                 for m in _columns(results)]
        print(f"| {src} | {n} | " + " | ".join(cells) + f" | {sum(v['met'] for v in per.values())} of {len(per)} |")
    models = sorted({(r["source"], r["set"], r["replay_model"]) for r in results})
    print("\nreplay model per set:")
    for src, st, m in models:
        print(f"  {src}/{st}: {m}")
    print("\nskipped entries:" + ("" if skipped else " none"))
    for s in skipped:
        print(f"  {s['entry']}: {s['reason']}")
    groups = skipped_groups(args.corpus)
    print(f"\nleft out by the converters ({len(groups)} groups of source rows; calibration/public/*/skipped.csv):")
    for g in groups:
        what = ", ".join(str(v) for k, v in g.items() if k not in ("source", "reason") and v)
        print(f"  {g['source']}: {what}: {g['reason']}")
    print("\npublic sources not in the corpus:")
    for k, v in NOT_IN_CORPUS.items():
        print(f"  {k}: {v}")
    print(f"\n{len(results)} entries replayed in {wall_s:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    models = {f"{r['source']}/{r['set']}": {"replay_model": r["replay_model"], "replay_warnings": r["replay_warnings"]}
              for r in results}  # one per set, not repeated per entry
    entries = [{k: v for k, v in r.items() if k not in ("replay_model", "replay_warnings")} for r in results]
    rest = json.dumps({"summary": summary, "summary_by_source": by_source, "replay_models": models,
                       "skipped": skipped, "left_out_by_converters": groups, "not_in_corpus": NOT_IN_CORPUS,
                       "replay_wall_s": round(wall_s, 1)}, indent=1, default=float)
    body = ",\n".join(json.dumps(e, default=float) for e in entries)  # one entry per line
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text('{"entries": [\n' + body + "\n],\n" + rest[1:].lstrip("\n") + "\n")
    print(f"wrote {args.out}")
    if args.figure:
        figure(results, args.figure)
        print(f"wrote {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
