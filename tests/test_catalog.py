"""The catalog: every number sourced, architectures match published sizes, user files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from sim.catalog import load_catalog
from sim.cli import main
from sim.errors import FleetcastError

CATALOG_DIR = Path(__file__).resolve().parents[1] / "sim" / "catalog"
GPUS = ["h100-sxm", "h200", "a100-80gb", "l40s", "l4", "rtx-4090", "mi300x", "b200"]
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3-70b", "mistral-7b",
          "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-72b", "qwen3-30b-a3b", "qwen3-8b", "qwen3-14b", "qwen3-32b",
          "qwen3-235b-a22b", "llama-4-scout", "deepseek-v3", "deepseek-v2-lite", "gpt-oss-120b",
          "minimax-m2.5"]

# Published parameter counts (billions): Hugging Face model pages' safetensors
# totals and the vendors' model cards/announcements. (total, active, non-embedding)
PUBLISHED = {
    "llama-3.1-8b": (8.03, None, None),  # HF meta-llama/Llama-3.1-8B: 8.03B params
    "llama-3.1-70b": (70.6, None, None),  # HF meta-llama/Llama-3.1-70B: 70.6B
    "llama-3.1-405b": (406.0, None, None),  # HF meta-llama/Llama-3.1-405B: 406B
    "llama-3-70b": (70.6, None, None),  # HF meta-llama/Meta-Llama-3-70B: 70.6B
    "mistral-7b": (7.25, None, None),  # HF mistralai/Mistral-7B-v0.3: 7.25B
    "mixtral-8x7b": (46.7, 12.9, None),  # Mistral AI "Mixtral of experts": 46.7B total, 12.9B per token
    "qwen2.5-7b": (7.61, None, 6.53),  # Qwen2.5-7B model card: 7.61B, 6.53B non-embedding
    "qwen2.5-72b": (72.7, None, 70.0),  # Qwen2.5-72B model card: 72.7B, 70.0B non-embedding
    "qwen3-30b-a3b": (30.5, 3.3, 29.9),  # Qwen3-30B-A3B card: 30.5B total, 3.3B activated, 29.9B non-emb.
    "qwen3-8b": (8.2, None, 6.95),  # Qwen3-8B model card: 8.2B, 6.95B non-embedding
    "qwen3-14b": (14.8, None, 13.2),  # Qwen3-14B model card: 14.8B, 13.2B non-embedding
    "qwen3-32b": (32.8, None, 31.2),  # Qwen3-32B model card: 32.8B, 31.2B non-embedding
    "qwen3-235b-a22b": (235.0, 22.0, 234.0),  # Qwen3-235B-A22B card: 235B total, 22B activated, 234B non-emb.
    "llama-4-scout": (109.0 - 1.7, 17.0, None),  # Meta's card: 109B total (incl. a ~1.7B vision encoder), 17B active
    "deepseek-v3": (671.0, 37.0, None),  # DeepSeek-V3 report (arXiv:2412.19437): 671B total, 37B activated
    "deepseek-v2-lite": (15.7, 2.4 + 0.21, None),  # DeepSeek-V2 report/card: 15.7B, 2.4B active (+0.21B input embedding)
    "gpt-oss-120b": (116.8, 5.1 + 0.58, None),
    # MiniMax-M2 card (M2.5 has the same config): 230B total, 10B activated, counted without the embeddings
    # (the 1.23B input + output embeddings are added here: fleetcast's active count includes them)
    "minimax-m2.5": (230.0, 10.0 + 1.23, None),  # gpt-oss card: 116.8B, 5.1B active w/o the 0.58B input embedding
}


def _numeric_leaves(entry: dict, prefix: str = ""):
    for key, value in entry.items():
        if key in ("sources", "source"):
            continue
        if isinstance(value, dict):
            yield from _numeric_leaves(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{key}"


def _raw_entries():
    """(file, kind, name, entry) for every entry of the built-in YAML files."""
    for file in ("gpus.yaml", "models.yaml", "quantization.yaml", "links.yaml"):
        doc = yaml.safe_load((CATALOG_DIR / file).read_text())
        tables = doc.get("quantization", {}) if "quantization" in doc else doc
        for kind, table in tables.items():
            for name, entry in table.items():
                yield file, kind, name, entry


def test_every_number_in_the_yaml_has_a_source():
    checked = 0
    for file, kind, name, entry in _raw_entries():
        sources = entry.get("sources", {})
        for path in _numeric_leaves(entry):
            parts = path.split(".")
            keys = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
            text = next((sources[k] for k in keys if k in sources), entry.get("source", ""))
            assert len(text.strip()) > 10, f"{file}: {kind} {name} field {path} has no source"
            checked += 1
        # YAML 1.1 reads 1.0e12 (no exponent sign) as text: every number must load as a number
        assert not [k for k, v in entry.items() if isinstance(v, str) and v[:1].isdigit()], (file, name)
    assert checked > 150


def test_gpu_numbers_have_per_field_sources_and_prices_are_marked_assumptions():
    cat = load_catalog()
    for name in cat.gpu_names():
        src = cat.source_of("gpu", name)
        assert set(src) >= {"hbm_bytes", "hbm_bw_bytes_s", "interconnect_bw_bytes_s", "power_w",
                            "price_usd_per_hour", "peak_flops.bf16"}
        assert all(src.values()), name
        assert "assumption" in src["price_usd_per_hour"]
        # purchase prices: every GPU has one, sourced; where no public list price exists it says so
        assert cat.gpu(name).purchase_usd > 0 and len(src["purchase_usd"]) > 40, name
        assert "assumption" in src["purchase_usd"] or "launch" in src["purchase_usd"], name
    for kind, names in (("model", cat.model_names()), ("weights", cat.weight_schemes()),
                        ("kv_cache", cat.kv_schemes())):
        for name in names:
            assert all(cat.source_of(kind, name).values()), (kind, name)


def test_required_entries_are_present():
    cat = load_catalog()
    assert set(GPUS) <= set(cat.gpu_names())
    assert set(MODELS) <= set(cat.model_names())
    assert {"bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq"} <= set(cat.weight_schemes())
    assert {"auto", "fp8"} <= set(cat.kv_schemes())


def test_gpu_peaks_are_dense_and_consistent():
    # A "with sparsity" figure slipped in would double a peak: tensor 16-bit
    # peaks sit 2-32x above plain FP32, 8-bit ones at 2x the 16-bit rate, and
    # the ridge point (FLOP per byte of HBM) of any inference GPU is 100-500.
    cat = load_catalog()
    for name in GPUS:
        g = cat.gpu(name)
        pf = g.peak_flops
        assert pf["bf16"] == pf["fp16"], name
        assert 2 <= pf["bf16"] / pf["fp32"] <= 32, name
        if "fp8" in pf:
            # (L40S prints 362.05 and 733: rounding on the datasheet itself)
            assert pf["fp8"] == pytest.approx(2 * pf["bf16"], rel=0.02), name
        assert 100 <= pf["bf16"] / g.hbm_bw_bytes_s <= 500, name
        assert g.interconnect_bw_bytes_s < g.hbm_bw_bytes_s
    assert "fp8" not in cat.gpu("a100-80gb").peak_flops  # Ampere has no FP8 tensor cores


@pytest.mark.parametrize("name", MODELS)
def test_parameter_counts_match_published_totals(name):
    m = load_catalog().model(name)
    total, active, non_embedding = PUBLISHED[name]
    assert m.params_total / 1e9 == pytest.approx(total, rel=0.03)
    assert m.params_active / 1e9 == pytest.approx(active or total, rel=0.03)
    if non_embedding:
        assert (m.params_total - m.params_embedding) / 1e9 == pytest.approx(non_embedding, rel=0.03)


def test_kv_bytes_per_token_matches_the_known_llama3_8b_figure():
    # Llama-3-8B is widely quoted at 128 KiB of bf16 KV per token (32 layers, 8 KV heads of 128).
    assert load_catalog().model("llama-3.1-8b").kv_bytes_per_token(2) == 128 * 1024


def test_fp8_falls_back_to_16_bit_compute_where_the_gpu_has_no_fp8():
    cat = load_catalog()
    fp8 = cat.quant("fp8", "auto")
    assert fp8.compute_dtype_on(cat.gpu("h100-sxm")) == "fp8"
    assert fp8.compute_dtype_on(cat.gpu("a100-80gb")) == "bf16"
    assert fp8.weight_bytes_per_param == 1.0  # FP8 Marlin keeps 1-byte weights
    awq = cat.quant("int4-awq", "fp8")
    assert 0.5 < awq.weight_bytes_per_param < 0.55 and awq.kv_bytes_per_elem == 1


@pytest.mark.parametrize("lookup, bad, good", [
    ("gpu", "h100", "h100-sxm"),
    ("model", "llama-3.1-8B", "llama-3.1-8b"),
    ("quant", "int4_awq", "int4-awq"),
])
def test_unknown_names_list_valid_ones_and_suggest_the_closest(lookup, bad, good):
    cat = load_catalog()
    with pytest.raises(FleetcastError) as err:
        getattr(cat, lookup)(bad)
    msg = str(err.value)
    assert bad in msg and f"Did you mean '{good}'" in msg
    valid = {"gpu": cat.gpu_names(), "model": cat.model_names(), "quant": cat.weight_schemes()}[lookup]
    assert all(v in msg for v in valid)


def test_unknown_kv_scheme_is_an_error():
    with pytest.raises(FleetcastError, match="fp8"):
        load_catalog().quant("bf16", "fp9")


def test_builtin_catalog_is_cached():
    assert load_catalog() is load_catalog()


def test_user_file_adds_a_gpu_and_overrides_a_price(tmp_path):
    user = tmp_path / "my-gpus.yaml"
    user.write_text("""
gpus:
  h100-sxm:
    price_usd_per_hour: 1.85
  my-gpu:
    peak_flops: {bf16: 500e12, fp32: 50.0e+12}
    hbm_bytes: 64.0e+9
    hbm_bw_bytes_s: 2.0e+12
    interconnect_bw_bytes_s: 100.0e+9
    power_w: 500
    price_usd_per_hour: 1.0
    sources: {hbm_bytes: "vendor sheet"}
""")
    cat = load_catalog([user])
    builtin = load_catalog()
    assert cat.gpu("h100-sxm").price_usd_per_hour == 1.85
    assert builtin.gpu("h100-sxm").price_usd_per_hour != 1.85  # the cached built-in is untouched
    assert cat.gpu("h100-sxm").peak_flops == builtin.gpu("h100-sxm").peak_flops  # merged, not replaced
    assert cat.gpu("my-gpu").peak_flops["bf16"] == 500e12  # "500e12" (YAML text) read as a number
    assert "my-gpu" in cat.gpu_names() and "my-gpu" not in builtin.gpu_names()
    src = cat.source_of("gpu", "my-gpu")
    assert src["hbm_bytes"] == "vendor sheet" and str(user) in src["power_w"]
    assert str(user) in cat.source_of("gpu", "h100-sxm")["price_usd_per_hour"]


def test_user_file_adds_a_model_and_a_quantization(tmp_path):
    user = tmp_path / "extra.yaml"
    user.write_text("""
models:
  tiny:
    num_layers: 2
    hidden_size: 64
    num_heads: 4
    num_kv_heads: 2
    intermediate_size: 128
    vocab_size: 1000
    max_position_embeddings: 2048
quantization:
  weights:
    int3: {weight_bytes_per_param: 0.4, compute_dtype: bf16}
""")
    cat = load_catalog([user])
    assert cat.model("tiny").head_dim == 16
    assert cat.quant("int3").weight_bytes_per_param == 0.4


@pytest.mark.parametrize("text, needle", [
    ("gpus: {h100-sxm: {price_usd_per_hour: [1, 2]}}", "price_usd_per_hour"),
    ("gpus: {h100-sxm: {price_per_hour: 2}}", "price_per_hour"),
    ("gpus: {new-gpu: {power_w: 100}}", "missing required"),
    ("gpus: {h100-sxm: {peak_flops: {bf17: 1.0e+15}}}", "bf17"),
    ("models: {x: {num_layers: -3}}", "num_layers"),
    ("gpu: {}", "gpu"),
    ("gpus: [1, 2]", "gpus"),
    ("gpus: {h100-sxm: {hbm_bytes: 80GB}}", "hbm_bytes"),
    ("gpus:\n  a: [unclosed\n", "YAML"),
    ("gpus: {h100-sxm: {perf_defaults: {e_speed: 0.5}}}", "e_speed"),
    ("gpus: {h100-sxm: {perf_defaults: {e_compute: 1.5}}}", "at most 1"),
])
def test_malformed_user_file_names_the_file_and_the_problem(tmp_path, text, needle):
    user = tmp_path / "bad.yaml"
    user.write_text(text)
    with pytest.raises(FleetcastError) as err:
        load_catalog([user])
    assert str(user) in str(err.value) and needle in str(err.value)


def test_missing_user_file_is_a_user_error(tmp_path):
    with pytest.raises(FleetcastError, match="nope.yaml"):
        load_catalog([tmp_path / "nope.yaml"])


def test_every_gpu_names_a_sourced_architecture_and_its_kernel_data():
    """Efficiencies come from the architecture (fitted to a sibling's measured kernels),
    not from per-GPU guesses; every built-in GPU names its architecture with a source."""
    from sim.catalog import load_architectures

    cat = load_catalog()
    archs = load_architectures()
    for name in cat.gpu_names():
        gpu = cat.gpu(name)
        assert gpu.architecture in archs, name
        assert gpu.sources["architecture"], name
        assert not gpu.perf_defaults, name  # the architecture's fit replaces the old guesses
        if gpu.kernel_data:
            assert gpu.sources["kernel_data"].startswith("aiconfigurator-core"), name
    assert {n for n in cat.gpu_names() if not cat.gpu(n).kernel_data} == {"l4", "rtx-4090", "mi300x"}
    for arch, sibling in (("hopper", "h100_sxm"), ("ada", "l40s"), ("ampere", "a100_sxm"), ("blackwell", "b200_sxm")):
        a = archs[arch]
        assert a.sibling == sibling and 0 < a.e_memory <= 1 and 0 < a.e_compute["bf16"] <= 1
        assert "aiconfigurator-core 0.12.0 (Apache-2.0)" in a.source and f"systems/data/{sibling}/gemm" in a.source
    assert not archs["cdna3"].e_compute and "no sibling" in archs["cdna3"].source


def test_unknown_architecture_in_a_user_entry_is_refused(tmp_path):
    f = tmp_path / "cat.yaml"
    f.write_text("gpus: {h100-sxm: {architecture: hoper}}")
    with pytest.raises(FleetcastError, match="Did you mean 'hopper'"):
        load_catalog([f])


def test_pool_without_profile_uses_its_architecture_and_says_so():
    from sim.catalog import load_architectures
    from sim.perf.perf_model import PerfCoefficients
    from sim.perf.profiles import coefficients_for
    from sim.scenario.fleet_spec import PoolSpec

    cat = load_catalog()
    hopper = load_architectures()["hopper"]
    pool = PoolSpec(name="p", gpu="h100-sxm", replicas=1, model="llama-3.1-8b")
    c = coefficients_for(pool, Path("."), cat.gpu("h100-sxm"), cat.quant("bf16"))
    assert (c.e_compute, c.e_memory) == (hopper.e_compute["bf16"], hopper.e_memory)
    assert c.t_step_s == PerfCoefficients().t_step_s  # CPU overheads: fleetcast defaults
    assert c.source.startswith("hopper efficiencies fitted to h100_sxm") and "uncalibrated" in c.source
    c8 = coefficients_for(pool, Path("."), cat.gpu("h100-sxm"), cat.quant("fp8"))
    assert c8.e_compute == hopper.e_compute["fp8"]  # the fp8 kernels' own efficiency, never bf16's
    # a GPU of an architecture without a sibling and without achievable rates: fleetcast's defaults
    bare = dataclasses.replace(cat.gpu("mi300x"), achievable_flops={}, achievable_bw_bytes_s=0.0)
    mi = PoolSpec(name="p", gpu="mi300x", replicas=1, model="llama-3.1-8b")
    got = coefficients_for(mi, Path("."), bare)
    assert dataclasses.replace(got, e_attn_compute=0.0, source=PerfCoefficients().source) == PerfCoefficients()
    # ... and, having no kernel data, prefill attention at 0.558 x the default e_compute 0.55
    assert got.e_attn_compute == pytest.approx(0.3069) and "0.558 x the 16-bit linear e_compute 0.550" in got.source


def test_catalog_command_prints_sources_on_request(capsys):
    assert main(["catalog", "--sources"]) == 0
    out = capsys.readouterr().out
    # the line as gpus.yaml gives it (a datasheet figure), and a model's one source
    assert "GPU h100-sxm hbm_bytes: NVIDIA H100 datasheet (SXM): GPU memory 80 GB HBM3" in out
    assert "model llama-3.1-70b: " in out
    assert main(["catalog"]) == 0
    assert "fleetcast catalog --sources" in capsys.readouterr().out
