"""Batch schedulers (one policy per module) and the registry used by scenario files and the command line."""

from llmsim.engine.schedulers.base import BatchScheduler
from llmsim.engine.schedulers.chunked import ChunkedScheduler
from llmsim.engine.schedulers.continuous import ContinuousScheduler
from llmsim.engine.schedulers.static import StaticScheduler

#: Policy name (``scheduler.policy``) -> scheduler class. ``disaggregated`` is a cluster layout (see
#: ``llmsim.engine.disaggregated``) whose instances use ``ContinuousScheduler``-style admission.
SCHEDULERS = {"static": StaticScheduler, "continuous": ContinuousScheduler, "chunked": ChunkedScheduler}

__all__ = ["SCHEDULERS", "BatchScheduler", "ChunkedScheduler", "ContinuousScheduler", "StaticScheduler"]
