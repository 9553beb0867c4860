"""Figure functions: bounded point counts for huge runs, and no crash on edge cases (NaNs, empty logs, roles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D

from llmsim.report.assemble import FIGURES, build_figures
from llmsim.report.figures_engine import TIMELINE_REQUESTS, replica_groups
from llmsim.report.load import RunData
from llmsim.report.render import report_style

MAX_POINTS = 5000


def synthetic_run(name: str, n_requests: int, n_iterations: int, replicas: list[dict], seed: int = 0) -> RunData:
    """An in-memory run with random but consistent records (times in s)."""
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, n_requests / 40.0, n_requests))
    sched = arrival + rng.exponential(0.05, n_requests)
    first = sched + rng.exponential(0.03, n_requests)
    finish = first + rng.exponential(2.0, n_requests)
    status = np.where(rng.random(n_requests) < 0.01, "rejected", "finished")
    nan = status == "rejected"
    for a in (sched, first, finish):
        a[nan] = np.nan
    requests = pd.DataFrame({"request_id": np.arange(n_requests, dtype=float), "arrival_s": arrival,
                             "status": status, "first_scheduled_s": sched, "first_token_s": first,
                             "finish_s": finish, "ttft_s": first - arrival, "tpot_s": (finish - first) / 100,
                             "e2e_s": finish - arrival, "preemptions": rng.integers(0, 2, n_requests) * 1.0})
    replica = rng.integers(0, len(replicas), n_iterations).astype(float)
    start = np.sort(rng.uniform(0, finish[~nan].max(), n_iterations))
    iterations = pd.DataFrame({"replica": replica, "start_s": start, "end_s": start + 0.01,
                               "prefill_chunks": rng.integers(0, 3, n_iterations) * 1.0,
                               "decode_seqs": rng.integers(0, 128, n_iterations) * 1.0,
                               "kv_blocks_used": rng.integers(0, 1000, n_iterations) * 1.0})
    gaps = np.unique(rng.exponential(0.01, 50_000))
    itl = pd.DataFrame({"gap_s": gaps, "count": rng.integers(1, 50, gaps.size) * 1.0})
    summary = {"replicas": replicas, "kv_cache": {"blocks_per_replica": [1000] * len(replicas)},
               "slo": {"ttft_s": 0.5, "tpot_s": 0.05, "attainment": 0.9, "goodput_requests_per_s": 30.0},
               "throughput": {"requests_per_s": 35.0}, "time_by_operator_s": {"mlp_up": 3.0, "attn_decode": 1.0}}
    return RunData(name, Path(name), requests, iterations, itl, summary, {"workload": {}}, "", {})


def mixed(n: int) -> list[dict]:
    return [{"index": i, "role": "mixed"} for i in range(n)]


@pytest.fixture(scope="module")
def huge() -> list[RunData]:
    """Two runs of 200k requests and 400k iterations, one with 6 replicas."""
    return [synthetic_run("big-a", 200_000, 400_000, mixed(1)),
            synthetic_run("big-b", 200_000, 400_000, mixed(6), seed=1)]


@pytest.mark.parametrize("slug", sorted(FIGURES))
def test_every_series_is_downsampled(huge, slug):
    with report_style():
        fig = FIGURES[slug][2](huge)
    for ax in fig.axes:
        for line in ax.lines:
            assert len(line.get_xdata()) <= MAX_POINTS, (slug, line.get_label())
        for coll in ax.collections:
            assert len(coll.get_paths()) <= 2 * MAX_POINTS, slug


def test_timeline_draws_a_window_of_requests(huge):
    with report_style():
        fig = FIGURES["timeline"][2](huge)
    bars = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert sum(len(c.get_paths()) for c in bars) <= 2 * TIMELINE_REQUESTS


def test_many_replicas_are_pooled_by_role():
    run = synthetic_run("r", 100, 500, [*[{"index": i, "role": "prefill"} for i in range(3)],
                                        *[{"index": i, "role": "decode"} for i in range(3, 8)]])
    groups = replica_groups(run)
    assert [label for label, _ in groups] == ["prefill replicas (mean of 3)", "decode replicas (mean of 5)"]
    assert groups[1][1].tolist() == [3, 4, 5, 6, 7]


def test_few_replicas_are_drawn_one_by_one_and_a_lone_one_needs_no_label():
    assert [label for label, _ in replica_groups(synthetic_run("r", 10, 50, mixed(1)))] == [""]
    roles = [{"index": 0, "role": "prefill"}, {"index": 1, "role": "decode"}]
    assert [label for label, _ in replica_groups(synthetic_run("r", 10, 50, roles))] == \
           ["replica 0 (prefill)", "replica 1 (decode)"]


def test_a_run_with_no_iterations_and_no_finished_requests_still_renders():
    run = synthetic_run("empty", 5, 0, mixed(1))
    run.requests["status"] = "rejected"
    with report_style():
        figs = build_figures([run])
    assert set(figs) == {slug for slug, spec in FIGURES.items() if spec[3] <= 1}
    assert all(f.png.startswith(b"\x89PNG") for f in figs.values())


def test_figures_draw_lines_not_thousands_of_artists(huge):
    with report_style():
        fig = FIGURES["latency_cdf"][2](huge)
    assert sum(isinstance(a, Line2D) for ax in fig.axes for a in ax.get_children()) < 60
