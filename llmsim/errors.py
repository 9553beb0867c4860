"""The one error type that reaches the user as a clean, one-line message.

Every loader and validator raises :class:`InputError` for anything the *user* got wrong (a file, a key,
a value, a flag). The command line turns it into one line on stderr and exit code 2; a traceback is shown
only with ``--debug``. Anything else escaping is a bug in llmsim.
"""

from __future__ import annotations

import difflib
from typing import Iterable


#: Every character ``str.splitlines`` breaks at, mapped to its escape, so that a message stays on one line.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


class InputError(ValueError):
    """A problem with user input, described well enough to fix without reading code.

    Args:
        message: what is wrong and what was expected ("expected a positive integer").
        source: the file (or "--set", "--decode" ...) the bad input came from, if any.
        where: the key path ("scheduler.max_num_seqs") or "line 17" inside ``source``.
        value: the offending value, shown with ``repr`` when given.
    """

    def __init__(self, message: str, *, source: object = None, where: str | None = None,
                 value: object = ..., ) -> None:
        self.message = message
        self.source = None if source is None else str(source)
        self.where = where
        self.value = value
        super().__init__(self._render())

    def _render(self) -> str:
        parts = []
        if self.source:
            parts.append(self.source)
        if self.where:
            parts.append(self.where)
        head = ": ".join(parts)
        val = "" if self.value is ... else f"got {_short_repr(self.value)}; "
        text = f"{val}{self.message}"
        line = f"{head}: {text}" if head else text
        return line.translate(_LINE_BREAKS)  # always one line, whatever the input held

    def located(self, *, source: object = None, where_prefix: str | None = None) -> "InputError":
        """Return a copy with the file and/or an outer key path filled in (inner detail is kept)."""
        where = self.where
        if where_prefix:
            where = f"{where_prefix}.{where}" if where else where_prefix
        return InputError(self.message, source=source if self.source is None else self.source,
                          where=where, value=self.value)


def _short_repr(value: object, limit: int = 200) -> str:
    """``repr(value)``, cut to ``limit`` characters (a whole file pasted into a key stays readable)."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (Python limits int-to-str conversion)
        bits = value.bit_length() if isinstance(value, int) else 0
        text = f"<an integer of about {bits * 0.30103:.0f} digits>" if bits else f"<a {type(value).__name__}>"
    return text if len(text) <= limit else f"{text[:limit - 3]}..."


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean X?)' suffix for the closest of ``choices``, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str], *, source: object = None,
                 where: str | None = None) -> InputError:
    """An :class:`InputError` for a name that is not in a registry, listing what is known."""
    known = sorted(known)
    return InputError(f"unknown {kind}{did_you_mean(name, known)}; known: {', '.join(known)}",
                      source=source, where=where, value=name)
