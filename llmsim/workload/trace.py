"""The :class:`Trace`: the requests a simulation replays, as parallel arrays sorted by arrival.

A trace is an immutable value: its arrays are private read-only copies, and every transformation
(:meth:`Trace.select`, the options of :func:`llmsim.workload.load_trace`) returns a new trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


def _frozen(values: object, dtype: type, name: str) -> np.ndarray:
    """A read-only 1-D copy of ``values`` as ``dtype``; ``ValueError`` naming ``name`` otherwise."""
    array = np.array(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"Trace.{name} must be 1-D, got shape {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Trace:
    """Requests to replay, sorted by arrival. The three arrays have equal length n.

    Attributes:
        arrival_s: float64 seconds, non-decreasing; 0.0 is the first request of the file (a window
            ``[start, end)`` shifts it so that ``start`` is 0.0).
        prompt_tokens: int64 prompt length in tokens, every value >= 1.
        output_tokens: int64 generated tokens, every value >= 1 (the first token counts).
        prefix_block_hashes: per request, the int64 ids of its prompt's blocks in order; block i covers
            prompt tokens ``[i*B, min((i+1)*B, prompt))`` with ``B = prefix_block_tokens``. Equal ids
            mean identical content of the whole prefix up to and including that block. A request may
            list fewer blocks than its prompt has (only that prefix is known), never more.
        prefix_block_tokens: B, tokens per hashed block (Mooncake traces: 512); set iff hashes are.
        source: the file it came from, or ``"synthetic"``.
        notes: human-readable remarks from loading (rows skipped, values clamped or clipped).

    Invariants (checked in ``__post_init__``, ``ValueError`` naming the field otherwise): equal lengths,
    finite non-decreasing arrivals, token counts >= 1, one hash array per request.
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    prefix_block_hashes: tuple[np.ndarray, ...] | None = None
    prefix_block_tokens: int | None = None
    source: str = ""
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        """Store read-only copies with the declared dtypes and check the invariants."""
        arrival = _frozen(self.arrival_s, np.float64, "arrival_s")
        prompt = _frozen(self.prompt_tokens, np.int64, "prompt_tokens")
        output = _frozen(self.output_tokens, np.int64, "output_tokens")
        object.__setattr__(self, "arrival_s", arrival)
        object.__setattr__(self, "prompt_tokens", prompt)
        object.__setattr__(self, "output_tokens", output)
        object.__setattr__(self, "notes", tuple(self.notes))
        self._check_arrays(arrival, prompt, output)
        self._check_hashes(len(arrival))

    @staticmethod
    def _check_arrays(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> None:
        """Raise ``ValueError`` unless lengths match, arrivals are sorted and finite, tokens >= 1."""
        if not len(arrival) == len(prompt) == len(output):
            raise ValueError(f"Trace arrays differ in length: arrival_s {len(arrival)}, "
                             f"prompt_tokens {len(prompt)}, output_tokens {len(output)}")
        if not np.isfinite(arrival).all():
            raise ValueError("Trace.arrival_s must be finite")
        if len(arrival) > 1 and np.any(np.diff(arrival) < 0):
            raise ValueError("Trace.arrival_s must be non-decreasing")
        for name, tokens in (("prompt_tokens", prompt), ("output_tokens", output)):
            if len(tokens) and tokens.min() < 1:
                raise ValueError(f"Trace.{name} must be >= 1, found {tokens.min()}")

    def _check_hashes(self, n: int) -> None:
        """Raise ``ValueError`` unless hashes (if any) are one per request with a block size."""
        hashes = self.prefix_block_hashes
        if hashes is None:
            if self.prefix_block_tokens is not None:
                raise ValueError("Trace.prefix_block_tokens is set but prefix_block_hashes is None")
            return
        object.__setattr__(self, "prefix_block_hashes", tuple(hashes))
        if len(self.prefix_block_hashes) != n:
            raise ValueError(f"Trace.prefix_block_hashes has {len(hashes)} entries for {n} requests")
        if not isinstance(self.prefix_block_tokens, int) or self.prefix_block_tokens < 1:
            raise ValueError("Trace.prefix_block_tokens must be a positive int when hashes are given, "
                             f"got {self.prefix_block_tokens!r}")

    def __len__(self) -> int:
        """Number of requests."""
        return len(self.arrival_s)

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last arrival (0.0 for fewer than two requests)."""
        return float(self.arrival_s[-1] - self.arrival_s[0]) if len(self) > 1 else 0.0

    def select(self, idx: object) -> "Trace":
        """The requests at ``idx`` (a slice, an int index array or a boolean mask), hashes kept.

        Arrival times are kept as they are (not shifted). The result must still be sorted by arrival,
        so index arrays must be ascending (``ValueError`` otherwise); notes are kept.
        """
        if isinstance(idx, slice):
            positions: object = idx
            hashes = None if self.prefix_block_hashes is None else self.prefix_block_hashes[idx]
        else:
            positions = np.asarray(idx)
            if positions.dtype == bool:
                positions = np.flatnonzero(positions)
            positions = positions.astype(np.int64, copy=False)
            hashes = None if self.prefix_block_hashes is None else tuple(
                self.prefix_block_hashes[i] for i in positions.tolist())
        return replace(self, arrival_s=self.arrival_s[positions],
                       prompt_tokens=self.prompt_tokens[positions],
                       output_tokens=self.output_tokens[positions], prefix_block_hashes=hashes)

    def with_note(self, note: str) -> "Trace":
        """A copy with ``note`` appended to :attr:`notes`."""
        return replace(self, notes=self.notes + (note,))
