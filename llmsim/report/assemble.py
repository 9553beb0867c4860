"""From loaded runs to rendered figures and page sections (the order and wording of the report)."""

from __future__ import annotations

from typing import Callable, Sequence

from matplotlib.figure import Figure

from llmsim.report import figures_engine as eng
from llmsim.report import figures_latency as lat
from llmsim.report.html import Section, figure_html, notes_html, scenario_html, table_html
from llmsim.report.load import RunData
from llmsim.report.render import RenderedFigure, render
from llmsim.report.tables import notes, scenario_differences, slo_table, summary_table

#: slug -> (title, caption, figure function, minimum number of runs). The slug names the PNG/SVG files.
FIGURES: dict[str, tuple[str, str, Callable[[Sequence[RunData]], Figure], int]] = {
    "latency_cdf": ("Latency CDFs", "Empirical CDFs over finished requests: TTFT and TPOT (ms; s when a p99 "
                    "exceeds 10 s), ITL (ms, every "
                    "inter-token gap, weighted by its count), E2E latency (s). Dotted lines: SLO targets.",
                    lat.latency_cdfs, 1),
    "latency_over_time": ("Latency over time", "TTFT (ms, or s) and E2E (s) p50 (solid) and p99 (dashed) of the "
                          "requests arriving in each time bin; bottom: arrivals and completions per second.",
                          lat.latency_over_time, 1),
    "batch_kv": ("Batch size and KV cache", "Sequences per iteration (decodes plus prompt chunks) and KV "
                 "blocks in use (% of each replica's blocks), per time bin. The line is weighted by iteration "
                 "time, so long iterations count for their duration (summary.json's batch size counts every "
                 "iteration once).", eng.batch_and_kv, 1),
    "timeline": ("Request timeline", "The first requests by arrival: queueing (grey line: arrival to first "
                 "scheduled), prefill (orange: first scheduled to first token; outlined so that short prefills "
                 "show), decode (blue: first token to finish). Time spent preempted is not shown separately.",
                 eng.iteration_timeline, 1),
    "operator_time": ("Time by operator", "Seconds spent in each operator over the run, summed over replicas "
                      "(summary.json time_by_operator_s), with each one's share of the run's total.",
                      eng.operator_time, 1),
    "slo": ("SLO attainment and goodput", "Share of all requests meeting both the TTFT and TPOT targets, and "
            "the rate of such requests (goodput) beside the throughput of finished requests.", eng.slo_bars, 2),
}


def figure_slugs(n_runs: int) -> list[str]:
    """The slugs of the figures a report of ``n_runs`` runs contains (its PNG/SVG file names)."""
    return [slug for slug, (*_, min_runs) in FIGURES.items() if n_runs >= min_runs]


def build_figures(runs: Sequence[RunData]) -> dict[str, RenderedFigure]:
    """Draw and render every figure that applies to ``runs`` (call inside ``report_style()``)."""
    out = {}
    for slug in figure_slugs(len(runs)):
        title, caption, draw, _ = FIGURES[slug]
        out[slug] = render(draw(runs), slug, title, caption)
    return out


def _figure(figs: dict[str, RenderedFigure], slug: str, href: str | None) -> str:
    return figure_html(figs[slug], href) if slug in figs else ""


def build_sections(runs: Sequence[RunData], figs: dict[str, RenderedFigure], href: str | None) -> list[Section]:
    """The report's sections in reading order; ``href`` is the figures folder relative to the page."""
    diffs = scenario_differences(runs)
    scen = (table_html(diffs, "differences") if diffs.rows else "") + scenario_html(runs)
    several = " (one column per run; small figures give the change from the first run)" if len(runs) > 1 else ""
    sections = [
        Section("scenario", "Scenario", "The resolved scenario of each run" + (
            "; the table lists the keys that differ." if diffs.rows else "."), scen),
        Section("summary", "Summary", f"From summary.json{several}.", table_html(summary_table(runs), "summary")),
        Section("latency", "Latency distributions", "", _figure(figs, "latency_cdf", href)),
        Section("latency-over-time", "Latency over time", "", _figure(figs, "latency_over_time", href)),
        Section("batch-kv", "Batch size and KV cache", "", _figure(figs, "batch_kv", href)),
        Section("timeline", "Iteration timeline", "", _figure(figs, "timeline", href)),
        Section("operators", "Time by operator", "", _figure(figs, "operator_time", href)),
        Section("slo", "SLO attainment and goodput", "A request meets the SLO when its TTFT and its TPOT are "
                "both within target; goodput is the rate of such requests.",
                table_html(slo_table(runs), "slo") + _figure(figs, "slo", href)),
    ]
    found = notes(runs)
    if found:
        sections.insert(0, Section("notes", "Notes", "", notes_html(found)))
    return sections


def subtitle(runs: Sequence[RunData]) -> str:
    """The line under the title: which runs, from where."""
    return "Runs: " + "; ".join(f"{r.name} ({r.path})" for r in runs)


def default_title(runs: Sequence[RunData]) -> str:
    """"llmsim report: a" or "llmsim report: a vs b vs c"."""
    return "llmsim report: " + " vs ".join(r.name for r in runs)

