"""Capacity: the highest request rate a configuration sustains with its SLO percentiles met.

The search varies one knob and keeps everything else, the seed included, fixed, so it is deterministic:

* synthetic workloads: ``workload.arrival.rate`` (requests/s; x turns per conversation with multi_turn);
* traces: ``workload.rate_scale`` (rate = the trace's own mean rate x scale), or ``workload.arrival.rate``
  when the scenario already rescales the trace that way.

A rate *passes* when every SLO target holds and the run sustained the load (no rejected or unfinished
request, first tokens keeping up with arrivals; see :mod:`llmsim.sweep.slo`). The first run is at the
scenario's own rate. If it passes, the rate doubles until a run fails or its throughput stops growing
(served rate, in first tokens/s, < :data:`MIN_GROWTH` x the previous run's: the makespan throughput of a
short run is dominated by the drain at the end and would look saturated too early); if it fails, the
rate halves until one passes. Then the bracket [highest pass, lowest fail] is bisected until
(high - low) / low <= tolerance or ``max_runs`` runs are done.
The answer is the highest passing rate, so it errs on the safe side by at most the achieved tolerance.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from llmsim.errors import InputError
from llmsim.scenario import apply_override
from llmsim.sweep.scenarios import BaseScenario, build, resolve_base
from llmsim.sweep.slo import METRICS, SloTarget, check_slo, mean_rate_per_s, percentile_value, slo_from_scenario, sustained

#: Doubling stops when throughput grows by less than this factor (the system is saturated).
MIN_GROWTH = 1.05
#: Halving gives up below this fraction of the first rate (no rate meets the SLO).
MIN_RATE_FRACTION = 1e-4


@dataclass(frozen=True)
class RateKnob:
    """How a rate in requests/s maps onto the scenario: ``key`` = rate / ``requests_per_unit``."""

    key: str
    requests_per_unit: float
    first_rate_per_s: float

    def value_for(self, rate_per_s: float) -> float:
        """The knob's value giving ``rate_per_s``."""
        return rate_per_s / self.requests_per_unit


@dataclass(frozen=True)
class Trial:
    """One run of the search: the rate tried, its percentiles (s: every p99 and the SLO's), throughput, verdict."""

    rate_per_s: float
    passed: bool
    reason: str
    percentiles_s: dict[str, float | None]
    throughput_requests_per_s: float
    first_token_rate_per_s: float | None


@dataclass(frozen=True)
class CapacityResult:
    """The answer: ``rate_per_s`` (highest passing rate; None when none passed) and how it was found.

    ``upper_rate_per_s`` is the lowest failing rate above it (None when none failed), ``tolerance`` the
    achieved relative bracket width (high - low) / low, ``converged`` whether it reached the requested one.
    """

    rate_per_s: float | None
    upper_rate_per_s: float | None
    tolerance: float | None
    requested_tolerance: float
    converged: bool
    runs: int
    knob: str
    slo: tuple[SloTarget, ...]
    trials: tuple[Trial, ...] = field(default=())

    def curve(self) -> list[Trial]:
        """Every trial sorted by rate (the latency curve around the answer)."""
        return sorted(self.trials, key=lambda t: t.rate_per_s)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"rate_per_s": self.rate_per_s, "upper_rate_per_s": self.upper_rate_per_s,
                "tolerance": self.tolerance, "requested_tolerance": self.requested_tolerance,
                "converged": self.converged, "runs": self.runs, "knob": self.knob,
                "slo": {t.name: t.limit_s for t in self.slo},
                "curve": [{"rate_per_s": t.rate_per_s, "passed": t.passed, "reason": t.reason,
                           "throughput_requests_per_s": t.throughput_requests_per_s,
                           "first_token_rate_per_s": t.first_token_rate_per_s,
                           **{f"{k}_s": v for k, v in t.percentiles_s.items()}} for t in self.curve()]}


def rate_knob(base: BaseScenario) -> RateKnob:
    """Choose the knob for a scenario and its current rate (requests/s); InputError for a burst workload."""
    sc = build(base, ())
    w = sc.workload
    if w.trace is None:
        if w.arrival.rate_per_s is None:
            raise InputError("a burst workload has no arrival rate to search; use process poisson, gamma or "
                             "constant", source=base.source, where="workload.arrival.process", value="burst")
        turns = w.multi_turn.turns if w.multi_turn else 1
        return RateKnob("workload.arrival.rate", float(turns), w.arrival.rate_per_s * turns)
    if w.arrival is not None:
        return RateKnob("workload.arrival.rate", 1.0, w.arrival.rate_per_s)
    rate = mean_rate_per_s(w.generate(sc.rngs(1)[0]).arrival_s)
    if not math.isfinite(rate):
        raise InputError("the trace needs at least two requests at different times to have a rate",
                         source=base.source, where="workload.trace")
    scale = w.rate_scale or 1.0
    return RateKnob("workload.rate_scale", rate / scale, rate)


def find_capacity(scenario: Any, slo: Sequence[SloTarget] = (), overrides: Sequence[str] = (), *,
                  tolerance: float = 0.05, max_runs: int = 12, simulate: Callable | None = None,
                  on_trial: Callable[[Trial], None] | None = None) -> CapacityResult:
    """Search the capacity of ``scenario`` (a path, built-in name or mapping) under ``overrides``.

    ``slo`` defaults to the scenario's own ``slo:`` section when that names ttft_s/tpot_s at percentile
    50/90/95/99. ``simulate`` (default :func:`llmsim.api.run`) runs a Scenario; ``on_trial`` sees each trial.
    """
    _check_search(tolerance, max_runs)
    if isinstance(scenario, Mapping):
        base = BaseScenario(copy.deepcopy(dict(scenario)), "<scenario>", None)
    else:
        base = resolve_base(scenario, relative_to=None, source="capacity", where="SCENARIO")
    base = _with_overrides(base, overrides)
    knob = rate_knob(base)
    targets = tuple(slo) or slo_from_scenario(build(base, ()).slo)
    search = _Search(base, knob, targets, simulate, on_trial, max_runs)
    low, high = search.bracket()
    while low is not None and high is not None and _width(low, high) > tolerance and search.can_run():
        mid = search.trial((low.rate_per_s + high.rate_per_s) / 2)
        low, high = (mid, high) if mid.passed else (low, mid)
    width = _width(low, high) if low is not None and high is not None else None
    return CapacityResult(low.rate_per_s if low else None, high.rate_per_s if high else None, width, tolerance,
                          width is not None and width <= tolerance, len(search.trials), knob.key, targets,
                          tuple(search.trials))


def _check_search(tolerance: float, max_runs: int) -> None:
    """InputError naming the flag for a tolerance outside (0, 1) or fewer than 2 runs."""
    if not (0 < tolerance < 1):
        raise InputError("expected a relative tolerance in (0, 1)", source="--tolerance", value=tolerance)
    if max_runs < 2:
        raise InputError("expected at least 2 runs", source="--max-runs", value=max_runs)


def _with_overrides(base: BaseScenario, overrides: Sequence[str]) -> BaseScenario:
    """``base`` with ``--set key=value`` texts applied."""
    data = copy.deepcopy(base.data)
    for item in overrides:
        apply_override(data, item)
    return BaseScenario(data, base.source, base.base_dir)


def _width(low: Trial, high: Trial) -> float:
    """Relative width (high - low) / low of a bracket."""
    return (high.rate_per_s - low.rate_per_s) / low.rate_per_s


class _Search:
    """Runs trials (counting them) and finds the first bracket; see the module docstring."""

    def __init__(self, base: BaseScenario, knob: RateKnob, slo: tuple[SloTarget, ...], simulate, on_trial,
                 max_runs: int) -> None:
        self.base, self.knob, self.slo, self.max_runs = base, knob, slo, max_runs
        self.simulate = simulate or _default_simulate
        self.on_trial = on_trial
        self.trials: list[Trial] = []

    def can_run(self) -> bool:
        """Whether another run fits in ``max_runs``."""
        return len(self.trials) < self.max_runs

    def trial(self, rate_per_s: float, below: Trial | None = None) -> Trial:
        """Run at ``rate_per_s`` and judge it; with ``below`` (a passing lower rate), also fail saturation."""
        sc = build(self.base, [(self.knob.key, self.knob.value_for(rate_per_s))])
        result = self.simulate(sc)
        summary = result.summary
        _, load_reason, rates = sustained(result.requests)
        values = {t.name: percentile_value(summary, t) for t in self.slo}
        reason = check_slo(values, summary["requests"]["finished"], self.slo) or load_reason
        values = {**{f"{m}_p99": summary["latency_s"][m]["p99"] for m in METRICS}, **values}
        first = rates["first_token_rate_per_s"]
        first = None if first != first else first
        if not reason and below is not None and _saturated(below, first):
            reason = "throughput stopped increasing (saturated)"
        t = Trial(rate_per_s, not reason, reason, values, summary["throughput"]["requests_per_s"], first)
        self.trials.append(t)
        if self.on_trial is not None:
            self.on_trial(t)
        return t

    def bracket(self) -> tuple[Trial | None, Trial | None]:
        """(highest passing, lowest failing) trial after doubling up or halving down from the first rate."""
        first = self.trial(self.knob.first_rate_per_s)
        if first.passed:
            return self._double(first)
        return self._halve(first)

    def _double(self, low: Trial) -> tuple[Trial, Trial | None]:
        """Double from a passing trial until one fails (or runs run out: no upper end)."""
        while self.can_run():
            t = self.trial(low.rate_per_s * 2, below=low)
            if not t.passed:
                return low, t
            low = t
        return low, None

    def _halve(self, high: Trial) -> tuple[Trial | None, Trial]:
        """Halve from a failing trial until one passes (or the rate is negligible: no lower end)."""
        floor = self.knob.first_rate_per_s * MIN_RATE_FRACTION
        while self.can_run() and high.rate_per_s / 2 >= floor:
            t = self.trial(high.rate_per_s / 2)
            if t.passed:
                return t, high
            high = t
        return None, high


def _saturated(below: Trial, first_token_rate_per_s: float | None) -> bool:
    """Whether doubling the rate left the served rate (first tokens/s) nearly where it was."""
    if below.first_token_rate_per_s is None or first_token_rate_per_s is None:
        return False
    return first_token_rate_per_s < MIN_GROWTH * below.first_token_rate_per_s


def _default_simulate(sc):
    """:func:`llmsim.api.run` (imported late: the engine is heavy)."""
    from llmsim.api import run
    return run(sc)

