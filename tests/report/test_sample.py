"""Downsampling: bounded CDFs that stay exact where they sample, and time-binned aggregates that match numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.report.sample import (binned_mean_max, binned_quantiles, cdf_points, rate_per_s, time_edges,
                                  weighted_cdf_points)


def test_small_cdf_keeps_every_value():
    x, f = cdf_points([3.0, 1.0, np.nan, 2.0])
    assert x.tolist() == [1.0, 2.0, 3.0]
    assert f.tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_large_cdf_is_bounded_and_exact_where_it_samples():
    values = np.random.default_rng(0).lognormal(size=1_000_000)
    x, f = cdf_points(values, max_points=2000)
    assert len(x) <= 2000
    assert x[0] == values.min() and x[-1] == values.max() and f[-1] == 1.0
    assert np.all(np.diff(x) >= 0) and np.all(np.diff(f) > 0)
    ranks = np.searchsorted(np.sort(values), x, side="right")  # exact ECDF at the kept points
    assert np.allclose(f, ranks / values.size)
    assert (f > 0.999).sum() >= 50  # the tail keeps detail (p99.9 and beyond)


def test_empty_cdf_is_empty():
    x, f = cdf_points([np.nan])
    assert x.size == 0 and f.size == 0


def test_weighted_cdf_equals_the_cdf_of_the_expanded_values():
    gaps, counts = np.array([0.03, 0.01, 0.02]), np.array([1, 5, 4])
    x, f = weighted_cdf_points(gaps, counts)
    assert x.tolist() == [0.01, 0.02, 0.03]
    assert f.tolist() == pytest.approx([0.5, 0.9, 1.0])


def test_large_weighted_cdf_is_bounded():
    rng = np.random.default_rng(1)
    x, f = weighted_cdf_points(rng.random(100_000), rng.integers(1, 9, 100_000), max_points=1000)
    assert len(x) <= 1000 and f[-1] == 1.0 and np.all(np.diff(x) >= 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(-1e3, 1e3)), min_size=1, max_size=200),
       st.integers(1, 12), st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))
def test_binned_quantiles_match_numpy_per_bin(pairs, n_bins, q):
    x, y = np.array(pairs).T
    edges = time_edges(100.0, n_bins)
    got = binned_quantiles(x, y, edges, [q])[0]
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, n_bins - 1)
    for b in range(n_bins):
        members = y[index == b]
        if members.size:
            assert got[b] == pytest.approx(np.percentile(members, q * 100), rel=1e-9, abs=1e-9)
        else:
            assert np.isnan(got[b])


def test_binned_mean_is_time_weighted_and_max_is_per_bin():
    start = np.array([0.0, 0.5, 1.5, 2.5])
    size = np.array([10.0, 2.0, 4.0, 8.0])
    duration = np.array([0.1, 0.3, 1.0, 1.0])
    mean, peak = binned_mean_max(start, size, duration, time_edges(3.0, 3))
    assert mean[0] == pytest.approx((10 * 0.1 + 2 * 0.3) / 0.4)
    assert peak.tolist() == [10.0, 4.0, 8.0]


def test_binned_mean_of_an_empty_bin_is_nan():
    mean, peak = binned_mean_max([0.1], [5.0], [0.1], time_edges(2.0, 2))
    assert mean[0] == 5.0 and np.isnan(mean[1]) and np.isnan(peak[1])


def test_rate_per_s_divides_counts_by_bin_width():
    assert rate_per_s([0.1, 0.2, 1.5, np.nan], time_edges(2.0, 2)).tolist() == [2.0, 1.0]


def test_time_edges_of_a_zero_span_are_one_second_wide():
    assert time_edges(0.0, 4)[-1] == 1.0
