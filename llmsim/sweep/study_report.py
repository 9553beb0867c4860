"""``study.html``: one self-contained page per sweep (figures inlined as base64 PNG, no network access).

Sections: what was swept, the cheapest configuration (when the study names a target rate), the Pareto
chart, one line plot per dimension, and the results table. The figures are also written beside the page as
PNG and SVG. Deliberately independent of ``llmsim.report`` (single-run reports).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from llmsim.sweep.cheapest import Cheapest
from llmsim.sweep.figures import (axis_figure, dimension_groups, file_stem, pareto_figure, png_base64,
                                  save_figure)
from llmsim.sweep.store import write_atomic
from llmsim.sweep.study import Study

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eef;position:sticky;top:0}td.text{text-align:left}tr.failed td,tr.infeasible td{color:#a33}
tr.pick td{background:#fdf1c7}img{max-width:100%}code{background:#f4f4f4;padding:0 3px}"""


def write_study_report(study: Study, table: pd.DataFrame, out_dir: Path, pick: Cheapest | None) -> list[Path]:
    """Write the figures (PNG + SVG) and study.html into ``out_dir``; returns the paths written."""
    highlight = pick.row["point"] if pick is not None and pick.row is not None else None
    limits = {t.column: t.limit_s for t in study.slo}
    figures = [("pareto", "Pareto chart", pareto_figure(table, highlight, limits))]
    groups = dimension_groups([k for k, _ in study.axes], [k for k, _ in study.zip])
    for group in groups:
        others = [g for g in groups if g != group]
        figures.append((f"axis-{file_stem('+'.join(group))}", " + ".join(group), axis_figure(table, group, others, limits)))
    written: list[Path] = []
    images = []
    for stem, title, fig in figures:
        paths, png = save_figure(fig, out_dir / stem)
        written += paths
        images.append((title, png_base64(png)))
    page = render_page(study, table, pick, images)
    write_atomic(out_dir / "study.html", page)
    return [*written, out_dir / "study.html"]


def render_page(study: Study, table: pd.DataFrame, pick: Cheapest | None, images: list[tuple[str, str]]) -> str:
    """The HTML text of the page (``images``: (title, base64 PNG))."""
    e = html.escape
    counts = table["status"].value_counts()
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(study.name)}</title>",
             f"<style>{STYLE}</style></head><body><h1>Study: {e(study.name)}</h1>"]
    if study.description:
        parts.append(f"<p>{e(study.description)}</p>")
    parts.append(_about(study))
    parts.append("<p>" + ", ".join(f"{int(n)} {e(str(s))}" for s, n in counts.items()) + f" of {len(table)} points.</p>")
    if pick is not None:
        parts.append(f"<h2>Cheapest configuration</h2><p>{e(pick.describe(study.dimension_keys))}</p>")
    for title, data in images:
        parts.append(f"<h2>{e(title)}</h2><img alt='{e(title)}' src='data:image/png;base64,{data}'>")
    highlight = pick.row["point"] if pick is not None and pick.row is not None else None
    parts.append("<h2>Results</h2>" + table_html(table, highlight))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _about(study: Study) -> str:
    """A list of the study's base, fixed overrides, axes, zip, SLO and target."""
    e = html.escape
    items = [f"base: <code>{e(study.base.source)}</code>"]
    items += [f"set <code>{e(k)}</code> = {e(str(v))}" for k, v in study.set]
    items += [f"axis <code>{e(k)}</code>: {e(', '.join(map(str, vs)))}" for k, vs in study.axes]
    items += [f"zip <code>{e(k)}</code>: {e(', '.join(map(str, vs)))}" for k, vs in study.zip]
    if study.slo:
        items.append("SLO: " + e(", ".join(f"{t.name} <= {t.limit_s:g} s" for t in study.slo)))
    if study.target_rate_per_s:
        items.append(f"target rate: {study.target_rate_per_s:g} requests/s")
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def table_html(table: pd.DataFrame, highlight: Any = None) -> str:
    """The results table as HTML; failed and infeasible rows marked, the cheapest row highlighted."""
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in table.columns)
    body = []
    for _, row in table.iterrows():
        cls = "pick" if highlight is not None and row["point"] == highlight else str(row["status"])
        cells = "".join(_cell(row[c]) for c in table.columns)
        body.append(f"<tr class='{e(cls)}'>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> str:
    """One table cell: numbers to 4 significant digits, text left-aligned and escaped."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    if isinstance(value, str):
        return f"<td class='text'>{html.escape(value)}</td>"
    return f"<td>{html.escape(str(value))}</td>"
