"""Malformed files are rejected with an InputError naming the file, the line and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim.errors import InputError
from llmsim.workload import TRACE_FORMATS, load_trace
from llmsim.workload.loader import detect_format

LLMSIM = "arrival_s,prompt_tokens,output_tokens\n"
GOOD = "0.0,100,10\n0.5,200,20\n"


def error_of(path, **kwargs) -> InputError:
    """The InputError load_trace raises for ``path``."""
    with pytest.raises(InputError) as info:
        load_trace(path, **kwargs)
    assert info.value.source == str(path)
    return info.value


@pytest.mark.parametrize("bad_row, expected", [
    ("1.0,abc,10", "bad value in column 'prompt_tokens'"),
    ("1.0,100", "missing value for column 'output_tokens'"),
    ("1.0,,10", "missing value for column 'prompt_tokens'"),
    ("1.0,-5,10", "token count >= 1"),
    ("1.0,0,10", "token count >= 1"),
    ("1.0,100,-1", "token count >= 0"),
    ("1.0,12.5,10", "whole number"),
    ("-1.0,100,10", "time >= 0"),
    ("inf,100,10", "finite"),
    ("1.0,100,10,7", "expected 3 fields"),
    ("0.1,100,10", "goes back"),
    ("1.0,1e30,10", "below"),
])
def test_bad_llmsim_row_is_reported_at_its_line(write, bad_row, expected):
    path = write("t.csv", LLMSIM + GOOD + "0.9,1,1\n" + bad_row + "\n1.5,1,1\n")
    error = error_of(path)
    assert error.where == "line 5", str(error)
    assert expected in str(error)


def test_extra_field_on_the_first_data_row_is_reported(write):
    assert error_of(write("t.csv", LLMSIM + "0,1,1,1\n" + GOOD)).where == "line 2"


def test_blank_lines_are_skipped_and_line_numbers_stay_physical(write):
    path = write("t.csv", LLMSIM + "\n0.0,1,1\n  \n,,\n\n0.5,x,1\n")
    assert error_of(path).where == "line 7"
    trace = load_trace(write("ok.csv", LLMSIM + "\n0.0,1,1\n\n0.5,2,2\n\n\n"))
    assert trace.prompt_tokens.tolist() == [1, 2]


@pytest.mark.parametrize("text, expected", [
    ("", "file is empty"),
    ("\n0,1,1\n", "line 1 is blank"),
    (LLMSIM, "no requests"),
    (LLMSIM + "\n\n", "no requests"),
])
def test_empty_files_are_rejected(write, text, expected):
    assert expected in str(error_of(write("t.csv", text)))


def test_wrong_header_names_the_expected_columns(write):
    path = write("t.csv", "arrival_s,prompt_token,output_tokens\n0,1,1\n")
    error = error_of(path, fmt="llmsim")
    assert error.where == "line 1"
    assert "arrival_s,prompt_tokens,output_tokens" in str(error)
    assert "did you mean 'prompt_token'" in str(error)
    assert "cannot tell the trace format" in str(error_of(path))


def test_missing_file_directory_and_unknown_format(tmp_path, write):
    assert "file not found" in str(error_of(tmp_path / "nope.csv"))
    assert "directory" in str(error_of(tmp_path))
    assert "did you mean 'azure'" in str(error_of(write("t.csv", LLMSIM + GOOD), fmt="azur"))


def test_binary_file_is_rejected(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    assert "UTF-8" in str(error_of(path))


def test_zero_outputs_are_counted_as_one_token_with_a_note(write):
    trace = load_trace(write("t.csv", LLMSIM + "0,5,0\n1,5,3\n"))
    assert trace.output_tokens.tolist() == [1, 3]
    assert "1 requests with output_tokens = 0 counted as 1 token" in trace.notes[0]


def test_tiny_steps_back_are_sorted_with_a_note_larger_ones_rejected(write):
    trace = load_trace(write("t.csv", LLMSIM + "0,1,1\n1.0005,2,2\n1.0,3,3\n"))
    assert trace.prompt_tokens.tolist() == [1, 3, 2]
    assert any("sorted" in note for note in trace.notes)
    assert error_of(write("u.csv", LLMSIM + "0,1,1\n1.01,2,2\n1.0,3,3\n")).where == "line 4"


def test_first_arrival_is_shifted_to_zero(write):
    trace = load_trace(write("t.csv", LLMSIM + "100.0,1,1\n100.25,2,2\n"))
    assert trace.arrival_s.tolist() == [0.0, 0.25]


def test_prefix_hash_column_is_parsed_and_checked(write):
    header = "arrival_s,prompt_tokens,output_tokens,prefix_hashes_4\n"
    trace = load_trace(write("t.csv", header + "0,8,1,1 2\n1,5,1,\n"))
    assert [h.tolist() for h in trace.prefix_block_hashes] == [[1, 2], []]
    assert trace.prefix_block_tokens == 4
    assert error_of(write("u.csv", header + "0,8,1,1 x\n")).where == "line 2"
    too_many = error_of(write("v.csv", header + "0,8,1,1 2\n1,4,1,1 2\n"))
    assert too_many.where == "line 3" and "at most" in str(too_many)
    assert load_trace(write("w.csv", "arrival_s,prompt_tokens,output_tokens,prefix_hashes\n"
                                     "0,600,1,7 8\n")).prefix_block_tokens == 512


AZURE = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def test_azure_timestamps_parse_with_any_precision(write):
    path = write("a.csv", AZURE + "2023-11-16 18:15:46.6805900,374,44\n"
                                  "2023-11-16 18:15:47,396,109\n"
                                  "2023-11-16 18:15:47.000000123,1,1\n")
    assert detect_format(path) == "azure"
    np.testing.assert_allclose(load_trace(path).arrival_s, [0.0, 0.31941, 0.319410123], atol=1e-9)


def test_azure_bad_timestamp_and_order(write):
    bad = error_of(write("a.csv", AZURE + "2023-11-16 18:15:46.68,1,1\nyesterday,1,1\n"))
    assert bad.where == "line 3" and "2023-11-16 18:15:46.6805900" in str(bad)
    back = error_of(write("b.csv", AZURE + "2023-11-16 18:15:46,1,1\n2023-11-16 18:15:40,1,1\n"))
    assert back.where == "line 3" and "goes back" in str(back)


BURST = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def test_burstgpt_skips_failed_requests_and_counts_them(write):
    path = write("b.csv", BURST + "5,ChatGPT,472,18,490,Conversation log\n"
                                  "7,GPT-4,1000,0,1000,API log\n"
                                  "9,ChatGPT,10,0,10,API log\n"
                                  "12,GPT-4,300,40,340,API log\n")
    assert detect_format(path) == "burstgpt"
    trace = load_trace(path)
    assert trace.arrival_s.tolist() == [0.0, 7.0]
    assert trace.prompt_tokens.tolist() == [472, 300]
    assert trace.notes == ("skipped 2 failed requests (Response tokens = 0)",)
    assert error_of(write("c.csv", BURST + "5,ChatGPT,472,x,490,API log\n")).where == "line 2"


def test_vidur_and_lengths_formats(write):
    vidur = write("v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,10,2\n0.1,20,3\n")
    assert detect_format(vidur) == "vidur" and len(load_trace(vidur)) == 2
    lengths = write("l.csv", "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n"
                             "10,2,12,5.0\n")
    assert detect_format(lengths) == "lengths"
    assert "no arrival times" in str(error_of(lengths))


MOON = '{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [0, 1]}\n'


@pytest.mark.parametrize("bad_line, expected", [
    ('{"timestamp": 10, "input_length": 600', "not valid JSON"),
    ('[1, 2, 3]', "JSON object"),
    ('{"timestamp": 10, "input_len": 600, "output_length": 5}', "found similar key 'input_len'"),
    ('{"timestamp": 10, "input_length": "600", "output_length": 5}', "expected a number"),
    ('{"timestamp": 10, "input_length": 600, "output_length": 5, "hash_ids": [1, "a"]}', "hash_ids"),
    ('{"timestamp": 10, "input_length": 600, "output_length": 5, "hash_ids": [1, 2, 3]}', "at most"),
    ('{"timestamp": 10, "input_length": 0, "output_length": 5}', "token count >= 1"),
    ('{"timestamp": -10, "input_length": 1, "output_length": 5}', "got -10; expected a finite time"),
    ('{"timestamp": 1, "input_length": 1, "output_length": 5}', "goes back 99 ms"),
    ('{"timestamp": true, "input_length": 1, "output_length": 5}', "expected a number"),
])
def test_bad_mooncake_line_is_reported_at_its_line(write, bad_line, expected):
    later = MOON.replace('"timestamp": 0', '"timestamp": 100')
    path = write("m.jsonl", MOON + "\n" + later + bad_line + "\n" + later)
    error = error_of(path, fmt="mooncake")
    assert error.where == "line 4", str(error)
    assert expected in str(error)


def test_mooncake_timestamps_are_milliseconds_and_blank_lines_skipped(write):
    path = write("m.jsonl", MOON + "\n" + MOON.replace('"timestamp": 0', '"timestamp": 1500'))
    trace = load_trace(path)
    assert trace.arrival_s.tolist() == [0.0, 1.5]
    assert [h.tolist() for h in trace.prefix_block_hashes] == [[0, 1], [0, 1]]


@pytest.mark.parametrize("options, where", [
    (dict(limit=0), "limit"),
    (dict(limit=2.5), "limit"),
    (dict(window_s=(5, 5)), "window_s"),
    (dict(window_s=(-1, 5)), "window_s[0]"),
    (dict(window_s=(100, 200)), None),
    (dict(rate_scale=0), "rate_scale"),
    (dict(clip_prompt=0), "clip_prompt"),
    (dict(clip_output=True), "clip_output"),
])
def test_bad_options_are_input_errors(write, options, where):
    path = write("t.csv", LLMSIM + GOOD)
    with pytest.raises(InputError) as info:
        load_trace(path, **options)
    assert info.value.where == where


def test_option_order_window_then_limit_then_rate(write):
    rows = "".join(f"{t},{t + 1},1\n" for t in range(10))
    trace = load_trace(write("t.csv", LLMSIM + rows), window_s=(2, 8), limit=3, rate_scale=2.0)
    assert trace.arrival_s.tolist() == [0.0, 0.5, 1.0]
    assert trace.prompt_tokens.tolist() == [3, 4, 5]
    open_ended = load_trace(write("u.csv", LLMSIM + rows), window_s=(7, None))
    assert open_ended.prompt_tokens.tolist() == [8, 9, 10]


def test_limit_reads_on_past_blank_and_skipped_rows(write):
    path = write("b.csv", BURST + "1,m,5,0,5,l\n\n2,m,5,0,5,l\n3,m,6,1,7,l\n4,m,7,1,8,l\n")
    assert load_trace(path, limit=2).prompt_tokens.tolist() == [6, 7]


def test_every_format_is_registered():
    assert set(TRACE_FORMATS) == {"llmsim", "azure", "mooncake", "burstgpt", "vidur", "lengths"}
