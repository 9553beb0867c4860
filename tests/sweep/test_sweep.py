"""run_sweep: the results table, resuming, failing and infeasible points, refusing another study's folder."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from llmsim.errors import InputError
from llmsim.sweep import run_sweep, worker
from llmsim.sweep.plan import deployment_cost
from llmsim.sweep.table import METRIC_COLUMNS, have_pyarrow

from .conftest import tiny_study


def test_four_point_sweep_writes_one_row_per_point_in_grid_order(write_study, tmp_path, runs):
    result = run_sweep(write_study(tiny_study()), tmp_path / "out", workers=1)
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert len(runs) == 4 and len(csv) == 4
    assert list(csv["point"]) == [0, 1, 2, 3] and set(csv["status"]) == {"ok"}
    assert list(csv.columns) == ["point", "id", "scheduler.max_num_seqs", "workload.arrival.rate", "status",
                                 "error", *METRIC_COLUMNS]
    if have_pyarrow():  # the test extra does not require pyarrow; without it only CSV is written
        parquet = pd.read_parquet(tmp_path / "out" / "results.parquet")
        assert list(parquet["scheduler.max_num_seqs"]) == [4, 4, 32, 32]
        assert parquet["ttft_p99_s"].tolist() == csv["ttft_p99_s"].tolist()
        assert parquet["slo_met"].tolist() == csv["slo_met"].tolist()
    assert (csv["gpus"] == 1).all() and (csv["cost_per_hour_usd"] == 2.9).all()
    assert csv["offered_rate_per_s"].tolist() == [2.0, 4.0, 2.0, 4.0]
    for row in result.table.itertuples():
        folder = tmp_path / "out" / "points" / row.id
        assert {p.name for p in folder.iterdir()} == {"overrides.json", "summary.json", "measured.json"}
    overrides = json.loads((tmp_path / "out" / "points" / result.table["id"][3] / "overrides.json").read_text())
    assert overrides == {"scheduler.max_num_seqs": 32, "workload.arrival.rate": 4.0}


def test_cost_columns_agree_with_replicas_x_tp_x_pp_at_the_profile_price(write_study, tmp_path):
    study = tiny_study(axes={"replicas": [1, 2]}, set={"parallelism.tp": 2})
    table = run_sweep(write_study(study), tmp_path / "out", workers=1, report=False).table
    assert table["gpus"].tolist() == [2, 4]
    assert table["cost_per_hour_usd"].tolist() == pytest.approx([5.8, 11.6])
    per_m_out = table["cost_per_hour_usd"] / (table["output_tokens_per_s"] * 3600) * 1e6
    assert table["usd_per_m_output_tokens"].tolist() == pytest.approx(per_m_out.tolist())


def test_resume_after_interrupt_runs_only_the_missing_points_and_gives_identical_rows(write_study, tmp_path,
                                                                                      monkeypatch):
    study = write_study(tiny_study())
    run_sweep(study, tmp_path / "fresh", workers=1, report=False)
    real, calls = worker.simulate, []

    def interrupted(sc):
        calls.append(sc)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(sc)
    monkeypatch.setattr(worker, "simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(study, tmp_path / "out", workers=1, report=False)
    assert len(list((tmp_path / "out" / "points").iterdir())) == 2
    calls.clear()
    monkeypatch.setattr(worker, "simulate", lambda sc: (calls.append(sc), real(sc))[1])
    result = run_sweep(study, tmp_path / "out", workers=1, report=False)
    assert len(calls) == 2 and (result.computed, result.reused) == (2, 2)
    assert (tmp_path / "out" / "results.csv").read_bytes() == (tmp_path / "fresh" / "results.csv").read_bytes()


def test_resume_recomputes_a_deleted_point_only(write_study, tmp_path, runs):
    study = write_study(tiny_study())
    first = run_sweep(study, tmp_path / "out", workers=1, report=False)
    before = (tmp_path / "out" / "results.csv").read_bytes()
    shutil.rmtree(tmp_path / "out" / "points" / first.table["id"][2])
    runs.clear()
    second = run_sweep(study, tmp_path / "out", workers=1, report=False)
    assert len(runs) == 1 and second.computed == 1
    assert runs[0].scheduler["max_num_seqs"] == 32 and runs[0].workload.arrival.rate_per_s == 2.0
    assert (tmp_path / "out" / "results.csv").read_bytes() == before


def test_changed_study_is_refused_unless_overwrite(write_study, tmp_path, runs):
    run_sweep(write_study(tiny_study()), tmp_path / "out", workers=1, report=False)
    changed = write_study(tiny_study(set={"workload.num_requests": 12}))
    with pytest.raises(InputError, match="different study.*set"):
        run_sweep(changed, tmp_path / "out", workers=1, report=False)
    runs.clear()
    result = run_sweep(changed, tmp_path / "out", workers=1, overwrite=True, report=False)
    assert len(runs) == 4 and (result.table["finished"] == 12).all()


def test_folder_with_other_files_is_refused_unless_overwrite(write_study, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds no sweep"):
        run_sweep(write_study(tiny_study()), tmp_path / "out", workers=1, report=False)


def test_failing_point_is_recorded_and_the_others_finish(write_study, tmp_path, monkeypatch):
    real = worker.simulate

    def flaky(sc):
        if sc.scheduler["max_num_seqs"] == 4 and sc.workload.arrival.rate_per_s == 4.0:
            raise RuntimeError("simulated crash\nsecond line")
        return real(sc)
    monkeypatch.setattr(worker, "simulate", flaky)
    table = run_sweep(write_study(tiny_study()), tmp_path / "out", workers=1, report=False).table
    assert table["status"].tolist() == ["ok", "failed", "ok", "ok"]
    assert table["error"][1] == "RuntimeError: simulated crash"
    assert pd.isna(table["ttft_p99_s"][1]) and table["ttft_p99_s"].notna().sum() == 3
    error = (tmp_path / "out" / "points" / table["id"][1] / "error.txt").read_text()
    assert "Traceback" in error and "simulated crash" in error
    monkeypatch.setattr(worker, "simulate", real)
    again = run_sweep(write_study(tiny_study()), tmp_path / "out", workers=1, report=False)
    assert again.computed == 1 and set(again.table["status"]) == {"ok"}
    assert not (tmp_path / "out" / "points" / table["id"][1] / "error.txt").exists()


def test_infeasible_point_becomes_a_row_and_is_not_run(write_study, tmp_path, runs):
    study = tiny_study(axes={"model": ["llama-3-8b", "llama-3-70b"]})
    table = run_sweep(write_study(study), tmp_path / "out", workers=1, report=False).table
    assert len(runs) == 1
    assert table["status"].tolist() == ["ok", "infeasible"] and "does not fit" in table["error"][1]


def test_study_report_is_self_contained(write_study, tmp_path):
    result = run_sweep(write_study(tiny_study(target={"rate": 2})), tmp_path / "out", workers=1)
    page = (tmp_path / "out" / "study.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # Pareto chart + one plot per axis
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert page.count("<tr class=") == 4 and "Cheapest configuration" in page
    for stem in ("pareto", "axis-scheduler-max_num_seqs", "axis-workload-arrival-rate"):
        assert (tmp_path / "out" / f"{stem}.png").is_file() and (tmp_path / "out" / f"{stem}.svg").is_file()
    assert result.out_dir / "study.html" in result.files


def test_deployment_cost_counts_disaggregated_pools():
    from llmsim.scenario import load_scenario
    sc = load_scenario("quickstart", ["scheduler.policy=disaggregated", "disaggregated.prefill.instances=2",
                                      "disaggregated.decode.tp=2"])
    assert deployment_cost(sc) == (4, pytest.approx(4 * 2.9))


def test_without_pyarrow_only_csv_is_written_with_a_note(write_study, tmp_path, monkeypatch, capsys):
    from llmsim.sweep import table
    monkeypatch.setattr(table, "have_pyarrow", lambda: False)
    run_sweep(write_study(tiny_study(axes={"replicas": [1]})), tmp_path / "out", workers=1, report=False)
    assert (tmp_path / "out" / "results.csv").is_file() and not (tmp_path / "out" / "results.parquet").exists()
    assert "pyarrow is not installed" in capsys.readouterr().err
