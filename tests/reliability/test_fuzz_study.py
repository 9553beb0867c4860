"""Fuzzing study files: ``load_study`` gives a study or one clean InputError; so does planning its points
(which builds every point's scenario) and ``llmsim sweep``'s up-front checks."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings

from llmsim.errors import InputError
from llmsim.sweep.plan import plan_points
from llmsim.sweep.study import load_study

from .conftest import FULL_SCENARIO, dump
from .mutations import clean, mutated_bytes, mutated_mapping

FAST = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

STUDY: dict = {
    "name": "fuzz-study",
    "description": "a small grid",
    "base": {**FULL_SCENARIO, "workload": {**FULL_SCENARIO["workload"], "num_requests": 10}},
    "set": {"scheduler.max_num_seqs": 32},
    "axes": {"hardware": ["h100-sxm", "a100-80g-sxm"], "parallelism.tp": [1, 2]},
    "zip": {"scheduler.policy": ["continuous", "chunked"], "replicas": [1, 2]},
    "slo": {"ttft_p99": 0.5, "tpot_p99": 0.05},
    "target": {"rate": 4},
}


def _load_and_plan(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "study.yaml"
        path.write_bytes(data)
        study = clean(load_study, path, names="study.yaml")
        if not isinstance(study, InputError):
            clean(plan_points, study, names="study.yaml")


@FAST
@given(mutated_mapping(STUDY))
@example({**STUDY, "name": ["x"]})
@example({**STUDY, "name": "a/b"})
def test_mutated_study(data):
    _load_and_plan(dump(data).encode())


@FAST
@given(mutated_bytes(dump(STUDY)))
def test_broken_study_text(text):
    _load_and_plan(text)


def test_study_path_that_is_a_folder_empty_or_missing(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    for name in ("dir.yaml", "empty.yaml", "missing.yaml"):
        assert isinstance(clean(load_study, tmp_path / name), InputError)
