"""Downsampling for plots: empirical CDFs at a bounded number of points and time-binned aggregates.

Pure numpy, no plotting. Every function returns at most a few thousand points whatever the size of
the run, so a report of a million-request run draws as fast as one of a hundred requests. Units are
those of the inputs (the report passes seconds).
"""

from __future__ import annotations

import numpy as np

#: Most points drawn for one CDF curve.
CDF_POINTS = 2000


def _finite(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[np.isfinite(v)]


def finite_max(values, default: float = 0.0) -> float:
    """The largest finite value (any shape), or ``default`` when there is none (no warning for all-NaN)."""
    v = _finite(np.ravel(np.asarray(values, dtype=np.float64)))
    return float(v.max()) if v.size else default


def _grid(n: int, m: int) -> np.ndarray:
    """About ``m`` sorted, unique indices into ``range(n)``: evenly spread, plus denser towards the top tail."""
    tail = max(m // 4, 2)
    body = np.linspace(0, n - 1, m - tail)
    top = (n - 1) - (np.geomspace(1, n, tail) - 1)  # n-1, ..., 0 packed near n-1 (p99, p99.9 ... stay sharp)
    return np.unique(np.clip(np.rint(np.concatenate([body, top])), 0, n - 1).astype(np.int64))


def cdf_points(values, max_points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the empirical CDF of the finite ``values``, at most ~``max_points`` points.

    The points are exact points of the full ECDF (x sorted, F in (0, 1]), always including the minimum and
    maximum; with fewer values than ``max_points`` every value is kept. Empty input -> two empty arrays.
    """
    x = np.sort(_finite(values))
    n = x.size
    if n == 0:
        return x, x.copy()
    f = np.arange(1, n + 1, dtype=np.float64) / n
    if n <= max_points:
        return x, f
    idx = _grid(n, max_points)
    return x[idx], f[idx]


def weighted_cdf_points(values, counts, max_points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the CDF of ``values`` each seen ``counts`` times (e.g. ITL gaps), at most ~``max_points``.

    F is the fraction of the total count at or below x. Non-finite values and non-positive counts are dropped.
    """
    v = np.asarray(values, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    keep = np.isfinite(v) & np.isfinite(c) & (c > 0)
    v, c = v[keep], c[keep]
    if v.size == 0:
        return v, v.copy()
    order = np.argsort(v, kind="stable")
    v, cum = v[order], np.cumsum(c[order])
    f = cum / cum[-1]
    if v.size <= max_points:
        return v, f
    idx = _grid(v.size, max_points)
    return v[idx], f[idx]


def time_edges(t_end: float, n_bins: int, t_start: float = 0.0) -> np.ndarray:
    """``n_bins + 1`` evenly spaced bin edges from ``t_start`` to ``t_end`` (s); a zero span becomes 1 s."""
    if not np.isfinite(t_end) or t_end <= t_start:
        t_end = t_start + 1.0
    return np.linspace(t_start, t_end, int(max(n_bins, 1)) + 1)


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each ``x`` (values on the last edge go into the last bin; out-of-range are clipped)."""
    return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)


def binned_quantiles(x, y, edges: np.ndarray, quantiles) -> np.ndarray:
    """Quantiles of ``y`` within bins of ``x``: array (len(quantiles), n_bins), NaN for empty bins.

    Linear interpolation between order statistics (numpy's default method); pairs with a non-finite x or y
    are dropped. Vectorised: one lexsort, no Python loop over bins.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    nb = len(edges) - 1
    out = np.full((len(quantiles), nb), np.nan)
    if y.size == 0:
        return out
    b = bin_index(x, edges)
    ys = y[np.lexsort((y, b))]
    counts = np.bincount(b, minlength=nb)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    full = counts > 0
    for i, q in enumerate(quantiles):
        pos = starts[full] + q * (counts[full] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts[full] + counts[full] - 1)
        out[i, full] = ys[lo] + (ys[hi] - ys[lo]) * (pos - lo)
    return out


def binned_mean_max(x, y, weights, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin of ``x``: the ``weights``-weighted mean of ``y`` and its maximum; NaN for empty bins.

    Used for per-iteration series (x = iteration start in s, weight = iteration duration in s), so the mean
    is a time average over the busy time in the bin.
    """
    x, y, w = (np.asarray(a, dtype=np.float64) for a in (x, y, weights))
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(w)
    x, y, w = x[keep], y[keep], w[keep]
    nb = len(edges) - 1
    mean, peak = np.full(nb, np.nan), np.full(nb, np.nan)
    if y.size == 0:
        return mean, peak
    b = bin_index(x, edges)
    sw = np.bincount(b, weights=w, minlength=nb)
    swy = np.bincount(b, weights=w * y, minlength=nb)
    n = np.bincount(b, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins give 0/0 = NaN, as documented
        mean = np.where(sw > 0, swy / sw, np.bincount(b, weights=y, minlength=nb) / n)
    order = np.argsort(b, kind="stable")
    full = np.flatnonzero(n)
    starts = np.concatenate(([0], np.cumsum(n)[:-1]))[full]
    peak[full] = np.maximum.reduceat(y[order], starts)
    return mean, peak


def rate_per_s(times, edges: np.ndarray) -> np.ndarray:
    """Events per second in each bin (a histogram of ``times`` divided by the bin width in s)."""
    t = _finite(times)
    counts, _ = np.histogram(t, bins=edges)
    return counts / np.diff(edges)
