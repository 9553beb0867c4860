"""The calibration workflow as functions: measurements -> kernel curves -> composition -> profile; validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from llmsim.calibration.composition import fit_composition, fit_engine, predict_rows
from llmsim.calibration.fit import fit_profile
from llmsim.calibration.measurements import concat, read_measurements
from llmsim.calibration.validate import error_table, read_iterations
from llmsim.costmodel import CUDA_GRAPHS, CalibrationProfile, EngineProfile, load_engine
from llmsim.scenario import resolve_calibration
from llmsim.specs import load_hardware


@dataclass(frozen=True)
class FitResult:
    """A fitted profile, the engine profile (if eager iterations were given) and a printable summary."""

    profile: CalibrationProfile
    engine: EngineProfile | None
    text: str


def fit_files(hardware: str, measured: Sequence[Path], reference: Path | None = None) -> FitResult:
    """Fit ``hardware``'s profile from measurement CSVs and, optionally, a reference-executor CSV."""
    gpu = load_hardware(hardware)
    rows = first_source_per_class([read_measurements(p) for p in measured])
    sources = ", ".join(Path(p).name for p in measured)
    profile = fit_profile(gpu, rows, name=gpu.name, source=f"kernel curves from {sources}")
    lines = ["kernel residuals (relative error of the fitted curves against the measurements):",
             _residual_text(profile.residuals)]
    engine = None
    if reference is not None:
        iterations = read_iterations(reference)
        before = error_table(*_graph(iterations, gpu, profile))
        profile = fit_composition(iterations, gpu, profile)
        profile = dataclasses.replace(profile, source=f"{profile.source}; whole-iteration terms from "
                                                      f"{Path(reference).name}")
        after = error_table(*_graph(iterations, gpu, profile))
        lines += ["whole iterations (CUDA graphs), kernel curves only:", before.to_string(index=False),
                  f"with composition terms (per_layer_s={profile.per_layer_s:.3g}, per_token_layer_s="
                  f"{profile.per_token_layer_s:.3g}, mixed_query_tile={profile.mixed_query_tile}, time_scale="
                  f"{dict(profile.time_scale)}):", after.to_string(index=False)]
        if (iterations["mode"] == "eager").any():
            engine = fit_engine(iterations, gpu, profile, name="reference-executor",
                                source=f"eager iterations of {Path(reference).name} on {gpu.name}")
            lines.append(f"engine profile (eager host terms): {engine.eager}")
    return FitResult(profile, engine, "\n".join(lines))


def first_source_per_class(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate measurement tables, taking each operator class only from the first table that has it
    (so a kernel sweep given after the suite's CSVs only adds the classes the suite did not measure)."""
    kept, seen = [], set()
    for table in tables:
        classes = set(table["op_class"]) - seen
        kept.append(table[table["op_class"].isin(classes)])
        seen |= classes
    return concat(kept)


def _graph(iterations: pd.DataFrame, gpu, profile: CalibrationProfile) -> tuple[pd.DataFrame, np.ndarray]:
    graph = iterations[iterations["mode"] == "graph"].reset_index(drop=True)
    return graph, predict_rows(graph, gpu, profile)


def _residual_text(residuals: dict) -> str:
    frame = pd.DataFrame(residuals).T
    return frame.to_string()


def validate_file(measured: Path, hardware: str, calibration: str = "auto", engine: str = "cuda-graphs") -> pd.DataFrame:
    """Error statistics of the cost model against measured iterations, per (kind, mode) and overall.

    Rows run under CUDA graphs are priced with the ``cuda-graphs`` engine (pure GPU time); eager rows with
    ``engine``.
    """
    gpu = load_hardware(hardware)
    profile, _ = resolve_calibration(calibration, hardware, None, "--calibration")
    iterations = read_iterations(measured)
    # Rows measured eagerly ran eagerly, decode-only ones included: no iteration of theirs is graph-replayed.
    eager_engine = dataclasses.replace(load_engine(engine), graph_max_seqs=0)
    graph = (iterations["mode"] != "eager").to_numpy()
    predicted = np.empty(len(iterations))
    if graph.any():
        predicted[graph] = predict_rows(iterations[graph], gpu, profile, CUDA_GRAPHS)
    if (~graph).any():
        predicted[~graph] = predict_rows(iterations[~graph], gpu, profile, eager_engine)
    return error_table(iterations, predicted)
