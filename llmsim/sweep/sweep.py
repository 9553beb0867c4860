"""``run_sweep``: check a study, run its missing points, and write the table, the report and the figures.

Order of work: load the study; check every point (an invalid one stops everything before any run); open
the results folder (refusing another study's results unless ``overwrite``); skip the points already saved
there; run the others on the chosen backend, saving each as it finishes; then build the table from the
saved files, write it, pick the cheapest point when the study has a target rate, and write study.html.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llmsim.sweep.backends import backend as backend_function
from llmsim.sweep.cheapest import Cheapest, pick_cheapest
from llmsim.sweep.plan import READY, PlannedPoint, plan_points, point_overrides
from llmsim.sweep.store import SweepStore
from llmsim.sweep.study import Study, load_study
from llmsim.sweep.table import build_table, write_table
from llmsim.sweep.worker import OK, PointOutcome, PointTask


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: the table (grid order), the folder, how many points ran now, the pick."""

    study: Study
    table: pd.DataFrame
    out_dir: Path
    computed: int
    reused: int
    files: tuple[Path, ...]
    cheapest: Cheapest | None


def default_out_dir(study: Study) -> Path:
    """``sweeps/<study name>``: the same folder every time, so that re-running resumes."""
    return Path("sweeps") / study.name


def run_sweep(study_path: str | Path, out_dir: str | Path | None = None, *, workers: int | None = None,
              backend: str = "local", address: str | None = None, overwrite: bool = False,
              progress: bool = False, report: bool = True) -> SweepResult:
    """Run (or resume) the study at ``study_path`` into ``out_dir``; see the module docstring."""
    study = load_study(study_path)
    planned = plan_points(study)
    run = backend_function(backend, address)
    store = SweepStore(out_dir if out_dir is not None else default_out_dir(study))
    store.open(study.record(), Path(study_path).read_text(encoding="utf-8"), overwrite=overwrite)
    todo = [p for p in planned if p.status == READY and not store.is_done(p.point.id)]
    reused = sum(1 for p in planned if p.status == READY) - len(todo)
    _run_points(study, todo, store, run, workers=workers, address=address, progress=progress,
                total=len(planned), done=len(planned) - len(todo))
    outcomes = {p.point.id: store.load(p.point.id) for p in planned}
    table = build_table(planned, outcomes, study.dimension_keys, study.slo)
    files = write_table(table, store.root)
    pick = pick_cheapest(table, study.target_rate_per_s, study.slo) if study.target_rate_per_s else None
    if report:
        from llmsim.sweep.study_report import write_study_report
        files += write_study_report(study, table, store.root, pick)
    return SweepResult(study, table, store.root, len(todo), reused, tuple(files), pick)


def _run_points(study: Study, todo: list[PlannedPoint], store: SweepStore, run, *, workers, address, progress: bool,
                total: int, done: int) -> None:
    """Run ``todo`` on the backend ``run``, saving each outcome as soon as it arrives."""
    overrides = {p.point.id: dict(point_overrides(study, p.point)) for p in todo}
    tasks = [PointTask(p.point.id, p.data, study.base.source, study.base.base_dir) for p in todo]
    bar = _bar(total, done, study.name) if progress else None
    failures = [0]

    def on_done(outcome: PointOutcome) -> None:
        store.save(outcome, overrides[outcome.id])
        if outcome.status != OK:
            failures[0] += 1
        if bar is not None:
            bar.update(1)
            if failures[0]:
                bar.set_postfix(failed=failures[0])
    try:
        if tasks:
            run(tasks, on_done, workers=workers, address=address)
    finally:
        if bar is not None:
            bar.close()


def _bar(total: int, done: int, name: str):
    """A tqdm bar over points on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm
    return tqdm(total=total, initial=done, unit="point", desc=name, leave=False, disable=None, file=sys.stderr)
