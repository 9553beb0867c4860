"""Efficiency curves: how far below the datasheet roofline real kernels run, by operator class and size.

An operator with ideal time ``t_ideal = max(FLOPs / peak, bytes / bandwidth)`` is priced as
``t_ideal / eff(x) + launch_s``, where ``eff`` is a curve of one size variable ``x`` (log2 of tokens, of
arithmetic intensity, of bytes or of FLOPs, depending on the class) or a table of two (decode attention:
log2 sequences x log2 mean context). A :class:`CalibrationProfile` holds the curves for one GPU; the
calibration commands fit them from measurements (``llmsim calibrate fit``) and save them as YAML beside the
hardware profile. Curves interpolate linearly between knots and hold their end values outside them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from llmsim.errors import InputError
from llmsim.specs._yaml import read_yaml_mapping

#: Size variable of each operator class's generic curve.
CLASS_VARIABLES: dict[str, str] = {
    "gemm": "log2_intensity",         # FLOPs / ideal bytes of the GEMM
    "gemm_fp8": "log2_intensity",
    "attn_prefill": "log2_flops",
    "attn_decode": "log2_seqs,log2_ctx",
    "elementwise": "log2_bytes",
    "collective": "log2_bytes",
}


@dataclass(frozen=True)
class Curve:
    """Efficiency as a piecewise-linear function of one variable (``knots`` ascending, ``eff`` in (0, 1.5])."""

    knots: np.ndarray
    eff: np.ndarray
    variable: str = ""

    def __post_init__(self) -> None:
        if self.knots.shape != self.eff.shape or self.knots.ndim != 1 or self.knots.size == 0:
            raise InputError("a curve needs equal-length, non-empty knots and eff lists")
        if np.any(np.diff(self.knots) <= 0):
            raise InputError("curve knots must be strictly increasing", value=self.knots.tolist())
        if np.any(~np.isfinite(self.eff)) or np.any(self.eff <= 0):
            raise InputError("curve efficiencies must be positive", value=self.eff.tolist())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.knots.size == 1:
            return np.full(np.shape(x), self.eff[0])
        j, w = _bracket(self.knots, x)
        return self.eff[j] + w * (self.eff[j + 1] - self.eff[j])

    def at(self, x: float) -> float:
        """The curve at one point, in pure Python, bit-identical to ``__call__`` (same operations)."""
        knots, eff = self.knots_list, self.eff_list
        if len(knots) == 1:
            return eff[0]
        j, w = bracket_scalar(knots, x)
        return eff[j] + w * (eff[j + 1] - eff[j])

    @property
    def knots_list(self) -> list[float]:
        """Knots as Python floats (cached)."""
        return _cached_list(self, "knots")

    @property
    def eff_list(self) -> list[float]:
        """Efficiencies as Python floats (cached)."""
        return _cached_list(self, "eff")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML."""
        return {"variable": self.variable, "knots": _rounded(self.knots), "eff": _rounded(self.eff)}


@dataclass(frozen=True)
class Table2D:
    """Efficiency over a grid of two variables, bilinear inside the grid, clamped outside."""

    x_knots: np.ndarray
    y_knots: np.ndarray
    eff: np.ndarray  # shape (len(x_knots), len(y_knots))
    variable: str = ""

    def __post_init__(self) -> None:
        if self.eff.shape != (self.x_knots.size, self.y_knots.size):
            raise InputError("a table's eff must have shape (len(x_knots), len(y_knots))")
        for knots in (self.x_knots, self.y_knots):
            if knots.size < 1 or np.any(np.diff(knots) <= 0):
                raise InputError("table knots must be strictly increasing", value=knots.tolist())
        if np.any(~np.isfinite(self.eff)) or np.any(self.eff <= 0):
            raise InputError("table efficiencies must be positive")

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ix, wx = _bracket(self.x_knots, x)
        iy, wy = _bracket(self.y_knots, y)
        e = self.eff
        jx, jy = np.minimum(ix + 1, self.x_knots.size - 1), np.minimum(iy + 1, self.y_knots.size - 1)
        top = e[ix, iy] * (1 - wy) + e[ix, jy] * wy
        bottom = e[jx, iy] * (1 - wy) + e[jx, jy] * wy
        return top * (1 - wx) + bottom * wx

    def at(self, x: float, y: float) -> float:
        """The table at one point, in pure Python, bit-identical to ``__call__``."""
        xs, ys, e = _cached_list(self, "x_knots"), _cached_list(self, "y_knots"), _cached_list(self, "eff")
        ix, wx = bracket_scalar(xs, x)
        iy, wy = bracket_scalar(ys, y)
        jx, jy = min(ix + 1, len(xs) - 1), min(iy + 1, len(ys) - 1)
        top = e[ix][iy] * (1 - wy) + e[ix][jy] * wy
        bottom = e[jx][iy] * (1 - wy) + e[jx][jy] * wy
        return top * (1 - wx) + bottom * wx

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML."""
        return {"variable": self.variable, "x_knots": _rounded(self.x_knots), "y_knots": _rounded(self.y_knots),
                "eff": [_rounded(row) for row in self.eff]}


def _bracket(knots: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower knot index and weight towards the next knot, clamped so that index+1 is valid."""
    if knots.size == 1:
        v = np.asarray(v, dtype=np.float64)
        return np.zeros(v.shape, dtype=np.intp), np.zeros(v.shape)
    v = np.minimum(np.maximum(v, knots[0]), knots[-1])  # np.clip, without its call overhead
    i = np.minimum(np.maximum(np.searchsorted(knots, v, side="right") - 1, 0), knots.size - 2)
    w = (v - knots[i]) / (knots[i + 1] - knots[i])
    return i, w


def bracket_scalar(knots: list[float], v: float) -> tuple[int, float]:
    """Scalar twin of :func:`_bracket` (same clamping, index and weight arithmetic)."""
    if len(knots) == 1:
        return 0, 0.0
    v = min(max(v, knots[0]), knots[-1])
    i = min(max(bisect.bisect_right(knots, v) - 1, 0), len(knots) - 2)
    return i, (v - knots[i]) / (knots[i + 1] - knots[i])


def _cached_list(obj: object, name: str) -> list:
    """``getattr(obj, name).tolist()``, computed once per (frozen) object."""
    cache = obj.__dict__.setdefault("_lists", {})
    if name not in cache:
        cache[name] = getattr(obj, name).tolist()
    return cache[name]


def plog2(x: np.ndarray) -> np.ndarray:
    """A piecewise-linear log2: exact at powers of two, linear in between (within 0.09 of log2).

    Curves are indexed by it instead of ``np.log2`` because it is computed with exact operations only
    (``frexp``), so the scalar and vectorised pricing paths agree bit for bit on every platform.
    """
    m, e = np.frexp(np.asarray(x, dtype=np.float64))
    return (e - 1) + (2.0 * m - 1.0)


def plog2_scalar(x: float) -> float:
    """Scalar twin of :func:`plog2`."""
    m, e = math.frexp(x)
    return (e - 1) + (2.0 * m - 1.0)


def _rounded(a: np.ndarray) -> list[float]:
    return [float(f"{float(v):.5g}") for v in np.asarray(a).ravel()]


@dataclass(frozen=True)
class CalibrationProfile:
    """Efficiency curves for one GPU, plus per-kernel launch cost (seconds).

    ``curves`` maps a key to a :class:`Curve` or :class:`Table2D`. Keys are an operator class
    (``gemm``, ``gemm_fp8``, ``attn_prefill``, ``attn_decode``, ``elementwise``, ``collective``) or a
    specific GEMM shape ``gemm/NxK`` / ``gemm_fp8/NxK`` whose curve variable is ``log2_tokens``; a shape
    curve, when present, is used instead of the class curve.
    """

    name: str
    curves: Mapping[str, Curve | Table2D]
    launch_s: float = 0.0
    source: str = ""
    residuals: Mapping[str, Any] = field(default_factory=dict)
    per_layer_s: float = 0.0
    per_token_layer_s: float = 0.0
    mixed_query_tile: int = 0
    band: Mapping[str, Any] = field(default_factory=dict)
    time_scale: Mapping[str, float] = field(default_factory=dict)

    def curve(self, key: str) -> Curve | Table2D | None:
        """The curve stored under ``key``, or None."""
        return self.curves.get(key)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML (the calibration file format)."""
        return {"name": self.name, "source": self.source, "launch_s": float(f"{self.launch_s:.4g}"),
                "per_layer_s": float(f"{self.per_layer_s:.4g}"),
                "per_token_layer_s": float(f"{self.per_token_layer_s:.4g}"),
                "mixed_query_tile": int(self.mixed_query_tile),
                "time_scale": {k: float(f"{v:.4g}") for k, v in self.time_scale.items()}, "band": dict(self.band),
                "residuals": dict(self.residuals),
                "curves": {k: v.to_dict() for k, v in sorted(self.curves.items())}}

    def save(self, path: Path) -> None:
        """Write the profile as YAML (does not overwrite user files: the caller decides the path)."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, width=120))


def uniform_profile(name: str, *, gemm: float, memory: float, attn_prefill: float, attn_decode: float,
                    collective: float, launch_s: float, source: str) -> CalibrationProfile:
    """A profile whose every class curve is one constant efficiency."""
    def const(v: float, var: str) -> Curve:
        return Curve(np.array([0.0]), np.array([v]), var)
    curves: dict[str, Curve | Table2D] = {
        "gemm": const(gemm, CLASS_VARIABLES["gemm"]),
        "attn_prefill": const(attn_prefill, CLASS_VARIABLES["attn_prefill"]),
        "attn_decode": Table2D(np.array([0.0]), np.array([0.0]), np.array([[attn_decode]]),
                               CLASS_VARIABLES["attn_decode"]),
        "elementwise": const(memory, CLASS_VARIABLES["elementwise"]),
        "collective": const(collective, CLASS_VARIABLES["collective"]),
    }
    return CalibrationProfile(name=name, curves=curves, launch_s=launch_s, source=source)


#: The pure datasheet roofline: every kernel at its peak, no launch cost.
DATASHEET = uniform_profile("datasheet", gemm=1.0, memory=1.0, attn_prefill=1.0, attn_decode=1.0,
                            collective=1.0, launch_s=0.0, source="datasheet roofline, no calibration")

#: Used for GPUs that have no calibration file. Constants are the achieved fractions of peak in Azure's
#: published benchmarks (github Azure/AI-benchmarking-guide, 2024-09): cuBLASLt GEMM 0.65-0.82 of peak,
#: HBM copy/triad 0.79-0.89, FlashAttention-2 0.33-0.58; decode attention and collectives are set to the
#: copy fraction. Launch cost 2 us per kernel.
DEFAULT = uniform_profile("default", gemm=0.72, memory=0.82, attn_prefill=0.45, attn_decode=0.75,
                          collective=0.8, launch_s=2e-6,
                          source="uncalibrated defaults: Azure AI-benchmarking-guide achieved fractions")


def load_calibration(path: Path) -> CalibrationProfile:
    """Read a calibration YAML written by :meth:`CalibrationProfile.save` (or by hand)."""
    data = read_yaml_mapping(path)
    curves: dict[str, Curve | Table2D] = {}
    raw = data.get("curves")
    if not isinstance(raw, dict) or not raw:
        raise InputError("expected a non-empty mapping of curves", source=path, where="curves")
    for key, spec in raw.items():
        try:
            curves[key] = _curve_from_dict(spec)
        except InputError as exc:
            raise exc.located(source=path, where_prefix=f"curves.{key}") from None
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"malformed curve: {exc}", source=path, where=f"curves.{key}") from None
    terms = {}
    for key in ("launch_s", "per_layer_s", "per_token_layer_s", "mixed_query_tile"):
        try:
            terms[key] = float(data.get(key, 0.0))
        except (TypeError, ValueError):
            raise InputError("expected a number", source=path, where=key, value=data.get(key)) from None
        if not np.isfinite(terms[key]) or terms[key] < 0:
            raise InputError("expected a number >= 0", source=path, where=key, value=data.get(key))
    return CalibrationProfile(name=str(data.get("name", Path(path).stem)), curves=curves, launch_s=terms["launch_s"],
                              source=str(data.get("source", path)), residuals=data.get("residuals") or {},
                              per_layer_s=terms["per_layer_s"], per_token_layer_s=terms["per_token_layer_s"],
                              mixed_query_tile=int(terms["mixed_query_tile"]), band=data.get("band") or {},
                              time_scale=_time_scale(data.get("time_scale"), path))


def _time_scale(raw: Any, path: Path) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of operator class to a time multiplier", source=path,
                         where="time_scale", value=raw)
    out = {}
    for key, value in raw.items():
        if key not in CLASS_VARIABLES:
            raise InputError(f"unknown operator class; expected one of {', '.join(CLASS_VARIABLES)}", source=path,
                             where=f"time_scale.{key}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InputError("expected a positive multiplier", source=path, where=f"time_scale.{key}", value=value)
        out[key] = float(value)
    return out


def _curve_from_dict(spec: Mapping[str, Any]) -> Curve | Table2D:
    if not isinstance(spec, dict):
        raise InputError("expected a mapping with knots and eff")
    if "x_knots" in spec:
        return Table2D(np.asarray(spec["x_knots"], float), np.asarray(spec["y_knots"], float),
                       np.asarray(spec["eff"], float), str(spec.get("variable", "")))
    return Curve(np.asarray(spec["knots"], float), np.asarray(spec["eff"], float), str(spec.get("variable", "")))
