"""Shared system prompts and multi-turn conversations, with the prefix-block hashes they imply.

Model (all vectorised over conversations x turns):

* A conversation starts at an arrival of the arrival process. Turn 1 arrives then; turn k + 1
  arrives an exponential think time (mean ``think_time_s``) after turn k. This is open-loop: it
  does not wait for turn k's response.
* Turn k's new user text u_k and output o_k are drawn from the length distributions. Its prompt
  resends the history: ``prompt_k = S + u_1 + o_1 + ... + o_{k-1} + u_k``, where S is the shared
  system prompt (``shared_prefix.tokens``, 0 without one), chosen uniformly among K per conversation.
* Hash ids, per block of B tokens of a prompt: block j < S // B lies inside system prompt p and gets
  an id shared by every request using p; a later block that is full gets an id shared by all turns
  of its conversation (they resend the same tokens); a partial last block gets an id of its own.
  Equal ids therefore always mean an identical prefix up to the end of that block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmsim.workload import _keys


@dataclass(frozen=True)
class SharedPrefixSpec:
    """K = ``num_prefixes`` system prompts of ``tokens`` tokens each, hashed in ``block_tokens``."""

    tokens: int
    num_prefixes: int = 1
    block_tokens: int = 16

    @classmethod
    def from_dict(cls, value: object, where: str, source: object) -> "SharedPrefixSpec":
        """Parse ``{tokens: S, num_prefixes: K, block_tokens: B}`` (S, K, B >= 1; K, B optional)."""
        d = _keys.mapping(value, where, source)
        _keys.check_keys(d, ("tokens", "num_prefixes", "block_tokens"), where, source)
        tokens = _keys.number(_keys.required(d, "tokens", where, source), f"{where}.tokens",
                              source, integer=True, minimum=1)
        k = _keys.optional_number(d, "num_prefixes", where, source, integer=True, minimum=1)
        block = _keys.optional_number(d, "block_tokens", where, source, integer=True, minimum=1)
        return cls(tokens, k or 1, block or 16)


@dataclass(frozen=True)
class MultiTurnSpec:
    """Conversations of ``turns`` requests with exponential think times of mean ``think_time_s``."""

    turns: int
    think_time_s: float = 0.0
    block_tokens: int | None = None

    @classmethod
    def from_dict(cls, value: object, where: str, source: object) -> "MultiTurnSpec":
        """Parse ``{turns: N, think_time_s: T, block_tokens: B}`` (N >= 1, T >= 0, B >= 1)."""
        d = _keys.mapping(value, where, source)
        _keys.check_keys(d, ("turns", "think_time_s", "block_tokens"), where, source)
        turns = _keys.number(_keys.required(d, "turns", where, source), f"{where}.turns", source,
                             integer=True, minimum=1)
        think = _keys.optional_number(d, "think_time_s", where, source, minimum=0)
        block = _keys.optional_number(d, "block_tokens", where, source, integer=True, minimum=1)
        return cls(turns, think or 0.0, block)


@dataclass(frozen=True)
class Conversations:
    """Requests of all conversations, flattened in (conversation, turn) order.

    ``arrival_s`` (s), ``prompt_tokens`` and ``output_tokens`` (tokens), ``conversation`` (index),
    ``prefix_choice`` (system prompt index, -1 without one).
    """

    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    conversation: np.ndarray
    prefix_choice: np.ndarray


def build_conversations(rng: np.random.Generator, starts_s: np.ndarray, user_tokens: np.ndarray,
                        output_tokens: np.ndarray, turns: int, think_time_s: float,
                        shared: SharedPrefixSpec | None) -> Conversations:
    """Assemble C = len(starts_s) conversations of ``turns`` turns (module docstring).

    ``user_tokens`` and ``output_tokens`` hold C * turns values in (conversation, turn) order.
    Draws think times (when turns > 1 and think_time_s > 0), then prefix choices, from ``rng``.
    """
    c = len(starts_s)
    user = user_tokens.reshape(c, turns)
    out = output_tokens.reshape(c, turns)
    think = np.zeros((c, turns))
    if turns > 1 and think_time_s > 0:
        think[:, 1:] = rng.exponential(think_time_s, size=(c, turns - 1))
    arrival = starts_s[:, None] + np.cumsum(think, axis=1)
    system = 0 if shared is None else shared.tokens
    prompt = system + np.cumsum(user, axis=1) + np.cumsum(out, axis=1) - out
    choice = (np.full(c, -1, dtype=np.int64) if shared is None
              else rng.integers(0, shared.num_prefixes, size=c))
    conversation = np.repeat(np.arange(c, dtype=np.int64), turns)
    return Conversations(arrival.ravel(), prompt.ravel().astype(np.int64), out.ravel().copy(),
                         conversation, choice[conversation])


def block_hashes(prompt_tokens: np.ndarray, conversation: np.ndarray, prefix_choice: np.ndarray,
                 shared: SharedPrefixSpec | None, block_tokens: int) -> tuple[np.ndarray, ...]:
    """Per request, int64 ids of its ceil(prompt / block_tokens) blocks (module docstring rules).

    Id ranges: system prompt p, block j -> ``p * S//B + j``; conversation c, full block j ->
    ``base + c * J + j`` (J = most blocks of any prompt); partial last block of request i ->
    ``base2 + i``. Built on one flat array of all blocks, then sliced per request.
    """
    b = block_tokens
    n_blocks = -(-prompt_tokens // b)
    ends = np.cumsum(n_blocks)
    starts = ends - n_blocks
    shared_blocks = 0 if shared is None else shared.tokens // b
    conv_base = 0 if shared is None else shared.num_prefixes * shared_blocks
    j_max = int(n_blocks.max()) if len(n_blocks) else 0
    total = int(ends[-1]) if len(ends) else 0
    ids = np.arange(total, dtype=np.int64) - np.repeat(
        starts - conv_base - conversation * j_max, n_blocks)
    partial = np.flatnonzero(prompt_tokens % b)
    partial_base = conv_base + (int(conversation.max()) + 1 if len(conversation) else 0) * j_max
    ids[ends[partial] - 1] = partial_base + partial
    if shared_blocks:
        rows = np.flatnonzero(prefix_choice >= 0)
        k = np.arange(shared_blocks, dtype=np.int64)
        ids[starts[rows][:, None] + k] = prefix_choice[rows][:, None] * shared_blocks + k
    return tuple(ids[a:e] for a, e in zip(starts.tolist(), ends.tolist()))
