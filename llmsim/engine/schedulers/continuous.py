"""Continuous batching, prefill-first (vLLM V0's default scheduler)."""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.engine.state import IterationPlan, ReplicaState


@dataclass(frozen=True)
class ContinuousScheduler:
    """At each boundary admit waiting requests FCFS while a sequence slot is free (``max_num_seqs``), the
    summed prefill tokens of this iteration's admissions stay within ``max_batched_tokens`` and the KV cache
    has blocks for the whole prompt. If any request was admitted, the iteration prefills exactly those
    prompts; otherwise it is one decode step of every running request."""

    max_num_seqs: int = 256
    max_batched_tokens: int = 8192

    def rejection_reason(self, prompt_tokens: int, output_tokens: int) -> str | None:
        """A prompt longer than the token budget can never be prefilled (vLLM ignores it likewise)."""
        if prompt_tokens > self.max_batched_tokens:
            return f"prompt of {prompt_tokens} tokens exceeds max_batched_tokens={self.max_batched_tokens}"
        return None

    def plan_iteration(self, state: ReplicaState, now_s: float) -> IterationPlan:
        """Prefill the admissions if any, else decode everyone running."""
        chunks: list[tuple[int, int]] = []
        budget = self.max_batched_tokens
        while state.waiting and len(state.running) < self.max_num_seqs:
            r = state.waiting[0]
            tokens, blocks = state.admission_cost(r)
            if tokens > self.max_batched_tokens:  # a recompute that outgrew the budget: vLLM V0 ignores it too
                state.reject(r, f"recompute prefill of {tokens} tokens after preemption exceeds "
                                f"max_batched_tokens={self.max_batched_tokens}")
                continue
            if tokens > budget or blocks > state.kv.free:
                break
            state.waiting.popleft()
            chunks.append((r, state.admit(r, now_s)))
            budget -= tokens
        if chunks:
            return IterationPlan(chunks=chunks)
        decodes = state.reserve_decode_slots(state.decoding())
        # A request still waiting here is blocked by the sequence limit or the KV cache, neither of which eases
        # before a request finishes (which ends the span): arrivals queue behind it, the span is closed.
        return IterationPlan(decodes=decodes, stable=True, closed=bool(state.waiting))
