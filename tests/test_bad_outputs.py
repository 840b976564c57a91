"""Bad input files and unwritable output paths of ``validate``, ``calibrate`` and
``sweep``: each is a ``FleetcastError`` (one paragraph naming the file and what
would be valid, exit status 2, no traceback) and nothing is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

import calibration.validate as cval
from calibration.runs import load_run
from sim.analysis import sweep
from sim.cli import main
from sim.errors import FleetcastError
from tests.factories import scenario_dict

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RUN = ROOT / "calibration" / "runs" / "tiny-fp32" / "sweep" / "c1-p128-o64"
PROFILE = ROOT / "calibration" / "profiles" / "cpu-tiny-fp32.json"
UNWRITABLE = Path("/proc/fleetcast-test/out")  # fails for root too (chmod 0555 does not stop root)


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A copy of a committed testbed run folder (closed-loop sweep point)."""
    dst = tmp_path / "runs" / "c1-p128-o64"
    shutil.copytree(SAMPLE_RUN, dst)
    return dst


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _fails(argv: list[str], capsys, *expect: str) -> str:
    """Run the CLI; assert exit 2, one error message holding ``expect``, no traceback."""
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert rc == 2, text
    assert "Traceback" not in text and "error:" in cap.err, text
    msg = " ".join(cap.err.split())  # rich may wrap long lines
    for e in expect:
        assert e in msg, (e, msg)
    return msg


def _snapshot(path: Path):
    """What is at ``path`` (to prove a refused command wrote nothing)."""
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return sorted((str(p.relative_to(path)), p.read_bytes() if p.is_file() else None) for p in path.rglob("*"))


# --------------------------------------------------------------- run folders
def test_validate_truncated_requests_parquet_names_the_file(run_dir, tmp_path, capsys):
    _truncate(run_dir / "requests.parquet")
    out = tmp_path / "val"
    _fails(["validate", "--profile", PROFILE, run_dir, "--out", out], capsys,
           str(run_dir / "requests.parquet"), "not a readable Parquet table")
    assert not out.exists()


def test_calibrate_truncated_requests_parquet_names_the_file(run_dir, tmp_path, capsys):
    _truncate(run_dir / "requests.parquet")
    out = tmp_path / "p.json"
    _fails(["calibrate", run_dir, "--out", out], capsys, str(run_dir / "requests.parquet"),
           "not a readable Parquet table")
    assert not out.exists()


def test_truncated_timeseries_parquet_names_the_file(run_dir):
    _truncate(run_dir / "timeseries.parquet")
    with pytest.raises(FleetcastError, match="timeseries.parquet is not a readable Parquet table"):
        load_run(run_dir)


def test_requests_parquet_without_needed_columns(run_dir):
    path = run_dir / "requests.parquet"
    pd.read_parquet(path).drop(columns=["arrival_s", "status"]).to_parquet(path)
    with pytest.raises(FleetcastError) as err:
        load_run(run_dir)
    assert str(path) in str(err.value) and "arrival_s, status" in str(err.value)


@pytest.mark.parametrize("text,expect", [
    ("not json", ["could not be read as JSON"]),
    ("[1, 2]", ["must hold a JSON object"]),
    ("{}", ["model.config.hidden_size", "model.config.num_hidden_layers", "missing"]),
])
def test_validate_bad_run_json_names_the_file_and_field(run_dir, capsys, text, expect):
    (run_dir / "run.json").write_text(text)
    msg = _fails(["validate", "--profile", PROFILE, run_dir], capsys, str(run_dir / "run.json"), *expect)
    assert "None" not in msg


@pytest.mark.parametrize("edit,expect", [
    (lambda m: m["kv_cache"].pop("num_blocks"), "field kv_cache.num_blocks is missing"),
    (lambda m: m["kv_cache"].update(num_blocks="many"), "field kv_cache.num_blocks must be an integer"),
    (lambda m: m["engine_args"].update(max_num_seqs=-3), "field engine_args.max_num_seqs must be an integer >= 1"),
    (lambda m: m.update(model="tiny"), "field model must be a JSON object"),
    (lambda m: m["model"]["config"].update(hidden_size=7), "hidden_size 7"),
    (lambda m: m["sweep_point"].pop("output_tokens"), "field sweep_point.output_tokens is missing"),
    (lambda m: m.update(mode="sideways"), "field mode must be 'open' or 'closed'"),
])
def test_run_json_field_errors_are_located(run_dir, edit, expect):
    meta = json.loads((run_dir / "run.json").read_text())
    edit(meta)
    (run_dir / "run.json").write_text(json.dumps(meta))
    with pytest.raises(FleetcastError) as err:
        load_run(run_dir)
    assert str(run_dir / "run.json") in str(err.value) and expect in str(err.value)


def test_unchanged_run_folder_still_loads(run_dir):
    ref, run = load_run(SAMPLE_RUN), load_run(run_dir)
    assert run.engine == ref.engine and run.model == ref.model == "testbed-tiny" and run.mode == "closed"
    assert run.requests.equals(ref.requests) and (run.workload.output_tokens == 64).all()


# ------------------------------------------------------- validate / calibrate --out
def test_validate_out_is_a_file_refused_before_any_work(run_dir, tmp_path, capsys):
    _truncate(run_dir / "requests.parquet")  # a run error would come later: the --out check is first
    out = tmp_path / "afile"
    out.write_text("keep me")
    _fails(["validate", "--profile", PROFILE, run_dir, "--out", out], capsys,
           f"--out {out} is a file", "give a folder")
    assert out.read_text() == "keep me"


def test_validate_out_below_a_file_is_refused(run_dir, tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me")
    out = tmp_path / "afile" / "sub"
    _fails(["validate", "--profile", PROFILE, run_dir, "--out", out], capsys,
           "cannot write the validation outputs", str(out), "is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "keep me"


def test_validate_out_unwritable_is_refused(run_dir, capsys):
    _fails(["validate", "--profile", PROFILE, run_dir, "--out", UNWRITABLE], capsys,
           "cannot write the validation outputs", str(UNWRITABLE), "choose a folder you can write")
    assert not UNWRITABLE.exists()


def test_calibrate_out_is_a_folder_refused(run_dir, tmp_path, capsys):
    out = tmp_path / "profiles"
    out.mkdir()
    (out / "other.json").write_text("{}")
    before = _snapshot(out)
    _fails(["calibrate", run_dir, "--out", out], capsys, f"--out {out} is a folder", "NAME.json")
    assert _snapshot(out) == before


def test_calibrate_out_unwritable_is_refused(run_dir, capsys):
    out = UNWRITABLE / "p.json"
    _fails(["calibrate", run_dir, "--out", out], capsys, "cannot write the profile JSON", str(out),
           "choose a folder you can write")
    _fails(["calibrate", "--splitwise", "h100-80gb", "--out", out], capsys, "cannot write the profile JSON")
    assert not UNWRITABLE.exists()


@pytest.fixture(scope="module")
def comparison():
    """One validated sample run (simulated once for the write_outputs tests)."""
    return cval.validate_run(load_run(SAMPLE_RUN), PROFILE)


def test_write_outputs_moves_a_complete_set_in(comparison, tmp_path):
    out = tmp_path / "val"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cval.write_outputs([comparison], cval.error_table([comparison]), out, "p")
    names = sorted(p.name for p in out.iterdir())
    assert {"errors.csv", "errors.json", "index.html", "notes.txt"} <= set(names)
    assert sum(n.endswith(".png") for n in names) == 2 and not [n for n in names if n.startswith(".")]


def test_write_outputs_failure_leaves_nothing(comparison, tmp_path, monkeypatch):
    def no_space(c, out):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cval, "_figures", no_space)
    out = tmp_path / "val"
    with pytest.raises(FleetcastError, match=f"cannot write the validation outputs to {out}: No space left"):
        cval.write_outputs([comparison], cval.error_table([comparison]), out, "p")
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FleetcastError):
        cval.write_outputs([comparison], cval.error_table([comparison]), out, "p")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# ------------------------------------------------------------------ sweep --out
@pytest.fixture
def scenario_path(tmp_path):
    data = scenario_dict(traffic={
        "duration_s": 4, "warmup_s": 1, "arrival": {"process": "poisson", "rate_rps": 2},
        "classes": [{"name": "chat", "prompt_tokens": {"dist": "uniform", "min": 16, "max": 400},
                     "output_tokens": {"dist": "uniform", "min": 1, "max": 50}}]})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def no_simulation(monkeypatch):
    def boom(*a):
        raise AssertionError("a point was simulated")

    monkeypatch.setattr(sweep, "evaluate_point", boom)


def test_sweep_out_is_a_file_refused_before_any_simulation(scenario_path, tmp_path, capsys, no_simulation):
    out = tmp_path / "afile"
    out.write_text("keep me")
    _fails(["sweep", scenario_path, "--grid", "fleet.0.replicas=1,2", "--workers", "1", "--out", out], capsys,
           f"--out {out} is a file", "give a folder")
    assert out.read_text() == "keep me"


def test_sweep_out_unwritable_is_refused(scenario_path, capsys, no_simulation):
    _fails(["sweep", scenario_path, "--grid", "fleet.0.replicas=1", "--workers", "1", "--out", UNWRITABLE], capsys,
           "cannot write sweep results", str(UNWRITABLE), "choose a folder you can write")
    assert not UNWRITABLE.exists()


def test_sweep_corrupt_earlier_results_refused(scenario_path, tmp_path, capsys, no_simulation):
    out = tmp_path / "o"
    out.mkdir()
    (out / sweep.SWEEP_FILE).write_bytes(b"PAR1 half a file")
    before = _snapshot(out)
    _fails(["sweep", scenario_path, "--grid", "fleet.0.replicas=1", "--workers", "1", "--out", out], capsys,
           str(out / sweep.SWEEP_FILE), "not a readable Parquet table", "delete it")
    assert _snapshot(out) == before


def test_sweep_with_no_valid_point_exits_2_and_writes_nothing(scenario_path, tmp_path, capsys):
    """A refusal writes nothing (issue 26): no sweep.parquet of invalid rows, no folder."""
    out = tmp_path / "o"
    _fails(["sweep", scenario_path, "--grid", "fleet.0.gpu=nope,nada", "--workers", "1", "--out", out], capsys,
           "none of the 2 sweep point(s) is valid", "fleet.0.gpu=nope", "unknown GPU 'nope'", "nothing was written")
    assert not out.exists()
    # a re-run says the same
    _fails(["sweep", scenario_path, "--grid", "fleet.0.gpu=nope,nada", "--workers", "1", "--out", out], capsys,
           "none of the 2 sweep point(s) is valid")
