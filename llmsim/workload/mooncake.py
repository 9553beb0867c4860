"""Loader for Mooncake traces (FAST'25 release): one JSON object per line.

Each line holds ``timestamp`` (ms since the start, integer or float), ``input_length`` and
``output_length`` (tokens), and optionally ``hash_ids``: one id per 512-token block of the prompt,
equal ids meaning an identical prefix. Blank lines are skipped; other keys are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmsim.errors import InputError, did_you_mean
from llmsim.workload._csv import open_text
from llmsim.workload._rows import ParsedRows, finish_rows

#: Tokens per ``hash_ids`` block in Mooncake traces.
MOONCAKE_BLOCK_TOKENS = 512
REQUIRED_KEYS = ("timestamp", "input_length", "output_length")


def _number(record: dict, key: str, source: Path, line: int) -> float:
    """``record[key]`` as a float; InputError when missing or not a JSON number."""
    if key not in record:
        close = did_you_mean(key, map(str, record)).replace(" (did you mean", " (found similar key")
        raise InputError(f"missing key {key!r}{close.replace('?)', ')')}; expected "
                         f"keys {', '.join(REQUIRED_KEYS)} (and optional hash_ids)",
                         source=source, where=f"line {line}")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"expected a number for {key!r}", source=source, where=f"line {line}",
                         value=value)
    try:
        return float(value)
    except OverflowError:
        raise InputError(f"{key!r} is too large", source=source, where=f"line {line}") from None


def _hash_ids(record: dict, source: Path, line: int) -> np.ndarray:
    """``record['hash_ids']`` as int64 (empty when absent); InputError unless a list of integers."""
    ids = record.get("hash_ids", [])
    if not isinstance(ids, list) or not all(type(h) is int for h in ids):
        raise InputError("expected 'hash_ids' to be a list of integers", source=source,
                         where=f"line {line}")
    try:
        return np.array(ids, dtype=np.int64)
    except OverflowError:
        raise InputError("a 'hash_ids' value does not fit in 64 bits", source=source,
                         where=f"line {line}") from None


def _record(text: str, source: Path, line: int) -> dict:
    """One line parsed as a JSON object; InputError naming the line otherwise."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno}); expected an object "
                         "like {\"timestamp\": 0, \"input_length\": 512, \"output_length\": 64, "
                         "\"hash_ids\": [0]}", source=source, where=f"line {line}") from None
    except RecursionError:
        raise InputError("JSON nested too deeply", source=source, where=f"line {line}") from None
    if not isinstance(record, dict):
        raise InputError("expected a JSON object per line", source=source, where=f"line {line}",
                         value=text.strip()[:80])
    return record


def _read_lines(path: Path, nrows: int | None) -> tuple[list, int]:
    """(per-record tuples, lines read) for the first ``nrows`` records of the file."""
    rows, read = [], 0
    with open_text(path) as handle:
        try:
            for line, text in enumerate(handle, start=1):
                if nrows is not None and read >= nrows:
                    break
                read += 1
                if not text.strip():
                    continue
                record = _record(text, path, line)
                rows.append((line, *(_number(record, k, path, line) for k in REQUIRED_KEYS),
                             _hash_ids(record, path, line)))
        except UnicodeDecodeError:
            raise InputError("not a UTF-8 text file", source=path) from None
    return rows, read


def load_mooncake(path: Path, nrows: int | None = None) -> ParsedRows:
    """Load a Mooncake JSONL trace: arrival = ``timestamp`` / 1000 (s); 512-token prefix blocks.

    ``hash_ids`` becomes :attr:`Trace.prefix_block_hashes`; a line without it has no known blocks.
    """
    path = Path(path)
    rows, read = _read_lines(path, nrows)
    if not rows:
        raise InputError("no requests: the file has no JSON lines", source=path)
    lines, stamps_ms, prompt, output, hashes = zip(*rows)
    known = any(len(ids) for ids in hashes)
    return finish_rows(path, arrival_s=np.array(stamps_ms), prompt=np.array(prompt),
                       output=np.array(output), lines=np.array(lines, dtype=np.int64),
                       columns=REQUIRED_KEYS, hashes=tuple(hashes) if known else None,
                       block_tokens=MOONCAKE_BLOCK_TOKENS, rows_read=read, time_unit="ms")
