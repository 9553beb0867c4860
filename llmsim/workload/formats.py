"""One small loader per trace format, and the :data:`TRACE_FORMATS` registry.

A loader is ``load_<format>(path, nrows=None) -> ParsedRows``: it reads at most ``nrows`` data rows,
validates them (raising :class:`~llmsim.errors.InputError` with the file and line) and returns the
columns on the file's own clock. :func:`llmsim.workload.load_trace` turns them into a
:class:`~llmsim.workload.Trace`. Formats:

========== ==================================================================================
llmsim     ``arrival_s,prompt_tokens,output_tokens`` (+ optional ``prefix_hashes``: block ids
           separated by spaces, 512-token blocks; ``prefix_hashes_<B>`` for B-token blocks)
azure      Azure LLM inference 2023: ``TIMESTAMP,ContextTokens,GeneratedTokens``, wall clock
burstgpt   BurstGPT: ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``
           (seconds); rows with 0 response tokens are failed requests and are skipped
vidur      Vidur trace replay: ``arrived_at,num_prefill_tokens,num_decode_tokens`` (seconds)
lengths    length statistics ``num_prefill_tokens,num_decode_tokens,...`` (no arrival times)
mooncake   Mooncake JSON lines (see :mod:`llmsim.workload.mooncake`)
========== ==================================================================================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from llmsim.errors import InputError
from llmsim.workload._csv import parse_columns, parse_number, read_frame, read_header, require_columns
from llmsim.workload._rows import ParsedRows, finish_rows
from llmsim.workload.mooncake import load_mooncake
from llmsim.workload.trace import Trace

NUMBER = "a number"
TOKENS = "a whole number of tokens"


def _read(path: Path, fmt: str, columns: dict[str, tuple], nrows: int | None,
          optional: tuple[str, ...] = ()) -> tuple[dict, np.ndarray, pd.DataFrame, list[str]]:
    """Read a CSV trace, check its header, parse ``columns``; return (columns, lines, frame, header)."""
    path = Path(path)
    header = read_header(path)
    require_columns(header, [*columns, *optional], fmt, path)
    frame = read_frame(path, header, nrows)
    values, lines = parse_columns(frame, columns, path)
    return values, lines, frame, header


def load_llmsim(path: Path, nrows: int | None = None) -> ParsedRows:
    """Load llmsim's own CSV: ``arrival_s`` (s, >= 0), ``prompt_tokens``, ``output_tokens``."""
    cols = {"arrival_s": (parse_number, NUMBER), "prompt_tokens": (parse_number, TOKENS),
            "output_tokens": (parse_number, TOKENS)}
    values, lines, frame, header = _read(path, "llmsim", cols, nrows)
    hash_column = next((name for name in header if re.fullmatch(r"prefix_hashes(_\d+)?", name)), None)
    hashes, block = None, None
    if hash_column is not None:
        block = int(hash_column.rsplit("_", 1)[1]) if hash_column[-1].isdigit() else 512
        if block < 1:
            raise InputError("prefix_hashes_<B> needs B >= 1", source=path, where="line 1")
        hashes = _parse_hashes(frame[hash_column], lines, hash_column, path)
    return finish_rows(path, arrival_s=values["arrival_s"], prompt=values["prompt_tokens"],
                       output=values["output_tokens"], lines=lines, columns=tuple(cols),
                       hashes=hashes, block_tokens=block, rows_read=len(frame))


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` as an llmsim CSV (arrival_s to 1 us; hashes as ``prefix_hashes_<B>``).

    :func:`load_llmsim` reads it back with the same arrays (arrival times rounded to 6 decimals).
    """
    path = Path(path)
    columns = {"arrival_s": np.char.mod("%.6f", trace.arrival_s),
               "prompt_tokens": trace.prompt_tokens, "output_tokens": trace.output_tokens}
    if trace.prefix_block_hashes is not None:
        columns[f"prefix_hashes_{trace.prefix_block_tokens}"] = [
            " ".join(map(str, ids.tolist())) for ids in trace.prefix_block_hashes]
    pd.DataFrame(columns).to_csv(path, index=False, lineterminator="\n")
    return path


def _parse_hashes(column: pd.Series, lines: np.ndarray, name: str, path: Path) -> tuple:
    """Space-separated int64 block ids per row (an empty field = no known blocks)."""
    out = []
    raw = column.to_numpy(dtype=object)
    for line in lines.tolist():
        text = raw[line - 2]
        text = "" if pd.isna(text) else str(text)
        try:
            out.append(np.array([int(part) for part in text.split()], dtype=np.int64))
        except (ValueError, OverflowError):
            raise InputError(f"expected block ids separated by spaces in {name!r}", source=path,
                             where=f"line {line}", value=text) from None
    return tuple(out)


def parse_wall_clock(series: pd.Series) -> np.ndarray:
    """Wall-clock timestamps (``2023-11-16 18:15:46.6805900``, any ISO 8601 precision) as float64
    seconds since the first parseable one; NaN where a value does not parse."""
    try:
        stamps = pd.to_datetime(series.astype("string"), format="ISO8601", errors="coerce")
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert(None)
        nanos = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    except (ValueError, TypeError, OverflowError, AttributeError):
        return np.full(len(series), np.nan)
    valid = ~stamps.isna().to_numpy()
    out = np.full(len(series), np.nan)
    if valid.any():
        first = nanos[np.argmax(valid)]
        out[valid] = (nanos[valid] - first) / 1e9
    return out


def load_azure(path: Path, nrows: int | None = None) -> ParsedRows:
    """Load the Azure LLM inference trace 2023 (``TIMESTAMP,ContextTokens,GeneratedTokens``).

    Arrival = seconds since the first row's wall-clock ``TIMESTAMP`` (ns resolution kept).
    """
    cols = {"TIMESTAMP": (parse_wall_clock, "a time like 2023-11-16 18:15:46.6805900"),
            "ContextTokens": (parse_number, TOKENS), "GeneratedTokens": (parse_number, TOKENS)}
    values, lines, frame, _ = _read(path, "azure", cols, nrows)
    return finish_rows(path, arrival_s=values["TIMESTAMP"], prompt=values["ContextTokens"],
                       output=values["GeneratedTokens"], lines=lines, columns=tuple(cols),
                       nonnegative_arrival=False, rows_read=len(frame))


def load_burstgpt(path: Path, nrows: int | None = None) -> ParsedRows:
    """Load a BurstGPT CSV (``Timestamp`` s, ``Request tokens``, ``Response tokens``; other columns
    ignored). Rows with ``Response tokens`` = 0 are failed requests: skipped, and counted in a note."""
    cols = {"Timestamp": (parse_number, NUMBER), "Request tokens": (parse_number, TOKENS),
            "Response tokens": (parse_number, TOKENS)}
    values, lines, frame, _ = _read(path, "burstgpt", cols, nrows)
    return finish_rows(path, arrival_s=values["Timestamp"], prompt=values["Request tokens"],
                       output=values["Response tokens"], lines=lines, columns=tuple(cols),
                       zero_output="skip", rows_read=len(frame))


def load_vidur(path: Path, nrows: int | None = None) -> ParsedRows:
    """Load Vidur's trace-replay CSV (``arrived_at`` s, ``num_prefill_tokens``, ``num_decode_tokens``)."""
    cols = {"arrived_at": (parse_number, NUMBER), "num_prefill_tokens": (parse_number, TOKENS),
            "num_decode_tokens": (parse_number, TOKENS)}
    values, lines, frame, _ = _read(path, "vidur", cols, nrows)
    return finish_rows(path, arrival_s=values["arrived_at"], prompt=values["num_prefill_tokens"],
                       output=values["num_decode_tokens"], lines=lines, columns=tuple(cols),
                       rows_read=len(frame))


def load_lengths(path: Path, nrows: int | None = None) -> ParsedRows:
    """Load a length-statistics CSV (``num_prefill_tokens,num_decode_tokens``, other columns ignored).

    The result has ``arrival_s=None``: it is only usable with synthetic arrivals.
    """
    cols = {"num_prefill_tokens": (parse_number, TOKENS), "num_decode_tokens": (parse_number, TOKENS)}
    values, lines, frame, _ = _read(path, "lengths", cols, nrows)
    return finish_rows(path, arrival_s=None, prompt=values["num_prefill_tokens"],
                       output=values["num_decode_tokens"], lines=lines,
                       columns=("", *cols), rows_read=len(frame))


#: Format name -> loader ``(path, nrows=None) -> ParsedRows``. Adding a format touches this dict
#: and :data:`HEADER_SIGNATURES` (for auto-detection) only.
TRACE_FORMATS: dict[str, Callable[..., ParsedRows]] = {
    "llmsim": load_llmsim,
    "azure": load_azure,
    "mooncake": load_mooncake,
    "burstgpt": load_burstgpt,
    "vidur": load_vidur,
    "lengths": load_lengths,
}

#: (format, columns that identify it) in the order auto-detection tries them; mooncake is JSON.
HEADER_SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = (
    ("llmsim", frozenset({"arrival_s", "prompt_tokens", "output_tokens"})),
    ("azure", frozenset({"TIMESTAMP", "ContextTokens", "GeneratedTokens"})),
    ("burstgpt", frozenset({"Timestamp", "Request tokens", "Response tokens"})),
    ("vidur", frozenset({"arrived_at", "num_prefill_tokens", "num_decode_tokens"})),
    ("lengths", frozenset({"num_prefill_tokens", "num_decode_tokens"})),
)
