"""GPU memory plan of one replica: weights, activation reserve, and the KV cache that fits in the rest.

Per GPU (the most loaded pipeline stage):
``kv_cache_bytes = memory_bytes x gpu_memory_utilization - weight_bytes - activation_reserve_bytes``,
as vLLM sizes its block pool. The activation reserve is an approximation of the peak of a forward pass of
``max_batched_tokens`` tokens (hidden states, the widest projection outputs, and fp32 logits of the sampled
rows) plus a fixed 1 GiB for the CUDA context, library workspaces and captured graphs.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.costmodel.operators import ACT_BYTES, LOGIT_BYTES, Precision
from llmsim.errors import InputError
from llmsim.specs.hardware import GpuSpec
from llmsim.specs.model import DTYPE_BYTES, ModelSpec
from llmsim.specs.parallelism import Parallelism

GiB = float(2**30)
FIXED_RESERVE_BYTES = 1.0 * GiB  # CUDA context, cuBLAS/NCCL workspaces, CUDA graphs (approximation)


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per GPU, and the KV capacity of the whole replica in tokens and blocks."""

    weight_bytes: float
    activation_reserve_bytes: float
    usable_bytes: float
    kv_cache_bytes: float
    kv_bytes_per_token: float
    kv_tokens: int
    block_size: int
    kv_blocks: int

    def summary(self) -> dict[str, float]:
        """Plain numbers for tables and JSON (GiB where the key says so)."""
        return {"weights_gib_per_gpu": self.weight_bytes / GiB,
                "activation_reserve_gib_per_gpu": self.activation_reserve_bytes / GiB,
                "kv_cache_gib_per_gpu": self.kv_cache_bytes / GiB,
                "kv_bytes_per_token_per_gpu": self.kv_bytes_per_token,
                "kv_tokens": self.kv_tokens, "kv_blocks": self.kv_blocks, "block_size": self.block_size}


def weight_bytes_per_gpu(model: ModelSpec, par: Parallelism, prec: Precision) -> float:
    """Weight bytes on one GPU of the largest stage; embeddings and LM head stay in bf16."""
    layers = par.layers_per_stage(model)
    layer_bytes = model.layer_params() * DTYPE_BYTES[prec.weights] / par.tp
    embed_matrices = 1 if (model.tied_embeddings or par.pp > 1) else 2
    embed_bytes = embed_matrices * model.vocab_size * model.hidden_size * ACT_BYTES / par.tp
    return layers * layer_bytes + embed_bytes


def kv_bytes_per_token_per_gpu(model: ModelSpec, par: Parallelism, prec: Precision) -> float:
    """KV bytes one token takes on one GPU: 2 x layers of the stage x KV heads on the GPU x head_dim x dtype."""
    return 2.0 * par.layers_per_stage(model) * par.kv_heads_per_gpu(model) * model.head_dim * DTYPE_BYTES[prec.kv]


def activation_reserve_bytes(model: ModelSpec, par: Parallelism, max_batched_tokens: int, max_num_seqs: int) -> float:
    """Approximate activation peak of one forward pass of ``max_batched_tokens`` tokens, per GPU, plus 1 GiB."""
    widest = max(model.q_size + 2 * model.kv_size, 2 * max(model.intermediate_size, model.expert_intermediate_size))
    per_token = (4 * model.hidden_size + 2 * widest // par.tp) * ACT_BYTES
    logits = min(max_num_seqs, max_batched_tokens) * model.vocab_size * LOGIT_BYTES
    return max_batched_tokens * per_token + logits + FIXED_RESERVE_BYTES


def plan_memory(model: ModelSpec, gpu: GpuSpec, par: Parallelism, prec: Precision, *,
                gpu_memory_utilization: float = 0.9, block_size: int = 16, max_batched_tokens: int = 8192,
                max_num_seqs: int = 256) -> MemoryPlan:
    """Size the KV cache; :class:`InputError` with the numbers when the model does not fit."""
    if not 0 < gpu_memory_utilization <= 1:
        raise InputError("expected a fraction in (0, 1]", where="gpu_memory_utilization", value=gpu_memory_utilization)
    weights = weight_bytes_per_gpu(model, par, prec)
    reserve = activation_reserve_bytes(model, par, max_batched_tokens, max_num_seqs)
    usable = gpu.memory_bytes * gpu_memory_utilization
    kv_bytes = usable - weights - reserve
    per_token = kv_bytes_per_token_per_gpu(model, par, prec)
    if kv_bytes < per_token * block_size:
        raise InputError(
            f"{model.name} does not fit on {gpu.name} at tp={par.tp}, pp={par.pp}: weights {weights / GiB:.1f} GiB "
            f"+ activations {reserve / GiB:.1f} GiB per GPU leave no KV cache in {usable / GiB:.1f} GiB "
            f"({gpu.memory_bytes / GiB:.1f} GiB x utilization {gpu_memory_utilization}); raise tp/pp, quantize "
            f"the weights, or use a larger GPU", where="parallelism")
    tokens = int(kv_bytes // per_token)
    blocks = tokens // block_size
    return MemoryPlan(weights, reserve, usable, kv_bytes, per_token, blocks * block_size, block_size, blocks)
