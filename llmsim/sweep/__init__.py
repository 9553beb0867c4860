"""Sweeps and capacity planning: many runs of one scenario, and what to buy.

Reading guide:

* ``study.py`` -- the study file (base scenario, ``axes``, ``zip``, ``set``, ``slo``, ``target``) and its
  grid of points with stable ids; ``scenarios.py`` derives each point's scenario from the base.
* ``plan.py`` -- every point is validated before anything runs; points that do not fit in memory become
  ``infeasible`` rows.
* ``sweep.py`` -- ``run_sweep``: resume from the results folder (``store.py``), run the missing points on a
  backend (``backends.py``: local processes or Ray; ``worker.py`` runs one point), build the table
  (``table.py``), pick the cheapest point (``cheapest.py``), write ``study.html`` (``study_report.py``,
  ``figures.py``).
* ``slo.py`` -- SLO targets (``ttft_p99`` ...) and the check that a run sustained its load.
* ``capacity.py`` -- ``find_capacity``: the highest rate that meets the SLO, by doubling then bisection.
* ``cli.py`` -- the ``sweep``, ``capacity`` and ``cheapest`` commands (``register(app)``).
"""

from __future__ import annotations

from llmsim.sweep.capacity import CapacityResult, find_capacity
from llmsim.sweep.cheapest import Cheapest, pick_cheapest
from llmsim.sweep.slo import SloTarget, slo_from_flags, slo_from_mapping
from llmsim.sweep.study import Study, load_study
from llmsim.sweep.sweep import SweepResult, run_sweep

__all__ = ["run_sweep", "SweepResult", "load_study", "Study", "find_capacity", "CapacityResult", "pick_cheapest",
           "Cheapest", "SloTarget", "slo_from_flags", "slo_from_mapping"]
