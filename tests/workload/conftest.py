"""Fixtures for the workload tests: paths to the real sample traces and a small-file writer."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

#: ../shared beside the repository (read-only real traces); tests skip when it is absent.
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
TRACES = SHARED / "traces"


def shared_trace(relative: str) -> Path:
    """The path of a real trace under ../shared/traces, skipping the test when it is absent."""
    path = TRACES / relative
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return path


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write(name, text)`` -> path of a new file under tmp_path holding ``text``."""
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return _write
