"""Fast, located reading of CSV trace files.

The whole file is parsed by pandas' C reader (vectorised); only when a value fails to parse do we go
back to find the first bad row and name its line. Line numbers are 1-based with the header as line 1
and assume one record per physical line (a quoted field spanning lines shifts later numbers).
Empty lines, and lines whose fields are all empty, are skipped.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from llmsim.errors import InputError, did_you_mean

#: Turns one raw column into float64 with NaN where a value does not parse.
ColumnParser = Callable[[pd.Series], np.ndarray]


def open_text(path: Path):
    """``path`` opened for reading UTF-8 text; InputError when missing or unreadable."""
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError("file not found", source=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a trace file", source=path) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", source=path) from None


def first_line(path: Path) -> str:
    """Line 1 of ``path`` without its line break; InputError for an empty or non-UTF-8 file."""
    with open_text(path) as handle:
        try:
            line = handle.readline()
        except UnicodeDecodeError:
            raise InputError("not a UTF-8 text file", source=path) from None
    if not line.strip():
        raise InputError("file is empty" if not line else "line 1 is blank, expected a header",
                         source=path, where="line 1")
    return line.rstrip("\r\n")


def read_header(path: Path) -> list[str]:
    """The column names on line 1 of a CSV file, stripped of surrounding spaces."""
    try:
        return [name.strip() for name in next(csv.reader([first_line(path)]))]
    except csv.Error as exc:
        raise InputError(f"cannot read the CSV header: {exc}", source=path, where="line 1") from None


def require_columns(header: list[str], required: Iterable[str], fmt: str, path: Path) -> None:
    """InputError naming the expected header when a ``required`` column is missing or repeated."""
    required = list(required)
    for name in required:
        if header.count(name) != 1:
            problem = f"missing column {name!r}{did_you_mean(name, header)}" if name not in header \
                else f"column {name!r} appears more than once"
            raise InputError(f"{problem}; the {fmt} format expects a header with columns "
                             f"{','.join(required)}", source=path, where="line 1",
                             value=",".join(header))


def _too_many_fields(path: Path, width: int) -> InputError:
    """The InputError for the first row with more fields than the header (slow path, errors only)."""
    with open_text(path) as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            if len(fields) > width:
                return InputError(f"expected {width} fields as in the header, found {len(fields)}",
                                  source=path, where=f"line {number}")
    return InputError(f"a row has more fields than the {width} in the header", source=path)


def read_frame(path: Path, header: list[str], nrows: int | None) -> pd.DataFrame:
    """All data rows of a CSV file (blank lines kept as all-NaN rows, so row i is line i + 2)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, header=0, index_col=False, skip_blank_lines=False,
                                low_memory=False, nrows=nrows, encoding="utf-8-sig")
    except pd.errors.ParserWarning:
        raise _too_many_fields(path, len(header)) from None
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", source=path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as exc:
        text = " ".join(str(exc).split())
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
        if fields:
            raise InputError(f"expected {fields.group(1)} fields as in the header, found "
                             f"{fields.group(3)}", source=path, where=f"line {fields.group(2)}"
                             ) from None
        found = re.search(r"line (\d+)", text)
        raise InputError(f"cannot parse as CSV: {text}", source=path,
                         where=f"line {found.group(1)}" if found else None) from None
    if frame.shape[1] != len(header):
        raise InputError(f"expected {len(header)} columns as in the header, pandas read "
                         f"{frame.shape[1]}", source=path)
    frame.columns = header
    return frame


def parse_number(series: pd.Series) -> np.ndarray:
    """A column as float64, NaN where a value is missing or not a number (booleans included)."""
    if series.dtype.kind in "iuf":
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text = series.astype("string") if series.dtype.kind == "b" else series
    return pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Mask of rows whose every field is missing or only spaces (empty lines, ``,,``)."""
    blank = np.ones(len(frame), dtype=bool)
    for name in range(frame.shape[1]):
        column = frame.iloc[:, name]
        empty = column.isna().to_numpy(dtype=bool)
        if column.dtype.kind not in "iufb":
            empty = empty | column.astype("string").str.strip().eq("").fillna(True).to_numpy(
                dtype=bool)
        blank &= empty
    return blank


def parse_columns(frame: pd.DataFrame, parsers: dict[str, tuple[ColumnParser, str]],
                  path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse the named columns; return ``({name: float64 array}, lines)`` without blank rows.

    ``parsers`` maps a column to ``(parser, expected)``, where ``expected`` describes a good value
    ("a number") for the message of the InputError raised at the first value that does not parse.
    """
    parsed = {name: parser(frame[name]) for name, (parser, _) in parsers.items()}
    bad = np.zeros(len(frame), dtype=bool)
    for values in parsed.values():
        bad |= np.isnan(values)
    keep = np.ones(len(frame), dtype=bool)
    if bad.any():
        keep = ~_blank_rows(frame)
        bad &= keep
    if bad.any():
        row = int(np.argmax(bad))
        name = next(n for n in parsers if np.isnan(parsed[n][row]))
        raw = frame[name].iloc[row]
        missing = pd.isna(raw) or not str(raw).strip()
        message = (f"missing value for column {name!r}" if missing else f"bad value in column {name!r}")
        raise InputError(f"{message}, expected {parsers[name][1]}", source=path,
                         where=f"line {row + 2}", value=... if missing else str(raw))
    lines = np.flatnonzero(keep).astype(np.int64) + 2
    if not len(lines):
        raise InputError("no requests: the file has a header but no data rows", source=path)
    return {name: values[keep] for name, values in parsed.items()}, lines
