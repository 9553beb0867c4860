"""Where points run: ``local`` (this process for one worker, else a process pool) or ``ray`` (a Ray cluster).

A backend is a function ``(tasks, on_done, workers=..., address=...) -> None`` that calls ``on_done(outcome)``
once per task, in completion order, as soon as that task finishes. Order does not matter: the table is
sorted by grid position afterwards, so every backend gives the same results.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Sequence

from llmsim.errors import InputError
from llmsim.sweep.worker import PointOutcome, PointTask, failed_outcome, run_point

OnDone = Callable[[PointOutcome], None]
BACKENDS = ("local", "ray")


def default_workers() -> int:
    """Processes to use by default: the machine's CPU count."""
    return os.cpu_count() or 1


def run_local(tasks: Sequence[PointTask], on_done: OnDone, *, workers: int | None = None,
              address: str | None = None) -> None:
    """Run ``tasks`` in ``workers`` spawned processes (in this process when workers or tasks <= 1)."""
    workers = workers or default_workers()
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            on_done(run_point(task))
        return
    context = multiprocessing.get_context("spawn")  # the same on Linux, macOS and Windows; no fork of threads
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context)
    try:
        pending = {pool.submit(run_point, task): task for task in tasks}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001 - a crashed worker fails only its point
                    outcome = failed_outcome(task.id, exc)
                on_done(outcome)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _import_ray():
    """The ``ray`` module, or an InputError telling how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError("the ray backend needs Ray, which is not installed: pip install 'llmsim[ray]'",
                         source="--backend", value="ray") from None
    return ray


def run_ray(tasks: Sequence[PointTask], on_done: OnDone, *, workers: int | None = None,
            address: str | None = None) -> None:
    """Run ``tasks`` as Ray tasks (one CPU each); connects to ``address`` or starts a local Ray.

    An already initialised Ray (``ray.init`` called by the caller) is used as it is and left running;
    a Ray started here is shut down at the end. Cluster nodes need llmsim installed and the files the
    scenarios name (traces) at the same paths.
    """
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        options = {"address": address, "include_dashboard": False, "log_to_driver": False}
        if address is None:
            options["num_cpus"] = workers or default_workers()
        ray.init(**options)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        pending = {remote.remote(task): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a lost task or worker fails only its point
                    outcome = failed_outcome(task.id, exc)
                on_done(outcome)
    finally:
        if started:
            ray.shutdown()


def backend(name: str, address: str | None = None) -> Callable[..., None]:
    """The backend function for ``--backend NAME``, checked before anything runs (Ray importable, ...)."""
    if name == "local":
        if address is not None:
            raise InputError("--address applies only to --backend ray", source="--address", value=address)
        return run_local
    if name == "ray":
        _import_ray()
        return run_ray
    raise InputError(f"unknown backend; expected one of {', '.join(BACKENDS)}", source="--backend", value=name)
