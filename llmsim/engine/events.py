"""The event kernel the simulation runs on: SimPy's environment plus events at an absolute time (seconds)."""

from __future__ import annotations

import heapq

import simpy
from simpy.core import NORMAL
from simpy.events import Event


class SimEnvironment(simpy.Environment):
    """SimPy's environment plus events at an absolute time.

    ``env.timeout(t - env.now)`` lands at ``now + (t - now)``, which floating point does not always round back
    to ``t``. Replicas advance their clocks by exact sums of iteration times, so they wake at exactly those
    sums with :meth:`at`; the simulated clock then never depends on how many iterations one sleep covered.
    """

    def at(self, time: float, priority: int = NORMAL) -> Event:
        """An event that fires at absolute ``time`` (>= now), ordered by ``priority`` among equal times."""
        event = Event(self)
        event._ok, event._value = True, None  # a pre-triggered event, like simpy.Timeout
        heapq.heappush(self._queue, (max(float(time), self._now), priority, next(self._eid), event))  # type: ignore[misc]
        return event

    def reschedule(self, process: simpy.Process, waiting_on: Event, time: float) -> Event:
        """Resume ``process``, now waiting on ``waiting_on`` (an event of :meth:`at`), at ``time`` instead; returns
        the new event. The process's resume callback moves to a new event, as ``Process.interrupt`` does in SimPy;
        ``waiting_on`` still fires, with nobody waiting."""
        waiting_on.callbacks.remove(process._resume)
        event = self.at(time)
        event.callbacks.append(process._resume)
        process._target = event
        return event

