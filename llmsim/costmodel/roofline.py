"""The roofline: price one (or many) engine iterations on a modelled GPU. Pure functions of numpy arrays.

Each operator costs ``max(FLOPs / peak, bytes / bandwidth) / eff(size) + kernels x launch_s`` where ``eff``
comes from the GPU's calibration profile (:mod:`llmsim.costmodel.efficiency`); collectives cost a ring
all-reduce over the TP link; pipeline stages add their activation sends; the engine profile adds the host
side (:mod:`llmsim.costmodel.engine`). The iteration time is the sum (kernels of one forward pass run one
after another on the GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from llmsim.costmodel.batch import BatchFeatures, IterationShape
from llmsim.costmodel.efficiency import DEFAULT, CalibrationProfile, Curve, Table2D, plog2
from llmsim.costmodel.engine import CUDA_GRAPHS, EngineProfile
from llmsim.costmodel.operators import (FEATURES, OperatorTable, Precision, build_operator_table,
                                        pipeline_send_bytes)
from llmsim.specs.hardware import GpuSpec
from llmsim.specs.model import ModelSpec
from llmsim.specs.parallelism import Parallelism

if TYPE_CHECKING:
    from llmsim.costmodel.scalar import ScalarPricer


@dataclass(frozen=True)
class OpCost:
    """One operator's price: work, time (seconds) and what bounds it, arrays with one entry per iteration."""

    name: str
    op_class: str
    flops: np.ndarray
    bytes: np.ndarray
    time_s: np.ndarray
    compute_bound: np.ndarray
    efficiency: np.ndarray
    kernels: np.ndarray

    def bound(self, i: int = 0) -> str:
        """'compute', 'memory', 'link' or 'fixed' (composition terms) for iteration ``i``."""
        if self.op_class == "collective":
            return "link"
        if self.op_class == "composition":
            return "fixed"
        return "compute" if bool(self.compute_bound[i]) else "memory"


@dataclass(frozen=True)
class IterationCost:
    """The priced iterations: ``total_s`` (seconds per iteration) = GPU time + host overhead."""

    total_s: np.ndarray
    gpu_s: np.ndarray
    overhead_s: np.ndarray
    ops: tuple[OpCost, ...] = field(default=())


@dataclass(frozen=True)
class CostModel:
    """Everything needed to price iterations of one replica (one model instance on tp x pp GPUs)."""

    model: ModelSpec
    gpu: GpuSpec
    parallelism: Parallelism = Parallelism()
    precision: Precision = Precision()
    calibration: CalibrationProfile | None = None
    engine: EngineProfile = CUDA_GRAPHS

    def __post_init__(self) -> None:
        if self.calibration is None:
            object.__setattr__(self, "calibration", DEFAULT)
        self.parallelism.check_model(self.model)
        table = build_operator_table(self.model, self.parallelism, self.precision, self.math_dtype,
                                     self.calibration.mixed_query_tile)
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "_plan", _EfficiencyPlan(self, table))
        from llmsim.costmodel.scalar import ScalarPricer
        object.__setattr__(self, "_scalar", ScalarPricer(self))

    @property
    def scalar_pricer(self) -> ScalarPricer:
        """The pure-Python pricer behind :meth:`time_one` and :meth:`decode_times` (the simulator calls it directly)."""
        return self._scalar

    @property
    def math_dtype(self) -> str:
        """Dtype of the GEMM math on this GPU."""
        return self.precision.math_dtype(self.gpu.supports)

    @property
    def operators(self) -> OperatorTable:
        """The operator table this cost model prices."""
        return self._table

    def price(self, features: BatchFeatures, *, breakdown: bool = True) -> IterationCost:
        """Price every iteration in ``features`` (vectorised; cost is nearly independent of their number).

        Results do not depend on how many iterations are priced together: every reduction runs in a fixed
        order (no BLAS), so fast-forwarded and step-by-step simulations agree bit for bit.
        """
        table = self._table
        x = table.feature_matrix(features)
        flops, nbytes = _combine(self._plan.flops_terms, x), _combine(self._plan.bytes_terms, x)
        active = x[table.active_index] > 0
        kernels = table.kernels[:, None] * active
        eff = self._plan.efficiency(flops, nbytes, x, kernels)
        compute_s = flops / self._plan.peaks[:, None]
        memory_s = nbytes / self.gpu.memory_bandwidth_bytes_per_s
        time = np.maximum(compute_s, memory_s) / eff + kernels * self.calibration.launch_s
        coll = self._plan.collective_rows
        if coll.size:
            link = self.gpu.intra_node_link
            wire = 2.0 * (self.parallelism.tp - 1) / self.parallelism.tp * nbytes[coll]
            time[coll] = wire / (link.bandwidth_bytes_per_s * eff[coll]) + kernels[coll] * link.latency_s
        time = np.where(active, time, 0.0)
        eager_launch = self.engine.eager.launch_s
        if eager_launch > 0:  # launched one by one, an operator takes at least its launches' host time
            eager = ~self.engine.graphed(features)
            time = np.where(eager, np.maximum(time, kernels * eager_launch), time)
        gpu = np.zeros(len(features))
        for row in time:  # operator by operator, in a fixed order
            gpu = gpu + row
        new_tokens = x[FEATURES.index("new_tokens")]
        cal, layers = self.calibration, self.model.num_layers
        other = (cal.per_layer_s * layers + cal.per_token_layer_s * layers * new_tokens) * (new_tokens > 0)
        gpu = gpu + other
        sends = pipeline_send_bytes(self.model, self.parallelism, new_tokens)
        if sends is not None:
            link = self.gpu.intra_node_link
            hops = self.parallelism.pp - 1
            gpu = gpu + hops * (link.latency_s + sends / link.bandwidth_bytes_per_s) * (new_tokens > 0)
        overhead = self.engine.overhead_s(features, self.model.num_layers)
        ops = ()
        if breakdown:
            ops = tuple(OpCost(op.name, op.op_class, flops[i], nbytes[i], time[i], compute_s[i] > memory_s[i],
                               eff[i], kernels[i]) for i, op in enumerate(table.operators))
            if cal.per_layer_s or cal.per_token_layer_s:
                zero = np.zeros(len(features))
                ops += (OpCost("other_kernels", "composition", zero, zero, other, zero.astype(bool),
                               np.ones(len(features)), (new_tokens > 0) * float(layers)),)
        return IterationCost(total_s=gpu + overhead, gpu_s=gpu, overhead_s=overhead, ops=ops)

    def time_one(self, prefill_tokens: float, prefill_chunks: float, prefill_attn_pairs: float,
                 prefill_kv_tokens: float, decode_seqs: float, decode_ctx_tokens: float, sampled: float) -> float:
        """Seconds of ONE iteration from its feature sums, in pure Python (replicas call :attr:`scalar_pricer` itself).

        Bit-identical to :meth:`time_s` on the same features (the same operations in the same order; a
        property test checks it), and several times faster for a single iteration.
        """
        return self._scalar(prefill_tokens, prefill_chunks, prefill_attn_pairs, prefill_kv_tokens, decode_seqs,
                            decode_ctx_tokens, sampled)

    def decode_times(self, decode_seqs: int, ctx_tokens: list[float]) -> list[float]:
        """Seconds of consecutive decode-only iterations of ``decode_seqs`` sequences holding ``ctx_tokens[j]``
        cached tokens in total (a fast-forwarded decode span).

        Bit-identical to :meth:`time_one` on each iteration: the batch size's context-free operator times are
        computed once, attention is priced per iteration in pure Python (short spans) or numpy (long ones).
        """
        return self._scalar.decode_times(float(decode_seqs), ctx_tokens)

    def decode_operator_time(self, decode_seqs: np.ndarray, ctx_tokens: np.ndarray) -> dict[str, float] | None:
        """Seconds per operator (and ``engine_overhead``) summed over decode-only iterations ``i`` of
        ``decode_seqs[i]`` sequences holding ``ctx_tokens[i]`` tokens: :func:`time_by_operator` of their
        :meth:`price`, summed in another order. Only attention depends on the context: the other operators are
        priced once per batch size, times its count; attention per iteration, one batch size at a time. None
        when another operator mix needs every iteration priced."""
        if np.size(decode_seqs) == 0:
            return None
        sizes, counts, order = _group_by_size(np.asarray(decode_seqs, dtype=np.float64))
        groups = np.split(np.asarray(ctx_tokens, dtype=np.float64)[order], np.cumsum(counts)[:-1])
        attention = [self._scalar.decode_attention_seconds(d, g) for d, g in zip(sizes.tolist(), groups)]
        if any(a is None for a in attention):
            return None
        cost = self.price(BatchFeatures.decode_only(sizes, np.array([g[0] for g in groups])))
        out = {op.name: float((op.time_s * counts).sum()) for op in cost.ops}
        out[cost.ops[attention[0][0]].name] = float(sum(seconds.sum() for _, seconds in attention))
        out["engine_overhead"] = float((cost.overhead_s * counts).sum())
        return out

    def iteration_time_s(self, shape: IterationShape) -> float:
        """Seconds for one iteration given exactly (a convenience over :meth:`price`)."""
        return float(self.price(BatchFeatures.from_shapes([shape]), breakdown=False).total_s[0])

    def time_s(self, features: BatchFeatures) -> np.ndarray:
        """Seconds per iteration, without the per-operator breakdown."""
        return self.price(features, breakdown=False).total_s


def _group_by_size(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct sizes ascending, how often each occurs, the indices that sort ``sizes`` stably): what
    ``np.unique(..., return_inverse=True, return_counts=True)`` and a stable argsort of the inverse give, by a
    counting sort when the sizes are small whole numbers (batch sizes), which is several times faster."""
    whole = sizes.astype(np.int64)
    if sizes.size and np.array_equal(whole, sizes) and 0 <= whole.min() and whole.max() < 1 << 15:
        occurs = np.bincount(whole)
        present = np.flatnonzero(occurs)
        return present.astype(np.float64), occurs[present], np.argsort(whole.astype(np.int16), kind="stable")
    distinct, inverse, counts = np.unique(sizes, return_inverse=True, return_counts=True)
    return distinct, counts, np.argsort(inverse, kind="stable")


def _terms(coefficients: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The non-zero columns of a coefficient matrix, as (feature index, column vector) pairs."""
    return [(j, coefficients[:, j:j + 1].copy()) for j in range(coefficients.shape[1]) if coefficients[:, j].any()]


def _combine(terms: list[tuple[int, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """``coefficients @ x`` as a fixed-order sum of outer products (bit-identical for any number of columns)."""
    j, column = terms[0]
    out = column * x[j]
    for j, column in terms[1:]:
        out = out + column * x[j]
    return out


class _EfficiencyPlan:
    """Which efficiency curve each operator uses, resolved once per cost model."""

    def __init__(self, cm: "CostModel", table: OperatorTable) -> None:
        cal, ops = cm.calibration, table.operators
        self.layers = cm.model.num_layers
        self.peaks = np.array([cm.gpu.peak_for(op.math_dtype if op.op_class == "gemm" else "bf16") for op in ops])
        self.collective_rows = np.array([i for i, op in enumerate(ops) if op.op_class == "collective"], dtype=int)
        self.elementwise_rows = np.array([i for i, op in enumerate(ops) if op.op_class == "elementwise"], dtype=int)
        self.decode_row = next(i for i, op in enumerate(ops) if op.op_class == "attn_decode")
        self.prefill_rows = np.array([i for i, op in enumerate(ops) if op.op_class == "attn_prefill"], dtype=int)
        self.gemms = [(i, *self._gemm_curve(cal, op)) for i, op in enumerate(ops) if op.op_class == "gemm"]
        self.tokens_terms = _terms(np.stack([op.tokens for op in ops if op.op_class == "gemm"]))
        self.flops_terms, self.bytes_terms = _terms(table.flops), _terms(table.bytes)
        self.cal = cal
        self.scales = [(i, cal.time_scale[op.op_class]) for i, op in enumerate(ops) if op.op_class in cal.time_scale]

    @staticmethod
    def _gemm_curve(cal: CalibrationProfile, op) -> tuple[object, bool]:
        """(curve, by_tokens): a shape-specific curve over log2 M, else the class curve over log2 intensity."""
        n, k = op.gemm_shape
        fp8 = op.math_dtype in ("fp8", "int8")
        for family in (("gemm_fp8", "gemm") if fp8 else ("gemm",)):
            shaped = cal.curve(f"{family}/{n}x{k}")
            if shaped is not None and not (family == "gemm" and fp8):
                return shaped, True
        generic = (cal.curve("gemm_fp8") if fp8 else None) or cal.curve("gemm")
        return generic, False

    def efficiency(self, flops: np.ndarray, nbytes: np.ndarray, x: np.ndarray, kernels: np.ndarray) -> np.ndarray:
        """Efficiency of every operator for every iteration (same shape as ``flops``)."""
        cal = self.cal
        eff = np.ones_like(flops)
        tokens = _combine(self.tokens_terms, x)
        for j, (i, curve, by_tokens) in enumerate(self.gemms):
            var = tokens[j] if by_tokens else flops[i] / np.maximum(nbytes[i], 1.0)
            eff[i] = _lookup(curve, _log2(var))
        rows = self.elementwise_rows
        eff[rows] = _lookup(cal.curve("elementwise"), _log2(nbytes[rows] / np.maximum(kernels[rows], 1.0)))
        d = x[FEATURES.index("decode_seqs")]
        table = cal.curve("attn_decode")
        if isinstance(table, Table2D):
            ctx_mean = x[FEATURES.index("decode_ctx_tokens")] / np.maximum(d, 1.0)
            eff[self.decode_row] = table(_log2(d), _log2(ctx_mean))
        else:
            eff[self.decode_row] = _lookup(table, _log2(nbytes[self.decode_row]))
        rows = self.prefill_rows
        eff[rows] = _lookup(cal.curve("attn_prefill"), _log2(flops[rows] / self.layers))
        if self.collective_rows.size:
            rows = self.collective_rows
            eff[rows] = _lookup(cal.curve("collective"), _log2(nbytes[rows] / np.maximum(kernels[rows], 1.0)))
        for i, scale in self.scales:
            eff[i] = eff[i] / scale
        return eff


def _log2(x: np.ndarray) -> np.ndarray:
    """The curves' size variable: :func:`~llmsim.costmodel.efficiency.plog2` of max(x, 1)."""
    return plog2(np.maximum(np.asarray(x, dtype=np.float64), 1.0))


def _lookup(curve: Curve | Table2D | None, x: np.ndarray) -> np.ndarray:
    if curve is None:
        return np.ones_like(x)
    x = np.asarray(x)
    if isinstance(curve, Table2D):  # a 2-D table used with one variable: take its first column
        return Curve(curve.x_knots, curve.eff[:, 0])(x)
    return curve(x)


def breakdown_table(cost: IterationCost, i: int = 0) -> list[dict[str, object]]:
    """Per-operator rows for iteration ``i``: name, class, FLOPs, bytes, time_s, bound, efficiency, kernels."""
    rows = []
    for op in cost.ops:
        if op.kernels[i] <= 0 and op.time_s[i] <= 0:
            continue
        rows.append({"op": op.name, "class": op.op_class, "flops": float(op.flops[i]), "bytes": float(op.bytes[i]),
                     "time_s": float(op.time_s[i]), "bound": op.bound(i), "efficiency": float(op.efficiency[i]),
                     "kernels": int(op.kernels[i])})
    if cost.overhead_s[i] > 0:
        rows.append({"op": "engine_overhead", "class": "host", "flops": 0.0, "bytes": 0.0,
                     "time_s": float(cost.overhead_s[i]), "bound": "host", "efficiency": 1.0, "kernels": 0})
    return rows


def time_by_operator(cost: IterationCost, weights: np.ndarray | None = None) -> Mapping[str, float]:
    """Seconds spent in each operator summed over all iterations priced (for reports); with ``weights``, iteration
    ``i`` counts ``weights[i]`` times."""
    if weights is None:
        out = {op.name: float(op.time_s.sum()) for op in cost.ops}
        out["engine_overhead"] = float(cost.overhead_s.sum())
    else:
        out = {op.name: float((op.time_s * weights).sum()) for op in cost.ops}
        out["engine_overhead"] = float((cost.overhead_s * weights).sum())
    return out
