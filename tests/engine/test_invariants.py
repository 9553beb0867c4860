"""Invariants over random workloads, for every policy and router (Hypothesis).

Every request finishes exactly once or is rejected with a reason; token counts match; arrival <= first
scheduled <= first token <= finish; each replica's clock only moves forward; KV usage never exceeds the
pool; FCFS admission where the policy promises it; fast-forward and step-by-step runs write identical
files; the same seed gives byte-identical files.
"""

from __future__ import annotations

import filecmp
import os

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.conftest import random_rows

POLICIES = ["static", "continuous", "chunked", "disaggregated"]
ROUTERS = ["round_robin", "least_outstanding", "least_kv", "prefix_affinity"]
EXAMPLES = int(os.environ.get("LLMSIM_HYPOTHESIS_EXAMPLES", "15"))  # raise it for a longer bug hunt
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _parts(policy: str, kv_blocks: int, replicas: int, router: str) -> dict:
    parts = {"scheduler": {"policy": policy, "max_num_seqs": 8, "max_batched_tokens": 2048, "chunk_size": 256,
                           "num_kv_blocks": kv_blocks},
             "model_overrides": {"num_layers": 4}}
    if policy == "disaggregated":
        parts["disaggregated"] = {"prefill": {"instances": 1}, "decode": {"instances": replicas}}
    else:
        parts.update(replicas=replicas, router=router)
    return parts


def check_invariants(res, rows) -> None:
    req, it = res.requests, res.iterations
    assert len(req) == len(rows) and list(req.request_id) == list(range(len(rows)))
    finished = req[req.status == "finished"]
    rejected = req[req.status == "rejected"]
    assert len(finished) + len(rejected) == len(req)  # nothing lost, nothing unfinished
    assert (rejected.reject_reason.str.len() > 0).all()
    assert (finished.arrival_s <= finished.first_scheduled_s).all()
    assert (finished.first_scheduled_s <= finished.first_token_s).all()
    assert (finished.first_token_s <= finished.finish_s).all()
    # output token counts: n tokens take the first token plus n-1 decode steps, so TPOT is defined iff n > 1
    assert finished.tpot_s.isna().equals(finished.output_tokens == 1)
    for _, rows_r in it.groupby("replica"):
        start, end = rows_r.start_s.to_numpy(), rows_r.end_s.to_numpy()
        assert (end > start).all() and (start[1:] >= end[:-1]).all()  # the clock only moves forward
    totals = np.array(res.summary["kv_cache"]["blocks_per_replica"])
    assert (it.kv_blocks_used.to_numpy() <= totals[it.replica.to_numpy()]).all()
    assert it.sampled.sum() >= finished.output_tokens.sum()  # every output token came out of some iteration


def check_fcfs(res) -> None:
    """Requests of one replica are first scheduled in arrival order (ties by id)."""
    req = res.requests[res.requests.status == "finished"]
    for _, r in req.groupby("replica"):
        order = r.sort_values(["arrival_s", "request_id"], kind="stable")
        first = order.first_scheduled_s.to_numpy()
        assert (np.diff(first) >= 0).all()


@SETTINGS
@given(seed=st.integers(0, 10_000), policy=st.sampled_from(POLICIES), router=st.sampled_from(ROUTERS),
       replicas=st.integers(1, 3), kv_blocks=st.integers(60, 400), n=st.integers(1, 60))
def test_invariants_hold_for_every_policy_and_router(simulate, seed, policy, router, replicas, kv_blocks, n):
    rows = random_rows(np.random.default_rng(seed), n, rate=50.0, max_prompt=1200, max_output=120)
    res = simulate(rows, **_parts(policy, kv_blocks, replicas, router))
    check_invariants(res, rows)
    if policy in ("continuous", "chunked") and kv_blocks >= 160:
        check_fcfs(res)


@SETTINGS
@given(seed=st.integers(0, 10_000), policy=st.sampled_from(POLICIES), router=st.sampled_from(ROUTERS),
       replicas=st.integers(1, 3), kv_blocks=st.integers(60, 400), n=st.integers(1, 60))
def test_fast_forward_and_step_by_step_write_identical_files(simulate, tmp_path, seed, policy, router, replicas,
                                                              kv_blocks, n):
    rows = random_rows(np.random.default_rng(seed), n, rate=30.0, max_prompt=1200, max_output=150)
    parts = _parts(policy, kv_blocks, replicas, router)
    fast = simulate(rows, **{**parts, "engine": {"fast_forward": True}})
    step = simulate(rows, **{**parts, "engine": {"fast_forward": False}})
    a, b = tmp_path / f"ff{seed}", tmp_path / f"step{seed}"
    fast.save(a, overwrite=True)
    step.save(b, overwrite=True)
    for name in ("requests.csv", "iterations.csv", "itl.csv", "summary.json"):
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_the_same_seed_gives_byte_identical_outputs(tmp_path):
    import llmsim
    overrides = ["workload.num_requests=200", "workload.arrival.rate=20"]
    for i in range(2):
        llmsim.run("quickstart", overrides).save(tmp_path / f"run{i}")
    for name in ("requests.csv", "iterations.csv", "itl.csv", "summary.json", "scenario.yaml"):
        assert filecmp.cmp(tmp_path / "run0" / name, tmp_path / "run1" / name, shallow=False), name
    other = llmsim.run("quickstart", [*overrides, "workload.seed=1"]).requests
    assert not other.equals(pd.read_csv(tmp_path / "run0" / "requests.csv"))


@SETTINGS
@example(seed=1, policy="continuous", router="round_robin", replicas=1, kv_blocks=120, n=71)  # a preemption frees
# blocks for the queue head at the next boundary: a span must not run past it
@given(seed=st.integers(0, 10_000), policy=st.sampled_from(["static", "continuous", "chunked"]),
       router=st.sampled_from(ROUTERS), replicas=st.integers(1, 2), kv_blocks=st.integers(120, 400),
       n=st.integers(5, 80))
def test_fast_forward_and_step_by_step_agree_with_prefix_caching(tmp_path, seed, policy, router, replicas,
                                                                kv_blocks, n):
    """Shared system prompts and multi-turn histories in a small KV cache (evictions, queues, closed spans)."""
    import llmsim
    scenario = {"name": "prefix", "model": "llama-3-8b", "hardware": "h100-sxm", "model_overrides": {"num_layers": 4},
                "replicas": replicas, "router": router,
                "scheduler": {"policy": policy, "max_num_seqs": 6, "max_batched_tokens": 2048, "chunk_size": 256,
                              "num_kv_blocks": kv_blocks, "prefix_caching": True},
                "workload": {"arrival": {"process": "poisson", "rate": 40.0},
                             "prompt_tokens": {"dist": "lognormal", "median": 120, "sigma": 0.6, "min": 8, "max": 600},
                             "output_tokens": {"dist": "lognormal", "median": 40, "sigma": 0.7, "min": 2, "max": 150},
                             "shared_prefix": {"tokens": 256, "num_prefixes": 3, "block_tokens": 16},
                             "multi_turn": {"turns": 2, "think_time_s": 0.2}, "num_requests": n, "seed": seed}}
    runs = [llmsim.run({**scenario, "engine": {"fast_forward": ff}}) for ff in (True, False)]
    assert runs[0].summary["prefix_cache"]["hit_tokens"] > 0 or n < 10
    for ff, run in zip(("ff", "step"), runs):
        run.save(tmp_path / f"{ff}{seed}", overwrite=True)
    for name in ("requests.csv", "iterations.csv", "itl.csv", "summary.json"):
        assert filecmp.cmp(tmp_path / f"ff{seed}" / name, tmp_path / f"step{seed}" / name, shallow=False), name
