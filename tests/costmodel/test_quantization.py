"""Weight and KV quantization: what each precision changes in the price of an iteration and in KV capacity."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.costmodel import CostModel, IterationShape, Precision, PromptChunk, plan_memory
from llmsim.costmodel.operators import FEATURES
from llmsim.scenario import resolve_calibration
from llmsim.specs import Parallelism, load_hardware, load_model

DECODE_1 = IterationShape(decode_context_tokens=(1024,))  # one sequence, 1024 cached tokens
PREFILL = IterationShape((PromptChunk(4096),))  # a compute-bound prompt


def _cost(model: str, hardware: str, weights: str, kv: str = "bf16", tp: int = 1) -> CostModel:
    """The cost model a scenario on ``hardware`` uses (its shipped calibration profile, ``auto``)."""
    calibration, _ = resolve_calibration("auto", hardware, None, "<test>")
    return CostModel(load_model(model), load_hardware(hardware), Parallelism(tp), Precision(weights, kv), calibration)


def _gemm_weight_bytes(cm: CostModel) -> dict[str, float]:
    """Weight bytes each GEMM reads per iteration (the token-independent term of its bytes)."""
    one = FEATURES.index("one")
    return {op.name: float(op.bytes[one]) for op in cm.operators.operators if op.op_class == "gemm"}


def test_fp8_weights_roughly_halve_decode_time_at_batch_1_on_h100():
    bf16 = _cost("llama-3-8b", "h100-sxm", "bf16").iteration_time_s(DECODE_1)
    fp8 = _cost("llama-3-8b", "h100-sxm", "fp8").iteration_time_s(DECODE_1)
    assert 0.45 <= fp8 / bf16 <= 0.70


def test_fp8_on_h100_runs_fp8_math_and_speeds_up_compute_bound_prefill():
    cm = _cost("llama-3-8b", "h100-sxm", "fp8")
    assert cm.math_dtype == "fp8"
    assert cm.iteration_time_s(PREFILL) < 0.8 * _cost("llama-3-8b", "h100-sxm", "bf16").iteration_time_s(PREFILL)


def test_int4_is_weight_only_bf16_math_reading_a_quarter_of_the_weight_bytes():
    bf16, int4 = _cost("llama-3-8b", "h100-sxm", "bf16"), _cost("llama-3-8b", "h100-sxm", "int4")
    assert int4.math_dtype == "bf16"
    gemms = [op for op in int4.operators.operators if op.op_class == "gemm"]
    assert {op.math_dtype for op in gemms} == {"bf16"}
    w_bf16, w_int4 = _gemm_weight_bytes(bf16), _gemm_weight_bytes(int4)
    for name in ("qkv_proj", "o_proj", "mlp_up", "mlp_down"):
        assert w_int4[name] == pytest.approx(0.25 * w_bf16[name], rel=1e-12)
    assert w_int4["lm_head"] == w_bf16["lm_head"]  # the LM head stays in bf16
    # bf16 math: a compute-bound prefill costs what it costs in bf16; a memory-bound decode gets much cheaper
    assert int4.iteration_time_s(PREFILL) == pytest.approx(bf16.iteration_time_s(PREFILL), rel=0.01)
    assert int4.iteration_time_s(DECODE_1) < 0.5 * bf16.iteration_time_s(DECODE_1)


@pytest.mark.parametrize("model,tp", [("llama-3-8b", 1), ("llama-3-70b", 4)])
def test_fp8_kv_cache_doubles_kv_capacity(model, tp):
    spec, h100 = load_model(model), load_hardware("h100-sxm")
    bf16 = plan_memory(spec, h100, Parallelism(tp), Precision(kv="bf16"))
    fp8 = plan_memory(spec, h100, Parallelism(tp), Precision(kv="fp8"))
    assert fp8.kv_bytes_per_token == bf16.kv_bytes_per_token / 2
    assert fp8.weight_bytes == bf16.weight_bytes
    assert fp8.kv_tokens == pytest.approx(2 * bf16.kv_tokens, rel=1e-3)


def test_fp8_weights_on_a100_use_bf16_math():
    a100 = load_hardware("a100-80g-sxm")
    assert not a100.supports("fp8")
    fp8, bf16 = _cost("llama-3-8b", "a100-80g-sxm", "fp8"), _cost("llama-3-8b", "a100-80g-sxm", "bf16")
    assert fp8.math_dtype == "bf16"
    assert {op.math_dtype for op in fp8.operators.operators if op.op_class == "gemm"} == {"bf16"}
    # no fp8 tensor cores: prefill (compute-bound) is no faster; decode still reads half the weight bytes
    assert fp8.iteration_time_s(PREFILL) == pytest.approx(bf16.iteration_time_s(PREFILL), rel=0.01)
    w_fp8, w_bf16 = _gemm_weight_bytes(fp8), _gemm_weight_bytes(bf16)
    assert w_fp8["mlp_up"] == pytest.approx(0.5 * w_bf16["mlp_up"], rel=1e-12)
    assert fp8.iteration_time_s(DECODE_1) < 0.8 * bf16.iteration_time_s(DECODE_1)


def test_kv_dtype_changes_decode_attention_bytes_not_weights():
    bf16 = _cost("llama-3-8b", "h100-sxm", "bf16", kv="bf16")
    fp8 = _cost("llama-3-8b", "h100-sxm", "bf16", kv="fp8")
    ctx = FEATURES.index("decode_ctx_tokens")
    attn_bf16, attn_fp8 = (next(op for op in cm.operators.operators if op.name == "attn_decode") for cm in (bf16, fp8))
    assert attn_fp8.bytes[ctx] == attn_bf16.bytes[ctx] / 2
    assert _gemm_weight_bytes(fp8) == _gemm_weight_bytes(bf16)
    long_ctx = IterationShape(decode_context_tokens=(32768,) * 16)
    assert fp8.iteration_time_s(long_ctx) < bf16.iteration_time_s(long_ctx)
    assert np.isfinite(fp8.iteration_time_s(DECODE_1))
