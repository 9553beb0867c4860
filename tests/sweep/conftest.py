"""Fixtures for the sweep tests: a tiny scenario, a study writer, a run counter and a CLI runner."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import typer
import yaml
from typer.testing import CliRunner

from llmsim.sweep import worker
from llmsim.sweep.cli import register

#: About 0.1 s per run: llama-3-8b on one H100, 24 short requests.
TINY_BASE: dict[str, Any] = {
    "name": "tiny", "model": "llama-3-8b", "hardware": "h100-sxm",
    "scheduler": {"policy": "continuous", "max_num_seqs": 32},
    "workload": {"arrival": {"process": "poisson", "rate": 4.0},
                 "prompt_tokens": {"dist": "uniform", "min": 64, "max": 256},
                 "output_tokens": {"dist": "uniform", "min": 8, "max": 32},
                 "num_requests": 24, "seed": 0},
}

#: Four points: max_num_seqs x arrival rate.
FOUR_POINT_AXES = {"scheduler.max_num_seqs": [4, 32], "workload.arrival.rate": [2.0, 4.0]}


def tiny_study(**changes: Any) -> dict[str, Any]:
    """A study over TINY_BASE with FOUR_POINT_AXES; ``changes`` replace top-level study keys (None drops)."""
    study = {"name": "tiny-study", "base": copy.deepcopy(TINY_BASE), "axes": copy.deepcopy(FOUR_POINT_AXES),
             "slo": {"ttft_p99": 2.0, "tpot_p99": 0.1}}
    study.update(changes)
    return {k: v for k, v in study.items() if v is not None}


@pytest.fixture
def write_study(tmp_path: Path) -> Callable[..., Path]:
    """``write_study(mapping, name="study.yaml")`` -> the path of the YAML file written under tmp_path."""
    def _write(mapping: dict[str, Any], name: str = "study.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
        return path
    return _write


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list:
    """Counts in-process runs: every scenario simulated by a sweep with workers=1 is appended here."""
    seen: list = []
    real = worker.simulate

    def counting(sc):
        seen.append(sc)
        return real(sc)
    monkeypatch.setattr(worker, "simulate", counting)
    return seen


@pytest.fixture
def cli() -> Callable[..., Any]:
    """``cli(*args)`` -> the click Result of running the sweep commands on a fresh Typer app."""
    app = typer.Typer(add_completion=False)
    register(app)
    runner = CliRunner()

    def _invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])
    return _invoke
