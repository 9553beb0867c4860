"""The decoding sequences of one replica, kept as running sums so that a decode iteration costs O(1), not O(batch).

With plain decoding every sequence in the batch advances by exactly one token per decode iteration. So while a
request decodes, its cached tokens, tokens generated and KV blocks are functions of one replica-wide counter,
``step`` (decode iterations run so far), and of what it held when it joined:

* ``kv_len = kv_offset + step`` and ``generated = generated_offset + step``;
* it finishes at step ``finish_step = join step + tokens still to produce``;
* decode step ``s`` needs a new KV block when ``(kv_offset + s) % block_size == 0`` (the token it writes starts
  a block), so it holds ``blocks at join + #{s in [join, step): (kv_offset + s) % block_size == 0}`` blocks.

The batch keeps the sums the replica and the cost model need: total cached tokens, the earliest finish step (a
heap), and how many members sit at each block residue. The request table's columns of a member are stale while it
decodes; :meth:`DecodeBatch.leave` writes them back when it finishes, is preempted or the run ends. Speculative
decoding advances sequences by different amounts per round and keeps the table up to date instead (no batch).
"""

from __future__ import annotations

import heapq

import numpy as np

from llmsim.engine.records import GapRecorder
from llmsim.engine.requests import RequestTable


class DecodeBatch:
    """Members (request ids) decoding on one replica, and the sums over them (see module docstring)."""

    def __init__(self, table: RequestTable, block_size: int) -> None:
        self.table = table
        self.block_size = block_size
        self.step = 0  # decode iterations this replica has run
        self.last_end_s = 0.0  # when the last decode iteration ended (every older member's last token)
        # r -> (kv offset, generated offset, join step, blocks at join, last token time at join (s), finish step)
        self.members: dict[int, tuple[int, int, int, int, float, int]] = {}
        self.kv_offset_sum = 0
        self.residues = [0] * block_size  # residues[x]: members with kv_offset % block_size == x
        self.finishes: list[tuple[int, int]] = []  # heap of (finish step, r); entries of departed members are stale
        self.fresh: dict[float, int] = {}  # members that joined since the last decode iteration, by last token time
        self._order = np.empty(64, dtype=np.int64)  # member ids (the first len(self) entries, in no set order)
        self._position: dict[int, int] = {}  # r -> its index in _order
        self._ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, r: int) -> bool:
        return r in self.members

    def ids(self) -> np.ndarray:
        """Member ids (int64), in no particular order (every member decodes alike)."""
        if self._ids is None:
            self._ids = self._order[: len(self.members)].copy()
        return self._ids

    @property
    def context_tokens(self) -> int:
        """Tokens cached by all members together (the decode iteration's attention context)."""
        return self.kv_offset_sum + len(self.members) * self.step

    def blocks_needed(self, ahead: int = 0) -> int:
        """New KV blocks the decode iteration ``ahead`` iterations from now takes (one per member whose token
        starts a block)."""
        return self.residues[-(self.step + ahead) % self.block_size]

    def needs_block(self, r: int) -> bool:
        """True when member ``r``'s next token starts a new KV block."""
        return (self.members[r][0] + self.step) % self.block_size == 0

    def steps_to_first_finish(self) -> int:
        """Decode iterations until the first member has produced all its output tokens (>= 1)."""
        heap, members = self.finishes, self.members
        while True:
            finish, r = heap[0]
            m = members.get(r)
            if m is not None and m[5] == finish:
                return finish - self.step
            heapq.heappop(heap)

    # -- membership ------------------------------------------------------------------------------------
    def join(self, r: int) -> None:
        """``r`` starts decoding: its prompt is prefilled, its first token sampled (table columns current)."""
        t, step = self.table, self.step
        kv_offset = t.kv_len[r] - step
        finish = step + t.output[r] - t.generated[r]
        last = t.last_token_s[r]
        self.members[r] = (kv_offset, t.generated[r] - step, step, t.blocks[r], last, finish)
        self.kv_offset_sum += kv_offset
        self.residues[kv_offset % self.block_size] += 1
        heapq.heappush(self.finishes, (finish, r))
        self.fresh[last] = self.fresh.get(last, 0) + 1
        n = len(self.members)
        if n > self._order.size:
            self._order = np.concatenate([self._order, np.empty_like(self._order)])
        self._order[n - 1] = r
        self._position[r] = n - 1
        self._ids = None

    def leave(self, r: int) -> None:
        """``r`` stops decoding (finished or preempted): write its table columns and drop it from the sums."""
        kv_offset, generated_offset, joined, blocks, last, _ = self.members.pop(r)
        t, step, bs = self.table, self.step, self.block_size
        t.kv_len[r] = kv_offset + step
        t.generated[r] = generated_offset + step
        t.blocks[r] = blocks + (kv_offset + step - 1) // bs - (kv_offset + joined - 1) // bs
        if joined == step:  # it has not decoded yet
            t.last_token_s[r] = last
            self.fresh[last] -= 1
            if not self.fresh[last]:
                del self.fresh[last]
        else:
            t.last_token_s[r] = self.last_end_s
        self.kv_offset_sum -= kv_offset
        self.residues[kv_offset % bs] -= 1
        at, n = self._position.pop(r), len(self.members)  # the last member moves into r's place
        if at != n:
            moved = int(self._order[n])
            self._order[at] = moved
            self._position[moved] = at
        self._ids = None

    # -- decode iterations -----------------------------------------------------------------------------
    def advance(self, ends_s: list[float], gaps: GapRecorder) -> list[int]:
        """Run ``len(ends_s)`` decode iterations ending at ``ends_s``, none past the first finish; record every
        member's inter-token gaps. Returns the members that finished (they have left the batch)."""
        b, k = len(self.members), len(ends_s)
        first = ends_s[0]
        older = b - sum(self.fresh.values())
        if older:  # members that decoded in the last iteration: one shared gap
            gaps.add_one(first - self.last_end_s, older)
        for last, n in self.fresh.items():
            gaps.add_one(first - last, n)
        self.fresh.clear()
        if k == 2:
            gaps.add_one(ends_s[1] - first, b)
        elif k > 2:
            gaps.add_many([later - earlier for earlier, later in zip(ends_s, ends_s[1:])], b)
        self.step += k
        self.last_end_s = ends_s[-1]
        heap, members = self.finishes, self.members
        done: list[int] = []
        while heap and heap[0][0] <= self.step:
            finish, r = heapq.heappop(heap)
            m = members.get(r)
            # (a member preempted and back may have pushed the same entry twice: they pop one after the other)
            if m is not None and m[5] == finish and (not done or done[-1] != r):
                done.append(r)
        for r in done:
            self.leave(r)
        return done
