"""Prefix-affinity routing: send a request where its prompt prefix is most likely cached, within a load bound.

The router remembers which prefix units (chained block keys) it has sent to each replica. A request goes to
the replica that holds the longest run of its leading units, among the replicas whose outstanding requests
exceed the least loaded one's by at most ``balance_slack``; without any match it goes to the least
outstanding replica. Like a cache-aware gateway (SGLang's router, llm-d), it balances hot prefixes instead of
piling every request that shares a system prompt onto one replica, and it never looks inside the replicas'
caches.
"""

from __future__ import annotations

from typing import Sequence

from llmsim.engine.routers.least_outstanding import least_outstanding


class PrefixAffinityRouter:
    """Longest remembered prefix among replicas within ``balance_slack`` of the lightest load."""

    def __init__(self, balance_slack: int = 8) -> None:
        self.balance_slack = balance_slack
        self._seen: list[set[int]] = []

    def __call__(self, replicas: Sequence, r: int) -> int:
        keys = replicas[0].state.prefix_keys
        if keys is None or len(keys[r]) == 0:
            return least_outstanding(replicas, r)
        if not self._seen:
            self._seen = [set() for _ in replicas]
        lightest = min(rep.outstanding for rep in replicas)
        best, best_score = 0, None
        for i, rep in enumerate(replicas):
            if rep.outstanding > lightest + self.balance_slack:
                continue
            depth = 0
            for key in keys[r]:
                if int(key) not in self._seen[i]:
                    break
                depth += 1
            score = (-depth, rep.outstanding, i)
            if best_score is None or score < best_score:
                best, best_score = i, score
        self._seen[best].update(int(k) for k in keys[r])
        return best
