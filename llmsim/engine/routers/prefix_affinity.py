"""Prefix-affinity routing: send a request where its prompt prefix is most likely cached.

The router remembers which replica it last sent each prefix unit to (the first unit's chained key
identifies a conversation or a system prompt). A request goes to the replica that holds the longest run of
its leading units; without any match it goes to the least-outstanding replica. It never looks inside the
replicas' caches, like a gateway that hashes prompts (SGLang router, llm-d).
"""

from __future__ import annotations

from typing import Sequence

from llmsim.engine.routers.least_outstanding import least_outstanding


class PrefixAffinityRouter:
    """Longest remembered prefix wins; otherwise least outstanding. Needs prefix keys on the replicas."""

    def __init__(self) -> None:
        self._owner: dict[int, int] = {}

    def __call__(self, replicas: Sequence, r: int) -> int:
        keys = replicas[0].state.prefix_keys
        if keys is None or len(keys[r]) == 0:
            return least_outstanding(replicas, r)
        best, best_len = None, 0
        for depth, key in enumerate(keys[r], start=1):
            owner = self._owner.get(int(key))
            if owner is None:
                break
            if best is None or owner == best:
                best, best_len = owner, depth
            else:
                break
        choice = best if best is not None else least_outstanding(replicas, r)
        for key in keys[r]:
            self._owner[int(key)] = choice
        return choice
