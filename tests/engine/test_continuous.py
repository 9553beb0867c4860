"""Continuous batching (prefill-first), iteration by iteration, against the cost model."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.api import cost_model
from llmsim.costmodel import IterationShape, PromptChunk


def _cm(result):
    return cost_model(result.scenario)


def test_one_request_on_an_idle_replica_is_one_prefill_then_n_minus_1_decodes(simulate):
    prompt, n = 700, 50
    res = simulate([(0.0, prompt, n)])
    cm = _cm(res)
    req = res.requests.iloc[0]
    prefill = cm.iteration_time_s(IterationShape((PromptChunk(prompt),)))
    assert req.ttft_s == prefill
    clock = prefill
    for j in range(n - 1):  # decode step j sees prompt + j cached tokens
        clock = clock + cm.iteration_time_s(IterationShape(decode_context_tokens=(prompt + j,)))
    assert req.e2e_s == clock
    assert req.tpot_s == pytest.approx((clock - prefill) / (n - 1))
    assert len(res.iterations) == n


def test_an_arrival_during_an_iteration_waits_for_the_next_boundary(simulate):
    res = simulate([(0.0, 2000, 5), (0.001, 100, 5)])
    it = res.iterations
    first_end = it.end_s.iloc[0]
    assert 0.001 < first_end
    second = res.requests.iloc[1]
    assert second.first_scheduled_s == first_end  # admitted at the first boundary after it arrived
    assert it.prefill_tokens.iloc[1] == 100 and it.decode_seqs.iloc[1] == 0  # prefill-first: no decode mixed in


def test_admissions_respect_the_token_budget_and_sequence_slots(simulate):
    rows = [(0.0, 1500, 4)] * 5
    res = simulate(rows, scheduler={"max_batched_tokens": 3100, "max_num_seqs": 3})
    it = res.iterations
    assert list(it.prefill_tokens[:2]) == [3000, 1500]  # 2 fit the budget, then the 3rd slot
    assert it.prefill_tokens.max() <= 3100
    assert (it.decode_seqs <= 3).all()


def test_prompt_longer_than_the_budget_or_context_is_rejected_with_a_reason(simulate):
    res = simulate([(0.0, 5000, 4), (0.0, 8000, 500), (0.0, 100, 4)])
    status = list(res.requests.status)
    assert status == ["rejected", "rejected", "finished"]
    assert "max_batched_tokens" in res.requests.reject_reason[0]
    assert "context window" in res.requests.reject_reason[1]


def test_preemption_by_recompute_when_the_kv_cache_runs_out(simulate):
    # a 2000-token prompt takes 125 blocks and grows to 138: 260 blocks hold two prompts but not their growth
    rows = [(0.0, 2000, 200)] * 3
    res = simulate(rows, scheduler={"num_kv_blocks": 260, "max_batched_tokens": 8192})
    assert res.summary["requests"]["finished"] == 3
    blocks = res.summary["kv_cache"]["blocks_per_replica"][0]
    assert blocks == 260
    assert res.requests.preemptions.sum() >= 1
    assert res.iterations.kv_blocks_used.max() <= blocks
    # the most recently admitted request is the victim: request 2 is preempted, 0 never is
    assert res.requests.preemptions[0] == 0


def test_below_capacity_ttft_is_about_the_prefill_time(simulate):
    rows = [(i * 2.0, 512, 16) for i in range(10)]  # far apart: the replica is idle at each arrival
    res = simulate(rows)
    prefill = _cm(res).iteration_time_s(IterationShape((PromptChunk(512),)))
    assert res.requests.ttft_s.to_numpy() == pytest.approx(np.full(10, prefill))


def test_past_capacity_the_queue_grows_and_throughput_levels_off(simulate):
    prompt, n = 256, 64
    sc_rows = lambda rate: [(i / rate, prompt, n) for i in range(600)]  # noqa: E731
    low = simulate(sc_rows(20.0), scheduler={"max_num_seqs": 16})
    high = simulate(sc_rows(400.0), scheduler={"max_num_seqs": 16})
    higher = simulate(sc_rows(800.0), scheduler={"max_num_seqs": 16})
    thr = [r.summary["throughput"]["requests_per_s"] for r in (low, high, higher)]
    assert thr[0] == pytest.approx(20.0, rel=0.1)
    assert thr[2] == pytest.approx(thr[1], rel=0.05)  # saturated: more load, same throughput
    # the bound: 16 sequences at a time, each needing a prefill and n-1 batched decode steps
    cm = _cm(high)
    step = cm.iteration_time_s(IterationShape(decode_context_tokens=(prompt + n // 2,) * 16))
    pre = cm.iteration_time_s(IterationShape(tuple(PromptChunk(prompt) for _ in range(16))))
    assert thr[1] == pytest.approx(16 / (pre + (n - 1) * step), rel=0.15)
    waits = high.requests.first_scheduled_s - high.requests.arrival_s
    assert waits.iloc[-50:].mean() > 5 * waits.iloc[:50].mean()  # queueing delay keeps growing
