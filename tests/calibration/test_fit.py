"""Efficiency-curve fitting: a synthetic GPU whose kernels follow known efficiency curves is recovered exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.calibration.fit import (DEFAULT_LAUNCH_S, decode_table, fit_profile, ideal_times, kernel_residuals,
                                    predict_kernels)
from llmsim.calibration.measurements import concat, read_measurements
from llmsim.costmodel import BatchFeatures, CostModel, Curve
from llmsim.errors import InputError
from llmsim.specs import load_model

from .conftest import write_suite

LAUNCH_S = 1.5e-6
#: llama-3-8b's projections at TP 1, (N, K).
SHAPES = {"qkv_proj": (6144, 4096), "o_proj": (4096, 4096), "mlp_up": (28672, 4096), "mlp_down": (4096, 14336)}
TOKENS = 2 ** np.arange(0, 15)


def true_gemm_eff(n: int, m: np.ndarray) -> np.ndarray:
    """The synthetic GPU's GEMM efficiency: rises with log2 M, a little lower for narrow outputs."""
    x = np.log2(np.asarray(m, dtype=np.float64))
    return (0.3 + 0.5 * (1 - np.exp(-x / 4))) * (0.9 if n <= 4096 else 1.0)


def true_elementwise_eff(nbytes: np.ndarray) -> np.ndarray:
    return 0.15 + 0.7 * np.log2(nbytes) / 32


def synthetic_rows(tmp_path: Path, h100, *, launch: bool = True) -> pd.DataFrame:
    """Suite rows of the synthetic GPU: GEMMs, causal prefill attention at a constant 0.4, elementwise kernels
    whose efficiency rises with bytes, and (optionally) the per-graph-node launch time."""
    rows = [{"op_class": "gemm", "op": f"syn/{name}", "m": int(m), "n": n, "k": k, "median_s": 1.0}
            for name, (n, k) in SHAPES.items() for m in TOKENS]
    rows += [{"op_class": "prefill_attn", "op": "sdpa_causal", "m": int(s), "batch": 1, "heads": 32, "kv_heads": 8,
              "head_dim": 128, "median_s": 1.0} for s in (256, 1024, 4096, 16384)]
    rows += [{"op_class": "elementwise", "op": "add", "bytes": float(2 ** e), "median_s": 1.0}
             for e in range(18, 32, 2)]
    if launch:
        rows.append({"op_class": "launch", "op": "graph_kernel", "n": 1000, "median_s": LAUNCH_S})
    frame = read_measurements(write_suite(tmp_path / "synthetic.csv", rows))
    cls = frame["op_class"].to_numpy()
    eff = np.ones(len(frame))
    gemm = cls == "gemm"
    eff[gemm] = [true_gemm_eff(n, m) for n, m in zip(frame["n"][gemm], frame["m"][gemm])]
    eff[cls == "attn_prefill"] = 0.4
    eff[cls == "elementwise"] = true_elementwise_eff(frame["bytes"][cls == "elementwise"].to_numpy())
    timed = cls != "launch"
    launch_s = LAUNCH_S if launch else DEFAULT_LAUNCH_S
    frame.loc[timed, "time_s"] = ideal_times(h100, frame[timed]) / eff[timed] + launch_s
    return frame


@pytest.fixture()
def synthetic(tmp_path: Path, h100):
    rows = synthetic_rows(tmp_path, h100)
    return rows, fit_profile(h100, rows, name="synthetic", source="test")


def test_launch_time_comes_from_the_graph_kernel_row(synthetic):
    _, profile = synthetic
    assert profile.launch_s == LAUNCH_S


def test_shape_curves_recover_the_true_gemm_efficiency(synthetic):
    _, profile = synthetic
    for n, k in SHAPES.values():
        curve = profile.curve(f"gemm/{n}x{k}")
        assert curve.variable == "log2_tokens"
        np.testing.assert_allclose(curve(np.log2(TOKENS)), true_gemm_eff(n, TOKENS), rtol=1e-9)


def test_fitted_profile_reproduces_measured_gemm_kernels(synthetic, h100):
    rows, profile = synthetic
    gemm = rows[rows["op_class"] == "gemm"].reset_index(drop=True)
    np.testing.assert_allclose(predict_kernels(h100, profile, gemm), gemm["time_s"], rtol=1e-9)
    assert profile.residuals["gemm"]["max_abs"] < 1e-9
    assert kernel_residuals(h100, profile, rows).query("op_class == 'gemm'")["rel_err"].abs().max() < 1e-9


def test_cost_model_prices_each_projection_as_the_measured_kernel_times_layers(synthetic, h100):
    rows, profile = synthetic
    model = load_model("llama-3-8b")
    cost = CostModel(model, h100, calibration=profile).price(BatchFeatures.decode_only(64.0, 64.0 * 512))
    ops = {op.name: op for op in cost.ops}
    for name, (n, k) in SHAPES.items():
        assert ops[name].efficiency[0] == pytest.approx(true_gemm_eff(n, 64), rel=1e-9)
        kernel = rows[(rows["n"] == n) & (rows["k"] == k) & (rows["m"] == 64)]["time_s"].iloc[0]
        assert ops[name].time_s[0] == pytest.approx(model.num_layers * kernel, rel=1e-9), name


def test_class_curves_of_one_variable_recover_their_points(synthetic):
    _, profile = synthetic
    np.testing.assert_allclose(profile.curve("attn_prefill").eff, 0.4, rtol=1e-9)
    elem = profile.curve("elementwise")
    assert elem.variable == "log2_bytes"
    np.testing.assert_allclose(elem(elem.knots), true_elementwise_eff(2.0 ** elem.knots), rtol=1e-9)
    np.testing.assert_allclose(elem.knots, np.arange(18, 32, 2))


def test_without_launch_rows_the_default_launch_time_is_used(tmp_path: Path, h100):
    rows = synthetic_rows(tmp_path, h100, launch=False)
    profile = fit_profile(h100, rows, name="syn", source="test")
    assert profile.launch_s == DEFAULT_LAUNCH_S
    assert profile.residuals["gemm"]["max_abs"] < 1e-9


def test_copy_bandwidth_stands_in_for_elementwise_kernels(tmp_path: Path, h100):
    rows = read_measurements(write_suite(tmp_path / "hbm.csv", [
        {"op_class": "hbm", "op": "copy", "bytes": 2 ** 31, "median_s": 1.0}]))
    rows["time_s"] = ideal_times(h100, rows) / 0.8 + DEFAULT_LAUNCH_S
    curve = fit_profile(h100, rows, name="hbm", source="test").curve("elementwise")
    assert isinstance(curve, Curve) and curve.eff.tolist() == pytest.approx([0.8], rel=1e-9)


def test_decode_table_fills_unmeasured_cells_along_the_context_axis():
    # batch 1 measured at 3 contexts; batch 8 misses ctx 1024; batch 64 only has ctx 1024
    batch = np.array([1, 1, 1, 8, 8, 64])
    ctx = np.array([256, 1024, 4096, 256, 4096, 1024])
    eff = np.array([0.1, 0.2, 0.4, 0.3, 0.7, 0.8])
    table = decode_table(batch, ctx, eff)
    np.testing.assert_array_equal(table.x_knots, [0, 3, 6])
    np.testing.assert_array_equal(table.y_knots, [8, 10, 12])
    expected = np.array([[0.1, 0.2, 0.4], [0.3, 0.5, 0.7], [0.8, 0.8, 0.8]])
    np.testing.assert_allclose(table.eff, expected, rtol=1e-12)
    assert table(np.log2(8.0), np.log2(1024.0)) == pytest.approx(0.5)


def test_decode_table_takes_the_geometric_median_of_repeated_points():
    table = decode_table(np.array([4, 4]), np.array([512, 512]), np.array([0.2, 0.8]))
    assert table.eff[0, 0] == pytest.approx(0.4)


def test_nothing_to_fit_is_an_input_error(h100):
    with pytest.raises(InputError, match="no usable measurements"):
        fit_profile(h100, concat([]), name="x", source="empty.csv")
