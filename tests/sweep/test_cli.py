"""The sweep commands through the command line: output, exit codes, help."""

from __future__ import annotations

import pandas as pd
import pytest

from .conftest import tiny_study


def test_sweep_command_runs_in_worker_processes_and_resumes(write_study, tmp_path, cli):
    study = write_study(tiny_study(target={"rate": 2}))
    first = cli("sweep", study, "--out", tmp_path / "out", "--workers", "2", "--quiet")
    assert first.exit_code == 0, first.output
    assert "4 points (4 ok); 4 run now, 0 reused" in first.output and "cheapest configuration" in first.output
    assert len(pd.read_csv(tmp_path / "out" / "results.csv")) == 4
    again = cli("sweep", study, "--out", tmp_path / "out")
    assert again.exit_code == 0 and "0 run now, 4 reused" in again.output and "tiny-study" in again.output


def test_bad_axis_value_exits_2_naming_the_point_and_runs_nothing(write_study, tmp_path, cli):
    study = write_study(tiny_study(axes={"parallelism.tp": [1, 3]}))
    result = cli("sweep", study, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert result.output.startswith("llmsim: error: ") and len(result.output.strip().splitlines()) == 1
    assert "point 1 (parallelism.tp=3)" in result.output and "does not divide" in result.output
    assert not (tmp_path / "out").exists()


def test_unknown_study_key_exits_2_with_a_suggestion(write_study, tmp_path, cli):
    result = cli("sweep", write_study(tiny_study(slos={"ttft_p99": 1})), "--out", tmp_path / "out")
    assert result.exit_code == 2 and "slos: unknown key (did you mean 'slo'?)" in result.output


def test_changed_study_exits_2_unless_overwrite(write_study, tmp_path, cli):
    assert cli("sweep", write_study(tiny_study()), "--out", tmp_path / "out", "--workers", "1",
               "--quiet").exit_code == 0
    changed = write_study(tiny_study(axes={"replicas": [1, 2]}))
    refused = cli("sweep", changed, "--out", tmp_path / "out", "--quiet")
    assert refused.exit_code == 2 and "different study (changed: axes)" in refused.output
    assert cli("sweep", changed, "--out", tmp_path / "out", "--workers", "1", "--quiet",
               "--overwrite").exit_code == 0
    assert len(list((tmp_path / "out" / "points").iterdir())) == 2


def test_failed_point_gives_exit_code_1_after_writing_everything(write_study, tmp_path, cli, monkeypatch):
    from llmsim.sweep import worker

    def broken(sc):
        raise RuntimeError("boom")
    monkeypatch.setattr(worker, "simulate", broken)
    result = cli("sweep", write_study(tiny_study(axes={"replicas": [1]})), "--out", tmp_path / "out",
                 "--workers", "1", "--quiet")
    assert result.exit_code == 1 and "1 failed" in result.output
    assert (tmp_path / "out" / "results.csv").is_file()


@pytest.mark.parametrize("args, message", [
    (["--backend", "dask"], "unknown backend"),
    (["--address", "auto"], "--address applies only to --backend ray"),
    (["--workers", "0"], "expected at least 1 worker"),
])
def test_bad_flags_exit_2(write_study, tmp_path, cli, args, message):
    result = cli("sweep", write_study(tiny_study()), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.parametrize("command", ["sweep", "capacity", "cheapest"])
def test_every_command_has_help(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output
