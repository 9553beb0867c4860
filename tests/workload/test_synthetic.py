"""Synthetic workloads: determinism, the statistics of each process and distribution, prefixes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.workload import Trace, WorkloadSpec
from llmsim.workload.conversations import SharedPrefixSpec, block_hashes, build_conversations

BASE = {"arrival": {"process": "poisson", "rate": 6.0},
        "prompt_tokens": {"dist": "lognormal", "median": 700, "sigma": 0.8, "min": 16, "max": 1536},
        "output_tokens": {"dist": "fixed", "value": 128},
        "num_requests": 2000}


def generate(seed: int = 0, **changes) -> Trace:
    """The BASE workload with top-level keys replaced (None removes one), generated with ``seed``."""
    d = {key: value for key, value in {**BASE, **changes}.items() if value is not None}
    return WorkloadSpec.from_dict(d).generate(np.random.default_rng(seed))


def gaps(trace: Trace) -> np.ndarray:
    """Inter-arrival times (s)."""
    return np.diff(trace.arrival_s)


def test_same_seed_gives_identical_arrays_and_no_global_random_state_is_used():
    before = np.random.get_state()[1].copy()
    a, b = generate(7), generate(7)
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    for name in ("arrival_s", "prompt_tokens", "output_tokens"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = generate(8)
    assert not np.array_equal(a.arrival_s, c.arrival_s)
    assert not np.array_equal(a.prompt_tokens, c.prompt_tokens)


def test_first_arrival_is_zero_and_source_is_synthetic():
    trace = generate()
    assert trace.arrival_s[0] == 0.0 and trace.source == "synthetic" and len(trace) == 2000
    assert trace.prefix_block_hashes is None


def test_poisson_mean_rate_within_sampling_error():
    n, rate = 20_000, 6.0
    trace = generate(num_requests=n)
    mean_gap = gaps(trace).mean()
    assert abs(mean_gap - 1 / rate) < 4 * (1 / rate) / np.sqrt(n - 1)
    cv = gaps(trace).std() / mean_gap
    assert cv == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_gamma_mean_rate_and_cv_within_tolerance(cv):
    trace = generate(num_requests=50_000, arrival={"process": "gamma", "rate": 4.0, "cv": cv})
    assert gaps(trace).mean() == pytest.approx(0.25, rel=0.03)
    assert gaps(trace).std() / gaps(trace).mean() == pytest.approx(cv, rel=0.06)


def test_constant_and_burst_processes():
    constant = generate(num_requests=5, arrival={"process": "constant", "rate": 4.0})
    np.testing.assert_allclose(constant.arrival_s, [0, 0.25, 0.5, 0.75, 1.0])
    burst = generate(num_requests=5, arrival={"process": "burst"})
    assert burst.arrival_s.tolist() == [0.0] * 5


def test_duration_bounds_arrivals_and_gives_about_rate_times_duration():
    trace = generate(3, num_requests=None, duration_s=1000.0)
    assert trace.arrival_s.max() < 1000.0
    assert len(trace) == pytest.approx(6000, abs=4 * np.sqrt(6000))


def test_lognormal_median_within_tolerance_and_clipping_respected():
    trace = generate(num_requests=40_000)
    assert np.median(trace.prompt_tokens) == pytest.approx(700, rel=0.03)
    assert trace.prompt_tokens.min() >= 16 and trace.prompt_tokens.max() <= 1536
    assert trace.prompt_tokens.max() == 1536  # the cap is reached at sigma 0.8
    assert set(trace.output_tokens.tolist()) == {128}


@settings(max_examples=40, deadline=None, database=None)
@given(dist=st.sampled_from(["uniform", "normal", "lognormal", "zipf"]),
       low=st.integers(1, 500), span=st.integers(0, 2000), seed=st.integers(0, 2 ** 32))
def test_every_distribution_respects_min_and_max(dist, low, span, seed):
    high = low + span
    params = {"uniform": {}, "normal": {"mean": low + span / 2, "std": span + 10},
              "lognormal": {"median": low + span / 2, "sigma": 2.0}, "zipf": {"a": 1.2}}[dist]
    prompt = {"dist": dist, "min": low, "max": high, **params}
    trace = generate(seed, num_requests=500, prompt_tokens=prompt)
    assert trace.prompt_tokens.min() >= low and trace.prompt_tokens.max() <= high


def test_uniform_normal_and_zipf_statistics():
    uniform = generate(num_requests=20_000, prompt_tokens={"dist": "uniform", "min": 10, "max": 20})
    assert set(uniform.prompt_tokens.tolist()) == set(range(10, 21))
    normal = generate(num_requests=20_000, prompt_tokens={"dist": "normal", "mean": 500, "std": 50})
    assert normal.prompt_tokens.mean() == pytest.approx(500, rel=0.01)
    zipf = generate(num_requests=50_000, prompt_tokens={"dist": "zipf", "a": 1.5, "min": 1, "max": 100})
    counts = np.bincount(zipf.prompt_tokens)
    assert counts[1] / counts[2] == pytest.approx(2 ** 1.5, rel=0.1)


def lengths_file(write) -> str:
    """A length-statistics CSV whose rows are (k * 100, k) for k = 1..9."""
    rows = "".join(f"{k * 100},{k},{k * 101},100\n" for k in range(1, 10))
    return str(write("lengths.csv", "num_prefill_tokens,num_decode_tokens,num_total_tokens,"
                                    "pd_ratio\n" + rows))


def test_lengths_file_and_same_file_dists_sample_rows_jointly(write):
    path = lengths_file(write)
    joint = generate(1, lengths_file=path, prompt_tokens=None, output_tokens=None)
    np.testing.assert_array_equal(joint.prompt_tokens, joint.output_tokens * 100)
    both = generate(1, prompt_tokens={"dist": "file", "path": path},
                    output_tokens={"dist": "file", "path": path, "column": "output"})
    np.testing.assert_array_equal(both.prompt_tokens, both.output_tokens * 100)
    other = write("copy.csv", open(path).read())
    apart = generate(1, prompt_tokens={"dist": "file", "path": path},
                     output_tokens={"dist": "file", "path": str(other)})
    assert not np.array_equal(apart.prompt_tokens, apart.output_tokens * 100)
    assert set(apart.output_tokens.tolist()) <= set(range(1, 10))


def test_shared_prefix_hashes_are_identical_for_the_same_system_prompt():
    trace = generate(num_requests=400, shared_prefix={"tokens": 512, "num_prefixes": 4,
                                                      "block_tokens": 16})
    assert trace.prefix_block_tokens == 16
    assert np.all(trace.prompt_tokens >= 512 + 16)  # system prompt added in front of min 16
    heads = {tuple(h[:32].tolist()) for h in trace.prefix_block_hashes}
    assert len(heads) == 4  # 4 system prompts of 512 / 16 = 32 blocks
    tails = np.concatenate([h[32:] for h in trace.prefix_block_hashes])
    assert len(np.unique(tails)) == len(tails)  # single turn: nothing else is shared
    assert all(len(h) == -(-p // 16) for h, p in zip(trace.prefix_block_hashes, trace.prompt_tokens))


def test_multi_turn_prompts_grow_by_the_history_and_share_its_hashes():
    trace = generate(num_requests=4, multi_turn={"turns": 4, "think_time_s": 5.0, "block_tokens": 8},
                     prompt_tokens={"dist": "uniform", "min": 5, "max": 50},
                     output_tokens={"dist": "uniform", "min": 1, "max": 40})
    prompt, output, hashes = trace.prompt_tokens, trace.output_tokens, trace.prefix_block_hashes
    assert np.all(np.diff(trace.arrival_s) > 0)
    for k in range(1, 4):
        assert prompt[k] > prompt[k - 1] + output[k - 1]
        full = prompt[k - 1] // 8
        np.testing.assert_array_equal(hashes[k][:full], hashes[k - 1][:full])


def test_multi_turn_request_count_and_rate_of_conversations():
    trace = generate(num_requests=999, multi_turn={"turns": 3, "think_time_s": 1.0})
    assert len(trace) == 999 and trace.prefix_block_tokens == 16


@settings(max_examples=60, deadline=None, database=None)
@given(prompts=st.lists(st.integers(1, 300), min_size=1, max_size=30),
       system=st.integers(1, 100), k=st.integers(1, 3), block=st.integers(1, 32),
       turns=st.integers(1, 4), seed=st.integers(0, 1000))
def test_equal_hash_means_equal_prefix(prompts, system, k, block, turns, seed):
    rng = np.random.default_rng(seed)
    c = len(prompts)
    user = rng.integers(1, 300, size=c * turns)
    out = rng.integers(1, 50, size=c * turns)
    shared = SharedPrefixSpec(system, k, block)
    conv = build_conversations(rng, np.arange(c, dtype=float), user, out, turns, 1.0, shared)
    hashes = block_hashes(conv.prompt_tokens, conv.conversation, conv.prefix_choice, shared, block)
    first_seen = {}
    for i, ids in enumerate(hashes):
        assert len(ids) == -(-conv.prompt_tokens[i] // block)
        for j, h in enumerate(ids.tolist()):
            prefix = tuple(ids[:j + 1].tolist())
            assert first_seen.setdefault(h, prefix) == prefix  # same id => same whole prefix


def test_clip_prompt_and_clip_output_apply_to_synthetic_workloads():
    trace = generate(num_requests=300, clip_prompt=100, clip_output=50,
                     shared_prefix={"tokens": 64, "block_tokens": 16})
    assert trace.prompt_tokens.max() == 100 and trace.output_tokens.max() == 50
    assert all(len(h) <= 7 for h in trace.prefix_block_hashes)


def test_a_million_requests_generate_in_about_a_second():
    spec = WorkloadSpec.from_dict({**BASE, "num_requests": 1_000_000})
    start = time.perf_counter()
    trace = spec.generate(np.random.default_rng(0))
    assert time.perf_counter() - start < 2.0 and len(trace) == 1_000_000
