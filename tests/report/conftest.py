"""Fixtures for the report tests: two small real runs (continuous and chunked) saved to disk, and reports.

The runs are simulated once per test session (60 requests of the built-in quickstart scenario each,
about a second in all) and shared read-only; tests that need to damage a run copy it first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import llmsim

SMALL = ["workload.num_requests=60"]


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    """A folder holding two saved runs: ``continuous/`` and ``chunked/``."""
    root = tmp_path_factory.mktemp("runs")
    llmsim.run("quickstart", SMALL).save(root / "continuous")
    llmsim.run("quickstart", [*SMALL, "scheduler.policy=chunked"]).save(root / "chunked")
    return root


@pytest.fixture(scope="session")
def run_a(runs_dir: Path) -> Path:
    """The continuous-batching run folder."""
    return runs_dir / "continuous"


@pytest.fixture(scope="session")
def run_b(runs_dir: Path) -> Path:
    """The chunked-prefill run folder."""
    return runs_dir / "chunked"


@pytest.fixture(scope="session")
def comparison(tmp_path_factory, run_a: Path, run_b: Path) -> Path:
    """report.html comparing the two runs (figures in report_figures/ beside it)."""
    from llmsim.report import write_report
    out = tmp_path_factory.mktemp("comparison") / "report.html"
    return write_report([run_a, run_b], out)


@pytest.fixture(scope="session")
def single(tmp_path_factory, run_a: Path) -> Path:
    """report.html of the continuous run alone."""
    from llmsim.report import write_report
    out = tmp_path_factory.mktemp("single") / "single.html"
    return write_report([run_a], out)


@pytest.fixture
def damaged(tmp_path: Path, run_a: Path):
    """``damaged(edit)`` -> a copy of run A after ``edit(folder)`` changed it."""
    def _make(edit) -> Path:
        folder = tmp_path / "run"
        shutil.copytree(run_a, folder)
        edit(folder)
        return folder
    return _make
