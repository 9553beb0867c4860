"""A replica: one model instance (tp x pp GPUs) running iterations as a SimPy process.

Order of events at equal times: arrivals (and KV-transfer completions) are scheduled URGENT, iteration
boundaries NORMAL, so a request that arrives exactly at a boundary is seen by that boundary's scheduling;
one that arrives during an iteration waits for the next boundary. An idle replica sleeps until woken.

Fast-forward: when the scheduler returns a *stable* decode-only plan, the replica prices the next k decode
iterations at once (k = until the first request finishes or the KV cache would run out of blocks; see
``CostModel.decode_times``) and sleeps once. If a request is submitted mid-span, the span is cut at the first
boundary at or after that time, exactly where step-by-step simulation would have seen it, unless the plan is
*closed* (no submission could join before the batch changes by itself). A cut moves the replica's one wake-up
to that boundary. Where the next submission or outside change can be bounded in advance (one replica behind the
arrivals; a disaggregated decode instance), a span is priced only up to about that boundary. Both modes compute
the replica clock with the same sequence of floating-point additions, so their records are identical. The
decoding sequences are a :class:`~llmsim.engine.decode_batch.DecodeBatch` (running sums, O(1) per iteration).

Speculative decoding (:mod:`llmsim.engine.speculative`): every iteration with decoding sequences is one
round (draft steps, then one target pass verifying them alongside any prompt chunks); its duration is
``draft_s + target pass``. Rounds are simulated one at a time, never fast-forwarded, so both modes run the
same code. ITL: a round's tokens all arrive at its end; the first is one gap (from the previous token), the
others are recorded at gap 0.
"""

from __future__ import annotations

import bisect
from typing import Callable

import numpy as np
import simpy

from llmsim.costmodel.roofline import CostModel
from llmsim.costmodel.scalar import ScalarPricer
from llmsim.engine.kv_cache import block_count
from llmsim.engine.events import SimEnvironment
from llmsim.engine.records import GapRecorder, IterationLog
from llmsim.engine.requests import FINISHED, WAITING
from llmsim.engine.schedulers.base import BatchScheduler
from llmsim.engine.speculative import Round, SpeculativeDecoder
from llmsim.engine.state import IterationPlan, ReplicaState

MAX_SPAN_ITERATIONS = 4096  # longest fast-forward span priced in one call (bounds memory, not results)


class Replica:
    """One model instance: a scheduler, a KV pool and the cost model, driven by a SimPy process."""

    def __init__(self, env: SimEnvironment, index: int, cost: CostModel, scheduler: BatchScheduler,
                 state: ReplicaState, iterations: IterationLog, gaps: GapRecorder, *, max_context_tokens: int,
                 fast_forward: bool = True, on_finish: Callable[[int, int], None] | None = None,
                 on_prefilled: Callable[[int, int], bool] | None = None,
                 speculative: SpeculativeDecoder | None = None, role: str = "mixed") -> None:
        self.role = role  # "mixed", or in disaggregated serving "prefill" or "decode"
        self.env, self.index, self.cost, self.scheduler, self.state = env, index, cost, scheduler, state
        self.pricer: ScalarPricer = cost.scalar_pricer  # prices one iteration (or a decode span) in Python floats
        self.speculative = speculative  # decode by speculative rounds (None: one token per iteration)
        self.iterations, self.gaps = iterations, gaps
        self.max_context_tokens = max_context_tokens
        self.fast_forward = fast_forward
        self.on_finish = on_finish
        self.on_prefilled = on_prefilled  # returns True when the request leaves this replica (disaggregation)
        self.clock = 0.0
        self.outstanding = 0
        # When set: returns a lower bound on the time (s) of the next submission or outside change this replica
        # may see (inf: none), known in advance. Open spans are then priced up to about the boundary it falls before.
        self.next_change_s: Callable[[], float] | None = None
        self._decode_s = 0.0  # duration of the last decode iteration (s), to guess how many fit before it
        self.busy_until_s = 0.0  # end of the latest single iteration started (s)
        # True when a cluster changes this replica's batch or frees its blocks between iterations (disaggregated
        # serving): a plan's ``closed`` promise then does not hold and every notification ends a span.
        self.outside_changes = False
        self._wake: simpy.Event | None = None  # what an idle replica waits on
        self._sleep: simpy.Event | None = None  # what a replica inside an open span waits on
        self._span_last = 0  # index in the span of the boundary it then resumes at
        self._span_cap = 64
        self._span: tuple[list[float], list[int]] | None = None  # (ends, blocks taken by steps 1..j) of a span
        self.process = env.process(self._run())

    # -- what the router and the cluster see -------------------------------------------------------------
    def rejection_reason(self, r: int) -> str | None:
        """Why request ``r`` can never be served here (None if it can)."""
        t = self.state.table
        prompt, output = t.prompt[r], t.output[r]
        if prompt + output > self.max_context_tokens:
            return f"prompt + output = {prompt + output} tokens exceeds the context window of {self.max_context_tokens}"
        blocks = block_count(prompt + output, self.state.kv.block_size)
        if blocks > self.state.kv.total:
            return (f"prompt + output = {prompt + output} tokens needs {blocks} KV blocks; the replica has "
                    f"{self.state.kv.total}")
        return self.scheduler.rejection_reason(prompt, output)

    def submit(self, r: int) -> None:
        """Queue request ``r`` (already checked with :meth:`rejection_reason`) and wake the replica."""
        self.state.table.status[r] = WAITING
        self.state.table.replica[r] = self.index
        self.state.waiting.append(r)
        self.outstanding += 1
        self.notify()

    def notify(self) -> None:
        """Wake the replica if it sleeps idle; inside an open fast-forward span, end the span at the first iteration
        boundary at or after now (the replica then resumes there, once)."""
        if self._sleep is not None and self._span is not None:  # (an open span has both)
            ends = self._span[0]
            i = bisect.bisect_left(ends, self.env.now)
            if i < self._span_last:
                self._sleep = self.env.reschedule(self.process, self._sleep, ends[i])
                self._span_last = i
        elif self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def kv_free_blocks(self) -> int:
        """Free blocks as step-by-step simulation would show them now (inside a span too)."""
        return self.state.kv.total - self.kv_blocks_used()

    def kv_blocks_used(self) -> int:
        """Blocks in use as step-by-step simulation would show them now (inside a span too)."""
        if self._span is None:
            return self.state.kv.used
        ends, pending = self._span  # blocks the span's decode steps up to each iteration would have taken
        i = min(bisect.bisect_left(ends, self.env.now), len(ends) - 1)
        return self.state.kv.used + pending[i]

    # -- the process -----------------------------------------------------------------------------------
    def _run(self):
        state = self.state
        while True:
            preemptions = state.preemption_count
            plan = (self.scheduler.plan_iteration(state, self.clock) if (state.waiting or state.running)
                    else IterationPlan())
            while state.dropped:
                state.dropped.pop()
                self.outstanding -= 1
            if plan.is_empty:
                self._wake = self.env.event()
                yield self._wake
                self._wake = None
                self.clock = max(self.clock, self.env.now)
                continue
            # A plan that preempted freed blocks after its admission check: the next boundary may admit (the
            # preempted request, or one waiting behind it), so such an iteration is never the start of a span.
            if plan.stable and self.fast_forward and self.speculative is None and plan.decodes.size \
                    and not plan.chunks and state.preemption_count == preemptions:
                yield from self._decode_span(plan.decodes, plan.closed and not self.outside_changes)
            else:
                yield from self._one_iteration(plan)

    def _one_iteration(self, plan: IterationPlan):
        f, rnd = self._features(plan)
        pre_tokens, chunks, pairs, kv_tokens, decode_seqs, ctx_sum, sampled = f
        draft_s = 0.0 if rnd is None else rnd.draft_s
        start = self.clock
        end = start + (draft_s + self.pricer(pre_tokens, chunks, pairs, kv_tokens, decode_seqs, ctx_sum, sampled))
        spec_seqs, spec_tokens = (0, 0) if rnd is None else (plan.decodes.size, int(rnd.produced.sum()))
        self.iterations.add_row(self.index, start, end, pre_tokens, chunks, decode_seqs, ctx_sum, self.state.kv.used,
                                pairs, kv_tokens, sampled, draft_s, spec_seqs, spec_tokens)
        self.busy_until_s = end
        yield self.env.at(end)
        self.clock = end
        self._apply_chunks(plan.chunks, end)
        if rnd is None:
            if plan.decodes.size:
                self._apply_decodes([end])
        else:
            self._apply_round(plan.decodes, rnd.produced, end)

    def _features(self, plan: IterationPlan) -> tuple[tuple[float, ...], Round | None]:
        """The target pass's feature sums (``CostModel.time_one``'s arguments) and the speculative round, if any.

        With speculation the decoding sequences are verified as prompt chunks (see ``llmsim.engine.speculative``).
        """
        t = self.state.table
        pre_tokens = kv_tokens = pairs = 0.0  # sums of integers and half-integers: exact in any order
        completes = 0
        for r, c in plan.chunks:
            prior = t.prefilled[r]
            pre_tokens += c
            kv_tokens += prior + c
            pairs += c * (prior + (c + 1) / 2)
            completes += prior + c >= t.prefill_target[r]
        decodes, chunks = plan.decodes, float(len(plan.chunks))
        if self.speculative is None or decodes.size == 0:
            d = decodes.size  # with plain decoding, the decode batch's members
            batch = self.state.batch
            ctx = float(batch.context_tokens) if d and batch is not None else 0.0
            return (pre_tokens, chunks, pairs, kv_tokens, float(d), ctx, float(completes + d)), None
        rnd = self.speculative.plan_round(t.gather(t.kv_len, decodes), t.gather(t.generated, decodes),
                                          t.gather(t.output, decodes), decodes)
        return (pre_tokens + rnd.verify_tokens, chunks + decodes.size, pairs + rnd.verify_attn_pairs,
                kv_tokens + rnd.verify_kv_tokens, 0.0, 0.0, completes + rnd.verify_tokens), rnd

    def _apply_chunks(self, chunks: list[tuple[int, int]], end: float) -> None:
        t = self.state.table
        for r, c in chunks:
            prefilled = t.prefilled[r] + c
            t.prefilled[r] = prefilled
            t.kv_len[r] += c
            if prefilled < t.prefill_target[r]:
                continue
            self.state.prompt_complete(r)
            first = t.first_token_s[r]
            if first != first:  # NaN: no token yet
                t.first_token_s[r] = end
            else:  # the first token after a recompute continues the stream: an inter-token gap
                self.gaps.add_one(end - t.last_token_s[r])
            t.generated[r] += 1
            t.last_token_s[r] = end
            self.state.cache_prompt(r)
            if t.generated[r] >= t.output[r]:
                self._finish(r, end)
            elif self.on_prefilled is not None and self.on_prefilled(self.index, r):
                self._hand_off(r)
            else:
                self.state.start_decoding(r)

    def _apply_decodes(self, ends: list[float]) -> None:
        """Advance the decode batch by ``len(ends)`` iterations ending at ``ends`` (plain decoding)."""
        batch = self.state.batch
        assert batch is not None  # (plain decoding)
        done = batch.advance(ends, self.gaps)
        if len(done) > 1:  # finish in admission order, as the scheduler lists them
            done.sort(key=self.state.running.__getitem__)
        for r in done:
            self._finish(r, ends[-1])

    def _apply_round(self, ids: np.ndarray, produced: np.ndarray, end: float) -> None:
        """Advance decoding requests ``ids`` by one speculative round ending at ``end``, ``produced[i]`` tokens
        each. ITL: one gap per request from its previous token; the round's other tokens come at gap 0."""
        t = self.state.table
        self.gaps.add(end - np.array([t.last_token_s[r] for r in ids.tolist()]))
        extra = int(produced.sum()) - ids.size
        if extra:
            self.gaps.add(np.zeros(1), extra)
        done: list[int] = []
        for r, k in zip(ids.tolist(), produced.tolist()):
            t.kv_len[r] += k
            t.generated[r] += k
            t.last_token_s[r] = end
            if t.generated[r] >= t.output[r]:
                done.append(r)
        for r in done:
            self._finish(r, end)

    def _finish(self, r: int, end: float) -> None:
        t = self.state.table
        t.finish_s[r] = end
        t.status[r] = FINISHED
        del self.state.running[r]
        self.state.release(r)
        self.outstanding -= 1
        if self.on_finish is not None:
            self.on_finish(self.index, r)

    def _hand_off(self, r: int) -> None:
        """The request leaves this replica's batch after its prefill (disaggregated serving). Its KV blocks
        stay allocated until the cluster has sent them to a decode instance and calls ``state.release``."""
        del self.state.running[r]
        self.outstanding -= 1

    # -- fast-forward ----------------------------------------------------------------------------------
    def _decode_span(self, ids: np.ndarray, closed: bool = False):
        """Run up to k identical-batch decode iterations in one sleep (see module docstring); a ``closed`` span
        is not cut by submissions."""
        batch, kv = self.state.batch, self.state.kv
        assert batch is not None  # (plain decoding)
        b = ids.size
        k = min(batch.steps_to_first_finish(), self._span_cap)
        if not closed and self.next_change_s is not None and self._decode_s > 0:
            ahead = self.next_change_s() - self.clock  # iterations grow with the context: a small margin
            if ahead < k * self._decode_s:
                k = min(k, max(1, int(ahead / self._decode_s) + 2))
        # Step 0's blocks are reserved; step j >= 1 takes batch.blocks_needed(j) more.
        cum_need, free = [0], kv.free  # cum_need[j]: blocks steps 1..j take
        if k > 1:
            total = 0
            for j in range(1, k):
                total += batch.blocks_needed(j)
                if total > free:
                    k = j
                    break
                cum_need.append(total)
        ctx0 = batch.context_tokens
        # Python float additions in order, exactly as step-by-step simulation advances its clock.
        ends = self.pricer.decode_ends(b, ctx0, k, self.clock)
        self._span, used = (ends, cum_need), kv.used
        priced = k
        if closed:
            yield self.env.at(ends[-1])
        else:  # until the span's end, or the boundary notify() moved the wake-up to
            self._sleep, self._span_last = self.env.at(ends[-1]), k - 1
            yield self._sleep
            self._sleep, k = None, self._span_last + 1
        self._span = None
        # Adapt how far ahead the next span is priced: any length gives the same results, but pricing
        # thousands of iterations that an arrival will cut short wastes time.
        if k < priced:  # cut short
            self._span_cap = max(4, priced // 2)
        elif priced == self._span_cap:  # ran to the cap (not to a finish or a block shortage)
            self._span_cap = min(2 * self._span_cap, MAX_SPAN_ITERATIONS)
        del ends[k:], cum_need[k:]
        self._decode_s = ends[-1] - (ends[-2] if k > 1 else self.clock)
        if cum_need[-1]:  # blocks taken by steps 1..k-1 (members' own counts follow from the batch's step)
            kv.allocate(cum_need[-1])
        self.iterations.append_decodes(self.index, self.clock, ends, b, ctx0, used, cum_need)
        self.clock = ends[-1]
        self._apply_decodes(ends)
