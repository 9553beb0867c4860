"""Validated rows of a trace file, shared by every format loader.

Each format loader reads its columns into float arrays plus the 1-based file line of every row, then
calls :func:`finish_rows`, which applies the rules common to all formats:

* token counts must be whole numbers; prompts >= 1 token; outputs >= 0 tokens;
* an output of 0 tokens is either *skipped* (BurstGPT, where 0 marks a failed request) or *clamped*
  to 1 (every other format: a served request always produces its first token), with a note;
* arrival times must be finite, >= 0 where the format promises it, and non-decreasing: a step back
  by more than :data:`ORDER_TOLERANCE_S` is an error naming the line, smaller steps (rounding) are
  repaired by a stable sort.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsim.errors import InputError

#: Largest backwards step (s) between consecutive rows treated as rounding and repaired by sorting.
ORDER_TOLERANCE_S = 1e-3
#: Token counts at or above this are rejected (float64 represents every smaller integer exactly).
MAX_TOKENS = 2 ** 53
#: Seconds per unit of the time columns a format may use.
SECONDS_PER = {"s": 1.0, "ms": 1e-3}


@dataclass(frozen=True)
class ParsedRows:
    """What a format loader returns: validated columns in file order (or sorted within tolerance).

    Attributes:
        arrival_s: float64 seconds on the file's own clock (not shifted), or None for formats
            without timestamps (length statistics).
        prompt_tokens, output_tokens: int64 arrays, >= 1.
        lines: int64 1-based line of each row in the file (the header is line 1).
        prefix_block_hashes: per-row int64 block ids, or None; prefix_block_tokens: their block size.
        notes: remarks for :attr:`Trace.notes`; rows_read: data rows consumed from the file,
            including blank and skipped ones (used to tell whether a row limit truncated the read).
    """

    arrival_s: np.ndarray | None
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    lines: np.ndarray
    prefix_block_hashes: tuple[np.ndarray, ...] | None = None
    prefix_block_tokens: int | None = None
    notes: tuple[str, ...] = ()
    rows_read: int = 0

    def __len__(self) -> int:
        """Number of requests."""
        return len(self.prompt_tokens)


def _shown(value: float) -> object:
    """A number as the user wrote it, as near as we can: integral floats shown as int."""
    return int(value) if np.isfinite(value) and value == int(value) else float(value)


def check_tokens(values: np.ndarray, lines: np.ndarray, column: str, source: object,
                 minimum: int) -> np.ndarray:
    """``values`` (float64, no NaN) as int64 tokens; InputError at the first value not a whole
    number >= ``minimum`` and < :data:`MAX_TOKENS`."""
    whole = np.isfinite(values) & (values == np.floor(values))
    ok = whole & (values >= minimum) & (values < MAX_TOKENS)
    if ok.all():
        return values.astype(np.int64)
    i = int(np.argmin(ok))
    if not whole[i]:
        expected = "a whole number of tokens"
    elif values[i] < minimum:
        expected = f"a token count >= {minimum}"
    else:
        expected = f"a token count below {MAX_TOKENS}"
    raise InputError(f"expected {expected} in {column!r}", source=source,
                     where=f"line {lines[i]}", value=_shown(values[i]))


def check_arrivals(arrival: np.ndarray, lines: np.ndarray, column: str, source: object,
                   nonnegative: bool = True, time_unit: str = "s") -> None:
    """InputError at the first non-finite (or negative) arrival or backwards step beyond
    :data:`ORDER_TOLERANCE_S`; ``arrival`` is in the file's ``time_unit`` ("s" or "ms")."""
    ok = np.isfinite(arrival) & ((arrival >= 0) if nonnegative else True)
    if not ok.all():
        i = int(np.argmin(ok))
        need = "a finite time >= 0" if nonnegative else "a finite time"
        raise InputError(f"expected {need} in {column!r}", source=source,
                         where=f"line {lines[i]}", value=_shown(arrival[i]))
    tolerance = ORDER_TOLERANCE_S / SECONDS_PER[time_unit]
    steps = np.diff(arrival)
    back = steps < -tolerance
    if back.any():
        i = int(np.argmax(back)) + 1
        raise InputError(
            f"{column!r} goes back {-steps[i - 1]:.6g} {time_unit} from the previous row (line "
            f"{lines[i - 1]}); expected rows sorted by arrival (steps back of up to "
            f"{ORDER_TOLERANCE_S} s are treated as rounding)", source=source,
            where=f"line {lines[i]}", value=_shown(arrival[i]))


def check_block_counts(hashes: tuple, prompt: np.ndarray, block_tokens: int, lines: np.ndarray,
                       source: object) -> None:
    """InputError at the first row listing more hash blocks than its prompt has (ceil(prompt / B))."""
    counts = np.fromiter((len(ids) for ids in hashes), dtype=np.int64, count=len(hashes))
    too_many = counts > -(-prompt // block_tokens)
    if too_many.any():
        i = int(np.argmax(too_many))
        raise InputError(f"{counts[i]} prefix block ids for a {prompt[i]}-token prompt; expected at "
                         f"most ceil(prompt / {block_tokens}) = {-(-prompt[i] // block_tokens)}",
                         source=source, where=f"line {lines[i]}")


def _take(rows: dict, keep: np.ndarray) -> dict:
    """Rows selected by an index array or mask, for a dict of per-row arrays / tuples."""
    out = {}
    for key, value in rows.items():
        if value is None:
            out[key] = None
        elif isinstance(value, tuple):
            positions = np.flatnonzero(keep) if keep.dtype == bool else keep
            out[key] = tuple(value[i] for i in positions.tolist())
        else:
            out[key] = value[keep]
    return out


def finish_rows(source: object, *, arrival_s: np.ndarray | None, prompt: np.ndarray,
                output: np.ndarray, lines: np.ndarray, columns: tuple[str, str, str],
                zero_output: str = "clamp", hashes: tuple | None = None,
                block_tokens: int | None = None, nonnegative_arrival: bool = True,
                rows_read: int = 0, time_unit: str = "s") -> ParsedRows:
    """Apply the common validation rules (module docstring) and build :class:`ParsedRows`.

    ``columns`` names the (arrival, prompt, output) columns for messages; ``zero_output`` is
    ``"skip"`` or ``"clamp"``; ``arrival_s`` is in ``time_unit`` and is returned in seconds.
    """
    arrival_col, prompt_col, output_col = columns
    notes: list[str] = []
    rows = {"arrival": arrival_s, "output": check_tokens(output, lines, output_col, source, 0),
            "prompt": prompt, "lines": lines, "hashes": hashes}
    zero = rows["output"] == 0
    if zero.any() and zero_output == "skip":
        rows = _take(rows, ~zero)
        notes.append(f"skipped {int(zero.sum())} failed requests ({output_col} = 0)")
    rows["prompt"] = check_tokens(rows["prompt"], rows["lines"], prompt_col, source, 1)
    if rows["hashes"] is not None:
        check_block_counts(rows["hashes"], rows["prompt"], block_tokens, rows["lines"], source)
    if zero.any() and zero_output == "clamp":
        rows["output"] = np.maximum(rows["output"], 1)
        notes.append(f"{int(zero.sum())} requests with {output_col} = 0 counted as 1 token "
                     "(the first token is always generated)")
    if rows["arrival"] is not None:
        check_arrivals(rows["arrival"], rows["lines"], arrival_col, source, nonnegative_arrival,
                       time_unit)
        rows["arrival"] = rows["arrival"] * SECONDS_PER[time_unit]
        if len(rows["arrival"]) > 1 and np.any(np.diff(rows["arrival"]) < 0):
            rows = _take(rows, np.argsort(rows["arrival"], kind="stable"))
            notes.append("rows slightly out of order (within rounding) were sorted by arrival")
    return ParsedRows(rows["arrival"], rows["prompt"], rows["output"], rows["lines"],
                      rows["hashes"], block_tokens if rows["hashes"] is not None else None,
                      tuple(notes), rows_read)
