"""Least-KV routing: the replica whose KV cache is least used (as a fraction of its blocks)."""

from __future__ import annotations

from typing import Sequence


def least_kv(replicas: Sequence, r: int) -> int:
    """Index of the replica with the lowest KV usage; ties broken by outstanding requests, then index."""
    def load(i: int) -> tuple[float, int, int]:
        rep = replicas[i]
        return rep.kv_blocks_used() / rep.state.kv.total, rep.outstanding, i
    return min(range(len(replicas)), key=load)
