"""Hostile and careless inputs to ``fleetcast run``: each gets a located one-paragraph error,
exit status 2, no traceback, nothing written, and no memory or time blow-up on the way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.cli import main
from sim.cli.common import progress_bar
from sim.scenario.limits import MAX_REQUESTS, MAX_TIMESERIES_ROWS
from sim.scenario.yamlio import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES
from tests.factories import refused_run

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def test_empty_scenario_with_a_seed(tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    code, err = refused_run(capsys, tmp_path, empty, "--seed", "1")
    assert code == 2 and "empty.yaml: the scenario is empty" in err and "fleet and traffic" in err


def test_a_list_or_a_folder_is_not_a_scenario(tmp_path, capsys):
    lst = tmp_path / "list.yaml"
    lst.write_text("[1, 2]\n")
    code, err = refused_run(capsys, tmp_path, lst, "--set", "seed=3")
    assert code == 2 and "holds a list, not a mapping" in err
    code, err = refused_run(capsys, tmp_path, tmp_path)
    assert code == 2 and "is a folder; give a scenario YAML file" in err


def test_a_validator_message_is_said_without_pydantics_prefix(tmp_path, capsys):
    spec = ROOT / "scenarios" / "speculative-decoding.yaml"
    code, err = refused_run(capsys, tmp_path, spec, "--set", "fleet.0.engine.speculative.method=draft",
                            "--set", "fleet.0.engine.speculative.draft_model=null")
    assert code == 2 and "field fleet.0.engine.speculative: method draft needs draft_model" in err
    assert "Value error" not in err


def _laughs(levels: int) -> str:
    """The "billion laughs" document: level i is nine aliases of level i - 1 (9**levels values)."""
    rows = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("where", ["top", "unknown key", "policy params"])
def test_billion_laughs_is_refused_before_expansion(tmp_path, capsys, where):
    text = QUICKSTART.read_text()
    bomb = _laughs(9)  # 9**9 = 387 million values if expanded
    if where == "top":
        doc = bomb
    elif where == "unknown key":
        doc = text + "extra:\n" + "".join("  " + line + "\n" for line in bomb.splitlines())
    else:
        doc = text.replace("fleet:", "x_anchors:\n" + "".join("  " + line + "\n" for line in bomb.splitlines())
                           + "fleet:", 1)
    path = tmp_path / "bomb.yaml"
    path.write_text(doc)
    started = time.perf_counter()
    code, err = refused_run(capsys, tmp_path, path)
    assert code == 2 and f"over the limit of {MAX_YAML_VALUES:,}" in err and "bomb.yaml, line" in err
    assert time.perf_counter() - started < 30  # refused, not expanded (expansion takes minutes and GBs)


def test_deep_nesting_is_refused(tmp_path, capsys):
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 50_000 + "]" * 50_000 + "\n")  # beyond the parser's own recursion
    code, err = refused_run(capsys, tmp_path, deep)
    assert code == 2 and "nested too deeply" in err and str(MAX_YAML_DEPTH) in err
    mid = tmp_path / "mid.yaml"
    mid.write_text("a: " + "[" * (MAX_YAML_DEPTH + 10) + "]" * (MAX_YAML_DEPTH + 10) + "\n")  # parser copes
    code, err = refused_run(capsys, tmp_path, mid)
    assert code == 2 and f"nested more than {MAX_YAML_DEPTH} levels" in err and "mid.yaml, line 1" in err


def test_a_huge_file_is_refused_unread(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    with big.open("w") as fh:
        fh.write(QUICKSTART.read_text())
        fh.write(("# padding\n" * 1000) * (MAX_YAML_BYTES // 10_000 + 1))
    code, err = refused_run(capsys, tmp_path, big)
    assert code == 2 and f"at most {MAX_YAML_BYTES // 2**20} MiB" in err


def test_a_rate_beyond_memory_is_refused_with_its_line(tmp_path, capsys):
    # quickstart: 600 s; 158,680 req/s would be 95 million requests
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "traffic.arrival.rate_rps=158680")
    assert code == 2 and "field traffic.arrival.rate_rps" in err and "line 21" in err
    assert "95,208,000 requests" in err and f"{MAX_REQUESTS:,}" in err


def test_a_tiny_timeseries_interval_is_refused(tmp_path, capsys):
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "sim.timeseries_interval_s=1e-6")
    # 4 replicas x ((600 + 300) s / 1e-6 s + 1) ticks
    assert code == 2 and "field sim.timeseries_interval_s" in err and "3,600,000,004 rows" in err
    assert f"{MAX_TIMESERIES_ROWS:,}" in err


def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path, capsys):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    code = main(["run", str(QUICKSTART), "--out", str(f)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "is a file; give a folder" in err and f.read_text() == "keep me"
    code = main(["run", str(QUICKSTART), "--out", str(f / "sub")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "cannot write the results" in err and f.read_text() == "keep me"


def test_out_where_nothing_can_be_written(tmp_path, capsys):
    code = main(["run", str(QUICKSTART), "--out", "/proc/fleetcast-test/out"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "cannot write the results to /proc/fleetcast-test/out" in err and "Traceback" not in err


def test_sigterm_unwinds_like_ctrl_c(tmp_path):
    """SIGTERM mid-run: exit 143, no output folder and no hidden partial folder."""
    code = "import sys; from sim.cli import main; sys.exit(main(sys.argv[1:]))"
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(QUICKSTART), "--set", "traffic.duration_s=20000",
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        first = proc.stderr.readline()  # the range warning, printed once the scenario loaded
        assert "warning" in first, first
        time.sleep(0.5)  # now simulating (800,000 requests: many seconds)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    assert "terminated" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_nan_and_inf_are_named_as_such(tmp_path, capsys):
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "traffic.arrival.rate_rps=.nan")
    assert code == 2 and "line 21, field traffic.arrival.rate_rps: must be a finite number, got nan" in err
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "traffic.duration_s=.inf")
    assert code == 2 and "field traffic.duration_s: must be a finite number, got inf" in err


def test_a_negative_price_names_its_own_line(tmp_path, capsys):
    priced = tmp_path / "priced.yaml"
    text = QUICKSTART.read_text().rstrip("\n") + "\n"
    priced.write_text(text + "pricing:\n  h100-sxm: -3\n")
    line = text.count("\n") + 2  # the h100-sxm line
    code, err = refused_run(capsys, tmp_path, priced)
    assert code == 2 and f"line {line}, field pricing.h100-sxm: Input should be greater than or equal to 0" in err
    # set on the command line: no line (the key is not in the file), never the document's first line
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "pricing.h100-sxm=-3")
    assert code == 2 and "quickstart.yaml: field pricing.h100-sxm" in err


def test_a_boolean_is_not_a_number(tmp_path, capsys):
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "fleet.0.replicas=true")
    assert code == 2 and "line 12, field fleet.0.replicas: expected a number, got true (a boolean)" in err
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "fleet.0.tensor_parallel=true")
    assert code == 2 and "field fleet.0.tensor_parallel: expected a number, got true" in err


def test_a_class_that_can_never_fit_is_refused(tmp_path, capsys):
    # quickstart's code class: prompts uniform 200..4000 tokens, so at least 200 + 1 > 100
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "fleet.0.engine.max_model_len=100")
    assert code == 2 and "field traffic.classes.1: class 'code' can never be served" in err
    assert "(200 prompt + 1 output tokens)" in err and "h100: 100" in err


def test_rejections_are_a_warning_with_their_share(tmp_path, capsys):
    out = tmp_path / "out"
    over = ["--set", "fleet.0.engine.max_model_len=300", "--set", "traffic.duration_s=120",
            "--set", "traffic.warmup_s=10", "--set", "traffic.cooldown_s=0"]
    assert main(["run", str(QUICKSTART), "--out", str(out), *over]) == 0
    err = " ".join(capsys.readouterr().err.split())
    summary = json.loads((out / "summary.json").read_text())
    for name, c in summary["classes"].items():
        n, total = c["counts"]["rejected"], c["counts"]["total"]
        assert n > 0.5 * total  # most prompts are longer than 300 tokens
        line = f"class '{name}': {n:,} of {total:,} requests in the window ({100 * n / total:.1f}%) were rejected"
        assert line in err and any(w.startswith(line) for w in summary["warnings"])
    plain = tmp_path / "plain"
    assert main(["run", str(QUICKSTART), "--out", str(plain), *over[2:]]) == 0
    assert "warnings" not in json.loads((plain / "summary.json").read_text())


def _with_trace(tmp_path: Path, scenario: str, text: str) -> Path:
    """A copy of bundled ``scenario`` in ``tmp_path`` whose trace is ``text`` (data/t.<ext>)."""
    sc_text = (ROOT / "scenarios" / scenario).read_text()
    original = next(line.split("path:", 1)[1].strip() for line in sc_text.splitlines() if "path: data/" in line)
    name = "data/t" + Path(original).suffix
    (tmp_path / "data").mkdir()
    (tmp_path / name).write_text(text)
    sc = tmp_path / "trace.yaml"
    sc.write_text(sc_text.replace(original, name))
    return sc


def test_trace_fix_ups_are_reported(tmp_path, capsys):
    """Out-of-order rows are sorted and 0-token prompts clamped: said, not silent."""
    sc = _with_trace(tmp_path, "azure-replay.yaml",
                     "TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     "2023-11-16 18:15:50.0,100,10\n2023-11-16 18:15:46.0,100,10\n"
                     "2023-11-16 18:15:48.0,0,10\n2023-11-16 18:15:47.0,100,10\n")
    out = tmp_path / "out"
    assert main(["run", str(sc), "--set", "traffic.duration_s=20", "--set", "traffic.warmup_s=0",
                 "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    # rows at 50, 46, 48, 47 s: 46 and 47 come after a later arrival
    assert "note: t.csv: 2 request(s) listed before an earlier arrival were sorted by arrival time." in err
    assert "note: t.csv: 1 request(s) with 0 prompt tokens clamped to 1." in err


def test_progress_is_printed_as_plain_lines_when_not_a_terminal(capsys):
    with progress_bar("simulating x", enabled=False, every_s=0.0) as bar:
        bar(0, 200)
        bar(50, 200)
        bar(200, 200)  # done: no line
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[0].startswith("simulating x: 0% (0 of 200), ") and "left" not in lines[0]
    assert lines[1].startswith("simulating x: 25% (50 of 200), ") and "s left" in lines[1]
    assert len(lines) == 2
    with progress_bar("quiet", enabled=False, every_s=3600.0) as bar:  # a short run prints nothing
        bar(1, 2)
    assert capsys.readouterr().err.strip() == ""


def test_a_hash_id_beyond_64_bits_is_a_located_error(tmp_path, capsys):
    """Found by the fuzz suite (tests/fuzz_scenarios.py): an OverflowError before."""
    rows = (ROOT / "scenarios" / "data" / "mooncake-conversation-sample.jsonl").read_text().splitlines()[:50]
    rows[3] = rows[3].replace('"hash_ids": [', '"hash_ids": [99999999999999999999, ', 1)
    sc = _with_trace(tmp_path, "mooncake-prefix.yaml", "\n".join(rows) + "\n")
    code, err = refused_run(capsys, tmp_path, sc)
    assert code == 2 and "t.jsonl line 4, column 'hash_ids'" in err and "64-bit" in err


def test_tensor_parallel_beyond_one_server_is_refused(tmp_path, capsys):
    code, err = refused_run(capsys, tmp_path, QUICKSTART, "--set", "fleet.0.tensor_parallel=16")
    assert code == 2 and "field fleet.0.tensor_parallel: tensor_parallel 16 spans 16 GPUs" in err
    assert "a h100-sxm server holds 8 (catalog gpus_per_node)" in err


def test_no_command_replaces_another_commands_results(tmp_path, capsys):
    """`run`, `plan`, `compare`, `sweep` refuse a folder holding another command's results
    (or other files) unless --force; a command may replace its own earlier results."""
    short = ["--set", "traffic.duration_s=40", "--set", "traffic.warmup_s=5", "--set", "traffic.cooldown_s=0"]
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "plan.json").write_text("{}")  # a plan folder
    code = main(["run", str(QUICKSTART), "--out", str(folder), *short])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "holds the results of `fleetcast plan`" in err and "--force" in err
    assert [p.name for p in folder.iterdir()] == ["plan.json"]
    for argv in (["compare", str(QUICKSTART), "--variant", "v:fleet.0.replicas=5", "-n", "1"],
                 ["sweep", str(QUICKSTART), "--grid", "fleet.0.replicas=4", "--workers", "1"]):
        assert main([*argv, "--out", str(folder), *short]) == 2
        assert "holds the results of `fleetcast plan`" in " ".join(capsys.readouterr().err.split())
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["run", str(QUICKSTART), "--out", str(mine), *short]) == 2
    assert "holds other files (e.g. notes.txt)" in " ".join(capsys.readouterr().err.split())
    assert (mine / "notes.txt").read_text() == "keep me"
    # its own results: replaced; --force: replaced whatever they were
    run = tmp_path / "run"
    assert main(["run", str(QUICKSTART), "--out", str(run), *short]) == 0
    assert main(["run", str(QUICKSTART), "--out", str(run), *short]) == 0
    assert main(["run", str(QUICKSTART), "--out", str(folder), "--force", *short]) == 0
    assert (folder / "summary.json").is_file() and not (folder / "plan.json").exists()


def test_a_text_field_given_inf_keeps_its_own_message():
    """'-inf' in a text field that refuses it (a pattern) is no 'finite number' problem; in a number's
    bound check it is (review of stop 36: the wording applied to any error whose input read as inf)."""
    from pydantic import BaseModel, Field, ValidationError

    from sim.scenario.yamlio import format_validation_error

    class M(BaseModel):
        name: str = Field("a", pattern=r"^[a-z]+$")
        x: float = Field(1.0, le=10)

    for given, want, not_want in (({"name": "-inf"}, "should match pattern", "finite"),
                                  ({"x": "nan"}, "must be a finite number, got nan", "should match")):
        try:
            M.model_validate(given)
        except ValidationError as exc:
            msg = format_validation_error(exc, "s.yaml", {})
        assert want in msg and not_want not in msg, msg
