"""Records a run produces: one row per iteration, and the inter-token gaps of every request (compressed).

Both stay bounded in memory on long runs: iterations are written into a fixed-size row block that is stored
losslessly in narrower columns once full (no buffer doubling), and gaps are merged by exact value as they come.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ITERATION_COLUMNS = ("replica", "start_s", "end_s", "prefill_tokens", "prefill_chunks", "decode_seqs",
                     "decode_ctx_sum", "kv_blocks_used", "prefill_attn_pairs", "prefill_kv_tokens", "sampled",
                     "draft_s", "spec_seqs", "spec_tokens")

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


class IterationLog:
    """Per-iteration rows: which replica, when, what it computed and how full its KV cache was.

    The feature columns (``prefill_tokens`` .. ``sampled``) are what the target model computed, as priced. In
    a speculative-decoding iteration the ``spec_seqs`` decoding sequences appear there as verification chunks
    (``prefill_*`` columns, ``decode_seqs`` = 0); ``draft_s`` is the part of ``end_s - start_s`` spent in draft
    steps and ``spec_tokens`` the output tokens the round produced (see ``llmsim.engine.speculative``).

    Rows are appended in the order replicas finish planning them; the consumer sorts by (replica, start).
    Storage: the newest rows sit in an open block of up to ``block_rows`` rows, a Python list of their values
    (appending to it from compiled code costs a fraction of a numpy row write); a full block is sealed into one
    float64 array per column, narrowed by :func:`narrow_column` (times keep float64, counts usually take 1-4
    bytes). Values read back are exactly the float64 values appended (ints are converted when sealed).
    """

    def __init__(self, block_rows: int = 1 << 16) -> None:
        self.block_rows = block_rows
        self._open: list[float] = []  # the open block's rows, one after the other (14 values each)
        self._open_limit = block_rows * len(ITERATION_COLUMNS)  # values in a full open block
        self._sealed: list[tuple[np.ndarray, ...]] = []
        self._sealed_rows = 0

    @property
    def count(self) -> int:
        """Iterations recorded."""
        return self._sealed_rows + self._open_count()

    def _open_count(self) -> int:
        """Rows in the open block."""
        return len(self._open) // len(ITERATION_COLUMNS)

    def add_row(self, *values: float) -> None:
        """Append one iteration; values in :data:`ITERATION_COLUMNS` order."""
        self._open.extend(values)
        if len(self._open) == self._open_limit:
            self._seal()

    def append(self, **columns: Any) -> None:
        """Append one or more rows; array or sequence arguments must share a length, scalars are broadcast."""
        n = max((np.size(v) for v in columns.values()), default=1)
        block = np.empty((n, len(ITERATION_COLUMNS)))
        for i, name in enumerate(ITERATION_COLUMNS):
            block[:, i] = columns[name]
        self._extend(block)

    def append_decodes(self, replica: int, start_s: list[float], end_s: list[float], decode_seqs: int,
                       decode_ctx_sum: list[float], kv_blocks_used: list[int]) -> None:
        """Append a fast-forwarded decode span: ``len(end_s)`` iterations of ``decode_seqs`` sequences decoding
        one token each (every other column zero). The replica's hot path, hence its own method."""
        n = len(end_s)
        if self._open_count() + n >= self.block_rows:
            self.append(replica=replica, start_s=start_s, end_s=end_s, prefill_tokens=0.0, prefill_chunks=0,
                        decode_seqs=decode_seqs, decode_ctx_sum=decode_ctx_sum, kv_blocks_used=kv_blocks_used,
                        prefill_attn_pairs=0.0, prefill_kv_tokens=0.0, sampled=decode_seqs, draft_s=0.0,
                        spec_seqs=0, spec_tokens=0)
            return
        rows = self._open
        for j in range(n):
            rows.extend((replica, start_s[j], end_s[j], 0.0, 0.0, decode_seqs, decode_ctx_sum[j], kv_blocks_used[j],
                         0.0, 0.0, decode_seqs, 0.0, 0.0, 0.0))

    def _extend(self, block: np.ndarray) -> None:
        """Copy the rows of ``block`` (shape (n, 14)) in, sealing every block that fills."""
        done = 0
        while done < block.shape[0]:
            take = min(self.block_rows - self._open_count(), block.shape[0] - done)
            self._open.extend(block[done: done + take].ravel().tolist())
            done += take
            if len(self._open) == self._open_limit:
                self._seal()

    def _seal(self) -> None:
        """Store the full row block as narrowed columns and reopen it empty."""
        rows = self._open_rows()
        self._sealed.append(tuple(narrow_column(rows[:, i]) for i in range(rows.shape[1])))
        self._sealed_rows += rows.shape[0]
        self._open = []

    def _open_rows(self) -> np.ndarray:
        """The open block as a float64 array of shape (rows, 14)."""
        # (np.fromiter converts a list of Python floats and ints about twice as fast as np.array, exactly)
        return np.fromiter(self._open, dtype=np.float64, count=len(self._open)).reshape(-1, len(ITERATION_COLUMNS))

    def column(self, name: str) -> np.ndarray:
        """One column of every row recorded, as a new float64 array (in append order)."""
        i = ITERATION_COLUMNS.index(name)
        out = np.empty(self.count)
        at = 0
        for block in self._sealed:
            out[at: at + block[i].size] = block[i]
            at += block[i].size
        out[at:] = self._open[i::len(ITERATION_COLUMNS)]
        return out

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as float64 columns."""
        return {name: self.column(name) for name in ITERATION_COLUMNS}

    def nbytes(self) -> int:
        """Bytes the log holds (sealed columns and the open row block)."""
        return 32 * len(self._open) + sum(  # (open block: a pointer and a float object per value)
            c.nbytes for block in self._sealed for c in block)


class GapRecorder:
    """Inter-token latencies (ITL), stored exactly as (gap seconds, count) pairs.

    Requests that decode in the same iteration mostly see the same gap, so pairs are merged by exact value:
    new pairs go to a buffer of :data:`PENDING` pairs, which, once full, is merged into a sorted table of
    distinct gaps and their total counts. Memory stays bounded by the number of distinct gaps (16 bytes each),
    not of tokens. Merging only sums integer counts, so percentiles are exact and do not depend on when it ran.
    """

    PENDING = 1 << 18

    def __init__(self) -> None:
        self._values: list[float] = []  # buffered gaps (s) and their counts, merged once PENDING are buffered
        self._counts: list[int] = []
        self._gaps = np.zeros(0)
        self._totals = np.zeros(0, dtype=np.int64)

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
                self._merge(*merge_pairs(gaps, counts))
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
        """Merge the buffered pairs into the table of distinct gaps."""
        if self._values:
            self._merge(*merge_pairs(np.array(self._values, dtype=np.float64),
                                     np.array(self._counts, dtype=np.int64)))
            self._values, self._counts = [], []

    def _merge(self, gaps: np.ndarray, counts: np.ndarray) -> None:
        """Add sorted distinct ``gaps`` seen ``counts`` times to the table."""
        at = np.searchsorted(self._gaps, gaps)
        known = at < self._gaps.size
        known[known] = self._gaps[at[known]] == gaps[known]
        self._totals[at[known]] += counts[known]
        new = ~known
        if new.any():
            self._gaps = np.insert(self._gaps, at[new], gaps[new])
            self._totals = np.insert(self._totals, at[new], counts[new])

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Every gap recorded, merged: sorted distinct gaps (s) and their total counts (int64), read-only."""
        self._flush()
        gaps, totals = self._gaps.view(), self._totals.view()
        gaps.flags.writeable = totals.flags.writeable = False
        return gaps, totals

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(gaps, counts) recorded so far, as new arrays (merged by exact value)."""
        gaps, totals = self.merged()
        return gaps.copy(), totals.copy()


def merge_pairs(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge (value, count) pairs by exact value: sorted unique values and their total counts (int64).

    Pairs that are already merged (strictly increasing values) come back as they are, without a sort.
    """
    if values.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    if np.all(values[1:] > values[:-1]):
        return values, np.asarray(counts, dtype=np.int64)
    uniq, inverse = np.unique(values, return_inverse=True)
    total = np.zeros(uniq.size, dtype=np.int64)
    np.add.at(total, inverse, counts)
    return uniq, total
