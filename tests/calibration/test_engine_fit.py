"""``llmsim calibrate engine`` against a synthetic ground truth.

No real serving engine here, so llmsim itself plays one: a scenario simulated with a KNOWN engine profile
(eager iterations 4 ms + 30 us per sequence, CUDA-graph iterations 1 ms) produces the "measured"
requests.csv and iterations.csv. The profile is then fitted from scratch (both modes) and must (a) recover
the parameters and (b) predict a DIFFERENT run of the same engine (another arrival rate, another policy)
within the published target: TTFT and TPOT p50 within 10%, p99 within 20%.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

import llmsim
from llmsim.calibration.engine_fit import (EngineFit, fit_engine_files, latency_percentiles, nelder_mead,
                                           read_engine_iterations, read_requests, relative_errors)
from llmsim.costmodel import EngineProfile, HostTerms, load_engine
from llmsim.errors import InputError
from llmsim.scenario import load_scenario

from .conftest import invoke

TRUTH = EngineProfile("truth", graph=HostTerms(fixed_s=1e-3), eager=HostTerms(fixed_s=4e-3, per_seq_s=30e-6))
BASE = {"name": "engine-fit", "model": "llama-3-8b", "hardware": "h100-sxm",
        "scheduler": {"policy": "chunked", "max_num_seqs": 128, "chunk_size": 512},
        "engine": {"calibration": "default"}}
SYNTHETIC = {"arrival": {"process": "poisson", "rate": 6.0},
             "prompt_tokens": {"dist": "lognormal", "median": 600, "sigma": 0.8, "min": 16, "max": 2048},
             "output_tokens": {"dist": "lognormal", "median": 100, "sigma": 0.8, "min": 4, "max": 400},
             "num_requests": 150, "seed": 1}
#: The other run the fitted profile must predict: continuous batching at 9 requests/s, other arrivals.
OTHER = {**BASE, "scheduler": {"policy": "continuous", "max_num_seqs": 128, "max_batched_tokens": 4096},
         "workload": {**SYNTHETIC, "arrival": {"process": "poisson", "rate": 9.0}, "seed": 7}}
SIMULATIONS = 20


def simulate(mapping: dict, engine: EngineProfile) -> dict[str, float]:
    """TTFT/TPOT statistics of one run of ``mapping`` under ``engine``."""
    sc = dataclasses.replace(load_scenario(mapping), engine=engine)
    return latency_percentiles(llmsim.run(sc).requests)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A folder with the ground truth's requests.csv and iterations.csv and fit.yaml, a scenario replaying them."""
    folder = tmp_path_factory.mktemp("engine-fit")
    sc = dataclasses.replace(load_scenario({**BASE, "workload": SYNTHETIC}), engine=TRUTH)
    llmsim.run(sc).save(folder / "run")
    scenario = {**BASE, "workload": {"trace": "run/requests.csv"}}
    (folder / "fit.yaml").write_text(yaml.safe_dump(scenario))
    return folder


@pytest.fixture(scope="module")
def iteration_fit(measured: Path) -> EngineFit:
    run = measured / "run"
    return fit_engine_files(measured / "fit.yaml", run / "requests.csv", run / "iterations.csv")


@pytest.fixture(scope="module")
def request_fit(measured: Path) -> EngineFit:
    return fit_engine_files(measured / "fit.yaml", measured / "run" / "requests.csv", max_simulations=SIMULATIONS)


@pytest.fixture(scope="module")
def other_truth() -> dict[str, float]:
    return simulate(OTHER, TRUTH)


def test_iteration_log_fit_recovers_the_profile_exactly(iteration_fit: EngineFit):
    p = iteration_fit.profile
    assert p.graph.fixed_s == pytest.approx(1e-3, rel=1e-3)
    assert p.eager.fixed_s == pytest.approx(4e-3, rel=1e-3)
    assert p.eager.per_seq_s == pytest.approx(30e-6, rel=1e-3)
    assert (p.graph.per_seq_s, p.graph.per_token_s, p.eager.per_token_s) == (0.0, 0.0, 0.0)
    assert iteration_fit.simulations == 1
    assert max(abs(e) for e in iteration_fit.errors.values()) < 1e-6


def test_request_times_fit_recovers_the_fixed_terms(request_fit: EngineFit):
    """Percentiles of 150 requests pin the fixed terms down to about 20%; per_seq_s is barely identified
    (at this load it moves TTFT/TPOT less than the scheduling noise), so only its range is checked."""
    p = request_fit.profile
    assert p.graph.fixed_s == pytest.approx(1e-3, rel=0.25)
    assert p.eager.fixed_s == pytest.approx(4e-3, rel=0.2)
    assert 0.0 <= p.eager.per_seq_s <= 1.2e-4
    assert request_fit.simulations <= SIMULATIONS
    for metric, err in request_fit.errors.items():
        assert abs(err) < 0.03, (metric, err)


@pytest.mark.parametrize("mode", ["iteration_fit", "request_fit"])
def test_fitted_profile_predicts_another_load_and_policy(mode: str, request, other_truth: dict):
    fit = request.getfixturevalue(mode)
    errors = relative_errors(simulate(OTHER, fit.profile), other_truth)
    for metric in ("ttft", "tpot"):
        assert abs(errors[f"{metric}_p50"]) <= 0.10, (metric, errors)
        assert abs(errors[f"{metric}_p99"]) <= 0.20, (metric, errors)


def test_engine_command_writes_the_profile_once(cli_app, measured: Path, tmp_path: Path):
    out = tmp_path / "vllm.yaml"
    args = ["calibrate", "engine", "--scenario", measured / "fit.yaml", "--measured",
            measured / "run" / "requests.csv", "--iterations", measured / "run" / "iterations.csv", "--out", out]
    result = invoke(cli_app, *args)
    assert result.exit_code == 0, result.output
    assert "ttft_p99" in result.output and f"wrote {out}" in result.output
    profile = load_engine(out)
    assert profile.eager.fixed_s == pytest.approx(4e-3, rel=1e-3)
    again = invoke(cli_app, *args)
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_tpot_is_derived_from_e2e_and_unfinished_requests_are_left_out(tmp_path: Path):
    path = tmp_path / "r.csv"
    path.write_text("request_id,arrival_s,prompt_tokens,output_tokens,ttft_s,e2e_s,status\n"
                    "0,0.0,10,11,0.1,1.1,finished\n1,0.5,10,1,0.2,0.2,finished\n2,0.7,10,5,,,rejected\n")
    frame = read_requests(path)
    assert frame["tpot_s"].iloc[0] == pytest.approx(0.1)
    assert np.isnan(frame["tpot_s"].iloc[1]) and np.isnan(frame["ttft_s"].iloc[2])


HEADER = "request_id,arrival_s,prompt_tokens,output_tokens,ttft_s,tpot_s\n"


@pytest.mark.parametrize("text, where, message", [
    ("request_id,arrival_s,prompt_tokens,output_tokens,tpot_s\n0,0,10,10,0.01\n", "column ttft_s", "ttft_s"),
    ("request_id,arrival_s,prompt_tokens,output_tokens,ttft_s\n0,0,10,10,0.1\n", "column tpot_s", "e2e_s"),
    (HEADER + "0,0,10,10,0.1,0.01\n1,0.1,10,10,fast,0.01\n", "line 3, column ttft_s", "ttft_s"),
    (HEADER + "0,0,10,-3,0.1,0.01\n", "line 2, column output_tokens", "output_tokens"),
])
def test_bad_request_columns_name_the_file_and_column(tmp_path: Path, text: str, where: str, message: str):
    path = tmp_path / "requests.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        read_requests(path)
    assert err.value.source == str(path) and err.value.where == where


@pytest.mark.parametrize("text, where", [
    ("start_s,prefill_tokens,decode_seqs,decode_ctx_sum\n0,10,0,0\n", "column end_s"),
    ("start_s,end_s,prefill_tokens,decode_seqs,decode_ctx_sum\n0,0.01,10,0,0\n0.01,x,0,1,5\n",
     "line 3, column end_s"),
    ("start_s,end_s,prefill_tokens,decode_seqs,decode_ctx_sum\n0,0.01,10,0,0\n0.02,0.02,0,1,5\n", "line 3"),
])
def test_bad_iteration_logs_name_the_file_and_place(tmp_path: Path, text: str, where: str):
    path = tmp_path / "iterations.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_engine_iterations(path)
    assert err.value.source == str(path) and err.value.where == where


def test_iteration_log_without_optional_columns_assumes_whole_prompts(tmp_path: Path):
    path = tmp_path / "iterations.csv"
    path.write_text("start_s,end_s,prefill_tokens,decode_seqs,decode_ctx_sum\n0,0.01,100,0,0\n0.01,0.02,0,4,40\n")
    it = read_engine_iterations(path)
    assert it["prefill_chunks"].tolist() == [1, 0] and it["sampled"].tolist() == [1, 4]
    assert it["prefill_attn_pairs"].tolist() == [100 * 101 / 2, 0] and it["prefill_kv_tokens"].tolist() == [100, 0]


def test_a_scenario_that_does_not_replay_the_measured_requests_is_refused(measured: Path, tmp_path: Path):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**BASE, "workload": {**SYNTHETIC, "seed": 2}}))  # other arrivals
    with pytest.raises(InputError, match="workload.trace") as err:
        fit_engine_files(other, measured / "run" / "requests.csv", measured / "run" / "iterations.csv")
    assert err.value.where == "workload"


def test_nelder_mead_minimises_a_bowl_within_its_budget():
    calls = []

    def bowl(x):
        calls.append(1)
        return float(np.sum((x - np.array([1.0, -2.0, 0.5])) ** 2))
    best, value, evals = nelder_mead(bowl, np.zeros(3), 0.5, max_evals=300, target=1e-10, xtol=1e-9)
    assert value <= 1e-10 and best == pytest.approx([1.0, -2.0, 0.5], abs=1e-4)
    assert evals == len(calls) <= 300
    _, _, few = nelder_mead(bowl, np.zeros(3), 0.5, max_evals=7)
    assert few == 7


def test_engine_command_fits_from_request_times_and_reports_bad_files_in_one_line(cli_app, measured: Path,
                                                                                  tmp_path: Path):
    out = tmp_path / "engine.yaml"
    args = ["calibrate", "engine", "--scenario", measured / "fit.yaml", "--out", out]
    result = invoke(cli_app, *args, "--measured", measured / "run" / "requests.csv", "--max-simulations", 5)
    assert result.exit_code == 0, result.output
    assert "after 5 simulations" in result.output and load_engine(out).eager.fixed_s > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,arrival_s,prompt_tokens,output_tokens,tpot_s\n0,0,10,10,0.01\n")
    result = invoke(cli_app, *args, "--measured", bad, "--overwrite")
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and str(bad) in result.output and "ttft_s" in result.output
