"""Nothing the user wrote is overwritten: ``run``, ``report`` and ``sweep`` refuse a folder or file holding
earlier results (exit 2, every byte untouched) unless ``--overwrite``, which replaces only llmsim's own files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from .conftest import assert_clean_failure, dump, invoke

TINY = ["--set", "workload.num_requests=12", "--set", "engine.calibration=default"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path -> sha256), empty folders included as ''."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    return out


@pytest.fixture
def earlier(tmp_path: Path) -> Path:
    """A folder holding a user's notes and a nested file."""
    folder = tmp_path / "results"
    (folder / "nested").mkdir(parents=True)
    (folder / "notes.md").write_text("my analysis\n")
    (folder / "summary.json").write_text('{"mine": true}\n')
    (folder / "nested" / "data.csv").write_text("a,b\n1,2\n")
    return folder


def test_run_refuses_a_non_empty_out_folder(runner, earlier):
    before = snapshot(earlier)
    line = assert_clean_failure(invoke(runner, "run", "quickstart", "--quiet", "--out", earlier, *TINY))
    assert f"{earlier}: output folder is not empty" in line and "--overwrite" in line
    assert snapshot(earlier) == before


def test_run_with_overwrite_replaces_only_its_own_files(runner, earlier):
    result = invoke(runner, "run", "quickstart", "--quiet", "--out", earlier, "--overwrite", *TINY)
    assert result.exit_code == 0, result.stderr
    assert (earlier / "notes.md").read_text() == "my analysis\n"
    assert (earlier / "nested" / "data.csv").read_text() == "a,b\n1,2\n"
    assert '"mine"' not in (earlier / "summary.json").read_text()


def test_run_refuses_an_out_path_that_is_a_file(runner, tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("keep")
    line = assert_clean_failure(invoke(runner, "run", "quickstart", "--quiet", "--out", target, *TINY))
    assert "output path exists and is not a folder" in line
    assert target.read_text() == "keep"


def test_run_refuses_before_simulating_and_on_bad_input_writes_nothing(runner, earlier, tmp_path):
    before = snapshot(earlier)
    assert_clean_failure(invoke(runner, "run", "quickstart", "--quiet", "--out", earlier, "--set", "replicas=0"))
    assert snapshot(earlier) == before
    assert_clean_failure(invoke(runner, "run", "quickstart", "--quiet", "--out", tmp_path / "new",
                                "--set", "replicas=0"))
    assert not (tmp_path / "new").exists()


def test_run_without_out_picks_a_fresh_folder(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "quickstart").mkdir(parents=True)
    (tmp_path / "runs" / "quickstart" / "keep.txt").write_text("earlier")
    result = invoke(runner, "run", "quickstart", "--quiet", *TINY)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "runs" / "quickstart-2" / "summary.json").is_file()
    assert sorted(p.name for p in (tmp_path / "runs" / "quickstart").iterdir()) == ["keep.txt"]


@pytest.fixture
def run_dir(runner, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert invoke(runner, "run", "quickstart", "--quiet", "--out", out, *TINY).exit_code == 0
    return out


def test_report_refuses_an_existing_page_and_figures(runner, run_dir, tmp_path):
    page = tmp_path / "report.html"
    page.write_text("my page")
    before = snapshot(tmp_path)
    line = assert_clean_failure(invoke(runner, "report", run_dir, "-o", page))
    assert f"{page}: file exists" in line and "--overwrite" in line
    assert snapshot(tmp_path) == before
    assert invoke(runner, "report", run_dir, "-o", page, "--overwrite").exit_code == 0
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_report_refuses_existing_figure_files(runner, run_dir, tmp_path):
    figures = tmp_path / "figs"
    figures.mkdir()
    (figures / "timeline.svg").write_text("hand-edited")
    before = snapshot(tmp_path)
    assert_clean_failure(invoke(runner, "report", run_dir, "-o", tmp_path / "r.html", "--figures-dir", figures))
    assert snapshot(tmp_path) == before


STUDY = {"name": "tiny-study",
         "base": {"name": "tiny", "model": "llama-3-8b", "hardware": "h100-sxm",
                  "scheduler": {"policy": "continuous", "max_num_seqs": 16},
                  "engine": {"calibration": "default"},
                  "workload": {"arrival": {"process": "poisson", "rate": 4.0},
                               "prompt_tokens": {"dist": "fixed", "value": 100},
                               "output_tokens": {"dist": "fixed", "value": 8}, "num_requests": 8}},
         "axes": {"scheduler.max_num_seqs": [4, 16]}}


def test_sweep_refuses_a_folder_of_other_files(runner, earlier, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(dump(STUDY))
    before = snapshot(earlier)
    line = assert_clean_failure(invoke(runner, "sweep", study, "--out", earlier, "--workers", "1", "--quiet"))
    assert "output folder is not empty and holds no sweep" in line
    assert snapshot(earlier) == before


def test_sweep_refuses_another_studys_results_unless_overwrite(runner, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(dump(STUDY))
    out = tmp_path / "sweep"
    assert invoke(runner, "sweep", study, "--out", out, "--workers", "1", "--quiet").exit_code == 0
    (out / "my-notes.md").write_text("notes")
    before = snapshot(out)
    study.write_text(dump({**STUDY, "axes": {"scheduler.max_num_seqs": [2, 16]}}))
    line = assert_clean_failure(invoke(runner, "sweep", study, "--out", out, "--workers", "1", "--quiet"))
    assert "holds results of a different study" in line and "--overwrite" in line
    assert snapshot(out) == before
    result = invoke(runner, "sweep", study, "--out", out, "--workers", "1", "--quiet", "--overwrite")
    assert result.exit_code == 0, result.stderr
    assert (out / "my-notes.md").read_text() == "notes"
