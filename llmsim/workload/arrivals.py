"""Synthetic arrival processes (``workload.arrival``).

Every process is a renewal process whose first arrival is at 0.0 s, followed by independent gaps:

=========== ================ =========================================================
process     keys             gaps between arrivals (s)
=========== ================ =========================================================
poisson     rate             exponential with mean 1 / rate (the default process)
gamma       rate, cv         gamma with mean 1 / rate and coefficient of variation cv
                             (cv > 1 burstier than Poisson, cv < 1 more regular)
constant    rate             exactly 1 / rate
burst       (none)           0: every request at t = 0 (needs num_requests)
=========== ================ =========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llmsim.errors import InputError
from llmsim.workload import _keys

PROCESSES = ("poisson", "gamma", "constant", "burst")
#: Most requests one synthetic workload may generate (a guard against typos like rate: 1e9).
MAX_REQUESTS = 100_000_000


@dataclass(frozen=True)
class ArrivalSpec:
    """An arrival process: ``process`` in :data:`PROCESSES`, ``rate_per_s`` (requests/s) and the
    gaps' coefficient of variation ``cv`` (gamma only)."""

    process: str = "poisson"
    rate_per_s: float | None = None
    cv: float | None = None

    @classmethod
    def from_dict(cls, value: object, where: str, source: object) -> "ArrivalSpec":
        """Parse ``{process: poisson|gamma|constant|burst, rate: R, cv: C}``; rate > 0 is required
        except for burst, cv > 0 for gamma only."""
        d = _keys.mapping(value, where, source)
        process = _keys.choice(d.get("process", "poisson"), PROCESSES, "arrival process",
                               f"{where}.process", source)
        allowed = {"poisson": ("rate",), "gamma": ("rate", "cv"), "constant": ("rate",),
                   "burst": ()}[process]
        _keys.check_keys(d, ("process", *allowed), where, source)
        rate = cv = None
        if "rate" in allowed:
            rate = _keys.number(_keys.required(d, "rate", where, source), f"{where}.rate", source,
                                positive=True)
        if "cv" in allowed:
            cv = _keys.number(_keys.required(d, "cv", where, source), f"{where}.cv", source,
                              minimum=1e-3, maximum=1e3)  # gamma shape 1 / cv^2 stays a sane float
        return cls(process, rate, cv)

    def _gaps(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` independent gaps between consecutive arrivals (s)."""
        if self.process == "burst":
            return np.zeros(n)
        mean_s = 1.0 / self.rate_per_s
        if self.process == "poisson":
            return rng.exponential(mean_s, size=n)
        if self.process == "gamma":
            shape = 1.0 / self.cv ** 2
            return rng.gamma(shape, mean_s / shape, size=n)
        return np.full(n, mean_s)

    def times_for_count(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """The first ``n`` arrival times (s, float64, non-decreasing, the first at 0.0)."""
        if n < 1:
            return np.zeros(0)
        return np.concatenate(([0.0], np.cumsum(self._gaps(rng, n - 1))))

    def times_until(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        """All arrival times in ``[0, duration_s)`` (s); the first is 0.0."""
        if self.process == "burst":
            raise InputError("a burst has no duration: give num_requests instead of duration_s")
        expected = self.rate_per_s * duration_s
        chunk = int(expected + 6 * math.sqrt(expected) + 16)
        times = np.concatenate(([0.0], np.cumsum(self._gaps(rng, chunk))))
        while times[-1] < duration_s:
            more = times[-1] + np.cumsum(self._gaps(rng, chunk))
            times = np.concatenate((times, more))
        return times[times < duration_s]
