"""Valid inputs for every loader (the starting points of the mutations) and a CLI runner helper."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import Phase, settings
import yaml
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]

#: A scenario with every section written out (chunked policy, two replicas), small enough to run in ~0.1 s.
FULL_SCENARIO: dict = {
    "name": "fuzz",
    "description": "every section of a scenario",
    "model": "llama-3-8b",
    "model_overrides": {"max_context_tokens": 8192},
    "hardware": "h100-sxm",
    "parallelism": {"tp": 1, "pp": 1},
    "precision": {"weights": "bf16", "kv": "bf16"},
    "replicas": 2,
    "router": "least_outstanding",
    "scheduler": {"policy": "chunked", "max_num_seqs": 64, "max_batched_tokens": 4096, "chunk_size": 512,
                  "block_size": 16, "gpu_memory_utilization": 0.9, "prefix_caching": False, "num_kv_blocks": None},
    "workload": {"arrival": {"process": "poisson", "rate": 5.0},
                 "prompt_tokens": {"dist": "lognormal", "median": 300, "sigma": 0.5, "min": 8, "max": 2000},
                 "output_tokens": {"dist": "uniform", "min": 4, "max": 64},
                 "num_requests": 20, "seed": 3},
    "slo": {"ttft_s": 0.5, "tpot_s": 0.05, "percentile": 99},
    "engine": {"profile": "cuda-graphs", "calibration": "default", "fast_forward": True},
    "disaggregated": {"prefill": {"instances": 1, "hardware": None, "tp": None, "max_batched_tokens": None},
                      "decode": {"instances": 1, "hardware": None, "tp": None, "max_num_seqs": None},
                      "link": {"kind": "infiniband", "bandwidth_bytes_per_s": 50e9, "latency_s": 5e-6},
                      "stream_layers": False},
}

#: Disaggregated prefill/decode on two GPU types.
DISAGG_SCENARIO: dict = {
    "name": "fuzz-disagg",
    "model": "llama-3-8b",
    "hardware": "h100-sxm",
    "scheduler": {"policy": "disaggregated", "max_num_seqs": 64, "max_batched_tokens": 4096},
    "disaggregated": {"prefill": {"instances": 1, "hardware": "h100-sxm", "tp": 1, "max_batched_tokens": 4096},
                      "decode": {"instances": 2, "hardware": "a100-80g-sxm", "tp": 1, "max_num_seqs": 32},
                      "link": {"kind": "infiniband", "bandwidth_bytes_per_s": 50e9, "latency_s": 5e-6},
                      "stream_layers": True},
    "workload": {"arrival": {"process": "gamma", "rate": 8.0, "cv": 2.0},
                 "prompt_tokens": {"dist": "fixed", "value": 200},
                 "output_tokens": {"dist": "normal", "mean": 40, "std": 10, "min": 1, "max": 100},
                 "num_requests": 20},
    "engine": {"calibration": "datasheet"},
}

#: Replay of the shipped sample trace, referenced by a path relative to the scenario file.
REPLAY_SCENARIO: dict = {
    "name": "fuzz-replay",
    "model": "llama-3-8b",
    "hardware": "h100-sxm",
    "scheduler": {"policy": "continuous", "max_num_seqs": 32},
    "workload": {"trace": "chat_300.csv", "limit": 20, "clip_prompt": 4000, "seed": 1},
    "engine": {"calibration": "default"},
}

#: Speculative decoding with a self-drafting head and per-request acceptance rates.
SPECULATIVE_SCENARIO: dict = {
    "name": "fuzz-speculative",
    "model": "llama-3-8b",
    "hardware": "h100-sxm",
    "scheduler": {"policy": "continuous", "max_num_seqs": 32},
    "speculative": {"method": "eagle", "num_speculative_tokens": 3,
                    "acceptance": {"dist": "beta", "mean": 0.7, "concentration": 10}, "draft_cost_fraction": 0.1},
    "workload": {"arrival": {"process": "constant", "rate": 10.0},
                 "prompt_tokens": {"dist": "uniform", "min": 16, "max": 512},
                 "output_tokens": {"dist": "fixed", "value": 24}, "num_requests": 20},
    "engine": {"calibration": "default"},
}

SCENARIOS = {"full": FULL_SCENARIO, "disagg": DISAGG_SCENARIO, "replay": REPLAY_SCENARIO,
             "speculative": SPECULATIVE_SCENARIO}


def write_scenario_dir(folder: Path) -> Path:
    """Put the sample trace in ``folder`` (the replay scenario reads it) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "workloads" / "chat_300.csv", folder / "chat_300.csv")
    return folder


def dump(data: dict) -> str:
    """YAML text of a mapping, as a user would write it."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


@pytest.fixture(scope="session")
def runner() -> CliRunner:
    return CliRunner()


def invoke(runner: CliRunner, *args):
    """Run ``llmsim ARGS`` in-process; returns the click Result (stdout and stderr kept apart)."""
    from llmsim.cli import app
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_failure(result) -> str:
    """Exit code 2, exactly one line on stderr starting ``llmsim: error:``, no traceback; returns the line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"uncaught {type(result.exception).__name__}: {result.exception}"
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmsim: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


# ``pytest --hypothesis-profile=generate-only`` skips the @example regressions and spends the time on new cases.
settings.register_profile("generate-only", phases=[Phase.generate, Phase.shrink])
