"""Compare the cost model with measured whole-iteration times (the reference executor's CSV, or any CSV with
``chunks`` / ``decodes`` columns in the ``C@P`` / ``BxL`` notation and a ``median_s`` time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.costmodel import BatchFeatures, CostModel, IterationShape, PromptChunk, parse_chunk, parse_decodes
from llmsim.errors import InputError

REQUIRED = ("kind", "chunks", "decodes", "median_s")


def read_iterations(path: Path) -> pd.DataFrame:
    """Measured iterations; :class:`InputError` naming the file and line for a malformed row."""
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"chunks": str, "decodes": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read measured iterations: {exc}", source=path) from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)}; expected at least {', '.join(REQUIRED)}",
                         source=path)
    frame["median_s"] = pd.to_numeric(frame["median_s"], errors="coerce")
    bad = ~(frame["median_s"] > 0)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 2
        raise InputError("expected a positive time in median_s", source=path, where=f"line {line}")
    for col, default in (("mode", "graph"), ("model", "llama-3-8b"), ("layers", 0), ("num_sampled", -1)):
        if col not in frame.columns:
            frame[col] = default
    for col, default in (("layers", 0), ("num_sampled", -1)):
        frame[col] = _integers(frame[col], col, default, path)
    _check_models(frame, path)
    frame["shape"] = [_shape(r, path, i + 2) for i, r in enumerate(frame.to_dict("records"))]
    return frame


def _integers(column: pd.Series, name: str, default: int, path: Path) -> pd.Series:
    """An integer column; blanks take ``default``; anything else is an InputError naming the line."""
    text = column.astype(str).str.strip()
    values = pd.to_numeric(text.where(text != "", str(default)), errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
        raise InputError(f"expected an integer in {name}", source=path, where=f"line {line}",
                         value=column.iloc[line - 2])
    return values.astype(np.int64)


def _check_models(frame: pd.DataFrame, path: Path) -> None:
    from llmsim.specs import load_model
    for model in frame["model"].unique():
        try:
            load_model(str(model))
        except InputError as exc:
            line = int(np.flatnonzero((frame["model"] == model).to_numpy())[0]) + 2
            raise InputError(exc.message, source=path, where=f"line {line}", value=model) from None


def _shape(rec: dict, path: Path, line: int) -> IterationShape:
    try:
        chunks = [parse_chunk(c) for c in str(rec["chunks"]).split(";") if c.strip()]
        contexts = [x for d in str(rec["decodes"]).split(";") if d.strip() for x in parse_decodes(d)]
    except InputError as exc:
        raise InputError(exc.message, source=path, where=f"line {line}", value=exc.value) from None
    if not chunks and not contexts:
        raise InputError("an iteration needs prompt chunks (C@P) or decodes (BxL)", source=path, where=f"line {line}")
    sampled = int(rec.get("num_sampled", -1))
    sampling_chunks = len(chunks) if sampled < 0 else max(0, sampled - len(contexts))
    marked = tuple(PromptChunk(c.new_tokens, c.prior_tokens, samples=i < sampling_chunks)
                   for i, c in enumerate(chunks))
    return IterationShape(marked, tuple(contexts))


def predict(cost: CostModel, shapes) -> np.ndarray:
    """Predicted seconds of each iteration shape."""
    return cost.time_s(BatchFeatures.from_shapes(list(shapes)))


@dataclass(frozen=True)
class ErrorStats:
    """Relative errors (predicted / measured - 1) of a set of iterations."""

    points: int
    median_abs: float
    p90_abs: float
    max_abs: float
    mean: float
    q05: float
    q95: float

    @classmethod
    def of(cls, rel: np.ndarray) -> "ErrorStats":
        """Statistics of the relative errors ``rel``."""
        a = np.abs(rel)
        return cls(int(rel.size), float(np.median(a)), float(np.percentile(a, 90)), float(a.max()),
                   float(rel.mean()), float(np.percentile(rel, 5)), float(np.percentile(rel, 95)))

    def as_dict(self) -> dict[str, float]:
        """Plain numbers (rounded) for YAML and JSON."""
        return {k: (v if isinstance(v, int) else float(f"{v:.4g}")) for k, v in self.__dict__.items()}


def error_table(frame: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """Per (kind, mode) and overall: points, median/p90/max absolute and mean signed relative error."""
    rel = predicted / frame["median_s"].to_numpy() - 1.0
    rows = []
    for (kind, mode), idx in frame.groupby(["kind", "mode"]).groups.items():
        pos = frame.index.get_indexer(idx)
        rows.append({"kind": kind, "mode": mode, **ErrorStats.of(rel[pos]).as_dict()})
    rows.append({"kind": "all", "mode": "all", **ErrorStats.of(rel).as_dict()})
    return pd.DataFrame(rows)
