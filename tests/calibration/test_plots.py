"""``llmsim calibrate report``: PNG and SVG per operator class (and whole iterations), deterministic, no clobbering."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llmsim.calibration.plots import groups, reference_predictions, write_plots
from llmsim.costmodel import load_calibration
from llmsim.errors import InputError
from llmsim.specs.hardware import resolve_hardware_path

from .conftest import H100_REFERENCE, MEASURED, invoke

MISC = MEASURED / "h100-sxm_suite_misc.csv"
KERNEL_SLUGS = [f"{c}_{k}" for c in ("attn_decode", "attn_prefill", "elementwise")
                for k in ("measured_vs_predicted", "efficiency")]


@pytest.fixture(scope="module")
def small_gemm(tmp_path_factory) -> Path:
    """Three GEMM shapes of the committed H100 data (every M), to keep the plots quick."""
    raw = pd.read_csv(MEASURED / "h100-sxm_suite_gemm.csv")
    keep = raw[raw["op"].isin(["llama-3-8b@tp1/qkv", "llama-3-8b@tp1/o", "llama-3-8b@tp1/down"])]
    path = tmp_path_factory.mktemp("gemm") / "gemm.csv"
    keep.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def elementwise_only(tmp_path_factory) -> Path:
    """The committed H100 elementwise kernels alone (two figures: quick)."""
    raw = pd.read_csv(MISC)
    path = tmp_path_factory.mktemp("elementwise") / "elementwise.csv"
    raw[raw["op_class"] == "elementwise"].to_csv(path, index=False)
    return path


def test_report_writes_png_and_svg_per_class_and_reference(cli_app, tmp_path: Path, small_gemm: Path):
    out = tmp_path / "report"
    result = invoke(cli_app, "calibrate", "report", MISC, small_gemm, "--hardware", "h100-sxm",
                    "--reference", H100_REFERENCE, "-o", out)
    assert result.exit_code == 0, result.output
    slugs = ["gemm_measured_vs_predicted", "gemm_efficiency", *KERNEL_SLUGS, "reference_iterations",
             "reference_errors"]
    expected = {f"{s}.{ext}" for s in slugs for ext in ("png", "svg")}
    assert {p.name for p in out.iterdir()} == expected
    assert result.output.count("wrote ") == len(expected)
    for name in expected:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") if name.endswith(".png") else b"<svg" in data[:2000]


def test_report_refuses_existing_files_unless_overwrite(cli_app, tmp_path: Path, elementwise_only: Path):
    out = tmp_path / "report"
    out.mkdir()
    (out / "elementwise_efficiency.svg").write_text("hand-edited")
    args = ["calibrate", "report", elementwise_only, "--hardware", "h100-sxm", "-o", out]
    result = invoke(cli_app, *args)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert [p.name for p in out.iterdir()] == ["elementwise_efficiency.svg"]  # nothing else written
    assert (out / "elementwise_efficiency.svg").read_text() == "hand-edited"
    assert invoke(cli_app, *args, "--overwrite").exit_code == 0
    assert (out / "elementwise_efficiency.svg").read_bytes().lstrip().startswith(b"<?xml")


def test_plots_are_byte_for_byte_deterministic_and_undated(tmp_path: Path, elementwise_only: Path):
    first = write_plots("h100-sxm", [elementwise_only], "auto", tmp_path / "a")
    second = write_plots("h100-sxm", [elementwise_only], "auto", tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert len(first) == 4
    svg = (tmp_path / "a" / "elementwise_efficiency.svg").read_text()
    assert "<dc:date>" not in svg


def test_measurements_without_plotted_classes_are_refused(tmp_path: Path):
    only_launch = tmp_path / "launch.csv"
    raw = pd.read_csv(MISC)
    raw[raw["op_class"] == "launch"].to_csv(only_launch, index=False)
    with pytest.raises(InputError, match="no kernels of the plotted classes"):
        write_plots("h100-sxm", [only_launch], "auto", tmp_path / "out")


def test_calibration_beats_datasheet_and_default_on_whole_iterations(h100):
    profile = load_calibration(resolve_hardware_path("h100-sxm").with_name("h100-sxm.calibration.yaml"))
    frame, predictions = reference_predictions(H100_REFERENCE, h100, profile, "reference-executor")
    measured = frame["median_s"].to_numpy()
    err = {name: float(abs(p / measured - 1).mean()) for name, p in predictions.items()}
    assert list(err) == ["datasheet", "default", "calibrated (h100-sxm)"]
    assert err["calibrated (h100-sxm)"] < err["default"] < err["datasheet"]


def test_gemm_points_are_grouped_by_shape():
    rows = pd.DataFrame({"n": [6144, 4096, 6144], "k": [4096, 4096, 4096], "op": ["a", "b", "c"]})
    assert [(label, idx.tolist()) for label, idx in groups(rows, "gemm")] == [("4096x4096", [1]),
                                                                            ("6144x4096", [0, 2])]
