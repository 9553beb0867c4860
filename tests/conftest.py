"""Shared fixtures: the specs most tests price against, and the location of ../shared (if present)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.costmodel import DATASHEET, CostModel, Precision
from llmsim.specs import Parallelism, load_hardware, load_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def h100():
    return load_hardware("h100-sxm")


@pytest.fixture(scope="session")
def llama3_8b():
    return load_model("llama-3-8b")


@pytest.fixture(scope="session")
def roofline(llama3_8b, h100):
    """llama-3-8b on one H100 priced with the pure datasheet roofline (every efficiency 1)."""
    return CostModel(llama3_8b, h100, Parallelism(), Precision(), DATASHEET)


def shared_file(relative: str) -> Path:
    """A file under ../shared, or skip the test when it is not there."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path
