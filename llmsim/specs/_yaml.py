"""Reading YAML files into plain mappings, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmsim.errors import InputError


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping; :class:`InputError` with the line number on any problem."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read file: {exc.__class__.__name__}: {exc}", source=path) from None
    return parse_yaml_mapping(text, source=path)


def parse_yaml_mapping(text: str, *, source: object) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping at the top level."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"malformed YAML: {problem}", source=source, where=where) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping of keys to values, got a {type(data).__name__}", source=source)
    for key in data:
        if not isinstance(key, str):
            raise InputError("keys must be strings", source=source, value=key)
    return data
