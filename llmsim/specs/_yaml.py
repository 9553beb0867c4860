"""Reading YAML files into plain mappings, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmsim.errors import InputError

# libyaml's safe loader when PyYAML was built with it (10x faster on calibration files), else the pure-Python one
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def is_file(path: str | Path) -> bool:
    """``Path(path).is_file()``, but False (not an exception) for a name the OS cannot even look up
    (too long, a NUL byte, a component that is a file)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def exists(path: str | Path) -> bool:
    """``Path(path).exists()``, False for a name the OS cannot look up (see :func:`is_file`)."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Parse ``path`` as a YAML mapping; :class:`InputError` with the line number on any problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}); expected a UTF-8 YAML file", source=path) from None
    except OSError as exc:
        reason = "a folder, not a file" if isinstance(exc, IsADirectoryError) else (exc.strerror or
                                                                                      exc.__class__.__name__)
        raise InputError(f"cannot read file: {reason}", source=path) from None
    return parse_yaml_mapping(text, source=path)


def _load(text: str) -> Any:
    """Parse with :data:`SAFE_LOADER`; on any error parse again with the pure-Python loader, whose messages
    point at the offending line more precisely (errors are rare, so the fast path is the common one)."""
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except Exception:
        if SAFE_LOADER is yaml.SafeLoader:
            raise
        return yaml.load(text, Loader=yaml.SafeLoader)


def parse_yaml_mapping(text: str, *, source: object) -> dict[str, Any]:
    """Parse YAML text that must hold a mapping at the top level."""
    try:
        data = _load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"malformed YAML: {problem}", source=source, where=where) from None
    except RecursionError:
        raise InputError("malformed YAML: nested too deeply", source=source) from None
    except Exception as exc:  # PyYAML's constructors raise ValueError, AttributeError ... on a tagged or
        # timestamp-like scalar they cannot build (a100-13-45, !!float x, !!timestamp x)
        raise InputError(f"malformed YAML: cannot build a value ({exc.__class__.__name__}: {exc})",
                         source=source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping of keys to values, got a {type(data).__name__}", source=source)
    for key in data:
        if not isinstance(key, str):
            raise InputError("keys must be strings", source=source, value=key)
    return data
