"""Engine figures: batch size and KV usage over time, the request timeline, time by operator, SLO bars.

Each function takes the loaded runs and returns a :class:`matplotlib.figure.Figure`. Series over time
are time-binned (at most 300 bins), so a run of millions of iterations draws in milliseconds. Inputs are
SI (s, blocks); the figures show s, sequences, % of KV blocks, requests/s.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from llmsim.report.load import RunData
from llmsim.report.render import LINESTYLES, empty_note, legend_if_labelled, new_figure, run_color
from llmsim.report.sample import binned_mean_max, time_edges

#: Requests drawn in the timeline (the first ones by arrival).
TIMELINE_REQUESTS = 200
#: Replicas drawn one by one; beyond this, replicas of one role are pooled.
MAX_REPLICA_LINES = 4
PREFILL_COLOR, DECODE_COLOR, QUEUE_COLOR = "#e8833a", "#3a7dc9", "0.55"


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


def batch_and_kv(runs: Sequence[RunData]) -> Figure:
    """Batch size (sequences per iteration) and KV usage (% of blocks) over time, per replica or role.

    Per time bin: the iteration-time-weighted mean (line) and the maximum (shaded up to it). Batch size counts
    decoding sequences plus prompt chunks, as summary.json's ``batch.size`` does.
    """
    t_end = max((float(np.nanmax(r.iterations["end_s"], initial=0.0)) for r in runs), default=1.0)
    n_iter = max((len(r.iterations) for r in runs), default=0)
    edges = time_edges(t_end, min(300, max(20, n_iter // 20)))
    centers = 0.5 * (edges[:-1] + edges[1:])
    fig, (ax_b, ax_kv) = new_figure(10.0, 6.0, 2, 1, sharex=True)
    for i, run in enumerate(runs):
        it = run.iterations
        size = (it["decode_seqs"] + it["prefill_chunks"]).to_numpy()
        kv = _kv_fraction(run) * 100.0
        start, dur = it["start_s"].to_numpy(), (it["end_s"] - it["start_s"]).to_numpy()
        for j, (group, members) in enumerate(replica_groups(run)):
            sel = np.isin(it["replica"].to_numpy(), members)
            style = {"color": run_color(i), "linestyle": LINESTYLES[j % len(LINESTYLES)],
                     "label": _series_label(run, group, len(runs) > 1)}
            for ax, values in ((ax_b, size), (ax_kv, kv)):
                mean, peak = binned_mean_max(start[sel], values[sel], dur[sel], edges)
                ax.plot(centers, mean, **style)
                ax.fill_between(centers, mean, peak, color=run_color(i), alpha=0.12, linewidth=0)
    if n_iter == 0:
        empty_note(ax_b)
    ax_b.set(ylabel="batch size (sequences)", title=f"Per {edges[1] - edges[0]:.3g} s bin: time-weighted "
                                                    "mean (line), maximum (shaded)")
    ax_kv.set(ylabel="KV cache used (% of blocks)", xlabel="time (s)")
    for ax in (ax_b, ax_kv):
        ax.set_ylim(bottom=0)
        legend_if_labelled(ax, loc="upper left", ncol=2 if len(runs) > 1 else 1)
    return fig


def timeline_window(run: RunData, n: int = TIMELINE_REQUESTS):
    """The first ``n`` requests by arrival (a DataFrame slice, arrival order)."""
    order = np.argsort(run.requests["arrival_s"].to_numpy(), kind="stable")[:n]
    return run.requests.iloc[order]


def _draw_timeline(ax, window) -> None:
    y = np.arange(len(window))
    arrival, sched = window["arrival_s"].to_numpy(), window["first_scheduled_s"].to_numpy()
    first, finish = window["first_token_s"].to_numpy(), window["finish_s"].to_numpy()
    queued = np.isfinite(sched)
    ax.hlines(y[queued], arrival[queued], sched[queued], color=QUEUE_COLOR, linewidth=0.8)
    pre = queued & np.isfinite(first)
    ax.barh(y[pre], (first - sched)[pre], left=sched[pre], height=0.8, color=PREFILL_COLOR, linewidth=0)
    dec = pre & np.isfinite(finish)
    ax.barh(y[dec], (finish - first)[dec], left=first[dec], height=0.8, color=DECODE_COLOR, linewidth=0)
    rejected = (window["status"].to_numpy() == "rejected")
    if rejected.any():
        ax.plot(arrival[rejected], y[rejected], "x", color="#c0392b", markersize=4)
    preempted = (window["preemptions"].to_numpy() > 0) & np.isfinite(finish)
    if preempted.any():
        ax.plot(finish[preempted], y[preempted], "|", color="k", markersize=5)
    ax.set_ylim(len(window) - 0.5 if len(window) else 1, -0.5)


def iteration_timeline(runs: Sequence[RunData], n: int = TIMELINE_REQUESTS) -> Figure:
    """Gantt view of the first ``n`` requests of each run: queueing (thin grey line, arrival -> first
    scheduled), prefill (first scheduled -> first token) and decode (first token -> finish), in s.

    A red x marks a rejected request, a black tick the end of a request that was preempted at least once.
    """
    fig, axes = new_figure(10.0, 0.6 + 3.4 * len(runs), len(runs), 1, sharex=True)
    for ax, run in zip(axes, runs):
        window = timeline_window(run, n)
        if len(window):
            _draw_timeline(ax, window)
        else:
            empty_note(ax)
        ax.set(ylabel="request (arrival order)", title=f"{run.name}: first {len(window)} of "
                                                       f"{len(run.requests)} requests")
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel("time (s)")
    axes[0].legend(handles=[Patch(color=QUEUE_COLOR, label="queued"), Patch(color=PREFILL_COLOR, label="prefill"),
                            Patch(color=DECODE_COLOR, label="decode")], loc="lower right", ncol=3)
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
    fig, (ax,) = new_figure(10.0, 1.2 + 0.28 * max(len(ops), 1) * max(1.0, 0.7 * len(runs)))
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
    fig, (ax_att, ax_good) = new_figure(10.0, 3.6, 1, 2)
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
    ax_good.bar(x, thr, color="none", edgecolor=colors, hatch="//", label="throughput")
    ax_good.bar(x, good, width=0.5, color=colors, label="goodput (met SLO)")
    ax_good.set(ylabel="requests/s", title="Goodput vs throughput")
    ax_good.legend(loc="lower right")
    for ax in (ax_att, ax_good):
        ax.set_xticks(x, [r.name for r in runs], rotation=20 if len(runs) > 3 else 0, ha="right" if
                      len(runs) > 3 else "center")
        ax.grid(axis="x", visible=False)
    return fig
