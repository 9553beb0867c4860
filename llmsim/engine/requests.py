"""Per-request state of a run, held as numpy columns indexed by request id (no per-request objects).

Token accounting for request ``r`` (see ``docs/glossary.md``):

* ``prompt[r]`` prompt tokens, ``output[r]`` tokens to generate (the first one included);
* ``generated[r]`` output tokens produced so far;
* ``kv_len[r]`` tokens whose K/V are in the cache. After a prefill of the prompt, ``kv_len = prompt`` and
  one token has been generated (its K/V is written by the next decode step);
* ``prefill_target[r]`` tokens the current (re)admission must prefill: the prompt, or after a preemption
  by recompute the prompt plus every token generated so far; ``prefilled[r]`` of them are done;
* ``cached[r]`` prompt tokens found in the prefix cache at admission (not recomputed).
"""

from __future__ import annotations

import math

import numpy as np

PENDING, WAITING, RUNNING, FINISHED, REJECTED = 0, 1, 2, 3, 4


class RequestTable:
    """Columns of request state; ``n`` requests with ids ``0..n-1`` in arrival order.

    While a run goes on the columns are Python lists (a replica reads and writes a few entries per request per
    scheduling boundary, and a list entry costs a fraction of a numpy scalar access from compiled code); a
    finished run hands them on as numpy arrays (:meth:`columns`). Times are seconds (NaN: not yet), counts tokens
    or KV blocks.
    """

    def __init__(self, arrival_s: np.ndarray, prompt: np.ndarray, output: np.ndarray) -> None:
        self.arrival_s: np.ndarray = np.asarray(arrival_s, dtype=np.float64)
        n = int(self.arrival_s.shape[0])
        self.prompt: list[int] = np.asarray(prompt, dtype=np.int64).tolist()
        self.output: list[int] = np.asarray(output, dtype=np.int64).tolist()
        self.status: list[int] = [PENDING] * n
        self.replica: list[int] = [-1] * n
        nan = math.nan
        self.first_scheduled_s: list[float] = [nan] * n
        self.first_token_s: list[float] = [nan] * n
        self.finish_s: list[float] = [nan] * n
        self.last_token_s: list[float] = [nan] * n
        self.preemptions: list[int] = [0] * n
        self.generated: list[int] = [0] * n
        self.kv_len: list[int] = [0] * n
        self.prefill_target: list[int] = list(self.prompt)
        self.prefilled: list[int] = [0] * n
        self.blocks: list[int] = [0] * n
        self.cached: list[int] = [0] * n
        self.cached_total: list[int] = [0] * n
        self.reject_reason: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.prompt)

    def remaining_prefill(self, r: int) -> int:
        """Tokens of the current (re)admission still to prefill."""
        return self.prefill_target[r] - self.prefilled[r]

    def is_decoding(self, r: int) -> bool:
        """True once the request's prefill is complete (it decodes one token per iteration it is in)."""
        return self.prefilled[r] >= self.prefill_target[r] and self.generated[r] > 0

    def reset_for_recompute(self, r: int) -> None:
        """Preemption by recompute: forget the KV; readmission prefills prompt + generated tokens again."""
        self.kv_len[r] = 0
        self.prefilled[r] = 0
        self.cached[r] = 0
        self.prefill_target[r] = self.prompt[r] + self.generated[r]
        self.preemptions[r] += 1

    def gather(self, column: list[int], ids: np.ndarray) -> np.ndarray:
        """``column``'s entries for request ids ``ids``, as an int64 array."""
        return np.array([column[r] for r in ids.tolist()], dtype=np.int64)

    def columns(self) -> RequestColumns:
        """The table as numpy arrays (what the metrics read once the run is over)."""
        return RequestColumns(self)

    def close(self) -> RequestColumns:
        """:meth:`columns`, emptying the lists: a finished run's table is read no more, and at a million requests
        its lists hold a few hundred MB that the result tables built next would otherwise sit beside."""
        columns = self.columns()
        for name in _LIST_COLUMNS:
            setattr(self, name, [])
        return columns


_LIST_COLUMNS = ("prompt", "output", "status", "replica", "first_scheduled_s", "first_token_s", "finish_s",
                 "last_token_s", "preemptions", "generated", "kv_len", "prefill_target", "prefilled", "blocks", "cached",
                 "cached_total")


def _array(values: list, dtype: type) -> np.ndarray:
    """``values`` as a new array of ``dtype`` (np.fromiter: about twice as fast as np.array on a list, same values)."""
    return np.fromiter(values, dtype=dtype, count=len(values))


class RequestColumns:
    """A finished run's :class:`RequestTable` as numpy arrays (same names; times float64 s, counts int64)."""

    def __init__(self, table: RequestTable) -> None:
        self.arrival_s = table.arrival_s
        self.prompt = _array(table.prompt, np.int64)
        self.output = _array(table.output, np.int64)
        self.status = _array(table.status, np.int8)
        self.replica = _array(table.replica, np.int32)
        self.first_scheduled_s = _array(table.first_scheduled_s, np.float64)
        self.first_token_s = _array(table.first_token_s, np.float64)
        self.finish_s = _array(table.finish_s, np.float64)
        self.last_token_s = _array(table.last_token_s, np.float64)
        self.preemptions = _array(table.preemptions, np.int64)
        self.generated = _array(table.generated, np.int64)
        self.kv_len = _array(table.kv_len, np.int64)
        self.prefill_target = _array(table.prefill_target, np.int64)
        self.prefilled = _array(table.prefilled, np.int64)
        self.blocks = _array(table.blocks, np.int64)
        self.cached = _array(table.cached, np.int64)
        self.cached_total = _array(table.cached_total, np.int64)
        self.reject_reason = dict(table.reject_reason)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])
