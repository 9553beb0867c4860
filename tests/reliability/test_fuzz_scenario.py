"""Fuzzing scenarios: a broken scenario file, through the loader and through ``llmsim run``, gives a valid
scenario (and a run) or one clean InputError naming the file; never a traceback."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import llmsim
from llmsim.errors import InputError
from llmsim.scenario import apply_override, load_scenario

from .conftest import FULL_SCENARIO, SCENARIOS, assert_clean_failure, dump, invoke, write_scenario_dir
from .mutations import BAD_VALUES, SYNTAX_GARBAGE, clean, mutated_bytes, mutated_mapping

FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@contextlib.contextmanager
def _folder():
    """A fresh folder holding the sample trace, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="llmsim-fuzz-") as tmp:
        yield write_scenario_dir(Path(tmp))


def _load_written(data, folder: Path, text: bytes | None = None):
    path = folder / "scenario.yaml"
    path.write_bytes(text if text is not None else dump(data).encode())
    return clean(load_scenario, path, names="scenario.yaml")


mutated_scenarios = st.sampled_from(sorted(SCENARIOS)).flatmap(lambda k: mutated_mapping(SCENARIOS[k]))

#: For runs: the bad values and syntax minus those that reach the workload generator's known bugs (huge
#: integers, a vanishing gamma cv; see test_reported_bugs.py), which would fail these tests for a listed reason.
RUN_VALUES = [v for v in BAD_VALUES if not (isinstance(v, int) and abs(v) > 2**62)
              and not (isinstance(v, float) and 0 < abs(v) < 1e-200)]
RUN_GARBAGE = [g for g in SYNTAX_GARBAGE if not g.isdigit()]
mutated_runnable = st.sampled_from(sorted(SCENARIOS)).flatmap(lambda k: mutated_mapping(SCENARIOS[k], RUN_VALUES))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_starting_points_are_valid_and_run(name):
    """Every mutation starts from a scenario that loads and runs (else the fuzzing would prove little)."""
    with _folder() as folder:
        path = folder / "scenario.yaml"
        path.write_text(dump(SCENARIOS[name]))
        assert llmsim.run(load_scenario(path)).summary["requests"]["finished"] == 20


@FAST
@given(mutated_scenarios)
# Regressions, one per bug fixed in the loaders:
@example({**FULL_SCENARIO, "slo": {"ttft_s": 10**30, "percentile": 99}})         # np.isfinite(big int): TypeError
@example({**FULL_SCENARIO, "slo": {"percentile": 10**30}})                         # same, for slo.percentile
@example({**FULL_SCENARIO, "name": [1]})                                         # name not text: TypeError later
@example({**FULL_SCENARIO, "name": "../../escape"})                              # wrote outside runs/
@example({**FULL_SCENARIO, "replicas": 10**30})                                  # accepted; the run never ends
@example({**FULL_SCENARIO, "model_overrides": 0})                                # silently ignored
@example({**FULL_SCENARIO, "model_overrides": {"num_heads": "x"}})              # '>' str vs int: TypeError
@example({**FULL_SCENARIO, "model_overrides": {"num_layers": 10**400}})         # float overflow in memory plan
@example({**FULL_SCENARIO, "model_overrides": {"name": ["x"]}})                 # model name not text
@example({**FULL_SCENARIO, "model_overrides": {"gated_mlp": "no"}})             # truthy string taken as True
@example({**FULL_SCENARIO, "engine": {"profile": None}})                          # reported as 'None'
@example({**FULL_SCENARIO, "model": "llama-3-70b"})                              # no KV room: named no file
def test_mutated_scenario_loads_or_raises_input_error(data):
    with _folder() as folder:
        _load_written(data, folder)


@FAST
@given(st.sampled_from(sorted(SCENARIOS)).flatmap(lambda k: mutated_bytes(dump(SCENARIOS[k]))))
@example(b"name: x\nworkload: {arrival: 2024-13-45}\n")      # datetime ValueError escaped the YAML reader
@example(b"model: !!float abc\n")                          # ValueError from a tagged scalar
@example(b"model: !!timestamp x\n")                        # AttributeError from PyYAML's timestamp constructor
@example(b"model: " + b"[" * 3000)                          # RecursionError in the YAML composer
@example(b"model: " + b"9" * 5000 + b"\nhardware: h100-sxm")  # Path.exists(): OSError, file name too long
@example(b"name: " + b"9" * 5000 + b"\n")                    # a 5000-digit int: ValueError from int()
@example(b"\xff\xfe")                                       # not UTF-8
@example(b"")                                               # empty file
def test_broken_scenario_text_loads_or_raises_input_error(text):
    with _folder() as folder:
        _load_written(None, folder, text)


def test_directory_instead_of_scenario_file(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    exc = clean(load_scenario, tmp_path / "dir.yaml")
    assert isinstance(exc, InputError)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_runnable)
def test_mutated_scenario_through_the_cli_is_one_line_and_exit_2(data):
    """``llmsim run FILE --quiet --out DIR``: exit 0, or exit 2 with one line on stderr."""
    from typer.testing import CliRunner
    with _folder() as folder:
        path = folder / "scenario.yaml"
        path.write_text(dump(data))
        result = invoke(CliRunner(), "run", path, "--quiet", "--out", folder / "out")
        if result.exit_code != 0:
            line = assert_clean_failure(result)
            assert "scenario.yaml" in line, line
        else:
            assert (folder / "out" / "summary.json").is_file()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(SCENARIOS)).flatmap(lambda k: mutated_bytes(dump(SCENARIOS[k]), RUN_GARBAGE)))
def test_broken_scenario_text_through_the_cli(text):
    from typer.testing import CliRunner
    with _folder() as folder:
        path = folder / "scenario.yaml"
        path.write_bytes(text)
        result = invoke(CliRunner(), "run", path, "--quiet", "--out", folder / "out")
        if result.exit_code != 0:
            assert_clean_failure(result)


# -- --set overrides -------------------------------------------------------------------------------------
override_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, v: f"{k}={v}",
              st.sampled_from(["scheduler.policy", "scheduler.max_num_seqs", "workload.arrival.rate", "model",
                               "parallelism.tp", "slo.percentile", "name", "model.x", "workload", ".", "a..b",
                               "disaggregated.decode.instances", "engine.calibration", "replicas"]),
              st.one_of(st.text(max_size=20), st.sampled_from(["0", "-1", "nan", ".inf", "[1", "{a: 1}", "null",
                                                                "1e999", "x\ny", "!!float x", "2024-13-45"]))))


@FAST
@given(st.lists(override_text, min_size=1, max_size=3))
@example(["name=x\nfoo: bar"])          # a second YAML line was silently dropped
@example(["scheduler.policy"])           # no '='
def test_overrides_apply_or_raise_input_error(items):
    clean(load_scenario, FULL_SCENARIO, items)


@FAST
@given(override_text)
def test_apply_override_alone_never_raises_anything_else(item):
    data = {"scheduler": {"policy": "continuous"}, "model": "llama-3-8b"}
    clean(apply_override, data, item)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(override_text, min_size=1, max_size=2))
@example(["name=[\x0c"])           # a form feed in the --set text: the message held a raw line break
@example(["name=[\u2028"])          # so did a Unicode line separator
def test_set_flags_through_the_cli(items):
    from typer.testing import CliRunner
    with _folder() as folder:
        args = [a for item in items for a in ("--set", item)]
        result = invoke(CliRunner(), "run", "quickstart", "--quiet", "--out", folder / "out",
                        "--set", "workload.num_requests=10", *args)
        if result.exit_code != 0:
            assert_clean_failure(result)
