"""Chunked prefill (Sarathi-Serve; vLLM's chunked-prefill scheduler): decodes and prompt chunks share a token budget."""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.engine.state import IterationPlan, ReplicaState


@dataclass(frozen=True)
class ChunkedScheduler:
    """Each iteration has a budget of ``chunk_size`` tokens: first every running decode (one token each, or the
    k + 1 tokens a speculative round verifies), then the requests part-way through their prompts in admission
    order, then new requests FCFS while a slot (``max_num_seqs``) and KV blocks for the whole prompt are free.
    Each prompt takes min(remaining prompt, remaining budget) tokens. Decodes and chunks are priced as one batch."""

    max_num_seqs: int = 256
    chunk_size: int = 512

    def rejection_reason(self, prompt_tokens: int, output_tokens: int) -> str | None:
        """Any prompt can be chunked."""
        return None

    def plan_iteration(self, state: ReplicaState, now_s: float) -> IterationPlan:
        """Decodes first, then partial prompts, then new admissions, within the token budget."""
        decodes = state.reserve_decode_slots(state.decoding())
        budget = self.chunk_size - state.decode_tokens(decodes)
        chunks: list[tuple[int, int]] = []
        for r in state.partial_prefills():
            if budget <= 0:
                break
            take = min(state.table.remaining_prefill(r), budget)
            chunks.append((r, take))
            budget -= take
        while budget > 0 and state.waiting and len(state.running) < self.max_num_seqs:
            r = state.waiting[0]
            if not state.can_admit(r):
                break
            state.waiting.popleft()
            take = min(state.admit(r, now_s), budget)
            chunks.append((r, take))
            budget -= take
        # Decode-only with requests waiting: the head is blocked by the sequence limit, the KV cache or a budget
        # the decodes fill, none of which eases before a request finishes (see ContinuousScheduler).
        return IterationPlan(chunks=chunks, decodes=decodes, stable=not chunks, closed=not chunks and bool(state.waiting))
