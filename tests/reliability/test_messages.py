"""The messages themselves: each names the file, the key path, the bad value and what is expected, on one
line with exit code 2 (a traceback only with ``--debug``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llmsim.costmodel.efficiency import load_calibration
from llmsim.costmodel.engine import load_engine
from llmsim.errors import InputError
from llmsim.scenario import load_scenario
from llmsim.specs import load_hardware, load_model

from .conftest import FULL_SCENARIO, REPO, assert_clean_failure, dump, invoke
from .test_fuzz_profiles import CALIBRATION, ENGINE
from .test_fuzz_specs import HARDWARE, HF_CONFIG, MODEL_YAML

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"
LINK = HARDWARE["intra_node_link"]


def run_error(runner, tmp_path: Path, *args) -> str:
    """``llmsim run ARGS --quiet --out TMP/out`` must fail cleanly; returns the message (after 'error: ')."""
    result = invoke(runner, "run", *args, "--quiet", "--out", tmp_path / "out")
    line = assert_clean_failure(result)
    assert not (tmp_path / "out").exists(), "the output folder was created before the input was checked"
    return line.removeprefix("llmsim: error: ")


def write(tmp_path: Path, data: dict, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dump(data))
    return path


# -- the cases listed in the issue -----------------------------------------------------------------------
def test_unknown_key_suggests_the_known_one(runner, tmp_path):
    data = {k: v for k, v in FULL_SCENARIO.items() if k != "scheduler"}
    msg = run_error(runner, tmp_path, write(tmp_path, {**data, "shceduler": {"policy": "chunked"}}))
    assert msg.startswith(f"{tmp_path / 'scenario.yaml'}: shceduler: unknown key (did you mean 'scheduler'?)")


def test_unknown_nested_key_suggests_the_known_one(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "scheduler.max_num_seq=8")
    assert "scheduler.max_num_seq: unknown key (did you mean 'max_num_seqs'?)" in msg


def test_tp_that_does_not_divide_the_heads(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "parallelism.tp=3")
    assert msg == (f"{QUICKSTART}: parallelism.tp: got 3; tp=3 does not divide the 32 attention heads of "
                   "llama-3-8b")


def test_model_that_does_not_fit_names_the_file_and_the_numbers(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "model=llama-3-70b")
    assert msg.startswith(f"{QUICKSTART}: parallelism: llama-3-70b does not fit on h100-sxm at tp=1, pp=1: "
                          "weights 131.4 GiB")
    assert "79.6 GiB x utilization 0.9" in msg


def test_model_that_does_not_fit_a_disaggregated_pool(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "model=llama-3-70b", "--set",
                    "scheduler.policy=disaggregated", "--set", "parallelism.tp=2",
                    "--set", "disaggregated.decode.hardware=a100-40g-sxm")
    assert "disaggregated.decode: llama-3-70b does not fit on a100-40g-sxm at tp=2" in msg


@pytest.mark.parametrize("rate", ["0", "-1", ".nan", ".inf", "fast"])
def test_arrival_rate_must_be_positive(runner, tmp_path, rate):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", f"workload.arrival.rate={rate}")
    assert msg.startswith(f"{QUICKSTART}: workload.arrival.rate: got ")
    assert "expected a number" in msg


def test_disaggregated_without_decode_instances(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "scheduler.policy=disaggregated",
                    "--set", "disaggregated.decode.instances=0")
    assert msg == f"{QUICKSTART}: disaggregated.decode.instances: got 0; expected an integer >= 1"


@pytest.mark.parametrize("key", ["max_num_seqs", "max_batched_tokens", "chunk_size", "block_size"])
def test_scheduler_sizes_must_be_positive(runner, tmp_path, key):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", f"scheduler.{key}=0")
    assert msg == f"{QUICKSTART}: scheduler.{key}: got 0; expected an integer >= 1"


def test_percentile_above_100(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "slo.percentile=150")
    assert msg == f"{QUICKSTART}: slo.percentile: got 150.0; expected a percentile in (0, 100]"


def test_set_without_equals(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "scheduler.policy")
    assert msg == "--set: got 'scheduler.policy'; expected key.path=value, e.g. scheduler.max_num_seqs=64"


def test_set_unknown_policy(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "scheduler.policy=chunkd")
    assert "scheduler.policy: got 'chunkd'; unknown policy (did you mean 'chunked'?)" in msg
    assert "bogus" in run_error(runner, tmp_path, QUICKSTART, "--set", "scheduler.policy=bogus")


def test_set_value_on_two_lines(runner, tmp_path):
    msg = run_error(runner, tmp_path, QUICKSTART, "--set", "name=x\nmodel: llama-3-70b")
    assert msg.startswith("--set: name: got ") and "expected a one-line value" in msg


def test_missing_trace_file(runner, tmp_path):
    data = {**FULL_SCENARIO, "workload": {"trace": "nowhere.csv"}}
    msg = run_error(runner, tmp_path, write(tmp_path, data))
    assert msg.startswith(f"{tmp_path / 'scenario.yaml'}: workload.trace: got 'nowhere.csv'; file not found")


def test_trace_under_the_home_of_an_unknown_user(runner, tmp_path):
    data = {**FULL_SCENARIO, "workload": {"trace": "~no-such-user-0/trace.csv"}}
    msg = run_error(runner, tmp_path, write(tmp_path, data))
    assert msg.startswith(f"{tmp_path / 'scenario.yaml'}: workload.trace: got '~no-such-user-0/trace.csv'; file not "
                          "found: no home directory")


def test_trace_that_is_a_folder(runner, tmp_path):
    (tmp_path / "traces.csv").mkdir()
    msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, "workload": {"trace": "traces.csv"}}))
    assert "workload.trace" in msg


def test_debug_flag_shows_the_traceback(tmp_path):
    bad = write(tmp_path, {**FULL_SCENARIO, "replicas": 0})
    plain = subprocess.run([sys.executable, "-m", "llmsim.cli", "run", str(bad), "--out", str(tmp_path / "o")],
                           capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == f"llmsim: error: {bad}: replicas: got 0; expected an integer >= 1"
    debug = subprocess.run([sys.executable, "-m", "llmsim.cli", "--debug", "run", str(bad), "--out",
                            str(tmp_path / "o")], capture_output=True, text=True)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "InputError" in debug.stderr


# -- scenario files that are not scenario files -------------------------------------------------------------
@pytest.mark.parametrize("content, expected", [
    (b"", "model: required key missing"),
    (b"\xff\xfe\x00", "not UTF-8 text (byte 0)"),
    (b"model: [llama", "line 1: malformed YAML: expected ',' or ']'"),
    (b"- a\n- b\n", "expected a mapping of keys to values, got a list"),
    (b"name: x\nworkload: {arrival: 2024-13-45}\n", "malformed YAML: cannot build a value"),
])
def test_scenario_file_that_is_not_a_scenario(runner, tmp_path, content, expected):
    path = tmp_path / "scenario.yaml"
    path.write_bytes(content)
    msg = run_error(runner, tmp_path, path)
    assert msg.startswith(str(path)) and expected in msg, msg


def test_scenario_path_that_is_a_folder(runner, tmp_path):
    msg = run_error(runner, tmp_path, tmp_path)
    assert "scenario file not found" in msg


def test_missing_scenario_suggests_a_builtin(runner, tmp_path):
    assert "(did you mean 'quickstart'?)" in run_error(runner, tmp_path, "quikstart")


# -- files a scenario refers to ----------------------------------------------------------------------------
def test_broken_files_referred_to_by_a_scenario_are_named(runner, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**HF_CONFIG, "num_attention_heads": "32"}))
    msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, "model": "config.json"}))
    assert msg == f"{tmp_path / 'config.json'}: num_attention_heads: got '32'; expected an integer"

    write(tmp_path, {**HARDWARE, "memory_bytes": "lots"}, "gpu.yaml")
    msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, "hardware": "gpu.yaml"}))
    assert msg == f"{tmp_path / 'gpu.yaml'}: memory_bytes: got 'lots'; expected a positive number"

    write(tmp_path, {**CALIBRATION, "launch": 1e-6}, "cal.yaml")
    engine = {**FULL_SCENARIO["engine"], "calibration": "cal.yaml"}
    msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, "engine": engine}))
    assert msg.startswith(f"{tmp_path / 'cal.yaml'}: launch: unknown calibration field (did you mean 'launch_s'?)")

    write(tmp_path, {**ENGINE, "eager": {"fixed_s": -1e-4}}, "engine.yaml")
    engine = {**FULL_SCENARIO["engine"], "profile": "engine.yaml"}
    msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, "engine": engine}))
    assert msg == f"{tmp_path / 'engine.yaml'}: eager.fixed_s: got -0.0001; expected a number of seconds >= 0"


@pytest.mark.parametrize("key, value", [("model", "missing.json"), ("hardware", "missing.yaml"),
                                        ("model", "models/"), ("hardware", "./gpus")])
def test_missing_referred_file_is_reported_at_the_scenario_key(runner, tmp_path, key, value):
    msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, key: value}))
    assert msg.startswith(f"{tmp_path / 'scenario.yaml'}: {key}: got {value!r}; ") and "not found" in msg


def test_missing_engine_profile_and_calibration_are_reported_at_the_scenario_key(runner, tmp_path):
    for key in ("profile", "calibration"):
        engine = {**FULL_SCENARIO["engine"], key: "nowhere.yaml"}
        msg = run_error(runner, tmp_path, write(tmp_path, {**FULL_SCENARIO, "engine": engine}))
        assert msg.startswith(f"{tmp_path / 'scenario.yaml'}: engine.{key}: got 'nowhere.yaml'; "), msg


# -- values that used to be accepted silently (or crash later) ----------------------------------------------
@pytest.mark.parametrize("change, where, expected", [
    ({"name": "../../elsewhere"}, "name", "expected a name without '/'"),
    ({"name": ["x"]}, "name", "expected a name (text)"),
    ({"model": 7}, "model", "expected a built-in model name"),
    ({"replicas": 10**6}, "replicas", "expected an integer from 1 to 10,000"),
    ({"model_overrides": 0}, "model_overrides", "expected a mapping of model fields"),
    ({"model_overrides": {"num_layers": 10**400}}, "model_overrides.num_layers", "up to 1099511627776"),
    ({"model_overrides": {"gated_mlp": "no"}}, "model_overrides.gated_mlp", "expected true or false"),
    ({"slo": {"ttft_s": 10**400}}, "slo.ttft_s", "expected a positive number"),
    ({"scheduler": {**FULL_SCENARIO["scheduler"], "num_kv_blocks": 10**400}}, "scheduler.num_kv_blocks",
     "expected an integer from 1 to"),
    ({"engine": {"profile": None}}, "engine.profile", "expected an engine profile name"),
])
def test_scenario_values_that_are_now_rejected(tmp_path, change, where, expected):
    with pytest.raises(InputError) as info:
        load_scenario(write(tmp_path, {**FULL_SCENARIO, **change}))
    assert f": {where}: " in str(info.value) and expected in str(info.value), str(info.value)


@pytest.mark.parametrize("loader, name, data, where, expected", [
    (load_hardware, "gpu.yaml", {**HARDWARE, "memory_bytes": ".inf"}, "memory_bytes", "expected a positive number"),
    (load_hardware, "gpu.yaml", {**HARDWARE, "price_per_hour_usd": float("nan")}, "price_per_hour_usd",
     "expected a number >= 0"),
    (load_hardware, "gpu.yaml", {**HARDWARE, "sm_count": "many"}, "sm_count", "expected a positive integer"),
    (load_hardware, "gpu.yaml", {**HARDWARE, "intra_node_link": {**LINK, "bandwith_bytes_per_s": 1}},
     "intra_node_link.bandwith_bytes_per_s", "(did you mean 'bandwidth_bytes_per_s'?)"),
    (load_hardware, "gpu.yaml", {**HARDWARE, "memory_byte": 1}, "memory_byte", "(did you mean 'memory_bytes'?)"),
    (load_model, "model.yaml", {**MODEL_YAML, "qkv_bias": "yes"}, "qkv_bias", "expected true or false"),
    (load_model, "model.yaml", {**MODEL_YAML, "num_head": 8}, "num_head", "(did you mean 'num_heads'?)"),
    (load_calibration, "c.yaml", {**CALIBRATION, "mixed_query_tile": 1.5}, "mixed_query_tile", "expected an integer"),
    (load_calibration, "c.yaml", {**CALIBRATION, "curves": {"gemmm": {"knots": [0.0], "eff": [0.5]}}},
     "curves.gemmm", "unknown curve (did you mean 'gemm'?)"),
    (load_calibration, "c.yaml", {**CALIBRATION, "curves": {"gemm": {"knots": [".nan"], "eff": [0.5]}}},
     "curves.gemm.knots", "expected a list of numbers, all finite"),
    (load_calibration, "c.yaml", {**CALIBRATION, "band": {"q05": 0.1, "q95": -0.1}}, "band.q05", "q05 <= q95"),
    (load_calibration, "c.yaml", {**CALIBRATION, "time_scale": {"attn_decode": float("inf")}},
     "time_scale.attn_decode", "expected a positive multiplier"),
    (load_engine, "e.yaml", {**ENGINE, "eager": {"fixed_s": -1.0}}, "eager.fixed_s", "seconds >= 0"),
    (load_engine, "e.yaml", {**ENGINE, "graph_max_seqs": True}, "graph_max_seqs", "expected an integer >= 0"),
    (load_engine, "e.yaml", {**ENGINE, "eagr": {}}, "eagr", "(did you mean 'eager'?)"),
    (load_engine, "e.yaml", {}, None, "empty engine profile"),
])
def test_profile_values_that_are_now_rejected(tmp_path, loader, name, data, where, expected):
    path = write(tmp_path, data, name)
    with pytest.raises(InputError) as info:
        loader(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {where}: " if where else f"{path}: ") and expected in text, text


# -- impossible requests are per-request rejections with a reason, not errors ---------------------------------
@pytest.mark.parametrize("sets, reason", [
    (["workload.prompt_tokens={dist: fixed, value: 9000}"], "exceeds the context window of 8192"),
    (["workload.prompt_tokens={dist: fixed, value: 4000}", "scheduler.num_kv_blocks=100"], "KV"),
])
def test_requests_that_cannot_fit_are_rejected_with_a_reason(runner, tmp_path, sets, reason):
    import pandas as pd
    args = [a for s in sets for a in ("--set", s)]
    result = invoke(runner, "run", "quickstart", "--quiet", "--out", tmp_path / "o", "--set",
                    "workload.num_requests=5", *args)
    assert result.exit_code == 0, result.stderr
    requests = pd.read_csv(tmp_path / "o" / "requests.csv")
    assert (requests["status"] == "rejected").all()
    assert requests["reject_reason"].str.contains(reason).all(), requests["reject_reason"].tolist()


# -- study files through ``llmsim sweep`` (all refused before any point runs) ---------------------------------
@pytest.mark.parametrize("content, expected", [
    (b"", "base: required key missing"),
    (b"\xff", "not UTF-8 text"),
    (b"base: quickstart\naxis: {replicas: [1, 2]}\n", "axis: unknown key (did you mean 'axes'?)"),
    (b"base: quickstart\naxes: {replicas: [1, 0]}\n", "point 1 (replicas=0)"),
    (b"base: quickstart\naxes: {parallelism.tp: [1, 3]}\n", "tp=3 does not divide the 32 attention heads"),
    (b"base: quickstart\nzip: {replicas: [1, 2], scheduler.max_num_seqs: [8]}\n", "zip lists must have equal"),
    (b"base: nowhere.yaml\n", "base: got 'nowhere.yaml'; scenario file not found"),
    (b"base: quickstart\ntarget: {rate: 0}\n", "target.rate: got 0; expected a request rate"),
])
def test_broken_study_through_the_cli(runner, tmp_path, content, expected):
    study = tmp_path / "study.yaml"
    study.write_bytes(content)
    line = assert_clean_failure(invoke(runner, "sweep", study, "--out", tmp_path / "out", "--quiet"))
    assert str(study) in line and expected in line, line
    assert not (tmp_path / "out").exists()


def test_study_path_that_is_a_folder_through_the_cli(runner, tmp_path):
    line = assert_clean_failure(invoke(runner, "sweep", tmp_path, "--out", tmp_path / "out", "--quiet"))
    assert "study file not found" in line
