"""``llmsim.run(scenario)``: one call from a scenario to per-request records, iterations and a summary.

The command line is a thin layer over this module.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from llmsim import __version__, native
from llmsim.costmodel.batch import BatchFeatures
from llmsim.costmodel.memory import MemoryPlan, plan_memory
from llmsim.costmodel.roofline import CostModel, time_by_operator
from llmsim.engine.disaggregated import DisaggregatedSimulation
from llmsim.engine.routers import ROUTERS
from llmsim.engine.schedulers import SCHEDULERS, ContinuousScheduler
from llmsim.engine.simulation import ReplicaSetup, RequestsIn, Simulation
from llmsim.engine.speculative import SpeculativeDecoder, with_draft_model
from llmsim.errors import InputError
from llmsim.metrics import itl_frame, iterations_frame, requests_frame, speculative_stats, summarize
from llmsim.scenario import Scenario, dump_resolved, load_scenario
from llmsim.workload import Trace

OUTPUT_FILES = ("requests.csv", "iterations.csv", "itl.csv", "summary.json", "scenario.yaml", "run_info.json")


@dataclass
class RunResult:
    """What a run produced: per-request and per-iteration records (DataFrames) and the summary (dict)."""

    scenario: Scenario
    requests: pd.DataFrame
    iterations: pd.DataFrame
    summary: dict[str, Any]
    itl: pd.DataFrame
    run_info: dict[str, Any] = field(default_factory=dict)

    def save(self, out_dir: str | Path, *, overwrite: bool = False) -> Path:
        """Write the run's files into ``out_dir``; an existing non-empty folder needs ``overwrite=True``."""
        out = prepare_output_dir(out_dir, overwrite=overwrite)
        write_csv(self.requests, out / "requests.csv")
        write_csv(self.iterations, out / "iterations.csv")
        write_csv(self.itl, out / "itl.csv")
        (out / "summary.json").write_text(json.dumps(self.summary, indent=2, sort_keys=False) + "\n")
        (out / "scenario.yaml").write_text(dump_resolved(self.scenario))
        (out / "run_info.json").write_text(json.dumps(self.run_info, indent=2) + "\n")
        return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as a CSV file (header, no index) by Arrow's C++ writer: about 8x faster than ``DataFrame.to_csv``,
    which took longer than the simulation itself on million-row logs. Floats are written as their shortest
    round-trip form (an integral value without ``.0``), NaN as an empty field, text quoted; pandas reads the
    same values back."""
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), path)


def prepare_output_dir(out_dir: str | Path, *, overwrite: bool) -> Path:
    """Create ``out_dir``; refuse a folder that already holds files unless ``overwrite`` (nothing is deleted)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", source=out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError("output folder is not empty (it may hold earlier results); pass --overwrite to replace "
                         "the files llmsim writes there, or choose another --out", source=out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(scenario: Scenario | str | Path | Mapping[str, Any], overrides: Sequence[str] = (), *,
        progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Simulate a scenario (a :class:`Scenario`, a YAML path, a built-in name or a mapping).

    ``progress(done, total)`` is called every 1000 arrivals with the requests released so far.
    """
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario, overrides)
    trace = sc.workload.generate(sc.rngs(1)[0])
    wall0 = time.perf_counter()
    sim, pools = build_simulation(sc, trace, progress=progress)
    raw = sim.run()
    sim_wall = time.perf_counter() - wall0
    requests, iterations = requests_frame(raw), iterations_frame(raw)
    summary = summarize(raw, requests, iterations, sc.slo)
    summary["memory"] = {role: plan.summary() for role, (_, plan, _) in pools.items()}
    summary["time_by_operator_s"] = operator_time(iterations, pools)
    if sc.speculative is not None and sc.speculative.enabled:
        summary["speculative"] = {**sc.speculative.summary(), **speculative_stats(iterations)}
    summary["reproduce"] = {"llmsim_version": __version__, "seed": sc.seed, "calibration": sc.calibration.name,
                            "engine_profile": sc.engine.name}
    band = prediction_band(sc.calibration.band, summary["latency_s"])
    if band is not None:
        summary["prediction_band"] = band
    info = {"llmsim_version": __version__, "scenario_source": sc.source, "seed": sc.seed,
            "calibration": sc.calibration_source, "engine_profile": sc.engine.name,
            "wall_time_s": time.perf_counter() - wall0, "simulation_wall_time_s": sim_wall,
            "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "build": native.BUILD}
    return RunResult(sc, requests, iterations, summary, itl_frame(raw), info)


def prediction_band(band: Mapping[str, Any], latency: Mapping[str, Any]) -> dict[str, Any] | None:
    """The 90% band of each latency statistic, from the calibration's whole-iteration error quantiles.

    Approximation: every iteration of a run is off by the same relative error, so a latency scales with it.
    Under heavy queueing errors compound and the true band is wider.
    """
    if not band or "q05" not in band or "q95" not in band:
        return None
    lo, hi = 1.0 + float(band["q05"]), 1.0 + float(band["q95"])
    out: dict[str, Any] = {"q05": band["q05"], "q95": band["q95"], "source": band.get("source", ""),
                           "method": "latency x (1 + q05) .. latency x (1 + q95); errors assumed shared by all "
                                     "iterations, so the band is narrower than the truth under heavy queueing"}
    for metric in ("ttft", "tpot", "itl", "e2e"):
        stats = latency.get(metric, {})
        out[metric] = {p: ([stats[p] * lo, stats[p] * hi] if stats.get(p) is not None else None)
                       for p in ("p50", "p90", "p99")}
    return out


def requests_from_trace(trace: Trace) -> RequestsIn:
    """The simulation's view of a workload trace."""
    return RequestsIn(trace.arrival_s, trace.prompt_tokens, trace.output_tokens,
                      trace.prefix_block_hashes, trace.prefix_block_tokens)


def cost_model(sc: Scenario, gpu=None, parallelism=None) -> CostModel:
    """The scenario's cost model (optionally for another GPU / parallelism, as disaggregated pools use)."""
    return CostModel(sc.model, gpu or sc.gpu, parallelism or sc.parallelism, sc.precision, sc.calibration, sc.engine)


def _memory(sc: Scenario, cost: CostModel, max_batched_tokens: int, max_num_seqs: int,
            speculative: SpeculativeDecoder | None = None) -> MemoryPlan:
    """The memory plan of one instance (with a speculative draft model's weights and KV when it has one);
    ``scheduler.num_kv_blocks`` overrides the KV pool size (like vLLM's ``num_gpu_blocks_override``) after
    checking that the weights fit."""
    s = sc.scheduler
    budget = s["chunk_size"] if s["policy"] == "chunked" else max_batched_tokens
    plan = plan_memory(sc.model, cost.gpu, cost.parallelism, sc.precision,
                       gpu_memory_utilization=s["gpu_memory_utilization"], block_size=s["block_size"],
                       max_batched_tokens=budget, max_num_seqs=max_num_seqs)
    if speculative is not None and speculative.draft is not None:
        try:
            plan = with_draft_model(plan, speculative.config.draft_model, cost.parallelism, sc.precision)
        except InputError as exc:
            raise InputError(exc.message, source=sc.source, where=exc.where) from None
    if s["num_kv_blocks"] is None:
        return plan
    blocks = s["num_kv_blocks"]
    return dataclasses.replace(plan, kv_blocks=blocks, kv_tokens=blocks * plan.block_size,
                               kv_cache_bytes=blocks * plan.block_size * plan.kv_bytes_per_token)


def _scheduler(sc: Scenario):
    s = sc.scheduler
    cls = SCHEDULERS[s["policy"]]
    if cls is ContinuousScheduler:
        return cls(max_num_seqs=s["max_num_seqs"], max_batched_tokens=s["max_batched_tokens"])
    if s["policy"] == "chunked":
        return cls(max_num_seqs=s["max_num_seqs"], chunk_size=s["chunk_size"])
    return cls(max_num_seqs=s["max_num_seqs"])


def _speculative(sc: Scenario, cost: CostModel, n_requests: int) -> SpeculativeDecoder | None:
    """Speculative decoding for replicas priced by ``cost``, or None when the scenario does not speculate.

    Its randomness (the per-request acceptances and the key of the per-round draws) is stream 1 of the
    scenario seed (stream 0 is the workload's), so every pool sees the same draws.
    """
    if sc.speculative is None or not sc.speculative.enabled:
        return None
    try:
        return SpeculativeDecoder.build(sc.speculative, cost, n_requests, sc.rngs(2)[1])
    except InputError as exc:  # the draft model cannot be split like the target (tp, pp)
        raise InputError(exc.message, source=sc.source, where="speculative.draft_model", value=exc.value) from None


def build_simulation(sc: Scenario, trace: Trace, *, progress=None):
    """Build the simulation of ``sc`` over ``trace``; returns (simulation, {role: (cost, memory, replicas)}).

    Speculative decoding, when on, runs on every replica that decodes (all of them, or the decode pool).
    """
    requests = requests_from_trace(trace)
    s, ctx = sc.scheduler, sc.model.max_context_tokens
    ff = sc.resolved["engine"]["fast_forward"]
    n = len(requests.arrival_s)
    if sc.disaggregated is None:
        cost = cost_model(sc)
        spec = _speculative(sc, cost, n)
        mem = _memory(sc, cost, s["max_batched_tokens"], s["max_num_seqs"], spec)
        setups = [ReplicaSetup(cost, _scheduler(sc), mem.kv_blocks, s["block_size"], ctx, speculative=spec)
                  for _ in range(sc.resolved["replicas"])]
        router = ROUTERS[sc.resolved["router"]]()
        sim = Simulation(requests, setups, router, fast_forward=ff, prefix_caching=s["prefix_caching"],
                         progress=progress)
        return sim, {"replica": (cost, mem, list(range(len(setups))))}
    d = sc.disaggregated
    pools, setups = {}, {}
    start = 0
    for role in ("prefill", "decode"):
        pool = d[role]
        cost = cost_model(sc, pool.gpu, pool.parallelism)
        spec = _speculative(sc, cost, n) if role == "decode" else None
        mem = _memory(sc, cost, pool.max_batched_tokens, pool.max_num_seqs, spec)
        sched = ContinuousScheduler(max_num_seqs=pool.max_num_seqs, max_batched_tokens=pool.max_batched_tokens)
        setups[role] = [ReplicaSetup(cost, sched, mem.kv_blocks, s["block_size"], ctx, role=role, speculative=spec)
                        for _ in range(pool.instances)]
        pools[role] = (cost, mem, list(range(start, start + pool.instances)))
        start += pool.instances
    link = d["link"]
    sim = DisaggregatedSimulation(requests, setups["prefill"], setups["decode"],
                                  link_bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
                                  link_latency_s=link.latency_s,
                                  kv_bytes_per_token=sc.model.kv_bytes_per_token(sc.precision.kv),
                                  stream_layers=d["stream_layers"], fast_forward=ff, progress=progress)
    return sim, pools


#: Iterations re-priced per call by :func:`operator_time` (bounds its memory to a few tens of MB).
PRICE_ROWS = 1 << 16
#: The iteration columns that are cost-model features, by feature name.
FEATURE_COLUMNS = {"prefill_tokens": "prefill_tokens", "prefill_chunks": "prefill_chunks",
                   "prefill_attn_pairs": "prefill_attn_pairs", "prefill_kv_tokens": "prefill_kv_tokens",
                   "decode_seqs": "decode_seqs", "decode_ctx_tokens": "decode_ctx_sum", "sampled": "sampled"}


def operator_time(iterations: pd.DataFrame, pools: dict) -> dict[str, float]:
    """Seconds spent in each operator over the whole run, re-priced from the iteration log (vectorised).

    Decode-only iterations are summed per batch size (:meth:`CostModel.decode_operator_time`). Prefill-only
    iterations repeat (a trace repeats its prompt lengths): each distinct one is priced once and weighted by
    how often it ran. The others are priced :data:`PRICE_ROWS` at a time (memory stays bounded on
    million-request runs) and the chunks' totals added in order. Speculative draft steps (priced with the draft
    model or as a fraction of the target) are one entry, ``speculative_draft``; the target's verification
    passes are in the operators like any prompt chunk.
    """
    total: dict[str, float] = {}

    def add(priced: Mapping[str, float]) -> None:
        for name, seconds in priced.items():
            total[name] = total.get(name, 0.0) + seconds

    replica = iterations["replica"].to_numpy()
    columns = {feature: iterations[name].to_numpy() for feature, name in FEATURE_COLUMNS.items()}
    decode_only = (columns["prefill_tokens"] == 0) & (columns["prefill_chunks"] == 0) & (columns["decode_seqs"] > 0)
    for cost, _, replicas in pools.values():
        pool = np.isin(replica, replicas)
        decode = cost.decode_operator_time(columns["decode_seqs"][pool & decode_only],
                                           columns["decode_ctx_tokens"][pool & decode_only])
        if decode is not None:  # decode-only iterations by batch size (most of a run's iterations)
            add(decode)
            pool &= ~decode_only
        rows = np.flatnonzero(pool)
        prefill_only = columns["decode_seqs"][rows] == 0
        distinct, counts = _distinct_rows(np.stack([values[rows[prefill_only]] for values in columns.values()], 1))
        for start in range(0, counts.size, PRICE_ROWS):
            chunk = slice(start, start + PRICE_ROWS)
            features = BatchFeatures.from_arrays(**{name: distinct[chunk, i] for i, name in enumerate(columns)})
            add(time_by_operator(cost.price(features), weights=counts[chunk]))
        mixed = rows[~prefill_only]
        for start in range(0, mixed.size, PRICE_ROWS):
            chunk = mixed[start: start + PRICE_ROWS]
            add(time_by_operator(cost.price(BatchFeatures.from_arrays(**{name: values[chunk]
                                                                        for name, values in columns.items()}))))
        draft = float(iterations["draft_s"].to_numpy()[rows].sum())
        if draft > 0:
            add({"speculative_draft": draft})
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D array (sorted) and how often each occurs (int64)."""
    if rows.shape[0] == 0:
        return rows, np.zeros(0, dtype=np.int64)
    ordered = rows[np.lexsort(rows.T[::-1])]
    starts = np.flatnonzero(np.concatenate(([True], np.any(ordered[1:] != ordered[:-1], axis=1))))
    return ordered[starts], np.diff(np.append(starts, rows.shape[0]))
