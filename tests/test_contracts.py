"""The results contracts (sim/analysis/contracts): writing a document through its model
gives the bytes the dict gave; a producer's typo fails; old files (no schema_version) are
read as version 1; a file that does not fit is a located error, exit 2, no traceback; the
output reference in docs/design.md is the generator's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sim.analysis.contracts import (SCHEMA_VERSION, CompareDoc, PlanDoc, RunSummary, SweepPoint, contract_json,
                                    read_contract)
from sim.analysis.contracts.plan import Timeline
from sim.analysis.forecast import forecast
from sim.cli import main
from sim.errors import FleetcastError
from sim.report.load import load_results
from sim.report.output_reference import BEGIN, END, output_reference
from tests.factories import make_scenario, scenario_dict

ROOT = Path(__file__).resolve().parents[1]


def _as_written(doc: dict) -> str:
    """What fleetcast wrote before the contracts: the dict, json.dumps(indent=2) + newline."""
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


@pytest.fixture(scope="module")
def summaries() -> dict[str, dict]:
    """Summaries of small runs: fixed pool, autoscaled pool, disaggregated pools."""
    fixed = make_scenario(traffic={"classes": [
        {"name": "chat", "share": 0.6, "prompt_tokens": {"dist": "uniform", "min": 16, "max": 1500},
         "output_tokens": {"dist": "uniform", "min": 1, "max": 300}, "slo": {"ttft_s": {"p99": 1.0}}},
        {"name": "batch", "share": 0.4, "prompt_tokens": {"dist": "fixed", "value": 200},
         "output_tokens": {"dist": "fixed", "value": 20}}]})
    scaled = make_scenario(pool={"replicas": 1, "autoscale": {
        "min_replicas": 1, "max_replicas": 3, "policy": "queue-length", "target": 2, "sync_period_s": 5,
        "metric_window_s": 5, "cold_start": {"provision_s": 5, "load_bandwidth_bytes_s": 2.0e9}}},
        traffic={"duration_s": 60, "arrival": {"process": "poisson", "rate_rps": 20}})
    split = make_scenario(fleet=[
        {"name": "pre", "gpu": "h100-sxm", "replicas": 1, "model": "llama-3.1-8b", "role": "prefill",
         "engine": {"max_model_len": 8192}},
        {"name": "dec", "gpu": "h100-sxm", "replicas": 1, "model": "llama-3.1-8b", "role": "decode",
         "engine": {"max_model_len": 8192}}], kv_transfer={"link": "ib-ndr-400g", "overlap": "none"})
    return {name: forecast(sc)[1] for name, sc in (("fixed", fixed), ("autoscaled", scaled), ("split", split))}


@pytest.mark.parametrize("kind", ["fixed", "autoscaled", "split"])
def test_summary_written_through_its_model_is_the_dict(summaries, kind):
    s = summaries[kind]
    assert (kind == "autoscaled") == ("autoscale" in s) and (kind == "split") == ("disaggregated" in s)
    assert contract_json(RunSummary.model_validate(s)) == _as_written(s)
    versioned = {**s, "schema_version": SCHEMA_VERSION}
    assert contract_json(RunSummary.model_validate(versioned)) == _as_written(versioned)


def test_a_whole_count_stays_an_int_and_a_mean_a_float(summaries):
    """A fixed pool's replicas are an int ("1"), an autoscaled pool's mean a float: the
    model must not turn one into the other (the bytes would change)."""
    fixed = RunSummary.model_validate(summaries["fixed"]).cost.pools["p"].replicas
    scaled = RunSummary.model_validate(summaries["autoscaled"]).cost.pools["p"].replicas
    assert type(fixed) is int and fixed == 1
    assert type(scaled) is float


def test_a_producer_typo_fails_validation(summaries):
    s = json.loads(json.dumps(summaries["fixed"]))
    s["overall"]["ttft_s"]["p99_9"] = s["overall"]["ttft_s"].pop("p99.9")  # a misspelt key
    with pytest.raises(Exception, match="p99_9"):
        RunSummary.model_validate(s)
    s = json.loads(json.dumps(summaries["fixed"]))
    s["cost"]["usd_per_mnth"] = 1.0
    with pytest.raises(Exception, match="usd_per_mnth"):
        RunSummary.model_validate(s)


def test_a_skipped_timeline_keeps_its_key_order():
    for doc in ({"skipped": "too many requests", "rows": []},
                {"bin_s": 3600.0, "unit": "hour", "duration_s": 7200.0, "replicas": 2, "attainment_pct": 99.5,
                 "slo_met": True, "rows": [{"start_s": 0.0, "end_s": 3600.0, "requests": 10,
                                            "attainment_pct": 100.0, "p99_ttft_s": 0.2, "in_window": True}],
                 "skipped": None}):
        assert contract_json(Timeline.model_validate(doc)) == _as_written(doc)


def test_compare_doc_round_trip():
    doc = {"scenario": {"name": "s", "path": "s.yaml"}, "base_seed": 3, "replications": 2, "seeds": [3, 4],
           "variants": {"baseline": [], "v": ["seed=1"]}, "runs": {"baseline": [], "v": ["seed=1"]},
           "stress": [], "classes": ["chat", "all"], "requests_per_run": {"baseline": [5, 6], "v": [5, 7]},
           "note": None, "confidence": 0.95, "method": "paired t",
           "metrics": {"ttft_p99_s": {"label": "p99 TTFT", "lower_is_better": True}},
           "rows": [{"variant": "v", "class": "chat", "metric": "ttft_p99_s", "n": 2, "baseline_mean": 1.0,
                     "variant_mean": 0.5, "diff_mean": -0.5, "diff_sd": 0.1, "diff_rel_pct": -50.0, "ci_low": -1.4,
                     "ci_high": 0.4, "significant": False, "direction": "better"}],
           "schema_version": 1}
    assert contract_json(CompareDoc.model_validate(doc)) == _as_written(doc)
    assert CompareDoc.model_validate(doc).rows[0].class_ == "chat"


def test_sweep_point_keeps_grid_and_class_columns_aside():
    row = {"point_key": "ab12", "fleet.0.replicas": 2, "status": "ok", "error": None, "slo_met": True,
           "attainment_pct": 99.0, "chat.slo_met": True, "chat.p99_ttft_s": 0.3, "wall_s": 0.5}
    point, open_cols = SweepPoint.split(row, ["fleet.0.replicas"])
    assert point.slo_met is True and point.attainment_pct == 99.0
    assert open_cols == {"fleet.0.replicas": 2, "chat.slo_met": True, "chat.p99_ttft_s": 0.3}
    with pytest.raises(Exception, match="slo_mett"):
        SweepPoint.split({**row, "slo_mett": True}, ["fleet.0.replicas"])


# ---------------------------------------------------------------- reading folders
@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("contracts")
    data = scenario_dict()
    data["traffic"]["classes"][0]["slo"] = {"ttft_s": {"p99": 1.0}}
    (base / "s.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(base / "s.yaml"), "--out", str(base / "run")]) == 0
    return base / "run"


def _copy(folder: Path, dest: Path, edit) -> Path:
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    doc = json.loads((dest / "summary.json").read_text())
    edit(doc)
    (dest / "summary.json").write_text(json.dumps(doc, indent=2))
    return dest


def test_a_run_folder_carries_schema_version_and_reads_typed(run_folder):
    doc = json.loads((run_folder / "summary.json").read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and list(doc)[-1] == "schema_version"
    inp = load_results(run_folder)
    assert isinstance(inp.run.summary, RunSummary) and isinstance(inp.doc, PlanDoc)
    assert inp.run.summary.classes["chat"].ttft_s.p99 == doc["classes"]["chat"]["ttft_s"]["p99"]
    assert inp.doc.candidates[0].usd_per_month == doc["cost"]["usd_per_month"]


def test_an_old_folder_without_schema_version_is_read_as_version_1(run_folder, tmp_path):
    old = _copy(run_folder, tmp_path / "old", lambda d: d.pop("schema_version"))
    inp = load_results(old)
    assert inp.run.summary.schema_version == 1


def test_a_summary_from_before_kv_capacity_and_completion_span_is_read(run_folder, tmp_path):
    """The first summaries (before 2026-11-26) had no kv_capacity, completion_span_s or window_*_per_s."""
    def first_format(d):
        d.pop("schema_version")
        d.pop("kv_capacity")
        for g in [d["overall"], *d["classes"].values()]:
            for k in ("completion_span_s", "window_requests_per_s", "window_output_tokens_per_s",
                      "window_total_tokens_per_s"):
                g.pop(k)
    inp = load_results(_copy(run_folder, tmp_path / "first", first_format))
    assert inp.run.summary.kv_capacity == {} and inp.run.summary.overall.completion_span_s is None


def test_a_file_that_does_not_fit_names_file_and_field(run_folder, tmp_path, capsys):
    def bad(d):
        d["classes"]["chat"]["ttft_s"]["p99"] = "fast"
    folder = _copy(run_folder, tmp_path / "bad", bad)
    with pytest.raises(FleetcastError) as err:
        load_results(folder)
    msg = str(err.value)
    assert str(folder / "summary.json") in msg and "classes.chat.ttft_s.p99" in msg and "number" in msg
    code = main(["report", str(folder), "--format", "html", "--out", str(tmp_path / "rep")])
    out = capsys.readouterr()
    assert code == 2 and "Traceback" not in out.err and "classes.chat.ttft_s.p99" in out.err
    assert not (tmp_path / "rep").exists()


def test_a_missing_key_and_a_newer_version_are_refused(run_folder, tmp_path):
    folder = _copy(run_folder, tmp_path / "missing", lambda d: d["cost"].pop("usd_per_month"))
    with pytest.raises(FleetcastError, match=r"field cost\.usd_per_month: Field required"):
        load_results(folder)
    newer = _copy(run_folder, tmp_path / "newer", lambda d: d.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(FleetcastError, match="newer fleetcast"):
        read_contract(RunSummary, newer / "summary.json", "run summary")


def test_a_plan_file_that_is_not_a_plan_is_refused(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"kind": "plan", "candidates": "none"}))
    with pytest.raises(FleetcastError, match=r"plan\.json.*field candidates"):
        load_results(tmp_path)


# ---------------------------------------------------------------- the reference
def test_design_output_reference_is_in_sync():
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    committed = text.split(BEGIN + "\n", 1)[1].split(END, 1)[0]
    assert committed == "\n" + output_reference() + "\n", \
        "run: python -m sim.report.output_reference docs/design.md"


def test_reference_lists_every_key_written(summaries):
    """Every key of a real summary appears in the generated reference."""
    ref = output_reference()

    def keys(x, out):
        if isinstance(x, dict):
            for k, v in x.items():
                out.add(k)
                keys(v, out)
        elif isinstance(x, list):
            for v in x:
                keys(v, out)
        return out
    open_maps = {"chat", "batch", "p", "pre", "dec", "ttft_s:p99"}  # class, pool and SLO-item names
    missing = {k for s in summaries.values() for k in keys(s, set())} - open_maps
    missing = {k for k in missing if f"| `{k}` |" not in ref}
    assert not missing, missing
