"""What runs on a worker (a local process or a Ray task): one point in, one picklable outcome out.

The worker never writes files: the driver saves each outcome as it arrives, so a Ray cluster whose nodes do
not share the driver's disk works the same as local processes.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmsim.scenario import Scenario, build_scenario
from llmsim.sweep.slo import mean_rate_per_s, sustained

OK, FAILED = "ok", "failed"


@dataclass(frozen=True)
class PointTask:
    """Everything a worker needs: the point's id and full scenario mapping, and where paths resolve."""

    id: str
    data: dict[str, Any]
    source: str
    base_dir: Path | None


@dataclass
class PointOutcome:
    """A finished point: ``status`` OK with ``summary`` and ``measured``, or FAILED with ``error``."""

    id: str
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    measured: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    traceback: str = ""


def simulate(sc: Scenario):
    """Run one scenario (tests replace this to count or fail runs)."""
    from llmsim.api import run
    return run(sc)


def run_point(task: PointTask) -> PointOutcome:
    """Build and simulate one point; any exception becomes a FAILED outcome carrying its traceback."""
    try:
        wall0 = time.perf_counter()
        sc = build_scenario(task.data, source=task.source, base_dir=task.base_dir)
        result = simulate(sc)
        measured = measure(sc, result.requests)
        measured["wall_time_s"] = time.perf_counter() - wall0
        return PointOutcome(task.id, OK, summary=result.summary, measured=measured)
    except Exception as exc:  # noqa: BLE001 - a failing point is recorded and the sweep goes on
        return failed_outcome(task.id, exc)


def failed_outcome(point_id: str, exc: BaseException) -> PointOutcome:
    """A FAILED outcome for ``exc`` (message on one line, full traceback kept for error.txt)."""
    message = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return PointOutcome(point_id, FAILED, error=message, traceback=tb)


def offered_rate_per_s(sc: Scenario, requests) -> float | None:
    """The rate a point was asked to serve (requests/s).

    Synthetic workloads: the configured ``arrival.rate`` (x turns per conversation); a trace: its mean
    rate (n - 1) / duration after ``rate_scale`` / ``arrival.rate``. None for a burst (no rate).
    """
    w = sc.workload
    if w.trace is None:
        if w.arrival.rate_per_s is None:
            return None
        return w.arrival.rate_per_s * (w.multi_turn.turns if w.multi_turn else 1)
    rate = mean_rate_per_s(requests["arrival_s"].to_numpy())
    return None if rate != rate else rate


def measure(sc: Scenario, requests) -> dict[str, Any]:
    """What the sweep needs beyond the summary: offered rate and whether the run sustained it."""
    ok, reason, rates = sustained(requests)
    return {"offered_rate_per_s": offered_rate_per_s(sc, requests), "sustained": ok, "sustained_reason": reason,
            **{k: (None if v != v else v) for k, v in rates.items()}}
