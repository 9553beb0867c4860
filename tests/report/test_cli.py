"""``llmsim report``: writes the report, refuses to replace files without --overwrite, and reports bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llmsim.report.cli import register


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """A fresh app with a callback (so ``report`` stays a subcommand) and the report command registered."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    register(app)
    return app


def invoke(app: typer.Typer, *args) -> "typer.testing.Result":
    return CliRunner().invoke(app, [str(a) for a in args])


def test_report_command_writes_the_page_and_figures(app, tmp_path: Path, run_a: Path, run_b: Path):
    out = tmp_path / "cmp.html"
    result = invoke(app, "report", run_a, run_b, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    assert "continuous vs chunked" in out.read_text()
    assert (tmp_path / "cmp_figures" / "slo.svg").is_file()


def test_existing_report_is_not_overwritten_without_the_flag(app, tmp_path: Path, run_a: Path):
    out = tmp_path / "mine.html"
    out.write_text("my notes")
    result = invoke(app, "report", run_a, "-o", out)
    assert result.exit_code == 2
    assert "--overwrite" in result.output and str(out) in result.output
    assert out.read_text() == "my notes"
    assert not (tmp_path / "mine_figures").exists()
    assert invoke(app, "report", run_a, "-o", out, "--overwrite").exit_code == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_existing_figure_files_are_not_overwritten_without_the_flag(app, tmp_path: Path, run_a: Path):
    figures = tmp_path / "slides"
    figures.mkdir()
    (figures / "timeline.svg").write_text("hand-edited")
    result = invoke(app, "report", run_a, "-o", tmp_path / "r.html", "--figures-dir", figures)
    assert result.exit_code == 2 and "timeline.svg" in result.output
    assert (figures / "timeline.svg").read_text() == "hand-edited"
    assert not (tmp_path / "r.html").exists()


def test_figures_dir_and_title_options(app, tmp_path: Path, run_a: Path):
    result = invoke(app, "report", run_a, "-o", tmp_path / "r.html", "--figures-dir", tmp_path / "figs",
                    "--title", "Capacity plan")
    assert result.exit_code == 0, result.output
    assert "<title>Capacity plan</title>" in (tmp_path / "r.html").read_text()
    assert (tmp_path / "figs" / "latency_cdf.png").is_file()


def test_a_bad_run_folder_is_one_line_and_exit_code_2(app, tmp_path: Path):
    result = invoke(app, "report", tmp_path / "nope", "-o", tmp_path / "r.html")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmsim: error:") and "nope" in lines[0]


def test_help_documents_every_option(app):
    result = invoke(app, "report", "--help")
    assert result.exit_code == 0
    for option in ("--out", "-o", "--figures-dir", "--title", "--overwrite", "RUN_DIR..."):
        assert option in result.output


def test_works_on_the_llmsim_app(tmp_path: Path, run_a: Path):
    from llmsim.cli import app as llmsim_app
    before = list(llmsim_app.registered_commands)
    if not any(c.name == "report" for c in before):
        register(llmsim_app)
    try:
        result = invoke(llmsim_app, "report", run_a, "-o", tmp_path / "r.html")
        assert result.exit_code == 0, result.output
        assert (tmp_path / "r_figures" / "operator_time.png").is_file()
    finally:
        llmsim_app.registered_commands[:] = before  # leave the shared app as other tests expect it
