"""Engine figures: batch size and KV usage over time, the request timeline, time by operator, SLO bars.

Each function takes the loaded runs and returns a :class:`matplotlib.figure.Figure`. Series over time
are time-binned (at most 300 bins), so a run of millions of iterations draws in milliseconds. Inputs are
SI (s, blocks); the figures show s, sequences, % of KV blocks, requests/s.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from llmsim.report.load import RunData
from llmsim.report.render import (LINESTYLES, empty_note, legend_if_labelled, legend_room_in, new_figure, run_color,
                                  side_legend)
from llmsim.report.sample import binned_mean_max, finite_max, time_edges

#: Requests drawn in the timeline (the first ones by arrival).
TIMELINE_REQUESTS = 200
#: Replicas drawn one by one; beyond this, replicas of one role are pooled.
MAX_REPLICA_LINES = 4
PREFILL_COLOR, DECODE_COLOR, QUEUE_COLOR, REJECTED_COLOR = "#e8833a", "#3a7dc9", "0.55", "#c0392b"


def replica_groups(run: RunData) -> list[tuple[str, np.ndarray]]:
    """(label, replica indices) to draw: each replica, or one group per role when there are many."""
    replicas = run.summary.get("replicas") or []
    if not replicas:
        present = np.unique(run.iterations["replica"].to_numpy())
        replicas = [{"index": int(i), "role": "mixed"} for i in present if np.isfinite(i)]
    if len(replicas) <= MAX_REPLICA_LINES:
        return [(_replica_label(r, len(replicas) > 1), np.array([int(r["index"])])) for r in replicas]
    roles: dict[str, list[int]] = {}
    for r in replicas:
        roles.setdefault(str(r.get("role", "mixed")), []).append(int(r["index"]))
    return [(f"{role} replicas (mean of {len(idx)})", np.array(idx)) for role, idx in roles.items()]


def _replica_label(replica: dict, several: bool) -> str:
    """"replica 2", "replica 0 (prefill)", or "" for the only replica of a plain run."""
    role = replica.get("role")
    if role not in (None, "mixed"):
        return f"replica {replica['index']} ({role})"
    return f"replica {replica['index']}" if several else ""


def _kv_fraction(run: RunData) -> np.ndarray:
    """KV blocks used / blocks of that replica, per iteration (NaN where the total is unknown)."""
    totals = np.asarray(run.summary.get("kv_cache", {}).get("blocks_per_replica") or [], dtype=np.float64)
    replica = run.iterations["replica"].to_numpy()
    idx = np.nan_to_num(replica, nan=-1).astype(np.int64)
    ok = (idx >= 0) & (idx < totals.size)
    out = np.full(replica.size, np.nan)
    out[ok] = run.iterations["kv_blocks_used"].to_numpy()[ok] / np.maximum(totals[idx[ok]], 1.0)
    return out


def _series_label(run: RunData, group: str, several_runs: bool) -> str:
    parts = [run.name] if several_runs or not group else []
    return " · ".join(parts + ([group] if group else []))


def _series(runs: Sequence[RunData]) -> list[tuple[int, RunData, str, str, np.ndarray]]:
    """(run index, run, legend label, linestyle, replica indices) for every line of the batch/KV figure."""
    out = []
    for i, run in enumerate(runs):
        for j, (group, members) in enumerate(replica_groups(run)):
            out.append((i, run, _series_label(run, group, len(runs) > 1), LINESTYLES[j % len(LINESTYLES)],
                        members))
    return out


def batch_and_kv(runs: Sequence[RunData]) -> Figure:
    """Batch size (sequences per iteration) and KV usage (% of blocks) over time, per replica or role.

    Per time bin: the iteration-time-weighted mean (line) and the maximum (shaded up to it). Batch size counts
    decoding sequences plus prompt chunks, as summary.json's ``batch.size`` does.
    """
    t_end = max((finite_max(r.iterations["end_s"]) for r in runs), default=1.0)
    n_iter = max((len(r.iterations) for r in runs), default=0)
    edges = time_edges(t_end, min(300, max(20, n_iter // 20)))
    centers = 0.5 * (edges[:-1] + edges[1:])
    series = _series(runs)
    labels = [label for _, _, label, _, _ in series if label]
    fig, (ax_b, ax_kv) = new_figure(10.0, 6.0, 2, 1, hgap_in=0.2, right_in=legend_room_in(labels), sharex=True)
    columns = {id(r): ((r.iterations["decode_seqs"] + r.iterations["prefill_chunks"]).to_numpy(),
                       _kv_fraction(r) * 100.0) for r in runs}
    for i, run, label, ls, members in series:
        it = run.iterations
        sel = np.isin(it["replica"].to_numpy(), members)
        start, dur = it["start_s"].to_numpy()[sel], (it["end_s"] - it["start_s"]).to_numpy()[sel]
        for ax, values in zip((ax_b, ax_kv), columns[id(run)]):
            mean, peak = binned_mean_max(start, values[sel], dur, edges)
            ax.plot(centers, mean, color=run_color(i), linestyle=ls, label=label or None)
            ax.fill_between(centers, mean, peak, color=run_color(i), alpha=0.12, linewidth=0)
    if n_iter == 0:
        empty_note(ax_b)
    ax_b.set(ylabel="batch size (sequences)", title=f"Per {edges[1] - edges[0]:.3g} s bin: time-weighted "
                                                    "mean (line), maximum (shaded)")
    ax_kv.set(ylabel="KV cache used (% of blocks)", xlabel="time (s)")
    for ax in (ax_b, ax_kv):
        ax.set_ylim(bottom=0)
    side_legend(ax_b, *ax_b.get_legend_handles_labels())
    return fig


def timeline_window(run: RunData, n: int = TIMELINE_REQUESTS):
    """The first ``n`` requests by arrival (a DataFrame slice, arrival order)."""
    order = np.argsort(run.requests["arrival_s"].to_numpy(), kind="stable")[:n]
    return run.requests.iloc[order]


def _bars(ax, y: np.ndarray, x0: np.ndarray, x1: np.ndarray, color: str, outline: float = 0.0) -> None:
    """Rectangles from x0 to x1 (s) at rows y, 0.8 rows high, drawn as one collection (fast for many rows).

    ``outline`` (points) draws an edge in the same colour, so that bars far thinner than a pixel still show.
    """
    lo, hi = y - 0.4, y + 0.4
    verts = np.stack([np.column_stack(c) for c in ((x0, lo), (x0, hi), (x1, hi), (x1, lo))], axis=1)
    ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors=color if outline else "none",
                                     linewidths=outline))


def _draw_timeline(ax, window) -> None:
    y = np.arange(len(window), dtype=np.float64)
    arrival, sched = window["arrival_s"].to_numpy(), window["first_scheduled_s"].to_numpy()
    first, finish = window["first_token_s"].to_numpy(), window["finish_s"].to_numpy()
    queued = np.isfinite(sched)
    ax.hlines(y[queued], arrival[queued], sched[queued], color=QUEUE_COLOR, linewidth=0.8)
    pre = queued & np.isfinite(first)
    dec = pre & np.isfinite(finish)
    _bars(ax, y[dec], first[dec], finish[dec], DECODE_COLOR)
    _bars(ax, y[pre], sched[pre], first[pre], PREFILL_COLOR, outline=0.7)  # on top: prefills are short
    rejected = window["status"].to_numpy() == "rejected"
    if rejected.any():
        ax.plot(arrival[rejected], y[rejected], "x", color=REJECTED_COLOR, markersize=4)
    preempted = (window["preemptions"].to_numpy() > 0) & np.isfinite(finish)
    if preempted.any():
        ax.plot(finish[preempted], y[preempted], "|", color="k", markersize=5)
    ends = np.concatenate([arrival, finish[np.isfinite(finish)], sched[queued]])
    ax.set_xlim(np.min(ends), np.max(ends) + 1e-9)
    ax.set_ylim(len(window) - 0.5, -0.5)


def _timeline_legend(ax, windows: list) -> None:
    """Phases, plus the rejected / preempted markers when some drawn request has them."""
    handles = [Patch(color=QUEUE_COLOR, label="queued"), Patch(color=PREFILL_COLOR, label="prefill"),
               Patch(color=DECODE_COLOR, label="decode")]
    if any((w["status"] == "rejected").any() for w in windows):
        handles.append(Line2D([], [], color=REJECTED_COLOR, marker="x", linestyle="", label="rejected"))
    if any((w["preemptions"] > 0).any() for w in windows):
        handles.append(Line2D([], [], color="k", marker="|", linestyle="", label="preempted (at finish)"))
    ax.legend(handles=handles, loc="upper right", ncol=len(handles))


def iteration_timeline(runs: Sequence[RunData], n: int = TIMELINE_REQUESTS) -> Figure:
    """Gantt view of the first ``n`` requests of each run: queueing (thin grey line, arrival -> first
    scheduled), prefill (first scheduled -> first token) and decode (first token -> finish), in s.

    A red x marks a rejected request, a black tick the end of a request that was preempted at least once.
    """
    height = 1.0 + 0.02 * n  # about 2 px per request row at 110 dpi
    fig, axes = new_figure(10.0, 0.3 + height * len(runs), len(runs), 1, hgap_in=0.6)
    windows = [timeline_window(run, n) for run in runs]
    for ax, run, window in zip(axes, runs, windows):
        if len(window):
            _draw_timeline(ax, window)
        else:
            empty_note(ax)
        ax.set(ylabel="request (arrival order)", xlabel="time (s)",
               title=f"{run.name}: first {len(window)} of {len(run.requests)} requests")
        ax.grid(axis="y", visible=False)
    _timeline_legend(axes[0], windows)
    return fig


def operator_names(runs: Sequence[RunData]) -> list[str]:
    """All operators of all runs, by descending total time (first run's order first)."""
    totals: dict[str, float] = {}
    for run in runs:
        for op, sec in (run.summary.get("time_by_operator_s") or {}).items():
            totals[op] = totals.get(op, 0.0) + float(sec or 0.0)
    return sorted(totals, key=lambda op: -totals[op])


def operator_time(runs: Sequence[RunData]) -> Figure:
    """Horizontal bars: seconds each operator took over the run (summed over replicas), labelled with shares."""
    ops = operator_names(runs)
    left = 0.3 + 0.075 * max((len(op) for op in ops), default=4)  # ~0.075 in per character at 9 pt
    fig, (ax,) = new_figure(10.0, 0.8 + 0.28 * max(len(ops), 1) * max(1.0, 0.7 * len(runs)), left_in=left,
                            top_in=0.2, bottom_in=0.5)
    height = 0.8 / max(len(runs), 1)
    y = np.arange(len(ops))
    for i, run in enumerate(runs):
        times = run.summary.get("time_by_operator_s") or {}
        sec = np.array([float(times.get(op) or 0.0) for op in ops])
        total = sec.sum()
        pos = y - 0.4 + height * (i + 0.5)
        ax.barh(pos, sec, height=height, color=run_color(i), label=run.name if len(runs) > 1 else None)
        for p, s in zip(pos, sec):
            share = f"{s / total:.1%}" if total > 0 else "-"
            ax.text(s, p, f" {s:.3g} s ({share})", va="center", fontsize=7)
    if not ops:
        empty_note(ax)
    ax.set_yticks(y, ops)
    ax.set(xlabel="time (s, summed over replicas)", ylim=(len(ops) - 0.5, -0.5))
    ax.margins(x=0.18)
    ax.grid(axis="y", visible=False)
    legend_if_labelled(ax, loc="lower right")
    return fig


def slo_bars(runs: Sequence[RunData]) -> Figure:
    """Per run: SLO attainment (% of all requests) and goodput vs throughput (requests/s)."""
    longest = max(len(r.name) for r in runs)
    rotate = longest * len(runs) > 48  # the names would not fit side by side under 4.3 in of bars
    fig, (ax_att, ax_good) = new_figure(10.0, 3.6, 1, 2, bottom_in=min(0.45 + 0.035 * longest, 1.6) if rotate
                                        else 0.45, wgap_in=0.9)
    x = np.arange(len(runs))
    colors = [run_color(i) for i in range(len(runs))]
    slo = [r.summary.get("slo", {}) for r in runs]
    attain = np.array([float(s.get("attainment") or 0.0) * 100.0 for s in slo])
    good = np.array([float(s.get("goodput_requests_per_s") or 0.0) for s in slo])
    thr = np.array([float(r.summary.get("throughput", {}).get("requests_per_s") or 0.0) for r in runs])
    ax_att.bar(x, attain, color=colors)
    for xi, a in zip(x, attain):
        ax_att.text(xi, a, f"{a:.1f}%", ha="center", va="bottom", fontsize=8)
    ax_att.set(ylabel="SLO attainment (% of requests)", ylim=(0, 110), title="SLO attainment")
    ax_good.bar(x, thr, color="none", edgecolor=colors, hatch="//")
    ax_good.bar(x, good, width=0.5, color=colors)
    ax_good.set(ylabel="requests/s", title="Goodput vs throughput", ylim=(0, 1.3 * max(thr.max(), 1e-9)))
    ax_good.legend(handles=[Patch(facecolor="none", edgecolor="0.3", hatch="//", label="throughput"),
                            Patch(color="0.3", label="goodput (met SLO)")], loc="upper left", ncol=2)
    for ax in (ax_att, ax_good):
        ax.set_xticks(x, [r.name for r in runs], rotation=20 if rotate else 0, ha="right" if rotate else "center")
        ax.grid(axis="x", visible=False)
    return fig
