"""Round-robin routing: replicas take turns, in index order."""

from __future__ import annotations

from typing import Sequence


class RoundRobinRouter:
    """Sends the i-th routed request to replica ``i mod N``."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self, replicas: Sequence, r: int) -> int:
        i = self._next % len(replicas)
        self._next += 1
        return i
