"""Matplotlib plumbing for the report: a fixed style, new figures on the Agg canvas, PNG/SVG bytes.

No pyplot: figures are plain :class:`matplotlib.figure.Figure` objects attached to an Agg canvas, so
the report neither touches the user's backend nor keeps global figure state. Output is deterministic:
the SVG id salt is fixed, glyphs are written as paths, and neither format carries a date.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: rcParams for every report figure (read when artists are made and when files are written).
STYLE = {
    "svg.hashsalt": "llmsim-report", "svg.fonttype": "path", "font.size": 9.0, "axes.titlesize": 10.0,
    "axes.labelsize": 9.0, "legend.fontsize": 8.0, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.4,
    "figure.dpi": 100.0, "savefig.dpi": 110.0, "path.simplify": True, "legend.frameon": False,
}
PNG_METADATA = {"Software": "llmsim report (matplotlib)"}
SVG_METADATA = {"Date": None, "Creator": "llmsim report (matplotlib)"}
#: Colours for runs, in order (matplotlib's tab10, colour-blind friendlier than the defaults of old).
RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf")
LINESTYLES = ("-", "--", ":", "-.")


@dataclass(frozen=True)
class RenderedFigure:
    """One figure, ready for the page and for files: ``slug`` names the files (``slug.png``, ``slug.svg``)."""

    slug: str
    title: str
    caption: str
    png: bytes
    svg: bytes


@contextmanager
def report_style() -> Iterator[None]:
    """Apply :data:`STYLE` for the duration (restores the caller's rcParams afterwards)."""
    with matplotlib.rc_context(STYLE):
        yield


def run_color(i: int) -> str:
    """The colour of the ``i``-th run (cycling after ten)."""
    return RUN_COLORS[i % len(RUN_COLORS)]


def new_figure(width_in: float, height_in: float, nrows: int = 1, ncols: int = 1,
               **subplot_kw) -> tuple[Figure, list]:
    """A constrained-layout figure of ``width_in`` x ``height_in`` inches and its axes as a flat list."""
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, list(axes.ravel())


def render(fig: Figure, slug: str, title: str, caption: str) -> RenderedFigure:
    """PNG and SVG bytes of ``fig`` (call inside :func:`report_style`)."""
    png, svg = io.BytesIO(), io.BytesIO()
    fig.savefig(png, format="png", metadata=PNG_METADATA)
    fig.savefig(svg, format="svg", metadata=SVG_METADATA)
    return RenderedFigure(slug, title, caption, png.getvalue(), svg.getvalue())


def legend_if_labelled(ax, **kwargs) -> None:
    """Draw a legend on ``ax`` when at least one artist has a label."""
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(handles, labels, **kwargs)


def auto_log_x(ax, xs: Sequence) -> None:
    """Switch ``ax`` to a log x axis when the positive data span more than two decades (p0.1 .. p99.9)."""
    values = np.concatenate([np.asarray(x, dtype=np.float64) for x in xs]) if len(xs) else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size > 1:
        lo, hi = np.percentile(values, [0.1, 99.9])
        if lo > 0 and hi / lo > 100:
            ax.set_xscale("log")


def empty_note(ax, text: str = "no data") -> None:
    """Write ``text`` in the middle of an axes that has nothing to show."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
