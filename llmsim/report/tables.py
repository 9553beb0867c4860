"""The report's tables as plain data: the summary, SLO, scenario differences, and notes on the runs.

Values come from summary.json (SI: s, requests/s, fractions) and are converted here for display (ms,
%). A table is a :class:`Table`: a header and rows of already formatted strings, so html.py only escapes
and lays them out. A missing key shows as "-" (runs from older versions still render).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from llmsim.report.load import RunData

Getter = Callable[[RunData], Any]


@dataclass(frozen=True)
class Table:
    """A header row and body rows; ``groups`` maps a row index to a group heading shown before it.

    ``deltas`` (same shape as ``rows`` minus the label column, or empty) holds "+12.3%"-style changes
    relative to the first run, shown small beside each value.
    """

    header: list[str]
    rows: list[list[str]]
    groups: dict[int, str] = field(default_factory=dict)
    deltas: list[list[str]] = field(default_factory=list)


def dig(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]...``, or None when any step is missing."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def fmt(value: Any, scale: float = 1.0, digits: int = 3) -> str:
    """A number times ``scale`` to ``digits`` significant digits (integers in full); "-" for None/NaN."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if not isinstance(value, (int, float)) or value != value:
        return "-"
    v = value * scale
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"


def _s(*path: str) -> Getter:
    return lambda run: dig(run.summary, *path)


def _scenario(*path: str) -> Getter:
    return lambda run: dig(run.scenario, *path)


def _mean_utilization(run: RunData) -> float | None:
    reps = [r.get("utilization") for r in run.summary.get("replicas") or [] if isinstance(r, dict)]
    reps = [u for u in reps if isinstance(u, (int, float))]
    return sum(reps) / len(reps) if reps else None


def _gpus(run: RunData) -> int | None:
    """GPUs over all replicas (prefill and decode pools included), from summary.json."""
    gpus = [r.get("gpus") for r in run.summary.get("replicas") or [] if isinstance(r, dict)]
    return int(sum(gpus)) if gpus and all(isinstance(g, (int, float)) for g in gpus) else None


def _parallelism(run: RunData) -> str:
    par = run.scenario.get("parallelism") or {}
    return f"{run.scenario.get('replicas', '-')} x (tp={par.get('tp', '-')}, pp={par.get('pp', '-')})"


# (group, label with unit, getter, scale, compare): compare=True adds a change vs the first run.
_LAT = [(f"{m.upper()} {p} ({u})", _s("latency_s", m, p), k) for m, u, k in
        (("ttft", "ms", 1e3), ("tpot", "ms", 1e3), ("itl", "ms", 1e3), ("e2e", "s", 1.0))
        for p in ("mean", "p50", "p90", "p99")]
SUMMARY_ROWS: list[tuple[str, str, Getter, float, bool]] = [
    ("Setup", "scheduler policy", _scenario("scheduler", "policy"), 1.0, False),
    ("Setup", "model", _scenario("model"), 1.0, False),
    ("Setup", "hardware", _scenario("hardware"), 1.0, False),
    ("Setup", "replicas x parallelism", _parallelism, 1.0, False),
    ("Setup", "GPUs (all replicas and pools)", _gpus, 1.0, False),
    ("Requests", "requests total", _s("requests", "total"), 1.0, False),
    ("Requests", "finished", _s("requests", "finished"), 1.0, True),
    ("Requests", "rejected", _s("requests", "rejected"), 1.0, False),
    ("Requests", "unfinished", _s("requests", "unfinished"), 1.0, False),
    *[("Latency", label, get, scale, True) for label, get, scale in _LAT],
    ("Throughput", "requests/s", _s("throughput", "requests_per_s"), 1.0, True),
    ("Throughput", "input tokens/s", _s("throughput", "input_tokens_per_s"), 1.0, True),
    ("Throughput", "output tokens/s", _s("throughput", "output_tokens_per_s"), 1.0, True),
    ("Throughput", "SLO attainment (%)", _s("slo", "attainment"), 100.0, True),
    ("Throughput", "goodput (requests/s)", _s("slo", "goodput_requests_per_s"), 1.0, True),
    ("Engine", "iterations", _s("batch", "iterations"), 1.0, False),
    ("Engine", "batch size mean (sequences)", _s("batch", "size", "mean"), 1.0, True),
    ("Engine", "batch size max (sequences)", _s("batch", "max_size"), 1.0, False),
    ("Engine", "KV blocks per replica", lambda r: ", ".join(
        fmt(b) for b in dig(r.summary, "kv_cache", "blocks_per_replica") or []) or None, 1.0, False),
    ("Engine", "KV usage mean (% of blocks)", _s("kv_cache", "usage_fraction", "mean"), 100.0, True),
    ("Engine", "KV usage max (% of blocks)", _s("kv_cache", "max_usage_fraction"), 100.0, True),
    ("Engine", "preemptions", _s("preemptions", "total"), 1.0, False),
    ("Engine", "replica utilization mean (%)", _mean_utilization, 100.0, True),
    ("Engine", "prefix cache hit rate (%)", _s("prefix_cache", "hit_rate"), 100.0, False),
    ("Engine", "KV transfer p50 (ms)", _s("kv_transfer", "transfer_s", "p50"), 1e3, False),
    ("Engine", "KV transfer p99 (ms)", _s("kv_transfer", "transfer_s", "p99"), 1e3, False),
    ("Run", "simulated time (s)", _s("simulated_time_s"), 1.0, False),
    ("Run", "simulator wall time (s)", lambda r: dig(r.run_info, "wall_time_s"), 1.0, False),
    ("Run", "llmsim version", lambda r: dig(r.summary, "reproduce", "llmsim_version"), 1.0, False),
]


def _delta(value: Any, base: Any) -> str:
    """Relative change of ``value`` against ``base`` as "+12.3%" ("" when undefined)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, base))
    if not numeric or base == 0 or value != value or base != base:
        return ""
    return f"{(value - base) / abs(base):+.1%}"


def summary_table(runs: Sequence[RunData]) -> Table:
    """One row per metric, one column per run; rows that no run has are left out."""
    header, rows, deltas, groups = ["metric", *[r.name for r in runs]], [], [], {}
    for group, label, get, scale, compare in SUMMARY_ROWS:
        values = [get(r) for r in runs]
        if all(v is None for v in values):
            continue
        if group not in groups.values():
            groups[len(rows)] = group
        rows.append([label, *[fmt(v, scale) for v in values]])
        deltas.append(["", "", *[_delta(v, values[0]) if compare else "" for v in values[1:]]])
    return Table(header, rows, groups, deltas)


def slo_table(runs: Sequence[RunData]) -> Table:
    """Targets, the measured percentile against them, attainment, goodput and whether the SLO is met."""
    rows = []
    for run in runs:
        slo = run.summary.get("slo") or {}
        p = slo.get("percentile")
        tag = f"p{p:g}" if isinstance(p, (int, float)) else "p?"
        rows.append([run.name, fmt(slo.get("ttft_s"), 1e3), fmt(slo.get(f"ttft_{tag}_s"), 1e3),
                     fmt(slo.get("tpot_s"), 1e3), fmt(slo.get(f"tpot_{tag}_s"), 1e3),
                     fmt(slo.get("attainment"), 100.0), fmt(slo.get("goodput_requests_per_s")),
                     fmt(dig(run.summary, "throughput", "requests_per_s")),
                     {True: "yes", False: "no"}.get(slo.get("met"), "-"), tag])
    header = ["run", "TTFT target (ms)", "TTFT at percentile (ms)", "TPOT target (ms)",
              "TPOT at percentile (ms)", "attainment (%)", "goodput (requests/s)", "throughput (requests/s)",
              "SLO met", "percentile"]
    return Table(header, rows)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {"a.b.c": leaf}."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def scenario_differences(runs: Sequence[RunData]) -> Table:
    """The resolved-scenario keys whose values differ between runs (empty rows for a single run)."""
    flat = [flatten(r.scenario) for r in runs]
    keys = sorted(set().union(*flat)) if flat else []
    rows = [[k, *[str(f.get(k, "-")) for f in flat]] for k in keys
            if len(runs) > 1 and len({repr(f.get(k, "-")) for f in flat}) > 1]
    return Table(["scenario key", *[r.name for r in runs]], rows)


def notes(runs: Sequence[RunData]) -> list[str]:
    """Things a reader should know before trusting a comparison: rejections, unfinished requests, preemptions,
    SLO misses, and runs that did not see the same workload."""
    out = []
    for run in runs:
        req = run.summary.get("requests") or {}
        for key, what in (("rejected", "rejected"), ("unfinished", "unfinished when the simulation ended")):
            if req.get(key):
                out.append(f"{run.name}: {fmt(req[key])} of {fmt(req.get('total'))} requests {what}; latency "
                           f"statistics cover finished requests only.")
        if dig(run.summary, "preemptions", "total"):
            pre = run.summary["preemptions"]
            out.append(f"{run.name}: {fmt(pre['total'])} preemptions ({fmt(pre.get('requests_preempted'))} "
                       f"requests preempted at least once).")
        if dig(run.summary, "slo", "met") is False:
            out.append(f"{run.name}: the SLO is not met at its percentile.")
    workloads = {repr(r.scenario.get("workload")) for r in runs}
    if len(workloads) > 1:
        out.append("The runs have different workloads, so their latencies are not a like-for-like comparison.")
    return out
