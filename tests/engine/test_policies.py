"""Static, chunked and disaggregated policies: hand-checked cases and the orderings users rely on."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.api import cost_model
from llmsim.costmodel import IterationShape, PromptChunk
from llmsim.engine.kv_cache import KVBlockPool
from llmsim.engine.requests import RequestTable
from llmsim.engine.schedulers import SCHEDULERS
from llmsim.engine.state import ReplicaState


def test_static_prefills_the_idle_batch_together_and_lets_nobody_join(simulate):
    rows = [(0.0, 100, 3), (0.0, 200, 5), (0.0, 300, 2), (0.001, 50, 2)]
    res = simulate(rows, scheduler={"policy": "static", "max_num_seqs": 8})
    it, req = res.iterations, res.requests
    assert it.prefill_tokens.iloc[0] == 600 and it.prefill_chunks.iloc[0] == 3
    assert req.first_token_s[:3].nunique() == 1  # one prefill iteration for the whole batch
    # the batch decodes until its last member (5 tokens) is done: 4 decode steps, shrinking as members finish
    # (after the prefill each has 1 token; C is done after step 1, A after step 2, B after step 4)
    assert list(it.decode_seqs.iloc[1:5]) == [3, 2, 1, 1]
    assert req.first_scheduled_s[3] == req.finish_s[1]  # the late arrival waits for the whole batch
    assert req.finish_s[2] < req.finish_s[0] < req.finish_s[1]  # members leave at their own finish time


def test_chunked_iteration_by_iteration(simulate):
    # budget 512. Iteration 0: A's first 512 prompt tokens (B arrives during it). Iteration 1: A's last 488
    # and B's first 24. Iteration 2: A's decode + 511 of B. Iteration 3: A's decode + B's last 65.
    rows = [(0.0, 1000, 3), (0.001, 600, 2)]
    res = simulate(rows, scheduler={"policy": "chunked", "chunk_size": 512})
    it = res.iterations
    assert list(it.prefill_tokens[:4]) == [512, 512, 511, 65]
    assert list(it.prefill_chunks[:4]) == [1, 2, 1, 1]
    assert list(it.decode_seqs[:4]) == [0, 0, 1, 1]
    req = res.requests
    assert req.first_token_s[0] == it.end_s[1]  # A's first token at the end of its last chunk
    assert req.first_token_s[1] == it.end_s[3]
    assert req.finish_s[0] == it.end_s[3]  # A's 3 tokens: end of iterations 1, 2 and 3
    cm = cost_model(res.scenario)
    mixed = IterationShape((PromptChunk(511, 24, samples=False),), (1000,))
    assert it.end_s[2] - it.start_s[2] == pytest.approx(cm.iteration_time_s(mixed), rel=1e-12)


def test_static_has_far_higher_ttft_than_continuous_at_the_same_load(simulate):
    rng = np.random.default_rng(3)
    rows = [(float(a), int(p), int(o)) for a, p, o in
            zip(np.cumsum(rng.exponential(1 / 8.0, 300)), rng.integers(100, 1500, 300), rng.integers(50, 400, 300))]
    static = simulate(rows, scheduler={"policy": "static"})
    cont = simulate(rows, scheduler={"policy": "continuous"})
    assert static.summary["latency_s"]["ttft"]["p50"] > 5 * cont.summary["latency_s"]["ttft"]["p50"]


def test_chunked_has_lower_p99_tpot_than_continuous_under_long_prompts(simulate):
    rng = np.random.default_rng(4)
    n = 200
    rows = [(float(a), int(p), int(o)) for a, p, o in
            zip(np.cumsum(rng.exponential(1 / 3.0, n)), rng.integers(3000, 8000, n), rng.integers(100, 300, n))]
    cont = simulate(rows, scheduler={"policy": "continuous", "max_batched_tokens": 8192})
    chunk = simulate(rows, scheduler={"policy": "chunked", "chunk_size": 512})
    assert chunk.summary["latency_s"]["tpot"]["p99"] < cont.summary["latency_s"]["tpot"]["p99"]


def test_disaggregated_decode_is_not_slowed_by_prefills(simulate):
    rng = np.random.default_rng(5)
    n = 150
    rows = [(float(a), int(p), int(o)) for a, p, o in
            zip(np.cumsum(rng.exponential(1 / 3.0, n)), rng.integers(3000, 7000, n), rng.integers(100, 300, n))]
    cont = simulate(rows, replicas=2, scheduler={"policy": "continuous", "max_batched_tokens": 8192})
    disagg = simulate(rows, scheduler={"policy": "disaggregated", "max_batched_tokens": 8192},
                      disaggregated={"prefill": {"instances": 1}, "decode": {"instances": 1}})
    d_it = disagg.iterations
    decode_rows = d_it[d_it.replica == 1]
    assert (decode_rows.prefill_tokens == 0).all()  # the decode instance never runs a prefill
    assert disagg.summary["latency_s"]["itl"]["p99"] < 0.5 * cont.summary["latency_s"]["itl"]["p99"]
    assert disagg.summary["requests"]["finished"] == n
    transfer = disagg.requests.transfer_s.dropna()
    assert len(transfer) == n and (transfer > 0).all()
    # the second token comes after the KV transfer: TTFT is on the prefill side, the transfer delays token 2
    req = disagg.requests
    assert (req.finish_s - req.first_token_s >= transfer).all()


def test_disaggregated_transfers_queue_on_a_busy_link(simulate):
    rows = [(0.0, 4000, 20)] * 6
    slow_link = {"kind": "ethernet", "bandwidth_bytes_per_s": 1e9, "latency_s": 1e-4}
    res = simulate(rows, scheduler={"policy": "disaggregated", "max_batched_tokens": 8192},
                   disaggregated={"link": slow_link})
    wait = res.requests.transfer_wait_s.to_numpy()
    assert np.nanmax(wait) > 0.2  # 4000 tokens x 128 KiB = 0.5 GB: 0.5 s each at 1 GB/s, so later ones queue
    kv = 4000 * 131072
    assert res.requests.transfer_s.min() >= kv / 1e9


def test_disaggregated_pools_may_use_different_gpus(simulate):
    rows = [(i * 0.05, 2000, 50) for i in range(40)]
    res = simulate(rows, scheduler={"policy": "disaggregated"},
                   disaggregated={"prefill": {"hardware": "h100-sxm"}, "decode": {"hardware": "a100-80g-sxm"}})
    hw = [r["hardware"] for r in res.summary["replicas"]]
    assert hw == ["h100-sxm", "a100-80g-sxm"]
    assert res.summary["requests"]["finished"] == 40


@pytest.mark.parametrize("policy", ["continuous", "chunked", "static"])
def test_decode_plans_are_closed_exactly_when_no_arrival_could_join(policy):
    """A decode-only plan promises ``closed`` (arrivals cannot change the iterations before the batch changes by
    itself) when requests already wait behind a blocked queue head, or for a running static batch."""
    def plans(waiting_extra: int):
        table = RequestTable(np.zeros(3 + waiting_extra), np.full(3 + waiting_extra, 32), np.full(3 + waiting_extra, 50))
        state = ReplicaState(table, KVBlockPool(1000, 16))
        scheduler = SCHEDULERS[policy](max_num_seqs=2)
        state.waiting.extend(range(2))  # two requests fill the batch and are prefilled
        first = scheduler.plan_iteration(state, 0.0)
        for r, c in first.chunks:
            table.prefilled[r] += c
            table.kv_len[r] += c
            table.generated[r] += 1
            state.prompt_complete(r)
            state.start_decoding(r)
        state.waiting.extend(range(2, 2 + waiting_extra))
        return scheduler.plan_iteration(state, 0.1)

    idle_queue, blocked_queue = plans(0), plans(1)
    assert idle_queue.decodes.size == blocked_queue.decodes.size == 2 and not blocked_queue.chunks
    assert blocked_queue.closed  # the sequence limit blocks the head until a request finishes
    assert idle_queue.closed == (policy == "static")  # an arrival could join a continuous or chunked batch
