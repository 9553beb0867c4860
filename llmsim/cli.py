"""The ``llmsim`` command line: parses arguments, calls the Python API, prints. Nothing else lives here.

Every user mistake surfaces as :class:`llmsim.errors.InputError` and is printed as one line with exit code
2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer

from llmsim.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Simulate LLM serving on modelled GPUs: cost model, schedulers, capacity planning.")
_state = {"debug": False}


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors.")) -> None:
    _state["debug"] = debug


def clean_errors(fn: Callable) -> Callable:
    """Turn InputError (and unreadable files) into one line on stderr and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            if _state["debug"]:
                raise
            typer.echo(f"llmsim: error: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("llmsim: interrupted", err=True)
            raise typer.Exit(130) from None
    return wrapper


def _console():
    from rich.console import Console
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


# -- specs -----------------------------------------------------------------------------------------------
@app.command()
@clean_errors
def models() -> None:
    """List the built-in models with their sizes."""
    from rich.table import Table
    from llmsim.specs import BUILTIN_MODELS
    table = Table("model", "params (B)", "layers", "hidden", "heads/kv", "mlp", "experts", "context", "source")
    for name, m in BUILTIN_MODELS.items():
        experts = f"{m.experts_per_token}/{m.num_experts}" if m.is_moe else "-"
        table.add_row(name, f"{m.total_params() / 1e9:.1f}", str(m.num_layers), str(m.hidden_size),
                      f"{m.num_heads}/{m.num_kv_heads}", str(m.intermediate_size), experts,
                      str(m.max_context_tokens), m.source)
    _console().print(table)


@app.command()
@clean_errors
def hardware() -> None:
    """List the built-in GPUs with their datasheet figures and calibration status."""
    from rich.table import Table
    from llmsim.specs import builtin_hardware_names, load_hardware
    from llmsim.specs.hardware import builtin_hardware_dir
    table = Table("hardware", "bf16 TFLOP/s", "fp8 TFLOP/s", "memory GiB", "HBM TB/s", "link GB/s", "$/h",
                  "calibrated")
    for name in builtin_hardware_names():
        g = load_hardware(name)
        fp8 = g.peak_flops_per_s.get("fp8")
        calibrated = (builtin_hardware_dir() / f"{name}.calibration.yaml").is_file()
        table.add_row(name, f"{g.peak_for('bf16') / 1e12:.0f}", f"{fp8 / 1e12:.0f}" if fp8 else "-",
                      f"{g.memory_bytes / 2**30:.0f}", f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
                      f"{g.intra_node_link.bandwidth_bytes_per_s / 1e9:.0f} {g.intra_node_link.kind}",
                      f"{g.price_per_hour_usd:.2f}", "yes" if calibrated else "no")
    _console().print(table)


def _cost_model(model: str, hw: str, tp: int, pp: int, weights_dtype: str, kv_dtype: str,
                calibration: str, engine: str):
    from llmsim.costmodel import CostModel, Precision, load_engine
    from llmsim.scenario import resolve_calibration
    from llmsim.specs import Parallelism, load_hardware, load_model
    for flag, value, options in (("--weights-dtype", weights_dtype, ("bf16", "fp16", "fp8", "int8", "int4")),
                                 ("--kv-dtype", kv_dtype, ("bf16", "fp16", "fp8", "int8"))):
        if value not in options:
            raise InputError(f"expected one of {', '.join(options)}", source=flag, value=value)
    spec, gpu = load_model(model), load_hardware(hw)
    cal, _ = resolve_calibration(calibration, hw, None, "--calibration")
    par = Parallelism(tp, pp)
    return CostModel(spec, gpu, par, Precision(weights_dtype, kv_dtype), cal, load_engine(engine))


@app.command()
@clean_errors
def memory(model: str = typer.Option(..., "--model", help="Built-in model, config.json or model YAML."),
           hw: str = typer.Option(..., "--hardware", help="Built-in GPU or hardware YAML."),
           tp: int = typer.Option(1, "--tp"), pp: int = typer.Option(1, "--pp"),
           weights_dtype: str = typer.Option("bf16", "--weights-dtype"),
           kv_dtype: str = typer.Option("bf16", "--kv-dtype"),
           utilization: float = typer.Option(0.9, "--gpu-memory-utilization"),
           block_size: int = typer.Option(16, "--block-size"),
           max_batched_tokens: int = typer.Option(8192, "--max-batched-tokens"),
           as_json: bool = typer.Option(False, "--json")) -> None:
    """Weights, KV bytes per token, and how many KV tokens fit per replica."""
    from llmsim.costmodel import plan_memory
    for flag, value in (("--block-size", block_size), ("--max-batched-tokens", max_batched_tokens)):
        if value < 1:
            raise InputError("expected an integer >= 1", source=flag, value=value)
    cm = _cost_model(model, hw, tp, pp, weights_dtype, kv_dtype, "default", "cuda-graphs")
    plan = plan_memory(cm.model, cm.gpu, cm.parallelism, cm.precision, gpu_memory_utilization=utilization,
                       block_size=block_size, max_batched_tokens=max_batched_tokens)
    out = {"model": cm.model.name, "hardware": cm.gpu.name, "tp": tp, "pp": pp,
           "params_b": cm.model.total_params() / 1e9,
           "kv_bytes_per_token_all_gpus": cm.model.kv_bytes_per_token(kv_dtype), **plan.summary()}
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    for key, value in out.items():
        typer.echo(f"{key:34s} {value:,.3f}" if isinstance(value, float) else f"{key:34s} {value}")


@app.command()
@clean_errors
def estimate(model: str = typer.Option(..., "--model", help="Built-in model, config.json or model YAML."),
             hw: str = typer.Option(..., "--hardware", help="Built-in GPU or hardware YAML."),
             tp: int = typer.Option(1, "--tp"), pp: int = typer.Option(1, "--pp"),
             weights_dtype: str = typer.Option("bf16", "--weights-dtype"),
             kv_dtype: str = typer.Option("bf16", "--kv-dtype"),
             prefill: List[int] = typer.Option([], "--prefill", help="A whole prompt of S tokens (repeatable)."),
             chunk: List[str] = typer.Option([], "--chunk", help="C@P: C new prompt tokens after P earlier ones."),
             decode: List[str] = typer.Option([], "--decode", help="BxL: B sequences with L cached tokens each."),
             calibration: str = typer.Option("auto", "--calibration",
                                             help="auto, default, datasheet, or a calibration YAML."),
             engine: str = typer.Option("cuda-graphs", "--engine", help="Engine profile name or YAML."),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """Time of one iteration, with a per-operator table (FLOPs, bytes, time, bound)."""
    from llmsim.costmodel import BatchFeatures, IterationShape, PromptChunk, breakdown_table, parse_chunk, parse_decodes
    cm = _cost_model(model, hw, tp, pp, weights_dtype, kv_dtype, calibration, engine)
    chunks = [PromptChunk(s) for s in prefill] + [_flag(parse_chunk, c, "--chunk") for c in chunk]
    if any(s < 1 for s in prefill):
        raise InputError("expected a prompt of >= 1 tokens", source="--prefill", value=min(prefill))
    contexts = tuple(x for d in decode for x in _flag(parse_decodes, d, "--decode"))
    shape = IterationShape(tuple(chunks), contexts)
    if shape.is_empty:
        raise InputError("nothing to price: give at least one --prefill, --chunk or --decode", source="estimate")
    cost = cm.price(BatchFeatures.from_shapes([shape]))
    rows = breakdown_table(cost)
    total_ms = float(cost.total_s[0]) * 1e3
    if as_json:
        band = cm.calibration.band
        band_ms = ([total_ms * (1 + band["q05"]), total_ms * (1 + band["q95"])] if band.get("q05") is not None
                   else None)
        typer.echo(json.dumps({"model": cm.model.name, "hardware": cm.gpu.name, "tp": tp, "pp": pp,
                               "calibration": cm.calibration.name, "engine": cm.engine.name, "total_ms": total_ms,
                               "band_90_ms": band_ms,
                               "gpu_ms": float(cost.gpu_s[0]) * 1e3, "overhead_ms": float(cost.overhead_s[0]) * 1e3,
                               "ops": [{**r, "time_ms": r["time_s"] * 1e3} for r in rows]}, indent=2))
        return
    from rich.table import Table
    table = Table("operator", "class", "GFLOP", "MB moved", "time ms", "share", "bound", "eff", "kernels",
                  title=f"{cm.model.name} on {cm.gpu.name} (tp={tp}, pp={pp}), calibration {cm.calibration.name}")
    for r in rows:
        table.add_row(r["op"], r["class"], f"{r['flops'] / 1e9:,.1f}", f"{r['bytes'] / 1e6:,.1f}",
                      f"{r['time_s'] * 1e3:.4f}", f"{r['time_s'] * 1e3 / total_ms:.1%}", r["bound"],
                      f"{r['efficiency']:.2f}", str(r["kernels"]))
    console = _console()
    console.print(table)
    band = cm.calibration.band
    if band.get("q05") is not None:
        console.print(f"iteration time: {total_ms:.4f} ms, 90% band {total_ms * (1 + band['q05']):.4f} to "
                      f"{total_ms * (1 + band['q95']):.4f} ms ({band.get('source', 'calibration residuals')})")
    else:
        console.print(f"iteration time: {total_ms:.4f} ms (no prediction band: calibration "
                      f"'{cm.calibration.name}' has no whole-iteration validation)")


def _flag(parse, text: str, flag: str):
    try:
        return parse(text)
    except InputError as exc:
        raise exc.located(source=flag) from None


# -- running scenarios -------------------------------------------------------------------------------------
def _default_out(name: str) -> Path:
    """runs/<name>, or runs/<name>-2, -3 ... : a fresh folder, so nothing earlier is overwritten."""
    base = Path("runs") / name
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{name}-{n}")
    return candidate


def _progress_bar():
    """A tqdm bar and the ``progress(done, total)`` callback the simulation calls as requests arrive."""
    from tqdm import tqdm
    bar = tqdm(unit="req", desc="simulating", leave=False, disable=None, file=sys.stderr)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
    return bar, update


@app.command()
@clean_errors
def run(scenario: str = typer.Argument("quickstart", help="Scenario YAML, or a built-in scenario name."),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: a fresh runs/NAME)."),
        set_: List[str] = typer.Option([], "--set", help="Override a scenario key: key.path=value (repeatable)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing into a non-empty --out folder."),
        report: bool = typer.Option(False, "--report", help="Also write report.html into the output folder."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bar or summary table.")) -> None:
    """Simulate a scenario and write requests.csv, iterations.csv and summary.json."""
    import llmsim
    from llmsim.api import prepare_output_dir
    from llmsim.scenario import load_scenario
    sc = load_scenario(scenario, set_)
    target = out if out is not None else _default_out(sc.name)
    prepare_output_dir(target, overwrite=overwrite)  # refuse early, before spending time simulating
    bar, update = _progress_bar() if not quiet else (None, None)
    try:
        result = llmsim.run(sc, progress=update)
    finally:
        if bar is not None:
            bar.close()
    folder = result.save(target, overwrite=True)
    if report:
        from llmsim.report import write_report
        write_report([folder], folder / "report.html")
    if not quiet:
        print_summary(result.summary, title=f"{sc.name}: {folder}")
    typer.echo(f"wrote {folder}")


def print_summary(summary: dict, *, title: str) -> None:
    """The end-of-run table: latency percentiles, throughput, SLO attainment."""
    from rich.table import Table
    band = summary.get("prediction_band")
    cols = ["metric", "mean", "p50", "p90", "p99"] + (["p50 90% band", "p99 90% band"] if band else [])
    table = Table(*cols, title=title)
    for name, stats in summary["latency_s"].items():
        row = [f"{name.upper()} ms", *[_ms(stats.get(k)) for k in ("mean", "p50", "p90", "p99")]]
        if band:
            row += [_band(band[name].get(p)) for p in ("p50", "p99")]
        table.add_row(*row)
    console = _console()
    console.print(table)
    req, thr, slo = summary["requests"], summary["throughput"], summary["slo"]
    console.print(f"requests {req['finished']}/{req['total']} finished, {req['rejected']} rejected; "
                  f"{thr['requests_per_s']:.2f} req/s, {thr['output_tokens_per_s']:.0f} output tok/s; "
                  f"SLO attainment {slo['attainment']:.1%}, goodput {slo['goodput_requests_per_s']:.2f} req/s; "
                  f"preemptions {summary['preemptions']['total']}; simulated {summary['simulated_time_s']:.1f} s")


def _ms(value) -> str:
    return "-" if value is None else f"{value * 1e3:.2f}"


def _band(pair) -> str:
    return "-" if not pair else f"{pair[0] * 1e3:.2f} to {pair[1] * 1e3:.2f}"


@app.command()
@clean_errors
def compare(scenario: str = typer.Argument(..., help="Scenario YAML or built-in name."),
            policies: str = typer.Option("static,continuous,chunked", "--policies",
                                         help="Comma-separated scheduler policies to compare."),
            set_: List[str] = typer.Option([], "--set", help="Override applied to every run (key.path=value)."),
            variant: List[str] = typer.Option([], "--variant",
                                              help="NAME:key=value[,key=value] - compare named variants instead "
                                                   "of policies (repeatable)."),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Run the same workload under several policies (or variants) and print one side-by-side table."""
    from llmsim.compare import compare_runs, parse_variants
    runs = parse_variants(variant) if variant else [(p, [f"scheduler.policy={p}"]) for p in
                                                     [x.strip() for x in policies.split(",") if x.strip()]]
    rows = compare_runs(scenario, runs, set_)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table
    cols = ["ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p50_change", "tpot_p99_ms", "e2e_p50_s", "e2e_p99_s",
            "req_per_s", "out_tok_per_s", "goodput_req_per_s", "slo_attainment"]
    table = Table("run", *cols)
    for row in rows:
        table.add_row(row["run"], *[_fmt(row.get(c)) for c in cols])
    _console().print(table)


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _register_commands() -> None:
    """Commands that live with their layer: reports, sweeps and capacity, calibration."""
    from llmsim.calibration.cli import register as register_calibration
    from llmsim.report.cli import register as register_report
    from llmsim.sweep.cli import register as register_sweep
    for register in (register_report, register_sweep, register_calibration):
        register(app)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    app()
