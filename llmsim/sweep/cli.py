"""The ``sweep``, ``capacity`` and ``cheapest`` commands: parse arguments, call llmsim.sweep, print.

``llmsim.cli`` adds them with ``register(app)``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, List, Optional

import typer

from llmsim.errors import InputError


def register(app: typer.Typer) -> None:
    """Add ``sweep``, ``capacity`` and ``cheapest`` to ``app`` (user errors: one line, exit code 2)."""
    from llmsim.cli import clean_errors
    app.command(name="sweep")(clean_errors(sweep))
    app.command(name="capacity")(clean_errors(capacity))
    app.command(name="cheapest")(clean_errors(cheapest))


def sweep(study: Path = typer.Argument(..., help="Study YAML (base scenario, axes, zip, set, slo, target)."),
          out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default: sweeps/NAME); "
                                                                 "re-running into it resumes."),
          workers: Optional[int] = typer.Option(None, "--workers", help="Parallel runs (default: CPU count)."),
          backend: str = typer.Option("local", "--backend", help="local (processes) or ray."),
          address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (--backend ray)."),
          overwrite: bool = typer.Option(False, "--overwrite",
                                         help="Discard results of a different study in --out."),
          quiet: bool = typer.Option(False, "--quiet", help="No progress bar or table.")) -> None:
    """Run every point of a study (resuming a folder); write results.csv/.parquet and study.html.

    Exit code 1 when some point failed (its error is in the table and in points/ID/error.txt).
    """
    from llmsim.sweep.sweep import run_sweep
    if workers is not None and workers < 1:
        raise InputError("expected at least 1 worker", source="--workers", value=workers)
    result = run_sweep(study, out, workers=workers, backend=backend, address=address, overwrite=overwrite,
                       progress=not quiet)
    if not quiet:
        _print_table(result.table, result.study.dimension_keys, title=f"{result.study.name}: {result.out_dir}")
    if result.cheapest is not None:
        typer.echo(result.cheapest.describe(result.study.dimension_keys))
    counts = result.table["status"].value_counts().to_dict()
    typer.echo(f"{len(result.table)} points ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
               f"{result.computed} run now, {result.reused} reused from {result.out_dir}")
    typer.echo(f"wrote {result.out_dir / 'results.csv'} and {result.out_dir / 'study.html'}")
    if counts.get("failed"):
        raise typer.Exit(1)


def capacity(scenario: str = typer.Argument(..., help="Scenario YAML, or a built-in scenario name."),
             slo: List[str] = typer.Option([], "--slo", help="NAME=SECONDS, NAME = ttft|tpot|itl|e2e _p50|90|95|99 "
                                                           "(repeatable; default: the scenario's slo:)."),
             set_: List[str] = typer.Option([], "--set", help="Override a scenario key: key.path=value."),
             tolerance: float = typer.Option(0.05, "--tolerance", help="Stop when (high - low) / low <= this."),
             max_runs: int = typer.Option(12, "--max-runs", help="Most simulations to run."),
             as_json: bool = typer.Option(False, "--json"),
             quiet: bool = typer.Option(False, "--quiet", help="No line per run on stderr.")) -> None:
    """Highest arrival rate meeting the SLO percentiles without rejections or a growing queue."""
    from llmsim.sweep.capacity import find_capacity
    from llmsim.sweep.slo import slo_from_flags

    def show(t) -> None:
        typer.echo(f"  run at {t.rate_per_s:.4g} req/s: {'pass' if t.passed else 'fail: ' + t.reason}", err=True)
    result = find_capacity(scenario, slo_from_flags(slo), set_, tolerance=tolerance, max_runs=max_runs,
                           on_trial=None if (quiet or as_json) else show)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_capacity(result)


def _print_capacity(result) -> None:
    """The latency curve (every rate tried, sorted, with its p99s) and the answer line.

    served = first tokens/s (see llmsim.sweep.slo); throughput = finished requests over the makespan.
    """
    from rich.table import Table
    from llmsim.cli import _console
    slo = ", ".join(f"{t.name} <= {t.limit_s:g} s" for t in result.slo) or "no SLO targets (stability only)"
    names = [f"{m}_p99" for m in ("ttft", "tpot", "itl", "e2e")]
    names += [t.name for t in result.slo if t.name not in names]
    table = Table("rate req/s", "served req/s", "throughput req/s", *[f"{n} ms" for n in names], "verdict",
                  title=f"latency curve ({slo}; knob {result.knob})")
    for t in result.curve():
        mark = " <- capacity" if t.rate_per_s == result.rate_per_s else ""
        served = "-" if t.first_token_rate_per_s is None else f"{t.first_token_rate_per_s:.4g}"
        table.add_row(f"{t.rate_per_s:.4g}", served, f"{t.throughput_requests_per_s:.4g}",
                      *[_ms(t.percentiles_s.get(n)) for n in names], ("pass" if t.passed else f"fail: {t.reason}") + mark)
    _console().print(table)
    typer.echo(_capacity_line(result))


def _capacity_line(result) -> str:
    """``capacity: 12.3 req/s (...)`` with the tolerance achieved and the number of runs."""
    if result.rate_per_s is None:
        return (f"capacity: no rate meets the SLO (lowest rate tried {result.upper_rate_per_s:.4g} req/s failed); "
                f"{result.runs} runs")
    if result.upper_rate_per_s is None:
        return (f"capacity: at least {result.rate_per_s:.4g} req/s (no failing rate found in {result.runs} runs; "
                f"raise --max-runs)")
    status = "reached" if result.converged else f"NOT reached (requested {result.requested_tolerance:.1%})"
    return (f"capacity: {result.rate_per_s:.4g} req/s (fails at {result.upper_rate_per_s:.4g} req/s; tolerance "
            f"{result.tolerance:.1%} {status}; {result.runs} runs)")


def cheapest(results: Path = typer.Argument(..., help="A sweep's results folder."),
             rate: float = typer.Option(..., "--rate", help="Target rate, requests/s."),
             slo: List[str] = typer.Option([], "--slo", help="NAME=SECONDS (repeatable; default: the study's slo:)."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Cheapest point of a sweep meeting the SLO at >= RATE; writes cheapest-pareto.png/.svg there."""
    from llmsim.sweep.cheapest import pick_cheapest
    from llmsim.sweep.figures import pareto_figure, save_figure
    from llmsim.sweep.slo import slo_from_flags, slo_from_mapping
    from llmsim.sweep.store import SweepStore
    from llmsim.sweep.table import read_table
    if not math.isfinite(rate) or rate <= 0:
        raise InputError("expected a rate in requests/s (> 0)", source="--rate", value=rate)
    record = SweepStore(results).recorded()
    if record is None or not (results / "results.csv").is_file():
        raise InputError("not a sweep results folder (no study.json / results.csv); run llmsim sweep first",
                         source=results)
    targets = slo_from_flags(slo) or slo_from_mapping(record["study"].get("slo"), source=results / "study.json")
    table = read_table(results)
    pick = pick_cheapest(table, rate, targets)
    keys = _dimension_keys(table)
    if as_json:
        typer.echo(json.dumps({"rate_per_s": rate, "slo": {t.name: t.limit_s for t in targets},
                               "qualifying_points": list(pick.qualifying), "cheapest": pick.row}, indent=2))
    else:
        typer.echo(pick.describe(keys))
    chart = pareto_figure(table, pick.row["point"] if pick.row else None, {t.column: t.limit_s for t in targets})
    files, _ = save_figure(chart, results / "cheapest-pareto")
    if not as_json:
        typer.echo(f"wrote {files[0]} and {files[1]}")


def _dimension_keys(table) -> tuple[str, ...]:
    """The axis columns of a results table (between ``id`` and ``status``)."""
    cols = list(table.columns)
    return tuple(cols[cols.index("id") + 1:cols.index("status")])


def _print_table(table, keys: tuple[str, ...], *, title: str) -> None:
    """A compact view of the results table."""
    from rich.table import Table
    from llmsim.cli import _console
    cols = [("ttft_p99_s", "ttft p99 ms", 1e3), ("tpot_p99_s", "tpot p99 ms", 1e3),
            ("requests_per_s", "req/s", 1.0), ("output_tokens_per_s", "out tok/s", 1.0), ("gpus", "GPUs", 1.0),
            ("cost_per_hour_usd", "$/h", 1.0)]
    view = Table("#", *keys, "status", *[c[1] for c in cols], "sustained", "slo met", title=title)
    for _, row in table.iterrows():
        view.add_row(str(row["point"]), *[str(row[k]) for k in keys], str(row["status"]),
                     *[_num(row[c], scale) for c, _, scale in cols], _flag(row["sustained"]), _flag(row["slo_met"]))
    _console().print(view)


def _num(value: Any, scale: float) -> str:
    """``value x scale`` to 4 significant digits, "-" when missing."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v * scale:.4g}"


def _flag(value: Any) -> str:
    """yes / no / - for a nullable boolean."""
    import pandas as pd
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "yes" if bool(value) else "no"


def _ms(value: Any) -> str:
    """Seconds as milliseconds with 2 decimals, "-" when missing."""
    return "-" if value is None else f"{value * 1e3:.2f}"

