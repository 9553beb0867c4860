"""Workloads: the requests a simulation serves, replayed from trace files or generated.

Reading guide:

* ``trace.py`` -- :class:`Trace`, the immutable arrays (arrival s, prompt and output tokens, prefix
  block hashes) every workload becomes.
* ``loader.py`` -- :func:`load_trace` (format detection, then window / limit / rate / clip options);
  ``formats.py`` and ``mooncake.py`` -- one small loader per file format, registered in
  :data:`TRACE_FORMATS`; ``_csv.py`` and ``_rows.py`` -- located parsing and the validation rules
  shared by all formats.
* ``spec.py`` -- :class:`WorkloadSpec`, the ``workload:`` section of a scenario; it generates
  synthetic workloads from ``arrivals.py`` (arrival processes), ``lengths.py`` (token-length
  distributions) and ``conversations.py`` (shared system prompts, multi-turn history, hashing).

This package imports nothing from llmsim but :mod:`llmsim.errors`.
"""

from llmsim.workload.formats import TRACE_FORMATS, save_trace
from llmsim.workload.loader import load_trace
from llmsim.workload.spec import WorkloadSpec
from llmsim.workload.trace import Trace

__all__ = ["Trace", "WorkloadSpec", "load_trace", "TRACE_FORMATS", "save_trace"]
