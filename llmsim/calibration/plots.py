"""``llmsim calibrate report``: plots of a calibration against the measurements it should reproduce.

Per operator class in the measurements (gemm, gemm_fp8, attn_decode, attn_prefill, elementwise):

* ``CLASS_measured_vs_predicted``: every measured kernel's seconds against the cost model's prediction under
  the calibration (log-log, with y = x and +-10% lines), coloured by shape (GEMM N x K, decode batch, op);
* ``CLASS_efficiency``: measured efficiency (ideal seconds / (measured - launch)) against the size its curve
  is indexed by, with the calibration's fitted curve through them.

With a reference-executor CSV, ``reference_iterations`` (measured against predicted whole iterations) and
``reference_errors`` (relative error per kind and mode) under the datasheet roofline, the default profile and
the calibration, side by side: what calibration buys. CUDA-graph rows are priced without host terms; eager
rows with the engine profile given (``reference-executor`` by default), all of them eagerly.

Each figure is written as PNG and SVG; the bytes depend only on the inputs (fixed SVG id salt, no dates).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps

from llmsim.calibration.composition import predict_rows
from llmsim.calibration.fit import EFF_RANGE, curve_variable, ideal_times, predict_kernels
from llmsim.calibration.measurements import concat, read_measurements
from llmsim.calibration.validate import read_iterations
from llmsim.costmodel import CUDA_GRAPHS, DATASHEET, DEFAULT, CalibrationProfile, Curve, load_engine
from llmsim.errors import InputError
from llmsim.report.render import RenderedFigure, new_figure, render, report_style
from llmsim.scenario import resolve_calibration
from llmsim.specs import GpuSpec, load_hardware

CLASSES = ("gemm", "gemm_fp8", "attn_decode", "attn_prefill", "elementwise")
#: Where each class's efficiency plot puts a measured point (column of the normalised table, or the curve's
#: own variable, 2 ** curve_variable) and how the axis is labelled.
SIZE_AXIS = {"gemm": ("m", "rows M (tokens)"), "gemm_fp8": ("m", "rows M (tokens)"),
             "attn_decode": ("ctx", "cached tokens per sequence"),
             "attn_prefill": ("curve", "FLOPs per call"), "elementwise": ("curve", "ideal bytes moved")}
LEGEND_MAX = 16
KINDS = {"prefill": ("o", "#1f77b4"), "decode": ("s", "#2ca02c"), "mixed": ("^", "#d62728")}


def write_plots(hardware: str, measured_paths: Sequence[Path], calibration: str = "auto",
                out_dir: Path = Path("calibration-report"), reference: Path | None = None, *,
                overwrite: bool = False, engine: str = "reference-executor") -> list[Path]:
    """Write the report's PNG and SVG files into ``out_dir`` (created); returns their paths.

    Refuses (InputError, nothing written) when one of the files exists, unless ``overwrite``.
    """
    gpu = load_hardware(hardware)
    profile, _ = resolve_calibration(calibration, hardware, None, "--calibration")
    rows = concat([read_measurements(p) for p in measured_paths])
    classes = [c for c in CLASSES if (rows["op_class"] == c).any()]
    if not classes and reference is None:
        raise InputError(f"no kernels of the plotted classes ({', '.join(CLASSES)}) in the measurements",
                         source=", ".join(str(p) for p in measured_paths))
    slugs = [f"{c}_{kind}" for c in classes for kind in ("measured_vs_predicted", "efficiency")]
    slugs += ["reference_iterations", "reference_errors"] if reference is not None else []
    out = Path(out_dir)
    targets = [out / f"{slug}.{ext}" for slug in slugs for ext in ("png", "svg")]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise InputError(f"{len(existing)} plot file(s) exist, e.g. {existing[0].name}; pass --overwrite to "
                         "replace them or choose another --out", source=out)
    figures = _figures(gpu, profile, rows, classes, reference, engine)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fig in figures:
        for ext, data in (("png", fig.png), ("svg", fig.svg)):
            path = out / f"{fig.slug}.{ext}"
            path.write_bytes(data)
            written.append(path)
    return written


def _figures(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame, classes: list[str],
             reference: Path | None, engine: str) -> list[RenderedFigure]:
    """Every figure of the report, rendered."""
    out = []
    with report_style():
        for cls in classes:
            sub = rows[rows["op_class"] == cls].reset_index(drop=True)
            out.append(_scatter_figure(gpu, profile, sub, cls))
            out.append(_efficiency_figure(gpu, profile, sub, cls))
        if reference is not None:
            frame, predictions = reference_predictions(reference, gpu, profile, engine)
            out.append(_reference_scatter(frame, predictions, engine))
            out.append(_reference_errors(frame, predictions))
    return out


# -- kernels -----------------------------------------------------------------------------------------------
def groups(rows: pd.DataFrame, cls: str) -> list[tuple[str, np.ndarray]]:
    """(label, row positions) of each colour group of a class: GEMM shape N x K, decode batch, op."""
    if cls in ("gemm", "gemm_fp8"):
        keys = [(int(n) * int(k), f"{int(n)}x{int(k)}") for n, k in zip(rows["n"], rows["k"])]
    elif cls == "attn_decode":
        keys = [(int(b), f"batch {int(b)}") for b in rows["batch"]]
    else:
        keys = [(0, str(op)) for op in rows["op"]]
    labels = np.array([label for _, label in keys], dtype=object)
    ordered = sorted(set(keys))
    return [(label, np.flatnonzero(labels == label)) for _, label in ordered]


def _colors(n: int) -> list:
    cmap = colormaps["tab10" if n <= 10 else "turbo"]
    return [cmap(i) if n <= 10 else cmap(0.05 + 0.9 * i / max(n - 1, 1)) for i in range(n)]


def _guides(ax, lo: float, hi: float) -> None:
    """y = x and +-10% lines over [lo, hi] on a log-log axes."""
    x = np.array([lo, hi])
    ax.plot(x, x, color="0.2", linewidth=1.0, label="y = x")
    for f, style in ((1.1, "--"), (0.9, "--")):
        ax.plot(x, f * x, color="0.5", linewidth=0.8, linestyle=style, label="+-10%" if f > 1 else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)


def _legend(ax, n_groups: int, what: str) -> None:
    if n_groups <= LEGEND_MAX:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.text(1.02, 1.0, f"{n_groups} {what},\ncoloured in\nascending order", transform=ax.transAxes,
                va="top", fontsize=8)


def _scatter_figure(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame, cls: str) -> RenderedFigure:
    """Measured against predicted seconds of every kernel of ``cls``."""
    measured = rows["time_s"].to_numpy()
    predicted = predict_kernels(gpu, profile, rows)
    rel = np.abs(predicted / measured - 1)
    fig, (ax,) = new_figure(7.5, 5.0, right_in=2.0, top_in=0.6)
    lo, hi = min(measured.min(), predicted.min()) / 1.3, max(measured.max(), predicted.max()) * 1.3
    grouped = groups(rows, cls)
    for (label, idx), color in zip(grouped, _colors(len(grouped))):
        ax.scatter(measured[idx], predicted[idx], s=12, color=color, label=label, alpha=0.85, linewidths=0)
    _guides(ax, lo, hi)
    ax.set_xlabel("measured seconds")
    ax.set_ylabel("predicted seconds")
    ax.set_title(f"{cls} on {gpu.name}, calibration {profile.name}\n{len(rows)} kernels, median |error| "
                 f"{np.median(rel):.1%}, max {rel.max():.1%}")
    _legend(ax, len(grouped), "shapes")
    return render(fig, f"{cls}_measured_vs_predicted", f"{cls}: measured vs predicted",
                  "log-log; y = x and +-10% lines")


def measured_efficiency(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame) -> np.ndarray:
    """ideal / (measured - launch_s) per row, as the fit computes it (clipped to the fit's range)."""
    t = rows["time_s"].to_numpy()
    return np.clip(ideal_times(gpu, rows) / np.maximum(t - profile.launch_s, 0.05 * t), *EFF_RANGE)


def predicted_efficiency(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame) -> np.ndarray:
    """The efficiency the calibration gives each row: ideal / (predicted - launch_s)."""
    return ideal_times(gpu, rows) / np.maximum(predict_kernels(gpu, profile, rows) - profile.launch_s, 1e-15)


def size_of(gpu: GpuSpec, rows: pd.DataFrame, cls: str) -> np.ndarray:
    """The x of each row in the efficiency plot of ``cls`` (see ``SIZE_AXIS``)."""
    column, _ = SIZE_AXIS[cls]
    return 2.0 ** curve_variable(gpu, rows) if column == "curve" else rows[column].to_numpy(dtype=np.float64)


def _grid_rows(rows: pd.DataFrame, column: str, values: np.ndarray) -> pd.DataFrame:
    """Copies of ``rows``' first row with ``column`` swept over ``values``."""
    grid = pd.DataFrame([rows.iloc[0].to_dict()] * len(values)).reset_index(drop=True)
    grid[column] = values
    return grid


def _fitted_line(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame, cls: str,
                 x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, efficiency) of the calibration along the plot's size axis, for the shape of ``rows``."""
    column, _ = SIZE_AXIS[cls]
    lo, hi = np.log2(max(x.min(), 1.0)), np.log2(max(x.max(), 2.0))
    grid = 2.0 ** np.linspace(lo, hi, 64)
    if column == "curve":  # a class curve of one variable: the curve itself
        curve = profile.curve({"attn_prefill": "attn_prefill"}.get(cls, "elementwise"))
        eff = curve(np.log2(grid)) if isinstance(curve, Curve) else np.ones_like(grid)
        return grid, eff
    grid = np.unique(np.round(grid)) if column == "m" else grid
    return grid, predicted_efficiency(gpu, profile, _grid_rows(rows, column, grid))


def _efficiency_figure(gpu: GpuSpec, profile: CalibrationProfile, rows: pd.DataFrame, cls: str) -> RenderedFigure:
    """Measured efficiency against size, with the calibration's curve per shape (or the class curve)."""
    x, eff = size_of(gpu, rows, cls), measured_efficiency(gpu, profile, rows)
    fig, (ax,) = new_figure(7.5, 5.0, right_in=2.0, top_in=0.6)
    grouped = groups(rows, cls)
    per_group = SIZE_AXIS[cls][0] != "curve"
    for (label, idx), color in zip(grouped, _colors(len(grouped))):
        ax.scatter(x[idx], eff[idx], s=12, color=color, label=label, alpha=0.85, linewidths=0)
        if per_group:
            ax.plot(*_fitted_line(gpu, profile, rows.iloc[idx], cls, x[idx]), color=color, linewidth=0.9)
    if not per_group:
        ax.plot(*_fitted_line(gpu, profile, rows, cls, x), color="0.15", linewidth=1.4, label="fitted curve")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(SIZE_AXIS[cls][1])
    ax.set_ylabel("efficiency (ideal / measured time)")
    ax.set_title(f"{cls} efficiency on {gpu.name}\npoints: measured; lines: calibration {profile.name}")
    _legend(ax, len(grouped), "shapes")
    return render(fig, f"{cls}_efficiency", f"{cls}: efficiency vs size", "points: measured; lines: fitted")


# -- whole iterations --------------------------------------------------------------------------------------
def reference_predictions(path: Path, gpu: GpuSpec, profile: CalibrationProfile,
                          engine: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The reference executor's iterations and their predicted seconds under the datasheet roofline, the
    default profile and ``profile`` (graph rows without host terms, eager rows eagerly under ``engine``)."""
    frame = read_iterations(path)
    eager_engine = dataclasses.replace(load_engine(engine), graph_max_seqs=0)
    graph = (frame["mode"] != "eager").to_numpy()
    out = {}
    for name, prof in (("datasheet", DATASHEET), ("default", DEFAULT), (f"calibrated ({profile.name})", profile)):
        predicted = np.empty(len(frame))
        if graph.any():
            predicted[graph] = predict_rows(frame[graph], gpu, prof, CUDA_GRAPHS)
        if (~graph).any():
            predicted[~graph] = predict_rows(frame[~graph], gpu, prof, eager_engine)
        out[name] = predicted
    return frame, out


def _reference_scatter(frame: pd.DataFrame, predictions: dict[str, np.ndarray], engine: str) -> RenderedFigure:
    """Measured against predicted whole iterations, one panel per profile."""
    measured = frame["median_s"].to_numpy()
    fig, axes = new_figure(14.0, 5.0, 1, len(predictions), right_in=1.4, wgap_in=0.9)
    lo = min(measured.min(), *(p.min() for p in predictions.values())) / 1.3
    hi = max(measured.max(), *(p.max() for p in predictions.values())) * 1.3
    for ax, (name, predicted) in zip(axes, predictions.items()):
        for (kind, mode), idx in sorted(frame.groupby(["kind", "mode"]).indices.items()):
            marker, color = KINDS.get(str(kind), ("D", "0.4"))
            ax.scatter(measured[idx], predicted[idx], s=22, marker=marker, label=f"{kind}, {mode}",
                       color=color if mode != "eager" else "none", edgecolors=color, linewidths=1.0)
        _guides(ax, lo, hi)
        rel = np.abs(predicted / measured - 1)
        ax.set_title(f"{name}: median |error| {np.median(rel):.1%}")
        ax.set_xlabel("measured seconds")
    axes[0].set_ylabel("predicted seconds")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return render(fig, "reference_iterations", "whole iterations: measured vs predicted",
                  f"filled: CUDA graphs (no host terms); hollow: eager (engine {engine})")


def _reference_errors(frame: pd.DataFrame, predictions: dict[str, np.ndarray]) -> RenderedFigure:
    """Relative error of every iteration per (kind, mode), the profiles side by side."""
    measured = frame["median_s"].to_numpy()
    cats = sorted(frame.groupby(["kind", "mode"]).indices.items())
    fig, (ax,) = new_figure(9.0, 4.5, right_in=2.0)
    width = 0.8 / len(predictions)
    colors = _colors(len(predictions))
    for j, ((name, predicted), color) in enumerate(zip(predictions.items(), colors)):
        rel = predicted / measured - 1
        for i, (_, idx) in enumerate(cats):
            x = i - 0.4 + width * (j + 0.5) + np.linspace(-0.3, 0.3, idx.size) * width
            ax.scatter(x, rel[idx], s=10, color=color, label=name if i == 0 else None, linewidths=0)
    for y, style in ((0.0, "-"), (0.1, "--"), (-0.1, "--")):
        ax.axhline(y, color="0.4", linewidth=0.8, linestyle=style)
    ax.set_xticks(range(len(cats)), [f"{k}\n{m}" for (k, m), _ in cats])
    ax.set_ylabel("predicted / measured - 1")
    ax.set_title("whole-iteration error per kind and mode (dashed: +-10%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return render(fig, "reference_errors", "whole iterations: error per kind", "one point per iteration")
