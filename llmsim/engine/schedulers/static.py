"""Static batching: a batch is formed only when the replica is idle and runs until its last request finishes."""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.engine.state import IterationPlan, ReplicaState


@dataclass(frozen=True)
class StaticScheduler:
    """When idle, take up to ``max_num_seqs`` waiting requests (FCFS, while their prompts fit in the KV
    cache), prefill them together in one iteration, then decode the batch until its last request finishes.
    Nobody joins a running batch; a finished request leaves (and frees its KV) at its own finish time."""

    max_num_seqs: int = 256

    def rejection_reason(self, prompt_tokens: int, output_tokens: int) -> str | None:
        """Static batching takes any prompt that fits in memory (checked by the replica)."""
        return None

    def plan_iteration(self, state: ReplicaState, now_s: float) -> IterationPlan:
        """Admit a new batch when idle, else decode the current batch."""
        if not state.running:
            chunks: list[tuple[int, int]] = []
            while state.waiting and len(chunks) < self.max_num_seqs and state.can_admit(state.waiting[0]):
                r = state.waiting.popleft()
                chunks.append((r, state.admit(r, now_s)))
            return IterationPlan(chunks=chunks)
        decodes = state.reserve_decode_slots(state.decoding())
        return IterationPlan(decodes=decodes, stable=True, closed=True)
