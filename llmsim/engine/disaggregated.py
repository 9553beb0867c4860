"""Disaggregated prefill/decode serving (Splitwise, DistServe): two pools of instances and the KV link.

A request is routed to a prefill instance (least outstanding), prefilled there in prefill-only iterations
(its first token comes out there), then handed to a decode instance (round-robin, so the choice does not
depend on the order of simultaneous events). The decode instance reserves KV blocks for it (requests wait
FIFO when it has no blocks or no sequence slot), the KV cache crosses the prefill instance's link (one
transfer at a time per link: a queue forms when it is busy), and the request joins the decode batch. The
prefill instance frees the request's KV when the transfer completes.

Transfer time = latency + bytes / bandwidth, bytes = cached tokens x KV bytes per token of the model. With
``stream_layers`` the layers are sent while the prefill computes, so only max(one layer's share, total -
prefill time) remains after the prefill ends.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from typing import Callable, Sequence

import numpy as np
from simpy.core import URGENT

from llmsim.engine.kv_cache import block_count
from llmsim.engine.replica import Replica
from llmsim.engine.requests import REJECTED, RUNNING
from llmsim.engine.routers.least_outstanding import least_outstanding
from llmsim.engine.simulation import RawResult, ReplicaSetup, RequestsIn, Simulation


class DisaggregatedSimulation(Simulation):
    """Prefill pool -> KV link -> decode pool (see module docstring). Replica indices: prefill first."""

    def __init__(self, requests: RequestsIn, prefill: Sequence[ReplicaSetup], decode: Sequence[ReplicaSetup], *,
                 link_bandwidth_bytes_per_s: float, link_latency_s: float, kv_bytes_per_token: float,
                 stream_layers: bool = False, fast_forward: bool = True,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self._n_prefill = len(prefill)
        self._src: dict[int, int] = {}  # request -> prefill instance it left
        self._setups = list(prefill) + list(decode)
        super().__init__(requests, self._setups, self._route, fast_forward=fast_forward, progress=progress)
        self._prefill_pool, self._decode_pool = self.replicas[: self._n_prefill], self.replicas[self._n_prefill:]
        self._smallest_decode_blocks = min(rep.state.kv.total for rep in self._decode_pool)
        self.link_free_s = [0.0 for _ in prefill]  # when each prefill instance's link finishes its queued transfers
        self.bandwidth, self.latency = link_bandwidth_bytes_per_s, link_latency_s
        self.kv_bytes_per_token = kv_bytes_per_token
        self.stream_layers = stream_layers
        self.pending: list[deque[int]] = [deque() for _ in decode]
        self.reserved = [0 for _ in decode]  # requests holding decode blocks but still in transfer
        self._next_decode = 0
        self._arriving: list[list[float]] = [[] for _ in decode]  # transfer completion times (s) per decode instance
        for d, rep in enumerate(self.decode_replicas):
            rep.next_change_s = lambda d=d: self._next_change_s(d)
        n = len(self.table)
        # Per request (s; NaN where none): waiting for the link, on the wire, and when its prefill handed it off
        self.transfer_wait_s: list[float] = [math.nan] * n
        self.transfer_s: list[float] = [math.nan] * n
        self._handed_at: list[float] = [math.nan] * n

    def _build(self, i: int, setup: ReplicaSetup, fast_forward: bool, **hooks) -> Replica:
        if setup.role == "prefill":
            hooks["on_prefilled"] = self._on_prefilled
        else:
            hooks["on_finish"] = self._on_decode_finish
        rep = super()._build(i, setup, fast_forward, **hooks)
        rep.outside_changes = True  # hand-offs join decode batches and transfers free prefill blocks
        return rep

    @property
    def prefill_replicas(self) -> list[Replica]:
        """The prefill pool."""
        return self._prefill_pool

    @property
    def decode_replicas(self) -> list[Replica]:
        """The decode pool."""
        return self._decode_pool

    def _route(self, replicas: Sequence[Replica], r: int) -> int:
        return least_outstanding(self._prefill_pool, r)

    def dispatch(self, r: int) -> None:
        """Reject what neither pool could ever hold; otherwise queue on a prefill instance."""
        need = block_count(self.table.prompt[r] + self.table.output[r], self._decode_pool[0].state.kv.block_size)
        smallest = self._smallest_decode_blocks
        if need > smallest:
            self.table.status[r] = REJECTED
            self.table.reject_reason[r] = (f"prompt + output needs {need} KV blocks; a decode instance has {smallest}")
            return
        super().dispatch(r)

    # -- hand-off and transfer -------------------------------------------------------------------------
    def _on_prefilled(self, index: int, r: int) -> bool:
        d = self._next_decode % len(self.pending)
        self._next_decode += 1
        self._handed_at[r] = self.env.now
        self.table.replica[r] = self._n_prefill + d
        self.pending[d].append(r)
        self._src[r] = index
        self._admit_pending(d)
        return True

    def _admit_pending(self, d: int) -> None:
        """Reserve decode blocks for waiting hand-offs, FIFO, and start their transfers."""
        rep = self.decode_replicas[d]
        queue = self.pending[d]
        while queue:
            r = queue[0]
            need = block_count(self.table.kv_len[r], rep.state.kv.block_size)
            slots = len(rep.state.running) + self.reserved[d]
            if need > rep.kv_free_blocks() or slots >= rep.scheduler.max_num_seqs:
                return
            queue.popleft()
            rep.state.kv.allocate(need)
            rep.notify()  # its free blocks changed: a fast-forward span must end at the next boundary
            self.reserved[d] += 1
            self._transfer(self._src.pop(r), d, r, need)

    def _transfer(self, src: int, d: int, r: int, blocks: int) -> None:
        """Queue the KV transfer of ``r`` on ``src``'s link (FIFO, one at a time): it starts when the link is
        free, and its completion (URGENT, before iteration boundaries at the same instant) is one event."""
        ready = self.env.now
        start = max(ready, self.link_free_s[src])
        end = self.link_free_s[src] = start + self._transfer_duration(src, r)
        self.transfer_wait_s[r] = start - self._handed_at[r]

        heapq.heappush(self._arriving[d], end)

        def done(_event) -> None:
            heapq.heappop(self._arriving[d])
            self.transfer_s[r] = end - ready
            self.prefill_replicas[src].state.release(r)
            self.prefill_replicas[src].notify()
            self._join_decode(d, r, blocks)
        self.env.at(end, URGENT).callbacks.append(done)

    def _transfer_duration(self, src: int, r: int) -> float:
        nbytes = self.table.kv_len[r] * self.kv_bytes_per_token
        wire = nbytes / self.bandwidth
        if self.stream_layers:
            layers = self.prefill_replicas[src].cost.model.num_layers
            prefill_s = self._handed_at[r] - self.table.first_scheduled_s[r]
            wire = max(wire / layers, wire - prefill_s)
        return self.latency + wire

    def _next_change_s(self, d: int) -> float:
        """A lower bound on when decode instance ``d`` is next changed from outside (s): a transfer to it
        completes, or a prefill instance ends an iteration (a hand-off reserves blocks); an idle prefill instance
        starts one no earlier than the next arrival."""
        now, arriving = self.env.now, self._arriving[d]
        soonest = arriving[0] if arriving else float("inf")
        upcoming = self.next_arrival_s()
        for rep in self.prefill_replicas:
            soonest = min(soonest, rep.busy_until_s if rep.busy_until_s > now else upcoming)
        return soonest

    def _join_decode(self, d: int, r: int, blocks: int) -> None:
        rep, t = self.decode_replicas[d], self.table
        self.reserved[d] -= 1
        t.blocks[r] = blocks
        t.status[r] = RUNNING
        rep.state.add_running(r)
        rep.state.start_decoding(r)
        rep.outstanding += 1
        rep.notify()

    def _on_decode_finish(self, index: int, r: int) -> None:
        self._admit_pending(index - self._n_prefill)

    def run(self) -> RawResult:
        """Run, then attach the transfer statistics to the raw result."""
        raw = super().run()
        raw.transfers = {"transfer_wait_s": np.array(self.transfer_wait_s, dtype=np.float64),
                         "transfer_s": np.array(self.transfer_s, dtype=np.float64)}
        return raw
