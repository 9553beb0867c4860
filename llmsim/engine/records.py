"""Records a run produces: one row per iteration, and the inter-token gaps of every request (compressed).

Both live in growable numpy buffers (appending a fast-forwarded span of k iterations is one copy).
"""

from __future__ import annotations

import numpy as np

ITERATION_COLUMNS = ("replica", "start_s", "end_s", "prefill_tokens", "prefill_chunks", "decode_seqs",
                     "decode_ctx_sum", "kv_blocks_used", "prefill_attn_pairs", "prefill_kv_tokens", "sampled",
                     "draft_s", "spec_seqs", "spec_tokens")


class _Rows:
    """A growable 2-D float64 table (capacity doubles), so appending rows costs 8 bytes per value."""

    def __init__(self, width: int) -> None:
        self.data = np.empty((1024, width))
        self.size = 0

    def extend(self, block: np.ndarray) -> None:
        """Append the rows of ``block`` (shape (n, width))."""
        n = block.shape[0]
        if self.size + n > self.data.shape[0]:
            grown = np.empty((max(2 * self.data.shape[0], self.size + n), self.data.shape[1]))
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size: self.size + n] = block
        self.size += n

    def view(self) -> np.ndarray:
        """The rows written so far."""
        return self.data[: self.size]


class IterationLog:
    """Per-iteration rows: which replica, when, what it computed and how full its KV cache was.

    The feature columns (``prefill_tokens`` .. ``sampled``) are what the target model computed, as priced. In
    a speculative-decoding iteration the ``spec_seqs`` decoding sequences appear there as verification chunks
    (``prefill_*`` columns, ``decode_seqs`` = 0); ``draft_s`` is the part of ``end_s - start_s`` spent in draft
    steps and ``spec_tokens`` the output tokens the round produced (see ``llmsim.engine.speculative``).

    Rows are appended in the order replicas finish planning them; the consumer sorts by (replica, start).
    """

    def __init__(self) -> None:
        self._rows = _Rows(len(ITERATION_COLUMNS))

    @property
    def count(self) -> int:
        """Iterations recorded."""
        return self._rows.size

    def add_row(self, *values: float) -> None:
        """Append one iteration; values in :data:`ITERATION_COLUMNS` order."""
        self._rows.extend(np.array(values, dtype=np.float64).reshape(1, -1))

    def append(self, **columns: np.ndarray | float | int) -> None:
        """Append one or more rows; array arguments must share a length, scalars are broadcast."""
        n = max((np.size(v) for v in columns.values()), default=1)
        block = np.empty((n, len(ITERATION_COLUMNS)))
        for i, name in enumerate(ITERATION_COLUMNS):
            block[:, i] = columns[name]
        self._rows.extend(block)

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as float64 columns."""
        table = self._rows.view()
        return {name: table[:, i].copy() for i, name in enumerate(ITERATION_COLUMNS)}


class GapRecorder:
    """Inter-token latencies (ITL), stored exactly as (gap seconds, count) pairs.

    Requests that decode in the same iteration mostly see the same gap, so pairs are merged by exact value
    whenever the buffer fills (:data:`COMPACT_AT` pairs): memory stays bounded by the number of distinct gaps,
    not of tokens. Merging only sums integer counts, so percentiles are exact and do not depend on when it ran.
    """

    COMPACT_AT = 1 << 22

    def __init__(self) -> None:
        self._values = np.empty(1 << 16)
        self._counts = np.empty(1 << 16, dtype=np.int64)
        self._size = 0

    def add(self, gaps: np.ndarray, weights: np.ndarray | int = 1) -> None:
        """Record ``gaps`` (seconds), each seen ``weights`` times."""
        gaps = np.atleast_1d(np.asarray(gaps, dtype=np.float64))
        n = gaps.size
        if not n:
            return
        if self._size + n > self._values.size:
            self._grow(n)
        self._values[self._size: self._size + n] = gaps
        self._counts[self._size: self._size + n] = weights
        self._size += n

    def _grow(self, n: int) -> None:
        if self._size >= self.COMPACT_AT:
            values, counts = merge_pairs(self._values[: self._size], self._counts[: self._size])
            self._size = values.size
            self._values[: self._size], self._counts[: self._size] = values, counts
        if self._size + n > self._values.size:
            capacity = max(2 * self._values.size, self._size + n)
            self._values = np.concatenate([self._values[: self._size], np.empty(capacity - self._size)])
            self._counts = np.concatenate([self._counts[: self._size], np.empty(capacity - self._size, np.int64)])

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(gaps, counts) recorded so far (possibly already merged in part)."""
        return self._values[: self._size].copy(), self._counts[: self._size].copy()


def merge_pairs(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge (value, count) pairs by exact value: sorted unique values and their total counts (int64)."""
    if values.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(values, return_inverse=True)
    total = np.zeros(uniq.size, dtype=np.int64)
    np.add.at(total, inverse, counts)
    return uniq, total
