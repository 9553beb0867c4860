"""Routers: which replica a new request goes to. One small unit per policy; ``ROUTERS`` registers them.

A router is called at the request's arrival time with the replicas' current state and returns an index.
Ties go to the lowest index, so routing is deterministic.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from llmsim.engine.routers.least_kv import least_kv
from llmsim.engine.routers.least_outstanding import least_outstanding
from llmsim.engine.routers.prefix_affinity import PrefixAffinityRouter
from llmsim.engine.routers.round_robin import RoundRobinRouter


class Router(Protocol):
    """Chooses a replica for request ``r``."""

    def __call__(self, replicas: Sequence, r: int) -> int: ...


#: ``router:`` scenario key -> factory taking no arguments and returning a router.
ROUTERS = {
    "round_robin": RoundRobinRouter,
    "least_outstanding": lambda: least_outstanding,
    "least_kv": lambda: least_kv,
    "prefix_affinity": PrefixAffinityRouter,
}

__all__ = ["ROUTERS", "Router", "PrefixAffinityRouter", "RoundRobinRouter", "least_kv", "least_outstanding"]
