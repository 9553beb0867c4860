"""The roofline: price one (or many) engine iterations on a modelled GPU. Pure functions of numpy arrays.

Each operator costs ``max(FLOPs / peak, bytes / bandwidth) / eff(size) + kernels x launch_s`` where ``eff``
comes from the GPU's calibration profile (:mod:`llmsim.costmodel.efficiency`); collectives cost a ring
all-reduce over the TP link; pipeline stages add their activation sends; the engine profile adds the host
side (:mod:`llmsim.costmodel.engine`). The iteration time is the sum (kernels of one forward pass run one
after another on the GPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from llmsim.costmodel.batch import BatchFeatures, IterationShape
from llmsim.costmodel.efficiency import CalibrationProfile, Curve, Table2D
from llmsim.costmodel.engine import EngineProfile, CUDA_GRAPHS
from llmsim.costmodel.operators import OpWork, Precision, iteration_ops, pipeline_sends
from llmsim.specs.hardware import GpuSpec
from llmsim.specs.model import ModelSpec
from llmsim.specs.parallelism import Parallelism


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
        """'compute', 'memory' or 'link' for iteration ``i``."""
        if self.op_class == "collective":
            return "link"
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
        from llmsim.costmodel.efficiency import DEFAULT
        if self.calibration is None:
            object.__setattr__(self, "calibration", DEFAULT)
        self.parallelism.check_model(self.model)

    @property
    def math_dtype(self) -> str:
        """Dtype of the GEMM math on this GPU."""
        return self.precision.math_dtype(self.gpu.supports)

    def price(self, features: BatchFeatures, *, breakdown: bool = True) -> IterationCost:
        """Price every iteration in ``features`` (vectorised; cost is nearly independent of their number)."""
        ops = iteration_ops(self.model, self.parallelism, self.precision, features, self.math_dtype)
        costs = [self._op_cost(op) for op in ops]
        gpu = np.zeros(len(features))
        for c in costs:  # operator by operator: the same additions whatever the number of iterations priced
            gpu = gpu + c.time_s
        sends = pipeline_sends(self.model, self.parallelism, features.new_tokens)
        if sends is not None:
            link = self.gpu.intra_node_link
            hops = self.parallelism.pp - 1
            gpu = gpu + hops * (link.latency_s + sends / link.bandwidth_bytes_per_s) * (features.new_tokens > 0)
        overhead = self.engine.overhead_s(features, self.model.num_layers)
        return IterationCost(total_s=gpu + overhead, gpu_s=gpu, overhead_s=overhead,
                             ops=tuple(costs) if breakdown else ())

    def iteration_time_s(self, shape: IterationShape) -> float:
        """Seconds for one iteration given exactly (a convenience over :meth:`price`)."""
        return float(self.price(BatchFeatures.from_shapes([shape]), breakdown=False).total_s[0])

    def time_s(self, features: BatchFeatures) -> np.ndarray:
        """Seconds per iteration, without the per-operator breakdown."""
        return self.price(features, breakdown=False).total_s

    # -- one operator -------------------------------------------------------------------------------
    def _op_cost(self, op: OpWork) -> OpCost:
        if op.op_class == "collective":
            return self._collective_cost(op)
        peak = self.gpu.peak_for(op.math_dtype if op.op_class.startswith("gemm") else "bf16")
        compute_s = op.flops / peak
        memory_s = op.bytes / self.gpu.memory_bandwidth_bytes_per_s
        eff = self._efficiency(op)
        time = np.maximum(compute_s, memory_s) / eff + op.kernels * self.calibration.launch_s
        time = np.where(op.kernels > 0, time, 0.0)
        return OpCost(op.name, op.op_class, op.flops, op.bytes, time, compute_s > memory_s, eff, op.kernels)

    def _collective_cost(self, op: OpWork) -> OpCost:
        """Ring all-reduce: each GPU sends and receives 2 (tp - 1) / tp of the message, plus a latency per call."""
        tp = self.parallelism.tp
        link = self.gpu.intra_node_link
        calls = op.kernels
        wire = 2.0 * (tp - 1) / tp * op.bytes
        eff = _lookup(self.calibration.curve("collective"), _log2(op.message_bytes))
        time = np.where(calls > 0, wire / (link.bandwidth_bytes_per_s * eff) + calls * link.latency_s, 0.0)
        return OpCost(op.name, op.op_class, op.flops, op.bytes, time, np.zeros(time.shape, bool), eff, calls)

    def _efficiency(self, op: OpWork) -> np.ndarray:
        cal = self.calibration
        if op.op_class == "gemm":
            return self._gemm_efficiency(op)
        if op.op_class == "attn_decode":
            table = cal.curve("attn_decode")
            if isinstance(table, Table2D):
                return table(_log2(op.decode_seqs), _log2(op.decode_ctx_mean))
            return _lookup(table, _log2(op.bytes))
        if op.op_class == "attn_prefill":
            return _lookup(cal.curve("attn_prefill"), _log2(op.flops / self.model.num_layers))
        return _lookup(cal.curve("elementwise"), _log2(op.bytes / np.maximum(op.kernels, 1)))

    def _gemm_efficiency(self, op: OpWork) -> np.ndarray:
        cal = self.calibration
        n, k = op.gemm_shape
        fp8 = op.math_dtype in ("fp8", "int8")
        for family in (("gemm_fp8", "gemm") if fp8 else ("gemm",)):
            shaped = cal.curve(f"{family}/{n}x{k}")
            if shaped is not None:
                return _lookup(shaped, _log2(op.tokens))
        generic = (cal.curve("gemm_fp8") if fp8 else None) or cal.curve("gemm")
        intensity = op.flops / np.maximum(op.bytes, 1.0)
        return _lookup(generic, _log2(intensity))


def _log2(x: np.ndarray) -> np.ndarray:
    return np.log2(np.maximum(np.asarray(x, dtype=np.float64), 1.0))


def _lookup(curve: Curve | Table2D | None, x: np.ndarray) -> np.ndarray:
    if curve is None:
        return np.ones_like(x)
    if isinstance(curve, Table2D):  # a 2-D table used with one variable: take its first column
        return Curve(curve.x_knots, curve.eff[:, 0])(x)
    return curve(x)


def breakdown_table(cost: IterationCost, i: int = 0) -> list[dict[str, object]]:
    """Per-operator rows for iteration ``i``: name, class, FLOPs, bytes, time_s, bound, efficiency, kernels."""
    rows = []
    for op in cost.ops:
        if op.kernels[i] <= 0:
            continue
        rows.append({"op": op.name, "class": op.op_class, "flops": float(op.flops[i]), "bytes": float(op.bytes[i]),
                     "time_s": float(op.time_s[i]), "bound": op.bound(i), "efficiency": float(op.efficiency[i]),
                     "kernels": int(op.kernels[i])})
    if cost.overhead_s[i] > 0:
        rows.append({"op": "engine_overhead", "class": "host", "flops": 0.0, "bytes": 0.0,
                     "time_s": float(cost.overhead_s[i]), "bound": "host", "efficiency": 1.0, "kernels": 0})
    return rows


def time_by_operator(cost: IterationCost) -> Mapping[str, float]:
    """Seconds spent in each operator summed over all iterations priced (for reports)."""
    out = {op.name: float(op.time_s.sum()) for op in cost.ops}
    out["engine_overhead"] = float(cost.overhead_s.sum())
    return out
