"""Kernel measurements from several sources, normalised into one table the fit reads.

Columns of the normalised table (one row per measured point; sizes per GPU, one layer):

``op_class`` (gemm, gemm_fp8, attn_prefill, attn_decode, elementwise, collective, launch, hbm), ``op``,
``m, n, k`` (GEMM rows, output and input features), ``batch, ctx, chunk, prior`` (attention: sequences,
cached tokens per decode sequence, new and earlier tokens of a prefill chunk), ``heads, kv_heads, head_dim``,
``bytes`` (elementwise / hbm / collective: ideal bytes moved), ``time_s`` (median seconds), ``source``.

Readers: the suite's CSV (``microbench/run_suite.py``, see README.md "Calibration CSV"), the PyTorch kernel
sweeps in ``shared/measured/h100_kernels.csv`` style, and Vidur's A100/H100 operator profiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmsim.errors import InputError

COLUMNS = ("op_class", "op", "m", "n", "k", "batch", "ctx", "chunk", "prior", "heads", "kv_heads", "head_dim",
           "bytes", "time_s", "source")
SUITE_HEADER = ("op_class", "op", "dtype", "m", "n", "k", "batch", "ctx", "heads", "kv_heads", "head_dim", "flops",
                "bytes", "median_s")
KERNELS_HEADER = ("phase", "model", "op", "tokens", "batch", "seq", "ctx", "chunk", "prior", "median_ms", "note")
# Attention shapes of the models in the PyTorch kernel sweeps (public config.json values).
_SWEEP_HEADS = {"llama3-8b": (32, 8, 128), "llama2-70b": (64, 8, 128)}


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in COLUMNS:
        if col not in ("op_class", "op", "source"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def read_measurements(path: Path) -> pd.DataFrame:
    """Read any supported measurement CSV into the normalised table (format detected from the header)."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"cannot read measurements: {exc}", source=path) from None
    cols = set(raw.columns)
    if set(SUITE_HEADER) <= cols:
        return from_suite(raw, str(path))
    if set(KERNELS_HEADER) <= cols:
        return from_kernel_sweep(raw, str(path))
    if "time_stats.mlp_up_proj.median" in cols:
        return from_vidur_mlp(path)
    if "time_stats.attn_decode.median" in cols:
        return from_vidur_attention(path)
    raise InputError("unrecognised measurement CSV: expected the calibration suite's columns "
                     f"({', '.join(SUITE_HEADER)}), a kernel sweep's ({', '.join(KERNELS_HEADER)}) or a Vidur "
                     "profile (mlp.csv / attention.csv)", source=path)


def from_suite(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows of ``llmsim calibrate run`` (the CUDA suite plus its PyTorch attention rows)."""
    rows = []
    for rec in raw.to_dict("records"):
        cls, op = str(rec["op_class"]), str(rec["op"])
        row = {"op_class": cls, "op": op, "time_s": rec["median_s"], "source": source, "bytes": rec.get("bytes"),
               "heads": rec.get("heads"), "kv_heads": rec.get("kv_heads"), "head_dim": rec.get("head_dim")}
        if cls in ("gemm", "gemm_fp8"):
            row.update(m=rec["m"], n=rec["n"], k=rec["k"])
        elif cls == "decode_attn":
            row.update(op_class="attn_decode", batch=rec["batch"], ctx=rec["ctx"])
        elif cls == "prefill_attn":
            seq = rec.get("m") if pd.notna(rec.get("m")) else rec.get("ctx")
            row.update(op_class="attn_prefill", batch=rec.get("batch") or 1, chunk=seq, prior=0)
        elif cls == "chunk_attn":
            row.update(op_class="attn_prefill", batch=1, chunk=rec["m"], prior=rec["ctx"])
        elif cls == "allreduce":
            row.update(op_class="collective")
        rows.append(row)
    return _frame(rows)


def from_kernel_sweep(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rows of a PyTorch kernel sweep (``phase,model,op,tokens,...,median_ms,...,note``)."""
    rows = []
    for rec in raw.to_dict("records"):
        phase, op, t = str(rec["phase"]), str(rec["op"]), float(rec["median_ms"]) * 1e-3
        base = {"op": f"{rec['model']}/{op}", "time_s": t, "source": source}
        if phase in ("gemm", "fp8"):
            dims = dict(part.split("=") for part in str(rec["note"]).split(";") if "=" in part)
            rows.append({**base, "op_class": "gemm" if phase == "gemm" else "gemm_fp8", "m": rec["tokens"],
                         "n": int(dims["N"]), "k": int(dims["K"])})
        elif phase == "attn":
            heads, kv, hd = _SWEEP_HEADS.get(str(rec["model"]), (32, 8, 128))
            shape = {"heads": heads, "kv_heads": kv, "head_dim": hd}
            if op == "decode_attn":
                rows.append({**base, **shape, "op_class": "attn_decode", "batch": rec["batch"], "ctx": rec["ctx"]})
            elif op == "prefill_attn":
                rows.append({**base, **shape, "op_class": "attn_prefill", "batch": rec["batch"], "chunk": rec["seq"],
                             "prior": 0})
            elif op == "chunk_attn":
                rows.append({**base, **shape, "op_class": "attn_prefill", "batch": 1, "chunk": rec["chunk"],
                             "prior": rec["prior"]})
        elif phase == "ceil" and op == "d2d_copy":
            rows.append({**base, "op_class": "hbm", "op": "copy", "bytes": rec["bytes"]})
    return _frame(rows)


def from_vidur_mlp(path: Path, *, n_head: int | None = None) -> pd.DataFrame:
    """Vidur's per-op ``mlp.csv`` (milliseconds, one layer, TP-sharded): GEMMs and elementwise ops."""
    raw = pd.read_csv(path)
    rows = []
    for rec in raw.to_dict("records"):
        tp, t = int(rec["num_tensor_parallel_workers"]), int(rec["num_tokens"])
        hidden, inter = int(rec["n_embd"]), int(rec["n_expanded_embd"])
        heads, kv = int(rec["n_head"]), int(rec["n_kv_head"])
        hd = hidden // heads
        gated = bool(rec["use_gated_mlp"])
        gemms = {"attn_pre_proj": ((heads + 2 * kv) * hd // tp, hidden),
                 "attn_post_proj": (hidden, heads * hd // tp),
                 "mlp_up_proj": ((2 if gated else 1) * inter // tp, hidden),
                 "mlp_down_proj": (hidden, inter // tp)}
        for op, (n, k) in gemms.items():
            rows.append({"op_class": "gemm", "op": f"vidur/{op}", "m": t, "n": n, "k": k,
                         "time_s": rec[f"time_stats.{op}.median"] * 1e-3, "source": str(path)})
        elementwise = {"input_layernorm": 2 * t * hidden * 2, "add": 3 * t * hidden * 2,
                       "attn_rope": 2 * t * (heads + kv) // tp * hd * 2,
                       "mlp_act": t * ((2 if gated else 1) + 1) * inter // tp * 2}
        for op, nbytes in elementwise.items():
            rows.append({"op_class": "elementwise", "op": f"vidur/{op}", "bytes": nbytes,
                         "time_s": rec[f"time_stats.{op}.median"] * 1e-3, "source": str(path)})
    return _frame(rows)


def from_vidur_attention(path: Path) -> pd.DataFrame:
    """Vidur's legacy ``attention.csv`` (Llama-2-70B at TP 2: 32 query and 4 KV heads per GPU)."""
    raw = pd.read_csv(path)
    rows = []
    for rec in raw.to_dict("records"):
        tp = int(rec["num_tensor_parallel_workers"])
        shape = {"heads": int(rec["n_q_head"]) // tp, "kv_heads": max(1, int(rec["n_kv_head"]) // tp),
                 "head_dim": int(rec["n_embd"]) // int(rec["n_q_head"]), "source": str(path)}
        if bool(rec["is_prefill"]):
            rows.append({**shape, "op_class": "attn_prefill", "op": "vidur/prefill", "batch": 1,
                         "chunk": rec["prefill_chunk_size"], "prior": rec["kv_cache_size"],
                         "time_s": rec["time_stats.attn_prefill.median"] * 1e-3})
        elif rec["kv_cache_size"] > 0:
            rows.append({**shape, "op_class": "attn_decode", "op": "vidur/decode", "batch": rec["batch_size"],
                         "ctx": rec["kv_cache_size"], "time_s": rec["time_stats.attn_decode.median"] * 1e-3})
    return _frame(rows)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack normalised tables, dropping rows without a positive finite time."""
    frame = pd.concat(frames, ignore_index=True) if frames else _frame([])
    ok = np.isfinite(frame["time_s"]) & (frame["time_s"] > 0)
    return frame[ok].reset_index(drop=True)
