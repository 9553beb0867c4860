"""Metrics: per-request latencies and the run summary, computed from a run's raw records.

Definitions, for a request with arrival a, first token f, finish c and n output tokens:
TTFT = f - a; TPOT = (c - f) / (n - 1) (requests with n > 1); E2E = c - a; ITL = every gap between two
consecutive output tokens of a request, over all requests (token-weighted). Percentiles of per-request
metrics use linear interpolation (numpy's default); ITL percentiles are exact weighted percentiles
(inverted CDF) over the recorded (gap, count) pairs. Throughput is measured over the makespan, from the
first arrival to the last finish. A request meets the SLO when its TTFT <= slo.ttft_s and TPOT <= slo.tpot_s;
goodput is the rate of such requests over the makespan.

With speculative decoding a round's tokens all arrive at its end: ITL counts one gap per round (from the
previous token) and the round's other tokens at gap 0, so there are still n - 1 gaps per request, and TPOT
keeps its definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmsim.engine.requests import FINISHED, REJECTED
from llmsim.engine.records import ITERATION_COLUMNS, merge_pairs
from llmsim.engine.simulation import RawResult

PERCENTILES = (50, 90, 95, 99)
REQUEST_COLUMNS = ("request_id", "arrival_s", "prompt_tokens", "output_tokens", "replica", "status",
                   "first_scheduled_s", "first_token_s", "finish_s", "ttft_s", "tpot_s", "e2e_s", "preemptions",
                   "cached_prompt_tokens", "reject_reason")
#: Iteration columns held as int64 in :func:`iterations_frame` (the others are float64).
INTEGER_ITERATION_COLUMNS = ("replica", "prefill_chunks", "decode_seqs", "kv_blocks_used", "spec_seqs", "spec_tokens")


@dataclass(frozen=True)
class Slo:
    """Latency targets: per-request TTFT and TPOT bounds (seconds) and the percentile reported against them."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    percentile: float = 99.0


def requests_frame(raw: RawResult) -> pd.DataFrame:
    """One row per request (see ``REQUEST_COLUMNS``); latencies are NaN where undefined."""
    t = raw.table
    first, finish, arrival = t.first_token_s, t.finish_s, t.arrival_s
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(t.output > 1, (finish - first) / (t.output - 1), np.nan)
    status = np.where(t.status == FINISHED, "finished", np.where(t.status == REJECTED, "rejected", "unfinished"))
    reasons = [""] * len(t)
    for r, why in t.reject_reason.items():
        reasons[r] = why
    frame = pd.DataFrame({
        "request_id": np.arange(len(t)), "arrival_s": arrival, "prompt_tokens": t.prompt, "output_tokens": t.output,
        "replica": t.replica, "status": status, "first_scheduled_s": t.first_scheduled_s, "first_token_s": first,
        "finish_s": finish, "ttft_s": first - arrival, "tpot_s": tpot, "e2e_s": finish - arrival,
        "preemptions": t.preemptions, "cached_prompt_tokens": t.cached_total, "reject_reason": reasons})
    if raw.transfers is not None:
        for name, values in raw.transfers.items():
            frame[name] = values
    return frame


def iterations_frame(raw: RawResult) -> pd.DataFrame:
    """One row per iteration, sorted by replica then start time (the order each replica ran them).

    The log hands its rows back grouped by replica, each replica's in the order it appended them, which is its
    start order (a replica runs one iteration at a time); that is checked, and a stable sort is the fallback.
    Built one column at a time (float64 times and features, int64 counts), so the log is never copied whole.
    """
    log = raw.iterations
    replica, start = log.column("replica", np.int64), log.column("start_s")
    with np.errstate(invalid="ignore"):
        in_order = bool(np.all((start[1:] >= start[:-1]) | (replica[1:] != replica[:-1])))
    order = None if in_order else np.lexsort((start, replica))  # stable: ties keep append order
    read = {"replica": replica, "start_s": start}  # (not read twice)
    data = {}
    for name in ITERATION_COLUMNS:
        values = read[name] if name in read else log.column(
            name, np.int64 if name in INTEGER_ITERATION_COLUMNS else np.float64)
        data[name] = values if order is None else values[order]
    return pd.DataFrame(data, copy=False)


def stats(values: np.ndarray) -> dict[str, float | None]:
    """mean and p50/p90/p95/p99 of the finite values (None when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    out = {"mean": float(v.mean())}
    out.update({f"p{p}": float(x) for p, x in zip(PERCENTILES, np.percentile(v, PERCENTILES))})
    return out


def itl_frame(raw: RawResult) -> pd.DataFrame:
    """Every inter-token gap of the run as (gap_s, count) rows, sorted by gap."""
    gaps, counts = raw.gaps.merged()
    return pd.DataFrame({"gap_s": gaps, "count": counts})


def weighted_stats(values: np.ndarray, counts: np.ndarray) -> dict[str, float | None]:
    """mean and exact weighted (inverted-CDF) percentiles of ``values`` seen ``counts`` times.

    Values are first merged by exact equality, so the result does not depend on how the pairs were
    grouped when recorded (step-by-step and fast-forwarded runs agree bit for bit).
    """
    if values.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
    uniq, weight = merge_pairs(values, counts)
    weight = weight.astype(np.float64)
    cum = np.cumsum(weight)
    total = int(cum[-1])
    out = {"mean": float(np.dot(uniq, weight) / total)}
    for p in PERCENTILES:
        rank = max(1, int(np.ceil(p / 100.0 * total)))
        out[f"p{p}"] = float(uniq[np.searchsorted(cum, rank)])
    return out


def summarize(raw: RawResult, requests: pd.DataFrame, iterations: pd.DataFrame, slo: Slo) -> dict[str, Any]:
    """The run summary (JSON-ready). Deterministic: contains no wall-clock or environment data."""
    done = requests[requests["status"] == "finished"]
    gaps, counts = raw.gaps.merged()
    start = float(requests["arrival_s"].min()) if len(requests) else 0.0
    end = float(np.nanmax(requests["finish_s"])) if done.shape[0] else start
    makespan = max(end - start, 0.0)
    rate = (lambda x: x / makespan if makespan > 0 else 0.0)
    meets = _meets_slo(done, slo)
    summary: dict[str, Any] = {
        "requests": {"total": int(len(requests)), "finished": int(done.shape[0]),
                     "rejected": int((requests["status"] == "rejected").sum()),
                     "unfinished": int((requests["status"] == "unfinished").sum())},
        "latency_s": {"ttft": stats(done["ttft_s"]), "tpot": stats(done["tpot_s"]),
                      "itl": weighted_stats(gaps, counts), "e2e": stats(done["e2e_s"])},
        "itl_method": "exact: every inter-token gap kept as (gap, count) pairs; weighted inverted-CDF percentiles",
        "throughput": {"requests_per_s": rate(done.shape[0]),
                       "input_tokens_per_s": rate(float(done["prompt_tokens"].sum())),
                       "output_tokens_per_s": rate(float(done["output_tokens"].sum()))},
        "slo": _slo_report(done, slo, meets, len(requests), rate),
        "batch": _batch_stats(iterations),
        "kv_cache": _kv_stats(raw, iterations),
        "preemptions": {"total": int(requests["preemptions"].sum()),
                        "requests_preempted": int((requests["preemptions"] > 0).sum())},
        "simulated_time_s": makespan,
        "replicas": _replica_stats(raw, iterations, makespan),
    }
    if raw.prefix_caching:
        looked = raw.prefix_lookup_tokens
        summary["prefix_cache"] = {"lookup_tokens": looked, "hit_tokens": raw.prefix_hit_tokens,
                                   "hit_rate": raw.prefix_hit_tokens / looked if looked else 0.0}
    if raw.transfers is not None:
        summary["kv_transfer"] = {name: stats(values) for name, values in raw.transfers.items()}
    return summary


def _meets_slo(done: pd.DataFrame, slo: Slo) -> np.ndarray:
    ok = np.ones(done.shape[0], dtype=bool)
    if slo.ttft_s is not None:
        ok &= done["ttft_s"].to_numpy() <= slo.ttft_s
    if slo.tpot_s is not None:
        tpot = done["tpot_s"].to_numpy()
        ok &= np.isnan(tpot) | (tpot <= slo.tpot_s)
    return ok


def _slo_report(done: pd.DataFrame, slo: Slo, meets: np.ndarray, total: int, rate) -> dict[str, Any]:
    p = slo.percentile
    ttft_p = float(np.nanpercentile(done["ttft_s"], p)) if done.shape[0] else None
    tpot_vals = done["tpot_s"].dropna()
    tpot_p = float(np.percentile(tpot_vals, p)) if tpot_vals.size else None
    report = {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s, "percentile": p,
              f"ttft_p{p:g}_s": ttft_p, f"tpot_p{p:g}_s": tpot_p,
              "attainment": float(meets.sum() / total) if total else 0.0,
              "goodput_requests_per_s": rate(int(meets.sum()))}
    report["met"] = bool((slo.ttft_s is None or (ttft_p is not None and ttft_p <= slo.ttft_s)) and
                         (slo.tpot_s is None or tpot_p is None or tpot_p <= slo.tpot_s))
    return report


def _batch_stats(it: pd.DataFrame) -> dict[str, Any]:
    if it.empty:
        return {"iterations": 0}
    size = it["decode_seqs"] + it["prefill_chunks"]
    return {"iterations": int(len(it)), "size": stats(size), "max_size": int(size.max()),
            "prefill_iterations": int((it["prefill_chunks"] > it["spec_seqs"]).sum()),
            "tokens_per_iteration": stats(it["decode_seqs"] + it["prefill_tokens"])}


def speculative_stats(it: pd.DataFrame) -> dict[str, Any]:
    """Speculative decoding as it ran, from the iteration log.

    ``rounds``: sequence-rounds (one per decoding sequence per iteration); ``tokens_per_round``: output tokens
    per round (accepted drafts + 1; last rounds are truncated at ``output_tokens``);
    ``accepted_tokens_per_round``: accepted drafts per round; time shares are fractions of the busy time of
    the replicas that speculated: ``draft`` = draft steps, ``verify`` = the target passes of iterations that
    verified (in mixed iterations of the chunked policy these also compute prompt chunks).
    """
    spec = it[it["replica"].isin(it.loc[it["spec_seqs"] > 0, "replica"].unique())]
    rounds = int(spec["spec_seqs"].sum())
    tokens = int(spec["spec_tokens"].sum())
    busy = float((spec["end_s"] - spec["start_s"]).sum())
    verifying = spec[spec["spec_seqs"] > 0]
    verify = float((verifying["end_s"] - verifying["start_s"] - verifying["draft_s"]).sum())
    share = (lambda x: x / busy if busy > 0 else 0.0)
    return {"rounds": rounds, "iterations": int(len(verifying)),
            "tokens_per_round": tokens / rounds if rounds else None,
            "accepted_tokens_per_round": (tokens - rounds) / rounds if rounds else None,
            "draft_time_share": share(float(spec["draft_s"].sum())), "verify_time_share": share(verify)}


def _kv_stats(raw: RawResult, it: pd.DataFrame) -> dict[str, Any]:
    totals = np.array([r["kv_blocks"] for r in raw.replicas], dtype=np.float64)
    if it.empty:
        return {"blocks_per_replica": totals.tolist()}
    frac = it["kv_blocks_used"].to_numpy() / totals[it["replica"].to_numpy().astype(int)]
    return {"blocks_per_replica": [int(x) for x in totals], "usage_fraction": stats(frac),
            "max_usage_fraction": float(frac.max())}


def _replica_stats(raw: RawResult, it: pd.DataFrame, makespan: float) -> list[dict[str, Any]]:
    busy = (it["end_s"] - it["start_s"]).groupby(it["replica"]).sum() if not it.empty else pd.Series(dtype=float)
    out = []
    for facts in raw.replicas:
        b = float(busy.get(facts["index"], 0.0))
        out.append({**facts, "busy_s": b, "utilization": b / makespan if makespan > 0 else 0.0})
    return out
