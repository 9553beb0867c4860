"""SLO targets on latency percentiles (``ttft_p99 <= 0.5 s``), and whether a run sustained its load.

A target is named ``METRIC_pNN`` with METRIC in ttft, tpot, itl, e2e and NN in 50, 90, 95, 99 (the
percentiles every run summary reports); its limit is in seconds. A run *meets* the targets when every named
percentile is at most its limit. A run *sustains* its offered rate when no request was rejected or left
unfinished and requests reached their first token about as fast as they arrived:
first-token rate >= :data:`MIN_SERVED_FRACTION` x arrival rate. The arrival rate is (n - 1) / (last - first
arrival); the first-token rate is the arrival rate divided by the least-squares slope of first-token time
against arrival time. In a stable system TTFT does not trend, so the slope is 1; a queue that grows without
bound serves requests at the service rate mu < lambda, the slope is lambda / mu and the first-token rate is
mu. (A slope, unlike (n - 1) / (last - first first-token time), is not biased by the TTFT of the last
request, so short runs are judged correctly.)
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from llmsim.errors import InputError, did_you_mean

METRICS = ("ttft", "tpot", "itl", "e2e")
PERCENTILES = (50, 90, 95, 99)
SLO_NAMES = tuple(f"{m}_p{p}" for m in METRICS for p in PERCENTILES)
#: A run whose first-token rate is below this fraction of its arrival rate is overloaded.
MIN_SERVED_FRACTION = 0.95


@dataclass(frozen=True)
class SloTarget:
    """``metric`` (ttft, tpot, itl, e2e) at ``percentile`` must be <= ``limit_s`` seconds."""

    metric: str
    percentile: int
    limit_s: float

    @property
    def name(self) -> str:
        """The target's name, e.g. ``ttft_p99``; also the stem of its results-table column."""
        return f"{self.metric}_p{self.percentile}"

    @property
    def column(self) -> str:
        """The results-table column holding this percentile (seconds)."""
        return f"{self.name}_s"


def slo_target(name: Any, limit: Any, *, source: object, where: str) -> SloTarget:
    """Check one ``name: limit`` pair (limit in seconds, > 0) and build its target."""
    if name not in SLO_NAMES:
        raise InputError(f"unknown SLO{did_you_mean(str(name), SLO_NAMES)}; expected METRIC_pNN with METRIC in "
                         f"{', '.join(METRICS)} and NN in {', '.join(map(str, PERCENTILES))}", source=source,
                         where=where, value=name)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit <= sys.float_info.max:
        raise InputError("expected a latency limit in seconds (> 0)", source=source, where=f"{where}",
                         value=limit)
    metric, _, pct = str(name).partition("_p")
    return SloTarget(metric, int(pct), float(limit))


def slo_from_mapping(value: Any, *, source: object, where: str = "slo") -> tuple[SloTarget, ...]:
    """Targets from a mapping such as ``{ttft_p99: 0.5, tpot_p99: 0.05}``; ``None`` gives none."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InputError("expected a mapping such as {ttft_p99: 0.5, tpot_p99: 0.05} (seconds)", source=source,
                         where=where, value=value)
    return tuple(slo_target(k, v, source=source, where=f"{where}.{k}") for k, v in value.items())


def slo_from_flags(flags: Iterable[str]) -> tuple[SloTarget, ...]:
    """Targets from ``--slo ttft_p99=0.5`` flags (seconds)."""
    out = []
    for flag in flags:
        name, sep, text = flag.partition("=")
        try:
            limit = float(text) if sep else None
        except ValueError:
            limit = None
        if limit is None:
            raise InputError("expected NAME=SECONDS, e.g. ttft_p99=0.5", source="--slo", value=flag)
        out.append(slo_target(name.strip(), limit, source="--slo", where=name.strip()))
    return tuple(out)


def slo_from_scenario(slo: Any) -> tuple[SloTarget, ...]:
    """Targets from a scenario's ``slo:`` section (ttft_s / tpot_s at its percentile), when expressible."""
    pct = slo.percentile
    if pct not in PERCENTILES or float(pct) != int(pct):
        return ()
    limits = (("ttft", slo.ttft_s), ("tpot", slo.tpot_s))
    return tuple(SloTarget(m, int(pct), float(v)) for m, v in limits if v is not None)


def percentile_value(summary: Mapping[str, Any], target: SloTarget) -> float | None:
    """The target's percentile (seconds) from a run summary; None when the run has no such value."""
    return summary["latency_s"][target.metric][f"p{target.percentile}"]


def check_slo(values: Mapping[str, float | None], finished: int, targets: Iterable[SloTarget]) -> str:
    """'' when every target is met, else the first violation ("ttft_p99 0.61 s > 0.5 s").

    ``values`` maps each target name to its measured percentile. A run with no finished request meets
    nothing; a missing TPOT/ITL (no request produced a second token) meets its target vacuously.
    """
    targets = tuple(targets)
    if targets and finished == 0:
        return "no request finished"
    for t in targets:
        v = values.get(t.name)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if t.metric in ("ttft", "e2e"):
                return f"{t.name} undefined"
            continue
        if v > t.limit_s:
            return f"{t.name} {v:.4g} s > {t.limit_s:.4g} s"
    return ""


def mean_rate_per_s(times_s: np.ndarray) -> float:
    """(n - 1) / (max - min) of the finite times; nan for fewer than two distinct times."""
    t = np.asarray(times_s, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size < 2 or t.max() <= t.min():
        return float("nan")
    return (t.size - 1) / float(t.max() - t.min())


def first_token_rate_per_s(arrival_s: np.ndarray, first_token_s: np.ndarray) -> float:
    """Arrival rate / slope of first-token time against arrival time (requests with a first token); nan if
    fewer than two distinct arrivals have one."""
    a, f = np.asarray(arrival_s, dtype=np.float64), np.asarray(first_token_s, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(f)
    a, f = a[keep], f[keep]
    rate = mean_rate_per_s(a)
    if not math.isfinite(rate):
        return float("nan")
    da = a - a.mean()
    slope = float(np.dot(da, f - f.mean()) / np.dot(da, da))
    return rate / slope if slope > 0 else float("nan")


def sustained(requests: Any) -> tuple[bool, str, dict[str, float]]:
    """Whether a run's requests (its ``requests`` DataFrame) show a stable system; see module docstring.

    Returns (ok, reason or '', {"arrival_rate_per_s", "first_token_rate_per_s"}).
    """
    arrival = mean_rate_per_s(requests["arrival_s"].to_numpy())
    first = first_token_rate_per_s(requests["arrival_s"].to_numpy(), requests["first_token_s"].to_numpy())
    rates = {"arrival_rate_per_s": arrival, "first_token_rate_per_s": first}
    status = requests["status"]
    rejected, unfinished = int((status == "rejected").sum()), int((status == "unfinished").sum())
    if rejected:
        return False, f"{rejected} requests rejected", rates
    if unfinished:
        return False, f"{unfinished} requests unfinished", rates
    if math.isfinite(arrival) and math.isfinite(first) and first < MIN_SERVED_FRACTION * arrival:
        return False, (f"first tokens at {first:.4g} req/s < {MIN_SERVED_FRACTION:g} x arrivals at "
                       f"{arrival:.4g} req/s (queue grows)"), rates
    return True, "", rates
