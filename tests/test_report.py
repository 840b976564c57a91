"""fleetcast report: HTML / PDF / XLSX from plan and run folders."""

from __future__ import annotations

import argparse
import json
import re
from html import escape
from pathlib import Path

import pytest

from sim.errors import FleetcastError
from sim.report.build import build_report, parse_formats
from sim.report.assumptions import UNCALIBRATED, collect_assumptions
from sim.report.chromium import find_chromium, run_chromium
from sim.report.figures import pareto_front
from sim.report.html_page import SECTION_IDS
from tests.test_report_fixtures import IMPOSSIBLE_SLO, build_plan_folder, build_run_folder

FIGURE_IDS = ("fig-latency", "fig-load", "fig-utilization", "fig-pareto", "fig-growth")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("results")
    return {"plan": build_plan_folder(base / "plan"),
            "none": build_plan_folder(base / "none-met", IMPOSSIBLE_SLO),
            "run": build_run_folder(base / "run")}


@pytest.fixture(scope="module")
def plan_report(folders, tmp_path_factory) -> dict[str, Path]:
    return build_report(folders["plan"], ["html", "pdf", "xlsx"], tmp_path_factory.mktemp("report"))


def _pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def test_plan_html_has_every_section_and_figure(plan_report, folders):
    html = plan_report["html"].read_text(encoding="utf-8")
    for sid in (*SECTION_IDS, *FIGURE_IDS):
        assert f'id="{sid}"' in html, sid
    assert html.count("<svg") >= len(FIGURE_IDS)
    plan = json.loads((folders["plan"] / "plan.json").read_text())
    rec = next(c for c in plan["candidates"] if c["id"] == plan["recommended"])
    assert "We recommend" in html and rec["label"] in html
    assert UNCALIBRATED in html  # the fixture runs on default coefficients
    # self-contained: no external resources of any kind
    assert not re.search(r'(src|href)="(?!#)', html)
    assert "http://" not in html.replace("http://www.w3.org", "")
    for c in plan["candidates"]:
        if c["reason"]:
            assert escape(c["reason"][:40]) in html


def test_html_renders_in_chromium(plan_report, tmp_path):
    if find_chromium() is None:
        pytest.skip("chromium not installed (CI: apt-get install -y chromium); screenshot test skipped")
    from PIL import Image

    png = tmp_path / "shot.png"
    run_chromium(plan_report["html"], f"--screenshot={png}", "--window-size=1280,2400")
    img = Image.open(png).convert("RGB")
    assert img.size == (1280, 2400)
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200  # text, tables, figures: not a blank page
    gray = img.convert("L")
    hist = gray.histogram()
    n = sum(hist)
    mean = sum(i * h for i, h in enumerate(hist)) / n
    var = sum(h * (i - mean) ** 2 for i, h in enumerate(hist)) / n
    assert var > 100


def test_xlsx_sheets_and_rows(plan_report, folders):
    import openpyxl
    import pandas as pd

    wb = openpyxl.load_workbook(plan_report["xlsx"])
    assert wb.sheetnames == ["Summary", "Candidates", "Points", "Assumptions"]
    plan = json.loads((folders["plan"] / "plan.json").read_text())
    points = pd.read_parquet(folders["plan"] / "points.parquet")
    assert wb["Candidates"].max_row == 1 + len(plan["candidates"])
    assert wb["Points"].max_row == 1 + len(points)
    assert wb["Summary"]["A1"].value.startswith("Recommended:")
    header = [c.value for c in wb["Candidates"][1]]
    row = dict(zip(header, [c.value for c in wb["Candidates"][2]]))
    assert row["recommended"] is True and row["usd_per_month"] == pytest.approx(plan["candidates"][0]["usd_per_month"])
    kinds = {r[0] for r in wb["Assumptions"].iter_rows(min_row=2, values_only=True)}
    assert {"gpu", "model", "weights", "kv_cache", "profile"} <= kinds


def test_pdf_is_a_pdf_with_pages(plan_report):
    pdf = plan_report["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert _pages(pdf) >= 3


def test_pdf_matplotlib_fallback(folders, tmp_path):
    out = build_report(folders["plan"], ["pdf"], tmp_path, pdf_engine="matplotlib")
    pdf = out["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert _pages(pdf) >= 1 + len(FIGURE_IDS)  # text page(s) + one page per figure


def test_run_folder_report(folders, tmp_path):
    out = build_report(folders["run"], ["html", "xlsx"], tmp_path)
    html = out["html"].read_text(encoding="utf-8")
    assert "one simulated fleet" in html and "Simulated fleet:" in html
    assert 'id="fig-latency"' in html and 'id="fig-utilization"' in html
    assert 'id="fig-pareto"' not in html  # one candidate: nothing to compare
    assert "fleetcast run" in html  # reproduce command
    import openpyxl

    wb = openpyxl.load_workbook(out["xlsx"])
    assert wb["Candidates"].max_row == 2 and wb["Points"].max_row == 2


def test_no_candidate_met_says_so_and_why(folders, tmp_path):
    out = build_report(folders["none"], ["html", "xlsx"], tmp_path)
    html = out["html"].read_text(encoding="utf-8")
    assert "No fleet met the SLO" in html and "None of the 5 fleet configurations" in html
    plan = json.loads((folders["none"] / "plan.json").read_text())
    assert plan["recommended"] is None
    for c in plan["candidates"]:
        assert c["reason"] and escape(c["reason"][:30]) in html
    assert "We recommend" not in html
    import openpyxl

    assert openpyxl.load_workbook(out["xlsx"])["Summary"]["A1"].value.startswith("No fleet met the SLO")


def test_deterministic_html(folders, tmp_path):
    a = build_report(folders["plan"], ["html"], tmp_path / "a")["html"].read_bytes()
    b = build_report(folders["plan"], ["html"], tmp_path / "b")["html"].read_bytes()
    assert a == b
    assert b"Date" not in a.split(b"<svg", 1)[1][:2000]


def test_writes_atomically_no_temp_files(folders, tmp_path):
    build_report(folders["run"], ["html", "xlsx"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.xlsx"]


@pytest.mark.parametrize("make", ["missing", "empty", "file", "bad-plan"])
def test_bad_results_path(tmp_path, make):
    target = tmp_path / "results"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    elif make == "bad-plan":
        target.mkdir()
        (target / "plan.json").write_text('{"kind": "sweep"}')
    with pytest.raises(FleetcastError, match="plan"):
        build_report(target, ["html"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_register_and_errors(folders, tmp_path, capsys):
    from sim.cli.report import register

    parser = argparse.ArgumentParser(prog="fleetcast")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", str(folders["run"]), "--format", "html", "--out", str(tmp_path)])
    assert args.func(args) == 0 and (tmp_path / "report.html").is_file()
    bad = parser.parse_args(["report", str(tmp_path / "nope")])
    with pytest.raises(FleetcastError) as exc:
        bad.func(bad)
    assert exc.value.exit_code == 2


def test_parse_formats():
    assert parse_formats("html, PDF,html") == ("html", "pdf")
    with pytest.raises(FleetcastError, match="html"):
        parse_formats("docx")


def test_validated_profile_is_shown(tmp_path):
    profile = tmp_path / "h100.json"
    profile.write_text(json.dumps({"name": "h100-vllm", "coefficients": {"e_memory": 0.8},
                                   "validation": {"ttft_p99_rel_err": 0.07, "tpot_p50_rel_err": 0.03}}))
    plan = {"scenario": {"path": str(tmp_path / "s.yaml")}, "candidates": [],
            "profiles": {"a": "profile h100-vllm (h100.json)", "b": "fleetcast defaults: published figures"}}
    scenario = {"fleet": [{"name": "a", "gpu": "h100-sxm", "model": "llama-3.1-8b", "profile": "h100.json"},
                          {"name": "b", "gpu": "l4", "model": "llama-3.1-8b"}]}
    a = collect_assumptions(plan, scenario)
    by_pool = {p.pool: p for p in a.profiles}
    assert by_pool["a"].calibrated and by_pool["a"].validation["ttft_p99_rel_err"] == 0.07
    assert not by_pool["b"].calibrated and by_pool["b"].note == UNCALIBRATED
    assert {r.name for r in a.catalog if r.kind == "gpu"} == {"h100-sxm", "l4"}
    assert all(r.source for r in a.catalog)


def test_pareto_front():
    pts = [(1.0, 10.0), (2.0, 5.0), (3.0, 6.0), (4.0, 1.0), (0.5, 20.0)]
    assert pareto_front(pts) == [(0.5, 20.0), (1.0, 10.0), (2.0, 5.0), (4.0, 1.0)]
