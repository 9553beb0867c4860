"""The report page: one self-contained HTML file with inline CSS and figures as base64 PNG data URIs.

No JavaScript, no external fetches: the page renders the same from disk, from an e-mail attachment or
offline. Every piece of text from the runs is escaped here; tables arrive pre-formatted from tables.py.
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from html import escape
from typing import Sequence

from llmsim.report.load import RunData
from llmsim.report.render import RenderedFigure
from llmsim.report.tables import Table

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:0 20px 60px;color:#1d2125;background:#fff}
h1{font-size:24px;margin:28px 0 4px}h2{font-size:19px;margin:36px 0 8px;border-bottom:1px solid #dde1e6;
padding-bottom:4px}p.meta{color:#5a6169;margin:0 0 12px}nav a{margin-right:12px;white-space:nowrap}
a{color:#1f5fa8}table{border-collapse:collapse;margin:8px 0 16px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #e8eaed;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f5f7;position:sticky;top:0}
tr.group th{background:#fafbfc;text-align:left;font-weight:600;color:#3b4148;padding-top:8px}
span.delta{color:#6b737c;font-size:11px;margin-left:4px}figure{margin:12px 0 24px}
figure img{max-width:100%;height:auto;border:1px solid #eef0f2}figcaption{color:#4a5057;font-size:13px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}pre{background:#f6f8fa;padding:10px;
overflow:auto;font-size:12px;line-height:1.35}ul.notes li{margin:2px 0}.files{font-size:12px;color:#6b737c}
"""


@dataclass(frozen=True)
class Section:
    """One ``<section>``: an anchor id, a heading, an escaped intro sentence and a trusted HTML body."""

    id: str
    heading: str
    intro: str
    body: str


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def table_html(table: Table, css_class: str) -> str:
    """``<table>`` with a header row, optional group rows and small relative-change notes."""
    out = [f'<table class="{css_class}"><thead><tr>']
    out += [f"<th>{escape(h)}</th>" for h in table.header]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(table.rows):
        if i in table.groups:
            out.append(f'<tr class="group"><th colspan="{len(table.header)}">{escape(table.groups[i])}</th></tr>')
        deltas = table.deltas[i] if i < len(table.deltas) else []
        cells = []
        for j, cell in enumerate(row):
            note = deltas[j] if j < len(deltas) else ""
            extra = f'<span class="delta">{escape(note)}</span>' if note else ""
            cells.append(f"<td>{escape(cell)}{extra}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def figure_html(fig: RenderedFigure, files_href: str | None) -> str:
    """``<figure>`` with the PNG inline as a data URI, its caption and links to the PNG/SVG files."""
    width, height = png_size(fig.png)
    data = base64.b64encode(fig.png).decode("ascii")
    links = ""
    if files_href is not None:
        base = f"{files_href}/{fig.slug}"
        links = (f' <span class="files">Files: <a href="{escape(base)}.png">PNG</a> · '
                 f'<a href="{escape(base)}.svg">SVG</a></span>')
    return (f'<figure id="fig-{escape(fig.slug)}"><img src="data:image/png;base64,{data}" alt="{escape(fig.title)}"'
            f' width="{width}" height="{height}"><figcaption>{escape(fig.caption)}{links}</figcaption></figure>')


def scenario_html(runs: Sequence[RunData]) -> str:
    """One collapsible ``<details>`` per run holding its resolved scenario.yaml."""
    return "".join(f"<details><summary>{escape(r.name)}: scenario.yaml ({escape(str(r.path))})</summary>"
                   f"<pre>{escape(r.scenario_text)}</pre></details>" for r in runs)


def notes_html(notes: Sequence[str]) -> str:
    """A bullet list of notes (empty string for none)."""
    if not notes:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: head with inline CSS, title, a table of contents and the sections."""
    nav = " ".join(f'<a href="#{escape(s.id)}">{escape(s.heading)}</a>' for s in sections)
    body = "".join(f'<section id="{escape(s.id)}"><h2>{escape(s.heading)}</h2>'
                   + (f"<p>{escape(s.intro)}</p>" if s.intro else "") + s.body + "</section>" for s in sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p class=\"meta\">{escape(subtitle)}</p><nav>{nav}</nav>"
            f"{body}</body></html>\n")
