"""llmsim: a discrete-event simulator of LLM serving on modelled GPUs.

Reading guide, in the direction data flows:

1. ``specs/`` -- what is served and on what: ``model.py`` (ModelSpec, built-in models, HF config.json),
   ``hardware.py`` (GpuSpec from ``hardware_profiles/*.yaml``), ``parallelism.py`` (TP x PP).
2. ``costmodel/`` -- pure functions pricing one iteration: ``batch.py`` (IterationShape, BatchFeatures),
   ``operators.py`` (FLOPs and bytes), ``roofline.py`` (CostModel), ``efficiency.py`` (calibrated
   curves), ``engine.py`` (host overhead), ``memory.py`` (KV capacity). Imports no simulation code.
3. ``workload/`` -- traces and synthetic workloads as ``Trace`` arrays.
4. ``engine/`` -- the SimPy simulation: ``requests.py`` (request table), ``kv_cache.py`` (KV blocks,
   prefix cache), ``state.py`` (admission and preemption rules), ``decode_batch.py`` (decoding sequences as
   running sums), ``schedulers/`` (one policy per module),
   ``replica.py`` (the iteration loop, fast-forward), ``routers/``, ``simulation.py``, ``disaggregated.py``.
5. ``metrics.py`` (per-request latencies, summary), ``scenario.py`` (YAML -> objects), ``api.py``
   (``run``), ``compare.py``, ``cli.py`` (the command line, a thin layer over the API).

``native.py`` decides, at import, whether the hot engine modules run compiled (mypyc) or as Python.
"""

from __future__ import annotations

from llmsim import native

native.install()  # before any engine module is imported

__version__ = "0.1.0"
__all__ = ["__version__", "run", "load_scenario"]


def run(scenario, overrides=(), *, progress=None):
    """Simulate a scenario (YAML path, built-in name, mapping or Scenario); see :func:`llmsim.api.run`."""
    from llmsim.api import run as _run
    return _run(scenario, overrides, progress=progress)


def load_scenario(spec, overrides=()):
    """Validate a scenario; see :func:`llmsim.scenario.load_scenario`."""
    from llmsim.scenario import load_scenario as _load
    return _load(spec, overrides)
