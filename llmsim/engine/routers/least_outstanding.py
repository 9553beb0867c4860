"""Least-outstanding routing: the replica with the fewest unfinished requests (queued or running)."""

from __future__ import annotations

from typing import Sequence


def least_outstanding(replicas: Sequence, r: int) -> int:
    """Index of the replica with the fewest outstanding requests (lowest index on ties)."""
    return min(range(len(replicas)), key=lambda i: (replicas[i].outstanding, i))
