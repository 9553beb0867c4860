"""Reading measured iterations (errors name the file and line) and the error statistics of predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim.calibration.validate import ErrorStats, error_table, read_iterations
from llmsim.costmodel import PromptChunk
from llmsim.errors import InputError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "iterations.csv"
    path.write_text(text)
    return path


GOOD = ("kind,mode,chunks,decodes,num_sampled,median_s\n"
        "prefill,graph,512@0;128@256,,-1,0.02\n"
        "decode,eager,,4x100;2x50,6,0.01\n"
        "mixed,graph,256@0,8x1024,8,0.015\n")


def test_iterations_are_parsed_into_shapes(tmp_path: Path):
    frame = read_iterations(write(tmp_path, GOOD))
    prefill, decode, mixed = frame["shape"]
    assert prefill.prefill_chunks == (PromptChunk(512, 0), PromptChunk(128, 256))
    assert decode.decode_context_tokens == (100,) * 4 + (50,) * 2
    # num_sampled = 8 with 8 decodes: the mixed chunk does not complete its prompt
    assert mixed.prefill_chunks == (PromptChunk(256, 0, samples=False),)
    assert frame["model"].eq("llama-3-8b").all() and frame["layers"].eq(0).all()


def test_mode_defaults_to_graph(tmp_path: Path):
    frame = read_iterations(write(tmp_path, "kind,chunks,decodes,median_s\nprefill,64,,0.001\n"))
    assert frame["mode"].tolist() == ["graph"]


def test_missing_columns_are_named(tmp_path: Path):
    path = write(tmp_path, "kind,chunks,decodes\nprefill,64,,\n")
    with pytest.raises(InputError, match="missing column.*median_s") as err:
        read_iterations(path)
    assert err.value.source == str(path)


@pytest.mark.parametrize("bad_row, where", [
    ("decode,graph,,4x100,4,0", "line 3"),
    ("decode,graph,,4x100,4,fast", "line 3"),
    ("prefill,graph,12x@3,,1,0.01", "line 3"),
    ("decode,graph,,8x,8,0.01", "line 3"),
    ("decode,graph,,0x100,0,0.01", "line 3"),
])
def test_malformed_rows_are_reported_with_their_line(tmp_path: Path, bad_row: str, where: str):
    path = write(tmp_path, "kind,mode,chunks,decodes,num_sampled,median_s\nprefill,graph,64,,1,0.01\n"
                           f"{bad_row}\n")
    with pytest.raises(InputError) as err:
        read_iterations(path)
    assert err.value.source == str(path) and err.value.where == where


def test_an_unreadable_file_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="cannot read measured iterations"):
        read_iterations(tmp_path / "missing.csv")


def test_blank_num_sampled_means_unknown_and_a_bad_one_is_an_input_error(tmp_path: Path):
    frame = read_iterations(write(tmp_path, "kind,chunks,decodes,num_sampled,median_s\nprefill,64,,,0.01\n"))
    assert frame["shape"][0].prefill_chunks[0].samples  # unknown: a whole prompt samples its first token
    with pytest.raises(InputError) as err:
        read_iterations(write(tmp_path, "kind,chunks,decodes,num_sampled,median_s\nprefill,64,,x,0.01\n"))
    assert err.value.where == "line 2"


def test_an_empty_iteration_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError):
        read_iterations(write(tmp_path, "kind,chunks,decodes,median_s\nprefill,,,0.01\n"))


def test_error_statistics():
    stats = ErrorStats.of(np.array([-0.2, -0.1, 0.0, 0.1, 0.3]))
    assert stats.points == 5
    assert stats.median_abs == pytest.approx(0.1) and stats.max_abs == pytest.approx(0.3)
    assert stats.mean == pytest.approx(0.02)
    assert stats.as_dict()["points"] == 5


def test_error_table_groups_by_kind_and_mode():
    frame = pd.DataFrame({"kind": ["decode", "decode", "prefill"], "mode": ["graph", "graph", "eager"],
                          "median_s": [1.0, 2.0, 4.0]})
    table = error_table(frame, np.array([1.1, 1.8, 4.0]))
    rows = {(r["kind"], r["mode"]): r for r in table.to_dict("records")}
    assert rows[("decode", "graph")]["points"] == 2
    assert rows[("decode", "graph")]["median_abs"] == pytest.approx(0.1)
    assert rows[("prefill", "eager")]["max_abs"] == 0.0
    assert rows[("all", "all")]["points"] == 3
