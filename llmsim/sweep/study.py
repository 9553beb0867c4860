"""Study files: a base scenario, the key paths to vary, and the SLO / target rate to judge the points by.

::

    name: gpu-tp-70b
    base: ../scenarios/chat.yaml        # a path relative to this file, a built-in scenario, or a mapping
    set: {workload.num_requests: 2000}  # applied to every point first
    axes:                               # cartesian product, first axis varying slowest
      hardware: [h100-sxm, h200-sxm]
      parallelism.tp: [2, 4, 8]
    zip:                                # lists of equal length varied together (one more, fastest axis)
      scheduler.policy: [continuous, chunked]
      scheduler.max_num_seqs: [256, 128]
    slo: {ttft_p99: 0.5, tpot_p99: 0.05}
    target: {rate: 20}                  # requests/s: pick the cheapest point meeting the SLO at this rate

A point's id is a hash of its own overrides (axes and zip values), so it does not depend on where the point
sits in the grid; its index is its position in the grid (rows are sorted by it).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from llmsim.errors import InputError, did_you_mean
from llmsim.specs._yaml import read_yaml_mapping
from llmsim.sweep.scenarios import BaseScenario, resolve_base
from llmsim.sweep.slo import SloTarget, slo_from_mapping

STUDY_KEYS = ("name", "description", "base", "set", "axes", "zip", "slo", "target")
TARGET_KEYS = ("rate",)


@dataclass(frozen=True)
class Point:
    """One scenario of the grid: ``overrides`` (key path -> value, axes then zip) applied after ``set``."""

    index: int
    id: str
    overrides: tuple[tuple[str, Any], ...]

    def describe(self) -> str:
        """``hardware=h100-sxm, parallelism.tp=4`` (for messages)."""
        return ", ".join(f"{k}={_short(v)}" for k, v in self.overrides) or "(no overrides)"


@dataclass(frozen=True)
class Study:
    """A validated study file (see module docstring). ``record`` is what identifies it for resuming."""

    name: str
    description: str
    source: str
    base: BaseScenario
    set: tuple[tuple[str, Any], ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    zip: tuple[tuple[str, tuple[Any, ...]], ...]
    slo: tuple[SloTarget, ...]
    target_rate_per_s: float | None
    raw: dict[str, Any]

    @property
    def dimension_keys(self) -> tuple[str, ...]:
        """Every varied key path: axes in order, then zip keys."""
        return tuple(k for k, _ in self.axes) + tuple(k for k, _ in self.zip)

    def points(self) -> list[Point]:
        """Every point of the grid in order (itertools.product of the axes, then the zip group)."""
        dims = [[((k, v),) for v in values] for k, values in self.axes]
        if self.zip:
            length = len(self.zip[0][1])
            dims.append([tuple((k, values[i]) for k, values in self.zip) for i in range(length)])
        out = []
        for index, combo in enumerate(itertools.product(*dims)):
            overrides = tuple(pair for group in combo for pair in group)
            out.append(Point(index, point_id(overrides), overrides))
        return out

    def record(self) -> dict[str, Any]:
        """The study's resolved content (its mapping and its base scenario's mapping), JSON-ready."""
        return _jsonable({"study": {k: v for k, v in self.raw.items() if k != "base"}, "base": self.base.data})


def point_id(overrides: tuple[tuple[str, Any], ...]) -> str:
    """A stable 12-hex-digit id: sha256 of the overrides as canonical JSON (key order does not matter)."""
    text = json.dumps(_jsonable(dict(overrides)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_study(path: str | Path) -> Study:
    """Read and check a study file (structure only; the points' scenarios are checked by the sweep)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("study file not found", source=path)
    raw = read_yaml_mapping(path)
    # absolute, so that workers whose working directory differs (Ray) resolve the same files
    return study_from_mapping(raw, source=str(path), base_dir=path.parent.resolve(), default_name=path.stem)


def study_from_mapping(raw: dict[str, Any], *, source: str, base_dir: Path | None,
                       default_name: str = "study") -> Study:
    """Check a study mapping; relative paths (``base``) resolve against ``base_dir``."""
    for key in raw:
        if key not in STUDY_KEYS:
            raise InputError(f"unknown key{did_you_mean(key, STUDY_KEYS)}; expected one of {', '.join(STUDY_KEYS)}",
                             source=source, where=key)
    if raw.get("base") is None:
        raise InputError("required key missing (a scenario file, built-in scenario name, or mapping)",
                         source=source, where="base")
    name = raw.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise InputError("expected a non-empty name without '/'", source=source, where="name", value=name)
    base = resolve_base(raw["base"], relative_to=base_dir, source=source)
    axes = _value_lists(raw.get("axes"), "axes", source, distinct=True)
    zipped = _value_lists(raw.get("zip"), "zip", source, distinct=False)
    _check_zip(zipped, source)
    fixed = tuple(_key_values(raw.get("set"), "set", source).items())
    _check_no_repeats(fixed, axes, zipped, source)
    return Study(name=name, description=str(raw.get("description") or ""), source=source, base=base, set=fixed,
                 axes=axes, zip=zipped, slo=slo_from_mapping(raw.get("slo"), source=source),
                 target_rate_per_s=_target_rate(raw.get("target"), source), raw=raw)


def _key_values(value: Any, where: str, source: str) -> dict[str, Any]:
    """A mapping of scenario key paths (``a.b.c``) to values; None gives {}."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError("expected a mapping of scenario key paths (e.g. parallelism.tp) to values",
                         source=source, where=where, value=value)
    for key in value:
        if not isinstance(key, str) or not key.strip() or any(not part for part in key.split(".")):
            raise InputError("expected a scenario key path such as parallelism.tp", source=source,
                             where=where, value=key)
    return dict(value)


def _value_lists(value: Any, where: str, source: str, *, distinct: bool) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """``axes`` / ``zip``: each key path maps to a non-empty list (of distinct values when ``distinct``)."""
    out = []
    for key, values in _key_values(value, where, source).items():
        if not isinstance(values, list) or not values:
            raise InputError("expected a non-empty list of values", source=source, where=f"{where}.{key}",
                             value=values)
        ids = [point_id(((key, v),)) for v in values]
        if distinct and len(set(ids)) != len(ids):
            raise InputError("a value is listed twice", source=source, where=f"{where}.{key}", value=values)
        out.append((key, tuple(values)))
    return tuple(out)


def _check_zip(zipped: tuple[tuple[str, tuple[Any, ...]], ...], source: str) -> None:
    """Every zip list must have the length of the first, and no two positions may give the same values."""
    if not zipped:
        return
    first_key, first = zipped[0]
    for key, values in zipped[1:]:
        if len(values) != len(first):
            raise InputError(f"zip lists must have equal lengths: {first_key} has {len(first)} values, "
                             f"{key} has {len(values)}", source=source, where=f"zip.{key}")
    ids = [point_id(tuple((k, values[i]) for k, values in zipped)) for i in range(len(first))]
    if len(set(ids)) != len(ids):
        raise InputError("two positions of the zip lists give the same values", source=source, where="zip")


def _check_no_repeats(fixed, axes, zipped, source: str) -> None:
    """A key path may appear in only one of set, axes and zip."""
    seen: dict[str, str] = {}
    for section, pairs in (("set", fixed), ("axes", axes), ("zip", zipped)):
        for key, _ in pairs:
            if key in seen:
                raise InputError(f"also given in {seen[key]}; vary or fix each key in one place", source=source,
                                 where=f"{section}.{key}")
            seen[key] = section


def _target_rate(value: Any, source: str) -> float | None:
    """``target: {rate: R}`` -> R (requests/s, > 0); None when absent."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError("expected a mapping such as {rate: 20}", source=source, where="target", value=value)
    for key in value:
        if key not in TARGET_KEYS:
            raise InputError(f"unknown key{did_you_mean(str(key), TARGET_KEYS)}; expected rate", source=source,
                             where=f"target.{key}")
    rate = value.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= sys.float_info.max:
        raise InputError("expected a request rate in requests/s (> 0)", source=source, where="target.rate",
                         value=rate)
    return float(rate)


def _jsonable(value: Any) -> Any:
    """``value`` with tuples as lists and non-JSON scalars (dates, paths) as strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _short(value: Any) -> str:
    """A compact rendering of an axis value for messages and tables."""
    if isinstance(value, (dict, list)):
        return json.dumps(_jsonable(value), separators=(",", ":"))
    return str(value)
