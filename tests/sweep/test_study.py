"""Study files: structure checks, the grid order, point ids, and validation of every point before running."""

from __future__ import annotations

import pytest

from llmsim.errors import InputError
from llmsim.sweep.plan import INFEASIBLE, READY, plan_points
from llmsim.sweep.study import load_study, point_id

from .conftest import tiny_study


def test_points_follow_axes_order_then_zip(write_study):
    study = load_study(write_study(tiny_study(zip={"replicas": [1, 2], "router": ["round_robin", "least_kv"]})))
    points = study.points()
    assert len(points) == 8
    assert [dict(p.overrides)["scheduler.max_num_seqs"] for p in points] == [4, 4, 4, 4, 32, 32, 32, 32]
    assert [dict(p.overrides)["replicas"] for p in points[:4]] == [1, 2, 1, 2]
    assert dict(points[1].overrides)["router"] == "least_kv"
    assert [p.index for p in points] == list(range(8))


def test_point_id_is_a_hash_of_the_overrides_independent_of_order():
    a = point_id((("parallelism.tp", 4), ("hardware", "h100-sxm")))
    b = point_id((("hardware", "h100-sxm"), ("parallelism.tp", 4)))
    assert a == b and len(a) == 12
    assert a != point_id((("hardware", "h100-sxm"), ("parallelism.tp", 8)))


def test_unknown_study_key_suggests_the_right_one(write_study):
    study = tiny_study()
    study["axis"] = study.pop("axes")
    with pytest.raises(InputError, match="did you mean 'axes'"):
        load_study(write_study(study))


@pytest.mark.parametrize("changes, where", [
    ({"zip": {"replicas": [1, 2], "router": ["round_robin"]}}, "zip.router"),
    ({"axes": {"replicas": []}}, "axes.replicas"),
    ({"axes": {"replicas": [1, 1]}}, "axes.replicas"),
    ({"set": {"replicas": 2}, "axes": {"replicas": [1, 2]}}, "axes.replicas"),
    ({"slo": {"ttft_p98": 1.0}}, "slo.ttft_p98"),
    ({"slo": {"ttft_p99": -1}}, "slo.ttft_p99"),
    ({"target": {"rate": 0}}, "target.rate"),
    ({"base": None}, "base"),
])
def test_malformed_study_names_the_key(write_study, changes, where):
    with pytest.raises(InputError) as info:
        load_study(write_study(tiny_study(**changes)))
    assert info.value.where == where


def test_bad_axis_value_is_reported_with_the_point_before_anything_runs(write_study):
    study = load_study(write_study(tiny_study(axes={"hardware": ["h100-sxm", "h100-sxmm"]})))
    with pytest.raises(InputError) as info:
        plan_points(study)
    text = str(info.value)
    assert "point 1 (hardware=h100-sxmm)" in text and "did you mean 'h100-sxm'" in text


def test_model_that_does_not_fit_is_an_infeasible_point_not_an_error(write_study):
    study = load_study(write_study(tiny_study(axes={"model": ["llama-3-8b", "llama-3-70b"]})))
    planned = plan_points(study)
    assert [p.status for p in planned] == [READY, INFEASIBLE]
    assert "does not fit" in planned[1].reason


def test_base_may_be_a_builtin_scenario_or_a_relative_file(write_study, tmp_path):
    assert load_study(write_study(tiny_study(base="quickstart"))).base.source.endswith("quickstart.yaml")
    (tmp_path / "sub").mkdir()
    write_study(tiny_study()["base"], name="sub/base.yaml")
    study = load_study(write_study(tiny_study(base="sub/base.yaml")))
    assert study.base.data["model"] == "llama-3-8b"
    with pytest.raises(InputError, match="scenario file not found"):
        load_study(write_study(tiny_study(base="sub/missing.yaml")))
