"""``llmsim report RUN_DIR [RUN_DIR...] -o report.html``: the command, added to the app by :func:`register`.

The command only parses arguments, refuses to replace existing files without ``--overwrite``, and
calls :func:`llmsim.report.write_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from llmsim.errors import InputError


def existing_outputs(out_html: Path, figures_dir: Optional[Path], n_runs: int) -> list[Path]:
    """The files a report would replace: the HTML file and any figure file of the same name."""
    from llmsim.report import default_figures_dir, figure_files
    folder = figures_dir if figures_dir is not None else default_figures_dir(out_html)
    return [p for p in [out_html, *figure_files(folder, n_runs)] if p.exists()]


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app`` (``llmsim.cli.app``, or a fresh Typer in tests)."""
    from llmsim.cli import clean_errors  # here, not at the top: llmsim.cli imports this module

    @app.command("report")
    @clean_errors
    def report(run_dirs: List[Path] = typer.Argument(..., metavar="RUN_DIR...",
                                                     help="Run folders written by `llmsim run`; several give a "
                                                          "side-by-side comparison."),
               out: Path = typer.Option(Path("report.html"), "-o", "--out", help="The HTML file to write."),
               figures_dir: Optional[Path] = typer.Option(
                   None, "--figures-dir", help="Folder for PNG and SVG copies of every figure "
                                               "(default: <report name>_figures/ beside the HTML)."),
               title: Optional[str] = typer.Option(None, "--title", help="Page title (default: the run names)."),
               overwrite: bool = typer.Option(False, "--overwrite",
                                              help="Replace an existing report and its figure files.")) -> None:
        """Write a self-contained HTML report (plus PNG/SVG figures) of one run or a comparison of several."""
        from llmsim.report import write_report
        clashes = existing_outputs(out, figures_dir, len(run_dirs))
        if clashes and not overwrite:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise InputError(f"file exists{more}; pass --overwrite to replace the report and its figures, or "
                             f"choose another -o / --figures-dir", source=clashes[0])
        path = write_report(run_dirs, out, figures_dir=figures_dir, title=title)
        typer.echo(f"wrote {path}")
