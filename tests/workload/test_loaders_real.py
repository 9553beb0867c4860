"""Every loader on the real sample traces in ../shared/traces (skipped when they are absent).

Expected counts and means are those stated in ../shared/traces/README.md.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from llmsim.errors import InputError
from llmsim.workload import load_trace
from llmsim.workload.loader import detect_format, load_lengths

from .conftest import shared_trace

AZURE_CONV = "azure_llm_2023/AzureLLMInferenceTrace_conv.csv"
AZURE_CODE = "azure_llm_2023/AzureLLMInferenceTrace_code.csv"
MOONCAKE_CONV = "mooncake/conversation_trace.jsonl"
SHAREGPT = "sharegpt_lengths/sharegpt_8k_filtered_stats_llama2_tokenizer.csv"

# (file, format, rows, mean prompt, mean output, span in s or None) from the README
TRACES = [
    (AZURE_CONV, "azure", 19_366, 1155, 211, 3502),
    (AZURE_CODE, "azure", 8_819, 2048, 27.9, 3436),
    (MOONCAKE_CONV, "mooncake", 12_031, 12_035, 343, None),
    ("mooncake/synthetic_trace.jsonl", "mooncake", 3_993, 15_325, 149, None),
    ("vidur_processed/splitwise_conv.csv", "vidur", 19_366, 1155, 211, 3502),
    ("vidur_processed/splitwise_code.csv", "vidur", 8_819, 2048, 27.9, 3436),
]
LENGTHS = [
    (SHAREGPT, 30_731, 2340, 439),
    ("sharegpt_lengths/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", 28_257, 2588, 291),
]


@pytest.mark.parametrize("relative, fmt, rows, prompt_mean, output_mean, span_s", TRACES)
def test_real_trace_matches_readme(relative, fmt, rows, prompt_mean, output_mean, span_s):
    path = shared_trace(relative)
    assert detect_format(path) == fmt
    trace = load_trace(path)
    assert len(trace) == rows
    assert trace.arrival_s[0] == 0.0 and np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.prompt_tokens.mean() == pytest.approx(prompt_mean, rel=0.005)
    assert trace.output_tokens.mean() == pytest.approx(output_mean, rel=0.005)
    if span_s is not None:
        assert trace.duration_s == pytest.approx(span_s, abs=1)
    assert trace.source == str(path) and trace.notes == ()


@pytest.mark.parametrize("relative, rows, prompt_mean, output_mean", LENGTHS)
def test_real_length_statistics_load_as_lengths_only(relative, rows, prompt_mean, output_mean):
    path = shared_trace(relative)
    prompt, output = load_lengths(path)
    assert len(prompt) == rows
    assert prompt.mean() == pytest.approx(prompt_mean, rel=0.005)
    assert output.mean() == pytest.approx(output_mean, rel=0.005)
    with pytest.raises(InputError, match="lengths_file"):
        load_trace(path)


def test_azure_wall_clock_and_vidur_reexpression_agree():
    azure = load_trace(shared_trace(AZURE_CONV))
    vidur = load_trace(shared_trace("vidur_processed/splitwise_conv.csv"))
    np.testing.assert_allclose(azure.arrival_s, vidur.arrival_s, atol=1e-6)
    np.testing.assert_array_equal(azure.prompt_tokens, vidur.prompt_tokens)
    # 18:15:46.6805900 -> 18:15:50.9951690: the 7th fractional digit is kept
    assert azure.arrival_s[1] == pytest.approx(4.314579, abs=1e-9)


def test_mooncake_hashes_cover_512_token_blocks_and_share_prefixes():
    trace = load_trace(shared_trace(MOONCAKE_CONV))
    assert trace.prefix_block_tokens == 512
    counts = np.array([len(h) for h in trace.prefix_block_hashes])
    np.testing.assert_array_equal(counts, -(-trace.prompt_tokens // 512))
    assert trace.prefix_block_hashes[0][0] == trace.prefix_block_hashes[1][0]


@pytest.mark.parametrize("relative", [AZURE_CONV, AZURE_CODE, MOONCAKE_CONV])
def test_real_traces_load_well_under_a_second(relative):
    path = shared_trace(relative)
    load_trace(path)  # warm the file cache and imports
    start = time.perf_counter()
    load_trace(path)
    assert time.perf_counter() - start < 0.5


def test_options_on_a_real_trace():
    path = shared_trace(AZURE_CONV)
    full = load_trace(path)
    window = load_trace(path, window_s=(600, 1200))
    inside = (full.arrival_s >= 600) & (full.arrival_s < 1200)
    assert len(window) == inside.sum() and window.arrival_s.min() >= 0
    np.testing.assert_allclose(window.arrival_s, full.arrival_s[inside] - 600)
    limited = load_trace(path, limit=100, rate_scale=2.0, clip_prompt=512, clip_output=64)
    assert len(limited) == 100
    np.testing.assert_allclose(limited.arrival_s, full.arrival_s[:100] / 2)
    assert limited.prompt_tokens.max() <= 512 and limited.output_tokens.max() <= 64
    assert any("clip_prompt" in note for note in limited.notes)


def test_clip_prompt_cuts_mooncake_hashes_to_the_blocks_left():
    trace = load_trace(shared_trace(MOONCAKE_CONV), limit=200, clip_prompt=1000)
    assert all(len(h) == -(-p // 512) for h, p in zip(trace.prefix_block_hashes, trace.prompt_tokens))
    assert trace.prompt_tokens.max() == 1000
