"""Model and hardware specs: built-ins, HuggingFace config.json, YAML files, and bad input."""

from __future__ import annotations

import json

import pytest

from llmsim.errors import InputError
from llmsim.specs import BUILTIN_MODELS, Parallelism, builtin_hardware_names, load_hardware, load_model

LLAMA3_8B_CONFIG = {  # fields of meta-llama/Meta-Llama-3-8B config.json
    "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "vocab_size": 128256}


def test_builtin_models_are_all_there():
    assert set(BUILTIN_MODELS) == {"llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b",
                                   "llama-3.1-405b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "qwen2.5-72b"}
    sizes = {n: m.total_params() / 1e9 for n, m in BUILTIN_MODELS.items()}
    assert sizes["llama-3.1-405b"] == pytest.approx(405.8, abs=1.0)
    assert sizes["llama-2-70b"] == pytest.approx(69.0, abs=0.5)
    assert sizes["mixtral-8x7b"] == pytest.approx(46.7, abs=0.3)
    assert sizes["qwen2.5-7b"] == pytest.approx(7.6, abs=0.1)


def test_hf_config_parses_into_the_builtin_spec(tmp_path):
    path = tmp_path / "Meta-Llama-3-8B" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(LLAMA3_8B_CONFIG))
    spec = load_model(str(path))
    builtin = BUILTIN_MODELS["llama-3-8b"]
    for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
                  "vocab_size", "max_context_tokens", "tied_embeddings", "num_experts"):
        assert getattr(spec, field) == getattr(builtin, field), field


def test_overrides_and_yaml_models(tmp_path):
    assert load_model("llama-3-8b", {"num_layers": 8}).num_layers == 8
    path = tmp_path / "small.yaml"
    path.write_text("base: llama-3-8b\nname: small\nnum_layers: 4\n")
    assert load_model(str(path)).num_layers == 4
    with pytest.raises(InputError, match="num_layres.*did you mean 'num_layers'"):
        load_model("llama-3-8b", {"num_layres": 8})


@pytest.mark.parametrize("content, match", [
    ("{not json", "malformed JSON"),
    ('{"architectures": ["GPT2LMHeadModel"]}', "unsupported architecture"),
    ('{"architectures": ["LlamaForCausalLM"], "hidden_size": 4096}', "num_attention_heads"),
    ('{"architectures": ["LlamaForCausalLM"], "hidden_size": -1, "num_attention_heads": 32, '
     '"num_hidden_layers": 2, "intermediate_size": 8, "vocab_size": 8}', "hidden_size"),
])
def test_malformed_config_json_is_a_clear_error(tmp_path, content, match):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        load_model(str(path))
    assert str(path) in str(info.value)


def test_unknown_model_and_gpu_list_the_known_ones():
    with pytest.raises(InputError, match="did you mean 'llama-3-8b'.*known: llama-2-13b"):
        load_model("llama-3-8")
    with pytest.raises(InputError, match="known: a100-40g-sxm"):
        load_hardware("h1000")


def test_every_builtin_gpu_loads_with_sources():
    names = builtin_hardware_names()
    assert {"a100-40g-sxm", "a100-80g-sxm", "a100-80g-pcie", "h100-sxm", "h100-pcie", "h200-sxm", "l40s", "b200",
            "mi300x"} <= set(names)
    for name in names:
        gpu = load_hardware(name)
        assert gpu.sources and gpu.memory_bytes > 0 and gpu.price_per_hour_usd > 0


def test_user_gpu_yaml_by_path(tmp_path):
    path = tmp_path / "my-gpu.yaml"
    path.write_text("name: my-gpu\npeak_flops_per_s: {bf16: 500e12}\nmemory_bytes: 48e9\n"
                    "memory_bandwidth_bytes_per_s: 1.5e12\n"
                    "intra_node_link: {kind: pcie, bandwidth_bytes_per_s: 32e9, latency_s: 1e-5}\n")
    gpu = load_hardware(str(path))
    assert gpu.peak_for("bf16") == 500e12 and gpu.peak_for("fp8") == 500e12
    path.write_text("name: x\npeak_flops_per_s: {bf17: 1}\n")
    with pytest.raises(InputError, match="peak_flops_per_s|memory_bytes"):
        load_hardware(str(path))


def test_tp_must_divide_heads():
    with pytest.raises(InputError, match="tp=3 does not divide the 32 attention heads"):
        Parallelism(3).check_model(BUILTIN_MODELS["llama-3-8b"])
    with pytest.raises(InputError, match="positive integer"):
        Parallelism(0)
