"""The scalar pricing path (one iteration, pure Python) is bit-identical to the vectorised one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.costmodel import BatchFeatures, CostModel, Precision, load_calibration, load_engine
from llmsim.costmodel.roofline import time_by_operator
from llmsim.costmodel.scalar import _combine as scalar_combine
from llmsim.specs import Parallelism, load_hardware, load_model
from llmsim.specs.hardware import builtin_hardware_dir

CONFIGS = [("llama-3-8b", "h100-sxm", 1, 1, "bf16", "auto", "cuda-graphs"),
           ("llama-3-8b", "h200-sxm", 1, 1, "bf16", "auto", "reference-executor"),
           ("llama-3-70b", "h100-sxm", 4, 2, "fp8", "auto", "cuda-graphs"),
           ("mixtral-8x7b", "a100-80g-sxm", 2, 1, "bf16", "auto", "reference-executor"),
           ("qwen2.5-7b", "l40s", 1, 1, "int4", "default", "cuda-graphs")]


def _model(name, hw, tp, pp, weights, cal, engine):
    path = builtin_hardware_dir() / f"{hw}.calibration.yaml"
    calibration = load_calibration(path) if cal == "auto" and path.is_file() else None
    return CostModel(load_model(name), load_hardware(hw), Parallelism(tp, pp), Precision(weights=weights),
                     calibration, load_engine(engine))


MODELS = [_model(*c) for c in CONFIGS]


@settings(max_examples=300, deadline=None)
@given(i=st.integers(0, len(MODELS) - 1), chunks=st.integers(0, 4), new=st.integers(1, 20000),
       prior=st.integers(0, 60000), decodes=st.integers(0, 600), ctx=st.integers(0, 4_000_000))
def test_scalar_and_vector_paths_agree_bit_for_bit(i, chunks, new, prior, decodes, ctx):
    cm = MODELS[i]
    pt = float(new * chunks)
    pairs = float(chunks * new * (prior + (new + 1) / 2))
    kvt = float(chunks * (prior + new))
    feats = (pt, float(chunks), pairs, kvt, float(decodes), float(ctx if decodes else 0), float(chunks + decodes))
    vector = cm.time_s(BatchFeatures.single(*feats))[0]
    many = cm.time_s(BatchFeatures.from_arrays(**dict(zip(
        ("prefill_tokens", "prefill_chunks", "prefill_attn_pairs", "prefill_kv_tokens", "decode_seqs",
         "decode_ctx_tokens", "sampled"), (np.array([v, v * 0 + 1]) for v in feats)))))[0]
    assert cm.time_one(*feats) == vector == many


@settings(max_examples=200, deadline=None)
@given(i=st.integers(0, len(MODELS) - 1), decodes=st.integers(1, 600), ctx0=st.integers(0, 4_000_000),
       k=st.integers(1, 120))
def test_decode_spans_price_each_iteration_exactly_as_one_at_a_time(i, decodes, ctx0, k):
    """A fast-forwarded span (short: pure Python from cached batch terms; long: numpy) gives each iteration the
    bits of pricing it alone, and so does the full vectorised pricing."""
    cm = MODELS[i]
    ctx = [float(ctx0 + decodes * j) for j in range(k)]
    one_by_one = [cm.time_one(0.0, 0.0, 0.0, 0.0, float(decodes), c, float(decodes)) for c in ctx]
    assert cm.decode_times(decodes, ctx) == one_by_one
    assert cm.time_s(BatchFeatures.decode_only(np.full(k, float(decodes)), np.array(ctx))).tolist() == one_by_one
    clock, ends = 12.5, []
    for seconds in one_by_one:  # the replica's clock: a running sum, one iteration at a time
        clock = clock + seconds
        ends.append(clock)
    assert cm.scalar_pricer.decode_ends(decodes, ctx0, k, 12.5) == ends


@pytest.mark.parametrize("i", range(len(MODELS)))
def test_warmed_operator_times_are_what_the_scalar_path_computes(i):
    """The token-only operator times priced up front (vectorised) equal, operator by operator, the scalar path's."""
    cm = CostModel(MODELS[i].model, MODELS[i].gpu, MODELS[i].parallelism, MODELS[i].precision,
                   MODELS[i].calibration, MODELS[i].engine)
    pricer = cm._scalar
    pricer._warm_token_memos()
    warmed = [group for group in pricer._groups if group[2]]
    assert warmed or cm.engine.eager.launch_s > 0
    for tokens in (1.0, 7.0, 128.0, 1000.0, 4097.0, 8192.0):
        x = pricer._features(tokens, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
        token_counts = [scalar_combine(terms, x) for terms in pricer.tokens_terms]
        for inputs, ops, memo in warmed:
            assert memo[(inputs(x), False)] == tuple(pricer._op_time(k, x, token_counts, False) for k in ops)


@settings(max_examples=40, deadline=None)
@given(i=st.integers(0, len(MODELS) - 1), seed=st.integers(0, 10_000), n=st.integers(1, 300))
def test_decode_operator_time_is_the_per_iteration_breakdown_summed(i, seed, n):
    """Decode-only iterations summed per batch size give each operator's time of pricing them one by one (the
    same terms added in another order); batch sizes span CUDA-graphed and eager ones."""
    cm = MODELS[i]
    rng = np.random.default_rng(seed)
    decodes = rng.integers(1, 8, n) * rng.choice([1, 16, 97], n)
    ctx = decodes * rng.integers(1, 8000, n)
    grouped = cm.decode_operator_time(decodes, ctx)
    direct = time_by_operator(cm.price(BatchFeatures.decode_only(decodes.astype(float), ctx.astype(float))))
    assert grouped is not None and grouped.keys() == direct.keys()
    for name, seconds in direct.items():
        assert grouped[name] == pytest.approx(seconds, rel=1e-12, abs=1e-15), name
