"""A ``simulate`` fixture: run a scenario over explicit (arrival, prompt, output) rows."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import llmsim

BASE = {"name": "t", "model": "llama-3-8b", "hardware": "h100-sxm",
        "scheduler": {"policy": "continuous", "max_num_seqs": 64, "max_batched_tokens": 4096}}


def deep_update(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def simulate(tmp_path):
    """simulate(rows, **scenario_parts) -> RunResult; rows are (arrival_s, prompt_tokens, output_tokens)."""
    counter = [0]

    def run(rows, overrides=(), **parts):
        counter[0] += 1
        path = tmp_path / f"trace{counter[0]}.csv"
        lines = ["arrival_s,prompt_tokens,output_tokens"] + [f"{a!r},{p},{o}" for a, p, o in rows]
        path.write_text("\n".join(lines) + "\n")
        scenario = deep_update(BASE, {"workload": {"trace": str(path)}, **parts})
        return llmsim.run(scenario, list(overrides))
    return run


def random_rows(rng: np.random.Generator, n: int, rate: float, max_prompt: int, max_output: int):
    """n random requests: Poisson arrivals, uniform lengths (some equal arrival times on purpose)."""
    gaps = rng.exponential(1.0 / rate, n)
    gaps[rng.random(n) < 0.1] = 0.0
    arrivals = np.cumsum(gaps) - gaps[0]
    prompts = rng.integers(1, max_prompt + 1, n)
    outputs = rng.integers(1, max_output + 1, n)
    return [(float(a), int(p), int(o)) for a, p, o in zip(arrivals, prompts, outputs)]
