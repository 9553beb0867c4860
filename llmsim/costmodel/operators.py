"""FLOPs and bytes of every operator of one iteration, per GPU, as a table of linear coefficients.

Every operator's FLOPs, bytes, GEMM row count and collective message size is a linear combination of the
batch features (:class:`~llmsim.costmodel.batch.BatchFeatures`) plus, for MoE models, the expected number
of distinct experts the batch touches. :class:`OperatorTable` holds those coefficients for one (model,
parallelism, precision), built once; pricing many iterations is then a few small matrix products.

Counts are for ONE GPU of a TP group and for ALL layers of the replica (pipeline stages run one after
another for a given iteration). Conventions:

* A linear layer ``Y[M,N] = X[M,K] W[N,K]^T`` costs ``2 M N K`` FLOPs and reads ``N K`` weights plus ``M K``
  activations and writes ``M N`` (the ideal bytes: each operand moved once).
* Attention FLOPs count QK^T and PV: ``4 x pairs x heads x head_dim``. Prefill attention reads each chunk's
  prior and new KV once (FlashAttention keeps the tile in SRAM); decode attention reads each sequence's
  whole KV cache once (memory-bound, GQA-aware: KV heads, not query heads). Both write the new tokens' K/V.
* Elementwise kernels (norms, RoPE, activation, residual add, embedding, sampling) are memory-bound;
  their bytes are reads plus writes.
* MoE layers read only the experts the batch touches: under uniform top-k routing, T tokens touch
  ``E (1 - (1 - k/E)^T)`` distinct experts in expectation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llmsim.costmodel.batch import BatchFeatures
from llmsim.specs.model import DTYPE_BYTES, ModelSpec
from llmsim.specs.parallelism import Parallelism

ACT_BYTES = 2.0  # activations are bf16/fp16 (bytes per element)
LOGIT_BYTES = 4.0  # logits are sampled in fp32

#: Rows of the feature matrix the coefficients multiply (``touched`` = expected distinct MoE experts).
FEATURES = ("one", "prefill_tokens", "prefill_chunks", "prefill_attn_pairs", "prefill_kv_tokens", "decode_seqs",
            "decode_ctx_tokens", "sampled", "new_tokens", "touched", "mixed_decode_ctx")
_F = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class Precision:
    """Storage dtypes of weights and KV cache. int4 is weight-only: its math runs in bf16."""

    weights: str = "bf16"
    kv: str = "bf16"

    def math_dtype(self, gpu_supports) -> str:
        """Dtype the GEMMs run in: fp8/int8 on GPUs with such tensor cores, bf16 otherwise."""
        if self.weights in ("fp8", "int8") and gpu_supports(self.weights):
            return self.weights
        return "fp16" if self.weights == "fp16" else "bf16"


def lin(**coefficients: float) -> np.ndarray:
    """A coefficient row over :data:`FEATURES`, e.g. ``lin(new_tokens=2.0, one=5.0)``."""
    row = np.zeros(len(FEATURES))
    for name, value in coefficients.items():
        row[_F[name]] = value
    return row


@dataclass(frozen=True)
class Operator:
    """One operator: coefficient rows for FLOPs, bytes and size variables, and how it is launched.

    ``active_on`` names the feature that must be > 0 for the operator to run; ``kernels`` is the number of
    launches per iteration when it runs. ``tokens`` is the GEMM's M (rows); ``message`` the bytes of one
    collective call. ``gemm_shape`` is (N, K) per GPU.
    """

    name: str
    op_class: str
    flops: np.ndarray
    bytes: np.ndarray
    kernels: float
    active_on: str
    math_dtype: str = "bf16"
    gemm_shape: tuple[int, int] | None = None
    tokens: np.ndarray | None = None
    message: np.ndarray | None = None


@dataclass
class OperatorTable:
    """All operators of one replica configuration, with stacked coefficient matrices for fast evaluation."""

    model: ModelSpec
    operators: list[Operator]
    flops: np.ndarray = field(init=False)
    bytes: np.ndarray = field(init=False)
    active_index: np.ndarray = field(init=False)
    kernels: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.flops = np.stack([op.flops for op in self.operators])
        self.bytes = np.stack([op.bytes for op in self.operators])
        self.active_index = np.array([_F[op.active_on] for op in self.operators])
        self.kernels = np.array([op.kernels for op in self.operators])

    def feature_matrix(self, f: BatchFeatures) -> np.ndarray:
        """Rows of :data:`FEATURES` by iterations (float64)."""
        n = len(f)
        x = np.empty((len(FEATURES), n))
        x[0] = 1.0
        for i, name in enumerate(FEATURES[1:8], start=1):
            x[i] = getattr(f, name)
        x[_F["new_tokens"]] = f.prefill_tokens + f.decode_seqs
        x[_F["touched"]] = _touched_experts(self.model, x[_F["new_tokens"]])
        # decode (query, key) pairs of iterations that also prefill: one varlen attention call serves both
        x[_F["mixed_decode_ctx"]] = np.where(f.prefill_tokens > 0, f.decode_ctx_tokens + f.decode_seqs, 0.0)
        return x


def _touched_experts_scalar(model: ModelSpec, tokens: float) -> float:
    """Scalar twin of :func:`_touched_experts` (the same operations)."""
    if not model.is_moe:
        return 0.0
    e, k = model.num_experts, model.experts_per_token
    return e * (1.0 - (1.0 - k / e) ** tokens)


def _touched_experts(model: ModelSpec, tokens: np.ndarray) -> np.ndarray:
    if not model.is_moe:
        return np.zeros_like(tokens)
    e, k = model.num_experts, model.experts_per_token
    return e * (1.0 - (1.0 - k / e) ** tokens)


def build_operator_table(model: ModelSpec, par: Parallelism, prec: Precision, math_dtype: str,
                         mixed_query_tile: int = 0) -> OperatorTable:
    """The operators of one iteration of ``model`` split by ``par``, weights and KV stored as ``prec``.

    ``mixed_query_tile`` > 0 models a varlen attention kernel (FlashAttention-2 ``cu_seqlens``) serving a
    batch that mixes prompt chunks and decodes: it computes every decode sequence as a tile of that many
    query rows, so a mixed iteration pays ``tile - 1`` extra query rows per decode (see ``docs/cost_model.md``).
    """
    ops = _attention_block(model, par, prec, math_dtype)
    if mixed_query_tile > 1:
        hq = model.num_heads // par.tp
        padding = 4.0 * hq * model.head_dim * model.num_layers * (mixed_query_tile - 1) * lin(mixed_decode_ctx=1.0)
        ops.append(Operator("attn_mixed_padding", "attn_prefill", padding, np.zeros(len(FEATURES)), 0.0,
                            "mixed_decode_ctx"))
    ops += _mlp_block(model, par, prec, math_dtype)
    ops += _head(model, par)
    return OperatorTable(model, ops)


def _gemm(name: str, m: np.ndarray, n: int, k: int, w_bytes: float, dtype: str, calls: int, active_on: str,
          weights: np.ndarray | None = None) -> Operator:
    """A linear layer with M = ``m`` (a coefficient row) rows, called ``calls`` times per iteration.

    ``weights`` is the coefficient row of how many weight matrices are read (default: one).
    """
    weight_rows = lin(one=1.0) if weights is None else weights
    flops = 2.0 * n * k * calls * m
    nbytes = calls * (n * k * w_bytes * weight_rows + (k + n) * ACT_BYTES * m)
    return Operator(name, "gemm", flops, nbytes, float(calls), active_on, dtype, (n, k), tokens=m)


def _elementwise(name: str, nbytes: np.ndarray, kernels: float, active_on: str = "new_tokens") -> Operator:
    return Operator(name, "elementwise", np.zeros(len(FEATURES)), nbytes, kernels, active_on)


def _allreduce(name: str, width: int, calls: int, par: Parallelism) -> list[Operator]:
    """Ring all-reduce of a [new tokens, width] bf16 tensor over the TP group, ``calls`` times."""
    if par.tp == 1:
        return []
    msg = lin(new_tokens=width * ACT_BYTES)
    return [Operator(name, "collective", np.zeros(len(FEATURES)), calls * msg, float(calls), "new_tokens",
                     message=msg)]


def _attention_block(model: ModelSpec, par: Parallelism, prec: Precision, dtype: str) -> list[Operator]:
    layers, hidden, hd = model.num_layers, model.hidden_size, model.head_dim
    hq, hkv = model.num_heads // par.tp, par.kv_heads_per_gpu(model)
    wb, kvb = DTYPE_BYTES[prec.weights], DTYPE_BYTES[prec.kv]
    kv_tok = 2.0 * hkv * hd * kvb  # K and V of one token, one layer, this GPU
    q_io = 2.0 * hq * hd * ACT_BYTES  # read q, write out
    t = lin(new_tokens=1.0)
    pre_bytes = layers * (kv_tok * lin(prefill_kv_tokens=1.0) + (q_io + kv_tok) * lin(prefill_tokens=1.0))
    dec_bytes = layers * (kv_tok * lin(decode_ctx_tokens=1.0, decode_seqs=1.0) + (q_io + kv_tok) * lin(decode_seqs=1.0))
    return [
        _elementwise("norm", 2 * layers * 2.0 * hidden * ACT_BYTES * t, 2.0 * layers),
        _gemm("qkv_proj", t, (hq + 2 * hkv) * hd, hidden, wb, dtype, layers, "new_tokens"),
        _elementwise("rope", layers * (hq + hkv) * hd * 2.0 * ACT_BYTES * t, float(layers)),
        Operator("attn_prefill", "attn_prefill", 4.0 * hq * hd * layers * lin(prefill_attn_pairs=1.0), pre_bytes,
                 float(layers), "prefill_tokens"),
        Operator("attn_decode", "attn_decode", 4.0 * hq * hd * layers * lin(decode_ctx_tokens=1.0, decode_seqs=1.0),
                 dec_bytes, float(layers), "decode_seqs"),
        _gemm("o_proj", t, hidden, hq * hd, wb, dtype, layers, "new_tokens"),
        *_allreduce("allreduce", hidden, 2 * layers, par),
        _elementwise("residual_add", 2 * layers * 3.0 * hidden * ACT_BYTES * t, 2.0 * layers),
    ]


def _mlp_block(model: ModelSpec, par: Parallelism, prec: Precision, dtype: str) -> list[Operator]:
    layers, wb = model.num_layers, DTYPE_BYTES[prec.weights]
    hidden, tp = model.hidden_size, par.tp
    gate = 2 if model.gated_mlp else 1
    t = lin(new_tokens=1.0)
    if not model.is_moe:
        inter = model.intermediate_size // tp
        return [
            _gemm("mlp_up", t, gate * inter, hidden, wb, dtype, layers, "new_tokens"),
            _elementwise("mlp_act", layers * (gate + 1) * inter * ACT_BYTES * t, float(layers)),
            _gemm("mlp_down", t, hidden, inter, wb, dtype, layers, "new_tokens"),
        ]
    inter = model.expert_intermediate_size // tp
    routed = lin(new_tokens=float(model.experts_per_token))  # token-expert assignments
    touched = lin(touched=1.0)
    ops = [
        _gemm("moe_router", t, model.num_experts, hidden, 2.0, "bf16", layers, "new_tokens"),
        _gemm("moe_expert_up", routed, gate * inter, hidden, wb, dtype, layers, "new_tokens", weights=touched),
        _elementwise("moe_act", layers * (gate + 1) * inter * ACT_BYTES * routed, float(layers)),
        _gemm("moe_expert_down", routed, hidden, inter, wb, dtype, layers, "new_tokens", weights=touched),
    ]
    if model.num_shared_experts:
        shared = model.num_shared_experts * inter
        ops += [_gemm("shared_expert_up", t, gate * shared, hidden, wb, dtype, layers, "new_tokens"),
                _gemm("shared_expert_down", t, hidden, shared, wb, dtype, layers, "new_tokens")]
    return ops


def _head(model: ModelSpec, par: Parallelism) -> list[Operator]:
    hidden, tp = model.hidden_size, par.tp
    s, t = lin(sampled=1.0), lin(new_tokens=1.0)
    # The LM head stays in bf16 in fp8/int8/int4 deployments (vLLM and TensorRT-LLM keep it unquantized).
    ops = [
        _elementwise("embedding", 2.0 * hidden * ACT_BYTES * t, 1.0),
        _elementwise("final_norm", 2.0 * hidden * ACT_BYTES * t, 1.0),
        _gemm("lm_head", s, model.vocab_size // tp, hidden, 2.0, "bf16", 1, "sampled"),
        _elementwise("sampling", 2.0 * model.vocab_size * LOGIT_BYTES * s, 3.0, "sampled"),
    ]
    if tp > 1:  # all-gather of the logit shards (bf16)
        gather = model.vocab_size * ACT_BYTES * s
        ops.append(Operator("logits_gather", "collective", np.zeros(len(FEATURES)), gather, 1.0, "sampled",
                            message=gather))
    return ops


def pipeline_send_bytes(model: ModelSpec, par: Parallelism, new_tokens: np.ndarray) -> np.ndarray | None:
    """Bytes sent between consecutive pipeline stages per iteration (hidden states of every new token)."""
    if par.pp == 1:
        return None
    return new_tokens * model.hidden_size * ACT_BYTES
