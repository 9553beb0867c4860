"""Records a run produces: one row per iteration, and the inter-token gaps of every request (compressed).

Both stay bounded in memory on long runs: each replica's iterations are written into a row block that is stored
losslessly in narrower columns once full (no buffer doubling), and gaps are merged by exact value as they come.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ITERATION_COLUMNS = ("replica", "start_s", "end_s", "prefill_tokens", "prefill_chunks", "decode_seqs",
                     "decode_ctx_sum", "kv_blocks_used", "prefill_attn_pairs", "prefill_kv_tokens", "sampled",
                     "draft_s", "spec_seqs", "spec_tokens")

_HEAD = 6  # values in a decode span's header (see _OpenRows)
_REPLICA, _START, _END, _DECODE_SEQS, _DECODE_CTX, _KV_USED, _SAMPLED = (
    ITERATION_COLUMNS.index(name) for name in ("replica", "start_s", "end_s", "decode_seqs", "decode_ctx_sum",
                                               "kv_blocks_used", "sampled"))

#: Integer dtypes a sealed column may be narrowed to, smallest first.
_NARROW = (np.int8, np.int16, np.int32)


def narrow_column(values: np.ndarray) -> np.ndarray:
    """A copy of ``values`` (float64) in the smallest integer dtype that gives them back bit for bit, else float64.

    Only integral values within int32 range narrow; -0.0, NaN and infinities keep float64, so widening the
    result back to float64 is exact.
    """
    with np.errstate(invalid="ignore"):  # NaN and infinities cast to garbage, caught by the comparison
        ints = values.astype(np.int64)
    if not np.array_equal(ints.astype(np.float64).view(np.int64), values.view(np.int64)):
        return values.copy()
    lo, hi = (int(ints.min()), int(ints.max())) if ints.size else (0, 0)
    for dtype in _NARROW:
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return ints.astype(dtype)
    return values.copy()


class _OpenRows:
    """One replica's rows not yet sealed, kept compactly in Python lists (cheap to append to from compiled code).

    A single iteration is its 14 values; a fast-forwarded decode span is a header (first row, iterations, start
    (s), decoding sequences, context tokens and KV blocks at its start) plus one end time and one count of blocks
    taken per iteration. Every other value of a span's rows is zero, or follows from the header.
    """

    def __init__(self) -> None:
        self.rows = 0  # rows held
        self.single_at: list[int] = []  # row index of each single iteration
        self.single_values: list[float] = []  # their values, 14 per row
        self.span_head: list[float] = []  # 6 values per span (see the class docstring)
        self.span_ends: list[float] = []  # every span iteration's end (s)
        self.span_blocks: list[int] = []  # KV blocks each span iteration's predecessors took since the span began

    def block(self, replica: int) -> np.ndarray:
        """The rows as float64 columns, shape (14, rows)."""
        cols = np.zeros((len(ITERATION_COLUMNS), self.rows))
        m = len(self.single_at)
        if m:
            at = np.fromiter(self.single_at, dtype=np.int64, count=m)
            cols[:, at] = np.fromiter(self.single_values, dtype=np.float64,
                                      count=m * len(ITERATION_COLUMNS)).reshape(m, len(ITERATION_COLUMNS)).T
        k = len(self.span_head) // _HEAD
        if k:
            head = np.fromiter(self.span_head, dtype=np.float64, count=k * _HEAD).reshape(k, _HEAD)
            lengths = head[:, 1].astype(np.int64)
            total = int(lengths.sum())
            first = np.cumsum(lengths) - lengths  # where each span starts in the span lists
            step = np.arange(total) - np.repeat(first, lengths)  # iteration index within its span
            at = np.repeat(head[:, 0].astype(np.int64), lengths) + step
            ends = np.fromiter(self.span_ends, dtype=np.float64, count=total)
            starts = np.empty(total)
            starts[1:] = ends[:-1]
            starts[first] = head[:, 2]
            seqs = np.repeat(head[:, 3].astype(np.int64), lengths)
            cols[_REPLICA, at] = replica
            cols[_START, at] = starts
            cols[_END, at] = ends
            cols[_DECODE_SEQS, at] = seqs
            cols[_SAMPLED, at] = seqs
            cols[_DECODE_CTX, at] = np.repeat(head[:, 4].astype(np.int64), lengths) + seqs * step
            cols[_KV_USED, at] = (np.repeat(head[:, 5].astype(np.int64), lengths)
                                  + np.fromiter(self.span_blocks, dtype=np.int64, count=total))
        return cols


class IterationLog:
    """Per-iteration rows: which replica, when, what it computed and how full its KV cache was.

    The feature columns (``prefill_tokens`` .. ``sampled``) are what the target model computed, as priced. In
    a speculative-decoding iteration the ``spec_seqs`` decoding sequences appear there as verification chunks
    (``prefill_*`` columns, ``decode_seqs`` = 0); ``draft_s`` is the part of ``end_s - start_s`` spent in draft
    steps and ``spec_tokens`` the output tokens the round produced (see ``llmsim.engine.speculative``).

    Rows are kept per replica, in the order that replica appended them (its start order, as a replica runs one
    iteration at a time), and read back grouped by replica, lowest index first. Storage: each replica's newest
    rows sit in an open block (:class:`_OpenRows`, Python lists: appending from compiled code costs a fraction
    of a numpy row write, and a decode span costs no object per value); once it holds ``block_rows`` rows it
    is sealed into one array per column, narrowed by :func:`narrow_column` (times keep float64, counts usually
    take 1-4 bytes). Values read back are exactly the float64 values appended (ints are converted when sealed).
    """

    def __init__(self, block_rows: int = 1 << 16) -> None:
        self.block_rows = block_rows
        self._open: dict[int, _OpenRows] = {}  # replica -> its open block
        self._sealed: dict[int, list[tuple[np.ndarray, ...]]] = {}  # replica -> its sealed blocks, oldest first
        self._rows = 0

    @property
    def count(self) -> int:
        """Iterations recorded."""
        return self._rows

    def _open_block(self, replica: int) -> _OpenRows:
        block = self._open.get(replica)
        if block is None:
            block = self._open[replica] = _OpenRows()
        return block

    def add_row(self, *values: float) -> None:
        """Append one iteration; values in :data:`ITERATION_COLUMNS` order (the first is the replica's index)."""
        replica = int(values[0])
        block = self._open_block(replica)
        block.single_at.append(block.rows)
        block.single_values.extend(values)
        block.rows += 1
        self._rows += 1
        if block.rows >= self.block_rows:
            self._seal(replica)

    def append_decodes(self, replica: int, start_s: float, end_s: list[float], decode_seqs: int,
                       decode_ctx_sum: int, kv_blocks_used: int, blocks_taken: list[int]) -> None:
        """Append a fast-forwarded decode span: ``len(end_s)`` iterations of ``decode_seqs`` sequences decoding one
        token each. Iteration j starts at ``end_s[j - 1]`` (the first at ``start_s``), attends over
        ``decode_ctx_sum + j * decode_seqs`` cached tokens and finds ``kv_blocks_used + blocks_taken[j]`` KV blocks
        in use; every other column is zero. The replica's hot path, hence its own method."""
        n = len(end_s)
        if n == 0:
            return
        block = self._open_block(replica)
        block.span_head.extend((block.rows, n, start_s, decode_seqs, decode_ctx_sum, kv_blocks_used))
        block.span_ends.extend(end_s)
        block.span_blocks.extend(blocks_taken)
        block.rows += n
        self._rows += n
        if block.rows >= self.block_rows:
            self._seal(replica)

    def _seal(self, replica: int) -> None:
        """Store ``replica``'s open block as narrowed columns and drop it."""
        cols = self._open.pop(replica).block(replica)
        self._sealed.setdefault(replica, []).append(tuple(narrow_column(cols[i]) for i in range(cols.shape[0])))

    def seal(self) -> None:
        """Seal every open block (reading the log does; appending may go on)."""
        for replica in list(self._open):
            self._seal(replica)

    def column(self, name: str, dtype: Any = np.float64) -> np.ndarray:
        """One column of every row (grouped by replica, lowest first; each replica's rows in append order) as a
        new array of ``dtype`` (float64 gives back the values appended bit for bit)."""
        self.seal()
        i = ITERATION_COLUMNS.index(name)
        pieces = [block[i] for replica in sorted(self._sealed) for block in self._sealed[replica]]
        out = np.empty(self._rows, dtype=dtype)
        at = 0
        for piece in pieces:
            out[at: at + piece.size] = piece
            at += piece.size
        return out

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as float64 columns."""
        return {name: self.column(name) for name in ITERATION_COLUMNS}

    def nbytes(self) -> int:
        """Bytes the log holds (sealed columns, and about 32 per value held in open blocks: a pointer and an object)."""
        open_values = sum(len(b.single_at) + len(b.single_values) + len(b.span_head) + len(b.span_ends)
                          + len(b.span_blocks) for b in self._open.values())
        return 32 * open_values + sum(c.nbytes for blocks in self._sealed.values() for block in blocks for c in block)


class GapRecorder:
    """Inter-token latencies (ITL), stored exactly as (gap seconds, count) pairs.

    Requests that decode in the same iteration mostly see the same gap, so pairs are merged by exact value:
    new pairs go to a buffer of :data:`PENDING` pairs, which, once full, becomes a sorted run of distinct gaps
    and their total counts. Runs are merged pairwise as soon as the newer one is at least half the size of the
    one before (so sizes fall geometrically and each pair is merged O(log n) times, without rewriting one ever
    larger table per flush). Memory stays bounded by about twice the number of distinct gaps (16 bytes each),
    not of tokens. Merging only sums integer counts, so percentiles are exact and do not depend on when it ran.
    """

    PENDING = 1 << 18

    def __init__(self) -> None:
        self._values: list[float] = []  # buffered gaps (s) and their counts, merged once PENDING are buffered
        self._counts: list[int] = []
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []  # sorted distinct gaps (s), their counts

    def add(self, gaps: np.ndarray, weights: np.ndarray | int = 1) -> None:
        """Record ``gaps`` (seconds), each seen ``weights`` times."""
        gaps = np.atleast_1d(np.asarray(gaps, dtype=np.float64))
        n = gaps.size
        if not n:
            return
        counts = np.broadcast_to(np.asarray(weights, dtype=np.int64), (n,))
        if len(self._values) + n > self.PENDING:
            self._flush()
            if n > self.PENDING:
                self._push(*merge_pairs(gaps, counts))
                return
        self._values.extend(gaps.tolist())
        self._counts.extend(counts.tolist())

    def add_one(self, gap: float, weight: int = 1) -> None:
        """Record one gap (seconds) seen ``weight`` times (the common case of :meth:`add`, without array set-up)."""
        if len(self._values) == self.PENDING:
            self._flush()
        self._values.append(gap)
        self._counts.append(weight)

    def add_many(self, gaps: list[float], weight: int) -> None:
        """Record each gap of ``gaps`` (seconds) ``weight`` times (:meth:`add` for a short list, without its array
        set-up)."""
        n = len(gaps)
        if len(self._values) + n > self.PENDING:
            self.add(np.array(gaps), weight)
            return
        self._values.extend(gaps)
        self._counts.extend([weight] * n)

    def _flush(self) -> None:
        """Turn the buffered pairs into a run."""
        n = len(self._values)
        if n:
            self._push(*merge_pairs(np.fromiter(self._values, dtype=np.float64, count=n),
                                    np.fromiter(self._counts, dtype=np.int64, count=n)))
            self._values, self._counts = [], []

    def _push(self, gaps: np.ndarray, counts: np.ndarray) -> None:
        """Add a run (sorted distinct ``gaps``, seen ``counts`` times), merging while the newest is not much the
        smaller of the last two."""
        runs = self._runs
        runs.append((gaps, counts))
        while len(runs) > 1 and runs[-2][0].size <= 2 * runs[-1][0].size:
            self._merge_last_two()

    def _merge_last_two(self) -> None:
        newer, older = self._runs.pop(), self._runs.pop()
        self._runs.append(merge_pairs(np.concatenate((older[0], newer[0])), np.concatenate((older[1], newer[1]))))

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Every gap recorded, merged: sorted distinct gaps (s) and their total counts (int64), read-only."""
        self._flush()
        while len(self._runs) > 1:
            self._merge_last_two()
        if not self._runs:
            self._runs.append((np.zeros(0), np.zeros(0, dtype=np.int64)))
        gaps, totals = self._runs[0][0].view(), self._runs[0][1].view()
        gaps.flags.writeable = totals.flags.writeable = False
        return gaps, totals

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(gaps, counts) recorded so far, as new arrays (merged by exact value)."""
        gaps, totals = self.merged()
        return gaps.copy(), totals.copy()


def merge_pairs(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge (value, count) pairs by exact value: sorted unique values and their total counts (int64).

    Pairs that are already merged (strictly increasing values) come back as they are, without a sort. The sort is
    stable (timsort: near-linear on a concatenation of sorted runs); -0.0 and 0.0 count as one value.
    """
    if values.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    counts = np.broadcast_to(np.asarray(counts, dtype=np.int64), values.shape)
    if np.all(values[1:] > values[:-1]):
        return values, np.array(counts)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.add.reduceat(counts[order], starts)
