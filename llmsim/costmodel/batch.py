"""What one iteration computes, as plain data: the cost model's input.

:class:`IterationShape` describes one iteration exactly (each prompt chunk, each decode sequence).
:class:`BatchFeatures` holds the few sums the cost model actually needs, as numpy arrays with one entry per
iteration, so that thousands of iterations are priced in one vectorised call. Every operator's FLOPs and
bytes are linear in these sums (see ``docs/cost_model.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from llmsim.errors import InputError


@dataclass(frozen=True)
class PromptChunk:
    """``new_tokens`` prompt tokens computed this iteration after ``prior_tokens`` already in the KV cache.

    ``samples`` is True when this chunk completes the prompt, so its last token goes through the LM head and
    produces the request's first output token.
    """

    new_tokens: int
    prior_tokens: int = 0
    samples: bool = True


@dataclass(frozen=True)
class IterationShape:
    """One engine iteration: prompt chunks being prefilled and sequences decoding one token each.

    ``decode_context_tokens[i]`` is the number of tokens already cached for decode sequence ``i``
    (its prompt plus the tokens generated before this step).
    """

    prefill_chunks: tuple[PromptChunk, ...] = ()
    decode_context_tokens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for chunk in self.prefill_chunks:
            if chunk.new_tokens < 1 or chunk.prior_tokens < 0:
                raise InputError("a chunk needs >= 1 new token and >= 0 prior tokens",
                                 value=f"{chunk.new_tokens}@{chunk.prior_tokens}")
        if any(c < 0 for c in self.decode_context_tokens):
            raise InputError("decode context must be >= 0 tokens", value=min(self.decode_context_tokens))

    @property
    def is_empty(self) -> bool:
        """True when the iteration computes nothing."""
        return not self.prefill_chunks and not self.decode_context_tokens


@dataclass(frozen=True)
class BatchFeatures:
    """Per-iteration sums that determine an iteration's cost (all arrays of shape ``(n,)``, float64).

    Attributes:
        prefill_tokens: new prompt tokens (all chunks).
        prefill_chunks: number of prompt chunks.
        prefill_attn_pairs: causal (query, key) pairs of prefill attention, sum over chunks of
            ``c * (p + (c + 1) / 2)`` for a chunk of ``c`` new tokens after ``p`` prior ones.
        prefill_kv_tokens: KV tokens prefill attention reads, sum of ``p + c``.
        decode_seqs: sequences decoding one token.
        decode_ctx_tokens: sum over decode sequences of tokens already cached.
        sampled: sequences whose last token goes through the LM head (decodes + completing chunks).
    """

    prefill_tokens: np.ndarray
    prefill_chunks: np.ndarray
    prefill_attn_pairs: np.ndarray
    prefill_kv_tokens: np.ndarray
    decode_seqs: np.ndarray
    decode_ctx_tokens: np.ndarray
    sampled: np.ndarray

    def __len__(self) -> int:
        return int(self.prefill_tokens.shape[0])

    @property
    def new_tokens(self) -> np.ndarray:
        """Tokens that go through the linear layers: prompt tokens plus one per decode."""
        return self.prefill_tokens + self.decode_seqs

    @classmethod
    def from_arrays(cls, **arrays: object) -> "BatchFeatures":
        """Build from keyword arrays/scalars; missing fields are zero, scalars are broadcast."""
        names = [f.name for f in fields(cls)]
        unknown = set(arrays) - set(names)
        if unknown:
            raise TypeError(f"unknown feature(s): {sorted(unknown)}")
        converted = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
        n = max((a.shape[0] for a in converted.values()), default=1)
        zero = np.zeros(n)
        return cls(**{k: np.broadcast_to(converted.get(k, zero), (n,)).astype(np.float64) for k in names})

    @classmethod
    def single(cls, prefill_tokens: float = 0.0, prefill_chunks: float = 0.0, prefill_attn_pairs: float = 0.0,
               prefill_kv_tokens: float = 0.0, decode_seqs: float = 0.0, decode_ctx_tokens: float = 0.0,
               sampled: float = 0.0) -> "BatchFeatures":
        """One iteration from scalars (the fast path the simulator uses for every non-span iteration)."""
        return cls(np.array([float(prefill_tokens)]), np.array([float(prefill_chunks)]),
                   np.array([float(prefill_attn_pairs)]), np.array([float(prefill_kv_tokens)]),
                   np.array([float(decode_seqs)]), np.array([float(decode_ctx_tokens)]), np.array([float(sampled)]))

    @classmethod
    def decode_only(cls, decode_seqs: object, decode_ctx_tokens: object) -> "BatchFeatures":
        """Pure decode iterations: ``decode_seqs`` sequences with ``decode_ctx_tokens`` cached tokens in total."""
        return cls.from_arrays(decode_seqs=decode_seqs, decode_ctx_tokens=decode_ctx_tokens, sampled=decode_seqs)

    @classmethod
    def from_shapes(cls, shapes: Sequence[IterationShape]) -> "BatchFeatures":
        """Aggregate exact iteration shapes into features (one entry per shape)."""
        rows = [_shape_sums(s) for s in shapes]
        cols = list(zip(*rows)) if rows else [()] * 7
        names = [f.name for f in fields(cls)]
        return cls(**{n: np.asarray(c, dtype=np.float64) for n, c in zip(names, cols)})

    @classmethod
    def concat(cls, parts: Sequence["BatchFeatures"]) -> "BatchFeatures":
        """Stack several feature sets end to end."""
        names = [f.name for f in fields(cls)]
        return cls(**{n: np.concatenate([getattr(p, n) for p in parts]) for n in names})


def _shape_sums(shape: IterationShape) -> tuple[float, ...]:
    c = np.array([ch.new_tokens for ch in shape.prefill_chunks], dtype=np.float64)
    p = np.array([ch.prior_tokens for ch in shape.prefill_chunks], dtype=np.float64)
    ctx = np.array(shape.decode_context_tokens, dtype=np.float64)
    completing = sum(1 for ch in shape.prefill_chunks if ch.samples)
    return (c.sum(), float(len(c)), float((c * (p + (c + 1) / 2)).sum()), float((p + c).sum()),
            float(len(ctx)), ctx.sum(), float(completing + len(ctx)))


def parse_chunk(text: str) -> PromptChunk:
    """Parse ``C@P`` (C new prompt tokens after P earlier ones) or a plain ``S`` (a whole prompt)."""
    new, _, prior = str(text).partition("@")
    try:
        chunk = PromptChunk(int(new), int(prior) if prior else 0)
    except ValueError:
        raise InputError("expected C@P with integers, e.g. 512@1024", value=text) from None
    if chunk.new_tokens < 1 or chunk.prior_tokens < 0:
        raise InputError("expected C >= 1 new tokens and P >= 0 prior tokens", value=text)
    return chunk


def parse_decodes(text: str) -> tuple[int, ...]:
    """Parse ``BxL`` (B sequences, each with L cached tokens) into B context lengths."""
    batch, sep, ctx = str(text).lower().partition("x")
    try:
        b, length = int(batch), int(ctx)
    except ValueError:
        raise InputError("expected BxL with integers, e.g. 32x1024", value=text) from None
    if not sep or b < 1 or length < 0:
        raise InputError("expected BxL with B >= 1 sequences and L >= 0 cached tokens", value=text)
    return (length,) * b
