"""The decode batch's running sums against a per-request model that advances every sequence token by token."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.engine.decode_batch import DecodeBatch
from llmsim.engine.records import GapRecorder
from llmsim.engine.requests import RequestTable

N = 40


class Naive:
    """Each member's (kv_len, generated, output, blocks, last token s), advanced one token at a time."""

    def __init__(self, block_size: int) -> None:
        self.bs, self.members, self.gaps = block_size, {}, []

    def advance(self, ends: list[float]) -> list[int]:
        for end in ends:
            for m in self.members.values():
                self.gaps.append(end - m[4])
                if m[0] % self.bs == 0:  # the token starts a block: the step reserved one
                    m[3] += 1
                m[0], m[1], m[4] = m[0] + 1, m[1] + 1, end
        return sorted(r for r, m in self.members.items() if m[1] >= m[2])


@settings(max_examples=60, deadline=None)
@given(block_size=st.sampled_from([1, 4, 16]), seed=st.integers(0, 10_000),
       ops=st.lists(st.sampled_from(["join", "join", "advance", "advance", "leave"]), min_size=1, max_size=60))
def test_decode_batch_sums_follow_every_sequence(block_size, seed, ops):
    rng = np.random.default_rng(seed)
    table = RequestTable(np.zeros(N), rng.integers(1, 300, N), rng.integers(2, 40, N))
    batch, naive, gaps = DecodeBatch(table, block_size), Naive(block_size), GapRecorder()
    clock, outside = 0.0, list(range(N))
    for op in ops:
        if op == "join" and outside:
            r = outside.pop(int(rng.integers(len(outside))))
            table.kv_len[r] = int(table.prompt[r]) + int(rng.integers(0, 5))
            table.generated[r] = int(rng.integers(1, table.output[r]))
            table.blocks[r] = -(-int(table.kv_len[r]) // block_size)
            table.last_token_s[r] = clock - float(rng.integers(0, 3))  # joined now or some time ago
            naive.members[r] = [int(table.kv_len[r]), int(table.generated[r]), int(table.output[r]),
                                int(table.blocks[r]), float(table.last_token_s[r])]
            batch.join(r)
        elif op == "advance" and len(batch):
            k = int(rng.integers(1, batch.steps_to_first_finish() + 1))
            assert [batch.blocks_needed(j) for j in range(k)] == [
                sum((m[0] + j) % block_size == 0 for m in naive.members.values()) for j in range(k)]
            ends = list(clock + np.cumsum(rng.uniform(0.01, 0.05, k)))
            clock = ends[-1]
            done = batch.advance(ends, gaps)
            assert sorted(done) == naive.advance(ends)
            for r in done:
                _check_columns(table, naive.members.pop(r), r)
        elif op == "leave" and len(batch):
            r = int(rng.choice(batch.ids()))
            batch.leave(r)  # preempted: it may join again later
            _check_columns(table, naive.members.pop(r), r)
            outside.append(r)
        assert sorted(batch.ids().tolist()) == sorted(naive.members)
        assert batch.context_tokens == sum(m[0] for m in naive.members.values())
        if naive.members:
            assert batch.steps_to_first_finish() == min(m[2] - m[1] for m in naive.members.values())
    expected = np.unique(naive.gaps, return_counts=True)
    got = gaps.merged()
    assert np.array_equal(got[0], expected[0]) and np.array_equal(got[1], expected[1])


def _check_columns(table: RequestTable, member: list, r: int) -> None:
    kv_len, generated, _, blocks, last = member
    assert (table.kv_len[r], table.generated[r], table.blocks[r], table.last_token_s[r]) == \
        (kv_len, generated, blocks, last)


def test_a_member_back_after_preemption_finishes_once():
    """Leaving and joining again can push the same (finish step, request) twice: it finishes once."""
    table = RequestTable(np.zeros(1), np.array([100]), np.array([10]))
    table.kv_len[0], table.generated[0], table.blocks[0] = 100, 1, 7
    batch, gaps = DecodeBatch(table, 16), GapRecorder()
    batch.join(0)
    assert batch.advance([0.1], gaps) == []
    batch.leave(0)
    batch.join(0)  # same tokens to go, one step later: the same finish step as before
    assert batch.steps_to_first_finish() == 8
    assert batch.advance([0.2 + 0.1 * j for j in range(8)], gaps) == [0]
    assert len(batch) == 0 and table.generated[0] == 10 and table.kv_len[0] == 109
