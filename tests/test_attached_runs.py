"""Testbed runs against an attached server (``fleetcast testbed run --url``): run.json has
``engine_args: null``, so the server's dtype and settings come from the /metrics labels the
testbed recorded (``kv_cache.cache_config_info``), or ``--sidecar-set``; when neither tells
the dtype, ``validate`` refuses, naming what to pass, and writes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from calibration.runs import VLLM_CPU_DEFAULTS, load_run
from calibration.server_settings import kv_element_bytes
from sim.cli import main
from sim.errors import FleetcastError
from testbed.fake_server import FakeVllm
from testbed.scrape import cache_config, parse_prometheus

ROOT = Path(__file__).resolve().parents[1]
RUNS = sorted(p.parent for p in (ROOT / "calibration" / "runs").rglob("run.json"))
BASE_RUN = ROOT / "calibration" / "runs" / "base-fp32" / "capacity"


def _attached_copy(src: Path, dst: Path, kv_cache: dict | None = None) -> Path:
    """A copy of a measured run folder as an attached server's run would record it."""
    shutil.copytree(src, dst)
    meta = json.loads((dst / "run.json").read_text())
    meta["engine_args"] = None
    if kv_cache is not None:
        meta["kv_cache"] = kv_cache
    (dst / "run.json").write_text(json.dumps(meta))
    return dst


def _fake_server_kv_cache() -> dict:
    """run.json's kv_cache as testbed/runner.py records it from the fake server's /metrics
    (labels block_size, num_gpu_blocks, enable_prefix_caching: no KV memory, no cache dtype)."""
    cache = cache_config(parse_prometheus(FakeVllm().metrics_text()))
    return {"block_size": int(cache["block_size"]), "num_blocks": int(cache["num_gpu_blocks"]),
            "enable_prefix_caching": cache["enable_prefix_caching"], "cache_config_info": cache}


def test_kv_element_bytes_by_hand():
    # testbed-base: 12 layers, 4 KV heads of 64: 2 x 12 x 4 x 64 = 6,144 K and V elements per token;
    # 682 blocks of 128 tokens in 2 GiB: 2,147,483,648 / (682 x 128 x 6,144) = 4.004 -> 4 bytes (float32)
    cfg = {"num_hidden_layers": 12, "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 64}
    info = {"cache_dtype": "auto", "kv_cache_memory_bytes": "2147483648", "num_gpu_blocks": "682",
            "block_size": "128", "num_gpu_blocks_override": "None"}
    assert kv_element_bytes(info, cfg) == (4, "")
    # the same memory at 2 bytes an element holds twice the blocks: 1,365 (floor of 1,365.3)
    assert kv_element_bytes({**info, "num_gpu_blocks": "1365"}, cfg) == (2, "")
    assert kv_element_bytes({**info, "num_gpu_blocks": "1000"}, cfg)[0] is None  # 5.46 bytes: neither
    assert kv_element_bytes({**info, "cache_dtype": "fp8"}, cfg)[0] is None


@pytest.mark.parametrize("run", RUNS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_settings_from_metrics_agree_with_the_recorded_engine_args(tmp_path, run):
    """Each measured run, its engine_args removed: the dtype and max_model_len read from its
    /metrics labels are the ones the testbed passed to the server it started."""
    meta = json.loads((run / "run.json").read_text())
    attached = _attached_copy(run, tmp_path / "r")
    if meta["kv_cache"]["cache_config_info"].get("num_gpu_blocks_override") not in (None, "None"):
        with pytest.raises(FleetcastError, match="num_gpu_blocks_override.*--sidecar-set dtype=float32"):
            load_run(attached)
        return
    loaded = load_run(attached)
    assert loaded.dtype == meta["engine_args"]["dtype"]
    assert loaded.engine["max_model_len"] == meta["engine_args"]["max_model_len"]
    assert loaded.engine["max_num_seqs"] == VLLM_CPU_DEFAULTS["max_num_seqs"]  # not on /metrics: a note says so
    assert any("--sidecar-set engine.max_num_seqs=N" in n for n in loaded.notes)


def test_validate_refuses_an_attached_run_without_a_dtype(tmp_path, monkeypatch, capsys):
    folder = _attached_copy(BASE_RUN, tmp_path / "runs" / "attached", _fake_server_kv_cache())
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code = main(["validate", str(folder), "--out", str(tmp_path / "v")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err
    assert f"{folder / 'run.json'}: the run was made against an attached server" in err
    assert "it has no cache_dtype" in err and "--sidecar-set dtype=float32 (or bfloat16, float16)" in err
    assert sorted(tmp_path.rglob("*")) == before


def test_sidecar_set_gives_an_attached_run_its_settings(tmp_path):
    folder = _attached_copy(BASE_RUN, tmp_path / "attached", _fake_server_kv_cache())
    run = load_run(folder, ["dtype=float32", "engine.max_num_seqs=32"])
    assert run.dtype == "float32" and run.catalog_files[-1].name == "catalog-cpu-fp32.yaml"
    assert run.engine["max_num_seqs"] == 32 and run.engine["block_size"] == 16  # the fake server's block size
    assert run.engine["num_gpu_blocks_override"] == 1024
    assert run.engine["max_num_batched_tokens"] == VLLM_CPU_DEFAULTS["max_num_batched_tokens"]
    assert [n for n in run.notes if "max_num_batched_tokens" in n]  # the one still assumed is said


def test_a_bad_sidecar_set_for_a_run_folder_is_refused(tmp_path, monkeypatch, capsys):
    folder = _attached_copy(BASE_RUN, tmp_path / "attached", _fake_server_kv_cache())
    monkeypatch.chdir(tmp_path)
    code = main(["validate", str(folder), "--sidecar-set", "dtype=fp64"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err and "dtype" in err and "'float32'" in err, err
