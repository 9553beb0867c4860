"""Check every point of a study before any run starts.

A point whose scenario is invalid (an unknown hardware name, a tp that does not divide the heads) stops the
sweep with an :class:`InputError` naming the point's overrides. A valid point whose model does not fit in
the GPUs' memory is *infeasible*: a legitimate answer in a hardware x parallelism grid, so it becomes a row
with ``status = infeasible`` and the reason, and is never run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from llmsim.errors import InputError
from llmsim.scenario import Scenario
from llmsim.sweep.scenarios import build, derive
from llmsim.sweep.study import Point, Study
from llmsim.workload import Trace

READY, INFEASIBLE = "ready", "infeasible"


@dataclass(frozen=True)
class PlannedPoint:
    """A checked point: its scenario mapping (``set`` and overrides applied), and READY or INFEASIBLE."""

    point: Point
    data: dict[str, Any]
    status: str
    reason: str = ""
    gpus: int = 0
    price_per_hour_usd: float = 0.0


def plan_points(study: Study) -> list[PlannedPoint]:
    """Validate every point's scenario (InputError naming the point on the first bad one) and its fit."""
    return [_plan(study, point) for point in study.points()]


def point_overrides(study: Study, point: Point) -> list[tuple[str, Any]]:
    """All overrides of a point in the order applied: the study's ``set``, then the point's own."""
    return [*study.set, *point.overrides]


def _plan(study: Study, point: Point) -> PlannedPoint:
    """One point: build its scenario (errors located at the point), then probe its memory fit."""
    overrides = point_overrides(study, point)
    try:
        sc = build(study.base, overrides)
    except InputError as exc:
        raise InputError(str(exc), source=study.source, where=f"point {point.index} ({point.describe()})") from None
    gpus, price = deployment_cost(sc)
    data = derive(study.base, overrides)
    reason = fit_problem(sc)
    return PlannedPoint(point, data, INFEASIBLE if reason else READY, reason, gpus, price)


def fit_problem(sc: Scenario) -> str:
    """'' when the scenario's replicas can be built (weights and a KV cache fit), else the reason.

    Builds the simulation over a one-request probe trace: the same code path a run takes, so the check
    cannot disagree with the run.
    """
    from llmsim.api import build_simulation
    probe = Trace(np.zeros(1), np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64), source="probe")
    try:
        build_simulation(sc, probe)
    except InputError as exc:
        return str(exc)
    return ""


def deployment_cost(sc: Scenario) -> tuple[int, float]:
    """(GPUs, $/hour) of a scenario: replicas x tp x pp GPUs at the hardware profile's price.

    Disaggregated scenarios count each pool's instances x its tp x pp on its own hardware.
    """
    if sc.disaggregated is None:
        gpus = int(sc.resolved["replicas"]) * sc.parallelism.tp * sc.parallelism.pp
        return gpus, gpus * sc.gpu.price_per_hour_usd
    total_gpus, total_price = 0, 0.0
    for role in ("prefill", "decode"):
        pool = sc.disaggregated[role]
        n = pool.instances * pool.parallelism.tp * pool.parallelism.pp
        total_gpus += n
        total_price += n * pool.gpu.price_per_hour_usd
    return total_gpus, total_price
