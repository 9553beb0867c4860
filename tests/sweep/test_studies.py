"""The studies shipped in studies/: each has its header, loads, and every point validates.

Running them takes about a minute each on 2 cores, too long for every CI run: set LLMSIM_RUN_STUDIES=1 to
run them too. A study whose trace is not available (the Azure trace lives in ../shared) is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmsim.sweep import load_study, run_sweep
from llmsim.sweep.plan import READY, plan_points

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.yaml"))


def _load_or_skip(path: Path):
    """The study at ``path``; skip when a trace it reads is missing (traces are not shipped)."""
    study = load_study(path)
    trace = study.base.data.get("workload", {}).get("trace")
    if trace is not None and not (path.parent / trace).is_file():
        pytest.skip(f"{trace} not available (point workload.trace at your copy)")
    return study


def test_three_studies_are_shipped():
    assert {p.stem for p in STUDIES} >= {"gpu_tp_70b_chat", "rag_policies", "azure_conv_h100s"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_has_question_and_covers_header(path):
    head = path.read_text().split("\nname:")[0]
    assert "# Question:" in head and "# Covers:" in head


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_point_of_a_shipped_study_validates(path):
    study = _load_or_skip(path)
    planned = plan_points(study)
    assert len(planned) >= 6 and all(p.status == READY for p in planned)


@pytest.mark.skipif(os.environ.get("LLMSIM_RUN_STUDIES") != "1", reason="set LLMSIM_RUN_STUDIES=1 to run")
@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_shipped_study_runs(path, tmp_path):
    _load_or_skip(path)
    result = run_sweep(path, tmp_path / "out", workers=2)
    assert set(result.table["status"]) == {"ok"}
