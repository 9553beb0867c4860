"""Fuzzing the spec loaders: model config.json, model YAML and hardware YAML give a spec or one clean
InputError that names the file; never another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings

from llmsim.errors import InputError
from llmsim.specs import load_hardware, load_model

from .conftest import REPO, dump
from .mutations import clean, mutated_bytes, mutated_mapping

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

#: A Mixtral-style config.json (every key the HuggingFace reader looks at).
HF_CONFIG: dict = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
    "vocab_size": 32000, "max_position_embeddings": 32768, "tie_word_embeddings": False, "head_dim": 128,
    "num_local_experts": 8, "num_experts_per_tok": 2, "attention_bias": False, "rms_norm_eps": 1e-5,
}
#: A Qwen2-MoE-style config.json (shared experts of another width).
QWEN_MOE_CONFIG: dict = {
    "architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "hidden_size": 2048,
    "num_hidden_layers": 24, "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 5632,
    "vocab_size": 151936, "max_position_embeddings": 8192, "num_experts": 60, "num_experts_per_tok": 4,
    "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
}
#: A model YAML with every field, and one built on a base model.
MODEL_YAML: dict = {
    "name": "tiny", "num_layers": 4, "hidden_size": 512, "num_heads": 8, "num_kv_heads": 2,
    "intermediate_size": 1024, "vocab_size": 1000, "head_dim": 64, "max_context_tokens": 2048,
    "tied_embeddings": True, "gated_mlp": True, "qkv_bias": False, "num_experts": 4, "experts_per_token": 2,
    "expert_intermediate_size": 256, "num_shared_experts": 1, "source": "hand-written",
}
BASED_YAML: dict = {"base": "llama-3-8b", "name": "llama-3-8b-short", "num_layers": 8, "max_context_tokens": 2048}

HARDWARE_TEXT = (REPO / "hardware_profiles" / "h100-sxm.yaml").read_text()
HARDWARE: dict = yaml.safe_load(HARDWARE_TEXT)


def _load_model_file(name: str, data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return clean(load_model, path, names=name)


def _load_hardware_file(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpu.yaml"
        path.write_bytes(data)
        return clean(load_hardware, str(path), names="gpu.yaml")


# -- config.json -----------------------------------------------------------------------------------------
def _json(data) -> bytes:
    return json.dumps(data).encode()


@FAST
@given(mutated_mapping(HF_CONFIG) | mutated_mapping(QWEN_MOE_CONFIG))
@example({**HF_CONFIG, "architectures": {"a": 1}})                # KeyError indexing a dict
@example({**HF_CONFIG, "architectures": 5})                       # TypeError: int not subscriptable
@example({**HF_CONFIG, "num_local_experts": "x"})                 # int('x'): ValueError
@example({**HF_CONFIG, "num_experts_per_tok": [1]})               # int([1]): TypeError
@example({**QWEN_MOE_CONFIG, "moe_intermediate_size": "wide"})    # int('wide') in the shared-expert ratio
@example({**HF_CONFIG, "tie_word_embeddings": "false"})           # bool('false') is True
@example({**HF_CONFIG, "num_attention_heads": 10**30})            # fine: sizes are bounded now
def test_mutated_config_json(data):
    _load_model_file("config.json", _json(data))


@FAST
@given(mutated_bytes(json.dumps(HF_CONFIG, indent=2)))
@example(b'{"architectures": ["LlamaForCausalLM"], "hidden_size": ' + b"9" * 5000 + b"}")  # int too long: ValueError
@example(b"[" * 100000)                                                                      # RecursionError
def test_broken_config_json_text(text):
    _load_model_file("config.json", text)


# -- model YAML ------------------------------------------------------------------------------------------
@FAST
@given(mutated_mapping(MODEL_YAML) | mutated_mapping(BASED_YAML))
@example({**MODEL_YAML, "num_heads": "eight"})      # `num_heads > 0` on a str: TypeError
@example({**MODEL_YAML, "hidden_size": [512]})      # `[512] // 8`: TypeError
@example({**MODEL_YAML, "name": 7})                 # a name that is not text
@example({**MODEL_YAML, "qkv_bias": "yes"})         # truthy text taken as true
@example({**BASED_YAML, "base": ["llama-3-8b"]})    # str(list) looked up as a model name
def test_mutated_model_yaml(data):
    _load_model_file("model.yaml", dump(data).encode())


@FAST
@given(mutated_bytes(dump(MODEL_YAML)))
def test_broken_model_yaml_text(text):
    _load_model_file("model.yaml", text)


def test_model_yaml_naming_itself_as_base_is_a_clean_error(tmp_path):
    """Before: RecursionError (load_model -> _from_yaml -> load_model ...)."""
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\nnum_layers: 4\n")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    for name in ("a.yaml", "self.yaml"):
        exc = clean(load_model, tmp_path / name)
        assert isinstance(exc, InputError) and "cycle" in str(exc)


# -- hardware YAML ---------------------------------------------------------------------------------------
@FAST
@given(mutated_mapping(HARDWARE))
@example({**HARDWARE, "memory_bytes": 10**400})                                  # float(): OverflowError
@example({**HARDWARE, "memory_bytes": "inf"})                                    # infinite memory accepted
@example({**HARDWARE, "price_per_hour_usd": float("nan")})                       # NaN price accepted
@example({**HARDWARE, "intra_node_link": {**HARDWARE["intra_node_link"], "bandwith_bytes_per_s": 1e9}})
@example({**HARDWARE, "intra_node_link": {"kind": "nvlink", "latency_s": 1e-6}})  # TypeError text leaked
@example({**HARDWARE, "sources": 5})                                              # tuple(5): TypeError text
@example({**HARDWARE, "sm_count": "many"})                                        # accepted unchecked
@example({**HARDWARE, "price_per_hour_usd": None})                               # None reached a comparison
def test_mutated_hardware_yaml(data):
    _load_hardware_file(dump(data).encode())


@FAST
@given(mutated_bytes(HARDWARE_TEXT))
def test_broken_hardware_yaml_text(text):
    _load_hardware_file(text)


# -- files that are not files ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["config.json", "model.yaml"])
def test_model_path_that_is_a_folder_or_missing(tmp_path, name):
    (tmp_path / name).mkdir()
    assert isinstance(clean(load_model, tmp_path / name), InputError)
    assert isinstance(clean(load_model, tmp_path / "missing" / name), InputError)


def test_hardware_path_that_is_a_folder_or_empty(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    for name in ("dir.yaml", "empty.yaml", "missing.yaml"):
        assert isinstance(clean(load_hardware, str(tmp_path / name)), InputError)
