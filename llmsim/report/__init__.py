"""HTML reports of llmsim runs: ``write_report([run_dir, ...], "report.html")`` or ``llmsim report``.

Reading guide, in the direction data flows:

1. ``load.py`` -- a run folder (requests.csv, iterations.csv, itl.csv, summary.json, scenario.yaml) into a
   :class:`RunData`; anything missing or malformed is an :class:`llmsim.errors.InputError`.
2. ``sample.py`` -- downsampling (bounded-size CDFs, time-binned quantiles and means), pure numpy.
3. ``render.py`` -- the matplotlib style (Agg, deterministic SVG/PNG) and figure helpers;
   ``figures_latency.py`` and ``figures_engine.py`` -- one function per figure, each returning a Figure.
4. ``tables.py`` -- the summary, SLO and scenario-difference tables (unit conversions: s -> ms, fraction -> %).
5. ``html.py`` -- the self-contained page; ``assemble.py`` -- which figures and sections, in what order.
6. ``cli.py`` -- ``register(app)`` adds the ``llmsim report`` command.

This module imports nothing heavy at import time, so the command line starts quickly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

__all__ = ["write_report", "default_figures_dir", "figure_files"]


def default_figures_dir(out_html: str | Path) -> Path:
    """``<stem>_figures/`` beside the HTML file (``report.html`` -> ``report_figures/``)."""
    out = Path(out_html)
    return out.with_name(f"{out.stem}_figures")


def figure_files(figures_dir: str | Path, n_runs: int) -> list[Path]:
    """The PNG and SVG files a report of ``n_runs`` runs writes into ``figures_dir``."""
    from llmsim.report.assemble import figure_slugs
    folder = Path(figures_dir)
    return [folder / f"{slug}.{ext}" for slug in figure_slugs(n_runs) for ext in ("png", "svg")]


def write_report(run_dirs: Sequence[str | Path], out_html: str | Path, *, figures_dir: str | Path | None = None,
                 title: str | None = None) -> Path:
    """Write a self-contained HTML report of one run, or a side-by-side comparison of several.

    Every figure is also written as ``<slug>.png`` and ``<slug>.svg`` into ``figures_dir``. Existing files
    there are replaced (the command line refuses without ``--overwrite``). Same runs give the same bytes.

    Args:
        run_dirs: folders written by ``llmsim run`` (legends and columns are named after the folders).
        out_html: the HTML file to write (parent folders are created).
        figures_dir: where the PNG/SVG copies go (default :func:`default_figures_dir`).
        title: the page title (default "llmsim report: a vs b").

    Returns:
        The path of the HTML file.

    Raises:
        InputError: a run folder is missing or malformed, or ``out_html`` is a folder.
    """
    from llmsim.errors import InputError
    from llmsim.report.assemble import build_figures, build_sections, default_title, subtitle
    from llmsim.report.html import page
    from llmsim.report.load import load_runs
    from llmsim.report.render import report_style

    out = Path(out_html)
    if out.is_dir():
        raise InputError("expected an HTML file name, got a folder", source=out)
    runs = load_runs(list(run_dirs))
    fig_dir = Path(figures_dir) if figures_dir is not None else default_figures_dir(out)
    with report_style():
        figs = build_figures(runs)
    _write_figures(fig_dir, figs.values())
    href = quote(Path(os.path.relpath(fig_dir.resolve(), out.resolve().parent)).as_posix())
    html = page(title or default_title(runs), _subtitle_with_files(subtitle(runs), fig_dir),
                build_sections(runs, figs, href))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def _subtitle_with_files(text: str, fig_dir: Path) -> str:
    return f"{text}. Figures as PNG and SVG in {fig_dir}."


def _write_figures(folder: Path, figs) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fig in figs:
        (folder / f"{fig.slug}.png").write_bytes(fig.png)
        (folder / f"{fig.slug}.svg").write_bytes(fig.svg)
