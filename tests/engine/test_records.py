"""The run records stay exact while bounded: sealed iteration blocks, merged gaps, chunked re-pricing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmsim
from llmsim import api
from llmsim.costmodel.batch import BatchFeatures
from llmsim.costmodel.roofline import time_by_operator
from llmsim.engine.records import ITERATION_COLUMNS, GapRecorder, IterationLog, merge_pairs, narrow_column
from llmsim.engine.requests import RequestTable
from llmsim.engine.simulation import RawResult
from llmsim.metrics import INTEGER_ITERATION_COLUMNS, iterations_frame

WIDTH = len(ITERATION_COLUMNS)


def small_log() -> IterationLog:
    """A log whose blocks seal every 8 rows."""
    return IterationLog(block_rows=8)


def random_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows mixing small counts, big integers, fractions and values that must not be narrowed."""
    rows = rng.integers(0, 300, (n, WIDTH)).astype(np.float64)
    rows[:, 1] = np.cumsum(rng.exponential(0.01, n))
    rows[:, 2] = rows[:, 1] + 0.005
    rows[::7, 8] = 3e9 + rng.integers(0, 10, rows[::7, 8].shape)
    rows[::11, 9] = -0.0
    rows[::13, 11] = np.nan
    rows[::17, 3] = np.inf
    return rows


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and np.array_equal(a.view(np.int64), b.view(np.int64))


def test_narrow_column_is_lossless_and_narrow():
    assert narrow_column(np.array([0.0, 3.0, 100.0])).dtype == np.int8
    assert narrow_column(np.array([-1.0, 40000.0])).dtype == np.int32
    for values in ([0.5, 1.0], [-0.0, 1.0], [np.nan, 1.0], [np.inf], [3e9, 1.0], [2.0 ** 62]):
        values = np.array(values)
        narrowed = narrow_column(values)
        assert narrowed.dtype == np.float64 and same_bits(narrowed, values)
    assert narrow_column(np.zeros(0)).size == 0


def span_rows(replica: int, start: float, ends: list[float], seqs: int, ctx: int, kv: int,
              taken: list[int]) -> np.ndarray:
    """The rows a decode span stands for, written out one by one from append_decodes' documented meaning."""
    rows = np.zeros((len(ends), WIDTH))
    for j, end in enumerate(ends):
        rows[j, [0, 1, 2, 5, 6, 7, 10]] = (replica, start if j == 0 else ends[j - 1], end, seqs, ctx + j * seqs,
                                           kv + taken[j], seqs)
    return rows


def test_iteration_log_gives_back_every_value_bit_for_bit_grouped_by_replica_across_blocks():
    """Single rows and decode spans of three replicas, interleaved, some crossing block seals: read back grouped
    by replica (lowest first), each replica's rows in append order, every value bit for bit."""
    rng = np.random.default_rng(0)
    singles = random_rows(rng, 120)
    log = small_log()
    appended: list[np.ndarray] = []
    for i in range(120):
        replica = int(rng.integers(0, 3))
        if rng.random() < 0.6:
            row = singles[i].copy()
            row[0] = replica
            log.add_row(*row.tolist())
            appended.append(row[None, :])
        else:
            n = int(rng.integers(1, 20))
            ends = np.cumsum(rng.random(n)).tolist()
            seqs, ctx, kv = int(rng.integers(1, 300)), int(rng.integers(0, 10 ** 6)), int(rng.integers(0, 500))
            taken = np.cumsum(rng.integers(0, 3, n)).tolist()
            taken[0] = 0
            start = float(rng.random())
            log.append_decodes(replica, start, ends, seqs, ctx, kv, taken)
            appended.append(span_rows(replica, start, ends, seqs, ctx, kv, taken))
    log.append_decodes(1, 0.0, [], 5, 0, 0, [])  # an empty span adds nothing
    rows = np.concatenate(appended)
    assert log.count == rows.shape[0]
    expected = rows[np.argsort(rows[:, 0], kind="stable")]
    columns = log.columns()
    for i, name in enumerate(ITERATION_COLUMNS):
        assert same_bits(columns[name], expected[:, i]), name
    assert log.nbytes() < expected.nbytes


def test_iterations_frame_matches_a_stable_sort_of_the_whole_log():
    rng = np.random.default_rng(1)
    rows = random_rows(rng, 200)
    rows[:, 0] = rng.integers(0, 3, 200)
    rows[:, 1] = rng.integers(0, 20, 200) * 0.25  # ties in (replica, start) keep append order
    rows[:, 11] = 0.0
    log = small_log()
    for row in rows:
        log.add_row(*row.tolist())
    no_requests = RequestTable(np.zeros(0), np.zeros(0), np.zeros(0)).columns()  # (the iteration frame does not read them)
    frame = iterations_frame(RawResult(table=no_requests, iterations=log, gaps=GapRecorder()))
    expected = pd.DataFrame(rows, columns=list(ITERATION_COLUMNS))
    for name in INTEGER_ITERATION_COLUMNS:
        expected[name] = expected[name].astype(np.int64)
    expected = expected.sort_values(["replica", "start_s"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def test_gap_recorder_merges_exactly_whatever_the_buffer_size(monkeypatch):
    rng = np.random.default_rng(2)
    batches = [(np.round(rng.exponential(0.01, n), 4), rng.integers(1, 5, n)) for n in rng.integers(1, 50, 60)]
    batches.append((np.round(rng.exponential(0.01, 300), 4), 3))  # more pairs than the buffer holds
    values = np.concatenate([np.atleast_1d(g) for g, _ in batches])
    counts = np.concatenate([np.broadcast_to(c, g.shape) for g, c in batches])
    expected = merge_pairs(values, counts)
    for pending in (16, 64, 1 << 20):
        monkeypatch.setattr(GapRecorder, "PENDING", pending)
        rec = GapRecorder()
        for gaps, weights in batches:
            rec.add(gaps, weights)
        gaps, totals = rec.merged()
        assert same_bits(gaps, expected[0]) and np.array_equal(totals, expected[1]) and totals.dtype == np.int64
        assert not gaps.flags.writeable
        copies = rec.arrays()
        assert copies[0].flags.writeable and np.array_equal(copies[1], expected[1])


def test_merge_pairs_of_merged_pairs_is_the_identity():
    values, counts = merge_pairs(np.array([0.3, 0.1, 0.3, 0.2]), np.array([1, 2, 3, 4]))
    assert values.tolist() == [0.1, 0.2, 0.3] and counts.tolist() == [2, 4, 4]
    again = merge_pairs(values, counts)
    assert again[0].tolist() == values.tolist() and again[1].tolist() == counts.tolist()
    assert merge_pairs(np.array([0.0, -0.0]), np.array([1, 1]))[1].tolist() == [2]


def direct_operator_time(iterations: pd.DataFrame, pools: dict) -> dict[str, float]:
    """The operator breakdown priced in one call over all rows of each pool (what the chunked one must equal)."""
    total: dict[str, float] = {}
    for cost, _, replicas in pools.values():
        it = iterations[iterations["replica"].isin(replicas)]
        features = BatchFeatures.from_arrays(**{f: it[c] for f, c in api.FEATURE_COLUMNS.items()})
        for name, seconds in time_by_operator(cost.price(features)).items():
            total[name] = total.get(name, 0.0) + seconds
        if float(it["draft_s"].sum()) > 0:
            total["speculative_draft"] = total.get("speculative_draft", 0.0) + float(it["draft_s"].sum())
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


@pytest.mark.parametrize("name", ["quickstart", "disaggregated", "speculative-chat"])
def test_operator_time_priced_in_chunks_equals_one_call(name, monkeypatch):
    monkeypatch.setattr(api, "PRICE_ROWS", 200)
    result = llmsim.run(name, ["workload.num_requests=60"])
    sc = result.scenario
    _, pools = api.build_simulation(sc, sc.workload.generate(sc.rngs(1)[0]))
    assert len(result.iterations) > 1000
    chunked, direct = result.summary["time_by_operator_s"], direct_operator_time(result.iterations, pools)
    assert chunked.keys() == direct.keys()
    for op, seconds in direct.items():  # the same terms, added in another order
        assert chunked[op] == pytest.approx(seconds, rel=1e-12, abs=1e-15)


def test_operator_time_weights_repeated_iterations(monkeypatch):
    """Prefill-only iterations are priced once per distinct row and weighted: a log holding every iteration three
    times (and some prompt lengths many more, as a trace's do) costs three times as much, per operator."""
    monkeypatch.setattr(api, "PRICE_ROWS", 7)
    result = llmsim.run("quickstart", ["workload.num_requests=60"])
    sc = result.scenario
    _, pools = api.build_simulation(sc, sc.workload.generate(sc.rngs(1)[0]))
    it = result.iterations
    assert (it["decode_seqs"] == 0).sum() > 20  # prefill-only rows to weight
    once = api.operator_time(it, pools)
    thrice = api.operator_time(pd.concat([it, it.iloc[::-1], it], ignore_index=True), pools)
    assert once.keys() == thrice.keys()
    for op, seconds in once.items():
        assert thrice[op] == pytest.approx(3 * seconds, rel=1e-12, abs=1e-15), op


def test_add_one_is_add_of_one_gap(monkeypatch):
    """The scalar fast path records exactly what ``add`` records, including when it fills the buffer."""
    monkeypatch.setattr(GapRecorder, "PENDING", 4)
    one, many = GapRecorder(), GapRecorder()
    rng = np.random.default_rng(5)
    for _ in range(50):
        gap, weight = float(rng.choice([0.01, 0.02, rng.random()])), int(rng.integers(1, 100))
        one.add_one(gap, weight)
        many.add(np.array([gap]), weight)
    assert [a.tolist() for a in one.merged()] == [a.tolist() for a in many.merged()]


def test_add_many_is_add_of_a_list(monkeypatch):
    """The list fast path records exactly what ``add`` records, including lists that overflow the buffer."""
    monkeypatch.setattr(GapRecorder, "PENDING", 8)
    fast, general = GapRecorder(), GapRecorder()
    rng = np.random.default_rng(6)
    for _ in range(60):
        gaps = [float(rng.choice([0.01, 0.02, rng.random()])) for _ in range(int(rng.integers(1, 12)))]
        weight = int(rng.integers(1, 100))
        fast.add_many(gaps, weight)
        general.add(np.array(gaps), weight)
    assert [a.tolist() for a in fast.merged()] == [a.tolist() for a in general.merged()]


def test_request_table_hands_its_lists_over_as_arrays_and_empties_them():
    table = RequestTable(np.array([0.0, 0.5, 1.0]), np.array([10, 20, 30]), np.array([5, 6, 7]))
    table.generated[1] = 4
    table.first_token_s[2] = 1.25
    table.reset_for_recompute(1)
    table.reject_reason[0] = "too long"
    columns = table.close()
    assert columns.prefill_target.tolist() == [10, 24, 30] and columns.prefill_target.dtype == np.int64
    assert columns.preemptions.tolist() == [0, 1, 0] and columns.status.dtype == np.int8
    assert np.isnan(columns.first_token_s[:2]).all() and columns.first_token_s[2] == 1.25
    assert columns.reject_reason == {0: "too long"} and len(columns) == 3
    assert table.prompt == [] and table.generated == [] and table.first_token_s == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10 ** 6)),
                          st.text(alphabet=st.sampled_from('ab ,;"\'x\u00e9'), max_size=6),
                          st.integers(-2 ** 40, 2 ** 40)), min_size=1, max_size=30))
def test_write_csv_gives_pandas_the_same_values_back(tmp_path_factory, rows):
    """The run tables' CSV writer (Arrow's): floats round-trip bit for bit (NaN as an empty field, -0.0 and
    infinities kept), text with commas and quotes comes back as written, integers stay integers."""
    frame = pd.DataFrame({"x": [float(r[0]) for r in rows], "text": [r[1] for r in rows],
                          "n": np.array([r[2] for r in rows], dtype=np.int64)})
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    api.write_csv(frame, path)
    back = pd.read_csv(path, keep_default_na=False, na_values={"x": [""]}, dtype={"x": np.float64, "text": str})
    x, y = frame["x"].to_numpy(), back["x"].to_numpy()
    assert np.array_equal(np.isnan(x), np.isnan(y)) and same_bits(x[~np.isnan(x)], y[~np.isnan(y)])
    assert back["text"].tolist() == frame["text"].tolist()
    assert back["n"].dtype == np.int64 and back["n"].tolist() == frame["n"].tolist()
