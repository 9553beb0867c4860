"""The results table: one row per point, in grid order, with the key metrics of its run flattened.

Columns (units in the names; ``usd`` = US dollars):

* ``point``, ``id``; one column per varied key path (``hardware``, ``parallelism.tp`` ...); ``status``
  (ok, failed, infeasible) and ``error``;
* ``offered_rate_per_s`` (see :func:`llmsim.sweep.worker.offered_rate_per_s`);
* ``{ttft,tpot,itl,e2e}_p{50,90,95,99}_s``; ``requests_per_s``, ``input_tokens_per_s``,
  ``output_tokens_per_s`` (over the makespan); ``goodput_requests_per_s`` and ``slo_attainment`` (against the
  *scenario's* ``slo:``); ``finished``, ``rejected``, ``unfinished``, ``preemptions``;
* ``sustained`` (no rejection, queue not growing) and ``slo_met`` (the *study's* ``slo:``; empty without one);
* ``gpus`` (replicas x tp x pp), ``cost_per_hour_usd``, ``usd_per_m_input_tokens`` and
  ``usd_per_m_output_tokens`` (the whole hourly cost divided by the millions of input, respectively output,
  tokens served per hour: each charges all GPU time to one kind of token, they do not split it),
  ``output_tokens_per_s_per_gpu``.

The table is built from the saved point files only, so a resumed sweep gives the same bytes as a fresh one.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from llmsim.sweep.plan import INFEASIBLE, PlannedPoint
from llmsim.sweep.slo import METRICS, PERCENTILES, SloTarget, check_slo
from llmsim.sweep.store import write_atomic
from llmsim.sweep.worker import OK, PointOutcome

LATENCY_COLUMNS = tuple(f"{m}_p{p}_s" for m in METRICS for p in PERCENTILES)
METRIC_COLUMNS = ("offered_rate_per_s", *LATENCY_COLUMNS, "requests_per_s", "input_tokens_per_s",
                  "output_tokens_per_s", "goodput_requests_per_s", "slo_attainment", "finished", "rejected",
                  "unfinished", "preemptions", "sustained", "slo_met", "gpus", "cost_per_hour_usd",
                  "usd_per_m_input_tokens", "usd_per_m_output_tokens", "output_tokens_per_s_per_gpu")

INTEGER_COLUMNS = ("point", "finished", "rejected", "unfinished", "preemptions", "gpus")


def build_table(planned: Iterable[PlannedPoint], outcomes: Mapping[str, PointOutcome | None],
                dimension_keys: tuple[str, ...], slo: tuple[SloTarget, ...]) -> pd.DataFrame:
    """One row per planned point (grid order); points without an outcome get status ``missing``."""
    rows = [_row(p, outcomes.get(p.point.id), dimension_keys, slo) for p in planned]
    frame = pd.DataFrame(rows, columns=["point", "id", *dimension_keys, "status", "error", *METRIC_COLUMNS])
    for key in dimension_keys:
        frame[key] = _axis_column([row[key] for row in rows])
    for name in INTEGER_COLUMNS:
        frame[name] = frame[name].astype("Int64")
    for name in ("sustained", "slo_met"):
        frame[name] = frame[name].astype("boolean")
    for name in set(METRIC_COLUMNS) - set(INTEGER_COLUMNS) - {"sustained", "slo_met"}:
        frame[name] = frame[name].astype("float64")
    return frame


def _row(planned: PlannedPoint, outcome: PointOutcome | None, keys: tuple[str, ...],
         slo: tuple[SloTarget, ...]) -> dict[str, Any]:
    """The row of one point: axis values, status and, for a finished run, its metrics."""
    values = dict(planned.point.overrides)
    row: dict[str, Any] = {"point": planned.point.index, "id": planned.point.id, **{k: values[k] for k in keys}}
    row.update({c: None for c in METRIC_COLUMNS})
    row.update(gpus=planned.gpus, cost_per_hour_usd=planned.price_per_hour_usd)
    if planned.status == INFEASIBLE:
        row.update(status=INFEASIBLE, error=planned.reason)
    elif outcome is None:
        row.update(status="missing", error="")
    elif outcome.status != OK:
        row.update(status=outcome.status, error=outcome.error)
    else:
        row.update(status=OK, error="")
        row.update(metrics(outcome.summary, outcome.measured, slo))
    return row


def metrics(summary: Mapping[str, Any], measured: Mapping[str, Any], slo: tuple[SloTarget, ...]) -> dict[str, Any]:
    """The flattened metrics of one finished run (see module docstring for the columns)."""
    lat, thr, req = summary["latency_s"], summary["throughput"], summary["requests"]
    out: dict[str, Any] = {f"{m}_p{p}_s": lat[m][f"p{p}"] for m in METRICS for p in PERCENTILES}
    out.update(offered_rate_per_s=measured.get("offered_rate_per_s"), requests_per_s=thr["requests_per_s"],
               input_tokens_per_s=thr["input_tokens_per_s"], output_tokens_per_s=thr["output_tokens_per_s"],
               goodput_requests_per_s=summary["slo"]["goodput_requests_per_s"],
               slo_attainment=summary["slo"]["attainment"], finished=req["finished"], rejected=req["rejected"],
               unfinished=req["unfinished"], preemptions=summary["preemptions"]["total"],
               sustained=bool(measured.get("sustained")))
    if slo:
        values = {t.name: lat[t.metric][f"p{t.percentile}"] for t in slo}
        out["slo_met"] = check_slo(values, req["finished"], slo) == ""
    out.update(costs(summary))
    return out


def costs(summary: Mapping[str, Any]) -> dict[str, Any]:
    """GPUs, $/hour and $ per million tokens from the run summary's replicas (each with gpus and price)."""
    gpus = sum(int(r["gpus"]) for r in summary["replicas"])
    per_hour = sum(int(r["gpus"]) * float(r["price_per_hour_usd"]) for r in summary["replicas"])
    thr = summary["throughput"]

    def per_million(tokens_per_s: float) -> float | None:
        return per_hour / (tokens_per_s * 3600.0) * 1e6 if tokens_per_s > 0 else None
    return {"gpus": gpus, "cost_per_hour_usd": per_hour,
            "usd_per_m_input_tokens": per_million(thr["input_tokens_per_s"]),
            "usd_per_m_output_tokens": per_million(thr["output_tokens_per_s"]),
            "output_tokens_per_s_per_gpu": thr["output_tokens_per_s"] / gpus if gpus else None}


def _axis_column(values: list[Any]) -> pd.Series:
    """Axis values as one dtype: numbers stay numbers, strings stay strings, anything else becomes JSON."""
    if all(isinstance(v, bool) for v in values):
        return pd.Series(values, dtype=bool)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pd.Series(values)
    if all(isinstance(v, str) for v in values):
        return pd.Series(values, dtype=object)
    return pd.Series([v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for v in values],
                     dtype=object)


def have_pyarrow() -> bool:
    """Whether pyarrow (needed for results.parquet) can be imported."""
    try:
        return importlib.util.find_spec("pyarrow") is not None
    except (ImportError, ValueError):
        return False


def write_table(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write results.csv and (with pyarrow) results.parquet; a note on stderr when pyarrow is missing."""
    written = [out_dir / "results.csv"]
    write_atomic(written[0], frame.to_csv(index=False))
    if not have_pyarrow():
        print("llmsim: pyarrow is not installed, so results.parquet was not written (results.csv was); "
              "pip install 'llmsim[parquet]'", file=sys.stderr)
        (out_dir / "results.parquet").unlink(missing_ok=True)  # never leave an older table beside the new one
        return written
    tmp = out_dir / f".results.parquet.{id(frame)}.tmp"
    frame.to_parquet(tmp, index=False)
    tmp.replace(out_dir / "results.parquet")
    written.append(out_dir / "results.parquet")
    return written


def read_table(out_dir: Path) -> pd.DataFrame:
    """The results table of a sweep folder (parquet when readable, else CSV)."""
    parquet, csv = out_dir / "results.parquet", out_dir / "results.csv"
    if parquet.is_file():
        try:
            return pd.read_parquet(parquet)
        except ImportError:
            pass
    return pd.read_csv(csv, keep_default_na=True)
