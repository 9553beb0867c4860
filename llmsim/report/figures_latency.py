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
from llmsim.report.render import auto_log_x, empty_note, legend_if_labelled, new_figure, run_color
from llmsim.report.sample import (binned_quantiles, cdf_points, rate_per_s, time_edges,
                                  weighted_cdf_points)

MS_PER_S = 1e3
#: (panel title, requests.csv column, unit, scale from s) for the per-request CDF panels.
_REQUEST_PANELS = (("TTFT", "ttft_s", "ms", MS_PER_S), ("TPOT", "tpot_s", "ms", MS_PER_S),
                   ("E2E latency", "e2e_s", "s", 1.0))


def _slo_targets(runs: Sequence[RunData], key: str) -> list[float]:
    """Distinct SLO targets (s) for ``key`` ("ttft_s" or "tpot_s") among the runs."""
    values = {r.summary.get("slo", {}).get(key) for r in runs}
    return sorted(float(v) for v in values if isinstance(v, (int, float)))


def _draw_cdf(ax, x: np.ndarray, f: np.ndarray, color: str, label: str) -> None:
    ax.plot(x, f, drawstyle="steps-post", color=color, label=label)


def _finish_cdf_axes(ax, title: str, unit: str, ylabel: str, xs: list, targets: Sequence[float]) -> None:
    for t in targets:
        ax.axvline(t, color="0.35", linestyle=":", linewidth=1.0, label=f"SLO {t:g} {unit}")
    if not any(len(x) for x in xs):
        empty_note(ax)
    auto_log_x(ax, xs)
    ax.set(title=title, xlabel=f"{title} ({unit})", ylabel=ylabel, ylim=(0, 1.02))
    legend_if_labelled(ax, loc="lower right")


def latency_cdfs(runs: Sequence[RunData]) -> Figure:
    """2x2 CDFs: TTFT (ms), TPOT (ms), ITL (ms, weighted by token count from itl.csv), E2E (s).

    Vertical dotted lines mark the SLO targets of TTFT and TPOT. Each curve has at most ~2000 points.
    """
    fig, axes = new_figure(10.0, 7.0, 2, 2)
    panels = [(axes[0], *_REQUEST_PANELS[0]), (axes[1], *_REQUEST_PANELS[1]), (axes[3], *_REQUEST_PANELS[2])]
    for ax, title, column, unit, scale in panels:
        xs = []
        for i, run in enumerate(runs):
            x, f = cdf_points(run.finished[column].to_numpy() * scale)
            _draw_cdf(ax, x, f, run_color(i), run.name)
            xs.append(x)
        targets = [t * scale for t in _slo_targets(runs, column)] if column != "e2e_s" else []
        _finish_cdf_axes(ax, title, unit, "fraction of requests", xs, targets)
    xs = []
    for i, run in enumerate(runs):
        x, f = weighted_cdf_points(run.itl["gap_s"].to_numpy() * MS_PER_S, run.itl["count"].to_numpy())
        _draw_cdf(axes[2], x, f, run_color(i), run.name)
        xs.append(x)
    _finish_cdf_axes(axes[2], "ITL", "ms", "fraction of inter-token gaps", xs, [])
    return fig


def latency_edges(runs: Sequence[RunData]) -> np.ndarray:
    """Common arrival-time bins (s) for all runs: ~30 finished requests per bin, 10 to 120 bins."""
    t_end = max((float(np.nanmax(r.requests["arrival_s"])) for r in runs if len(r.requests)), default=1.0)
    n = max((len(r.finished) for r in runs), default=0)
    return time_edges(t_end, min(120, max(10, n // 30)))


def _plot_quantiles(ax, centers, q: np.ndarray, color: str, name: str) -> None:
    ax.plot(centers, q[0], color=color, linestyle="-", label=f"{name} p50")
    ax.plot(centers, q[1], color=color, linestyle="--", label=f"{name} p99")


def latency_over_time(runs: Sequence[RunData]) -> Figure:
    """TTFT (ms) and E2E (s) p50/p99 per arrival-time bin, and arrival/completion rates (requests/s).

    Requests are binned by arrival time, so a rising curve shows requests that arrived then waiting longer.
    """
    edges = latency_edges(runs)
    centers = 0.5 * (edges[:-1] + edges[1:])
    t_end = max((float(np.nanmax(r.requests[["arrival_s", "finish_s"]].to_numpy(), initial=0.0)) for r in runs),
                default=1.0)
    rate_edges = time_edges(t_end, len(centers))
    rate_centers = 0.5 * (rate_edges[:-1] + rate_edges[1:])
    fig, (ax_ttft, ax_e2e, ax_rate) = new_figure(10.0, 8.0, 3, 1, sharex=True)
    for i, run in enumerate(runs):
        done, color = run.finished, run_color(i)
        arrival = done["arrival_s"].to_numpy()
        _plot_quantiles(ax_ttft, centers, binned_quantiles(arrival, done["ttft_s"].to_numpy() * MS_PER_S,
                                                           edges, (0.5, 0.99)), color, run.name)
        _plot_quantiles(ax_e2e, centers, binned_quantiles(arrival, done["e2e_s"].to_numpy(), edges,
                                                          (0.5, 0.99)), color, run.name)
        ax_rate.plot(rate_centers, rate_per_s(run.requests["arrival_s"].to_numpy(), rate_edges), color=color,
                     linestyle="-", label=f"{run.name} arrivals")
        ax_rate.plot(rate_centers, rate_per_s(done["finish_s"].to_numpy(), rate_edges), color=color,
                     linestyle=":", label=f"{run.name} completions")
    ax_ttft.set(ylabel="TTFT (ms)", title=f"Latency by arrival time ({len(centers)} bins of "
                                          f"{edges[1] - edges[0]:.3g} s)")
    ax_e2e.set(ylabel="E2E latency (s)")
    ax_rate.set(ylabel="requests/s", xlabel="time (s): arrival time (top two panels, and arrivals), finish time "
                                            "(completions)")
    for ax in (ax_ttft, ax_e2e, ax_rate):
        ax.set_ylim(bottom=0)
        legend_if_labelled(ax, loc="upper left", ncol=2 if len(runs) > 1 else 1)
    return fig
