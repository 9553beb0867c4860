"""The cost model for one iteration in pure Python floats: the simulator prices most iterations one at a time,
where numpy's per-call overhead dominates. Every operation mirrors :meth:`CostModel.price` in the same order
(sums of products term by term, the same interpolation and :func:`plog2`), so the results are bit-identical;
``tests/costmodel/test_scalar.py`` checks that on random batches.
"""

from __future__ import annotations

from llmsim.costmodel.efficiency import Curve, Table2D, plog2_scalar
from llmsim.costmodel.operators import FEATURES, _touched_experts_scalar

_NEW_TOKENS = FEATURES.index("new_tokens")


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
        x = self._features(pt, pc, pairs, kvt, d, ctx, s)
        tokens = [_combine(terms, x) for terms in self.tokens_terms]
        engine = self.cm.engine
        eager_launch = engine.eager.launch_s
        eager = eager_launch > 0 and not (pt == 0 and d <= engine.graph_max_seqs)
        gpu = 0.0
        for i, kind in enumerate(self.kinds):
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
                time = max(time, kernels * eager_launch)
            gpu = gpu + time
        return self._tail(gpu, x, pt, pc, d)

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
                return table.at(_log2(d), _log2(ctx_mean))
            return _at(table, _log2(nbytes))
        if tag == "prefill":
            return _at(kind[1], _log2(flops / self.layers))
        return 1.0

    def _tail(self, gpu: float, x: list[float], pt: float, pc: float, d: float) -> float:
        cm, cal, layers = self.cm, self.cm.calibration, self.layers
        new = x[_NEW_TOKENS]
        gpu = gpu + (cal.per_layer_s * layers + cal.per_token_layer_s * layers * new) * (new > 0)
        if cm.parallelism.pp > 1:
            sends = new * cm.model.hidden_size * 2.0
            gpu = gpu + (cm.parallelism.pp - 1) * (self.link_latency + sends / self.link_bw) * (new > 0)
        engine = cm.engine
        seqs = d + pc
        terms = engine.graph if (pt == 0 and d <= engine.graph_max_seqs) else engine.eager
        host = terms.fixed_s + terms.per_layer_s * layers + terms.per_seq_s * seqs + terms.per_token_s * new
        return gpu + (host if new > 0 else 0.0)


def _rows(terms: list, n_rows: int) -> list[list[tuple[int, float]]]:
    """Per row, its (feature index, coefficient) pairs in the vector path's term order."""
    return [[(j, float(column[i, 0])) for j, column in terms] for i in range(n_rows)]


def _combine(terms: list[tuple[int, float]], x: list[float]) -> float:
    """Mirror of the vector ``_combine``: first product, then add the others in order (zeros included)."""
    j, c = terms[0]
    out = c * x[j]
    for j, c in terms[1:]:
        out = out + c * x[j]
    return out


def _log2(v: float) -> float:
    return plog2_scalar(max(float(v), 1.0))


def _at(curve, x: float) -> float:
    if curve is None:
        return 1.0
    if isinstance(curve, Table2D):  # a 2-D table used with one variable: its first column
        return Curve(curve.x_knots, curve.eff[:, 0]).at(x)
    return curve.at(x)
