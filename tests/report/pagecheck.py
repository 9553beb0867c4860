"""Reading a report page back: its tags and attributes (stdlib html.parser) and its embedded images."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DATA_URI = "data:image/png;base64,"


@dataclass
class Page(HTMLParser):
    """Every start tag with its attributes, plus the text of <title>, <h1>, <h2> and <th> elements."""

    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    texts: dict[str, list[str]] = field(default_factory=dict)
    _open: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._open.append(tag)

    def handle_endtag(self, tag) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]

    def handle_data(self, data) -> None:
        for tag in ("title", "h1", "h2", "th", "summary", "pre"):
            if tag in self._open:
                self.texts.setdefault(tag, []).append(data)

    def all(self, tag: str) -> list[dict[str, str]]:
        """The attributes of every ``tag`` element, in order."""
        return [attrs for name, attrs in self.tags if name == tag]


def read_page(path: Path) -> Page:
    """Parse the HTML file at ``path``."""
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def png_bytes(src: str) -> bytes:
    """The PNG inside a ``data:image/png;base64,`` URI (AssertionError for anything else)."""
    assert src.startswith(PNG_DATA_URI), src[:40]
    data = base64.b64decode(src[len(PNG_DATA_URI):], validate=True)
    assert data.startswith(PNG_SIGNATURE)
    return data
