"""Least-outstanding routing: the replica with the fewest unfinished requests (queued or running)."""

from __future__ import annotations

from typing import Sequence

from llmsim.engine.replica import Replica


def least_outstanding(replicas: Sequence[Replica], r: int) -> int:
    """Index of the replica with the fewest outstanding requests (lowest index on ties)."""
    best, fewest = 0, replicas[0].outstanding
    for i, rep in enumerate(replicas):  # (typed: compiled, this reads the counter directly)
        if rep.outstanding < fewest:
            best, fewest = i, rep.outstanding
    return best
