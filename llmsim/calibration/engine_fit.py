"""Fit an engine profile (host terms) to a real serving engine's measurements of one scenario's trace.

``llmsim calibrate engine`` ties llmsim to a vLLM / SGLang / TensorRT-LLM deployment from one benchmark
run. The GPU side stays the scenario's calibration; what is fitted is the :class:`EngineProfile`: host
seconds ``fixed_s + per_seq_s x sequences + per_token_s x new tokens`` for graph-replayed (decode-only)
and for eager (prefill / mixed) iterations.

Measured requests (``--measured``, one row per request; llmsim's own ``requests.csv`` qualifies):

* required: ``request_id``, ``arrival_s`` (s), ``prompt_tokens``, ``output_tokens``, ``ttft_s`` (s) and
  one of ``tpot_s`` (s) or ``e2e_s`` (s; then TPOT = (e2e - ttft) / (output_tokens - 1));
* optional: ``status`` (rows other than ``finished`` are part of the trace but not of the percentiles).
  A blank latency means "not measured" (the request is left out of that metric's percentiles).

The scenario must replay exactly these requests (``workload: {trace: requests.csv}``, no ``limit``,
``window_s`` or rate change): the fit checks that the scenario's trace has the measured arrivals and
lengths and refuses otherwise.

Two modes:

* **iteration log** (``--iterations``: ``start_s, end_s, prefill_tokens, decode_seqs, decode_ctx_sum``, optional
  ``prefill_chunks, prefill_attn_pairs, prefill_kv_tokens, sampled``; llmsim's ``iterations.csv``
  qualifies): host seconds of each iteration = measured duration - the cost model's GPU time (no host
  terms); non-negative least squares on [1, sequences, new tokens], separately for graph and eager
  iterations. Without the optional columns every prefilling iteration is taken as whole prompts of equal
  length with nothing cached (attention of chunks after cached context is then under-priced).
* **requests only**: a derivative-free search (Nelder-Mead on log seconds, written here) of graph.fixed_s,
  eager.fixed_s and eager.per_seq_s until the simulated TTFT and TPOT p50/p90/p99 (and means, which average
  out scheduling noise) match the measured ones; one simulation per evaluation, at most ``max_simulations``
  in all. It starts from a linear estimate made from one simulation without host terms (each request's
  latency gap regressed on the graph and eager iterations it waited through).

Precision. The iteration log determines the terms exactly (up to the engine's noise). Request times pin the
fixed terms to about 20% with ~150 requests; ``per_seq_s`` only shows where batches mix prompt chunks with
many decodes (chunked prefill under load) and even there moves the percentiles little, so fit on such a run
(or give the iteration log) when it matters. ``launch_s`` and ``per_layer_s`` stay 0 (absorbed into
``fixed_s`` for one model); ``graph_max_seqs`` is the scenario's engine profile's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from llmsim.api import RunResult, cost_model, run
from llmsim.calibration.composition import _nonneg_lstsq
from llmsim.costmodel import CUDA_GRAPHS, BatchFeatures, EngineProfile, HostTerms
from llmsim.errors import InputError
from llmsim.scenario import Scenario, load_scenario

REQUEST_COLUMNS = ("request_id", "arrival_s", "prompt_tokens", "output_tokens", "ttft_s")
ITERATION_COLUMNS = ("start_s", "end_s", "prefill_tokens", "decode_seqs", "decode_ctx_sum")
OPTIONAL_ITERATION_COLUMNS = ("prefill_chunks", "prefill_attn_pairs", "prefill_kv_tokens", "sampled")
PERCENTILES = (50, 90, 99)
METRICS = tuple(f"{m}_{s}" for m in ("ttft", "tpot") for s in ("mean", *(f"p{p}" for p in PERCENTILES)))
MAX_SIMULATIONS = 40
#: Search range of every host term (seconds); log-scale search cannot reach 0, so 1e-8 s stands for 0.
BOUNDS_S = (1e-8, 1.0)
ARRIVAL_TOLERANCE_S = 1e-3


# -- reading -----------------------------------------------------------------------------------------------
def _read_csv(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    """A CSV with at least ``required`` columns; InputError naming the file and the first missing column."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}", source=path) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; {what} need at least {', '.join(required)}",
                         source=path, where=f"column {missing[0]}")
    if frame.empty:
        raise InputError(f"no rows: {what} need at least one", source=path)
    return frame


def _numbers(frame: pd.DataFrame, column: str, path: Path, *, minimum: float = 0.0,
             blank_ok: bool = False) -> np.ndarray:
    """Column ``column`` as floats >= ``minimum`` (NaN where blank, if allowed); InputError at the first bad line."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    blank = raw.isna().to_numpy()
    bad = np.where(blank, not blank_ok, ~(values >= minimum) | ~np.isfinite(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"column {column}: expected a number >= {minimum:g}", source=path,
                         where=f"line {i + 2}, column {column}", value=None if blank[i] else raw.iloc[i])
    return values


def read_requests(path: Path) -> pd.DataFrame:
    """Measured requests (module docstring): arrival_s, prompt_tokens, output_tokens, ttft_s, tpot_s (seconds;
    NaN where not measured), sorted by arrival (stable)."""
    path = Path(path)
    frame = _read_csv(path, REQUEST_COLUMNS, "measured requests")
    if "tpot_s" not in frame.columns and "e2e_s" not in frame.columns:
        raise InputError("missing column tpot_s (or e2e_s to derive it from); measured requests need "
                         f"{', '.join(REQUEST_COLUMNS)} and tpot_s or e2e_s", source=path, where="column tpot_s")
    out = pd.DataFrame({c: _numbers(frame, c, path) for c in ("arrival_s", "prompt_tokens", "output_tokens")})
    out["ttft_s"] = _numbers(frame, "ttft_s", path, blank_ok=True)
    if "tpot_s" in frame.columns:
        out["tpot_s"] = _numbers(frame, "tpot_s", path, blank_ok=True)
    else:
        e2e = _numbers(frame, "e2e_s", path, blank_ok=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["tpot_s"] = np.where(out["output_tokens"] > 1, (e2e - out["ttft_s"]) / (out["output_tokens"] - 1),
                                     np.nan)
    if "status" in frame.columns:
        done = frame["status"].astype(str).str.strip().eq("finished").to_numpy()
        out.loc[~done, ["ttft_s", "tpot_s"]] = np.nan
    if not np.isfinite(out["ttft_s"]).any() or not np.isfinite(out["tpot_s"]).any():
        raise InputError("no finished request with a measured ttft_s and tpot_s (or e2e_s)", source=path)
    return out.sort_values("arrival_s", kind="stable", ignore_index=True)


def read_engine_iterations(path: Path) -> pd.DataFrame:
    """A measured iteration log (module docstring): the required columns plus the optional ones, filled in
    when absent (whole prompts of equal length, nothing cached). Durations must be > 0."""
    path = Path(path)
    frame = _read_csv(path, ITERATION_COLUMNS, "measured iterations")
    out = pd.DataFrame({c: _numbers(frame, c, path) for c in ITERATION_COLUMNS})
    for c in OPTIONAL_ITERATION_COLUMNS:
        if c in frame.columns:
            out[c] = _numbers(frame, c, path)
    prefill = out["prefill_tokens"]
    out["prefill_chunks"] = out.get("prefill_chunks", (prefill > 0).astype(float))
    per_chunk = prefill / np.maximum(out["prefill_chunks"], 1.0)
    out["prefill_attn_pairs"] = out.get("prefill_attn_pairs", prefill * (per_chunk + 1) / 2)
    out["prefill_kv_tokens"] = out.get("prefill_kv_tokens", prefill)
    out["sampled"] = out.get("sampled", out["decode_seqs"] + out["prefill_chunks"])
    bad = ~(out["end_s"] > out["start_s"]) | ~(prefill + out["decode_seqs"] > 0)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError("expected end_s > start_s and at least one prefill token or decode sequence",
                         source=path, where=f"line {i + 2}")
    return out


def iteration_features(it: pd.DataFrame) -> BatchFeatures:
    """The cost model's features of each logged iteration."""
    return BatchFeatures.from_arrays(
        prefill_tokens=it["prefill_tokens"], prefill_chunks=it["prefill_chunks"],
        prefill_attn_pairs=it["prefill_attn_pairs"], prefill_kv_tokens=it["prefill_kv_tokens"],
        decode_seqs=it["decode_seqs"], decode_ctx_tokens=it["decode_ctx_sum"], sampled=it["sampled"])


# -- comparing runs ----------------------------------------------------------------------------------------
def latency_percentiles(requests: pd.DataFrame) -> dict[str, float]:
    """TTFT and TPOT mean and p50/p90/p99 (seconds) over the requests where each is finite (``METRICS`` keys)."""
    out = {}
    for metric in ("ttft", "tpot"):
        v = requests[f"{metric}_s"].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        out[f"{metric}_mean"] = float(v.mean()) if v.size else float("nan")
        for p in PERCENTILES:
            out[f"{metric}_p{p}"] = float(np.percentile(v, p)) if v.size else float("nan")
    return out


def relative_errors(simulated: Mapping[str, float], measured: Mapping[str, float]) -> dict[str, float]:
    """simulated / measured - 1 for every metric of ``METRICS``."""
    return {k: simulated[k] / measured[k] - 1.0 for k in METRICS}


def check_replays(sc: Scenario, measured: pd.DataFrame, path: Path) -> None:
    """InputError unless the scenario's trace is the measured requests (count, arrivals, lengths)."""
    trace = sc.workload.generate(sc.rngs(1)[0])
    arrival = measured["arrival_s"].to_numpy() - measured["arrival_s"].min()
    hint = f"point the scenario's workload.trace at {path} (no limit, window_s, rate_scale or arrival.rate)"
    if len(trace) != len(measured):
        raise InputError(f"the scenario replays {len(trace)} requests but {len(measured)} were measured; {hint}",
                         source=sc.source, where="workload")
    same = (np.abs(trace.arrival_s - arrival).max() <= ARRIVAL_TOLERANCE_S
            and np.array_equal(trace.prompt_tokens, measured["prompt_tokens"].to_numpy())
            and np.array_equal(trace.output_tokens, measured["output_tokens"].to_numpy()))
    if not same:
        raise InputError(f"the scenario's requests differ from the measured ones (arrivals or lengths); {hint}",
                         source=sc.source, where="workload")


def simulate(sc: Scenario, profile: EngineProfile) -> RunResult:
    """One run of ``sc`` with engine profile ``profile``."""
    return run(dataclasses.replace(sc, engine=profile))


# -- profiles ----------------------------------------------------------------------------------------------
def make_profile(sc: Scenario, graph: HostTerms, eager: HostTerms, *, source: str) -> EngineProfile:
    """An engine profile with the scenario's CUDA-graph limit and the given host terms (4 significant digits)."""
    def rounded(t: HostTerms) -> HostTerms:  # below 2e-8 s: least-squares noise or the search's floor
        return HostTerms(**{k: float(f"{v:.4g}") if abs(v) >= 2 * BOUNDS_S[0] else 0.0
                            for k, v in dataclasses.asdict(t).items()})
    return EngineProfile(name=f"{sc.name}-engine", graph=rounded(graph), eager=rounded(eager),
                         graph_max_seqs=sc.engine.graph_max_seqs, source=source)


def search_profile(sc: Scenario, params: np.ndarray, source: str = "") -> EngineProfile:
    """The requests-only mode's profile: ``params`` = (graph.fixed_s, eager.fixed_s, eager.per_seq_s)."""
    g, e, s = (float(v) for v in params)
    return make_profile(sc, HostTerms(fixed_s=g), HostTerms(fixed_s=e, per_seq_s=s), source=source)


@dataclass(frozen=True)
class EngineFit:
    """A fitted engine profile, how it was found and how well the fitted run matches the measurements.

    ``errors`` maps each of ``METRICS`` to simulated / measured - 1 under ``profile``; ``simulations``
    counts the runs made; ``text`` is the printable summary.
    """

    profile: EngineProfile
    mode: str
    measured: dict[str, float]
    simulated: dict[str, float]
    errors: dict[str, float]
    simulations: int
    text: str


def _error_text(fit_measured: Mapping[str, float], simulated: Mapping[str, float]) -> list[str]:
    lines = [f"{'metric':10s} {'measured ms':>12s} {'simulated ms':>13s} {'rel error':>10s}"]
    for k in METRICS:
        rel = simulated[k] / fit_measured[k] - 1.0
        lines.append(f"{k:10s} {fit_measured[k] * 1e3:12.3f} {simulated[k] * 1e3:13.3f} {rel:+10.2%}")
    return lines


def _finish(sc: Scenario, profile: EngineProfile, mode: str, measured: dict, result: RunResult, sims: int,
            notes: list[str]) -> EngineFit:
    simulated = latency_percentiles(result.requests)
    text = "\n".join([*notes, f"graph: {profile.graph}", f"eager: {profile.eager}",
                      f"fit error after {sims} simulations (simulated / measured - 1):",
                      *_error_text(measured, simulated)])
    return EngineFit(profile, mode, measured, simulated, relative_errors(simulated, measured), sims, text)


# -- mode 1: from an iteration log --------------------------------------------------------------------------
def host_seconds(sc: Scenario, it: pd.DataFrame) -> np.ndarray:
    """Measured duration minus the cost model's GPU time (no host terms) of each logged iteration (s)."""
    gpu_only = dataclasses.replace(cost_model(sc), engine=CUDA_GRAPHS)
    return (it["end_s"] - it["start_s"]).to_numpy() - gpu_only.time_s(iteration_features(it))


def _independent(a: np.ndarray) -> list[int]:
    """Columns of ``a`` kept left to right while each adds to the rank (drops collinear terms)."""
    kept: list[int] = []
    for j in range(a.shape[1]):
        if np.linalg.matrix_rank(a[:, kept + [j]]) == len(kept) + 1:
            kept.append(j)
    return kept


def regress_host_terms(host_s: np.ndarray, seqs: np.ndarray, tokens: np.ndarray) -> HostTerms:
    """Non-negative least squares of host seconds on [1, sequences, new tokens] (collinear columns dropped;
    decode-only iterations have tokens == sequences, so their per-token term stays 0)."""
    if host_s.size == 0:
        return HostTerms()
    a = np.column_stack([np.ones_like(seqs), seqs, tokens])
    cols = _independent(a)
    coef = np.zeros(3)
    coef[cols] = _nonneg_lstsq(a[:, cols], host_s)
    return HostTerms(fixed_s=float(coef[0]), per_seq_s=float(coef[1]), per_token_s=float(coef[2]))


def fit_from_iterations(sc: Scenario, measured: pd.DataFrame, it: pd.DataFrame, *, source: str) -> EngineFit:
    """Mode 1 (module docstring): regress the host seconds of graph and eager iterations; one check run."""
    f = iteration_features(it)
    host = host_seconds(sc, it)
    seqs, tokens = f.decode_seqs + f.prefill_chunks, f.new_tokens
    graphed = dataclasses.replace(CUDA_GRAPHS, graph_max_seqs=sc.engine.graph_max_seqs).graphed(f)
    terms = [regress_host_terms(host[m], seqs[m], tokens[m]) for m in (graphed, ~graphed)]
    profile = make_profile(sc, *terms, source=source)
    notes = []
    for name, mask, t in (("graph", graphed, profile.graph), ("eager", ~graphed, profile.eager)):
        resid = host[mask] - t.seconds(sc.model.num_layers, seqs[mask], tokens[mask])
        rms = float(np.sqrt(np.mean(resid ** 2))) if mask.any() else 0.0
        notes.append(f"{name} iterations: {int(mask.sum())}, host seconds fitted with rms residual {rms:.3g} s")
    return _finish(sc, profile, "iterations", latency_percentiles(measured), simulate(sc, profile), 1, notes)


# -- mode 2: from per-request times alone ---------------------------------------------------------------------
def exposures(result: RunResult, graph_max_seqs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per request of ``result``: how much of each search parameter (graph.fixed_s, eager.fixed_s,
    eager.per_seq_s) its TTFT and its TPOT went through, as two (n, 3) arrays (iterations; iterations;
    sequences of eager iterations; TPOT per output gap). Iterations are those of the request's replica that
    ended in (arrival, first token] and (first token, finish]; NaN for requests that did not finish."""
    it, req = result.iterations, result.requests
    f = iteration_features(it)
    graphed = dataclasses.replace(CUDA_GRAPHS, graph_max_seqs=graph_max_seqs).graphed(f)
    cols = np.column_stack([graphed, ~graphed, (~graphed) * (f.decode_seqs + f.prefill_chunks)]).astype(float)
    ttft, tpot = np.full((len(req), 3), np.nan), np.full((len(req), 3), np.nan)
    for replica in np.unique(it["replica"]):
        on = (it["replica"] == replica).to_numpy()
        ends = it["end_s"].to_numpy()[on]
        cum = np.vstack([np.zeros(3), np.cumsum(cols[on], axis=0)])
        sel = (req["replica"] == replica).to_numpy() & np.isfinite(req["finish_s"].to_numpy())
        lo, mid, hi = (np.searchsorted(ends, req[c].to_numpy()[sel], side="right")
                       for c in ("arrival_s", "first_token_s", "finish_s"))
        gaps = np.maximum(req["output_tokens"].to_numpy()[sel] - 1, 1)[:, None]
        ttft[sel], tpot[sel] = cum[mid] - cum[lo], (cum[hi] - cum[mid]) / gaps
    return ttft, tpot


def linear_estimate(measured: pd.DataFrame, result: RunResult, params: np.ndarray,
                    graph_max_seqs: int) -> np.ndarray:
    """(graph.fixed_s, eager.fixed_s, eager.per_seq_s) from one run made with ``params``: every request's
    measured TTFT and TPOT fitted (relative least squares, non-negative) as its simulated value plus its
    :func:`exposures` x (new - ``params``). Ignores how host terms change queueing and batching (and is
    unstable when repeated from its own result: scheduling noise), so it only starts the search. Floors of
    1 us / 1 us / 10 ns keep the start inside the log-scale search."""
    sim = result.requests
    order = np.argsort(sim["arrival_s"].to_numpy(), kind="stable")
    rows, targets = [], []
    for x, metric in zip(exposures(result, graph_max_seqs), ("ttft_s", "tpot_s")):
        meas, simulated, x = measured[metric].to_numpy(), sim[metric].to_numpy()[order], x[order]
        ok = np.isfinite(meas) & np.isfinite(simulated) & np.isfinite(x).all(axis=1) & (meas > 0)
        rows.append(x[ok] / meas[ok, None])
        targets.append((meas[ok] - simulated[ok] + x[ok] @ params) / meas[ok])
    a, b = np.vstack(rows), np.concatenate(targets)
    coef = _nonneg_lstsq(a, b) if b.size else np.zeros(3)
    return np.clip(coef, np.array([1e-6, 1e-6, 1e-8]), BOUNDS_S[1])


class _OutOfBudget(Exception):
    """Raised by :class:`Budget` when the evaluations are spent."""


class Budget:
    """Wraps an objective: counts evaluations, remembers the best point, stops after ``max_evals``."""

    def __init__(self, fn: Callable[[np.ndarray], float], max_evals: int) -> None:
        self.fn, self.max_evals, self.evals = fn, max_evals, 0
        self.best_x: np.ndarray | None = None
        self.best_f = float("inf")

    def __call__(self, x: np.ndarray) -> float:
        if self.evals >= self.max_evals:
            raise _OutOfBudget
        self.evals += 1
        value = float(self.fn(x))
        if value < self.best_f:
            self.best_x, self.best_f = np.array(x, dtype=np.float64), value
        return value


def _nm_step(fn: Budget, simplex: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One Nelder-Mead step (reflect, expand, contract or shrink; coefficients 1, 2, 1/2, 1/2)."""
    order = np.argsort(values, kind="stable")
    simplex, values = simplex[order], values[order]
    centroid = simplex[:-1].mean(axis=0)
    worst = simplex[-1]
    xr = centroid + (centroid - worst)
    fr = fn(xr)
    if fr < values[0]:
        xe = centroid + 2.0 * (centroid - worst)
        fe = fn(xe)
        simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
    elif fr < values[-2]:
        simplex[-1], values[-1] = xr, fr
    else:
        xc = centroid + 0.5 * ((xr if fr < values[-1] else worst) - centroid)
        fc = fn(xc)
        if fc < min(fr, values[-1]):
            simplex[-1], values[-1] = xc, fc
        else:
            for i in range(1, len(simplex)):
                simplex[i] = simplex[0] + 0.5 * (simplex[i] - simplex[0])
                values[i] = fn(simplex[i])
    return simplex, values


def nelder_mead(fn: Callable[[np.ndarray], float], x0: np.ndarray, step: float, *, max_evals: int,
                target: float = 0.0, xtol: float = 1e-3) -> tuple[np.ndarray, float, int]:
    """Minimise ``fn`` from ``x0`` (initial simplex: ``x0`` and ``x0 + step`` along each axis) with at most
    ``max_evals`` evaluations; stops early once a value <= ``target`` is found or the simplex is narrower
    than ``xtol`` along every axis. Returns the best point, its value and the number of evaluations."""
    budget = Budget(fn, max_evals)
    x0 = np.asarray(x0, dtype=np.float64)
    try:
        simplex = np.vstack([x0, x0 + step * np.eye(x0.size)])
        f0 = budget(x0)
        values = np.array([f0] + ([budget(x) for x in simplex[1:]] if f0 > target else []))
        while budget.best_f > target and len(values) == len(simplex) and np.ptp(simplex, axis=0).max() > xtol:
            simplex, values = _nm_step(budget, simplex, values)
    except _OutOfBudget:
        pass
    return budget.best_x, budget.best_f, budget.evals


def score(errors: Mapping[str, float]) -> float:
    """Root mean square of log(simulated / measured) over ``METRICS`` (0 = exact; ~ relative error)."""
    logs = [np.log1p(errors[k]) for k in METRICS]
    return float(np.sqrt(np.mean(np.square(logs)))) if np.all(np.isfinite(logs)) else float("inf")


class _Runs:
    """Simulates candidate parameters and remembers the best run by :func:`score` against ``want``."""

    def __init__(self, sc: Scenario, want: Mapping[str, float]) -> None:
        self.sc, self.want, self.count = sc, want, 0
        self.best: tuple[float, np.ndarray, RunResult | None] = (float("inf"), np.zeros(3), None)

    def run(self, params: np.ndarray) -> tuple[RunResult, float]:
        """Simulate ``params`` (graph.fixed_s, eager.fixed_s, eager.per_seq_s); (the run, its score)."""
        result = simulate(self.sc, search_profile(self.sc, params))
        self.count += 1
        value = score(relative_errors(latency_percentiles(result.requests), self.want))
        if value < self.best[0]:
            self.best = (value, np.array(params, dtype=np.float64), result)
        return result, value


def fit_from_requests(sc: Scenario, measured: pd.DataFrame, *, source: str,
                      max_simulations: int = MAX_SIMULATIONS, target: float = 1e-3) -> EngineFit:
    """Mode 2 (module docstring): a run without host terms, the linear estimate from it, then Nelder-Mead on
    log seconds from there with the other ``max_simulations - 1`` runs; the best run found is kept."""
    if max_simulations < 5:
        raise InputError("expected at least 5 simulations", source="--max-simulations", value=max_simulations)
    runs = _Runs(sc, latency_percentiles(measured))
    params = linear_estimate(measured, runs.run(np.zeros(3))[0], np.zeros(3), sc.engine.graph_max_seqs)
    start = f"graph.fixed_s={params[0]:.4g}, eager.fixed_s={params[1]:.4g}, eager.per_seq_s={params[2]:.4g}"
    low, high = np.log(BOUNDS_S[0]), np.log(BOUNDS_S[1])
    nelder_mead(lambda x: runs.run(np.exp(np.clip(x, low, high)))[1], np.log(params), step=0.2,
                max_evals=max_simulations - 1, target=target)
    _, best, result = runs.best
    notes = [f"start (linear estimate from a run without host terms): {start}; then Nelder-Mead"]
    return _finish(sc, search_profile(sc, best, source=source), "requests", runs.want, result, runs.count, notes)


# -- the command's entry point ------------------------------------------------------------------------------
def fit_engine_files(scenario: str | Path, measured: Path, iterations: Path | None = None, *,
                     overrides: Sequence[str] = (), max_simulations: int = MAX_SIMULATIONS) -> EngineFit:
    """Fit an engine profile to measured requests (and, if given, a measured iteration log) of ``scenario``."""
    sc = load_scenario(scenario, overrides)
    requests = read_requests(measured)
    check_replays(sc, requests, Path(measured))
    source = f"fitted by llmsim calibrate engine to {Path(measured).name}"
    if iterations is not None:
        if sc.disaggregated is not None:
            raise InputError("the iteration-log fit needs a single pool (not disaggregated); leave out "
                             "--iterations to fit from request times", source=sc.source, where="scheduler.policy")
        it = read_engine_iterations(iterations)
        return fit_from_iterations(sc, requests, it, source=f"{source} and {Path(iterations).name} "
                                                                f"(iteration host seconds, least squares)")
    return fit_from_requests(sc, requests, source=f"{source} (TTFT/TPOT percentiles, Nelder-Mead)",
                             max_simulations=max_simulations)
