"""Latency figures: CDFs of TTFT, TPOT, ITL and E2E, and latency over the course of the run.

Each function takes the loaded runs and returns a :class:`matplotlib.figure.Figure`; several runs are
overlaid in their run colours, the legend naming each run. Inputs are in seconds; TTFT, TPOT and ITL
are drawn in ms, E2E in s. Only finished requests count, as in summary.json.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from llmsim.report.load import RunData
from llmsim.report.render import (auto_log_x, empty_note, legend_room_in, new_figure, run_color, run_handles,
                                  side_legend)
from llmsim.report.sample import (binned_quantiles, cdf_points, finite_max, rate_per_s, time_edges,
                                  weighted_cdf_points)

MS_PER_S = 1e3
#: Latencies whose largest p99 over the runs exceeds this (s) are drawn in s rather than ms.
MS_LIMIT_S = 10.0


def latency_unit(runs: Sequence[RunData], column: str) -> tuple[str, float]:
    """("ms", 1e3) for a requests.csv latency column, or ("s", 1.0) when some run's p99 exceeds 10 s."""
    p99 = [np.nanpercentile(r.finished[column], 99) for r in runs if np.isfinite(r.finished[column]).any()]
    return ("s", 1.0) if p99 and max(p99) > MS_LIMIT_S else ("ms", MS_PER_S)


def _slo_targets(runs: Sequence[RunData], key: str) -> list[float]:
    """Distinct SLO targets (s) for ``key`` ("ttft_s" or "tpot_s") among the runs."""
    values = {r.summary.get("slo", {}).get(key) for r in runs}
    return sorted(float(v) for v in values if isinstance(v, (int, float)))


def _draw_cdf(ax, x: np.ndarray, f: np.ndarray, color: str) -> None:
    ax.plot(x, f, drawstyle="steps-post", color=color)


def _finish_cdf_axes(ax, title: str, unit: str, ylabel: str, xs: list, targets: Sequence[float]) -> None:
    """Labels, log scale when the data span decades, and SLO target lines (noted in text when off scale)."""
    data_max = max((float(x[-1]) for x in xs if len(x)), default=0.0)
    for t in targets:
        if t <= 1.5 * data_max:
            ax.axvline(t, color="0.35", linestyle=":", linewidth=1.0)
            ax.annotate(f"SLO {t:g} {unit}", (t, 0.5), rotation=90, ha="right", va="center", fontsize=7,
                        color="0.35", xytext=(-2, 0), textcoords="offset points")
        else:
            ax.text(0.98, 0.3, f"SLO {t:g} {unit} (off scale)", transform=ax.transAxes, ha="right",
                    fontsize=7, color="0.35")
    if not any(len(x) for x in xs):
        empty_note(ax)
    auto_log_x(ax, xs)
    ax.set(title=title, xlabel=f"{title} ({unit})", ylabel=ylabel, ylim=(0, 1.02))


def latency_cdfs(runs: Sequence[RunData]) -> Figure:
    """2x2 CDFs: TTFT and TPOT (ms, or s past 10 s), ITL (ms, weighted by count from itl.csv), E2E (s).

    Vertical dotted lines mark the SLO targets of TTFT and TPOT. Each curve has at most ~2000 points.
    """
    fig, axes = new_figure(10.0, 7.0, 2, 2, hgap_in=0.85)
    panels = [(axes[0], "TTFT", "ttft_s", *latency_unit(runs, "ttft_s")),
              (axes[1], "TPOT", "tpot_s", *latency_unit(runs, "tpot_s")), (axes[3], "E2E latency", "e2e_s", "s", 1.0)]
    for ax, title, column, unit, scale in panels:
        xs = []
        for i, run in enumerate(runs):
            x, f = cdf_points(run.finished[column].to_numpy() * scale)
            _draw_cdf(ax, x, f, run_color(i))
            xs.append(x)
        targets = [t * scale for t in _slo_targets(runs, column)] if column != "e2e_s" else []
        _finish_cdf_axes(ax, title, unit, "fraction of requests", xs, targets)
    xs = []
    for i, run in enumerate(runs):
        x, f = weighted_cdf_points(run.itl["gap_s"].to_numpy() * MS_PER_S, run.itl["count"].to_numpy())
        _draw_cdf(axes[2], x, f, run_color(i))
        xs.append(x)
    _finish_cdf_axes(axes[2], "ITL", "ms", "fraction of inter-token gaps", xs, [])
    axes[0].legend(*run_handles([r.name for r in runs]), loc="lower right")
    return fig


def latency_edges(runs: Sequence[RunData]) -> np.ndarray:
    """Common arrival-time bins (s) for all runs: ~20 finished requests per bin, 20 to 150 bins."""
    t_end = max((finite_max(r.requests["arrival_s"]) for r in runs), default=1.0)
    n = max((len(r.finished) for r in runs), default=0)
    return time_edges(t_end, min(150, max(20, n // 20)))


def _rates(run: RunData, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrivals and completions per second in each bin, NaN after the run's last event (not a drop to 0)."""
    arrivals = rate_per_s(run.requests["arrival_s"].to_numpy(), edges)
    done = rate_per_s(run.finished["finish_s"].to_numpy(), edges)
    last = finite_max(run.requests[["arrival_s", "finish_s"]].to_numpy())
    after = edges[:-1] > last
    arrivals[after], done[after] = np.nan, np.nan
    return arrivals, done


def latency_over_time(runs: Sequence[RunData]) -> Figure:
    """TTFT (ms, or s past 10 s) and E2E (s) p50/p99 per arrival-time bin, and arrival/completion rates (requests/s).

    Requests are binned by arrival time, so a rising curve shows requests that arrived then waiting longer.
    """
    edges = latency_edges(runs)
    centers = 0.5 * (edges[:-1] + edges[1:])
    t_end = max((finite_max(r.requests[["arrival_s", "finish_s"]].to_numpy()) for r in runs), default=1.0)
    rate_edges = time_edges(t_end, len(centers))
    rate_centers = 0.5 * (rate_edges[:-1] + rate_edges[1:])
    quantile_styles = (("-", "p50"), ("--", "p99"))
    rate_styles = (("-", "arrivals"), (":", "completions"))
    labels = run_handles([r.name for r in runs], quantile_styles + rate_styles)[1]
    ttft_unit, ttft_scale = latency_unit(runs, "ttft_s")
    fig, (ax_ttft, ax_e2e, ax_rate) = new_figure(10.0, 8.0, 3, 1, hgap_in=0.2, right_in=legend_room_in(labels),
                                                 sharex=True)
    for i, run in enumerate(runs):
        done, color = run.finished, run_color(i)
        arrival = done["arrival_s"].to_numpy()
        for ax, values in ((ax_ttft, done["ttft_s"].to_numpy() * ttft_scale), (ax_e2e, done["e2e_s"].to_numpy())):
            q = binned_quantiles(arrival, values, edges, (0.5, 0.99))
            for row, (ls, _) in zip(q, quantile_styles):
                ax.plot(centers, row, color=color, linestyle=ls)
        for rate, (ls, _) in zip(_rates(run, rate_edges), rate_styles):
            ax_rate.plot(rate_centers, rate, color=color, linestyle=ls)
    ax_ttft.set(ylabel=f"TTFT ({ttft_unit})", title=f"Latency by arrival time ({len(centers)} bins of "
                                          f"{edges[1] - edges[0]:.3g} s)")
    ax_e2e.set(ylabel="E2E latency (s)")
    ax_rate.set(ylabel="requests/s", xlabel="time (s): arrival time; completions by finish time")
    for ax in (ax_ttft, ax_e2e, ax_rate):
        ax.set_ylim(bottom=0)
    side_legend(ax_ttft, *run_handles([r.name for r in runs], quantile_styles))
    side_legend(ax_rate, *run_handles([], rate_styles))
    return fig
