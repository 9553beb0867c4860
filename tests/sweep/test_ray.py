"""The Ray backend gives the same files as local processes, and a clear message when Ray is missing.

Runs against a local Ray instance when ``import ray`` works and is skipped otherwise, except when the
environment sets ``LLMSIM_REQUIRE_RAY=1`` (CI, after installing ray): then a missing Ray fails the test.
"""

from __future__ import annotations

import builtins
import json
import os

import pytest

from llmsim.errors import InputError
from llmsim.sweep import run_sweep

from .conftest import tiny_study


def _ray_or_skip():
    """The ray module; skip when it is not installed, unless LLMSIM_REQUIRE_RAY=1 demands it."""
    if os.environ.get("LLMSIM_REQUIRE_RAY") == "1":
        import ray
        return ray
    return pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for this module, shut down afterwards."""
    ray = _ray_or_skip()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_and_local_sweeps_write_identical_results(local_ray, write_study, tmp_path):
    study = write_study(tiny_study(zip={"replicas": [1, 2]}, axes={"workload.arrival.rate": [2.0, 4.0]}))
    local = run_sweep(study, tmp_path / "local", workers=2, report=False)
    remote = run_sweep(study, tmp_path / "ray", backend="ray", report=False)
    assert set(remote.table["status"]) == {"ok"} and remote.computed == 4
    assert (tmp_path / "ray" / "results.csv").read_bytes() == (tmp_path / "local" / "results.csv").read_bytes()
    for point_id in local.table["id"]:
        for name in ("summary.json", "overrides.json", "measured.json"):
            a = json.loads((tmp_path / "local" / "points" / point_id / name).read_text())
            b = json.loads((tmp_path / "ray" / "points" / point_id / name).read_text())
            a.pop("wall_time_s", None), b.pop("wall_time_s", None)
            assert a == b
    resumed = run_sweep(study, tmp_path / "ray", backend="ray", report=False)
    assert resumed.computed == 0 and resumed.reused == 4


def test_missing_ray_is_an_input_error_with_the_install_command(monkeypatch, write_study, tmp_path):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(InputError, match=r"pip install 'llmsim\[ray\]'"):
        run_sweep(write_study(tiny_study()), tmp_path / "out", backend="ray")
    assert not (tmp_path / "out").exists()
