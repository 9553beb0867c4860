"""Loading a trace file into a :class:`Trace`: format detection, then the replay options.

The options of :func:`load_trace` are applied in this order, each on the result of the previous:

1. ``window_s=(start, end)`` keeps arrivals in ``[start, end)`` on the file's clock (0 = first
   request) and shifts them so that ``start`` becomes 0;
2. ``limit`` keeps the first N requests;
3. ``rate_scale`` multiplies the arrival rate (divides every arrival time: 2.0 = twice as fast);
4. ``clip_prompt`` / ``clip_output`` cap lengths (prefix hashes are cut to the clipped prompt).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np

from llmsim.errors import InputError, unknown_name
from llmsim.workload import _keys
from llmsim.workload._csv import first_line
from llmsim.workload._rows import ParsedRows
from llmsim.workload.formats import HEADER_SIGNATURES, TRACE_FORMATS
from llmsim.workload.trace import Trace


def detect_format(path: Path) -> str:
    """The format of ``path`` guessed from line 1: JSON object -> mooncake, else the CSV header."""
    line = first_line(Path(path))
    if line.lstrip().startswith("{"):
        return "mooncake"
    try:
        columns = {name.strip() for name in next(csv.reader([line]))}
    except csv.Error:
        columns = set()
    for name, signature in HEADER_SIGNATURES:
        if signature <= columns:
            return name
    expected = "; ".join(f"{name}: {','.join(sorted(sig))}" for name, sig in HEADER_SIGNATURES)
    raise InputError(f"cannot tell the trace format from the header; expected one of {expected}; "
                     "or a Mooncake JSON line", source=path, where="line 1", value=line[:200])


def resolve_format(path: Path, fmt: str = "auto") -> str:
    """``fmt`` checked against :data:`TRACE_FORMATS`, or detected from the file when ``"auto"``."""
    if fmt == "auto":
        return detect_format(path)
    if fmt not in TRACE_FORMATS:
        raise unknown_name("trace format", fmt, [*TRACE_FORMATS, "auto"], source=path)
    return fmt


def read_rows(path: Path, fmt: str = "auto", nrows: int | None = None) -> ParsedRows:
    """The validated rows of a trace file in any format (length statistics included)."""
    path = Path(path)
    return TRACE_FORMATS[resolve_format(path, fmt)](path, nrows=nrows)


def load_lengths(path: Path, fmt: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(prompt_tokens, output_tokens) int64 arrays of every request of any trace or lengths file,
    for sampling lengths with synthetic arrivals."""
    rows = read_rows(path, fmt)
    if not len(rows):
        raise InputError("no requests left after skipping failed ones", source=path)
    return rows.prompt_tokens, rows.output_tokens


def _rows_for_limit(path: Path, name: str, limit: int | None) -> ParsedRows:
    """Rows of the file, reading only about ``limit`` of them when that is enough."""
    rows = TRACE_FORMATS[name](path, nrows=limit)
    if limit is not None and len(rows) < limit and rows.rows_read >= limit:
        rows = TRACE_FORMATS[name](path, nrows=None)   # blank or skipped rows: read everything
    return rows


def load_trace(path: str | Path, fmt: str = "auto", *, limit: int | None = None,
               window_s: tuple[float, float] | None = None, rate_scale: float | None = None,
               clip_prompt: int | None = None, clip_output: int | None = None) -> Trace:
    """Load a trace file as a :class:`Trace` whose first request arrives at 0.0 s.

    Args:
        path: the file; fmt: a name in :data:`TRACE_FORMATS` or ``"auto"`` (detect from line 1).
        limit, window_s, rate_scale, clip_prompt, clip_output: see the module docstring.

    Raises:
        InputError: unreadable or malformed file (naming the line), a length-statistics file (it has
            no arrival times: use it as ``workload.lengths_file``), bad options, no requests left.
    """
    path = Path(path)
    options = check_options(limit=limit, window_s=window_s, rate_scale=rate_scale,
                            clip_prompt=clip_prompt, clip_output=clip_output)
    name = resolve_format(path, fmt)
    if name == "lengths":
        raise InputError("a length-statistics file has no arrival times; use it as "
                         "workload.lengths_file (or a 'file' length distribution) together with a "
                         "synthetic workload.arrival process", source=path)
    rows = _rows_for_limit(path, name, options["limit"] if window_s is None else None)
    if not len(rows):
        raise InputError("no requests left after skipping failed ones", source=path)
    trace = Trace(rows.arrival_s - rows.arrival_s[0], rows.prompt_tokens, rows.output_tokens,
                  rows.prefix_block_hashes, rows.prefix_block_tokens, str(path), rows.notes)
    return apply_options(trace, **options)


def check_options(*, where: str = "", source: object = None, **options: object) -> dict:
    """The replay options checked and normalised (``window_s`` as a float pair, end null = inf);
    InputError for a bad one, ``where`` prefixing the option name in the key path."""
    out = {}
    for key, value in options.items():
        at = f"{where}.{key}" if where else key
        if value is None:
            out[key] = None
        elif key == "window_s":
            out[key] = _keys.window(value, at, source)
        elif key == "rate_scale":
            out[key] = _keys.number(value, at, source, positive=True)
        else:
            out[key] = _keys.number(value, at, source, integer=True, minimum=1)
    return out


def apply_options(trace: Trace, *, limit: int | None = None,
                  window_s: tuple[float, float] | None = None, rate_scale: float | None = None,
                  clip_prompt: int | None = None, clip_output: int | None = None) -> Trace:
    """The replay options applied to ``trace`` in the order of the module docstring."""
    if window_s is not None:
        trace = apply_window(trace, *window_s)
    if limit is not None and limit < len(trace):
        trace = trace.select(slice(0, int(limit))).with_note(f"limit: first {int(limit)} requests")
    if rate_scale is not None and rate_scale != 1:
        trace = replace(trace, arrival_s=trace.arrival_s / float(rate_scale))
    return clip_lengths(trace, clip_prompt, clip_output)


def apply_window(trace: Trace, start_s: float, end_s: float) -> Trace:
    """Requests arriving in ``[start_s, end_s)``, shifted so that ``start_s`` becomes 0."""
    keep = (trace.arrival_s >= start_s) & (trace.arrival_s < end_s)
    if not keep.any():
        raise InputError(f"window_s [{start_s:g}, {end_s:g}) keeps no requests; the trace's "
                         f"arrivals span 0 to {trace.duration_s:.6g} s", source=trace.source)
    kept = trace.select(keep)
    return replace(kept, arrival_s=kept.arrival_s - start_s).with_note(
        f"window_s [{start_s:g}, {end_s:g}): {len(kept)} of {len(trace)} requests")


def clip_lengths(trace: Trace, clip_prompt: int | None, clip_output: int | None) -> Trace:
    """Prompts capped at ``clip_prompt`` and outputs at ``clip_output`` tokens (None = no cap);
    a clipped prompt keeps only the hash blocks it still covers. Each cap adds a note."""
    if clip_output is not None:
        clipped = int(np.count_nonzero(trace.output_tokens > clip_output))
        if clipped:
            trace = replace(trace, output_tokens=np.minimum(trace.output_tokens, clip_output)
                            ).with_note(f"clip_output={clip_output}: {clipped} outputs shortened")
    if clip_prompt is None:
        return trace
    over = np.flatnonzero(trace.prompt_tokens > clip_prompt)
    if not len(over):
        return trace
    hashes = trace.prefix_block_hashes
    if hashes is not None:
        keep_blocks = -(-clip_prompt // trace.prefix_block_tokens)
        hashes = list(hashes)
        for i in over.tolist():
            hashes[i] = hashes[i][:keep_blocks]
        hashes = tuple(hashes)
    return replace(trace, prompt_tokens=np.minimum(trace.prompt_tokens, clip_prompt),
                   prefix_block_hashes=hashes).with_note(
        f"clip_prompt={clip_prompt}: {len(over)} prompts shortened")


def mean_rate_per_s(trace: Trace) -> float:
    """Mean arrival rate (requests/s) as the inverse mean inter-arrival time: (n - 1) / duration.

    Returns ``nan`` when it is undefined (fewer than two requests, or all at one instant).
    """
    return (len(trace) - 1) / trace.duration_s if trace.duration_s > 0 else float("nan")


def rescale_to_rate(trace: Trace, rate_per_s: float, *, where: str = "rate",
                    source: object = None) -> Trace:
    """``trace`` with arrival times scaled so that :func:`mean_rate_per_s` equals ``rate_per_s``."""
    current = mean_rate_per_s(trace)
    if not np.isfinite(current):
        raise InputError("cannot rescale a trace to a rate: it needs at least two requests at "
                         "different times", source=source, where=where, value=rate_per_s)
    scaled = replace(trace, arrival_s=trace.arrival_s * (current / rate_per_s))
    return scaled.with_note(f"arrival rate rescaled from {current:.6g} to {rate_per_s:.6g} req/s")
