"""Figures of a sweep: the Pareto chart and one line plot per varied dimension (matplotlib, no pyplot state).

Latencies are drawn in milliseconds (this is the only place the sweep converts units). Points that did not
finish are left out of the Pareto chart and show as gaps in the line plots.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from llmsim.sweep.cheapest import pareto_front
from llmsim.sweep.store import write_atomic

THROUGHPUT_PER_GPU = "output_tokens_per_s_per_gpu"
PARETO_LATENCIES = (("ttft_p99_s", "p99 TTFT (ms)"), ("tpot_p99_s", "p99 TPOT (ms)"))
AXIS_METRICS = (("ttft_p99_s", "p99 TTFT (ms)", 1e3), ("tpot_p99_s", "p99 TPOT (ms)", 1e3),
                ("output_tokens_per_s", "output tokens/s", 1.0))
#: Above this many combinations of the other dimensions, lines are drawn thin and unlabelled, with the median.
MAX_LABELLED_LINES = 8


def pareto_figure(table: pd.DataFrame, highlight: int | None = None,
                  limits_s: dict[str, float] | None = None) -> Figure:
    """Output tokens/s per GPU against p99 TTFT and p99 TPOT; the front joined, ``highlight`` starred.

    ``limits_s`` maps a latency column (``ttft_p99_s``) to its SLO limit, drawn as a dashed line. The
    latency axis is logarithmic when the values span more than two decades (overloaded points).
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, len(PARETO_LATENCIES))
    ok = table[table["status"] == "ok"]
    for ax, (column, label) in zip(axes, PARETO_LATENCIES):
        ax.scatter(ok[THROUGHPUT_PER_GPU], ok[column] * 1e3, s=22, color="#8aa4c8", label="points")
        front = pareto_front(table, THROUGHPUT_PER_GPU, column)
        rows = ok.set_index("point").loc[front]
        ax.plot(rows[THROUGHPUT_PER_GPU], rows[column] * 1e3, "-o", color="#1f4e8c", ms=5, label="Pareto front")
        for point, r in rows.iterrows():
            ax.annotate(str(point), (r[THROUGHPUT_PER_GPU], r[column] * 1e3), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
        if highlight is not None and highlight in set(ok["point"]):
            r = ok.set_index("point").loc[highlight]
            ax.scatter([r[THROUGHPUT_PER_GPU]], [r[column] * 1e3], marker="*", s=220, color="#d1495b",
                       zorder=5, label=f"cheapest (point {highlight})")
        if limits_s and column in limits_s:
            ax.axhline(limits_s[column] * 1e3, ls="--", color="#d1495b", lw=1, label="SLO")
        _log_if_wide(ax, ok[column])
        ax.set_xlabel("output tokens/s per GPU")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Throughput per GPU against latency (labels: point numbers)")
    return fig


def _log_if_wide(ax, values: pd.Series) -> None:
    """Use a logarithmic y axis when the positive ``values`` span more than two decades."""
    v = values.dropna().astype(float)
    v = v[v > 0]
    if len(v) and v.max() / v.min() > 100:
        ax.set_yscale("log")


def dimension_groups(axes_keys: Sequence[str], zip_keys: Sequence[str]) -> list[tuple[str, ...]]:
    """The sweep's dimensions: each axis alone, and the zip keys together (they vary as one)."""
    return [(k,) for k in axes_keys] + ([tuple(zip_keys)] if zip_keys else [])


def axis_figure(table: pd.DataFrame, group: tuple[str, ...], others: Sequence[tuple[str, ...]],
                limits_s: dict[str, float] | None = None) -> Figure:
    """p99 TTFT, p99 TPOT and output tokens/s against one dimension; one line per setting of the others.

    ``limits_s`` (latency column -> SLO limit, seconds) adds dashed SLO lines.
    """
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(AXIS_METRICS))
    x_labels, x_of = _positions(table, group)
    x = pd.Series([x_of[_key(table, group, i)] for i in table.index], index=table.index)
    other_cols = [k for g in others for k in g]
    for ax, (column, label, scale) in zip(axes, AXIS_METRICS):
        y = pd.Series(np.where(table["status"] == "ok", table[column].astype(float) * scale, np.nan),
                      index=table.index)
        _draw_lines(ax, table, x, y, other_cols)
        if limits_s and column in limits_s:
            ax.axhline(limits_s[column] * scale, ls="--", color="#d1495b", lw=1)
        if scale != 1.0:
            _log_if_wide(ax, y)
        if x_labels:
            ax.set_xticks(range(len(x_labels)))
            ax.set_xticklabels(x_labels, rotation=20, fontsize=8)
        ax.set_xlabel(" + ".join(group))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if labels:
        fig.legend(handles, labels, loc="outside right upper", fontsize=7)
    fig.suptitle(f"{' + '.join(group)}: latency and throughput")
    return fig


def _draw_lines(ax, table: pd.DataFrame, x: pd.Series, y: pd.Series, other_cols: list[str]) -> None:
    """One line of y against x per setting of ``other_cols``; beyond MAX_LABELLED_LINES, grey plus median."""
    combos = _combinations(table, other_cols)
    many = len(combos) > MAX_LABELLED_LINES
    for combo in combos:
        index = _select(table, other_cols, combo).index
        order = x[index].sort_values(kind="stable").index
        name = ", ".join(f"{k}={v}" for k, v in zip(other_cols, combo)) or "all"
        ax.plot(x[order], y[order], "-o", ms=3, lw=0.7 if many else 1.4, alpha=0.35 if many else 1.0,
                color="gray" if many else None, label=None if many else name)
    if many:
        median = y.groupby(x).median()
        ax.plot(median.index, median.to_numpy(), "-o", color="#1f4e8c", lw=2, label="median over the other axes")


def _positions(table: pd.DataFrame, group: tuple[str, ...]) -> tuple[list[str], dict]:
    """x positions of a dimension: numeric values as themselves, anything else as 0, 1, 2 in grid order."""
    keys = list(dict.fromkeys(_key(table, group, i) for i in table.index))
    if len(group) == 1 and all(isinstance(k[0], (int, float, np.integer, np.floating)) and not isinstance(k[0], bool)
                               for k in keys):
        return [], {k: float(k[0]) for k in keys}
    labels = [", ".join(str(v) for v in k) for k in keys]
    return labels, {k: i for i, k in enumerate(keys)}


def _key(table: pd.DataFrame, group: tuple[str, ...], index) -> tuple:
    """The values of ``group`` in row ``index`` (a hashable tuple)."""
    return tuple(table.at[index, k] for k in group)


def _combinations(table: pd.DataFrame, columns: list[str]) -> list[tuple]:
    """Distinct value tuples of ``columns`` in grid order ([()] when there are none)."""
    if not columns:
        return [()]
    return list(dict.fromkeys(tuple(table.at[i, c] for c in columns) for i in table.index))


def _select(table: pd.DataFrame, columns: list[str], values: tuple) -> pd.DataFrame:
    """Rows whose ``columns`` equal ``values``."""
    mask = np.ones(len(table), dtype=bool)
    for c, v in zip(columns, values):
        mask &= (table[c] == v).to_numpy()
    return table[mask]


def render(fig: Figure) -> dict[str, bytes]:
    """The figure as PNG and SVG bytes (SVG without a date and with fixed ids, so reruns give equal files)."""
    out = {}
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": "llmsim"}):
            fig.savefig(buf, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
        out[fmt] = buf.getvalue()
    return out


def save_figure(fig: Figure, stem: Path) -> tuple[list[Path], bytes]:
    """Write ``stem.png`` and ``stem.svg``; returns the paths and the PNG bytes (for embedding)."""
    images = render(fig)
    paths = []
    for fmt, data in images.items():
        path = stem.with_suffix(f".{fmt}")
        write_atomic(path, data)
        paths.append(path)
    return paths, images["png"]


def png_base64(png: bytes) -> str:
    """PNG bytes as base64 text, for a ``data:`` URL in HTML."""
    return base64.b64encode(png).decode("ascii")


def file_stem(name: str) -> str:
    """A safe file name for a dimension (``parallelism.tp`` -> ``parallelism-tp``)."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-") or "axis"
