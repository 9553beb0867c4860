"""Records a run produces: one row per iteration, and the inter-token gaps of every request (compressed).

Both grow in chunks of numpy arrays (appending a fast-forwarded span of k iterations is one append).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ITERATION_COLUMNS = ("replica", "start_s", "end_s", "prefill_tokens", "prefill_chunks", "decode_seqs",
                     "decode_ctx_sum", "kv_blocks_used", "prefill_attn_pairs", "prefill_kv_tokens", "sampled",
                     "draft_s", "spec_seqs", "spec_tokens")


@dataclass
class IterationLog:
    """Per-iteration rows: which replica, when, what it computed and how full its KV cache was.

    The feature columns (``prefill_tokens`` .. ``sampled``) are what the target model computed, as priced. In
    a speculative-decoding iteration the ``spec_seqs`` decoding sequences appear there as verification chunks
    (``prefill_*`` columns, ``decode_seqs`` = 0); ``draft_s`` is the part of ``end_s - start_s`` spent in draft
    steps and ``spec_tokens`` the output tokens the round produced (see ``llmsim.engine.speculative``).

    Single iterations are kept as rows of Python scalars and fast-forwarded spans as column arrays; the
    consumer sorts by (replica, start), so the two stores need not interleave.
    """

    rows: list[tuple] = field(default_factory=list)
    chunks: dict[str, list[np.ndarray]] = field(default_factory=lambda: {c: [] for c in ITERATION_COLUMNS})
    count: int = 0

    def add_row(self, *values: float) -> None:
        """Append one iteration; values in :data:`ITERATION_COLUMNS` order."""
        self.rows.append(values)
        self.count += 1

    def append(self, **columns: np.ndarray | float | int) -> None:
        """Append one or more rows; array arguments must share a length, scalars are broadcast."""
        n = max((np.size(v) for v in columns.values()), default=1)
        for name in ITERATION_COLUMNS:
            value = np.asarray(columns[name], dtype=np.float64)
            self.chunks[name].append(np.broadcast_to(value, (n,)) if value.ndim == 0 else value)
        self.count += n

    def columns(self) -> dict[str, np.ndarray]:
        """All rows as float64 columns (single rows first, then spans)."""
        table = np.array(self.rows, dtype=np.float64).reshape(-1, len(ITERATION_COLUMNS))
        return {name: np.concatenate([table[:, i], *self.chunks[name]])
                for i, name in enumerate(ITERATION_COLUMNS)}


@dataclass
class GapRecorder:
    """Inter-token latencies (ITL), stored exactly as (gap seconds, count) pairs.

    Requests that decode in the same fast-forwarded iteration see the same gap, so a span of k iterations
    of B sequences costs B + k pairs instead of B x k values. Percentiles are exact weighted percentiles.
    """

    values: list[np.ndarray] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)

    def add(self, gaps: np.ndarray, weights: np.ndarray | int = 1) -> None:
        """Record ``gaps`` (seconds), each seen ``weights`` times."""
        gaps = np.atleast_1d(np.asarray(gaps, dtype=np.float64))
        if gaps.size:
            self.values.append(gaps)
            self.weights.append(np.broadcast_to(np.asarray(weights, dtype=np.int64), gaps.shape))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(gaps, counts), concatenated."""
        if not self.values:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(self.values), np.concatenate(self.weights)
