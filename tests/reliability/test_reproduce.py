"""Every run folder records what made it (llmsim version, resolved scenario, calibration, seed), and rerunning
its ``scenario.yaml`` from anywhere reproduces ``requests.csv`` and ``summary.json`` byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

import llmsim
from llmsim.scenario import DEFAULTS

from .conftest import REPO, dump, invoke
from .test_fuzz_profiles import CALIBRATION, ENGINE
from .test_fuzz_specs import MODEL_YAML


def run_ok(runner, *args) -> None:
    result = invoke(runner, "run", *args, "--quiet")
    assert result.exit_code == 0, result.stderr


def assert_same_results(a: Path, b: Path) -> None:
    for name in ("requests.csv", "summary.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_run_folder_records_version_scenario_calibration_and_seed(runner, tmp_path):
    out = tmp_path / "out"
    run_ok(runner, "quickstart", "--out", out, "--set", "workload.num_requests=30",
           "--set", "scheduler.max_num_seqs=16", "--set", "workload.seed=7")
    resolved = yaml.safe_load((out / "scenario.yaml").read_text())
    assert set(resolved) == set(DEFAULTS)                                  # every key, defaults filled in
    assert resolved["scheduler"]["max_num_seqs"] == 16                     # overrides applied
    assert resolved["scheduler"]["chunk_size"] == DEFAULTS["scheduler"]["chunk_size"]
    assert resolved["workload"]["num_requests"] == 30 and resolved["workload"]["seed"] == 7
    info = json.loads((out / "run_info.json").read_text())
    assert info["llmsim_version"] == llmsim.__version__ and info["seed"] == 7
    assert Path(info["calibration"]) == REPO / "hardware_profiles" / "h100-sxm.calibration.yaml"
    assert info["engine_profile"] == "cuda-graphs"
    reproduce = json.loads((out / "summary.json").read_text())["reproduce"]
    assert reproduce == {**reproduce, "llmsim_version": llmsim.__version__, "seed": 7, "calibration": "h100-sxm",
                         "engine_profile": "cuda-graphs"}


def test_default_seed_is_written_out(runner, tmp_path):
    """A scenario without ``workload.seed`` runs with seed 0, and its scenario.yaml says so."""
    scenario = tmp_path / "s.yaml"
    data = yaml.safe_load((REPO / "scenarios" / "quickstart.yaml").read_text())
    del data["workload"]["seed"]
    scenario.write_text(dump({**data, "workload": {**data["workload"], "num_requests": 20}}))
    run_ok(runner, scenario, "--out", tmp_path / "out")
    assert yaml.safe_load((tmp_path / "out" / "scenario.yaml").read_text())["workload"]["seed"] == 0


def test_rerun_of_a_builtin_scenario_is_byte_identical(runner, tmp_path):
    first = tmp_path / "first"
    run_ok(runner, "quickstart", "--out", first, "--set", "workload.num_requests=40", "--set", "replicas=2")
    run_ok(runner, first / "scenario.yaml", "--out", tmp_path / "second")
    assert_same_results(first, tmp_path / "second")


@pytest.fixture
def user_files(tmp_path: Path) -> Path:
    """A scenario in its own folder whose trace, model, draft model, hardware, calibration and engine profile
    are all referenced by relative paths."""
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    shutil.copy(REPO / "workloads" / "chat_300.csv", folder / "data" / "chat.csv")
    shutil.copy(REPO / "hardware_profiles" / "h100-sxm.yaml", folder / "data" / "gpu.yaml")
    (folder / "data" / "model.yaml").write_text(dump({**MODEL_YAML, "num_experts": 0, "experts_per_token": 0,
                                                      "expert_intermediate_size": 0, "num_shared_experts": 0}))
    (folder / "data" / "cal.yaml").write_text(dump(CALIBRATION))
    (folder / "data" / "engine.yaml").write_text(dump(ENGINE))
    (folder / "scenario.yaml").write_text(dump({
        "name": "relative-paths", "model": "data/model.yaml", "hardware": "data/gpu.yaml",
        "engine": {"profile": "data/engine.yaml", "calibration": "data/cal.yaml"},
        "speculative": {"method": "draft_model", "num_speculative_tokens": 2, "acceptance": 0.6,
                        "draft_model": "data/model.yaml"},
        "workload": {"trace": "data/chat.csv", "limit": 12},
    }))
    return folder


def test_rerun_from_the_run_folder_resolves_relative_paths(runner, user_files, tmp_path, monkeypatch):
    """Before: scenario.yaml kept ``trace: data/chat.csv``, which the rerun looked for inside the run folder."""
    first = tmp_path / "runs" / "first"
    run_ok(runner, user_files / "scenario.yaml", "--out", first)
    monkeypatch.chdir(first)
    run_ok(runner, "scenario.yaml", "--out", tmp_path / "second")
    assert_same_results(first, tmp_path / "second")
    resolved = yaml.safe_load((first / "scenario.yaml").read_text())
    assert resolved["workload"]["trace"] == str(user_files / "data" / "chat.csv")
    assert resolved["engine"]["calibration"] == str(user_files / "data" / "cal.yaml")
    assert resolved["speculative"]["draft_model"] == resolved["model"] == str(user_files / "data" / "model.yaml")


def test_scenario_given_as_a_relative_path_from_another_folder(runner, user_files, tmp_path, monkeypatch):
    monkeypatch.chdir(user_files.parent)
    run_ok(runner, "project/scenario.yaml", "--out", tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    run_ok(runner, "a/scenario.yaml", "--out", tmp_path / "b")
    assert_same_results(tmp_path / "a", tmp_path / "b")
