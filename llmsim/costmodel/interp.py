"""Scalar piecewise-linear interpolation and log2: what the pricer evaluates per operator, once per iteration.

The twins of the vectorised forms in :mod:`llmsim.costmodel.efficiency` (``_bracket``, ``plog2``, ``Curve``,
``Table2D``), operation for operation, so both paths agree bit for bit. This module is compiled with the engine
(``COMPILED_MODULES`` in ``llmsim/native.py``): the pricer calls it without going through the interpreter.
"""

from __future__ import annotations

from math import frexp


def bisect_right(knots: list[float], x: float) -> int:
    """``bisect.bisect_right(knots, x)`` for ascending float knots (compiled: no call through the C API)."""
    lo, hi = 0, len(knots)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < knots[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def bracket_scalar(knots: list[float], v: float) -> tuple[int, float]:
    """Scalar twin of ``efficiency._bracket``: lower knot index and weight towards the next knot (same clamping,
    index and weight arithmetic)."""
    if len(knots) == 1:
        return 0, 0.0
    v = min(max(v, knots[0]), knots[-1])
    i = min(max(bisect_right(knots, v) - 1, 0), len(knots) - 2)
    return i, (v - knots[i]) / (knots[i + 1] - knots[i])


def plog2_scalar(x: float) -> float:
    """Scalar twin of ``efficiency.plog2`` (exact operations only: ``frexp``)."""
    m, e = frexp(x)
    return (e - 1) + (2.0 * m - 1.0)


def curve_at(knots: list[float], eff: list[float], x: float) -> float:
    """A curve (ascending ``knots``, efficiencies ``eff``) at ``x``: ``Curve.__call__`` for one point."""
    if len(knots) == 1:
        return eff[0]
    j, w = bracket_scalar(knots, x)
    return eff[j] + w * (eff[j + 1] - eff[j])


def rows_at_y(ys: list[float], lower: list[float], upper: list[float], wx: float, y: float) -> float:
    """A 2-D table at ``y``, given its y knots and the rows bracketing x with the upper one's weight ``wx``
    (``Table2D.rows_at``): ``Table2D.__call__`` for one point."""
    iy, wy = bracket_scalar(ys, y)
    jy = min(iy + 1, len(ys) - 1)
    top = lower[iy] * (1 - wy) + lower[jy] * wy
    bottom = upper[iy] * (1 - wy) + upper[jy] * wy
    return top * (1 - wx) + bottom * wx
