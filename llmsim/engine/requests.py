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

from dataclasses import dataclass, field

import numpy as np

PENDING, WAITING, RUNNING, FINISHED, REJECTED = 0, 1, 2, 3, 4


@dataclass
class RequestTable:
    """Columns of request state; ``n`` requests with ids ``0..n-1`` in arrival order."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    status: np.ndarray = field(init=False)
    replica: np.ndarray = field(init=False)
    first_scheduled_s: np.ndarray = field(init=False)
    first_token_s: np.ndarray = field(init=False)
    finish_s: np.ndarray = field(init=False)
    last_token_s: np.ndarray = field(init=False)
    preemptions: np.ndarray = field(init=False)
    generated: np.ndarray = field(init=False)
    kv_len: np.ndarray = field(init=False)
    prefill_target: np.ndarray = field(init=False)
    prefilled: np.ndarray = field(init=False)
    blocks: np.ndarray = field(init=False)
    cached: np.ndarray = field(init=False)
    cached_total: np.ndarray = field(init=False)
    reject_reason: dict[int, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        self.arrival_s = np.asarray(self.arrival_s, dtype=np.float64)
        self.prompt = np.asarray(self.prompt, dtype=np.int64)
        self.output = np.asarray(self.output, dtype=np.int64)
        self.status = np.zeros(n, dtype=np.int8)
        self.replica = np.full(n, -1, dtype=np.int32)
        for name in ("first_scheduled_s", "first_token_s", "finish_s", "last_token_s"):
            setattr(self, name, np.full(n, np.nan))
        for name in ("preemptions", "generated", "kv_len", "prefilled", "blocks", "cached", "cached_total"):
            setattr(self, name, np.zeros(n, dtype=np.int64))
        self.prefill_target = self.prompt.copy()

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def remaining_prefill(self, r: int) -> int:
        """Tokens of the current (re)admission still to prefill."""
        return int(self.prefill_target[r] - self.prefilled[r])

    def is_decoding(self, r: int) -> bool:
        """True once the request's prefill is complete (it decodes one token per iteration it is in)."""
        return bool(self.prefilled[r] >= self.prefill_target[r] and self.generated[r] > 0)

    def reset_for_recompute(self, r: int) -> None:
        """Preemption by recompute: forget the KV; readmission prefills prompt + generated tokens again."""
        self.kv_len[r] = 0
        self.prefilled[r] = 0
        self.cached[r] = 0
        self.prefill_target[r] = self.prompt[r] + self.generated[r]
        self.preemptions[r] += 1
