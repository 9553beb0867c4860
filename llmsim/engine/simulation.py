"""One simulation run: arrivals -> router -> replicas, all state hanging off one :class:`Simulation`.

The arrival process releases requests at their trace times (URGENT priority, so they precede iteration
boundaries at the same instant); the router picks a replica; each replica is a SimPy process
(:mod:`llmsim.engine.replica`). The run ends when every request has finished or been rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from simpy.core import URGENT

from llmsim.costmodel.roofline import CostModel
from llmsim.engine.kv_cache import KVBlockPool, PrefixCache, chain_keys
from llmsim.engine.events import SimEnvironment
from llmsim.engine.records import GapRecorder, IterationLog
from llmsim.engine.replica import Replica
from llmsim.engine.requests import REJECTED, RequestColumns, RequestTable
from llmsim.engine.schedulers.base import BatchScheduler
from llmsim.engine.speculative import SpeculativeDecoder
from llmsim.engine.state import ReplicaState


@dataclass(frozen=True)
class ReplicaSetup:
    """How to build one replica: its cost model, scheduler and KV cache size (and speculative decoding, if any)."""

    cost: CostModel
    scheduler: BatchScheduler
    kv_blocks: int
    block_size: int
    max_context_tokens: int
    role: str = "mixed"  # "mixed", "prefill" or "decode"
    speculative: SpeculativeDecoder | None = None


@dataclass(frozen=True)
class RequestsIn:
    """The requests to replay (the simulation's view of a trace)."""

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_block_hashes: tuple[np.ndarray, ...] | None = None
    prefix_block_tokens: int | None = None


@dataclass
class RawResult:
    """Everything a run recorded, before metrics: request columns, iterations, gaps, per-replica facts."""

    table: RequestColumns
    iterations: IterationLog
    gaps: GapRecorder
    replicas: list[dict] = field(default_factory=list)
    prefix_lookup_tokens: int = 0
    prefix_hit_tokens: int = 0
    transfers: dict[str, np.ndarray] | None = None
    prefix_caching: bool = False


class Simulation:
    """Owns the SimPy environment, the request table, the replicas and the router of one run."""

    def __init__(self, requests: RequestsIn, setups: Sequence[ReplicaSetup], router: Callable, *,
                 fast_forward: bool = True, prefix_caching: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.env = SimEnvironment()
        self.table = RequestTable(requests.arrival_s, requests.prompt_tokens, requests.output_tokens)
        # (open rows across all replicas stay within one default block: memory as with a single replica)
        self.iterations = IterationLog(block_rows=max(1 << 12, (1 << 16) // max(1, len(setups))))
        self.gaps = GapRecorder()
        self.router = router
        self.progress = progress
        self.prefix_caching = prefix_caching and requests.prefix_block_hashes is not None
        self.prefix_keys = ([chain_keys(h) for h in requests.prefix_block_hashes]
                            if requests.prefix_block_hashes is not None else None)
        self.unit_tokens = requests.prefix_block_tokens
        self.replicas = [self._build(i, s, fast_forward) for i, s in enumerate(setups)]
        self._arrival_s: list[float] = self.table.arrival_s.tolist()  # (read once per request: a list is faster)
        self._next = 0  # the next request to arrive
        if len(self.replicas) == 1:  # every arrival comes here: spans may look ahead to the next one
            self.replicas[0].next_change_s = self.next_arrival_s
        self.env.process(self._arrivals())

    def next_arrival_s(self) -> float:
        """When the next request not yet released arrives (s; inf when none is left)."""
        return self._arrival_s[self._next] if self._next < len(self._arrival_s) else float("inf")

    def _build(self, i: int, setup: ReplicaSetup, fast_forward: bool, **hooks) -> Replica:
        cache = None
        if self.prefix_caching:
            unit = _unit_tokens(self.unit_tokens, setup.block_size)
            cache = PrefixCache(unit, setup.block_size)
        spec = setup.speculative
        state = ReplicaState(self.table, KVBlockPool(setup.kv_blocks, setup.block_size, cache), self.prefix_keys,
                             lookahead_tokens=0 if spec is None else spec.lookahead_tokens)
        return Replica(self.env, i, setup.cost, setup.scheduler, state, self.iterations, self.gaps,
                       max_context_tokens=setup.max_context_tokens, fast_forward=fast_forward, speculative=spec,
                       role=setup.role, **hooks)

    def _arrivals(self):
        arrival, n = self._arrival_s, len(self._arrival_s)
        for r in range(n):
            if arrival[r] > self.env.now:
                yield self.env.at(arrival[r], URGENT)
            self._next = r + 1
            self.dispatch(r)
            if self.progress is not None and (r + 1) % 1000 == 0:
                self.progress(r + 1, n)

    def dispatch(self, r: int) -> None:
        """Route a newly arrived request, or reject it with the reason when it can never be served."""
        i = self.router(self.replicas, r)
        reason = self.replicas[i].rejection_reason(r)
        if reason is not None:
            self.table.status[r] = REJECTED
            self.table.reject_reason[r] = reason
            self.table.replica[r] = i
            return
        self.replicas[i].submit(r)

    def run(self) -> RawResult:
        """Run to completion and return the raw records."""
        self.env.run()
        lookups = hits = 0
        for rep in self.replicas:
            cache = rep.state.kv.prefix_cache
            if cache is not None:
                lookups, hits = lookups + cache.lookup_tokens, hits + cache.hit_tokens
        return RawResult(self.table.close(), self.iterations, self.gaps, replicas=[self._replica_facts(r) for r in self.replicas],
                         prefix_lookup_tokens=lookups, prefix_hit_tokens=hits, prefix_caching=self.prefix_caching)

    @staticmethod
    def _replica_facts(rep: Replica) -> dict:
        return {"index": rep.index, "role": rep.role, "kv_blocks": rep.state.kv.total,
                "block_size": rep.state.kv.block_size, "gpus": rep.cost.parallelism.num_gpus,
                "hardware": rep.cost.gpu.name, "price_per_hour_usd": rep.cost.gpu.price_per_hour_usd,
                "preemptions": rep.state.preemption_count}


def _unit_tokens(unit_tokens: int | None, block_size: int) -> int:
    """Prefix-cache unit: the trace's hash block, rounded up to whole KV blocks."""
    unit = unit_tokens or block_size
    return -(-unit // block_size) * block_size
