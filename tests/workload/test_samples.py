"""The sample workloads shipped in workloads/: present, small, documented, reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmsim.workload import load_trace, save_trace
from llmsim.workload._make_samples import CHAT_300, chat_300, fit_lognormal, refit

from .conftest import SHARED, shared_trace

WORKLOADS = Path(__file__).resolve().parents[2] / "workloads"


def test_chat_300_loads_with_the_documented_statistics():
    path = WORKLOADS / "chat_300.csv"
    assert path.stat().st_size < 50_000
    trace = load_trace(path)
    assert len(trace) == 300 and trace.arrival_s[0] == 0.0 and trace.notes == ()
    assert (len(trace) - 1) / trace.duration_s == pytest.approx(5.0, rel=0.25)
    assert np.median(trace.prompt_tokens) == pytest.approx(1020, rel=0.2)
    assert np.median(trace.output_tokens) == pytest.approx(129, rel=0.25)
    assert trace.output_tokens.max() <= 1000 and trace.prompt_tokens.min() >= 2


def test_chat_300_is_what_the_generating_script_writes(tmp_path):
    # Exact bytes: fails if the script, its seed or numpy's Generator streams change.
    written = save_trace(chat_300(), tmp_path / "chat_300.csv")
    assert written.read_bytes() == (WORKLOADS / "chat_300.csv").read_bytes()


def test_readme_describes_every_shipped_file():
    readme = (WORKLOADS / "README.md").read_text()
    for path in WORKLOADS.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme


def test_fit_recovers_lognormal_parameters():
    sample = np.random.default_rng(0).lognormal(np.log(300), 0.7, size=200_000)
    median, sigma = fit_lognormal(sample)
    assert median == pytest.approx(300, rel=0.01) and sigma == pytest.approx(0.7, rel=0.01)


def test_documented_fit_matches_the_azure_conversation_trace():
    shared_trace("azure_llm_2023/AzureLLMInferenceTrace_conv.csv")
    text = refit(SHARED)
    prompt, output = CHAT_300["prompt_tokens"], CHAT_300["output_tokens"]
    assert f"prompt: median {prompt['median']:.0f}, sigma {prompt['sigma']:.4f}" in text
    assert f"output: median {output['median']:.0f}, sigma {output['sigma']:.4f}" in text
