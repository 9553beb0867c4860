"""KV capacity: what fits, and the clear error when the model does not."""

from __future__ import annotations

import pytest

from llmsim.costmodel import Precision, plan_memory
from llmsim.errors import InputError
from llmsim.specs import Parallelism, load_model


def test_kv_capacity_is_what_remains_after_weights_and_activations(llama3_8b, h100):
    plan = plan_memory(llama3_8b, h100, Parallelism(), Precision())
    expected = h100.memory_bytes * 0.9 - plan.weight_bytes - plan.activation_reserve_bytes
    assert plan.kv_cache_bytes == pytest.approx(expected)
    assert plan.kv_tokens == plan.kv_blocks * 16
    assert plan.kv_blocks == int(expected // (16 * 2 * 32 * 8 * 128 * 2))


def test_fp8_kv_cache_doubles_capacity(llama3_8b, h100):
    bf16 = plan_memory(llama3_8b, h100, Parallelism(), Precision(kv="bf16"))
    fp8 = plan_memory(llama3_8b, h100, Parallelism(), Precision(kv="fp8"))
    assert fp8.kv_tokens == pytest.approx(2 * bf16.kv_tokens, rel=1e-3)


def test_tp_shards_weights(llama3_8b, h100):
    one = plan_memory(llama3_8b, h100, Parallelism(1), Precision())
    two = plan_memory(llama3_8b, h100, Parallelism(2), Precision())
    assert two.weight_bytes == pytest.approx(one.weight_bytes / 2)
    assert two.kv_tokens > 2 * one.kv_tokens  # each GPU holds half the KV of a token and has more free memory


def test_model_that_does_not_fit_names_the_numbers(h100):
    with pytest.raises(InputError, match=r"llama-3-70b does not fit on h100-sxm at tp=1.*weights 13\d\.\d GiB"):
        plan_memory(load_model("llama-3-70b"), h100, Parallelism(1), Precision())
    plan_memory(load_model("llama-3-70b"), h100, Parallelism(4), Precision())  # fits at TP 4
