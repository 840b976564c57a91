"""Bad values of the fields of stops 32-33 (engine.engine_core, session.gap_from, the sidecars'
client_cpu and engine settings, the catalog's qk_norm_all_reduce), given as a user would: each is
refused through the CLI with exit status 2, the file, the line and the field, what would be valid,
no traceback and nothing written (``tests.test_hostile._refused`` checks all of that)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_hostile import _refused

LOG = "arrival_s,first_token_s,last_token_s,prompt_tokens,output_tokens\n0,0.1,0.5,100,5\n0.2,0.3,0.6,120,6\n"
SIDECAR = "gpu: h100-sxm\nmodel: llama-3.1-8b\n"


def _log_with_sidecar(tmp_path: Path, sidecar: str) -> Path:
    (tmp_path / "fleetcast.yaml").write_text(SIDECAR + sidecar)
    log = tmp_path / "run.csv"
    log.write_text(LOG)
    return log


@pytest.mark.parametrize(
    "sidecar,expect",
    [
        # lines 3 and 4: engine_core and vllm_version, which together break V0's rule
        (
            "engine_core: v0\nvllm_version: 0.12.0\n",
            ["fleetcast.yaml, line 3 (engine_core), line 4 (vllm_version):", "before 0.11.0"],
        ),
        (
            "engine_core: v0\nvllm_version: 0.10.1\nengine: {async_scheduling: true}\n",
            ["line 3 (engine_core), line 4 (vllm_version), line 5 (engine):", "use false with engine_core v0"],
        ),
        (
            "engine: {max_num_seqs: 512, max_num_batched_tokens: 256}\n",
            ["fleetcast.yaml, line 3 (engine):", "must be >="],
        ),
        # V1 was first offered in vLLM 0.7.0 (VLLM_USE_V1=1, its release notes): 0.6.6 ran V0 only
        (
            "engine_core: v1\nvllm_version: 0.6.6\n",
            ["fleetcast.yaml, line 3 (engine_core), line 4 (vllm_version):", "engine_core v1 needs a vllm_version"],
        ),
    ],
)
def test_sidecar_engine_rules_name_the_lines_that_break_them(tmp_path, monkeypatch, capsys, sidecar, expect):
    """These rules span fields (EngineSpec's cross checks); before, the message said 'section engine:
    field (top level)', no line, and engine_core and vllm_version are not in the engine section."""
    log = _log_with_sidecar(tmp_path, sidecar)
    err = _refused(tmp_path, monkeypatch, capsys, ["validate", log, "--out", tmp_path / "v"], *expect)
    assert "(top level)" not in err


@pytest.mark.parametrize(
    "sidecar,expect",
    [
        ("client_cpu: {per_request_s: -0.003, per_chunk_s: 0.0001}\n", "line 3, field client_cpu.per_request_s"),
        ("client_cpu: {per_request_s: 0.003}\n", "line 3, field client_cpu.per_chunk_s: required field is missing"),
        ("client_cpu: 0.003\n", "line 3, field client_cpu:"),
        ("client_cpu: {per_request_s: .nan, per_chunk_s: 0}\n", "must be a finite number"),
        ("engine_core: v3\n", "line 3, field engine_core: Input should be 'v0' or 'v1', got 'v3'"),
    ],
)
def test_sidecar_client_cpu_and_engine_core_values(tmp_path, monkeypatch, capsys, sidecar, expect):
    log = _log_with_sidecar(tmp_path, sidecar)
    _refused(tmp_path, monkeypatch, capsys, ["validate", log, "--out", tmp_path / "v"], "fleetcast.yaml", expect)


def test_engine_core_v1_before_vllm_0_7_is_refused_in_a_scenario(tmp_path, monkeypatch, capsys):
    """A scenario's fleet names the V1 engine on vLLM 0.6.6, which had none (V1 first offered in 0.7.0)."""
    import yaml

    from tests.factories import scenario_dict

    data = scenario_dict()
    data["fleet"][0]["engine"].update(vllm_version="0.6.6", engine_core="v1")
    text = yaml.safe_dump(data, sort_keys=False)
    (tmp_path / "s.yaml").write_text(text)
    line = text.splitlines().index("  engine:") + 1
    _refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["run", tmp_path / "s.yaml", "--out", tmp_path / "o"],
        f"s.yaml: line {line}, field fleet.0.engine: engine_core v1 needs a vllm_version from 0.7.0 on",
        "vllm_version 0.6.6 ran the V0 engine only",
    )


MODEL = (
    "models:\n  mymodel:\n    num_layers: 32\n    hidden_size: 4096\n    num_heads: 32\n    num_kv_heads: 8\n"
    "    intermediate_size: 14336\n    vocab_size: 128256\n    max_position_embeddings: 131072\n"
)


def _scenario_with_catalog(tmp_path: Path, catalog: str, model: str = "mymodel") -> Path:
    import yaml

    from tests.factories import scenario_dict

    (tmp_path / "cat.yaml").write_text(catalog)
    data = scenario_dict()
    data["catalog"] = ["cat.yaml"]
    data["fleet"][0]["model"] = model
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(
    "extra,expect",
    [
        # line 10: the field after the 9 lines of MODEL
        ("    qk_norm_all_reduce: true\n", "line 10, model 'mymodel', field 'qk_norm_all_reduce': the all-reduce"),
        (
            "    qk_norm: true\n    qk_norm_all_reduce: 1\n",
            "line 11, model 'mymodel', field 'qk_norm_all_reduce': expected true/false",
        ),
        (
            "    sliding_window: -4096\n",
            "line 10, model 'mymodel', field 'sliding_window': expected a window of tokens (a positive whole",
        ),
        # 0 is not full attention (a window of no tokens): null is, as in config.json
        ("    sliding_window: 0\n", "field 'sliding_window': expected a window of tokens (a positive whole number"),
        ("    sliding_window: 0\n", "or null for full attention, got 0"),
        ("    qk_norm_allreduce: true\n", "line 10, model 'mymodel', field 'qk_norm_allreduce': unknown field"),
    ],
)
def test_catalog_model_fields_are_located(tmp_path, monkeypatch, capsys, extra, expect):
    """A catalog entry's bad field names its line (before: file, entry and field, no line), and
    qk_norm_all_reduce without qk_norm (an all-reduce of q/k norms a model does not have) is refused."""
    path = _scenario_with_catalog(tmp_path, MODEL + extra)
    _refused(tmp_path, monkeypatch, capsys, ["run", path, "--out", tmp_path / "o"], "cat.yaml", expect)


def test_catalog_sliding_window_null_is_full_attention(tmp_path):
    """config.json writes full attention as ``sliding_window: null`` (Mistral-7B-v0.3): the catalog
    reads it as the field left out, the same model (before: refused as not a positive number)."""
    from sim.catalog import load_catalog
    from sim.perf.attention_backend import decode_backend

    (tmp_path / "a.yaml").write_text(MODEL + "    sliding_window: null\n")
    (tmp_path / "b.yaml").write_text(MODEL)
    with_null = load_catalog([tmp_path / "a.yaml"]).model("mymodel")
    left_out = load_catalog([tmp_path / "b.yaml"]).model("mymodel")
    assert with_null.sliding_window == 0 and with_null == left_out
    gpu = load_catalog().gpu("a100-80gb")
    (tmp_path / "c.yaml").write_text(MODEL + "    sliding_window: 4096\n")
    windowed = load_catalog([tmp_path / "c.yaml"]).model("mymodel")
    # vLLM 0.6.3 decodes a windowed model through XFormers (attention_backend.py), a full one not
    assert decode_backend(gpu, windowed, "0.6.3") == "xformers"
    assert decode_backend(gpu, with_null, "0.6.3") == ""


def test_catalog_model_with_qk_norm_and_its_all_reduce_is_accepted(tmp_path):
    from sim.catalog import load_catalog

    (tmp_path / "cat.yaml").write_text(MODEL + "    qk_norm: true\n    qk_norm_all_reduce: true\n")
    m = load_catalog([tmp_path / "cat.yaml"]).model("mymodel")
    assert m.qk_norm and m.qk_norm_all_reduce


def test_testbed_refuses_completion_turns_at_their_line_before_asking_for_its_extras(tmp_path, monkeypatch, capsys):
    """``testbed run`` on a scenario with ``session.gap_from: completion``: the class's line and name,
    said before the testbed's extras (gevent, Locust) are needed, so it reads the same with or without them."""
    import yaml

    from tests.factories import scenario_dict

    data = scenario_dict()
    data["traffic"]["classes"][0]["session"] = {
        "mean_turns": 3,
        "gap_s": {"dist": "fixed", "value_s": 2},
        "gap_from": "completion",
        "new_tokens": {"dist": "fixed", "value": 50},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "gap_from:" in t)
    name = data["traffic"]["classes"][0]["name"]
    _refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["testbed", "run", path, "--model", tmp_path / "m", "--out", tmp_path / "o"],
        f"s.yaml, line {line}, field traffic.classes.0.session.gap_from (class '{name}')",
        "use gap_from: arrival",
    )


@pytest.mark.parametrize("where", ["scenario", "sidecar"])
def test_vllm_version_read_as_a_number_says_to_quote_it(tmp_path, monkeypatch, capsys, where):
    """``vllm_version: 0.10`` is the float 0.1 to YAML: refused with the fix (before: 'Input should be a
    valid string'), in a scenario and in a sidecar."""
    if where == "sidecar":
        log = _log_with_sidecar(tmp_path, "vllm_version: 0.10\n")
        argv, expect = ["validate", log, "--out", tmp_path / "v"], "fleetcast.yaml: line 3, field vllm_version"
    else:
        import yaml

        from tests.factories import scenario_dict

        data = scenario_dict()
        data["fleet"][0].setdefault("engine", {})["vllm_version"] = 0.10
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "vllm_version:" in t)
        argv, expect = ["run", path, "--out", tmp_path / "o"], f"s.yaml: line {line}, field fleet.0.engine.vllm_version"
    _refused(tmp_path, monkeypatch, capsys, argv, expect, "the number 0.1", 'vllm_version: "0.10.0"')


def test_a_tab_indent_is_named_as_a_tab(tmp_path, monkeypatch, capsys):
    """libyaml's "found character that cannot start any token" at a tab indent now says it is a tab
    (an editor shows it as spaces) and what YAML wants instead."""
    import yaml

    from tests.factories import scenario_dict

    text = yaml.safe_dump(scenario_dict(), sort_keys=False).splitlines()
    row = next(i for i, t in enumerate(text) if t.startswith("  duration_s:"))
    text[row] = "\t" + text[row].lstrip()
    path = tmp_path / "s.yaml"
    path.write_text("\n".join(text) + "\n")
    _refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["run", path, "--out", tmp_path / "o"],
        f"s.yaml, line {row + 1}: not valid YAML",
        "a tab at column 1: YAML indents with spaces only",
    )


def test_a_sidecar_whose_server_cannot_start_names_the_sidecar(tmp_path, monkeypatch, capsys):
    """A sidecar's max_model_len whose KV cache does not fit on the GPU (Llama-3.1-8B, one H100: 128 KiB
    of KV per token at bf16, 1,000,000 tokens = 122 GiB) was refused as '<scenario>, field fleet.0 (pool
    'gpu')', the replay's in-memory scenario; it now names the sidecar and the run."""
    log = _log_with_sidecar(tmp_path, "engine: {max_model_len: 1000000}\n")
    err = _refused(
        tmp_path,
        monkeypatch,
        capsys,
        ["validate", log, "--out", tmp_path / "v"],
        "fleetcast.yaml (the engine settings of",
        "run.csv, replayed): vLLM refuses to start",
        "122.07 GiB of KV cache",
        "engine.max_model_len",
    )
    assert "<scenario>" not in err
