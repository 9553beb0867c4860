"""Ways to break an input, as Hypothesis strategies, and the checks every reliability test applies.

A loader given broken input may succeed (the mutation happened to be harmless) or raise
:class:`llmsim.errors.InputError` with a one-line message; any other exception is a bug in llmsim.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

from hypothesis import strategies as st

from llmsim.errors import InputError

#: Values of the wrong type or out of range, for any key.
BAD_VALUES: list[Any] = [
    "", "x", "bogus", " ", "1e-6", "\x00", [], [1, "a"], [[1]], {}, {"a": 1}, -1, 0, -0.5, 1.5, 1e-300,
    float("nan"), float("inf"), float("-inf"), 10**30, 2**63, -(2**63), True, False, None,
]

#: Fragments that break YAML (or JSON) syntax, or produce values PyYAML cannot build.
SYNTAX_GARBAGE: list[str] = [
    ": :", "[", "]", "{", "}", "- ", "\t", "&a ", "*b", "!!python/object:os.system x", "!!float x", "!!int x",
    "%YAML 9.9\n", "? ", "---\n", "...\n", '"', "'", "\\", "\ufeff", "2024-13-45", "k: [1, 2", "\n  bad: 1\n",
    "!!binary '%%'", "<<: *x", ",", "\n- x\n", "a: b: c", "!!timestamp x", "9" * 80, "[" * 3000, "# c\n",
]

#: Bytes that are not UTF-8.
NON_UTF8: list[bytes] = [b"\xff", b"\xfe\xff", b"\x80abc", b"\xc3\x28", b"\xed\xa0\x80"]

key_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


def typo(word: str) -> str:
    """``word`` with two neighbouring letters swapped (``scheduler`` -> ``shceduler``), or doubled."""
    if len(word) < 3:
        return word + word[-1:]
    return word[0] + word[2] + word[1] + word[3:]


def slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) pair of a nested structure of dicts and lists, outermost first."""
    out: list[tuple[Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in list(items):
        out.append((node, key))
        out.extend(slots(child))
    return out


def dicts(node: Any) -> list[dict]:
    """Every mapping inside ``node`` (``node`` itself included when it is one)."""
    found = [node] if isinstance(node, dict) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        found.extend(dicts(child))
    return found


@st.composite
def mutated_mapping(draw, base: dict, values: list[Any] | None = None, max_mutations: int = 3) -> dict:
    """``base`` after 1..max_mutations of: drop a key (or list item), add an unknown key (a typo of a
    known one or random text), or replace a value by a wrong one."""
    data = copy.deepcopy(base)
    pool = BAD_VALUES if values is None else values
    for _ in range(draw(st.integers(1, max_mutations))):
        places = slots(data)
        kind = draw(st.sampled_from(["drop", "unknown", "replace", "replace"])) if places else "unknown"
        if kind == "unknown":
            target = draw(st.sampled_from(dicts(data)))
            known = [k for k in target if isinstance(k, str)]
            key = typo(draw(st.sampled_from(known))) if known and draw(st.booleans()) else draw(key_text)
            target[key] = copy.deepcopy(draw(st.sampled_from(pool) | st.integers(-3, 3)))
            continue
        container, key = draw(st.sampled_from(places))
        if kind == "drop":
            del container[key]
        else:
            container[key] = copy.deepcopy(draw(st.sampled_from(pool) | key_text))
    return data


@st.composite
def mutated_bytes(draw, text: str, garbage: list[str] | None = None) -> bytes:
    """The UTF-8 bytes of ``text`` after 1-3 of: truncation, injected syntax (from ``garbage``, default
    :data:`SYNTAX_GARBAGE`), non-UTF-8 bytes, a deleted or duplicated line, a shifted indent; or an empty file."""
    garbage = SYNTAX_GARBAGE if garbage is None else garbage
    if draw(st.integers(0, 19)) == 0:
        return b""
    data = text.encode()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "inject", "inject", "non_utf8", "delete_line", "duplicate_line",
                                     "indent"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "truncate":
            data = data[:pos]
        elif kind == "inject":
            data = data[:pos] + draw(st.sampled_from(garbage)).encode() + data[pos:]
        elif kind == "non_utf8":
            data = data[:pos] + draw(st.sampled_from(NON_UTF8)) + data[pos:]
        else:
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if kind == "delete_line":
                del lines[i]
            elif kind == "duplicate_line":
                lines.insert(i, lines[i])
            else:
                lines[i] = b"  " + lines[i]
            data = b"\n".join(lines)
    return data


def clean(fn: Callable[..., Any], *args, names: str | Path | None = None, **kwargs) -> Any:
    """Call ``fn``; return its result or the InputError it raised (checked to be one non-empty line that
    names ``names``, when given). Any other exception propagates: that is the bug the tests look for."""
    try:
        return fn(*args, **kwargs)
    except InputError as exc:
        text = str(exc)
        assert text.strip() and "\n" not in text and "\r" not in text, repr(text)
        if names is not None:
            assert str(names) in text, f"{names} not named in: {text}"
        return exc
