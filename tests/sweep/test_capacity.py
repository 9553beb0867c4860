"""find_capacity against a case whose answer the cost model gives in closed form, and its knobs and errors.

One request at a time (max_num_seqs = 1), fixed lengths and constant arrivals: each request takes
S = prefill(P) + sum over the n - 1 decode steps, every request finds the replica idle while the rate is
below 1 / S, and the queue grows without bound above it. So the capacity is 1 / S.
"""

from __future__ import annotations

import json

import pytest

from llmsim.api import cost_model
from llmsim.costmodel.batch import IterationShape, PromptChunk
from llmsim.errors import InputError
from llmsim.scenario import load_scenario
from llmsim.sweep import find_capacity, slo_from_flags

PROMPT, OUTPUT = 512, 64
ONE_AT_A_TIME = {
    "name": "one-at-a-time", "model": "llama-3-8b", "hardware": "h100-sxm",
    "scheduler": {"policy": "continuous", "max_num_seqs": 1},
    "workload": {"arrival": {"process": "constant", "rate": 1.0},
                 "prompt_tokens": {"dist": "fixed", "value": PROMPT},
                 "output_tokens": {"dist": "fixed", "value": OUTPUT}, "num_requests": 40},
}


def service_time_s() -> tuple[float, float]:
    """(prefill time, whole service time S) of one request alone on the replica, from the cost model."""
    cm = cost_model(load_scenario(ONE_AT_A_TIME))
    prefill = cm.iteration_time_s(IterationShape((PromptChunk(PROMPT),)))
    decodes = sum(cm.iteration_time_s(IterationShape((), (PROMPT + k,))) for k in range(OUTPUT - 1))
    return prefill, prefill + decodes


def test_capacity_of_one_request_at_a_time_is_one_over_the_service_time():
    prefill, service = service_time_s()
    slo = slo_from_flags([f"ttft_p99={1.5 * prefill}"])  # only an idle replica meets it
    result = find_capacity(ONE_AT_A_TIME, slo, tolerance=0.05, max_runs=12)
    assert result.converged and result.tolerance <= 0.05 and result.runs <= 12
    assert result.rate_per_s == pytest.approx(1 / service, rel=0.05)
    assert result.rate_per_s <= 1 / service * 1.001 < result.upper_rate_per_s


def test_growing_queue_fails_a_rate_even_without_slo_targets():
    _, service = service_time_s()
    result = find_capacity(ONE_AT_A_TIME, (), tolerance=0.05)
    assert result.rate_per_s == pytest.approx(1 / service, rel=0.06)
    failing = [t for t in result.trials if not t.passed]
    assert failing and all("queue grows" in t.reason for t in failing)


def test_search_is_deterministic_and_reports_the_curve_sorted():
    slo = slo_from_flags(["ttft_p99=0.05"])
    a = find_capacity(ONE_AT_A_TIME, slo, max_runs=6)
    b = find_capacity(ONE_AT_A_TIME, slo, max_runs=6)
    assert a.to_dict() == b.to_dict() and a.runs == 6
    rates = [t.rate_per_s for t in a.curve()]
    assert rates == sorted(rates) and len(rates) == 6
    assert all("ttft_p99" in t.percentiles_s and "tpot_p99" in t.percentiles_s for t in a.trials)


def test_trace_capacity_varies_rate_scale_and_reports_the_rate(tmp_path):
    _, service = service_time_s()
    trace = tmp_path / "steady.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n" +
                     "".join(f"{i * 1.0:.1f},{PROMPT},{OUTPUT}\n" for i in range(40)))
    scenario = {**ONE_AT_A_TIME, "workload": {"trace": str(trace)}}
    result = find_capacity(scenario, (), tolerance=0.05)
    assert result.knob == "workload.rate_scale"
    assert result.trials[0].rate_per_s == pytest.approx(1.0)
    assert result.rate_per_s == pytest.approx(1 / service, rel=0.06)


def test_burst_workload_has_no_rate_to_search():
    burst = {**ONE_AT_A_TIME, "workload": {**ONE_AT_A_TIME["workload"], "arrival": {"process": "burst"}}}
    with pytest.raises(InputError, match="burst"):
        find_capacity(burst, ())


def test_capacity_command_prints_json_and_rejects_unknown_slo_names(cli, tmp_path):
    import yaml
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(ONE_AT_A_TIME))
    result = cli("capacity", path, "--slo", "ttft_p99=0.05", "--max-runs", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["runs"] == 4 and data["knob"] == "workload.arrival.rate" and data["slo"] == {"ttft_p99": 0.05}
    assert [r["rate_per_s"] for r in data["curve"]] == sorted(r["rate_per_s"] for r in data["curve"])
    bad = cli("capacity", path, "--slo", "ttft_p98=0.05")
    assert bad.exit_code == 2 and "did you mean 'ttft_p99'" in bad.output


def test_capacity_command_prints_the_curve_and_the_answer(cli, tmp_path):
    import yaml
    path = tmp_path / "one.yaml"
    path.write_text(yaml.safe_dump(ONE_AT_A_TIME))
    result = cli("capacity", path, "--slo", "ttft_p99=0.05", "--set", "workload.num_requests=20", "--quiet")
    assert result.exit_code == 0, result.output
    assert "latency curve" in result.output and "<- capacity" in result.output
    assert "capacity: " in result.output and "tolerance" in result.output and "runs)" in result.output
