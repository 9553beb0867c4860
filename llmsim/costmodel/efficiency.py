"""Efficiency curves: how far below the datasheet roofline real kernels run, by operator class and size.

An operator with ideal time ``t_ideal = max(FLOPs / peak, bytes / bandwidth)`` is priced as
``t_ideal / eff(x) + launch_s``, where ``eff`` is a curve of one size variable ``x`` (log2 of tokens, of
arithmetic intensity, of bytes or of FLOPs, depending on the class) or a table of two (decode attention:
log2 sequences x log2 mean context). A :class:`CalibrationProfile` holds the curves for one GPU; the
calibration commands fit them from measurements (``llmsim calibrate fit``) and save them as YAML beside the
hardware profile. Curves interpolate linearly between knots and hold their end values outside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from llmsim.costmodel.interp import bracket_scalar, curve_at, rows_at_y
from llmsim.errors import InputError, did_you_mean
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
        object.__setattr__(self, "_points", (self.knots.tolist(), self.eff.tolist()))  # for at()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.knots.size == 1:
            return np.full(np.shape(x), self.eff[0])
        j, w = _bracket(self.knots, x)
        return self.eff[j] + w * (self.eff[j + 1] - self.eff[j])

    def at(self, x: float) -> float:
        """The curve at one point, in pure Python, bit-identical to ``__call__`` (same operations)."""
        knots, eff = self._points
        return curve_at(knots, eff, x)

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

    def __call__(self, x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
        ix, wx = _bracket(self.x_knots, x)
        iy, wy = _bracket(self.y_knots, y)
        e = self.eff
        jx, jy = np.minimum(ix + 1, self.x_knots.size - 1), np.minimum(iy + 1, self.y_knots.size - 1)
        top = e[ix, iy] * (1 - wy) + e[ix, jy] * wy
        bottom = e[jx, iy] * (1 - wy) + e[jx, jy] * wy
        return top * (1 - wx) + bottom * wx

    def at(self, x: float, y: float) -> float:
        """The table at one point, in pure Python, bit-identical to ``__call__``."""
        return rows_at_y(*self.rows_at(x), y)

    def rows_at(self, x: float) -> tuple[list[float], list[float], list[float], float]:
        """(y knots, the efficiency rows bracketing ``x``, the weight of the upper one): the table at ``x`` is
        ``lower(y) * (1 - wx) + upper(y) * wx``, each row interpolated linearly in ``y`` (pure Python)."""
        rows = self.__dict__.setdefault("_rows_at", {})  # a few values of x recur (log2 of batch sizes)
        found = rows.get(x)
        if found is None:
            xs, e = _cached_list(self, "x_knots"), _cached_list(self, "eff")
            ix, wx = bracket_scalar(xs, x)
            found = rows[x] = (_cached_list(self, "y_knots"), e[ix], e[min(ix + 1, len(xs) - 1)], wx)
        return found

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


#: Top-level keys of a calibration file (see :meth:`CalibrationProfile.to_dict`).
CALIBRATION_KEYS = ("name", "source", "launch_s", "per_layer_s", "per_token_layer_s", "mixed_query_tile",
                    "time_scale", "band", "residuals", "curves")
CURVE_KEYS = ("variable", "knots", "eff")
TABLE_KEYS = ("variable", "x_knots", "y_knots", "eff")
BAND_KEYS = ("q05", "q95", "source")


def load_calibration(path: Path) -> CalibrationProfile:
    """Read a calibration YAML written by :meth:`CalibrationProfile.save` (or by hand).

    Every key is checked (unknown keys get a did-you-mean); :class:`InputError` names the file and key path.
    """
    data = read_yaml_mapping(path)
    for key in data:
        if key not in CALIBRATION_KEYS:
            raise InputError(f"unknown calibration field{did_you_mean(key, CALIBRATION_KEYS)}; expected one of "
                             f"{', '.join(CALIBRATION_KEYS)}", source=path, where=key)
    raw = data.get("curves")
    if not isinstance(raw, dict) or not raw:
        raise InputError("expected a non-empty mapping of curves", source=path, where="curves", value=raw)
    curves: dict[str, Curve | Table2D] = {}
    for key, spec in raw.items():
        _check_curve_key(key, path)
        try:
            curves[key] = _curve_from_dict(spec)
        except InputError as exc:
            raise exc.located(source=path, where_prefix=f"curves.{key}") from None
    terms = {key: _cal_number(data.get(key, 0.0), path, key)
             for key in ("launch_s", "per_layer_s", "per_token_layer_s")}
    tile = data.get("mixed_query_tile", 0)
    if isinstance(tile, bool) or not isinstance(tile, int) or not 0 <= tile <= 2**20:
        raise InputError("expected an integer >= 0 (query rows per attention tile; 0 = off)", source=path,
                         where="mixed_query_tile", value=tile)
    for key in ("name", "source"):
        if key in data and not isinstance(data[key], str):
            raise InputError("expected text", source=path, where=key, value=data[key])
    residuals = data.get("residuals")
    if residuals is not None and not isinstance(residuals, dict):
        raise InputError("expected a mapping (fit residuals, informational)", source=path, where="residuals",
                         value=residuals)
    return CalibrationProfile(name=data.get("name", Path(path).stem), curves=curves, launch_s=terms["launch_s"],
                              source=data.get("source", str(path)), residuals=residuals or {},
                              per_layer_s=terms["per_layer_s"], per_token_layer_s=terms["per_token_layer_s"],
                              mixed_query_tile=tile, band=_band(data.get("band"), path),
                              time_scale=_time_scale(data.get("time_scale"), path))


def _check_curve_key(key: Any, path: Path) -> None:
    """A curve is stored under an operator class or ``gemm/NxK`` / ``gemm_fp8/NxK`` (N, K positive integers)."""
    family, sep, shape = str(key).partition("/")
    n, x, k = shape.partition("x")
    if isinstance(key, str) and (key in CLASS_VARIABLES or (
            sep and family in ("gemm", "gemm_fp8") and x and _positive_decimal(n) and _positive_decimal(k))):
        return
    raise InputError(f"unknown curve{did_you_mean(str(key), CLASS_VARIABLES)}; expected an operator class "
                     f"({', '.join(CLASS_VARIABLES)}) or gemm/NxK, gemm_fp8/NxK", source=path, where=f"curves.{key}")


def _positive_decimal(text: str) -> bool:
    """True for ASCII digits (at most 12) that spell an integer > 0."""
    return text.isascii() and text.isdigit() and len(text) <= 12 and int(text) > 0


def _cal_number(value: Any, path: Path, where: str) -> float:
    """A finite number >= 0 (YAML strings such as '1e-6', which PyYAML reads as text, are accepted)."""
    number = _finite(value)
    if number is None or number < 0:
        raise InputError("expected a number >= 0", source=path, where=where, value=value)
    return number


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _band(raw: Any, path: Path) -> dict[str, Any]:
    """``band: {q05, q95, source}``: relative errors of whole iterations, -1 < q05 <= q95 (or an empty band)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping {q05, q95, source}", source=path, where="band", value=raw)
    for key in raw:
        if key not in BAND_KEYS:
            raise InputError(f"unknown band field{did_you_mean(key, BAND_KEYS)}; expected one of "
                             f"{', '.join(BAND_KEYS)}", source=path, where=f"band.{key}")
    if ("q05" in raw) != ("q95" in raw):
        raise InputError("give both q05 and q95 (or neither)", source=path, where="band")
    for key in ("q05", "q95"):
        if key in raw and (isinstance(raw[key], str) or _finite(raw[key]) is None or not raw[key] > -1):
            raise InputError("expected a relative error (a number > -1)", source=path, where=f"band.{key}",
                             value=raw[key])
    if "q05" in raw and raw["q05"] > raw["q95"]:
        raise InputError(f"expected q05 <= q95 ({raw['q95']})", source=path, where="band.q05", value=raw["q05"])
    if "source" in raw and not isinstance(raw["source"], str):
        raise InputError("expected text", source=path, where="band.source", value=raw["source"])
    return dict(raw)


def _time_scale(raw: Any, path: Path) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of operator class to a time multiplier", source=path,
                         where="time_scale", value=raw)
    out = {}
    for key, value in raw.items():
        if key not in CLASS_VARIABLES:
            raise InputError(f"unknown operator class{did_you_mean(str(key), CLASS_VARIABLES)}; expected one of "
                             f"{', '.join(CLASS_VARIABLES)}", source=path, where=f"time_scale.{key}")
        number = None if isinstance(value, str) else _finite(value)
        if number is None or number <= 0:
            raise InputError("expected a positive multiplier", source=path, where=f"time_scale.{key}", value=value)
        out[key] = number
    return out


def _curve_from_dict(spec: Any) -> Curve | Table2D:
    """A :class:`Curve` ``{variable, knots, eff}`` or a :class:`Table2D` ``{variable, x_knots, y_knots, eff}``."""
    if not isinstance(spec, dict):
        raise InputError("expected a mapping {variable, knots, eff} or {variable, x_knots, y_knots, eff}", value=spec)
    table = "x_knots" in spec or "y_knots" in spec
    allowed = TABLE_KEYS if table else CURVE_KEYS
    for key in spec:
        if key not in allowed:
            raise InputError(f"unknown curve field{did_you_mean(str(key), allowed)}; expected one of "
                             f"{', '.join(allowed)}", where=str(key))
    for key in allowed[1:]:
        if key not in spec:
            raise InputError("required field missing", where=key)
    variable = spec.get("variable", "")
    if not isinstance(variable, str):
        raise InputError("expected text", where="variable", value=variable)
    if table:
        eff = _float_array(spec["eff"], "eff", rows=True)
        return Table2D(_float_array(spec["x_knots"], "x_knots"), _float_array(spec["y_knots"], "y_knots"), eff,
                       variable)
    return Curve(_float_array(spec["knots"], "knots"), _float_array(spec["eff"], "eff"), variable)


def _float_array(value: Any, where: str, *, rows: bool = False) -> np.ndarray:
    """A non-empty list of finite numbers (``rows``: a list of such lists, all of one length) as an array."""
    what = "a list of lists of numbers (one row per x knot)" if rows else "a list of numbers"
    flat = value if isinstance(value, list) and value else None
    if flat is not None and rows:
        same = all(isinstance(r, list) and r and len(r) == len(value[0]) for r in value)
        flat = [v for r in value for v in r] if same else None
    if flat is None or any(isinstance(v, str) or _finite(v) is None for v in flat):
        raise InputError(f"expected {what}, all finite", where=where, value=value)
    return np.asarray(value, dtype=float)
