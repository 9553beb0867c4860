"""Behaviour of the roofline on h100-sxm: what bounds each phase, scaling with context, TP and batch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.costmodel import (DATASHEET, BatchFeatures, CostModel, IterationShape, Precision, PromptChunk,
                              breakdown_table)
from llmsim.costmodel.roofline import _group_by_size
from llmsim.specs import Parallelism


def _rows(cm, shape):
    return {r["op"]: r for r in breakdown_table(cm.price(BatchFeatures.from_shapes([shape])))}


def test_prefill_of_2048_tokens_is_compute_bound(roofline):
    rows = _rows(roofline, IterationShape((PromptChunk(2048),)))
    for op in ("qkv_proj", "o_proj", "mlp_up", "mlp_down", "attn_prefill"):
        assert rows[op]["bound"] == "compute", op
    compute_share = sum(r["time_s"] for r in rows.values() if r["bound"] == "compute")
    assert compute_share > 0.8 * sum(r["time_s"] for r in rows.values())


def test_decode_at_batch_one_is_memory_bound_and_costs_weights_over_bandwidth(roofline, llama3_8b, h100):
    rows = _rows(roofline, IterationShape(decode_context_tokens=(128,)))
    assert all(r["bound"] == "memory" for r in rows.values())
    t = roofline.iteration_time_s(IterationShape(decode_context_tokens=(128,)))
    # every weight is read once, except the input embedding table (only the one looked-up row is read)
    read = llama3_8b.total_params() - llama3_8b.vocab_size * llama3_8b.hidden_size
    assert t == pytest.approx(2 * read / h100.memory_bandwidth_bytes_per_s, rel=0.03)


def test_decode_time_grows_linearly_with_summed_context(roofline):
    ctx = np.array([1e5, 2e5, 3e5, 4e5])
    t = roofline.time_s(BatchFeatures.decode_only(np.full(4, 64.0), ctx))
    steps = np.diff(t)
    assert np.all(steps > 0)
    assert steps == pytest.approx(np.full(3, steps[0]), rel=1e-9)


def test_tp2_halves_gemm_time_and_adds_allreduce(llama3_8b, h100):
    shape = IterationShape((PromptChunk(4096),))
    one = _rows(CostModel(llama3_8b, h100, Parallelism(1), Precision(), DATASHEET), shape)
    two = _rows(CostModel(llama3_8b, h100, Parallelism(2), Precision(), DATASHEET), shape)
    for op in ("qkv_proj", "o_proj", "mlp_up", "mlp_down"):
        assert two[op]["time_s"] == pytest.approx(one[op]["time_s"] / 2, rel=0.01), op
    assert "allreduce" not in one
    msg = 4096 * 4096 * 2
    expected = 64 * (2 * (2 - 1) / 2 * msg / h100.intra_node_link.bandwidth_bytes_per_s + h100.intra_node_link.latency_s)
    assert two["allreduce"]["time_s"] == pytest.approx(expected)


def test_pipeline_parallel_adds_stage_sends(llama3_8b, h100):
    shape = IterationShape((PromptChunk(1024),))
    one = CostModel(llama3_8b, h100, Parallelism(1, 1), Precision(), DATASHEET).iteration_time_s(shape)
    two = CostModel(llama3_8b, h100, Parallelism(1, 2), Precision(), DATASHEET).iteration_time_s(shape)
    assert two > one


def test_vectorised_pricing_matches_one_at_a_time(roofline):
    rng = np.random.default_rng(1)
    shapes = [IterationShape(tuple(PromptChunk(int(c), int(p)) for c, p in rng.integers(1, 3000, (2, 2))),
                             tuple(int(x) for x in rng.integers(0, 4000, rng.integers(0, 40))))
              for _ in range(50)]
    together = roofline.time_s(BatchFeatures.from_shapes(shapes))
    alone = np.array([roofline.iteration_time_s(s) for s in shapes])
    np.testing.assert_array_equal(together, alone)


@settings(max_examples=60, deadline=None)
@given(base=st.integers(1, 4096), extra=st.integers(1, 4096), prior=st.integers(0, 8192),
       decodes=st.integers(0, 64), ctx=st.integers(0, 4096))
def test_cost_never_decreases_when_tokens_are_added(roofline, base, extra, prior, decodes, ctx):
    small = IterationShape((PromptChunk(base, prior),), (ctx,) * decodes)
    more_prompt = IterationShape((PromptChunk(base + extra, prior),), (ctx,) * decodes)
    more_decode = IterationShape((PromptChunk(base, prior),), (ctx,) * (decodes + 1))
    t = roofline.iteration_time_s(small)
    assert roofline.iteration_time_s(more_prompt) >= t
    assert roofline.iteration_time_s(more_decode) >= t


def test_calibrated_efficiencies_slow_the_roofline_down(llama3_8b, h100):
    from llmsim.costmodel import DEFAULT
    shape = IterationShape((PromptChunk(512),), (1024,) * 16)
    ideal = CostModel(llama3_8b, h100, calibration=DATASHEET).iteration_time_s(shape)
    default = CostModel(llama3_8b, h100, calibration=DEFAULT).iteration_time_s(shape)
    assert default > ideal


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 7.0, 256.0, 2.5, 40000.0]), min_size=1, max_size=60))
def test_group_by_size_is_unique_with_a_stable_order(sizes):
    """The counting sort of batch sizes gives what np.unique and a stable argsort of its inverse give (and falls
    back to them for fractional or large sizes)."""
    sizes = np.array(sizes)
    distinct, counts, order = _group_by_size(sizes)
    expected, inverse, expected_counts = np.unique(sizes, return_inverse=True, return_counts=True)
    assert np.array_equal(distinct, expected) and np.array_equal(counts, expected_counts)
    assert np.array_equal(order, np.argsort(inverse, kind="stable"))
