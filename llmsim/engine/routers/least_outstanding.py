"""Least-outstanding routing: the replica with the fewest unfinished requests (queued or running)."""

from __future__ import annotations

from typing import Sequence


def least_outstanding(replicas: Sequence, r: int) -> int:
    """Index of the replica with the fewest outstanding requests (lowest index on ties)."""
    outstanding = [rep.outstanding for rep in replicas]
    return outstanding.index(min(outstanding))  # index() finds the first, i.e. the lowest index on ties
