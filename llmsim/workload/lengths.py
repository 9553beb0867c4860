"""Token-length distributions for synthetic workloads (``prompt_tokens:`` / ``output_tokens:``).

Each distribution is a small frozen dataclass with ``from_dict`` (parse one YAML mapping) and
``sample(rng, n) -> int64 array``. Samples are rounded to whole tokens and clipped to
``[min, max]`` (``min`` defaults to 1; without ``max`` they are capped at :data:`MAX_SAMPLED_TOKENS`).

========== ============================== =================================================
dist       keys                           meaning
========== ============================== =================================================
fixed      value                          always ``value``
uniform    min, max                       integers uniform on [min, max]
normal     mean, std, [min, max]          normal, rounded
lognormal  median, sigma, [min, max]      ``median * exp(sigma * Z)``, rounded
zipf       a, max, [min]                  P(k) proportional to k^-a on [min, max]
file       path, [column, format, min,    a column (``prompt`` or ``output``) of any trace or
           max]                           length-statistics file, rows drawn uniformly
========== ============================== =================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmsim.errors import InputError
from llmsim.workload import _keys
from llmsim.workload.formats import TRACE_FORMATS
from llmsim.workload.loader import load_lengths

#: Cap on sampled lengths when no ``max`` is given (tokens).
MAX_SAMPLED_TOKENS = 2 ** 31 - 1
#: Largest support (max - min + 1) of a zipf distribution, which is tabulated.
MAX_ZIPF_SUPPORT = 10 ** 7


def _bounds(d: dict, where: str, source: object) -> tuple[int, int | None]:
    """(min, max) token bounds of a distribution; min >= 1 (default 1), max >= min or None."""
    low = _keys.optional_number(d, "min", where, source, integer=True, minimum=1) or 1
    high = _keys.optional_number(d, "max", where, source, integer=True, minimum=1)
    if high is not None and high < low:
        raise InputError(f"expected max >= min ({low})", source=source, where=f"{where}.max",
                         value=high)
    return low, high


def _tokens(values: np.ndarray, low: int, high: int | None) -> np.ndarray:
    """Samples rounded to whole tokens and clipped to [low, high] (high None = the global cap)."""
    upper = MAX_SAMPLED_TOKENS if high is None else high
    return np.clip(np.rint(values), low, upper).astype(np.int64)


def _param(d: dict, key: str, where: str, source: object, **bounds) -> float:
    """A required numeric parameter."""
    return _keys.number(_keys.required(d, key, where, source), f"{where}.{key}", source, **bounds)


@dataclass(frozen=True)
class FixedLength:
    """Every request has ``value`` tokens."""

    value: int

    @classmethod
    def from_dict(cls, d: dict, where: str, source: object, **_context) -> "FixedLength":
        """Parse ``{dist: fixed, value: N}`` (N >= 1)."""
        return cls(_param(d, "value", where, source, integer=True, minimum=1))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` copies of ``value`` (draws nothing from ``rng``)."""
        return np.full(n, self.value, dtype=np.int64)


@dataclass(frozen=True)
class UniformLength:
    """Integers uniform on ``[min_tokens, max_tokens]``, both included."""

    min_tokens: int
    max_tokens: int

    @classmethod
    def from_dict(cls, d: dict, where: str, source: object, **_context) -> "UniformLength":
        """Parse ``{dist: uniform, min: A, max: B}`` (1 <= A <= B)."""
        _keys.required(d, "min", where, source)
        _keys.required(d, "max", where, source)
        return cls(*_bounds(d, where, source))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws."""
        return rng.integers(self.min_tokens, self.max_tokens + 1, size=n, dtype=np.int64)


@dataclass(frozen=True)
class NormalLength:
    """Normal(mean, std) tokens, rounded and clipped to [min_tokens, max_tokens]."""

    mean: float
    std: float
    min_tokens: int = 1
    max_tokens: int | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str, source: object, **_context) -> "NormalLength":
        """Parse ``{dist: normal, mean: M, std: S, min: .., max: ..}`` (S >= 0)."""
        return cls(_param(d, "mean", where, source), _param(d, "std", where, source, minimum=0),
                   *_bounds(d, where, source))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws."""
        return _tokens(rng.normal(self.mean, self.std, size=n), self.min_tokens, self.max_tokens)


@dataclass(frozen=True)
class LognormalLength:
    """``median * exp(sigma * Z)`` tokens (Z standard normal), rounded and clipped."""

    median: float
    sigma: float
    min_tokens: int = 1
    max_tokens: int | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str, source: object, **_context) -> "LognormalLength":
        """Parse ``{dist: lognormal, median: M, sigma: S, min: .., max: ..}`` (M > 0, S >= 0)."""
        return cls(_param(d, "median", where, source, positive=True),
                   _param(d, "sigma", where, source, minimum=0), *_bounds(d, where, source))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws."""
        values = rng.lognormal(np.log(self.median), self.sigma, size=n)
        return _tokens(values, self.min_tokens, self.max_tokens)


@dataclass(frozen=True)
class ZipfLength:
    """P(k) proportional to ``k ** -a`` for k in [min_tokens, max_tokens] (a truncated zipf)."""

    a: float
    min_tokens: int
    max_tokens: int

    @classmethod
    def from_dict(cls, d: dict, where: str, source: object, **_context) -> "ZipfLength":
        """Parse ``{dist: zipf, a: A, max: B, min: ..}`` (A > 0; at most 10^7 values in range)."""
        a = _param(d, "a", where, source, positive=True)
        _keys.required(d, "max", where, source)
        low, high = _bounds(d, where, source)
        if high - low + 1 > MAX_ZIPF_SUPPORT:
            raise InputError(f"expected max - min < {MAX_ZIPF_SUPPORT}", source=source,
                             where=f"{where}.max", value=high)
        return cls(a, low, high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws by inverse transform on the tabulated distribution."""
        support = np.arange(self.min_tokens, self.max_tokens + 1, dtype=np.float64)
        cdf = np.cumsum(support ** -self.a)
        picks = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
        return (self.min_tokens + np.minimum(picks, len(support) - 1)).astype(np.int64)


@dataclass(frozen=True)
class FileLength:
    """Lengths drawn uniformly from the rows of a trace or length-statistics file."""

    path: Path
    column: str
    format: str = "auto"
    min_tokens: int = 1
    max_tokens: int | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str, source: object, *, role: str = "prompt",
                  base_dir: Path | None = None) -> "FileLength":
        """Parse ``{dist: file, path: P, column: prompt|output, format: auto, min: .., max: ..}``;
        ``column`` defaults to ``role``, relative paths are resolved against ``base_dir``."""
        path = _keys.file_path(_keys.required(d, "path", where, source), f"{where}.path", source,
                               base_dir)
        column = _keys.choice(d.get("column", role), ("prompt", "output"), "column",
                              f"{where}.column", source)
        fmt = _keys.choice(d.get("format", "auto"), [*TRACE_FORMATS, "auto"], "trace format",
                           f"{where}.format", source)
        return cls(path, column, fmt, *_bounds(d, where, source))

    def pick(self, prompt: np.ndarray, output: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """This column at the given ``rows`` of the file's (prompt, output) arrays, clipped."""
        values = (prompt if self.column == "prompt" else output)[rows]
        return _tokens(values, self.min_tokens, self.max_tokens)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws (rows chosen uniformly with replacement); reads the file."""
        prompt, output = load_lengths(self.path, self.format)
        return self.pick(prompt, output, rng.integers(0, len(prompt), size=n))


#: ``dist:`` name -> distribution class.
LENGTH_DISTS = {"fixed": FixedLength, "uniform": UniformLength, "normal": NormalLength,
                "lognormal": LognormalLength, "zipf": ZipfLength, "file": FileLength}
#: Keys each distribution accepts besides ``dist``.
LENGTH_KEYS = {"fixed": ("value",), "uniform": ("min", "max"),
               "normal": ("mean", "std", "min", "max"),
               "lognormal": ("median", "sigma", "min", "max"), "zipf": ("a", "min", "max"),
               "file": ("path", "column", "format", "min", "max")}


def length_dist_from_dict(value: object, where: str, source: object, *, role: str,
                          base_dir: Path | None = None):
    """Parse one ``prompt_tokens:`` / ``output_tokens:`` mapping into a distribution object."""
    d = _keys.mapping(value, where, source)
    name = _keys.choice(_keys.required(d, "dist", where, source), LENGTH_DISTS, "length dist",
                        f"{where}.dist", source)
    _keys.check_keys(d, ("dist", *LENGTH_KEYS[name]), where, source)
    return LENGTH_DISTS[name].from_dict(d, where, source, role=role, base_dir=base_dir)
