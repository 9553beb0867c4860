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
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

#: rcParams for every report figure (read when artists are made and when files are written).
STYLE = {
    "svg.hashsalt": "llmsim-report", "svg.fonttype": "path", "font.size": 9.0, "axes.titlesize": 10.0,
    "axes.labelsize": 9.0, "legend.fontsize": 8.0, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False, "lines.linewidth": 1.4,
    "figure.dpi": 110.0, "savefig.dpi": 110.0, "path.simplify": True, "legend.frameon": False,
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


def new_figure(width_in: float, height_in: float, nrows: int = 1, ncols: int = 1, *, left_in: float = 0.8,
               right_in: float = 0.25, top_in: float = 0.4, bottom_in: float = 0.55, hgap_in: float = 0.25,
               wgap_in: float = 0.8, **subplot_kw) -> tuple[Figure, list]:
    """A figure of ``width_in`` x ``height_in`` inches with a grid of axes placed by fixed margins (inches).

    Fixed margins instead of a layout engine: the report's figures have known sizes and labels, and a
    layout engine costs more than drawing itself. ``hgap_in``/``wgap_in`` separate rows/columns.
    Returns the figure and its axes as a flat list (row by row).
    """
    fig = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(fig)
    axes_h = (height_in - top_in - bottom_in - (nrows - 1) * hgap_in) / nrows
    axes_w = (width_in - left_in - right_in - (ncols - 1) * wgap_in) / ncols
    fig.subplots_adjust(left=left_in / width_in, right=1 - right_in / width_in, bottom=bottom_in / height_in,
                        top=1 - top_in / height_in, hspace=hgap_in / axes_h, wspace=wgap_in / axes_w)
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
    """Switch ``ax`` to a log x axis for long-tailed positive data: max > 10 x median, or p99.9 > 100 x p0.1."""
    values = np.concatenate([np.asarray(x, dtype=np.float64) for x in xs]) if len(xs) else np.zeros(0)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size > 1:
        lo, mid, hi = np.percentile(values, [0.1, 50, 99.9])
        if values.max() > 10 * mid or hi > 100 * lo:
            ax.set_xscale("log")
            decades = np.log10(values.max() / values.min())
            ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if decades <= 3 else (1.0,)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())


def empty_note(ax, text: str = "no data") -> None:
    """Write ``text`` in the middle of an axes that has nothing to show."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def legend_room_in(labels: Sequence[str]) -> float:
    """Right margin (inches) for a legend beside the axes: a handle plus ~0.068 in per character at 8 pt."""
    return 0.75 + 0.068 * max(len(s) for s in labels) if labels else 0.25


def side_legend(ax, handles: Sequence, labels: Sequence[str]) -> None:
    """A legend just right of ``ax``, top-aligned (make room with :func:`legend_room_in`)."""
    if labels:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def run_handles(names: Sequence[str], styles: Sequence[tuple[str, str]] = ()) -> tuple[list, list[str]]:
    """Legend entries: one colour swatch per run, then one grey line per (linestyle, meaning)."""
    handles = [Line2D([], [], color=run_color(i), linewidth=2.5) for i in range(len(names))]
    handles += [Line2D([], [], color="0.3", linestyle=ls) for ls, _ in styles]
    return handles, [*names, *[meaning for _, meaning in styles]]
