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


def pareto_figure(table: pd.DataFrame, highlight: int | None = None) -> Figure:
    """Output tokens/s per GPU against p99 TTFT and p99 TPOT; the front joined, ``highlight`` starred."""
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
        ax.set_xlabel("output tokens/s per GPU")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Throughput per GPU against latency (labels: point numbers)")
    return fig


def dimension_groups(axes_keys: Sequence[str], zip_keys: Sequence[str]) -> list[tuple[str, ...]]:
    """The sweep's dimensions: each axis alone, and the zip keys together (they vary as one)."""
    return [(k,) for k in axes_keys] + ([tuple(zip_keys)] if zip_keys else [])


def axis_figure(table: pd.DataFrame, group: tuple[str, ...], others: Sequence[tuple[str, ...]]) -> Figure:
    """p99 TTFT, p99 TPOT and output tokens/s against one dimension; one line per setting of the others."""
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, len(AXIS_METRICS))
    x_labels, x_of = _positions(table, group)
    other_cols = [k for g in others for k in g]
    combos = _combinations(table, other_cols)
    many = len(combos) > MAX_LABELLED_LINES
    for ax, (column, label, scale) in zip(axes, AXIS_METRICS):
        for combo in combos:
            rows = _select(table, other_cols, combo).copy()
            rows["_x"] = [x_of[_key(table, group, i)] for i in rows.index]
            rows = rows.sort_values("_x", kind="stable")
            y = np.where(rows["status"] == "ok", rows[column].astype(float) * scale, np.nan)
            name = ", ".join(f"{k}={v}" for k, v in zip(other_cols, combo)) or "all"
            ax.plot(rows["_x"], y, "-o", ms=3, lw=0.7 if many else 1.4, alpha=0.35 if many else 1.0,
                    color="gray" if many else None, label=None if many else name)
        if many:
            median = table.assign(_x=[x_of[_key(table, group, i)] for i in table.index],
                                  _y=np.where(table["status"] == "ok", table[column].astype(float) * scale, np.nan))
            med = median.groupby("_x")["_y"].median()
            ax.plot(med.index, med.to_numpy(), "-o", color="#1f4e8c", lw=2, label="median over the other axes")
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


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (SVG without a date, with fixed ids, so reruns give equal files)."""
    out = []
    for fmt in ("png", "svg"):
        buf = io.BytesIO()
        with matplotlib.rc_context({"svg.hashsalt": "llmsim"}):
            fig.savefig(buf, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
        path = stem.with_suffix(f".{fmt}")
        write_atomic(path, buf.getvalue())
        out.append(path)
    return out


def png_base64(fig: Figure) -> str:
    """The figure as a base64 PNG, for embedding in HTML."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def file_stem(name: str) -> str:
    """A safe file name for a dimension (``parallelism.tp`` -> ``parallelism-tp``)."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", name).strip("-") or "axis"
