"""Every measurement reader normalises its format into the one table the fit reads (units: seconds, one layer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.calibration.measurements import KERNELS_HEADER, concat, read_measurements
from llmsim.calibration.validate import read_iterations
from llmsim.errors import InputError

from .conftest import MEASURED, write_rows, write_suite


def test_suite_rows_map_to_the_normalised_classes(tmp_path: Path):
    path = write_suite(tmp_path / "suite.csv", [
        {"op_class": "gemm", "op": "m/qkv", "dtype": "bf16", "m": 16, "n": 6144, "k": 4096, "median_s": 2e-5},
        {"op_class": "decode_attn", "op": "paged_gqa", "batch": 8, "ctx": 1024, "heads": 32, "kv_heads": 8,
         "head_dim": 128, "bytes": 1e6, "median_s": 3e-5},
        {"op_class": "prefill_attn", "op": "sdpa_causal", "m": 2048, "ctx": 0, "batch": 1, "heads": 32,
         "kv_heads": 8, "head_dim": 128, "median_s": 4e-4},
        {"op_class": "chunk_attn", "op": "sdpa_chunk", "m": 512, "ctx": 2048, "batch": 1, "heads": 32,
         "kv_heads": 8, "head_dim": 128, "median_s": 1e-4},
        {"op_class": "launch", "op": "graph_kernel", "n": 1000, "median_s": 8e-7},
        {"op_class": "hbm", "op": "copy", "n": 2**30, "bytes": 2**31, "median_s": 7e-4},
        {"op_class": "elementwise", "op": "rmsnorm", "m": 16, "n": 4096, "bytes": 262144, "median_s": 3e-6},
        {"op_class": "allreduce", "op": "allreduce_sum", "batch": 2, "n": 1024, "bytes": 2048, "median_s": 1e-5},
    ])
    rows = read_measurements(path)
    assert list(rows["op_class"]) == ["gemm", "attn_decode", "attn_prefill", "attn_prefill", "launch", "hbm",
                                      "elementwise", "collective"]
    gemm, dec, pre, chunk = (rows.iloc[i] for i in range(4))
    assert (gemm["m"], gemm["n"], gemm["k"], gemm["time_s"]) == (16, 6144, 4096, 2e-5)
    assert (dec["batch"], dec["ctx"], dec["heads"], dec["kv_heads"]) == (8, 1024, 32, 8)
    assert (pre["chunk"], pre["prior"], pre["batch"]) == (2048, 0, 1)
    assert (chunk["chunk"], chunk["prior"]) == (512, 2048)
    assert rows.loc[5, "bytes"] == 2**31 and rows["source"].eq(str(path)).all()


def test_kernel_sweep_rows_are_converted_from_milliseconds(tmp_path: Path):
    base = dict.fromkeys(KERNELS_HEADER, "")
    path = write_rows(tmp_path / "sweep.csv", [
        {**base, "phase": "gemm", "model": "llama3-8b", "op": "qkv", "tokens": 64, "median_ms": 0.02,
         "note": "N=6144;K=4096"},
        {**base, "phase": "fp8", "model": "llama3-8b", "op": "down", "tokens": 8, "median_ms": 0.01,
         "note": "N=4096;K=14336"},
        {**base, "phase": "attn", "model": "llama2-70b", "op": "decode_attn", "batch": 4, "ctx": 2048,
         "median_ms": 0.05},
        {**base, "phase": "attn", "model": "llama3-8b", "op": "chunk_attn", "chunk": 256, "prior": 1024,
         "median_ms": 0.03},
        {**base, "phase": "ceil", "model": "-", "op": "d2d_copy", "median_ms": 1.0, "note": "bytes=1"},
    ], KERNELS_HEADER + ("bytes",))
    rows = read_measurements(path)
    assert list(rows["op_class"]) == ["gemm", "gemm_fp8", "attn_decode", "attn_prefill", "hbm"]
    assert rows["time_s"].tolist() == pytest.approx([2e-5, 1e-5, 5e-5, 3e-5, 1e-3])
    assert (rows.loc[1, "n"], rows.loc[1, "k"]) == (4096, 14336)
    assert (rows.loc[2, "heads"], rows.loc[2, "kv_heads"]) == (64, 8)  # llama2-70b geometry
    assert (rows.loc[3, "chunk"], rows.loc[3, "prior"]) == (256, 1024)


def test_vidur_mlp_profile_gives_four_gemms_and_four_elementwise_ops_per_row(tmp_path: Path):
    ops = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj", "input_layernorm", "add",
           "attn_rope", "mlp_act")
    row = {"num_tensor_parallel_workers": 2, "num_tokens": 128, "n_embd": 4096, "n_expanded_embd": 14336,
           "n_head": 32, "n_kv_head": 8, "use_gated_mlp": True, **{f"time_stats.{op}.median": 0.01 for op in ops}}
    path = tmp_path / "mlp.csv"
    pd.DataFrame([row]).to_csv(path, index=False)
    rows = read_measurements(path)
    assert rows["op_class"].tolist() == ["gemm"] * 4 + ["elementwise"] * 4
    shapes = {op.split("/")[1]: (n, k) for op, n, k in zip(rows["op"], rows["n"], rows["k"])}
    assert shapes["attn_pre_proj"] == ((32 + 16) * 128 // 2, 4096)  # TP-sharded QKV
    assert shapes["mlp_down_proj"] == (4096, 14336 // 2)
    assert rows["time_s"].tolist() == pytest.approx([1e-5] * 8)


def test_vidur_attention_profile_splits_prefill_and_decode(tmp_path: Path):
    common = {"num_tensor_parallel_workers": 2, "n_q_head": 64, "n_kv_head": 8, "n_embd": 8192,
              "time_stats.attn_prefill.median": 0.2, "time_stats.attn_decode.median": 0.05}
    path = tmp_path / "attention.csv"
    pd.DataFrame([{**common, "is_prefill": True, "prefill_chunk_size": 512, "kv_cache_size": 1024, "batch_size": 1},
                  {**common, "is_prefill": False, "prefill_chunk_size": 0, "kv_cache_size": 2048, "batch_size": 16},
                  {**common, "is_prefill": False, "prefill_chunk_size": 0, "kv_cache_size": 0, "batch_size": 16}]
                 ).to_csv(path, index=False)
    rows = read_measurements(path)
    assert rows["op_class"].tolist() == ["attn_prefill", "attn_decode"]  # the empty-cache decode is dropped
    assert (rows.loc[0, "heads"], rows.loc[0, "kv_heads"], rows.loc[0, "head_dim"]) == (32, 4, 128)
    assert (rows.loc[0, "chunk"], rows.loc[0, "prior"]) == (512, 1024)
    assert (rows.loc[1, "batch"], rows.loc[1, "ctx"]) == (16, 2048)
    assert rows["time_s"].tolist() == pytest.approx([2e-4, 5e-5])


def test_unrecognised_or_unreadable_files_name_the_file(tmp_path: Path):
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="unrecognised measurement CSV") as err:
        read_measurements(odd)
    assert err.value.source == str(odd)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="cannot read measurements") as err:
        read_measurements(empty)
    assert err.value.source == str(empty)


def test_concat_drops_rows_without_a_positive_time(tmp_path: Path):
    path = write_suite(tmp_path / "s.csv", [
        {"op_class": "gemm", "op": "a", "m": 1, "n": 8, "k": 8, "median_s": 1e-5},
        {"op_class": "gemm", "op": "b", "m": 2, "n": 8, "k": 8, "median_s": 0.0},
        {"op_class": "gemm", "op": "c", "m": 4, "n": 8, "k": 8, "median_s": ""},
    ])
    rows = concat([read_measurements(path)])
    assert rows["op"].tolist() == ["a"]
    assert concat([]).empty


@pytest.mark.parametrize("gpu", ["h100-sxm", "h200-sxm"])
def test_committed_suite_measurements(gpu: str):
    misc = read_measurements(MEASURED / f"{gpu}_suite_misc.csv")
    gemm = read_measurements(MEASURED / f"{gpu}_suite_gemm.csv")
    assert len(misc) == 174 and len(gemm) == 1125
    assert misc["op_class"].value_counts().to_dict() == {"attn_decode": 72, "elementwise": 48, "attn_prefill": 42,
                                                         "hbm": 9, "launch": 3}
    assert set(gemm["op_class"]) == {"gemm"}
    for rows in (misc, gemm):
        assert np.all(np.isfinite(rows["time_s"])) and (rows["time_s"] > 0).all()
        assert len(concat([rows])) == len(rows)
    assert gemm.groupby(["n", "k"]).ngroups == 48


@pytest.mark.parametrize("gpu, rows", [("h100-sxm", 86), ("h200-sxm", 90)])
def test_committed_reference_iterations(gpu: str, rows: int):
    frame = read_iterations(MEASURED / f"{gpu}_reference_llama-3-8b.csv")
    assert len(frame) == rows
    assert set(frame["kind"]) == {"prefill", "decode", "mixed"} and set(frame["mode"]) == {"graph", "eager"}
    assert (frame["median_s"] > 0).all()
    assert all(not shape.is_empty for shape in frame["shape"])
