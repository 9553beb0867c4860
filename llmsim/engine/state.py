"""What a scheduler sees and changes: one replica's queues, its KV pool, and the request table.

The admission, release and preemption rules shared by every policy live here, so a policy only decides
*which* requests run next. Semantics follow vLLM V0's block manager: a request is admitted only when the
KV cache has blocks for everything it must prefill; a decoding sequence takes a new block when its next
token crosses a block boundary; when blocks run out, the most recently admitted running request is
preempted by recompute (its blocks are freed and it returns to the front of the waiting queue).

With speculative decoding (``lookahead_tokens`` = k > 0) a decoding sequence must hold blocks for the
``k_r + 1`` tokens its next round verifies, ``k_r = min(k, tokens still to produce - 1)`` (vLLM's lookahead
slots); slots of rejected drafts stay allocated and are reused by the next round.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from llmsim.engine.decode_batch import DecodeBatch
from llmsim.engine.kv_cache import KVBlockPool, block_count, blocks_for
from llmsim.engine.requests import REJECTED, RUNNING, WAITING, RequestTable


NO_DECODES = np.zeros(0, dtype=np.int64)
NO_DECODES.flags.writeable = False


class IterationPlan:
    """The next iteration: prompt chunks ``(request id, new tokens)`` and decoding request ids.

    ``stable`` promises that, absent new arrivals, the following iterations repeat this decode-only plan
    (same sequences, one token each) until a request finishes or the KV cache runs out of blocks: the
    replica may then price them in one vectorised call (fast-forward); it does not when planning preempted a
    request, whose freed blocks may admit a waiting one at the next boundary. ``closed`` promises more: requests
    submitted meanwhile cannot join before the batch changes by itself, so the replica need not wake for them.
    """

    def __init__(self, chunks: list[tuple[int, int]] | None = None, decodes: np.ndarray = NO_DECODES,
                 stable: bool = False, closed: bool = False) -> None:
        # (a plain class: one is made per scheduling boundary, and a dataclass's generated __init__ costs more)
        self.chunks: list[tuple[int, int]] = [] if chunks is None else chunks
        self.decodes = decodes
        self.stable = stable
        self.closed = closed  # requests submitted meanwhile cannot change these iterations (see above)

    def __repr__(self) -> str:
        return (f"IterationPlan(chunks={self.chunks!r}, decodes={self.decodes!r}, stable={self.stable}, "
                f"closed={self.closed})")

    @property
    def is_empty(self) -> bool:
        """True when nothing runs."""
        return not self.chunks and self.decodes.size == 0


class ReplicaState:
    """Queues and KV pool of one replica (requests are ids into the shared :class:`RequestTable`)."""

    def __init__(self, table: RequestTable, kv: KVBlockPool, prefix_keys: list[np.ndarray] | None = None,
                 lookahead_tokens: int = 0) -> None:
        self.table = table
        self.kv = kv
        self.lookahead_tokens = lookahead_tokens  # speculative tokens per round (0: plain decoding)
        self.waiting: deque[int] = deque()
        # running requests -> admission ticket (increasing): in admission order, and removable in O(1)
        self.running: dict[int, int] = {}
        self._tickets = 0
        self.prefix_keys = prefix_keys
        self.held_units: dict[int, list[int]] = {}
        self.preemption_count = 0
        self.dropped: list[int] = []
        # Plain decoding keeps the decoding sequences as running sums (see llmsim.engine.decode_batch); requests
        # whose prompt completed join it at the next scheduling boundary. Speculative rounds update the table.
        self.batch = DecodeBatch(table, kv.block_size) if lookahead_tokens == 0 else None
        self.joining: list[int] = []
        self.prefilling: list[int] = []  # running requests whose prompt is not complete, in admission order

    # -- queries ---------------------------------------------------------------------------------------
    def decoding(self) -> np.ndarray:
        """Ids (int64) of running requests whose prompt is complete: with speculation in admission order, with plain
        decoding in no particular order (its members all decode alike)."""
        if self.batch is not None:
            for r in self.joining:
                self.batch.join(r)
            self.joining.clear()
            return self.batch.ids()
        t = self.table
        return np.array([r for r in self.running if t.prefilled[r] >= t.prefill_target[r]], dtype=np.int64)

    def partial_prefills(self) -> list[int]:
        """Running requests part-way through their prompt, in admission order."""
        return list(self.prefilling)

    def _prefix_match(self, r: int) -> tuple[int, int]:
        """(matched prefix units, blocks that those units would move from evictable to used)."""
        cache = self.kv.prefix_cache
        if cache is None or self.prefix_keys is None:
            return 0, 0
        keys = self.prefix_keys[r]
        m = cache.match(keys, self.table.prompt[r])
        revive = sum(cache.unit_blocks for k in keys[:m] if cache.refs[int(k)] == 0)
        return m, revive

    def admission_cost(self, r: int) -> tuple[int, int]:
        """(tokens to prefill after prefix-cache hits, blocks the admission needs)."""
        m, revive = self._prefix_match(r)
        target = self.table.prefill_target[r]
        own = block_count(target, self.kv.block_size)
        cache = self.kv.prefix_cache
        if m and cache is not None:  # (a prefix match implies a cache)
            return target - m * cache.unit_tokens, own - m * cache.unit_blocks + revive
        return target, own + revive

    def can_admit(self, r: int) -> bool:
        """True when the KV cache has blocks for everything ``r`` must prefill."""
        return self.admission_cost(r)[1] <= self.kv.free

    # -- transitions -----------------------------------------------------------------------------------
    def admit(self, r: int, now_s: float) -> int:
        """Move waiting request ``r`` to running, taking its blocks; returns the tokens it must prefill."""
        t, kv = self.table, self.kv
        m, _ = self._prefix_match(r)
        cached = 0
        cache = kv.prefix_cache
        if m and cache is not None and self.prefix_keys is not None:  # (a prefix match implies both)
            keys = [int(k) for k in self.prefix_keys[r][:m]]
            for key in keys:
                kv.used += cache.reference(key)
            self.held_units[r] = keys
            cached = m * cache.unit_tokens
        if cache is not None and self.prefix_keys is not None:
            cache.lookup_tokens += t.prompt[r]
            cache.hit_tokens += cached
        own = block_count(t.prefill_target[r], kv.block_size) - (cached // kv.block_size)
        kv.allocate(own)
        t.blocks[r] = own
        t.prefilled[r] = cached
        t.kv_len[r] = cached
        t.cached[r] = cached
        t.cached_total[r] += cached
        t.status[r] = RUNNING
        first = t.first_scheduled_s[r]
        if first != first:  # NaN: never scheduled before
            t.first_scheduled_s[r] = now_s
        self.add_running(r)
        self.prefilling.append(r)
        return t.prefill_target[r] - cached

    def add_running(self, r: int) -> None:
        """``r`` joins the running requests, last in admission order."""
        self.running[r] = self._tickets
        self._tickets += 1

    def prompt_complete(self, r: int) -> None:
        """``r``'s last prompt chunk ran: it is no longer part-way through its prompt."""
        self.prefilling.remove(r)

    def start_decoding(self, r: int) -> None:
        """``r``'s prompt is prefilled and its first token sampled: it decodes from the next boundary on."""
        if self.batch is not None:
            self.joining.append(r)

    def cache_prompt(self, r: int) -> None:
        """After ``r``'s prompt is prefilled, publish its full prefix units to the prefix cache."""
        cache = self.kv.prefix_cache
        if cache is None or self.prefix_keys is None:
            return
        keys = self.prefix_keys[r]
        held = self.held_units.setdefault(r, [])
        for key in keys[len(held): cache.cacheable_units(self.table.prompt[r], len(keys))]:
            if cache.add(int(key)):
                held.append(int(key))
                self.table.blocks[r] -= cache.unit_blocks

    def release(self, r: int) -> None:
        """Free every block ``r`` holds (its own, and its references to cached prefix units)."""
        t, kv = self.table, self.kv
        kv.release(t.blocks[r])
        t.blocks[r] = 0
        held = self.held_units.pop(r, None)
        if held and kv.prefix_cache is not None:  # (held units imply a cache)
            for key in held:
                kv.release(kv.prefix_cache.unreference(key))

    def reject(self, r: int, reason: str) -> None:
        """Drop waiting request ``r`` for good (it can no longer be served here), recording why."""
        self.waiting.remove(r)
        self.table.status[r] = REJECTED
        self.table.reject_reason[r] = reason
        self.dropped.append(r)

    def preempt(self, r: int) -> None:
        """Preempt running request ``r`` by recompute: free its KV, put it at the front of the queue."""
        del self.running[r]
        if r in self.prefilling:
            self.prefilling.remove(r)
        if self.batch is not None:
            if r in self.batch:
                self.batch.leave(r)
            elif r in self.joining:
                self.joining.remove(r)
        self.release(r)
        self.table.reset_for_recompute(r)
        self.table.status[r] = WAITING
        self.waiting.appendleft(r)
        self.preemption_count += 1

    def reserve_decode_slots(self, decoding: np.ndarray) -> np.ndarray:
        """Give each decoding request the blocks of its next step, preempting from the tail.

        Returns the ids (int64) of the decoding requests that still run this iteration (in order). Victims are
        the most recently admitted running requests (vLLM V0 order); a request alone in the batch that still
        cannot get a block is preempted itself. With plain decoding ``decoding`` is the decode batch, whose
        members all take a block when their token starts one; with speculation, see :meth:`slot_blocks`.
        """
        if self.batch is not None:
            return self._reserve_batch_slots()
        t, kv = self.table, self.kv
        ids = np.asarray(decoding, dtype=np.int64)
        need = self.slot_blocks(ids)
        total = int(need.sum())
        if total <= kv.free:  # the common case: every sequence gets its block, nobody is preempted
            kv.allocate(total)
            for r, k in zip(ids.tolist(), need.tolist()):
                t.blocks[r] += k
            return ids
        needs = dict(zip(ids.tolist(), need.tolist()))
        while total > kv.free and self.running:
            victim = next(reversed(self.running))  # the latest admitted
            self.preempt(victim)
            total -= needs.pop(victim, 0)
        kept = np.array([r in needs for r in ids.tolist()], dtype=bool)
        kv.allocate(total)
        for r, k in zip(ids[kept].tolist(), need[kept].tolist()):
            t.blocks[r] += k
        return ids[kept]

    def _reserve_batch_slots(self) -> np.ndarray:
        """:meth:`reserve_decode_slots` for the decode batch (every member decodes; blocks counted by residue)."""
        batch, kv = self.batch, self.kv
        assert batch is not None  # (plain decoding)
        total = batch.blocks_needed()
        if total > kv.free:
            needs = {r for r in batch.members if batch.needs_block(r)}
            while total > kv.free and self.running:
                victim = next(reversed(self.running))  # the latest admitted
                total -= victim in needs
                self.preempt(victim)
        kv.allocate(total)
        return batch.ids()

    def decode_tokens(self, decoding: np.ndarray) -> int:
        """Tokens the decoding requests put through the model next iteration: one each, or with speculation the
        ``k_r + 1 = min(k + 1, tokens still to produce)`` tokens each round verifies."""
        if self.lookahead_tokens == 0:
            return len(decoding)
        ids = np.asarray(decoding, dtype=np.int64)
        t = self.table
        return int(np.minimum(self.lookahead_tokens + 1, t.gather(t.output, ids) - t.gather(t.generated, ids)).sum())

    def slot_blocks(self, ids: np.ndarray) -> np.ndarray:
        """Blocks each decoding request in ``ids`` must add before its next speculative round (int64, >= 0).

        A round writes ``k_r + 1`` tokens: blocks up to ``kv_len + k_r + 1`` tokens, less those the request holds
        (its own blocks and the prefix-cache units it references). (Plain decoding counts blocks in the decode
        batch: :meth:`DecodeBatch.blocks_needed`.)
        """
        t, bs = self.table, self.kv.block_size
        tokens = t.gather(t.kv_len, ids) + np.minimum(self.lookahead_tokens + 1,
                                                      t.gather(t.output, ids) - t.gather(t.generated, ids))
        held = t.gather(t.blocks, ids)
        if self.held_units and self.kv.prefix_cache is not None:  # (held units imply a cache)
            unit = self.kv.prefix_cache.unit_blocks
            held += np.array([len(self.held_units.get(int(r), ())) * unit for r in ids], dtype=np.int64)
        return np.maximum(blocks_for(tokens, bs) - held, 0)
