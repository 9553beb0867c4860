"""FLOPs and bytes of every operator of one iteration, per GPU, from the batch features.

Pure arithmetic on numpy arrays (one entry per iteration). Counts are for ONE GPU of a TP group and for
ALL layers of the replica (pipeline stages run one after another for a given iteration). Conventions:

* A linear layer ``Y[M,N] = X[M,K] W[N,K]^T`` costs ``2 M N K`` FLOPs and reads ``N K`` weights plus ``M K``
  activations and writes ``M N`` (the ideal bytes: each operand moved once).
* Attention FLOPs count QK^T and PV: ``4 x pairs x heads x head_dim``. Prefill attention reads each
  chunk's prior and new KV once (FlashAttention keeps the tile in SRAM); decode attention reads each
  sequence's whole KV cache once (memory-bound, GQA-aware: KV heads, not query heads).
* Elementwise kernels (norms, RoPE, activation, residual add, embedding, sampling) are memory-bound;
  their bytes are reads plus writes.
* MoE layers read only the experts the batch touches: under uniform top-k routing, T tokens touch
  ``E (1 - (1 - k/E)^T)`` distinct experts in expectation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsim.costmodel.batch import BatchFeatures
from llmsim.specs.model import DTYPE_BYTES, ModelSpec
from llmsim.specs.parallelism import Parallelism

ACT_BYTES = 2.0  # activations are bf16/fp16 (bytes per element)
LOGIT_BYTES = 4.0  # logits are sampled in fp32


@dataclass(frozen=True)
class OpWork:
    """One operator's work per iteration (arrays of shape (n,)), summed over the ``per_layer`` x layers calls.

    ``op_class`` selects the efficiency curve; ``gemm_shape`` (N, K per GPU) and ``tokens`` (M) are set for
    GEMMs so a shape-specific curve can be used; ``kernels`` counts launches per iteration (scalar).
    """

    name: str
    op_class: str
    flops: np.ndarray
    bytes: np.ndarray
    kernels: np.ndarray
    math_dtype: str = "bf16"
    gemm_shape: tuple[int, int] | None = None
    tokens: np.ndarray | None = None
    decode_seqs: np.ndarray | None = None
    decode_ctx_mean: np.ndarray | None = None
    message_bytes: np.ndarray | None = None


@dataclass(frozen=True)
class Precision:
    """Storage dtypes of weights and KV cache. int4 is weight-only: its math runs in bf16."""

    weights: str = "bf16"
    kv: str = "bf16"

    def math_dtype(self, gpu_supports: callable) -> str:
        """Dtype the GEMMs run in: fp8/int8 on GPUs with such tensor cores, bf16 otherwise."""
        if self.weights in ("fp8", "int8") and gpu_supports(self.weights):
            return self.weights
        return "fp16" if self.weights == "fp16" else "bf16"


def iteration_ops(model: ModelSpec, par: Parallelism, prec: Precision, f: BatchFeatures,
                  math_dtype: str) -> list[OpWork]:
    """All operators of the iteration ``f`` for one GPU of the replica (see module docstring)."""
    layers = model.num_layers
    t = f.new_tokens
    ops = _attention_block(model, par, prec, f, math_dtype, t, layers)
    ops += _mlp_block(model, par, prec, t, math_dtype, layers)
    ops += _head(model, par, prec, f, t)
    return [op for op in ops if op is not None]


def _gemm(name: str, m: np.ndarray, n: int, k: int, w_bytes: float, dtype: str, per_layer: int,
          op_class: str = "gemm", weight_count: np.ndarray | float = 1.0) -> OpWork:
    """A linear layer with M = ``m`` tokens, repeated ``per_layer`` times (layers x matrices)."""
    flops = 2.0 * m * n * k * per_layer
    nbytes = (n * k * w_bytes * weight_count + m * k * ACT_BYTES + m * n * ACT_BYTES) * per_layer
    active = (m > 0).astype(np.float64)
    return OpWork(name, op_class, flops * active, nbytes * active, active * per_layer, dtype,
                  gemm_shape=(n, k), tokens=m)


def _elementwise(name: str, nbytes: np.ndarray, per_layer: int, kernels: float = 1.0) -> OpWork:
    active = (nbytes > 0).astype(np.float64)
    return OpWork(name, "elementwise", np.zeros_like(nbytes), nbytes * per_layer, active * kernels * per_layer)


def _allreduce(name: str, tokens: np.ndarray, width: int, par: Parallelism, per_layer: int) -> OpWork | None:
    """Ring all-reduce of a [tokens, width] bf16 tensor over the TP group (``message_bytes`` per call)."""
    if par.tp == 1:
        return None
    msg = tokens * width * ACT_BYTES
    active = (tokens > 0).astype(np.float64)
    return OpWork(name, "collective", np.zeros_like(msg), msg * per_layer, active * per_layer,
                  message_bytes=msg)


def _attention_block(model: ModelSpec, par: Parallelism, prec: Precision, f: BatchFeatures, dtype: str,
                     t: np.ndarray, layers: int) -> list[OpWork | None]:
    hidden, hd = model.hidden_size, model.head_dim
    hq = model.num_heads // par.tp
    hkv = par.kv_heads_per_gpu(model)
    wb, kvb = DTYPE_BYTES[prec.weights], DTYPE_BYTES[prec.kv]
    kv_token_bytes = 2.0 * hkv * hd * kvb  # K and V of one token, one layer, this GPU
    q_io = 2.0 * hq * hd * ACT_BYTES       # read q, write out
    p, d = f.prefill_tokens, f.decode_seqs
    pre_flops = 4.0 * f.prefill_attn_pairs * hq * hd * layers
    pre_bytes = (f.prefill_kv_tokens * kv_token_bytes + p * (q_io + kv_token_bytes)) * layers
    dec_flops = 4.0 * (f.decode_ctx_tokens + d) * hq * hd * layers
    dec_bytes = ((f.decode_ctx_tokens + d) * kv_token_bytes + d * (q_io + kv_token_bytes)) * layers
    with np.errstate(divide="ignore", invalid="ignore"):
        ctx_mean = np.where(d > 0, f.decode_ctx_tokens / np.maximum(d, 1), 0.0)
    pre_on, dec_on = (p > 0).astype(float), (d > 0).astype(float)
    return [
        _elementwise("norm", 2.0 * t * hidden * ACT_BYTES, 2 * layers),
        _gemm("qkv_proj", t, (hq + 2 * hkv) * hd, hidden, wb, dtype, layers),
        _elementwise("rope", t * (hq + hkv) * hd * 2.0 * ACT_BYTES, layers),
        OpWork("attn_prefill", "attn_prefill", pre_flops, pre_bytes, pre_on * layers),
        OpWork("attn_decode", "attn_decode", dec_flops, dec_bytes, dec_on * layers, decode_seqs=d,
               decode_ctx_mean=ctx_mean),
        _gemm("o_proj", t, hidden, hq * hd, wb, dtype, layers),
        _allreduce("allreduce", t, hidden, par, 2 * layers),
        _elementwise("residual_add", 2 * 3.0 * t * hidden * ACT_BYTES, layers, kernels=2.0),
    ]


def _mlp_block(model: ModelSpec, par: Parallelism, prec: Precision, t: np.ndarray, dtype: str,
               layers: int) -> list[OpWork | None]:
    wb = DTYPE_BYTES[prec.weights]
    hidden, tp = model.hidden_size, par.tp
    gate = 2 if model.gated_mlp else 1
    if not model.is_moe:
        inter = model.intermediate_size // tp
        return [
            _gemm("mlp_up", t, gate * inter, hidden, wb, dtype, layers),
            _elementwise("mlp_act", t * (gate + 1) * inter * ACT_BYTES, layers),
            _gemm("mlp_down", t, hidden, inter, wb, dtype, layers),
        ]
    e, k = model.num_experts, model.experts_per_token
    inter = model.expert_intermediate_size // tp
    routed = t * k  # token-expert assignments
    touched = e * (1.0 - (1.0 - k / e) ** t)  # expected distinct experts the batch reads
    ops: list[OpWork | None] = [
        _gemm("moe_router", t, e, hidden, 2.0, "bf16", layers),
        _gemm("moe_expert_up", routed, gate * inter, hidden, wb, dtype, layers, weight_count=touched),
        _elementwise("moe_act", routed * (gate + 1) * inter * ACT_BYTES, layers),
        _gemm("moe_expert_down", routed, hidden, inter, wb, dtype, layers, weight_count=touched),
    ]
    if model.num_shared_experts:
        shared = model.num_shared_experts * inter
        ops += [_gemm("shared_expert_up", t, gate * shared, hidden, wb, dtype, layers),
                _gemm("shared_expert_down", t, hidden, shared, wb, dtype, layers)]
    return ops


def _head(model: ModelSpec, par: Parallelism, prec: Precision, f: BatchFeatures, t: np.ndarray) -> list:
    hidden, tp = model.hidden_size, par.tp
    vocab = model.vocab_size // tp
    s = f.sampled
    # The LM head stays in bf16 in fp8/int8/int4 deployments (vLLM and TensorRT-LLM keep it unquantized).
    head = _gemm("lm_head", s, vocab, hidden, 2.0, "bf16", 1)
    ops = [
        _elementwise("embedding", 2.0 * t * hidden * ACT_BYTES, 1),
        _elementwise("final_norm", 2.0 * t * hidden * ACT_BYTES, 1),
        head,
        _elementwise("sampling", 2.0 * s * model.vocab_size * LOGIT_BYTES, 1, kernels=3.0),
    ]
    if tp > 1:
        gather = s * model.vocab_size * LOGIT_BYTES / 2.0  # all-gather of logit shards (bf16)
        active = (s > 0).astype(float)
        ops.append(OpWork("logits_gather", "collective", np.zeros_like(s), gather, active, message_bytes=gather))
    return ops


def pipeline_sends(model: ModelSpec, par: Parallelism, t: np.ndarray) -> np.ndarray | None:
    """Bytes sent between consecutive pipeline stages per iteration (hidden states of every new token)."""
    if par.pp == 1:
        return None
    return t * model.hidden_size * ACT_BYTES
