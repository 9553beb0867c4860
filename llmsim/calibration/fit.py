"""Fit a GPU's efficiency curves (a :class:`CalibrationProfile`) from kernel measurements.

For every measured kernel the *ideal* time is computed with the cost model's own conventions
(:mod:`llmsim.costmodel.operators`: same FLOP and byte counts, same peaks), so that
``efficiency = ideal / (measured - launch_s)``; the cost model later prices the kernel as
``ideal / efficiency + launch_s`` and reproduces the measurement at every measured point. Curves:

* ``gemm/NxK`` (and ``gemm_fp8/NxK``) for every measured weight shape, over log2 of the rows M (exact at the
  measured M, interpolated between them); ``gemm`` / ``gemm_fp8`` over log2 arithmetic intensity for other
  shapes (median efficiency per half-octave bin);
* ``attn_decode`` over (log2 sequences, log2 cached tokens per sequence); ``attn_prefill`` over log2 FLOPs
  per layer; ``elementwise`` over log2 bytes (or the measured copy bandwidth fraction when the data has no
  elementwise kernels); ``collective`` stays at the default unless all-reduces were measured.

The residuals of the fitted curves against the measurements are stored in the profile and printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmsim.costmodel.efficiency import CLASS_VARIABLES, DEFAULT, CalibrationProfile, Curve, Table2D, plog2
from llmsim.costmodel.operators import ACT_BYTES
from llmsim.errors import InputError
from llmsim.specs.hardware import GpuSpec

DEFAULT_LAUNCH_S = 2.0e-6  # per-kernel cost inside a captured graph when the data does not measure it
EFF_RANGE = (0.01, 1.5)


@dataclass(frozen=True)
class Ideal:
    """Ideal time of each row (seconds) and the variable its curve is indexed by."""

    seconds: np.ndarray
    variable: np.ndarray


def ideal_times(gpu: GpuSpec, rows: pd.DataFrame) -> np.ndarray:
    """Ideal seconds of every row: max(FLOPs / peak, bytes / bandwidth) in the cost model's conventions."""
    flops, nbytes, peak = _work(gpu, rows)
    return np.maximum(flops / peak, nbytes / gpu.memory_bandwidth_bytes_per_s)


def _work(gpu: GpuSpec, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cls = rows["op_class"].to_numpy()
    g = lambda c: rows[c].fillna(0).to_numpy(dtype=np.float64)  # noqa: E731
    m, n, k = g("m"), g("n"), g("k")
    heads, kv_heads, hd = g("heads"), np.maximum(g("kv_heads"), 1), g("head_dim")
    batch, ctx, chunk, prior = np.maximum(g("batch"), 1), g("ctx"), g("chunk"), g("prior")
    kv_tok, q_io = 2 * kv_heads * hd * ACT_BYTES, 2 * heads * hd * ACT_BYTES
    wb = np.where(cls == "gemm_fp8", 1.0, 2.0)
    gemm = np.isin(cls, ("gemm", "gemm_fp8"))
    dec, pre = cls == "attn_decode", cls == "attn_prefill"
    pairs = batch * chunk * (prior + (chunk + 1) / 2)
    flops = np.select([gemm, dec, pre], [2 * m * n * k, 4 * batch * (ctx + 1) * heads * hd, 4 * pairs * heads * hd], 0.0)
    nbytes = np.select(
        [gemm, dec, pre],
        [n * k * wb + (k + n) * ACT_BYTES * m, batch * ((ctx + 1) * kv_tok + q_io + kv_tok),
         batch * ((prior + chunk) * kv_tok + chunk * (q_io + kv_tok))], g("bytes"))
    peak = np.where(cls == "gemm_fp8", gpu.peak_for("fp8"), gpu.peak_for("bf16"))
    return flops, nbytes, peak


def curve_variable(gpu: GpuSpec, rows: pd.DataFrame) -> np.ndarray:
    """The x of each row's class curve (log2 intensity, FLOPs or bytes), as the cost model evaluates it."""
    flops, nbytes, _ = _work(gpu, rows)
    cls = rows["op_class"].to_numpy()
    x = np.where(np.isin(cls, ("gemm", "gemm_fp8")), flops / np.maximum(nbytes, 1.0),
                 np.where(cls == "attn_prefill", flops, nbytes))
    return plog2(np.maximum(x, 1.0))


def binned_curve(x: np.ndarray, eff: np.ndarray, variable: str, width: float = 0.5) -> Curve:
    """Median efficiency per bin of ``width`` in x; knots at each bin's median x."""
    bins = np.floor(x / width)
    knots, values = [], []
    for b in np.unique(bins):
        sel = bins == b
        knots.append(float(np.median(x[sel])))
        values.append(float(np.exp(np.median(np.log(eff[sel])))))
    return Curve(np.array(knots), np.clip(np.array(values), *EFF_RANGE), variable)


MAX_POINT_KNOTS = 32


def points_curve(x: np.ndarray, eff: np.ndarray, variable: str) -> Curve:
    """A curve through the (median) efficiency at every distinct x; dense grids (more than 32 distinct x,
    e.g. Vidur's 259 token counts) are thinned to quarter-octave bins so profiles stay small."""
    if np.unique(x).size > MAX_POINT_KNOTS:
        return binned_curve(x, eff, variable, width=0.25)
    frame = pd.DataFrame({"x": x, "e": np.log(eff)}).groupby("x")["e"].median()
    return Curve(frame.index.to_numpy(float), np.clip(np.exp(frame.to_numpy()), *EFF_RANGE), variable)


def decode_table(batch: np.ndarray, ctx: np.ndarray, eff: np.ndarray) -> Table2D:
    """Efficiency over (log2 sequences, log2 cached tokens); empty cells filled from their row/column."""
    batch, ctx = np.asarray(batch, float), np.asarray(ctx, float)
    # quarter-octave resolution keeps dense grids (Vidur's 128 batch sizes x 96 contexts) small
    xb, yc = (np.round(4 * plog2(np.maximum(v, 1))) / 4 for v in (batch, ctx))
    xs, ys = np.unique(xb), np.unique(yc)
    grid = np.full((xs.size, ys.size), np.nan)
    frame = pd.DataFrame({"x": xb, "y": yc, "e": np.log(eff)}).groupby(["x", "y"])["e"].median()
    for (x, y), e in frame.items():
        grid[np.searchsorted(xs, x), np.searchsorted(ys, y)] = np.exp(e)
    for i in range(xs.size):  # fill gaps along the context axis, then along the batch axis
        row = grid[i]
        ok = ~np.isnan(row)
        if ok.any():
            grid[i] = np.interp(ys, ys[ok], row[ok])
    for j in range(ys.size):
        col = grid[:, j]
        ok = ~np.isnan(col)
        grid[:, j] = np.interp(xs, xs[ok], col[ok])
    return Table2D(xs, ys, np.clip(grid, *EFF_RANGE), CLASS_VARIABLES["attn_decode"])


def fit_profile(gpu: GpuSpec, rows: pd.DataFrame, *, name: str, source: str) -> CalibrationProfile:
    """Fit every curve the data supports; classes without data keep the documented defaults."""
    if rows.empty:
        raise InputError("no usable measurements to fit", source=source)
    launch = rows.loc[rows["op_class"] == "launch", ["op", "time_s"]]
    graph = launch[launch["op"] == "graph_kernel"]["time_s"]
    launch_s = float(graph.median()) if len(graph) else DEFAULT_LAUNCH_S
    fit_rows = rows[~rows["op_class"].isin(("launch",))].reset_index(drop=True)
    ideal = ideal_times(gpu, fit_rows)
    eff = np.clip(ideal / np.maximum(fit_rows["time_s"].to_numpy() - launch_s, 0.05 * fit_rows["time_s"].to_numpy()),
                  *EFF_RANGE)
    curves = dict(DEFAULT.curves)
    _gemm_curves(gpu, fit_rows, eff, curves)
    _attention_curves(gpu, fit_rows, eff, curves)
    _memory_curves(gpu, fit_rows, eff, curves)
    profile = CalibrationProfile(name=name, curves=curves, launch_s=launch_s, source=source)
    residuals = kernel_residuals(gpu, profile, rows)
    return CalibrationProfile(name=name, curves=curves, launch_s=launch_s, source=source,
                              residuals=summarize_residuals(residuals))


def _gemm_curves(gpu: GpuSpec, rows: pd.DataFrame, eff: np.ndarray, curves: dict) -> None:
    x = curve_variable(gpu, rows)
    for cls in ("gemm", "gemm_fp8"):
        sel = (rows["op_class"] == cls).to_numpy()
        if not sel.any():
            continue
        curves[cls] = binned_curve(x[sel], eff[sel], CLASS_VARIABLES[cls])
        sub = rows[sel]
        for (n, k), idx in sub.groupby(["n", "k"]).groups.items():
            positions = rows.index.get_indexer(idx)
            if len(positions) >= 2:
                m = plog2(np.maximum(rows["m"].to_numpy()[positions], 1.0))
                curves[f"{cls}/{int(n)}x{int(k)}"] = points_curve(m, eff[positions], "log2_tokens")


def _attention_curves(gpu: GpuSpec, rows: pd.DataFrame, eff: np.ndarray, curves: dict) -> None:
    dec = (rows["op_class"] == "attn_decode").to_numpy()
    if dec.any():
        curves["attn_decode"] = decode_table(rows["batch"].to_numpy()[dec], rows["ctx"].to_numpy()[dec], eff[dec])
    pre = (rows["op_class"] == "attn_prefill").to_numpy()
    if pre.any():
        curves["attn_prefill"] = binned_curve(curve_variable(gpu, rows)[pre], eff[pre], CLASS_VARIABLES["attn_prefill"])


def _memory_curves(gpu: GpuSpec, rows: pd.DataFrame, eff: np.ndarray, curves: dict) -> None:
    x = curve_variable(gpu, rows)
    elem = (rows["op_class"] == "elementwise").to_numpy()
    if elem.any():
        curves["elementwise"] = binned_curve(x[elem], eff[elem], CLASS_VARIABLES["elementwise"])
    else:
        copy = (rows["op_class"] == "hbm").to_numpy()
        if copy.any():
            value = float(np.median(eff[copy]))
            curves["elementwise"] = Curve(np.array([0.0]), np.array([value]), CLASS_VARIABLES["elementwise"])
    coll = (rows["op_class"] == "collective").to_numpy()
    if coll.any():
        curves["collective"] = binned_curve(x[coll], eff[coll], CLASS_VARIABLES["collective"])


def predict_kernels(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame) -> np.ndarray:
    """Seconds the cost model predicts for each measured kernel under ``profile``."""
    ideal = ideal_times(gpu, rows)
    cls = rows["op_class"].to_numpy()
    x = curve_variable(gpu, rows)
    eff = np.ones(len(rows))
    for i, c in enumerate(cls):
        eff[i] = _row_efficiency(profile, rows.iloc[i], c, x[i])
    return ideal / eff + profile.launch_s


def _row_efficiency(profile: CalibrationProfile, row: pd.Series, cls: str, x: float) -> float:
    if cls in ("gemm", "gemm_fp8"):
        shaped = profile.curve(f"{cls}/{int(row['n'])}x{int(row['k'])}")
        if shaped is not None:
            return float(shaped(plog2(max(row["m"], 1.0))))
        return float((profile.curve(cls) or profile.curve("gemm"))(x))
    if cls == "attn_decode":
        table = profile.curve("attn_decode")
        if isinstance(table, Table2D):
            return float(table(plog2(max(row["batch"], 1)), plog2(max(row["ctx"], 1))))
        return float(table(x))
    key = {"attn_prefill": "attn_prefill", "hbm": "elementwise", "collective": "collective"}.get(cls, "elementwise")
    curve = profile.curve(key)
    return float(curve(x)) if isinstance(curve, Curve) else 1.0


def kernel_residuals(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame) -> pd.DataFrame:
    """Measured vs predicted seconds per kernel (relative error = predicted / measured - 1)."""
    rows = rows[~rows["op_class"].isin(("launch",))].reset_index(drop=True)
    predicted = predict_kernels(gpu, profile, rows)
    out = rows[["op_class", "op", "m", "n", "k", "batch", "ctx", "chunk", "prior", "time_s"]].copy()
    out["predicted_s"] = predicted
    out["rel_err"] = predicted / rows["time_s"].to_numpy() - 1.0
    return out


def summarize_residuals(res: pd.DataFrame) -> dict:
    """Per operator class: points, median and worst absolute relative error, and the 5%/95% signed quantiles."""
    out = {}
    for cls, group in res.groupby("op_class"):
        err = group["rel_err"].to_numpy()
        out[str(cls)] = {"points": int(err.size), "median_abs": _r(np.median(np.abs(err))),
                         "p90_abs": _r(np.percentile(np.abs(err), 90)), "max_abs": _r(np.max(np.abs(err))),
                         "q05": _r(np.percentile(err, 5)), "q95": _r(np.percentile(err, 95))}
    return out


def _r(v: float) -> float:
    return float(f"{float(v):.4g}")
