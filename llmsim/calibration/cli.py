"""``llmsim calibrate run|fit|report|engine`` and ``llmsim validate``: measure a GPU, fit its profile, check it;
fit an engine profile to a real engine's benchmark run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from llmsim.errors import InputError


def _repo_microbench() -> Path:
    """The suite's sources (present in a source checkout, not in a wheel install)."""
    return Path(__file__).resolve().parents[2] / "microbench"


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` (run, fit, report, engine) and ``validate`` to the command line."""
    from llmsim.cli import clean_errors

    calibrate = typer.Typer(help="Measure a GPU with the CUDA suite and fit its calibration profile.",
                            no_args_is_help=True)
    app.add_typer(calibrate, name="calibrate")

    @calibrate.command("run")
    @clean_errors
    def run_cmd(out: Path = typer.Option(..., "--out", help="CSV to write (refused if it exists)."),
                quick: bool = typer.Option(False, "--quick", help="Small grids (about 30 s on an H100)."),
                shapes: Optional[Path] = typer.Option(None, "--shapes", help="GEMM shapes CSV (model,op,n,k); "
                                                      "default: every built-in model's projections.")) -> None:
        """Build and run the CUDA microbenchmark suite on the local GPU."""
        if out.exists():
            raise InputError("output file exists; choose another --out (nothing is overwritten)", source=out)
        bench = _repo_microbench()
        if not (bench / "run_suite.py").is_file():
            raise InputError("the CUDA suite's sources (microbench/) are not here: run from a source checkout of "
                             "llmsim", source=bench)
        sys.path.insert(0, str(bench))
        import run_suite  # noqa: PLC0415 (the suite is a standalone script)
        argv = ["--out", str(out), "--build-dir", str(bench.parent / "build" / "microbench")]
        argv += ["--shapes", str(shapes or bench / "shapes_builtin.csv")] + (["--quick"] if quick else [])
        code = run_suite.main(argv)
        if code == 2:
            raise typer.Exit(2)
        raise typer.Exit(code)

    @calibrate.command("fit")
    @clean_errors
    def fit_cmd(measured: List[Path] = typer.Argument(..., help="Suite CSVs (and/or kernel-sweep CSVs)."),
                hardware: str = typer.Option(..., "--hardware", help="GPU the measurements were taken on."),
                reference: Optional[Path] = typer.Option(None, "--reference",
                                                         help="Reference-executor CSV: fits the whole-iteration "
                                                              "terms and the prediction band."),
                out: Optional[Path] = typer.Option(None, "--out", help="Profile YAML (default: beside the "
                                                   "hardware profile, HARDWARE.calibration.yaml)."),
                engine_out: Optional[Path] = typer.Option(None, "--engine-out",
                                                          help="Also write an engine profile fitted to the "
                                                               "reference executor's eager iterations."),
                overwrite: bool = typer.Option(False, "--overwrite")) -> None:
        """Fit efficiency curves (and, with --reference, composition terms) and write a calibration profile."""
        from llmsim.calibration.pipeline import fit_files
        from llmsim.specs.hardware import resolve_hardware_path
        target = out or resolve_hardware_path(hardware).with_name(f"{Path(hardware).stem}.calibration.yaml")
        for path in (target, engine_out):
            if path is not None and path.exists() and not overwrite:
                raise InputError("file exists; pass --overwrite to replace it", source=path)
        result = fit_files(hardware, measured, reference)
        result.profile.save(target)
        typer.echo(result.text)
        typer.echo(f"wrote {target}")
        if engine_out is not None:
            if result.engine is None:
                raise InputError("--engine-out needs --reference with eager iterations", source="--engine-out")
            result.engine.save(engine_out)
            typer.echo(f"wrote {engine_out}")

    @calibrate.command("report")
    @clean_errors
    def report_cmd(measured: List[Path] = typer.Argument(..., help="Measurement CSVs to compare against."),
                   hardware: str = typer.Option(..., "--hardware"),
                   calibration: str = typer.Option("auto", "--calibration",
                                                   help="auto, default, datasheet, or a profile YAML."),
                   out: Path = typer.Option(Path("calibration-report"), "-o", "--out",
                                            help="Folder for the plots (PNG and SVG)."),
                   reference: Optional[Path] = typer.Option(None, "--reference",
                                                            help="Reference-executor CSV: also plot whole "
                                                                 "iterations under datasheet, default and "
                                                                 "--calibration."),
                   engine: str = typer.Option("reference-executor", "--engine",
                                              help="Engine profile pricing the reference's eager rows."),
                   overwrite: bool = typer.Option(False, "--overwrite",
                                                  help="Replace plot files already in --out.")) -> None:
        """Measured against predicted, per operator class, as plots."""
        from llmsim.calibration.plots import write_plots
        paths = write_plots(hardware, measured, calibration, out, reference, overwrite=overwrite, engine=engine)
        for path in paths:
            typer.echo(f"wrote {path}")

    @calibrate.command("engine")
    @clean_errors
    def engine_cmd(scenario: str = typer.Option(..., "--scenario", help="Scenario YAML whose workload.trace "
                                                "replays the measured requests."),
                   measured: Path = typer.Option(..., "--measured", help="Measured requests CSV (request_id, "
                                                 "arrival_s, prompt_tokens, output_tokens, ttft_s, tpot_s or "
                                                 "e2e_s)."),
                   iterations: Optional[Path] = typer.Option(None, "--iterations",
                                                             help="Measured iteration log (start_s, end_s, "
                                                                  "prefill_tokens, decode_seqs, decode_ctx_sum)."),
                   out: Path = typer.Option(..., "--out", help="Engine profile YAML to write."),
                   set_: List[str] = typer.Option([], "--set", help="Scenario override key.path=value."),
                   max_simulations: int = typer.Option(40, "--max-simulations",
                                                       help="Runs the request-times fit may make."),
                   overwrite: bool = typer.Option(False, "--overwrite")) -> None:
        """Fit an engine profile (host terms) to a real engine's measurements of the scenario's trace."""
        from llmsim.calibration.engine_fit import fit_engine_files
        if out.exists() and not overwrite:
            raise InputError("file exists; pass --overwrite to replace it", source=out)
        if not out.parent.is_dir():
            raise InputError("the folder for --out does not exist", source=out)
        fit = fit_engine_files(scenario, measured, iterations, overrides=set_, max_simulations=max_simulations)
        typer.echo(fit.text)
        fit.profile.save(out)
        typer.echo(f"wrote {out}")

    @app.command("validate")
    @clean_errors
    def validate_cmd(measured: Path = typer.Argument(..., help="Measured iterations (reference executor CSV)."),
                     hardware: str = typer.Option(..., "--hardware"),
                     calibration: str = typer.Option("auto", "--calibration",
                                                     help="auto, default, datasheet, or a profile YAML."),
                     engine: str = typer.Option("cuda-graphs", "--engine",
                                                help="Engine profile for eager rows (graph rows always use "
                                                     "cuda-graphs)."),
                     as_json: bool = typer.Option(False, "--json")) -> None:
        """Compare the cost model with measured whole-iteration times; print error statistics."""
        from llmsim.calibration.pipeline import validate_file
        table = validate_file(measured, hardware, calibration, engine)
        if as_json:
            typer.echo(json.dumps(table.to_dict("records"), indent=2))
        else:
            typer.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
