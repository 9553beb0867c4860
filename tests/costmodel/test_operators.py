"""FLOP and byte counts checked against hand-computed values for llama-3-8b."""

from __future__ import annotations

import pytest

from llmsim.costmodel import DATASHEET, BatchFeatures, CostModel, IterationShape, PromptChunk
from llmsim.costmodel.operators import Precision
from llmsim.specs import Parallelism, load_hardware


def _ops(model, shape, par=Parallelism(), prec=Precision()):
    cm = CostModel(model, load_hardware("h100-sxm"), par, prec, DATASHEET)
    return {op.name: op for op in cm.price(BatchFeatures.from_shapes([shape])).ops if op.kernels[0] > 0}


def test_llama3_8b_has_8_billion_parameters(llama3_8b):
    # 32 layers x (QKV 4096x6144 + O 4096x4096 + MLP 3x4096x14336 + 2 norms) + 2 x 128256x4096 + final norm
    per_layer = 4096 * 6144 + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096
    assert llama3_8b.total_params() == 32 * per_layer + 2 * 128256 * 4096 + 4096


def test_kv_bytes_per_token_is_2_x_layers_x_kv_heads_x_head_dim_x_dtype(llama3_8b):
    assert llama3_8b.kv_bytes_per_token("bf16") == 2 * 32 * 8 * 128 * 2
    assert llama3_8b.kv_bytes_per_token("fp8") == 2 * 32 * 8 * 128 * 1


def test_linear_layer_flops_are_two_per_parameter_per_token(llama3_8b):
    tokens = 1000
    ops = _ops(llama3_8b, IterationShape((PromptChunk(tokens, 0),)))
    linear = sum(ops[n].flops[0] for n in ("qkv_proj", "o_proj", "mlp_up", "mlp_down"))
    per_token_params = 32 * (4096 * 6144 + 4096 * 4096 + 3 * 4096 * 14336)
    assert linear == pytest.approx(2 * tokens * per_token_params)
    # the LM head runs only for the one sampled token
    assert ops["lm_head"].flops[0] == pytest.approx(2 * 128256 * 4096)


def test_prefill_attention_counts_causal_pairs(llama3_8b):
    c = 2048
    ops = _ops(llama3_8b, IterationShape((PromptChunk(c, 0),)))
    pairs = c * (c + 1) / 2
    assert ops["attn_prefill"].flops[0] == pytest.approx(4 * pairs * 32 * 128 * 32)


def test_decode_attention_reads_each_sequences_kv_cache_once(llama3_8b):
    ops = _ops(llama3_8b, IterationShape(decode_context_tokens=(1000, 3000)))
    kv_token_layer = 2 * 8 * 128 * 2  # K and V, 8 KV heads (GQA, not 32 query heads), bf16
    cached = (1000 + 1 + 3000 + 1) * kv_token_layer * 32
    q_and_out_and_new_kv = 2 * (2 * 32 * 128 * 2 + kv_token_layer) * 32
    assert ops["attn_decode"].bytes[0] == pytest.approx(cached + q_and_out_and_new_kv)


def test_decode_weight_bytes_dominate_at_batch_one(llama3_8b):
    ops = _ops(llama3_8b, IterationShape(decode_context_tokens=(128,)))
    weights = sum(ops[n].bytes[0] for n in ("qkv_proj", "o_proj", "mlp_up", "mlp_down", "lm_head"))
    assert weights == pytest.approx(2 * (llama3_8b.total_params() - 128256 * 4096), rel=1e-3)


def test_moe_reads_only_the_expected_number_of_distinct_experts():
    from llmsim.specs import load_model
    mixtral = load_model("mixtral-8x7b")
    expert_bytes = 2 * 4096 * 14336 * 2  # gate+up of one expert, bf16
    for tokens, expected in ((1, 2.0), (2, 8 * (1 - (6 / 8) ** 2)), (64, 8 * (1 - (6 / 8) ** 64))):
        ops = _ops(mixtral, IterationShape(decode_context_tokens=(10,) * tokens))
        up = ops["moe_expert_up"]
        weight_bytes = up.bytes[0] / 32 - tokens * 2 * (4096 + 2 * 14336) * 2
        assert weight_bytes == pytest.approx(expected * expert_bytes, rel=1e-9)
    assert mixtral.active_params_per_token() < 0.35 * mixtral.total_params()


def test_tensor_parallel_shards_weights_and_kv(llama3_8b):
    shape = IterationShape(decode_context_tokens=(512,) * 8)
    one, two = _ops(llama3_8b, shape), _ops(llama3_8b, shape, Parallelism(tp=2))
    assert two["mlp_up"].flops[0] == pytest.approx(one["mlp_up"].flops[0] / 2)
    assert two["attn_decode"].bytes[0] == pytest.approx(one["attn_decode"].bytes[0] / 2)
    assert "allreduce" in two and "allreduce" not in one


def test_fp8_weights_halve_weight_bytes(llama3_8b):
    shape = IterationShape(decode_context_tokens=(1,))
    bf16 = _ops(llama3_8b, shape)["mlp_up"].bytes[0]
    fp8 = _ops(llama3_8b, shape, prec=Precision(weights="fp8"))["mlp_up"].bytes[0]
    assert fp8 == pytest.approx(bf16 / 2, rel=1e-3)
