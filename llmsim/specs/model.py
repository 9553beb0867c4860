"""Model specs: the shapes of a decoder-only transformer that the cost model needs.

A :class:`ModelSpec` holds architecture numbers only (no weights). Built-in specs come from the public
HuggingFace ``config.json`` of each model (cited per entry). Anywhere a model name is accepted, a path to a
HuggingFace ``config.json`` (Llama, Mistral, Mixtral, Qwen2 architectures) or to a YAML file with the spec's
fields is accepted too; ``overrides`` replace fields (e.g. ``{"num_layers": 8}``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from llmsim.errors import InputError, did_you_mean, unknown_name
from llmsim.specs._yaml import exists, is_file, read_yaml_mapping

#: Bytes per element of each supported storage dtype (int4: two values per byte).
DTYPE_BYTES: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}

#: Upper bound on every size field (2**40): far above any real model, low enough that products of sizes
#: (parameter and byte counts) stay finite floats.
MAX_SIZE = 2**40


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a decoder-only transformer (dense or mixture-of-experts).

    All sizes are element counts, not bytes. ``head_dim`` defaults to ``hidden_size // num_heads``.
    MoE models set ``num_experts`` > 0: each token is routed to ``experts_per_token`` of them, each expert a
    (gated) MLP of width ``expert_intermediate_size``; ``num_shared_experts`` always-on experts of the same
    width are added (DeepSeek/Qwen-MoE style). ``intermediate_size`` is the dense MLP width (unused by
    MoE layers unless there are no experts).
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    head_dim: int = 0
    max_context_tokens: int = 4096
    tied_embeddings: bool = False
    gated_mlp: bool = True
    qkv_bias: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    num_shared_experts: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InputError("expected a model name (text)", where="name", value=self.name)
        if not isinstance(self.source, str):
            raise InputError("expected text", where="source", value=self.source)
        for name in ("tied_embeddings", "gated_mlp", "qkv_bias"):
            if not isinstance(getattr(self, name), bool):
                raise InputError("expected true or false", where=name, value=getattr(self, name))
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", 0)
        _positive_int(self, "num_heads")
        if not self.head_dim and isinstance(self.hidden_size, int) and not isinstance(self.hidden_size, bool):
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        for name in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size",
                     "vocab_size", "head_dim", "max_context_tokens"):
            _positive_int(self, name)
        for name in ("num_experts", "experts_per_token", "expert_intermediate_size", "num_shared_experts"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
                raise InputError(f"expected an integer from 0 to {MAX_SIZE}", where=name, value=value)
        if self.num_heads % self.num_kv_heads:
            raise InputError(f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads",
                             where="num_kv_heads", value=self.num_kv_heads)
        if self.num_experts and not (1 <= self.experts_per_token <= self.num_experts):
            raise InputError(f"expected 1..num_experts ({self.num_experts}) for a MoE model",
                             where="experts_per_token", value=self.experts_per_token)
        if self.num_experts and not self.expert_intermediate_size:
            object.__setattr__(self, "expert_intermediate_size", self.intermediate_size)

    @property
    def is_moe(self) -> bool:
        """True for a mixture-of-experts model."""
        return self.num_experts > 0

    @property
    def q_size(self) -> int:
        """Query projection width (elements per token)."""
        return self.num_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of K (and of V) per token, all KV heads (elements)."""
        return self.num_kv_heads * self.head_dim

    def mlp_weight_params(self) -> int:
        """Parameters of one layer's MLP (all experts, router and shared experts for MoE)."""
        mats = 3 if self.gated_mlp else 2
        if not self.is_moe:
            return mats * self.hidden_size * self.intermediate_size
        per_expert = mats * self.hidden_size * self.expert_intermediate_size
        router = self.hidden_size * self.num_experts
        return (self.num_experts + self.num_shared_experts) * per_expert + router

    def attention_weight_params(self) -> int:
        """Parameters of one layer's QKV and output projections (biases included)."""
        qkv = self.hidden_size * (self.q_size + 2 * self.kv_size)
        bias = (self.q_size + 2 * self.kv_size) if self.qkv_bias else 0
        return qkv + bias + self.q_size * self.hidden_size

    def layer_params(self) -> int:
        """Parameters of one decoder layer (attention, MLP, two norms)."""
        return self.attention_weight_params() + self.mlp_weight_params() + 2 * self.hidden_size

    def embedding_params(self) -> int:
        """Input embedding plus LM head parameters (one matrix when tied) and the final norm."""
        matrices = 1 if self.tied_embeddings else 2
        return matrices * self.vocab_size * self.hidden_size + self.hidden_size

    def total_params(self) -> int:
        """All parameters of the model."""
        return self.num_layers * self.layer_params() + self.embedding_params()

    def active_params_per_token(self) -> int:
        """Parameters one token multiplies through (MoE: only its routed and shared experts)."""
        if not self.is_moe:
            return self.total_params()
        mats = 3 if self.gated_mlp else 2
        active_mlp = ((self.experts_per_token + self.num_shared_experts) * mats * self.hidden_size
                      * self.expert_intermediate_size + self.hidden_size * self.num_experts)
        layer = self.attention_weight_params() + active_mlp + 2 * self.hidden_size
        return self.num_layers * layer + self.embedding_params()

    def kv_bytes_per_token(self, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes one token occupies over all layers: 2 (K and V) x layers x kv_heads x head_dim x dtype."""
        return 2.0 * self.num_layers * self.kv_size * DTYPE_BYTES[kv_dtype]

    def with_overrides(self, overrides: Mapping[str, Any], *, source: object = None) -> "ModelSpec":
        """A copy with fields replaced; unknown field names are an :class:`InputError`."""
        known = {f.name for f in dataclasses.fields(self)}
        for key in overrides:
            if key not in known:
                raise InputError(f"unknown model field{did_you_mean(key, known)}; expected one of "
                                 f"{', '.join(sorted(known))}", source=source, where=key)
        try:
            return dataclasses.replace(self, **dict(overrides))
        except InputError as exc:
            raise exc.located(source=source) from None


def _positive_int(spec: ModelSpec, name: str) -> None:
    value = getattr(spec, name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise InputError("expected a positive integer", where=name, value=value)
    if value > MAX_SIZE:
        raise InputError(f"expected a positive integer up to {MAX_SIZE}", where=name, value=value)


# Built-in models. Each entry's numbers are read from the model's public HuggingFace config.json
# (huggingface.co/<repo>/blob/main/config.json): hidden_size, num_hidden_layers, num_attention_heads,
# num_key_value_heads, intermediate_size, vocab_size, max_position_embeddings, tie_word_embeddings.
_BUILTIN_ARGS: dict[str, dict[str, Any]] = {
    # meta-llama/Llama-2-7b-hf
    "llama-2-7b": dict(num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=32, intermediate_size=11008,
                       vocab_size=32000, max_context_tokens=4096, source="meta-llama/Llama-2-7b-hf config.json"),
    # meta-llama/Llama-2-13b-hf
    "llama-2-13b": dict(num_layers=40, hidden_size=5120, num_heads=40, num_kv_heads=40, intermediate_size=13824,
                        vocab_size=32000, max_context_tokens=4096, source="meta-llama/Llama-2-13b-hf config.json"),
    # meta-llama/Llama-2-70b-hf (GQA with 8 KV heads)
    "llama-2-70b": dict(num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8, intermediate_size=28672,
                        vocab_size=32000, max_context_tokens=4096, source="meta-llama/Llama-2-70b-hf config.json"),
    # meta-llama/Meta-Llama-3-8B
    "llama-3-8b": dict(num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=8, intermediate_size=14336,
                       vocab_size=128256, max_context_tokens=8192, source="meta-llama/Meta-Llama-3-8B config.json"),
    # meta-llama/Meta-Llama-3-70B
    "llama-3-70b": dict(num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8, intermediate_size=28672,
                        vocab_size=128256, max_context_tokens=8192, source="meta-llama/Meta-Llama-3-70B config.json"),
    # meta-llama/Llama-3.1-405B
    "llama-3.1-405b": dict(num_layers=126, hidden_size=16384, num_heads=128, num_kv_heads=8,
                           intermediate_size=53248, vocab_size=128256, max_context_tokens=131072,
                           source="meta-llama/Llama-3.1-405B config.json"),
    # mistralai/Mistral-7B-v0.1 (sliding window 4096 is not modelled: attention is over the full context)
    "mistral-7b": dict(num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=8, intermediate_size=14336,
                       vocab_size=32000, max_context_tokens=32768, source="mistralai/Mistral-7B-v0.1 config.json"),
    # mistralai/Mixtral-8x7B-v0.1: 8 experts, top-2 routing
    "mixtral-8x7b": dict(num_layers=32, hidden_size=4096, num_heads=32, num_kv_heads=8, intermediate_size=14336,
                         vocab_size=32000, max_context_tokens=32768, num_experts=8, experts_per_token=2,
                         expert_intermediate_size=14336, source="mistralai/Mixtral-8x7B-v0.1 config.json"),
    # Qwen/Qwen2.5-7B: QKV projections carry a bias
    "qwen2.5-7b": dict(num_layers=28, hidden_size=3584, num_heads=28, num_kv_heads=4, intermediate_size=18944,
                       vocab_size=152064, max_context_tokens=32768, qkv_bias=True,
                       source="Qwen/Qwen2.5-7B config.json"),
    # Qwen/Qwen2.5-72B
    "qwen2.5-72b": dict(num_layers=80, hidden_size=8192, num_heads=64, num_kv_heads=8, intermediate_size=29568,
                        vocab_size=152064, max_context_tokens=32768, qkv_bias=True,
                        source="Qwen/Qwen2.5-72B config.json"),
}

BUILTIN_MODELS: dict[str, ModelSpec] = {name: ModelSpec(name=name, **args) for name, args in _BUILTIN_ARGS.items()}

_HF_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM",
                     "Qwen2MoeForCausalLM")


def load_model(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None,
               *, base_dir: Path | None = None) -> ModelSpec:
    """Resolve a built-in name, a HuggingFace ``config.json`` or a model YAML into a :class:`ModelSpec`.

    Relative paths resolve against ``base_dir`` (the scenario's folder) when given.
    Raises :class:`InputError` for unknown names, unreadable or malformed files.
    """
    text = str(name_or_path)
    if text in BUILTIN_MODELS:
        spec = BUILTIN_MODELS[text]
    else:
        path = Path(text)
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        if not (path.suffix in (".json", ".yaml", ".yml") or "/" in text or exists(path)):
            raise unknown_name("model", text, BUILTIN_MODELS)
        if not is_file(path):
            raise InputError(f"model file not found: {path} (expected a built-in model name, a HuggingFace "
                             "config.json or a model YAML)", value=text)
        spec = _from_hf_config(path) if path.suffix == ".json" else _from_yaml(path)
    return spec.with_overrides(overrides) if overrides else spec


def _from_hf_config(path: Path) -> ModelSpec:
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); expected a JSON file", source=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc.__class__.__name__}", source=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", source=path, where=f"line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:  # an integer too long to convert, or nesting too deep
        raise InputError(f"malformed JSON: {exc.__class__.__name__}: {exc}", source=path) from None
    if not isinstance(cfg, dict):
        raise InputError("expected a JSON object (a HuggingFace config.json)", source=path)
    archs = cfg.get("architectures")
    if not isinstance(archs, list) or not archs:
        raise InputError(f"expected a list holding one of {', '.join(_HF_ARCHITECTURES)}", source=path,
                         where="architectures", value=archs)
    arch = archs[0]
    if arch not in _HF_ARCHITECTURES:
        raise InputError(f"unsupported architecture; supported: {', '.join(_HF_ARCHITECTURES)}",
                         source=path, where="architectures", value=arch)
    return _spec_from_hf_dict(cfg, name=path.parent.name or path.stem, source=path)


def _hf_int(cfg: Mapping[str, Any], key: str, path: Path, default: Any = None) -> int:
    value = cfg.get(key, default)
    if value is None:
        raise InputError("required field missing from config.json", source=path, where=key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError("expected an integer", source=path, where=key, value=value)
    return value


def _hf_optional_int(cfg: Mapping[str, Any], path: Path, *keys: str) -> int:
    """The first of ``keys`` present and not null (0 when none is): a non-negative integer."""
    for key in keys:
        value = cfg.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError("expected a non-negative integer", source=path, where=key, value=value)
        return value
    return 0


def _hf_bool(cfg: Mapping[str, Any], key: str, path: Path) -> bool:
    value = cfg.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError("expected true or false", source=path, where=key, value=value)
    return value


def _spec_from_hf_dict(cfg: Mapping[str, Any], *, name: str, source: Path) -> ModelSpec:
    heads = _hf_int(cfg, "num_attention_heads", source)
    moe_width = _hf_optional_int(cfg, source, "moe_intermediate_size")
    shared_width = _hf_optional_int(cfg, source, "shared_expert_intermediate_size")
    num_experts = _hf_optional_int(cfg, source, "num_local_experts") or _hf_optional_int(cfg, source, "num_experts")
    head_dim = cfg.get("head_dim")
    model_type = cfg.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise InputError("expected text", source=source, where="model_type", value=model_type)
    args = dict(
        name=name,
        num_layers=_hf_int(cfg, "num_hidden_layers", source),
        hidden_size=_hf_int(cfg, "hidden_size", source),
        num_heads=heads,
        num_kv_heads=_hf_int(cfg, "num_key_value_heads", source, default=heads),
        intermediate_size=_hf_int(cfg, "intermediate_size", source),
        vocab_size=_hf_int(cfg, "vocab_size", source),
        head_dim=0 if head_dim is None else head_dim,
        max_context_tokens=_hf_int(cfg, "max_position_embeddings", source, default=4096),
        tied_embeddings=_hf_bool(cfg, "tie_word_embeddings", source),
        qkv_bias=_hf_bool(cfg, "attention_bias", source) or str(model_type).startswith("qwen2"),
        num_experts=num_experts,
        experts_per_token=_hf_optional_int(cfg, source, "num_experts_per_tok"),
        expert_intermediate_size=moe_width or (cfg["intermediate_size"] if num_experts else 0),
        num_shared_experts=(1 if shared_width else 0),
        source=str(source),
    )
    if shared_width and moe_width and shared_width != moe_width:
        # A shared expert of a different width is modelled as ceil(width ratio) experts of the routed width.
        args["num_shared_experts"] = -(-shared_width // moe_width)
    try:
        return ModelSpec(**args)
    except InputError as exc:
        raise exc.located(source=source) from None


def _from_yaml(path: Path, chain: tuple[Path, ...] = ()) -> ModelSpec:
    data = read_yaml_mapping(path)
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base.strip():
            raise InputError("expected a built-in model name or a model file", source=path, where="base",
                             value=base)
        here = path.resolve()
        if here in chain:
            raise InputError("model files name each other as base (a cycle)", source=path, where="base", value=base)
        base_path = path.parent / base
        try:
            spec = _from_yaml(base_path, (*chain, here)) if base not in BUILTIN_MODELS and base_path.suffix in (
                ".yaml", ".yml") and is_file(base_path) else load_model(base, base_dir=path.parent)
        except InputError as exc:
            if exc.source is not None:
                raise
            raise InputError(exc.message, source=path, where="base", value=exc.value) from None
        return spec.with_overrides({"name": data.pop("name", path.stem), **data}, source=path)
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    for key in data:
        if key not in known:
            raise InputError(f"unknown model field{did_you_mean(key, known)}; expected one of "
                             f"{', '.join(sorted(known))}", source=path, where=key)
    data.setdefault("name", path.stem)
    data.setdefault("source", str(path))
    try:
        return ModelSpec(**data)
    except InputError as exc:
        raise exc.located(source=path) from None
    except TypeError as exc:  # a required field is missing
        raise InputError(f"incomplete model spec: {exc}", source=path) from None
