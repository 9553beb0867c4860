"""Whole-iteration terms: synthetic iterations priced with known terms are fitted back to those terms."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.calibration.composition import LAUNCH_GRID_S, _nonneg_lstsq, fit_composition, fit_engine, predict_rows
from llmsim.calibration.validate import read_iterations
from llmsim.costmodel import DEFAULT, EngineProfile, HostTerms
from llmsim.errors import InputError

from .conftest import REFERENCE_HEADER, write_rows

TRUTH = dataclasses.replace(DEFAULT, per_layer_s=6.2e-6, per_token_layer_s=1.4e-7, mixed_query_tile=64,
                            time_scale={"attn_decode": 1.25})
#: The kernel curves the fit starts from (the truth's, without composition terms).
START = DEFAULT
SHAPES = [("decode", "", "1x1024"), ("decode", "", "8x1024"), ("decode", "", "32x2048"), ("decode", "", "128x512"),
          ("prefill", "128@0", ""), ("prefill", "512@0", ""), ("prefill", "2048@0", ""), ("prefill", "512@1024", ""),
          ("mixed", "512@0", "16x1024"), ("mixed", "256@2048", "64x1024"), ("mixed", "100@0", "8x4096"),
          ("mixed", "1000@0", "32x512")]


def iterations(tmp_path: Path, mode: str) -> pd.DataFrame:
    """The SHAPES at 32 and at 8 layers of llama-3-8b, as read from a reference CSV (times to be set)."""
    rows = [{"kind": kind, "mode": mode, "model": "llama-3-8b", "layers": layers, "chunks": chunks,
             "decodes": decodes, "num_tokens": 0, "num_sampled": -1, "median_s": 1.0}
            for layers in (32, 8) for kind, chunks, decodes in SHAPES]
    return read_iterations(write_rows(tmp_path / f"{mode}.csv", rows, REFERENCE_HEADER))


def _recovered(tmp_path: Path, h100, launch_s: float):
    truth, start = (dataclasses.replace(p, launch_s=launch_s) for p in (TRUTH, START))
    frame = iterations(tmp_path, "graph")
    frame["median_s"] = predict_rows(frame, h100, truth)
    return frame, fit_composition(frame, h100, start)


def test_composition_terms_are_recovered(tmp_path: Path, h100):
    frame, fitted = _recovered(tmp_path, h100, launch_s=0.0)
    assert fitted.mixed_query_tile == 64
    assert fitted.per_layer_s == pytest.approx(6.2e-6, rel=1e-6)
    assert fitted.per_token_layer_s == pytest.approx(1.4e-7, rel=1e-6)
    assert fitted.time_scale == {"attn_decode": pytest.approx(1.25, rel=1e-4)}
    assert abs(fitted.band["q05"]) < 1e-9 and abs(fitted.band["q95"]) < 1e-9
    np.testing.assert_allclose(predict_rows(frame, h100, fitted), frame["median_s"], rtol=1e-4)


def test_composition_terms_are_recovered_with_a_launch_cost(tmp_path: Path, h100):
    _, fitted = _recovered(tmp_path, h100, launch_s=2e-6)
    assert fitted.per_layer_s == pytest.approx(6.2e-6, rel=1e-3)


def test_composition_needs_graph_iterations(tmp_path: Path, h100):
    with pytest.raises(InputError, match="mode=graph"):
        fit_composition(iterations(tmp_path, "eager"), h100, DEFAULT)


def test_engine_host_terms_are_recovered_from_eager_iterations(tmp_path: Path, h100):
    launch = float(LAUNCH_GRID_S[24])  # 12 us, on the fit's grid
    truth = EngineProfile("truth", eager=HostTerms(fixed_s=1.1e-4, per_seq_s=2.5e-6, launch_s=launch),
                          graph_max_seqs=0)
    frame = iterations(tmp_path, "eager")
    frame["median_s"] = predict_rows(frame, h100, TRUTH, truth)
    engine = fit_engine(frame, h100, TRUTH, name="fitted", source="test")
    assert engine.eager.launch_s == pytest.approx(launch, rel=1e-3)
    assert engine.eager.fixed_s == pytest.approx(1.1e-4, rel=1e-3)
    assert engine.eager.per_seq_s == pytest.approx(2.5e-6, rel=1e-3)
    assert engine.graph == HostTerms()


def test_nonneg_lstsq_clamps_negative_coefficients_to_zero():
    a = np.column_stack([np.ones(4), np.arange(4.0)])
    assert _nonneg_lstsq(a, 3.0 + 2.0 * np.arange(4.0)) == pytest.approx([3.0, 2.0])
    coef = _nonneg_lstsq(a, 5.0 - 1.0 * np.arange(4.0))  # the unconstrained slope is negative
    assert coef[1] == 0.0 and coef[0] == pytest.approx(3.5)
