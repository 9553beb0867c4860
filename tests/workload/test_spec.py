"""WorkloadSpec.from_dict: every problem is an InputError naming its key path."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.errors import InputError
from llmsim.workload import WorkloadSpec
from llmsim.workload.arrivals import ArrivalSpec
from llmsim.workload.lengths import FileLength, LognormalLength

SYNTHETIC = {"arrival": {"process": "poisson", "rate": 2.0},
             "prompt_tokens": {"dist": "fixed", "value": 100},
             "output_tokens": {"dist": "fixed", "value": 10},
             "num_requests": 10}
TRACE_CSV = "arrival_s,prompt_tokens,output_tokens\n0,10,1\n1,20,2\n3,30,3\n"


def error_for(d: dict, **kwargs) -> InputError:
    """The InputError from_dict raises for ``d``."""
    with pytest.raises(InputError) as info:
        WorkloadSpec.from_dict(d, source="scenario.yaml", **kwargs)
    assert info.value.source == "scenario.yaml"
    return info.value


def with_(changes: dict, drop: tuple[str, ...] = ()) -> dict:
    """SYNTHETIC with top-level keys changed and some dropped."""
    return {k: v for k, v in {**SYNTHETIC, **changes}.items() if k not in drop}


def test_valid_synthetic_spec_parses_into_typed_fields():
    spec = WorkloadSpec.from_dict(with_({"seed": 3, "prompt_tokens": {
        "dist": "lognormal", "median": 700, "sigma": 0.8, "max": 1536}}))
    assert spec.arrival == ArrivalSpec("poisson", 2.0)
    assert spec.prompt_tokens == LognormalLength(700, 0.8, 1, 1536)
    assert spec.seed == 3 and spec.num_requests == 10 and spec.trace is None


@pytest.mark.parametrize("d, where, text", [
    (with_({"arival": {}}), "workload.arival", "did you mean 'arrival'"),
    (with_({"arrival": {"process": "poisson", "rat": 2}}), "workload.arrival.rat",
     "did you mean 'rate'"),
    (with_({"arrival": {"process": "poison", "rate": 2}}), "workload.arrival.process",
     "did you mean 'poisson'"),
    (with_({"prompt_tokens": {"dist": "lognorm", "median": 5}}), "workload.prompt_tokens.dist",
     "did you mean 'lognormal'"),
    (with_({"prompt_tokens": {"dist": "fixed", "valu": 5}}), "workload.prompt_tokens.valu",
     "did you mean 'value'"),
    (with_({"shared_prefix": {"tokens": 5, "num_prefix": 2}}), "workload.shared_prefix.num_prefix",
     "did you mean 'num_prefixes'"),
])
def test_unknown_keys_and_names_suggest_the_closest(d, where, text):
    error = error_for(d)
    assert error.where == where and text in str(error)


@pytest.mark.parametrize("d, where, text", [
    (with_({"arrival": {"process": "poisson", "rate": -1}}), "workload.arrival.rate", "> 0"),
    (with_({"arrival": {"process": "gamma", "rate": 1, "cv": 0}}), "workload.arrival.cv", ">= 0.001"),
    (with_({"arrival": {"rate": "fast"}}), "workload.arrival.rate", "expected a number"),
    (with_({"arrival": {"rate": True}}), "workload.arrival.rate", "expected a number"),
    (with_({"num_requests": 2.5}), "workload.num_requests", "whole number"),
    (with_({"num_requests": 0}), "workload.num_requests", ">= 1"),
    (with_({"num_requests": 10 ** 12}), "workload.num_requests", "at most"),
    (with_({"prompt_tokens": {"dist": "uniform", "min": 9, "max": 3}}), "workload.prompt_tokens.max",
     "max >= min"),
    (with_({"prompt_tokens": {"dist": "lognormal", "median": 0, "sigma": 1}}),
     "workload.prompt_tokens.median", "> 0"),
    (with_({"output_tokens": {"dist": "fixed", "value": 0}}), "workload.output_tokens.value", ">= 1"),
    (with_({"multi_turn": {"turns": 2, "think_time_s": -1}}), "workload.multi_turn.think_time_s",
     ">= 0"),
    (with_({"clip_prompt": -5}), "workload.clip_prompt", ">= 1"),
    (with_({"seed": -1}), "workload.seed", ">= 0"),
    (with_({"arrival": "poisson"}), "workload.arrival", "mapping"),
])
def test_bad_values_name_their_key_path(d, where, text):
    error = error_for(d)
    assert error.where == where and text in str(error)


@pytest.mark.parametrize("d, where", [
    (with_({"arrival": {"process": "gamma", "rate": 1}}), "workload.arrival.cv"),
    (with_({"arrival": {"process": "poisson"}}), "workload.arrival.rate"),
    (with_({"prompt_tokens": {"dist": "lognormal", "median": 5}}), "workload.prompt_tokens.sigma"),
    (with_({"prompt_tokens": {"median": 5}}), "workload.prompt_tokens.dist"),
    (with_({}, drop=("output_tokens",)), "workload.output_tokens"),
    (with_({}, drop=("arrival",)), "workload.arrival"),
    (with_({}, drop=("num_requests",)), "workload.num_requests"),
    (with_({"shared_prefix": {}}), "workload.shared_prefix.tokens"),
    (with_({"multi_turn": {"think_time_s": 1}}), "workload.multi_turn.turns"),
    ({}, "workload.arrival"),
])
def test_missing_required_keys_name_their_path(d, where):
    error = error_for(d)
    assert error.where == where and "missing required key" in str(error)


@pytest.mark.parametrize("d, where, text", [
    (with_({"duration_s": 5}), "workload.num_requests", "exactly one"),
    (with_({"lengths_file": "x.csv"}), "workload.prompt_tokens", "cannot be combined"),
    (with_({"limit": 5}), "workload.limit", "only to a trace"),
    (with_({"format": "azure"}), "workload.format", "only to trace or lengths_file"),
    (with_({"arrival": {"process": "burst"}, "duration_s": 5}, drop=("num_requests",)),
     "workload.duration_s", "burst"),
    ({"trace": "t.csv", "num_requests": 5}, "workload.num_requests", "cannot be combined with trace"),
    ({"trace": "t.csv", "arrival": {"process": "poisson", "rate": 1}}, "workload.arrival.process",
     "unknown key"),
    ({"trace": "t.csv", "arrival": {"rate": 1}, "rate_scale": 2}, "workload.rate_scale",
     "cannot be combined"),
    ({"trace": "t.csv", "window_s": [5, 1]}, "workload.window_s", "end_s > start_s"),
    ({"trace": "missing.csv"}, "workload.trace", "file not found"),
    ({"trace": "t.csv", "format": "lengths"}, "workload.format", "no arrival times"),
    ({"trace": "t.csv", "format": "azur"}, "workload.format", "did you mean 'azure'"),
])
def test_conflicting_keys_are_rejected(tmp_path, d, where, text):
    (tmp_path / "t.csv").write_text(TRACE_CSV)
    error = error_for(d, base_dir=tmp_path)
    assert error.where == where and text in str(error)


def test_trace_paths_resolve_against_base_dir_and_replay_ignores_rng(tmp_path):
    (tmp_path / "t.csv").write_text(TRACE_CSV)
    spec = WorkloadSpec.from_dict({"trace": "t.csv", "limit": 2, "clip_prompt": 15},
                                  base_dir=tmp_path)
    assert spec.trace == tmp_path / "t.csv"
    trace = spec.generate(np.random.default_rng(0))
    assert trace.prompt_tokens.tolist() == [10, 15] and trace.source == str(tmp_path / "t.csv")


def test_arrival_rate_with_a_trace_rescales_it_to_that_mean_rate(tmp_path):
    (tmp_path / "t.csv").write_text(TRACE_CSV)
    spec = WorkloadSpec.from_dict({"trace": "t.csv", "arrival": {"rate": 4.0}}, base_dir=tmp_path)
    trace = spec.generate(np.random.default_rng(0))
    np.testing.assert_allclose(trace.arrival_s, [0, 0.1666666667, 0.5])  # (3 - 1) / 0.5 s = 4/s
    assert "rescaled" in trace.notes[-1]
    (tmp_path / "one.csv").write_text("arrival_s,prompt_tokens,output_tokens\n0,1,1\n")
    one = WorkloadSpec.from_dict({"trace": "one.csv", "arrival": {"rate": 4.0}}, base_dir=tmp_path,
                                 source="s.yaml")
    with pytest.raises(InputError, match="at least two requests") as info:
        one.generate(np.random.default_rng(0))
    assert info.value.where == "workload.arrival.rate"


def test_lengths_file_with_synthetic_arrivals(tmp_path):
    (tmp_path / "l.csv").write_text("num_prefill_tokens,num_decode_tokens\n100,5\n200,6\n")
    spec = WorkloadSpec.from_dict({"arrival": {"rate": 3}, "lengths_file": "l.csv",
                                   "num_requests": 50}, base_dir=tmp_path)
    trace = spec.generate(np.random.default_rng(0))
    assert set(zip(trace.prompt_tokens.tolist(), trace.output_tokens.tolist())) <= {(100, 5), (200, 6)}
    dist = WorkloadSpec.from_dict(with_({"prompt_tokens": {"dist": "file", "path": "l.csv"}}),
                                  base_dir=tmp_path).prompt_tokens
    assert dist == FileLength(tmp_path / "l.csv", "prompt")


def test_custom_where_prefix_and_non_mapping():
    with pytest.raises(InputError) as info:
        WorkloadSpec.from_dict({"arrival": {"rate": -2}}, where="scenarios[0].workload")
    assert info.value.where == "scenarios[0].workload.arrival.rate"
    assert error_for(None).where == "workload"
