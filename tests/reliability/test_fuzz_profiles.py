"""Fuzzing the calibration and engine-profile loaders: a profile, or one clean InputError naming the file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from llmsim.costmodel.efficiency import load_calibration
from llmsim.costmodel.engine import load_engine
from llmsim.errors import InputError

from .conftest import dump
from .mutations import clean, mutated_bytes, mutated_mapping

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

#: A small calibration file with every key (the shipped ones hold ~50 curves; the structure is the same).
CALIBRATION: dict = {
    "name": "tiny", "source": "hand-written", "launch_s": 2e-6, "per_layer_s": 6e-6, "per_token_layer_s": 1e-7,
    "mixed_query_tile": 128, "time_scale": {"attn_decode": 1.1},
    "band": {"q05": -0.05, "q95": 0.05, "source": "fit residuals"},
    "residuals": {"gemm": {"points": 3, "median_abs": 0.01}},
    "curves": {
        "gemm": {"variable": "log2_intensity", "knots": [0.0, 4.0, 8.0], "eff": [0.3, 0.6, 0.8]},
        "gemm/4096x4096": {"variable": "log2_tokens", "knots": [0.0, 10.0], "eff": [0.2, 0.85]},
        "attn_prefill": {"variable": "log2_flops", "knots": [20.0, 40.0], "eff": [0.3, 0.6]},
        "attn_decode": {"variable": "log2_seqs,log2_ctx", "x_knots": [0.0, 6.0], "y_knots": [8.0, 12.0],
                        "eff": [[0.5, 0.6], [0.7, 0.8]]},
        "elementwise": {"variable": "log2_bytes", "knots": [10.0], "eff": [0.8]},
    },
}
ENGINE: dict = {
    "name": "my-engine", "source": "fitted", "graph_max_seqs": 256,
    "graph": {"fixed_s": 1e-5, "per_layer_s": 0.0, "per_seq_s": 1e-7, "per_token_s": 0.0, "launch_s": 0.0},
    "eager": {"fixed_s": 1e-4, "per_layer_s": 1e-6, "per_seq_s": 2e-6, "per_token_s": 1e-8, "launch_s": 1e-5},
}


def _load(fn, name: str, data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        return clean(fn, path, names=name)


def _curves(**curves) -> dict:
    return {**CALIBRATION, "curves": {**CALIBRATION["curves"], **curves}}


@FAST
@given(mutated_mapping(CALIBRATION))
@example({**CALIBRATION, "lanch_s": 1e-6})                                    # unknown keys were ignored
@example({**CALIBRATION, "launch_s": 10**400})                                # float(): OverflowError
@example({**CALIBRATION, "mixed_query_tile": 1.5})                            # silently truncated to 1
@example({**CALIBRATION, "band": [1, 2]})                                     # list band: AttributeError later
@example({**CALIBRATION, "band": {"q05": "x", "q95": 0.1}})                   # float('x') at run time
@example({**CALIBRATION, "time_scale": {"attn_decode": float("inf")}})        # infinite time accepted
@example(_curves(gemm={"knots": [float("nan")], "eff": [0.5]}))             # NaN knot accepted
@example(_curves(gemm={"knots": [10**400], "eff": [0.5]}))                  # np.asarray: OverflowError
@example(_curves(gemmm={"knots": [0.0], "eff": [0.5]}))                     # misspelt curve ignored
@example(_curves(gemm={"knot": [0.0], "eff": [0.5]}))                       # "malformed curve: 'knots'"
def test_mutated_calibration(data):
    _load(load_calibration, "gpu.calibration.yaml", dump(data).encode())


@FAST
@given(mutated_bytes(dump(CALIBRATION)))
def test_broken_calibration_text(text):
    _load(load_calibration, "gpu.calibration.yaml", text)


@FAST
@given(mutated_mapping(ENGINE))
@example({**ENGINE, "eager": {"fixed_s": 10**30}})     # np.isfinite(big int): TypeError
@example({**ENGINE, "eager": {"fixed_s": -1.0}})       # negative host time accepted
@example({**ENGINE, "graph_max_seqs": True})           # a bool taken as 1
@example({**ENGINE, "name": ["x"]})                    # a name that is not text
def test_mutated_engine_profile(data):
    _load(load_engine, "engine.yaml", dump(data).encode())


@FAST
@given(mutated_bytes(dump(ENGINE)))
def test_broken_engine_profile_text(text):
    _load(load_engine, "engine.yaml", text)


@pytest.mark.parametrize("fn", [load_calibration, load_engine])
def test_profile_path_that_is_a_folder_empty_or_missing(tmp_path, fn):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    for name in ("dir.yaml", "empty.yaml", "missing.yaml"):
        assert isinstance(clean(fn, tmp_path / name), InputError)
