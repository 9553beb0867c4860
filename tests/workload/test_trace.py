"""The Trace value object: invariants, immutability, selection, CSV round trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmsim.workload import Trace, load_trace, save_trace


def small_trace(hashes: bool = False) -> Trace:
    """Four requests; with hashes in 4-token blocks when asked."""
    ids = (np.array([1, 2]), np.array([1, 3]), np.array([4]), np.array([1, 2, 5])) if hashes else None
    return Trace(np.array([0.0, 0.5, 0.5, 2.0]), np.array([8, 7, 3, 9]), np.array([1, 2, 3, 4]),
                 ids, 4 if hashes else None, "test")


def test_arrays_are_read_only_copies_with_declared_dtypes():
    arrival = [0.0, 1.0]
    trace = Trace(arrival, [3, 4], [5, 6])
    assert trace.arrival_s.dtype == np.float64 and trace.prompt_tokens.dtype == np.int64
    assert len(trace) == 2 and trace.duration_s == 1.0 and trace.notes == ()
    with pytest.raises(ValueError):
        trace.prompt_tokens[0] = 9


@pytest.mark.parametrize("kwargs, field", [
    (dict(arrival_s=[0.0, 1.0], prompt_tokens=[1], output_tokens=[1, 1]), "length"),
    (dict(arrival_s=[1.0, 0.0], prompt_tokens=[1, 1], output_tokens=[1, 1]), "non-decreasing"),
    (dict(arrival_s=[0.0, np.inf], prompt_tokens=[1, 1], output_tokens=[1, 1]), "finite"),
    (dict(arrival_s=[0.0], prompt_tokens=[0], output_tokens=[1]), "prompt_tokens"),
    (dict(arrival_s=[0.0], prompt_tokens=[1], output_tokens=[0]), "output_tokens"),
    (dict(arrival_s=[0.0], prompt_tokens=[1], output_tokens=[1], prefix_block_hashes=()), "entries"),
    (dict(arrival_s=[0.0], prompt_tokens=[1], output_tokens=[1],
          prefix_block_hashes=(np.array([1]),)), "prefix_block_tokens"),
    (dict(arrival_s=[0.0], prompt_tokens=[1], output_tokens=[1], prefix_block_tokens=16),
     "prefix_block_tokens"),
])
def test_invalid_trace_raises_value_error_naming_the_problem(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Trace(**kwargs)


def test_select_by_slice_array_and_mask_keeps_hashes():
    trace = small_trace(hashes=True)
    by_slice = trace.select(slice(1, 3))
    by_index = trace.select(np.array([1, 2]))
    by_mask = trace.select(np.array([False, True, True, False]))
    for sub in (by_slice, by_index, by_mask):
        assert sub.prompt_tokens.tolist() == [7, 3]
        assert [h.tolist() for h in sub.prefix_block_hashes] == [[1, 3], [4]]
        assert sub.prefix_block_tokens == 4 and sub.source == "test"


def test_select_out_of_order_is_rejected():
    with pytest.raises(ValueError, match="non-decreasing"):
        small_trace().select(np.array([3, 0]))


def test_save_and_load_round_trip_with_hashes(tmp_path):
    trace = small_trace(hashes=True)
    loaded = load_trace(save_trace(trace, tmp_path / "t.csv"))
    np.testing.assert_array_equal(loaded.arrival_s, trace.arrival_s)
    np.testing.assert_array_equal(loaded.prompt_tokens, trace.prompt_tokens)
    np.testing.assert_array_equal(loaded.output_tokens, trace.output_tokens)
    assert loaded.prefix_block_tokens == 4
    assert [h.tolist() for h in loaded.prefix_block_hashes] == [[1, 2], [1, 3], [4], [1, 2, 5]]


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.tuples(st.floats(0, 1e4), st.integers(1, 10 ** 6), st.integers(1, 10 ** 5)),
                min_size=1, max_size=50))
def test_round_trip_of_random_traces(tmp_path_factory, rows):
    gaps, prompt, output = map(np.array, zip(*rows))
    arrival = np.round(np.cumsum(gaps) - gaps[0], 6)
    trace = Trace(arrival, prompt, output)
    loaded = load_trace(save_trace(trace, tmp_path_factory.mktemp("rt") / "t.csv"))
    np.testing.assert_allclose(loaded.arrival_s, arrival - arrival[0], atol=2e-6)
    np.testing.assert_array_equal(loaded.prompt_tokens, prompt)
    np.testing.assert_array_equal(loaded.output_tokens, output)
