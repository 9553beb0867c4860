"""The GEMM weight shapes the calibration suite measures: every projection of the built-in models, per GPU.

A model served at tensor-parallel degree ``tp`` runs its projections with sharded shapes (column-parallel
QKV and up projections split N, row-parallel output and down projections split K), so each model is listed
at the TP degrees it is usually deployed with.
"""

from __future__ import annotations

import csv
from pathlib import Path

from llmsim.specs.model import BUILTIN_MODELS, ModelSpec

#: (model, tensor-parallel degrees) the suite measures by default.
DEFAULT_DEPLOYMENTS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("llama-3-8b", (1, 2)), ("llama-2-7b", (1,)), ("llama-2-13b", (1,)), ("mistral-7b", (1,)),
    ("qwen2.5-7b", (1,)), ("mixtral-8x7b", (1, 2)), ("llama-3-70b", (4, 8)), ("llama-2-70b", (4, 8)),
    ("qwen2.5-72b", (4, 8)), ("llama-3.1-405b", (8,)),
)


def projection_shapes(model: ModelSpec, tp: int) -> dict[str, tuple[int, int]]:
    """(N, K) per GPU of each projection of ``model`` at TP degree ``tp``."""
    hd, hidden = model.head_dim, model.hidden_size
    hkv = max(1, model.num_kv_heads // tp)
    inter = (model.expert_intermediate_size if model.is_moe else model.intermediate_size) // tp
    gate = 2 if model.gated_mlp else 1
    return {"qkv": ((model.num_heads // tp + 2 * hkv) * hd, hidden), "o": (hidden, model.num_heads // tp * hd),
            "gate_up": (gate * inter, hidden), "down": (hidden, inter), "lm_head": (model.vocab_size // tp, hidden)}


def write_shapes(path: Path, deployments=DEFAULT_DEPLOYMENTS) -> int:
    """Write the suite's shapes CSV (``model,op,n,k``); returns the number of distinct (N, K)."""
    rows, distinct = [], set()
    for name, tps in deployments:
        for tp in tps:
            for op, (n, k) in projection_shapes(BUILTIN_MODELS[name], tp).items():
                rows.append((f"{name}@tp{tp}", op, n, k))
                distinct.add((n, k))
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("model", "op", "n", "k"))
        writer.writerows(rows)
    return len(distinct)
