"""The base scenario of a study or capacity search, and scenarios derived from it by key-path overrides.

A sweep point or a capacity trial is the base mapping with a few values replaced (``parallelism.tp`` = 4).
Values are set as Python objects (not re-parsed text), so ``1e-05`` stays a float; relative paths inside the
base keep resolving against the base file's folder, exactly as ``llmsim run BASE`` would resolve them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from llmsim.errors import InputError, did_you_mean
from llmsim.scenario import Scenario, build_scenario, builtin_scenario_dir, set_path
from llmsim.specs._yaml import read_yaml_mapping


@dataclass(frozen=True)
class BaseScenario:
    """A scenario mapping before validation, with where it came from.

    Attributes:
        data: the scenario mapping (never modified; :func:`derive` copies it).
        source: the file (or ``"STUDY (base)"`` for an inline mapping) named in error messages.
        base_dir: the folder relative paths inside ``data`` resolve against (None: the working directory).
    """

    data: dict[str, Any]
    source: str
    base_dir: Path | None


def resolve_base(spec: Any, *, relative_to: Path | None, source: object, where: str = "base") -> BaseScenario:
    """A path (relative to ``relative_to``), a built-in scenario name, or an inline mapping -> BaseScenario.

    Raises:
        InputError: naming ``source`` and ``where`` when the file is missing or the value is not usable.
    """
    if isinstance(spec, Mapping):
        return BaseScenario(copy.deepcopy(dict(spec)), f"{source} ({where})", relative_to)
    if not isinstance(spec, (str, Path)) or not str(spec).strip():
        raise InputError("expected a scenario file, a built-in scenario name, or a mapping", source=source,
                         where=where, value=spec)
    path = Path(spec)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not path.is_file():
        builtin = builtin_scenario_dir() / f"{spec}.yaml"
        if not builtin.is_file():
            names = sorted(p.stem for p in builtin_scenario_dir().glob("*.yaml"))
            raise InputError(f"scenario file not found (looked for {path}; built-in scenarios: {', '.join(names)})"
                             f"{did_you_mean(str(spec), names)}", source=source, where=where, value=str(spec))
        path = builtin
    return BaseScenario(read_yaml_mapping(path), str(path), path.parent)


def derive(base: BaseScenario, overrides: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A copy of the base mapping with each ``(key.path, value)`` applied in order."""
    data = copy.deepcopy(base.data)
    for key, value in overrides:
        set_path(data, key, value)
    return data


def build(base: BaseScenario, overrides: Iterable[tuple[str, Any]]) -> Scenario:
    """The validated scenario of ``base`` with ``overrides`` applied (InputError on any problem)."""
    return build_scenario(derive(base, overrides), source=base.source, base_dir=base.base_dir)
