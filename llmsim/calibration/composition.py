"""Fit the whole-iteration terms: how kernel-level curves compose into a real forward pass, and host overhead.

Kernel curves alone miss what a real forward pass adds between and around the priced operators (extra
small kernels, unfused elementwise passes, the engine's own decode attention kernel, the way one varlen
attention call serves a mixed batch). From whole iterations measured under CUDA graphs (pure GPU time) this
module fits, by least squares on relative error, the profile's ``per_layer_s``, ``per_token_layer_s`` and
decode-attention time scale (all >= 0) for each candidate ``mixed_query_tile``, and keeps the best. From
iterations run eagerly it fits an engine profile's host terms (a per-kernel launch time, ``fixed_s`` and
``per_seq_s``). The relative errors left over give the prediction band.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from llmsim.calibration.validate import ErrorStats, predict
from llmsim.costmodel import BatchFeatures, CalibrationProfile, CostModel, EngineProfile, HostTerms
from llmsim.errors import InputError
from llmsim.specs import GpuSpec, load_model

TILES = (0, 16, 32, 64, 128, 256)
LAUNCH_GRID_S = np.arange(0.0, 30.01e-6, 0.5e-6)


def cost_models(frame: pd.DataFrame, gpu: GpuSpec, profile: CalibrationProfile) -> list[CostModel]:
    """One cost model per row (cached per model name and layer count)."""
    cache: dict[tuple[str, int], CostModel] = {}
    out = []
    for model, layers in zip(frame["model"], frame["layers"]):
        key = (str(model), int(layers))
        if key not in cache:
            spec = load_model(key[0], {"num_layers": key[1]} if key[1] > 0 else None)
            cache[key] = CostModel(spec, gpu, calibration=profile)
        out.append(cache[key])
    return out


def _per_model(frame: pd.DataFrame, gpu: GpuSpec, profile: CalibrationProfile, fn) -> np.ndarray:
    """``fn(cost_model, rows)`` evaluated per distinct model of ``frame``, assembled in row order."""
    models = cost_models(frame, gpu, profile)
    out = np.empty(len(frame))
    for cm in {id(m): m for m in models}.values():
        sel = np.array([m is cm for m in models])
        out[sel] = fn(cm, frame[sel])
    return out


def predict_rows(frame: pd.DataFrame, gpu: GpuSpec, profile: CalibrationProfile,
                 engine: EngineProfile | None = None) -> np.ndarray:
    """Predicted seconds of every measured iteration under ``profile`` (and ``engine``, default CUDA graphs)."""
    def one(cm: CostModel, rows: pd.DataFrame) -> np.ndarray:
        cm = cm if engine is None else dataclasses.replace(cm, engine=engine)
        return predict(cm, rows["shape"])
    return _per_model(frame, gpu, profile, one)


def _op_seconds(frame: pd.DataFrame, gpu: GpuSpec, profile: CalibrationProfile, name: str) -> np.ndarray:
    """Seconds of operator ``name`` in every iteration of ``frame``, without its launches (``kernels x
    launch_s``): the part a ``time_scale`` multiplies."""
    def one(cm: CostModel, rows: pd.DataFrame) -> np.ndarray:
        cost = cm.price(BatchFeatures.from_shapes(list(rows["shape"])))
        op = next(op for op in cost.ops if op.name == name)
        return op.time_s - op.kernels * profile.launch_s
    return _per_model(frame, gpu, profile, one)


def _layers_and_tokens(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    models = {name: load_model(name) for name in set(frame["model"])}
    layers = np.array([int(n) if int(n) > 0 else models[m].num_layers for m, n in zip(frame["model"], frame["layers"])],
                      dtype=float)
    tokens = BatchFeatures.from_shapes(list(frame["shape"])).new_tokens
    return layers, tokens


def _nonneg_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0 (tiny problems: try every subset of free columns)."""
    best, best_cost = np.zeros(a.shape[1]), float(np.sum(b ** 2))
    for mask in range(1, 2 ** a.shape[1]):
        cols = [j for j in range(a.shape[1]) if mask >> j & 1]
        coef, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
        if np.all(coef >= 0):
            full = np.zeros(a.shape[1])
            full[cols] = coef
            cost = float(np.sum((a @ full - b) ** 2))
            if cost < best_cost:
                best, best_cost = full, cost
    return best


def fit_composition(frame: pd.DataFrame, gpu: GpuSpec, profile: CalibrationProfile) -> CalibrationProfile:
    """Fit ``per_layer_s``, ``per_token_layer_s``, the decode-attention scale and ``mixed_query_tile`` to the
    CUDA-graph iterations of ``frame``; the profile's band is set from the remaining relative errors."""
    graph = frame[frame["mode"] == "graph"].reset_index(drop=True)
    if graph.empty:
        raise InputError("no CUDA-graph iterations (mode=graph) to fit the composition terms")
    measured = graph["median_s"].to_numpy()
    layers, tokens = _layers_and_tokens(graph)
    best = None
    for tile in TILES:
        base_profile = dataclasses.replace(profile, mixed_query_tile=tile, per_layer_s=0.0, per_token_layer_s=0.0,
                                           time_scale={})
        base = predict_rows(graph, gpu, base_profile)
        decode = _op_seconds(graph, gpu, base_profile, "attn_decode")
        columns = np.column_stack([layers, layers * tokens, decode])
        coef = _nonneg_lstsq(columns / measured[:, None], (measured - base + decode) / measured)
        rel = (base - decode + columns @ coef) / measured - 1
        score = float(np.sum(rel ** 2))
        if best is None or score < best[0]:
            best = (score, tile, coef, rel)
    _, tile, coef, rel = best
    stats = ErrorStats.of(rel)
    band = {"q05": float(f"{stats.q05:.4g}"), "q95": float(f"{stats.q95:.4g}"),
            "source": f"whole-iteration fit residuals, {stats.points} CUDA-graph iterations"}
    scale = {"attn_decode": max(float(f"{coef[2]:.4g}"), 1e-3)}  # the fitted value, kept even when ~0
    return dataclasses.replace(profile, mixed_query_tile=tile, per_layer_s=float(coef[0]),
                               per_token_layer_s=float(coef[1]), time_scale=scale, band=band)


def fit_engine(frame: pd.DataFrame, gpu: GpuSpec, profile: CalibrationProfile, *, name: str,
               source: str) -> EngineProfile:
    """Host terms of eagerly run iterations: for each candidate per-kernel launch time the operators are
    priced launch-bound where they are shorter than their launches, and ``fixed_s`` / ``per_seq_s`` are fitted
    to what remains (least squares on relative error); the best launch time is kept."""
    eager = frame[frame["mode"] == "eager"].reset_index(drop=True)
    if eager.empty:
        raise InputError("no eager iterations (mode=eager) to fit host overhead from")
    measured = eager["median_s"].to_numpy()
    f = BatchFeatures.from_shapes(list(eager["shape"]))
    columns = np.column_stack([np.ones(len(eager)), f.decode_seqs + f.prefill_chunks])
    # graph_max_seqs=0 while fitting: these iterations ran eagerly, decode-only ones included
    best = None
    for launch in LAUNCH_GRID_S:
        trial = EngineProfile(name=name, eager=HostTerms(launch_s=float(launch)), graph_max_seqs=0)
        base = predict_rows(eager, gpu, profile, trial)
        coef = _nonneg_lstsq(columns / measured[:, None], (measured - base) / measured)
        rel = (base + columns @ coef) / measured - 1
        score = float(np.sum(rel ** 2))
        if best is None or score < best[0]:
            best = (score, float(launch), coef)
    _, launch, coef = best
    terms = HostTerms(fixed_s=float(f"{coef[0]:.4g}"), per_seq_s=float(f"{coef[1]:.4g}"),
                      launch_s=float(f"{launch:.4g}"))
    return EngineProfile(name=name, graph=HostTerms(), eager=terms, graph_max_seqs=512, source=source)
