"""The cost model for one iteration in pure Python floats: the simulator prices most iterations one at a time,
where numpy's per-call overhead dominates. Every operation mirrors :meth:`CostModel.price` in the same order
(sums of products term by term, the same interpolation and :func:`plog2`), so the results are bit-identical;
``tests/costmodel/test_scalar.py`` checks that on random batches.
"""

from __future__ import annotations

from math import frexp
from operator import itemgetter
from typing import Callable

import numpy as np

from llmsim.costmodel.batch import BatchFeatures
from llmsim.costmodel.efficiency import Curve, Table2D, plog2
from llmsim.costmodel.interp import bisect_right, curve_at, plog2_scalar, rows_at_y
from llmsim.costmodel.operators import FEATURES, _touched_experts_scalar

_NEW_TOKENS = FEATURES.index("new_tokens")
_CTX = FEATURES.index("decode_ctx_tokens")
VECTOR_SPAN_ITERATIONS = 16  # decode spans at least this long are priced with numpy (its call overhead pays off)
WARM_TOKENS = 8192  # token counts whose token-only operator times are priced up front (one vectorised call)
MEMO_ENTRIES = 1 << 16  # entries per memo (a few MB); a full memo starts over (a trace repeats its token counts)


class ScalarPricer:
    """Per-operator coefficients and curve handles of one cost model, as Python lists."""

    def __init__(self, cm) -> None:
        table, plan = cm._table, cm._plan
        self.cm, self.layers = cm, cm.model.num_layers
        self.flops_terms = _rows(plan.flops_terms, len(table.operators))
        self.bytes_terms = _rows(plan.bytes_terms, len(table.operators))
        self.tokens_terms = _rows(plan.tokens_terms, len(plan.gemms))
        self.active = table.active_index.tolist()
        self.kernels = table.kernels.tolist()
        self.peaks = plan.peaks.tolist()
        self.kinds = self._kinds(table, plan)
        self.scales = dict(plan.scales)
        self.bw = cm.gpu.memory_bandwidth_bytes_per_s
        link = cm.gpu.intra_node_link
        self.link_bw, self.link_latency = link.bandwidth_bytes_per_s, link.latency_s
        self.wire = 2.0 * (cm.parallelism.tp - 1) / cm.parallelism.tp
        self.launch = cm.calibration.launch_s
        # Memos (exact: a function's value for the same inputs): whole iterations, and the times of each group
        # of operators that depend on the same features (most on the token count alone: prompt chunks of a trace
        # repeat their token counts), one lookup per group. Attention operators, whose inputs rarely repeat, are
        # computed each time.
        self._memo: dict[tuple[float, ...], float] = {}
        self._attention = [self._attention_time(i) for i in range(len(self.kinds))]
        self._groups = self._operator_groups()
        # In operator order: (group, position in it), or (-1, i) for attention operator i.
        self._order = [next(((g, group[1].index(i)) for g, group in enumerate(self._groups) if i in group[1]), (-1, i))
                       for i in range(len(self.kinds))]
        self._decode_plans: dict[float, tuple] = {}
        self._warm = False

    @staticmethod
    def _kinds(table, plan) -> list[tuple]:
        """For each operator: how its efficiency is evaluated (mirrors ``_EfficiencyPlan.efficiency``)."""
        cal = plan.cal
        kinds: list[tuple] = [("one",)] * len(table.operators)
        for j, (i, curve, by_tokens) in enumerate(plan.gemms):
            kinds[i] = ("gemm", curve, by_tokens, j)
        for i in plan.elementwise_rows.tolist():
            kinds[i] = ("per_kernel", cal.curve("elementwise"))
        for i in plan.collective_rows.tolist():
            kinds[i] = ("collective", cal.curve("collective"))
        kinds[plan.decode_row] = ("decode", cal.curve("attn_decode"))
        for i in plan.prefill_rows.tolist():
            kinds[i] = ("prefill", cal.curve("attn_prefill"))
        return kinds

    def __call__(self, pt: float, pc: float, pairs: float, kvt: float, d: float, ctx: float, s: float) -> float:
        key = (pt, pc, pairs, kvt, d, ctx, s)
        total = self._memo.get(key)
        if total is not None:
            return total
        if not self._warm:
            self._warm_token_memos()
        x = self._features(pt, pc, pairs, kvt, d, ctx, s)
        tokens = None
        eager = self._eager(pt, d)
        times = []
        for inputs, ops, memo in self._groups:
            group_key = (inputs(x), eager)
            group = memo.get(group_key)
            if group is None:
                if tokens is None and any(self.kinds[i][0] == "gemm" for i in ops):  # (only GEMMs read them)
                    tokens = [_combine(terms, x) for terms in self.tokens_terms]
                group = _remember(memo, group_key, tuple(self._op_time(i, x, tokens, eager) for i in ops))
            times.append(group)
        gpu, attention = 0.0, self._attention
        for g, j in self._order:  # operator by operator, in order
            gpu = gpu + (times[g][j] if g >= 0 else attention[j](x, eager))
        return _remember(self._memo, key, self._tail(gpu, x, pt, pc, d))

    def _operator_groups(self) -> list[tuple]:
        """The non-attention operators grouped by the features their times depend on (the constant feature
        ``one`` aside): ``(features getter, operator indices, memo)`` per group."""
        by_inputs: dict[tuple[int, ...], list[int]] = {}
        for i in range(len(self.kinds)):
            if self._attention[i] is None:
                by_inputs.setdefault(tuple(j for j in self._op_inputs(i) if j != 0), []).append(i)
        return [(itemgetter(*inputs) if inputs else (lambda x: None), ops, {}) for inputs, ops in by_inputs.items()]

    def _attention_time(self, i: int):
        """For an attention operator (decode or prefill kind): ``_op_time(i, x, None, eager)`` as one closure
        over the operator's constants (the same operations in the same order); None for other kinds."""
        kind = self.kinds[i]
        if kind[0] not in ("decode", "prefill"):
            return None
        flops_terms, bytes_terms, active_at, kernels_i = self.flops_terms[i], self.bytes_terms[i], self.active[i], \
            self.kernels[i]
        curve, layers, scale, peak, bw, launch = kind[1], self.layers, self.scales.get(i), self.peaks[i], self.bw, \
            self.launch
        eager_launch, prefill = self.cm.engine.eager.launch_s, kind[0] == "prefill"
        table = curve if not prefill and isinstance(curve, Table2D) else None
        seqs = FEATURES.index("decode_seqs")

        def attention_time(x: list[float], eager: bool) -> float:
            active = x[active_at] > 0
            kernels = kernels_i * active
            flops, nbytes = _combine(flops_terms, x), _combine(bytes_terms, x)
            if prefill:
                m, e = frexp(max(flops / layers, 1.0))  # _log2(flops / layers)
                eff = _at(curve, (e - 1) + (2.0 * m - 1.0))
            elif table is not None:
                d = x[seqs]
                eff = _table_at(table, _log2(d), _log2(x[_CTX] / max(d, 1.0)))
            else:
                eff = _at(curve, _log2(nbytes))
            if scale is not None:
                eff = eff / scale
            time = max(flops / peak, nbytes / bw) / eff + kernels * launch
            time = time if active else 0.0
            if eager:
                time = max(time, kernels * eager_launch)
            return time
        return attention_time

    def _warm_token_memos(self) -> None:
        """Fill the memos of the operator groups whose times depend on the token count alone (GEMMs, norms,
        elementwise) for 1 .. :data:`WARM_TOKENS` tokens, from one vectorised pricing (bit-identical per
        operator). Only with a graphed engine: an eager one adds a per-iteration condition the vector path
        decides itself."""
        self._warm = True
        if self.cm.engine.eager.launch_s > 0:
            return
        token_features = {_NEW_TOKENS, FEATURES.index("touched")}
        groups = [group for group in self._groups if group[1] and set(self._op_inputs(group[1][0])) - {0} <= token_features]
        if not groups:
            return
        n = np.arange(1, WARM_TOKENS + 1, dtype=np.float64)
        cost = self.cm.price(BatchFeatures.from_arrays(prefill_tokens=n, prefill_chunks=1.0, sampled=1.0))
        seconds = [cost.ops[i].time_s.tolist() for i in range(len(self.kinds))]
        for j, tokens in enumerate(n.tolist()):
            x = self._features(tokens, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
            for inputs, ops, memo in groups:
                memo[(inputs(x), False)] = tuple(seconds[i][j] for i in ops)

    def _op_inputs(self, i: int) -> list[int]:
        """The features operator ``i``'s time depends on (its FLOPs, bytes, activity and efficiency variable)."""
        used = {j for j, c in self.flops_terms[i] + self.bytes_terms[i] if c} | {self.active[i]}
        kind = self.kinds[i]
        if kind[0] == "gemm" and kind[2]:  # efficiency over the GEMM's token count
            used |= {j for j, c in self.tokens_terms[kind[3]] if c}
        if kind[0] == "decode":
            used |= {FEATURES.index("decode_seqs"), _CTX}
        return sorted(used)

    def decode_times(self, d: float, ctx: list[float]) -> list[float]:
        """Seconds of decode-only iterations of ``d`` sequences with ``ctx[j]`` cached tokens in total.

        Equal bit for bit to ``self(0, 0, 0, 0, d, c, d)`` for each ``c``: for a fixed batch only attention
        depends on the context, so everything else (operator times, partial sums, the curves' batch-size
        bracket) is computed once per batch size and the same operations run in the same order.
        """
        prefix, steps, tail, attention, attention_array, after = self._decode_plan_for(d)
        if attention_array is not None and len(ctx) >= VECTOR_SPAN_ITERATIONS:
            gpu_s = prefix + attention_array(np.asarray(ctx, dtype=np.float64))
            for v in after:
                gpu_s = gpu_s + v
            return gpu_s.tolist()
        if len(ctx) >= VECTOR_SPAN_ITERATIONS:  # an unusual operator mix: the full vectorised pricing
            contexts = np.asarray(ctx, dtype=np.float64)
            return self.cm.time_s(BatchFeatures.decode_only(np.full(contexts.size, d), contexts)).tolist()
        out: list[float] = []
        if attention is not None:  # the usual case: one operator depends on the context
            head: float = prefix
            once: Callable[[float], float] = attention
            constants: list[float] = after
            for c in ctx:
                gpu = head + once(c)
                for v in constants:
                    gpu = gpu + v
                out.append(gpu)
            return out
        for c in ctx:
            gpu = prefix
            for step in steps:
                gpu = gpu + (step if step.__class__ is float else step(c))
            for term in tail:
                gpu = gpu + term
            out.append(gpu)
        return out

    def decode_ends(self, d: int, ctx0: int, k: int, start_s: float) -> list[float]:
        """End times (s) of ``k`` consecutive decode-only iterations of ``d`` sequences, the first starting at
        ``start_s``, iteration ``j`` holding ``ctx0 + d * j`` cached tokens: the running sum of :meth:`decode_times`,
        added in the same order (bit-identical), without building the contexts and times as lists first."""
        plan = self._decode_plan_for(float(d))
        attention: Callable[[float], float] | None = plan[3]
        ends: list[float] = []
        clock = start_s
        if attention is not None and k < VECTOR_SPAN_ITERATIONS:  # decode_times' usual short-span path
            head: float = plan[0]
            constants: list[float] = plan[5]
            for j in range(k):
                gpu = head + attention(float(ctx0 + d * j))
                for v in constants:
                    gpu = gpu + v
                clock = clock + gpu
                ends.append(clock)
            return ends
        for seconds in self.decode_times(float(d), [float(ctx0 + d * j) for j in range(k)]):
            clock = clock + seconds
            ends.append(clock)
        return ends

    def decode_attention_seconds(self, d: float, ctx: np.ndarray) -> tuple[int, np.ndarray] | None:
        """(index, seconds per iteration) of the one operator of decode-only iterations of ``d`` sequences that
        depends on the context ``ctx`` (tokens, one per iteration); None when not exactly one does."""
        attention_array = self._decode_plan_for(d)[4]
        if attention_array is None:
            return None
        return next(i for i in range(len(self.kinds)) if _CTX in self._op_inputs(i)), attention_array(ctx)

    def _decode_plan_for(self, d: float) -> tuple:
        """:meth:`_decode_plan` of ``d`` sequences, remembered."""
        plan = self._decode_plans.get(d)
        return plan if plan is not None else _remember(self._decode_plans, d, self._decode_plan(d))

    def _decode_plan(self, d: float) -> tuple:
        """How decode-only iterations of ``d`` sequences are priced: (sum of the operators before the first
        context-dependent one, the remaining operators as constant times or functions of the context, the tail
        terms, and when exactly one operator depends on the context: its function for one context and for an
        array of contexts (else None), and the constants added after it)."""
        x = self._features(0.0, 0.0, 0.0, 0.0, d, 0.0, d)
        tokens = [_combine(terms, x) for terms in self.tokens_terms]
        if any(j == _CTX and c for terms in self.tokens_terms for j, c in terms):
            raise AssertionError("GEMM token counts must not depend on the decode context")
        eager = self._eager(0.0, d)
        prefix, steps, ctx_ops = 0.0, [], []
        for i in range(len(self.kinds)):
            # (mixed_decode_ctx is zero without prompt tokens, whatever the context)
            if _CTX in self._op_inputs(i):
                ctx_ops.append(self._ctx_op(i, x, tokens, eager))
                steps.append(ctx_ops[-1][0])
            elif steps:
                steps.append(self._op_time(i, x, tokens, eager))
            else:
                prefix = prefix + self._op_time(i, x, tokens, eager)
        tail = self._tail_terms(x, 0.0, 0.0, d)
        if len(ctx_ops) == 1:
            return prefix, steps, tail, *ctx_ops[0], steps[1:] + tail
        return prefix, steps, tail, None, None, None

    def _ctx_op(self, i: int, x: list[float], tokens: list[float], eager: bool):
        """Operator ``i``'s time as a function of the decode context (tokens), the rest of ``x`` fixed: for one
        context (float) and, where the operator allows it, for an array of contexts (else None)."""
        kind = self.kinds[i]
        table = kind[1] if kind[0] == "decode" and isinstance(kind[1], Table2D) else None
        if table is None or self.active[i] == _CTX:
            def generic(c: float) -> float:
                x[_CTX] = c
                return self._op_time(i, x, tokens, eager)
            return generic, None
        flops_at, bytes_at = _partial(self.flops_terms[i], x), _partial(self.bytes_terms[i], x)
        active = x[self.active[i]] > 0
        kernels = self.kernels[i] * active
        d = x[FEATURES.index("decode_seqs")]
        log2_d, d_floor = _log2(d), max(d, 1.0)
        scale = self.scales.get(i)
        peak, bw, launch = self.peaks[i], self.bw, kernels * self.launch
        eager_floor = kernels * self.cm.engine.eager.launch_s

        def decode_attention_array(c: np.ndarray) -> np.ndarray:  # the same, element by element
            flops, nbytes = flops_at(c), bytes_at(c)
            eff = table(log2_d, plog2(np.maximum(c / d_floor, 1.0)))
            if scale is not None:
                eff = eff / scale
            time = np.maximum(flops / peak, nbytes / bw) / eff + launch
            time = time if active else np.zeros_like(time)
            return np.maximum(time, eager_floor) if eager else time

        flops_affine, bytes_affine = _affine(self.flops_terms[i], x), _affine(self.bytes_terms[i], x)
        ys, lower, upper, wx = table.rows_at(log2_d)
        if active and not eager and flops_affine is not None and bytes_affine is not None and len(ys) > 1:
            # The usual case, every call of the closure below inlined (one closure call per decode iteration):
            # _partial's affine terms, _log2, and Table2D.at with bracket_scalar, operation for operation.
            (flops_head, flops_per_c), (bytes_head, bytes_per_c) = flops_affine, bytes_affine
            y_first, y_last, i_last, one_minus_wx = ys[0], ys[-1], len(ys) - 2, 1 - wx

            def decode_attention(c: float) -> float:
                m, e = frexp(max(c / d_floor, 1.0))
                y = min(max((e - 1) + (2.0 * m - 1.0), y_first), y_last)
                iy = min(max(bisect_right(ys, y) - 1, 0), i_last)
                wy = (y - ys[iy]) / (ys[iy + 1] - ys[iy])
                top = lower[iy] * (1 - wy) + lower[iy + 1] * wy
                bottom = upper[iy] * (1 - wy) + upper[iy + 1] * wy
                eff = top * one_minus_wx + bottom * wx
                if scale is not None:
                    eff = eff / scale
                return max((flops_head + flops_per_c * c) / peak, (bytes_head + bytes_per_c * c) / bw) / eff + launch
            return decode_attention, decode_attention_array

        def decode_attention_any(c: float) -> float:  # _op_time for the decode kind, Table2D efficiency
            flops, nbytes = flops_at(c), bytes_at(c)
            eff = _table_at(table, log2_d, _log2(c / d_floor))
            if scale is not None:
                eff = eff / scale
            time = max(flops / peak, nbytes / bw) / eff + launch
            time = time if active else 0.0
            return max(time, eager_floor) if eager else time

        return decode_attention_any, decode_attention_array

    def _graphed(self, pt: float, d: float) -> bool:
        """True when the iteration is replayed from a CUDA graph (decode-only, batch within the captured sizes)."""
        return pt == 0 and d <= self.cm.engine.graph_max_seqs

    def _eager(self, pt: float, d: float) -> bool:
        """True when this iteration's operators are launched one by one and the engine prices such launches."""
        return self.cm.engine.eager.launch_s > 0 and not self._graphed(pt, d)

    def _op_time(self, i: int, x: list[float], tokens: list[float] | None, eager: bool) -> float:
        """Seconds of operator ``i`` (zero when inactive); ``tokens``: the GEMMs' token counts (None when no GEMM)."""
        kind = self.kinds[i]
        active = x[self.active[i]] > 0
        kernels = self.kernels[i] * active
        flops, nbytes = _combine(self.flops_terms[i], x), _combine(self.bytes_terms[i], x)
        eff = self._efficiency(kind, flops, nbytes, kernels, x, tokens)
        if i in self.scales:
            eff = eff / self.scales[i]
        if kind[0] == "collective":
            time = self.wire * nbytes / (self.link_bw * eff) + kernels * self.link_latency
        else:
            time = max(flops / self.peaks[i], nbytes / self.bw) / eff + kernels * self.launch
        time = time if active else 0.0
        if eager:
            time = max(time, kernels * self.cm.engine.eager.launch_s)
        return time

    def _features(self, pt, pc, pairs, kvt, d, ctx, s) -> list[float]:
        new = pt + d
        mixed = ctx + d if pt > 0 else 0.0
        return [1.0, pt, pc, pairs, kvt, d, ctx, s, new, _touched_experts_scalar(self.cm.model, new), mixed]

    def _efficiency(self, kind, flops, nbytes, kernels, x, tokens) -> float:
        tag = kind[0]
        if tag == "gemm":
            _, curve, by_tokens, j = kind
            var = tokens[j] if by_tokens else flops / max(nbytes, 1.0)
            return _at(curve, _log2(var))
        if tag in ("per_kernel", "collective"):
            return _at(kind[1], _log2(nbytes / max(kernels, 1.0)))
        if tag == "decode":
            table, d = kind[1], x[FEATURES.index("decode_seqs")]
            if isinstance(table, Table2D):
                ctx_mean = x[FEATURES.index("decode_ctx_tokens")] / max(d, 1.0)
                return _table_at(table, _log2(d), _log2(ctx_mean))
            return _at(table, _log2(nbytes))
        if tag == "prefill":
            return _at(kind[1], _log2(flops / self.layers))
        return 1.0

    def _tail(self, gpu: float, x: list[float], pt: float, pc: float, d: float) -> float:
        for term in self._tail_terms(x, pt, pc, d):
            gpu = gpu + term
        return gpu

    def _tail_terms(self, x: list[float], pt: float, pc: float, d: float) -> list[float]:
        """What is added to the operators' GPU time, in order: kernels outside the operator table, pipeline
        sends, host overhead (mirrors the end of ``CostModel.price``)."""
        cm, cal, layers = self.cm, self.cm.calibration, self.layers
        new = x[_NEW_TOKENS]
        terms = [(cal.per_layer_s * layers + cal.per_token_layer_s * layers * new) * (new > 0)]
        if cm.parallelism.pp > 1:
            sends = new * cm.model.hidden_size * 2.0
            terms.append((cm.parallelism.pp - 1) * (self.link_latency + sends / self.link_bw) * (new > 0))
        engine = cm.engine
        seqs = d + pc
        host_terms = engine.graph if self._graphed(pt, d) else engine.eager
        host = (host_terms.fixed_s + host_terms.per_layer_s * layers + host_terms.per_seq_s * seqs
                + host_terms.per_token_s * new)
        terms.append(host if new > 0 else 0.0)
        return terms


def _rows(terms: list, n_rows: int) -> list[list[tuple[int, float]]]:
    """Per row, its (feature index, coefficient) pairs in the vector path's term order.

    Zero coefficients are left out when no coefficient is negative: every feature is >= 0, so each product is
    +0.0 or positive, the partial sums are never -0.0, and adding a +0.0 product changes no bit.
    """
    rows = [[(j, float(column[i, 0])) for j, column in terms] for i in range(n_rows)]
    if all(c >= 0 for row in rows for _, c in row):
        rows = [[(j, c) for j, c in row if c] or [(0, 0.0)] for row in rows]
    return rows


def _combine(terms: list[tuple[int, float]], x: list[float]) -> float:
    """Mirror of the vector ``_combine``: first product, then add the others in order (zeros included)."""
    j, c = terms[0]
    out = c * x[j]
    for j, c in terms[1:]:
        out = out + c * x[j]
    return out


def _affine(terms: list[tuple[int, float]], x: list[float]) -> tuple[float, float] | None:
    """``(head, coefficient)`` such that ``_combine(terms, x)`` is ``head + coefficient * c`` bit for bit as a function
    of the decode context ``c = x[_CTX] >= 0``, the other features fixed; None when it has another shape.

    The usual shape: constant terms, the context's term, then terms that are zero here. The context's term
    (coefficient >= 0) is never -0.0, so neither is the sum up to it, and adding zeros after it changes no bit.
    """
    n = next((n for n, (j, _) in enumerate(terms) if j == _CTX), 0)
    coefficient = terms[n][1] if terms else -1.0
    if not n or coefficient < 0 or any(j == _CTX or c * x[j] != 0 for j, c in terms[n + 1:]):
        return None
    return _combine(terms[:n], x), coefficient


def _partial(terms: list[tuple[int, float]], x: list[float]):
    """``_combine(terms, x)`` as a function of the decode context ``x[_CTX]``, the other features fixed: the
    terms before the first context term are summed once, the others added in the same order."""
    n = next((n for n, (j, _) in enumerate(terms) if j == _CTX), len(terms))
    if n == len(terms):
        value = _combine(terms, x)
        return lambda c: value
    affine = _affine(terms, x)
    if affine is not None:
        head, coefficient = affine
        return lambda c: head + coefficient * c
    first = _combine(terms[:n], x) if n else None
    rest = [(j == _CTX, c if j == _CTX else c * x[j]) for j, c in terms[n:]]

    def combine(c: float) -> float:
        out = first
        for on_ctx, v in rest:
            term = v * c if on_ctx else v
            out = term if out is None else out + term
        assert out is not None  # (rest holds at least the context's term)
        return out
    return combine


def _remember(memo: dict, key, value):
    """Store ``value`` under ``key`` and return it; a memo holding :data:`MEMO_ENTRIES` entries starts over."""
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[key] = value
    return value


def _log2(v: float) -> float:
    return plog2_scalar(max(float(v), 1.0))


def _at(curve, x: float) -> float:
    if curve is None:
        return 1.0
    if isinstance(curve, Table2D):  # a 2-D table used with one variable: its first column
        return Curve(curve.x_knots, curve.eff[:, 0]).at(x)
    knots, eff = curve._points
    return curve_at(knots, eff, x)


def _table_at(table: Table2D, x: float, y: float) -> float:
    """``Table2D.at`` without its interpreted frame (its rows at ``x`` are memoized by the table)."""
    ys, lower, upper, wx = table.rows_at(x)
    return rows_at_y(ys, lower, upper, wx, y)
