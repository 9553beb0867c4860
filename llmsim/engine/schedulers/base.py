"""The scheduler interface: one small class per policy, deciding what runs in the next iteration."""

from __future__ import annotations

from typing import Protocol

from llmsim.engine.state import IterationPlan, ReplicaState


class BatchScheduler(Protocol):
    """Decides the next iteration of one replica at an iteration boundary.

    ``plan_iteration`` may admit waiting requests (``state.admit``), preempt running ones
    (``state.preempt`` / ``state.reserve_decode_slots``) and must return the plan of the next iteration:
    which prompt chunks and which decoding requests run. It must not advance tokens or time: the replica
    applies the plan's effects when the iteration ends. ``rejection_reason`` lets a policy refuse, at
    arrival, a request it could never serve (return None to accept).
    """

    max_num_seqs: int  # the most sequences one iteration may hold

    def plan_iteration(self, state: ReplicaState, now_s: float) -> IterationPlan: ...

    def rejection_reason(self, prompt_tokens: int, output_tokens: int) -> str | None: ...
