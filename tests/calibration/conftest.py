"""Shared helpers of the calibration tests: the committed measurements and small CSV writers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from llmsim.calibration.measurements import SUITE_HEADER

REPO = Path(__file__).resolve().parents[2]
MEASURED = REPO / "calibration" / "measured"
H100_SUITE = [MEASURED / "h100-sxm_suite_misc.csv", MEASURED / "h100-sxm_suite_gemm.csv"]
H100_REFERENCE = MEASURED / "h100-sxm_reference_llama-3-8b.csv"
REFERENCE_HEADER = ("kind", "mode", "model", "layers", "chunks", "decodes", "num_tokens", "num_sampled",
                    "median_s")


def write_rows(path: Path, rows: list[dict], columns) -> Path:
    """Write ``rows`` as a CSV with exactly ``columns`` (missing values left blank)."""
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def write_suite(path: Path, rows: list[dict]) -> Path:
    """A calibration-suite CSV (the suite's columns, blanks where a row has no value)."""
    return write_rows(path, rows, SUITE_HEADER)


@pytest.fixture(scope="session")
def cli_app() -> typer.Typer:
    """The full ``llmsim`` command line."""
    from llmsim.cli import app
    return app


def invoke(app: typer.Typer, *args) -> "typer.testing.Result":
    """Run the command line in-process; arguments are stringified."""
    return CliRunner().invoke(app, [str(a) for a in args])
