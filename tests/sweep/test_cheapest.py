"""The cheapest configuration meeting the SLO at a target rate, from a sweep and from a results folder."""

from __future__ import annotations

import json

import pandas as pd

from llmsim.sweep import pick_cheapest, run_sweep, slo_from_flags
from llmsim.sweep.cheapest import pareto_front
from llmsim.sweep.table import METRIC_COLUMNS

from .conftest import tiny_study


def test_cheapest_picks_the_cheaper_of_two_configurations_that_both_meet_the_slo(write_study, tmp_path):
    study = tiny_study(axes={"replicas": [2, 1]}, set={"workload.arrival.rate": 2.0}, target={"rate": 2})
    result = run_sweep(write_study(study), tmp_path / "out", workers=1, report=False)
    assert result.table["slo_met"].tolist() == [True, True]
    pick = result.cheapest
    assert pick.row["replicas"] == 1 and pick.row["cost_per_hour_usd"] == 2.9 and pick.qualifying == (0, 1)
    assert "$2.90/hour" in pick.describe(("replicas",))


def test_cheaper_configuration_missing_the_slo_is_passed_over(write_study, tmp_path):
    study = tiny_study(axes=None, zip={"replicas": [1, 2], "scheduler.max_num_seqs": [1, 32]},
                       set={"workload.arrival.rate": 8.0}, slo={"ttft_p99": 0.2}, target={"rate": 8})
    result = run_sweep(write_study(study), tmp_path / "out", workers=1, report=False)
    assert result.table["slo_met"].tolist() == [False, True]
    assert result.cheapest.row["replicas"] == 2


def test_points_offered_less_than_the_target_do_not_qualify():
    rows = []
    for point, (rate, cost) in enumerate([(10.0, 1.0), (20.0, 3.0), (20.0, 2.0)]):
        row = {c: None for c in METRIC_COLUMNS}
        row.update(point=point, id=str(point), status="ok", error="", offered_rate_per_s=rate, sustained=True,
                   finished=10, ttft_p99_s=0.1, cost_per_hour_usd=cost, output_tokens_per_s_per_gpu=1.0)
        rows.append(row)
    table = pd.DataFrame(rows)
    pick = pick_cheapest(table, 20.0, slo_from_flags(["ttft_p99=0.5"]))
    assert pick.row["point"] == 2 and pick.qualifying == (1, 2)
    assert pick_cheapest(table, 20.0, slo_from_flags(["ttft_p99=0.05"])).row is None


def test_pareto_front_keeps_points_not_dominated_in_throughput_and_latency():
    table = pd.DataFrame({"point": [0, 1, 2, 3], "status": ["ok"] * 4, "x": [1.0, 2.0, 3.0, 2.5],
                          "y": [0.1, 0.2, 0.5, 0.6]})
    assert pareto_front(table, "x", "y") == [0, 1, 2]


def test_cheapest_command_reads_a_results_folder(write_study, tmp_path, cli):
    study = tiny_study(axes={"replicas": [2, 1]}, set={"workload.arrival.rate": 2.0})
    run_sweep(write_study(study), tmp_path / "out", workers=1, report=False)
    result = cli("cheapest", tmp_path / "out", "--rate", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["cheapest"]["replicas"] == 1 and data["slo"] == {"ttft_p99": 2.0, "tpot_p99": 0.1}
    assert (tmp_path / "out" / "cheapest-pareto.png").is_file()
    text = cli("cheapest", tmp_path / "out", "--rate", "3")
    assert text.exit_code == 0 and "none of the points qualifies" in text.output
    missing = cli("cheapest", tmp_path, "--rate", "2")
    assert missing.exit_code == 2 and "not a sweep results folder" in missing.output
