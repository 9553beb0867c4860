"""load_run: a run folder becomes a RunData; anything missing or malformed is an InputError naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.errors import InputError
from llmsim.report.load import ITERATION_COLUMNS, REQUEST_COLUMNS, load_run, load_runs, run_names


def error_for(folder: Path) -> InputError:
    """The InputError that loading ``folder`` raises."""
    with pytest.raises(InputError) as info:
        load_run(folder)
    return info.value


def test_real_run_loads_with_the_columns_the_report_uses(run_a: Path):
    run = load_run(run_a)
    assert run.name == "continuous" and run.path == run_a
    assert list(run.requests.columns) == list(REQUEST_COLUMNS)
    assert list(run.iterations.columns) == list(ITERATION_COLUMNS)
    assert len(run.requests) == 60 and len(run.iterations) > 60
    assert run.itl["count"].sum() == (pd.read_csv(run_a / "requests.csv")["output_tokens"] - 1).sum()
    assert run.summary["requests"]["total"] == 60
    assert run.scenario["scheduler"]["policy"] == "continuous"
    assert run.scenario_text == (run_a / "scenario.yaml").read_text()
    assert run.run_info["llmsim_version"]


def test_latencies_are_floats_in_seconds_and_status_is_text(run_a: Path):
    run = load_run(run_a)
    assert run.requests["ttft_s"].dtype == np.float64
    assert set(run.requests["status"]) == {"finished"}
    assert len(run.finished) == 60
    assert (run.finished["ttft_s"] < 10).all()  # seconds, not milliseconds


def test_a_missing_folder_is_an_input_error_naming_it(tmp_path: Path):
    err = error_for(tmp_path / "nowhere")
    assert err.source == str(tmp_path / "nowhere")
    assert "run folder" in err.message


@pytest.mark.parametrize("name", ["requests.csv", "iterations.csv", "itl.csv", "summary.json", "scenario.yaml"])
def test_a_missing_file_is_an_input_error_naming_the_file(damaged, name: str):
    folder = damaged(lambda f: (f / name).unlink())
    err = error_for(folder)
    assert err.source == str(folder / name)
    assert "missing file" in err.message


def test_run_info_is_optional(damaged):
    folder = damaged(lambda f: (f / "run_info.json").unlink())
    assert load_run(folder).run_info == {}


def test_a_missing_column_is_named(damaged):
    def drop_ttft(folder: Path) -> None:
        frame = pd.read_csv(folder / "requests.csv")
        frame.drop(columns=["ttft_s"]).to_csv(folder / "requests.csv", index=False)
    err = error_for(damaged(drop_ttft))
    assert err.source.endswith("requests.csv") and "ttft_s" in err.message


def test_text_in_a_numeric_column_is_an_input_error(damaged):
    def corrupt(folder: Path) -> None:
        frame = pd.read_csv(folder / "iterations.csv")
        frame["start_s"] = frame["start_s"].astype(object)
        frame.loc[3, "start_s"] = "soon"
        frame.to_csv(folder / "iterations.csv", index=False)
    err = error_for(damaged(corrupt))
    assert err.source.endswith("iterations.csv") and "malformed" in err.message


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]"])
def test_a_bad_summary_is_an_input_error(damaged, text: str):
    err = error_for(damaged(lambda f: (f / "summary.json").write_text(text)))
    assert err.source.endswith("summary.json")


def test_an_empty_csv_is_an_input_error(damaged):
    err = error_for(damaged(lambda f: (f / "itl.csv").write_text("")))
    assert err.source.endswith("itl.csv")


def test_a_scenario_that_is_not_a_mapping_is_an_input_error(damaged):
    err = error_for(damaged(lambda f: (f / "scenario.yaml").write_text("- a\n- b\n")))
    assert err.source.endswith("scenario.yaml") and "mapping" in err.message


def test_a_file_instead_of_a_folder_is_an_input_error(run_a: Path):
    assert error_for(run_a / "summary.json").source == str(run_a / "summary.json")


def test_no_folders_is_an_input_error():
    with pytest.raises(InputError):
        load_runs([])


def test_run_names_are_folder_names_made_unique(tmp_path: Path):
    assert run_names([tmp_path / "a", tmp_path / "b"]) == ["a", "b"]
    assert run_names([tmp_path / "x" / "run", tmp_path / "y" / "run"]) == ["x/run", "y/run"]
    assert run_names([tmp_path / "run", tmp_path / "run"]) == [f"{tmp_path.name}/run", f"{tmp_path.name}/run#2"]


def test_summary_json_is_read_as_written(run_a: Path):
    assert load_run(run_a).summary == json.loads((run_a / "summary.json").read_text())

