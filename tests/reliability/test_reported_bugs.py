"""Bad inputs that used to escape as tracebacks or wrong messages, in modules outside the loaders (each
docstring says what the fix was); kept as regression tests."""

from __future__ import annotations

import pytest

from llmsim.scenario import load_scenario
from llmsim.sweep.study import study_from_mapping

from .conftest import FULL_SCENARIO, REPLAY_SCENARIO, assert_clean_failure, dump, invoke, write_scenario_dir
from .mutations import clean



@pytest.mark.parametrize("section", [{"target": {"rate": 10**400}}, {"slo": {"ttft_p99": 10**400}}])
def test_study_limit_too_large_for_a_float(section):
    """OverflowError from ``math.isfinite(10**400)``. Fix: in llmsim/sweep/study.py ``_target_rate`` and
    llmsim/sweep/slo.py ``slo_target``, test the range with comparisons, which work for any int:
    ``... or not 0 < rate <= sys.float_info.max`` (and ``not 0 < limit <= sys.float_info.max``)."""
    clean(study_from_mapping, {"base": "quickstart", **section}, source="study.yaml", base_dir=None)


def _run(runner, tmp_path, data, *args):
    folder = write_scenario_dir(tmp_path)
    (folder / "s.yaml").write_text(dump(data))
    return invoke(runner, "run", folder / "s.yaml", "--quiet", "--out", folder / "out", *args)


def _workload(**changes):
    return {**FULL_SCENARIO, "workload": {**FULL_SCENARIO["workload"], **changes}}


@pytest.mark.parametrize("data", [
    _workload(clip_output=10**30),                                                      # OverflowError
    _workload(prompt_tokens={"dist": "fixed", "value": 10**30}),                        # OverflowError
    _workload(prompt_tokens={"dist": "uniform", "min": 1, "max": 10**30}),              # ValueError
    _workload(arrival={"process": "gamma", "rate": 5.0, "cv": 1e-300}),                 # ZeroDivisionError
    _workload(arrival={"process": "gamma", "rate": 5.0, "cv": 1e300}),                  # OverflowError
], ids=["clip_output", "fixed_value", "uniform_max", "gamma_cv_tiny", "gamma_cv_huge"])
def test_workload_numbers_beyond_int64_or_float_range(runner, tmp_path, data):
    """Accepted by ``WorkloadSpec.from_dict``, then a traceback from ``generate()``. Fix: give
    ``llmsim/workload/_keys.number`` a ``maximum=`` bound and pass ``maximum=MAX_SAMPLED_TOKENS`` for every token
    count (``value``, ``min``, ``max`` of the length distributions; ``clip_prompt``, ``clip_output`` in
    ``loader.check_options``), and bound ``cv`` for gamma arrivals to, e.g., ``1e-3 <= cv <= 1e3``
    (``shape = 1 / cv**2`` must stay a positive finite float)."""
    result = _run(runner, tmp_path, data)
    assert result.exit_code == 0 or assert_clean_failure(result)


def test_trace_limit_beyond_a_c_long_blames_the_key_not_the_csv(runner, tmp_path):
    """Today: ``chat_300.csv: cannot parse as CSV: Python int too large to convert to C long`` (pandas
    ``nrows``). Fix: in ``llmsim/workload/loader.check_options`` bound ``limit`` by ``MAX_REQUESTS``."""
    data = {**REPLAY_SCENARIO, "workload": {**REPLAY_SCENARIO["workload"], "limit": 10**30}}
    line = assert_clean_failure(_run(runner, tmp_path, data))
    assert "workload.limit" in line


@pytest.mark.parametrize("flag, value", [("--block-size", "0"), ("--block-size", "-4"),
                                         ("--max-batched-tokens", "0"), ("--max-batched-tokens", "-100000")])
def test_memory_command_sizes_must_be_positive(runner, flag, value):
    """``--block-size 0``: ZeroDivisionError in plan_memory; negative sizes print a nonsense plan. Fix: in
    llmsim/cli.py ``memory``, before ``plan_memory``: ``for flag, v in (("--block-size", block_size),
    ("--max-batched-tokens", max_batched_tokens)): if v < 1: raise InputError("expected an integer >= 1",
    source=flag, value=v)`` (or make ``plan_memory`` check both, as it checks the utilization)."""
    result = invoke(runner, "memory", "--model", "llama-3-8b", "--hardware", "h100-sxm", flag, value)
    assert flag in assert_clean_failure(result)


def test_out_of_range_workload_numbers_are_caught_when_loading():
    """These used to load and then fail later with a traceback; now the loader names the key."""
    with pytest.raises(Exception) as err:
        load_scenario(_workload(clip_output=10**30))
    assert type(err.value).__name__ == "InputError" and "workload.clip_output" in str(err.value)


@pytest.mark.parametrize("workload", [
    {"trace": "9" * 5000},
    {**FULL_SCENARIO["workload"], "prompt_tokens": {"dist": "file", "path": "9" * 5000}},
], ids=["trace", "lengths_path"])
def test_file_name_too_long_for_the_os(workload):
    """OSError (ENAMETOOLONG) from ``Path.is_file()`` in ``llmsim/workload/_keys.file_path``. Fix: use
    ``llmsim.specs._yaml.is_file(path)`` there (False for names the OS cannot look up), as the spec loaders do."""
    clean(load_scenario, {**FULL_SCENARIO, "workload": workload})
