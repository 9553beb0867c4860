"""Checked access to the values of a YAML mapping, raising InputError that names the key path.

Every helper takes ``where`` (the key path of the value, e.g. ``workload.arrival.rate``) and
``source`` (the file the mapping came from) and is pure: it returns the converted value.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Iterable

from llmsim.errors import InputError, unknown_name

def mapping(value: object, where: str, source: object) -> dict:
    """``value`` if it is a mapping with string keys; InputError otherwise."""
    if not isinstance(value, dict):
        raise InputError("expected a mapping of keys to values", source=source, where=where,
                         value=value)
    return value


def check_keys(d: dict, allowed: Iterable[str], where: str, source: object) -> None:
    """InputError (with a did-you-mean suggestion) for the first key of ``d`` not in ``allowed``."""
    allowed = list(allowed)
    for key in d:
        if key not in allowed:
            raise unknown_name("key", str(key), allowed, source=source, where=f"{where}.{key}")


def required(d: dict, key: str, where: str, source: object, hint: str = "") -> object:
    """``d[key]``; InputError "missing required key" naming ``where.key`` when absent or null."""
    if d.get(key) is None:
        raise InputError(f"missing required key {key!r}{hint}", source=source, where=f"{where}.{key}")
    return d[key]


def _finite(value: int | float) -> bool:
    """True for a number float64 can hold (huge ints overflow)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


#: Largest magnitude any workload number may have: beyond 2**53 integers lose precision as floats, and no
#: request count, token length, rate or time of a real workload comes near it.
MAX_NUMBER = float(2 ** 53)


def number(value: object, where: str, source: object, *, minimum: float | None = None,
           positive: bool = False, integer: bool = False, maximum: float = MAX_NUMBER) -> float | int:
    """``value`` as a finite number (an int when ``integer``), checked against the bounds.

    ``positive`` requires > 0, ``minimum`` requires >= minimum, ``maximum`` (default :data:`MAX_NUMBER`)
    requires <= maximum. Any real number type is accepted (numpy scalars included); booleans and strings
    are rejected.
    """
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not _finite(value):
        raise InputError(f"expected {kind}", source=source, where=where, value=value)
    if value > maximum:
        raise InputError(f"expected {kind} <= {maximum:,.0f}", source=source, where=where, value=value)
    if integer and value != math.floor(value):
        raise InputError(f"expected {kind}", source=source, where=where, value=value)
    if positive and value <= 0:
        raise InputError(f"expected {kind} > 0", source=source, where=where, value=value)
    if minimum is not None and value < minimum:
        raise InputError(f"expected {kind} >= {minimum}", source=source, where=where, value=value)
    return int(value) if integer else float(value)


def optional_number(d: dict, key: str, where: str, source: object, **bounds) -> float | int | None:
    """``number(d[key])`` when present and not null, else None."""
    value = d.get(key)
    return None if value is None else number(value, f"{where}.{key}", source, **bounds)


def choice(value: object, known: Iterable[str], kind: str, where: str, source: object) -> str:
    """``value`` if it is one of ``known``; InputError listing them (with a suggestion) otherwise."""
    known = list(known)
    if not isinstance(value, str) or value not in known:
        raise unknown_name(kind, str(value), known, source=source, where=where)
    return value


def _is_file(path: Path) -> bool:
    """``path.is_file()``, False for names the OS cannot even look up (too long, invalid)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def file_path(value: object, where: str, source: object, base_dir: Path | None) -> Path:
    """``value`` as an existing file path, relative paths resolved against ``base_dir``."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise InputError("expected a file path", source=source, where=where, value=value)
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # "~name" of a user this machine does not know (no home directory to expand to)
        raise InputError("file not found: no home directory for the user that '~' names", source=source,
                         where=where, value=str(value)) from None
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not _is_file(path):
        raise InputError(f"file not found: {path}", source=source, where=where, value=str(value))
    return path


def window(value: object, where: str, source: object) -> tuple[float, float]:
    """``[start, end]`` seconds with 0 <= start < end (end null = no end), as a tuple."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__") or len(value) != 2:
        raise InputError("expected [start_s, end_s]", source=source, where=where, value=value)
    start = number(value[0], f"{where}[0]", source, minimum=0)
    end = math.inf if value[1] is None else number(value[1], f"{where}[1]", source)
    if end <= start:
        raise InputError("expected end_s > start_s", source=source, where=where, value=list(value))
    return start, end
