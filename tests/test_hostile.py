"""The hostile corpus of issue 26, as tests: every case that broke the contract then (a
traceback, a refusal that wrote files, a silently accepted input, a run over 60 s or out of
memory) now gets a located one-paragraph error, exit status 2, no traceback and nothing
written. Each case runs in-process (the CLI's ``main``); the few that need a real process
(a signal, what ``--help`` imports) are marked ``slow``.

``_refused`` checks "nothing written" by comparing every path under the test's folder (and the
default output folders, since it runs there) before and after the command.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

import sim.report.build as build
from calibration.cli import partial_run_note
from sim import outpaths
from sim.analysis import sweep as sweep_mod
from sim.cli import COMMAND_TABLE, build_parser, main
from sim.errors import closest_name
from sim.infiles import MAX_YAML_DEPTH, MAX_YAML_VALUES
from sim.scenario.spec import load_scenario
from tests.factories import scenario_dict

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
PLAN = ROOT / "scenarios" / "plan-example.yaml"
DEEP = "[" * 10_000 + "]" * 10_000
LAUGHS = ("{a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
          "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
          "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
          "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}")  # 9**7 = 4.8 million values if expanded


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _refused(tmp_path: Path, monkeypatch, capsys, argv: list, *expect: str) -> str:
    """Run ``fleetcast ARGV`` in ``tmp_path``: exit 2, "error:" and each of ``expect`` in
    stderr, no traceback, not one path created or removed under ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    cap = capsys.readouterr()
    err = " ".join(cap.err.split())
    assert code == 2, (code, cap.out[-500:], err)
    assert "Traceback" not in cap.err and "error:" in err, err
    for e in expect:
        assert e in err, (e, err)
    assert _tree(tmp_path) == before, f"a refusal wrote files: {sorted(_tree(tmp_path) ^ before)}"
    return err


def _write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _small(tmp_path: Path, **over) -> Path:
    return _write(tmp_path, "s.yaml", scenario_dict(**over))


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A real (small) run folder for the report cases."""
    folder = tmp_path_factory.mktemp("run")
    scen = folder / "s.yaml"
    scen.write_text(yaml.safe_dump(scenario_dict()))
    assert main(["run", str(scen), "--out", str(folder / "r")]) == 0
    return folder / "r"


# ------------------------------------------------------------------ tracebacks (13)
def test_nul_byte_in_the_yaml(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, "s.yaml", QUICKSTART.read_text().replace("seed: 42", "seed: 4\x002"))
    _refused(tmp_path, monkeypatch, capsys, ["run", path], "s.yaml", "not valid YAML", "control character",
             "#x0000")


def test_profile_pointing_at_a_binary_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "prof.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10)
    data = scenario_dict()
    data["fleet"][0]["profile"] = "prof.json"
    path = _write(tmp_path, "s.yaml", data)
    _refused(tmp_path, monkeypatch, capsys, ["run", path], "field fleet.0.profile", "not UTF-8 text",
             "binary file")


@pytest.mark.parametrize("out", ["x" * 300, "/".join(["y" * 200] * 25)], ids=["300-char name", "25 components"])
def test_out_names_too_long(tmp_path, monkeypatch, capsys, out):
    _refused(tmp_path, monkeypatch, capsys, ["run", _small(tmp_path), "--out", tmp_path / out],
             "cannot write the results to")


@pytest.mark.parametrize("argv", [
    ["run", "{s}", "--set", f"fleet.0.replicas={DEEP}"],
    ["sweep", "{s}", "--grid", f"fleet.0.replicas={DEEP}"],
    ["compare", "{s}", "--variant", f"v:fleet.0.replicas={DEEP}"],
], ids=["--set", "--grid", "--variant"])
def test_values_nested_10000_deep(tmp_path, monkeypatch, capsys, argv):
    s = _small(tmp_path)
    err = _refused(tmp_path, monkeypatch, capsys, [a.replace("{s}", str(s)) for a in argv],
                   "fleet.0.replicas")
    assert "nested" in err and str(MAX_YAML_DEPTH) in err


def test_trace_path_proc_self_mem(tmp_path, monkeypatch, capsys):
    data = scenario_dict()
    data["traffic"]["arrival"] = {"process": "trace", "path": "/proc/self/mem", "format": "csv"}
    _refused(tmp_path, monkeypatch, capsys, ["run", _write(tmp_path, "s.yaml", data)], "traffic.arrival.path",
             "/mem: Input/output error")


def test_calibrate_max_nfev_negative(tmp_path, monkeypatch, capsys):
    _refused(tmp_path, monkeypatch, capsys, ["calibrate", tmp_path, "--out", tmp_path / "p.json",
                                             "--max-nfev", "-1"], "--max-nfev", "from 1 to")


@pytest.mark.parametrize("where", ["/proc/x", "under a file"])
def test_report_out_unwritable(tmp_path, monkeypatch, capsys, run_folder, where):
    out = "/proc/x" if where == "/proc/x" else tmp_path / "f" / "rep"
    if where == "under a file":
        (tmp_path / "f").write_text("a file")
    _refused(tmp_path, monkeypatch, capsys, ["report", run_folder, "--format", "html", "--out", out],
             "cannot write the report to")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["full disk", "read-only"])
def test_report_write_fails_leaves_nothing(tmp_path, monkeypatch, capsys, run_folder, code):
    """A write that fails (simulated: the write itself raises) is a message and no folder left."""
    real_fdopen = os.fdopen

    class Failing:
        def __init__(self, fd):
            self.fh = real_fdopen(fd, "wb")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(code, os.strerror(code))

    monkeypatch.setattr(build.os, "fdopen", lambda fd, mode: Failing(fd))
    _refused(tmp_path, monkeypatch, capsys, ["report", run_folder, "--format", "html,xlsx", "--out",
                                             tmp_path / "rep"], "cannot write the report to", os.strerror(code))


# ------------------------------------------------------------------ over 60 s, out of memory (7)
def test_100k_diurnal_rate_points(tmp_path, monkeypatch, capsys):
    data = scenario_dict()
    data["traffic"]["arrival"] = {"process": "diurnal", "day_length_s": 3600,
                                  "rate_points": [[round(i * 24 / 100_000, 6), 1.0] for i in range(100_000)]}
    started = time.process_time()
    err = _refused(tmp_path, monkeypatch, capsys, ["run", _write(tmp_path, "s.yaml", data)],
                   f"over the limit of {MAX_YAML_VALUES:,}")
    assert "aliases" not in err  # the file has none (the old message blamed them)
    assert time.process_time() - started < 30  # was 27 s of parsing, then a refusal (not a benchmark)


def test_day_length_a_millisecond(tmp_path, monkeypatch, capsys):
    data = scenario_dict()
    data["traffic"]["arrival"] = {"process": "diurnal", "day_length_s": 0.001, "rate_points": [[0, 1.0], [12, 2.0]]}
    _refused(tmp_path, monkeypatch, capsys, ["run", _write(tmp_path, "s.yaml", data)],
             "field traffic.arrival.day_length_s", "MAX_TIMELINE_BINS")


@pytest.mark.parametrize("argv", [
    ["run", "{s}", "--set", f"description={LAUGHS}"],
    ["sweep", "{s}", "--grid", f"description={LAUGHS}"],
], ids=["--set", "--grid"])
def test_billion_laughs_in_a_value(tmp_path, monkeypatch, capsys, argv):
    s = _small(tmp_path)
    _refused(tmp_path, monkeypatch, capsys, [a.replace("{s}", str(s)) for a in argv],
             f"over the limit of {MAX_YAML_VALUES:,}", "aliases")


def test_grid_of_four_million_points(tmp_path, monkeypatch, capsys):
    values = ",".join(str(i) for i in range(1, 2001))
    _refused(tmp_path, monkeypatch, capsys, ["sweep", _small(tmp_path), "--grid", f"fleet.0.replicas={values}",
                                             "--grid", f"seed={values}"], "4,000,000 points", "MAX_GRID_POINTS")


def test_compare_a_million_replications(tmp_path, monkeypatch, capsys):
    _refused(tmp_path, monkeypatch, capsys, ["compare", _small(tmp_path), "--variant", "v:seed=1", "-n", "1000000"],
             "--replications", "MAX_REPLICATIONS")


def test_catalog_dev_zero(tmp_path, monkeypatch, capsys):
    _refused(tmp_path, monkeypatch, capsys, ["run", _small(tmp_path, catalog=["/dev/zero"])],
             "/dev/zero", "not a regular file")


# ------------------------------------------------------------------ silently accepted (10)
@pytest.mark.parametrize("command", ["run", "plan"])
def test_timeseries_interval_infinite(tmp_path, monkeypatch, capsys, command):
    _refused(tmp_path, monkeypatch, capsys, [command, PLAN, "--set", "sim.timeseries_interval_s=.inf"],
             "field sim.timeseries_interval_s", "one sample")


def test_duplicate_key(tmp_path, monkeypatch, capsys):
    text = QUICKSTART.read_text().replace("    replicas: 4\n", "    replicas: 4\n    replicas: 400\n")
    first = text.splitlines().index("    replicas: 4") + 1
    _refused(tmp_path, monkeypatch, capsys, ["run", _write(tmp_path, "s.yaml", text)],
             "key 'replicas' is given twice", f"lines {first} and {first + 1}")


@pytest.mark.parametrize("setting, expect", [
    ("plan.candidates.data_parallel=[-1]", "plan.candidates.data_parallel.0"),
    ("plan.pool=5", "plan.pool is 5, but the fleet has 1 pool(s)"),
    ("plan.candidates.gpu=[]", "field plan.candidates.gpu: an empty list"),
    ("plan.candidates.gpu=[h200-sxm]", "Did you mean 'h200'?"),
])
def test_run_validates_the_plan_section_it_carries(tmp_path, monkeypatch, capsys, setting, expect):
    _refused(tmp_path, monkeypatch, capsys, ["run", PLAN, "--set", setting], expect)


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_sweep_workers_out_of_range(tmp_path, monkeypatch, capsys, workers):
    _refused(tmp_path, monkeypatch, capsys, ["sweep", _small(tmp_path), "--grid", "fleet.0.replicas=1,2",
                                             "--workers", workers], "--workers", "from 1 to")


def test_report_on_an_empty_summary(tmp_path, monkeypatch, capsys, run_folder):
    bad = tmp_path / "bad"
    shutil.copytree(run_folder, bad)
    (bad / "summary.json").write_text("{}")
    _refused(tmp_path, monkeypatch, capsys, ["report", bad, "--format", "html", "--out", tmp_path / "rep"],
             "summary.json", "does not fit the run summary", "Field required")


def test_report_on_a_bomb_scenario(tmp_path, monkeypatch, capsys, run_folder):
    bad = tmp_path / "bad"
    shutil.copytree(run_folder, bad)
    (bad / "scenario.yaml").write_text(f"bomb: {LAUGHS}\n")
    _refused(tmp_path, monkeypatch, capsys, ["report", bad, "--format", "html", "--out", tmp_path / "rep"],
             "scenario.yaml", f"over the limit of {MAX_YAML_VALUES:,}")


# ------------------------------------------------------------------ the misleading refusal (1)
def test_plan_negative_data_parallel_is_named(tmp_path, monkeypatch, capsys):
    err = _refused(tmp_path, monkeypatch, capsys, ["plan", PLAN, "--set", "plan.candidates={data_parallel: [-1]}"],
                   "plan.candidates.data_parallel.0", "greater than or equal to 1")
    assert "No candidate fits" not in err


# ------------------------------------------------------------------ refused but wrote files (9)
@pytest.mark.parametrize("setting, expect", [
    ("plan.duration_s=1", "leaves no window"),
    ("plan.pool=5", "plan.pool is 5"),
    ("plan.demand={start_rate_rps: 4, monthly_growth_pct: 1000, months: 120}", "less than or equal to 1000000"),
    ("plan.demand={peak_rate_rps: 1000000}", "MAX_PLAN_POINT_REQUESTS"),
    ("plan.candidates.gpu=[nope]", "unknown GPU 'nope'"),
    ("plan.candidates.gpu=[]", "an empty list"),
], ids=["window", "pool", "growth", "peak", "unknown gpu", "empty gpus"])
def test_plan_refusals_write_nothing(tmp_path, monkeypatch, capsys, setting, expect):
    _refused(tmp_path, monkeypatch, capsys, ["plan", PLAN, "--set", setting, "--workers", "1"], expect)


def test_sweep_grid_over_a_whole_section(tmp_path, monkeypatch, capsys):
    _refused(tmp_path, monkeypatch, capsys, ["sweep", _small(tmp_path), "--grid", "fleet=1,2", "--workers", "1"],
             "fleet")


def test_sweep_ray_without_ray(tmp_path, monkeypatch, capsys):
    real = sweep_mod.importlib.util.find_spec
    monkeypatch.setattr(sweep_mod.importlib.util, "find_spec", lambda n, *a: None if n == "ray" else real(n, *a))
    _refused(tmp_path, monkeypatch, capsys, ["sweep", _small(tmp_path), "--grid", "fleet.0.replicas=1,2",
                                             "--executor", "ray"], "needs Ray")


def test_sweep_full_disk_leaves_no_folder(tmp_path, monkeypatch, capsys):
    def full(df, path):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sweep_mod, "write_parquet_atomic", full)
    _refused(tmp_path, monkeypatch, capsys, ["sweep", _small(tmp_path), "--grid", "fleet.0.replicas=1",
                                             "--workers", "1", "--out", tmp_path / "sw"], "No space left")


# ------------------------------------------------------------------ concurrency and kills
def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path, monkeypatch, capsys):
    out = tmp_path / "o"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sim.outpaths import out_lock\n"
         f"with out_lock({str(out)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        _refused(tmp_path, monkeypatch, capsys, ["run", _small(tmp_path), "--out", out],
                 f"in use by pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(out)]) == 0  # free again once the holder died


def test_stale_staging_of_a_dead_writer_is_removed(tmp_path):
    out = tmp_path / "o"
    stale = [tmp_path / ".o.partial-abcd1234", tmp_path / ".o.old-12345"]
    keep = [tmp_path / ".o.partial-x", tmp_path / ".other.partial-abcd1234", tmp_path / "o.partial-abcd1234"]
    for p in stale + keep:
        (p / "sub").mkdir(parents=True)
    with outpaths.staged_folder(out) as tmp:
        assert tmp.name.startswith(".o.partial-")
        (tmp / "f").write_text("x")
    assert (out / "f").read_text() == "x"
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)


# ------------------------------------------------------------------ messages
@pytest.mark.parametrize("given, meant", [("h200-sxm", "h200"), ("h100", "h100-sxm"), ("max_num_seq", "max_num_seqs"),
                                          ("rtx4090", "rtx-4090")])
def test_suggestions_rank_by_meaning(given, meant):
    valid = ["a100-80gb", "b200", "h100-sxm", "h200", "l40s", "rtx-4090", "max_num_seqs", "max_num_batched_tokens"]
    assert closest_name(given, valid) == meant


def test_a_pool_takes_the_bare_quantization_shorthand(tmp_path):
    path = _small(tmp_path)
    pool = load_scenario(path, overrides=["fleet.0.quantization=fp8"]).fleet[0]
    assert pool.quantization.weights == "fp8"


def test_every_unknown_key_is_reported_at_once(tmp_path, monkeypatch, capsys):
    err = _refused(tmp_path, monkeypatch, capsys, ["run", QUICKSTART, "--set", "fleet.0.engine.max_num_seq=3",
                                                   "--set", "fleet.0.replica=2", "--set", "traffic.durations=3",
                                                   "--set", "traffic.warmup=1", "--set", "sim.drain=1"],
                   "Did you mean 'max_num_seqs'?", "Did you mean 'replicas'?", "Did you mean 'duration_s'?",
                   "Did you mean 'warmup_s'?", "Did you mean 'drain_s'?")
    assert "more)" not in err


# ------------------------------------------------------------------ start-up
def test_the_lazy_table_matches_each_modules_own_help():
    full = build_parser()._subparsers._group_actions[0]
    helps = {a.dest: a.help for a in full._choices_actions}
    assert {name: help_text for name, _, _, help_text in COMMAND_TABLE} == helps


#: What a refusal must not import (issue 26: each refusal under 0.5 s of CPU; these cost ~0.1-0.6 s).
HEAVY = ("pyarrow", "pandas", "scipy", "matplotlib", "openpyxl", "simpy", "sim.engine", "sim.analysis.forecast",
         "sim.report.build")
REFUSALS = [
    ["run", "missing.yaml"],
    ["run", str(QUICKSTART), "--set", "seed=-1"],
    ["run", str(QUICKSTART), "--set", "fleet.0.replicas=-1"],
    ["plan", str(PLAN), "--set", "plan.nope=1"],
    ["sweep", str(QUICKSTART), "--set", "seed=-1", "--grid", "fleet.0.replicas=1,2"],
    ["compare", str(QUICKSTART), "--variant", "bad"],
    ["compare", str(QUICKSTART), "--variant", "a:seed=1", "--set", "seed=-1"],
    ["report", "/nonexistent"],
    ["validate", "/nonexistent"],
    ["calibrate", "/nonexistent", "--out", "p.json"],
]


def _imported(tmp_path: Path, argv: list[str]) -> tuple[int, list[str], str]:
    """(exit status, the loaded modules that are in HEAVY or under one, stderr) of ``fleetcast ARGV``
    in a fresh interpreter."""
    code = ("import sys; from sim.cli import main\ntry:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    rc = e.code\nprint('RC:', rc)\nprint('MODULES:', ' '.join(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120)
    rc = int(next(x for x in out.stdout.splitlines() if x.startswith("RC:")).split()[1])
    loaded = next(x for x in out.stdout.splitlines() if x.startswith("MODULES:")).split()[1:]
    return rc, [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)], out.stderr


@pytest.mark.slow
def test_help_imports_no_subcommand(tmp_path):
    rc, heavy, _ = _imported(tmp_path, ["--help"])
    code = ("import sys; from sim.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('MODULES:', ' '.join(m for m in sorted(sys.modules) if m.startswith('sim.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    line = next(x for x in out.stdout.splitlines() if x.startswith("MODULES:"))
    assert rc == 0 and heavy == [] and line.split() == ["MODULES:"], (heavy, line)


@pytest.mark.slow
@pytest.mark.parametrize("argv", REFUSALS, ids=lambda a: " ".join(Path(w).name for w in a))
def test_refusals_import_nothing_heavy(tmp_path, argv):
    """Every command's refusal of its input (a bad scenario, --set, --variant, a folder that is not
    there) comes before the engine, pandas, pyarrow, scipy and the renderers are imported."""
    rc, heavy, err = _imported(tmp_path, argv)
    assert rc == 2 and "error:" in err and "Traceback" not in err, err
    assert heavy == [], f"a refusal imported {heavy}"


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.1, 0.4, 1.5])
def test_ctrl_c_at_any_moment_exits_130_without_a_traceback(tmp_path, delay_s):
    """Ctrl-C from the moment fleetcast's code runs (the interpreter's own start-up, before
    any of it, is Python's): during the imports, the loading, the simulation."""
    code = "import os, sys; os.write(2, b'started\\n'); from sim.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "run", str(QUICKSTART), "--out", str(tmp_path / "o")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().strip() == "started"
    time.sleep(delay_s)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # finished before the signal: nothing to check
        pytest.skip("the run finished before Ctrl-C")
    if proc.returncode == -signal.SIGINT and (tmp_path / "o" / "summary.json").exists():
        # the run had finished (its folder is swapped in whole) and Python was shutting down: it
        # restores the default handlers then, so the signal itself ends the process (a shell shows
        # 130 too); seen once in CI at 1.5 s
        assert "Traceback" not in err, err
        pytest.skip("Ctrl-C came while Python shut down after the run")
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_ctrl_c_while_sim_cli_loads_exits_130_without_a_traceback(tmp_path):
    """Ctrl-C inside ``from sim.cli import main`` (the console script's first line), before main()
    runs: an import of argparse made slow by a finder holds the window open."""
    code = ("import os, sys, time\nimport sim\n"
            "class Slow:\n    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'argparse':\n            os.write(2, b'importing\\n'); time.sleep(20)\n"
            "        return None\n"
            "sys.meta_path.insert(0, Slow())\nfrom sim.cli import main\nsys.exit(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", code, "--help"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr.readline().strip() == "importing"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == "interrupted", (proc.returncode, err)


def test_validate_says_a_run_is_partial():
    req = pd.DataFrame({"status": ["ok", "ok", "error", "ok"]})  # 3 finished of the 10 the point asked for
    killed = SimpleNamespace(name="sweep/c4", requests=req, meta={
        "completed": False, "reason": "interrupted before the end", "sweep_point": {"requests": 10}})
    note = partial_run_note(killed)
    assert note.startswith("sweep/c4: partial run: 3 of 10 requests finished (interrupted before the end)")
    assert partial_run_note(SimpleNamespace(name="x", requests=req, meta={"completed": True})) is None


# -- stop 36's hostile pass (polish9): each case below gave a traceback, wrote outside --out's
# default folder, or ran with a flag it ignored before

NAME_CASES = {  # scenario name -> why it is no folder name
    "../escape": "it holds '/'",  # before: run wrote its results to ../escape, beside the test's folder
    "a/b": "it holds '/'",  # before: out/a/b, a folder inside another
    "": "it is empty",  # before: the results went into out/ itself
    ".": "it names a folder, not a name in one",
}


@pytest.mark.parametrize("command", ["run", "plan", "compare"])
@pytest.mark.parametrize("name", list(NAME_CASES), ids=["traversal", "slash", "empty", "dot"])
def test_a_scenario_name_that_is_no_folder_name_needs_out(tmp_path, monkeypatch, capsys, command, name):
    work = tmp_path / "work"
    work.mkdir()
    path = _write(work, "s.yaml", QUICKSTART.read_text().replace("name: quickstart", f"name: '{name}'"))
    more = ["--variant", "b:fleet.0.replicas=2", "-n", "1"] if command == "compare" else []
    suffix = {"run": "", "plan": "-plan", "compare": "-compare"}[command]
    _refused(work, monkeypatch, capsys, [command, path, *more],
             f"s.yaml: field name: '{name}' cannot name the default output folder out/<name>{suffix}",
             f"({NAME_CASES[name]}); give --out DIR")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # nothing beside the working folder either


def test_a_nul_byte_in_the_scenario_name_is_located(tmp_path, monkeypatch, capsys):
    """name: "a\\0b": before, ValueError "embedded null byte" from the file system, with a traceback."""
    path = _write(tmp_path, "s.yaml", QUICKSTART.read_text().replace("name: quickstart", 'name: "a\\0b"'))
    _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"],
             "s.yaml: line 6, field name: must be printable text: character 2 is the control character U+0000")


def test_compare_checks_its_default_folder_before_the_work(tmp_path, monkeypatch, capsys):
    """Without --out, compare's default out/<name>-compare was checked only when it wrote, after
    every simulation; a folder holding a run is now refused first (nothing simulated)."""
    import sim.analysis.compare as compare_mod

    (tmp_path / "out" / "quickstart-compare").mkdir(parents=True)
    (tmp_path / "out" / "quickstart-compare" / "summary.json").write_text("{}")
    monkeypatch.setattr(compare_mod, "run_compare", lambda *a, **k: pytest.fail("simulated before the check"))
    _refused(tmp_path, monkeypatch, capsys, ["compare", QUICKSTART, "--variant", "b:fleet.0.replicas=2"],
             "out/quickstart-compare holds the results of `fleetcast run`; `fleetcast compare` would replace")


LOG = "timestamp,prompt_tokens,output_tokens\n" + "".join(f"{1.7e9 + 2 * i + i % 7 * 0.3:.3f},{100 + i % 50},20\n"
                                                         for i in range(200))


@pytest.mark.parametrize("flags, expect", [
    (["--seed", "-1"], "--seed -1: give a whole number from 0 to 2**63 - 1"),  # before: ValueError traceback
    (["--check-seeds", "5"], "--check-seeds 5 is the seeds of --check: add --check SCENARIO"),  # before: ignored
])
def test_traffic_fit_flags_out_of_range_or_alone(tmp_path, monkeypatch, capsys, flags, expect):
    log = _write(tmp_path, "log.csv", LOG)
    _refused(tmp_path, monkeypatch, capsys, ["traffic", "fit", log, "--out", tmp_path / "t.yaml", *flags], expect)


def test_validate_tensor_parallel_zero_is_refused(tmp_path, monkeypatch, capsys):
    """--tensor-parallel 0 was read as "not given" (the sidecar's 1 used, exit 0); -1 was refused."""
    _refused(tmp_path, monkeypatch, capsys,
             ["validate", ROOT / "tests" / "data" / "run-logs" / "bench-h100.json", "--tensor-parallel", "0",
              "--out", tmp_path / "v"], "with tensor_parallel=0", "field tensor_parallel: Input should be 1, 2, 4")


BENCH = ROOT / "tests" / "data" / "run-logs" / "bench-h100.json"


@pytest.mark.parametrize("argv", [
    ["run", QUICKSTART], ["plan", PLAN], ["compare", QUICKSTART, "--variant", "b:fleet.0.replicas=2"],
    ["sweep", QUICKSTART, "--grid", "fleet.0.replicas=1,2"], ["report", "."], ["validate", BENCH],
    ["traffic", "fit", BENCH], ["calibrate", "--splitwise", "a100-80gb"],
], ids=lambda a: a[0] if a[0] != "traffic" else "traffic fit")
def test_an_empty_out_is_refused(tmp_path, monkeypatch, capsys, argv):
    """--out "" (a shell variable unset): run, plan, compare and sweep used their default folder, report
    and validate wrote into the working folder."""
    _refused(tmp_path, monkeypatch, capsys, [*argv, "--out", ""], "argument --out: '' is empty: give a path")


def test_validate_into_another_commands_results_is_refused(tmp_path, monkeypatch, capsys):
    """validate added errors.csv, index.html and figures to a plan's folder before."""
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "plan.json").write_text("{}")
    _refused(tmp_path, monkeypatch, capsys, ["validate", BENCH, "--out", tmp_path / "p"],
             "p holds the results of `fleetcast plan`; the validation outputs", "choose another --out")


def test_validate_a_binary_profile_is_located(tmp_path, monkeypatch, capsys):
    """Before: UnicodeDecodeError with a traceback."""
    (tmp_path / "p.json").write_bytes(b"\x00\xff" * 100)
    _refused(tmp_path, monkeypatch, capsys, ["validate", BENCH, "--profile", tmp_path / "p.json"],
             "calibration profile file", "p.json, line 1: not UTF-8 text (byte 1 is 0xff)")


@pytest.mark.parametrize("flags, expect", [
    (["--splitwise", "a100-80gb", "RUN"], "give run folders to fit or --splitwise a100-80gb, not both"),  # runs ignored
    (["--splitwise-csv", "x.csv", "RUN"], "--splitwise-csv x.csv is read by --splitwise HARDWARE"),  # ignored
])
def test_calibrate_flags_that_exclude_each_other(tmp_path, monkeypatch, capsys, run_folder, flags, expect):
    flags = [run_folder if f == "RUN" else f for f in flags]
    _refused(tmp_path, monkeypatch, capsys, ["calibrate", "--out", tmp_path / "p.json", *flags], expect)


@pytest.mark.parametrize("second", ["log.csv", "./log.csv"])
def test_traffic_fit_the_same_log_twice_is_refused(tmp_path, monkeypatch, capsys, second):
    """Before: fitted as one log of twice its requests."""
    _write(tmp_path, "log.csv", LOG)
    _refused(tmp_path, monkeypatch, capsys, ["traffic", "fit", "log.csv", second, "--out", tmp_path / "t.yaml"],
             f"{second}: the log is given twice")


def test_a_nan_given_with_set_is_called_not_finite(tmp_path, monkeypatch, capsys):
    """Before: "Input should be less than or equal to 100000000" for duration_s=nan."""
    _refused(tmp_path, monkeypatch, capsys, ["run", QUICKSTART, "--out", tmp_path / "o", "--set",
             "traffic.duration_s=nan"], "field traffic.duration_s: must be a finite number, got nan")


@pytest.mark.parametrize("argv, expect", [
    (["run", QUICKSTART, "--set", "seed=1", "--set", "seed=2"],
     "--set seed=2: key 'seed' is already set by --set seed=1; set each key once"),  # the last won before
    (["validate", BENCH, "--sidecar-set", "max_num_seqs=8", "--sidecar-set", "max_num_seqs=16"],
     "--sidecar-set max_num_seqs=16: key 'max_num_seqs' is already set by --sidecar-set max_num_seqs=8"),
])
def test_a_key_set_twice_on_the_command_line_is_refused(tmp_path, monkeypatch, capsys, argv, expect):
    _refused(tmp_path, monkeypatch, capsys, [*argv, "--out", tmp_path / "o"], expect)


def test_sweep_address_without_ray_is_refused(tmp_path, monkeypatch, capsys):
    """--address was ignored by the local process pool."""
    _refused(tmp_path, monkeypatch, capsys, ["sweep", _small(tmp_path), "--grid", "fleet.0.replicas=1,2",
                                             "--address", "10.0.0.1:6379", "--out", tmp_path / "o"],
             "--address 10.0.0.1:6379 is a Ray cluster's: add --executor ray")


def test_traffic_fit_will_not_overwrite_a_scenario(tmp_path, monkeypatch, capsys):
    """--out naming the scenario itself (e.g. the --check one) replaced it with a traffic section before;
    a fit's own earlier output is still replaced."""
    _write(tmp_path, "log.csv", LOG)
    scenario = _write(tmp_path, "s.yaml", QUICKSTART.read_text())
    _refused(tmp_path, monkeypatch, capsys, ["traffic", "fit", "log.csv", "--out", scenario],
             "--out", "s.yaml holds the keys name, description, seed, fleet, router, traffic, not a fitted traffic "
             "section; the fit would replace the whole file")
    assert scenario.read_text() == QUICKSTART.read_text()
    for _ in range(2):  # the second fit replaces the first one's file
        assert main(["traffic", "fit", str(tmp_path / "log.csv"), "--out", str(tmp_path / "t.yaml")]) == 0
    assert "traffic" in yaml.safe_load((tmp_path / "t.yaml").read_text())


def test_calibrate_will_not_overwrite_a_file_that_is_no_profile(tmp_path, monkeypatch, capsys):
    """--out naming a run log (or any JSON that is no profile) was replaced by the profile before;
    a profile is still replaced."""
    log = tmp_path / "bench.json"
    shutil.copy(BENCH, log)
    _refused(tmp_path, monkeypatch, capsys, ["calibrate", "--splitwise", "a100-80gb", "--out", log],
             "--out", "bench.json exists and is no calibration profile (no 'coefficients' mapping)")
    assert log.read_bytes() == BENCH.read_bytes()
    for _ in range(2):  # the second fit replaces the first one's profile
        assert main(["calibrate", "--splitwise", "a100-80gb", "--out", str(tmp_path / "p.json")]) == 0


@pytest.mark.parametrize("name", ["big.json", "big.jsonl"])
def test_validate_a_run_log_past_the_log_limit_is_refused_unread(tmp_path, monkeypatch, capsys, name):
    """A 3 GiB (sparse) log: before, read whole (6.4 GB of memory, 8-15 s) before its JSON error."""
    with open(tmp_path / name, "wb") as f:
        f.truncate(3 * 2**30)
    shutil.copy(ROOT / "tests" / "data" / "run-logs" / "fleetcast.yaml", tmp_path / "fleetcast.yaml")
    _refused(tmp_path, monkeypatch, capsys, ["validate", tmp_path / name, "--out", tmp_path / "v"],
             f"run log {tmp_path / name} is 3 GiB; at most 2 GiB is read")


def test_validate_a_binary_bench_result_is_located(tmp_path, monkeypatch, capsys):
    (tmp_path / "b.json").write_bytes(b"{\xff\xfe")
    _refused(tmp_path, monkeypatch, capsys, ["validate", tmp_path / "b.json", "--out", tmp_path / "v"],
             "run log", "b.json, line 1: not UTF-8 text (byte 1 is 0xff); is it a binary file?")
