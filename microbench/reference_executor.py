#!/usr/bin/env python3
"""Reference executor: time whole engine iterations of a Llama-shaped model on a real GPU.

llmsim prices one engine iteration (a batch of prompt chunks and decode sequences) with a calibrated
roofline cost model. This script measures the same iterations for real, so that ``llmsim validate`` can
compare its predictions against them and so that the host/per-iteration overhead can be fitted.

What runs is a complete decoder forward pass with random bf16 weights: token embedding, then per layer
RMSNorm -> fused QKV projection (+ bias for Qwen2) -> RoPE -> KV-cache append -> GQA flash attention ->
output projection -> residual -> RMSNorm -> fused gate/up projection -> SiLU gate -> down projection ->
residual; then the final RMSNorm and the LM head on the rows that sample, and greedy argmax. Token ids
go host->device before and the sampled ids device->host after, inside the timed region, as an engine does
every step.

Iterations are described in llmsim's notation (``--chunk C@P`` and ``--decode BxL``), and each CSV row
carries those strings so that the simulator can price exactly the measured iteration.

Usage (see microbench/REFERENCE_EXECUTOR.md):

    python microbench/reference_executor.py --out measured.csv                 # full grid, CUDA
    python microbench/reference_executor.py --out q.csv --quick                # small sanity grid
    python microbench/reference_executor.py --out t.csv --device cpu --quick --tiny   # CPU test run
    python microbench/reference_executor.py --out x.csv --dry-run --assume-gpu h100   # plan only

Only torch and numpy are needed. The script is standalone: it does not import llmsim.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import gc
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

try:  # torch is required to measure, but not to print --help or a --dry-run plan
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only where torch is missing
    torch = None  # type: ignore[assignment]
    F = None  # type: ignore[assignment]
try:  # SDPA backend selection and the lower-right causal bias (torch >= 2.3); only the fallback path needs them
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.bias import causal_lower_right
except ImportError:  # pragma: no cover
    SDPBackend = sdpa_kernel = causal_lower_right = None  # type: ignore[assignment]

CSV_HEADER = ["kind", "mode", "model", "layers", "chunks", "decodes", "num_tokens", "num_sampled",
              "median_s", "p10_s", "p90_s", "reps", "note", "gpu", "driver", "torch", "date"]

PROG = "reference_executor"
WEIGHT_STD = 0.02          # std of the random projection weights: keeps activations O(1) and finite
MIN_REPS, MIN_WARMUP = 10, 3


def log(msg: str) -> None:
    """Progress and diagnostics go to stderr; stdout stays free."""
    print(msg, file=sys.stderr, flush=True)


def describe(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, for one-line reports."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


# --------------------------------------------------------------------------------------------------
# Model shapes
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    """The shape of a Llama-family decoder: everything the forward pass and its cost depend on."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    rms_eps: float
    rope_theta: float
    max_position: int      # the model's native context (positions beyond it are still computed)
    qkv_bias: bool = False

    @property
    def q_size(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.kv_heads * self.head_dim

    def linear_params_per_layer(self) -> int:
        """Weights every new token multiplies in one layer: QKV, O, gate+up, down."""
        return (self.hidden * (self.q_size + 2 * self.kv_size) + self.q_size * self.hidden
                + self.hidden * 2 * self.intermediate + self.intermediate * self.hidden)

    def validate(self) -> None:
        if self.heads % self.kv_heads:
            raise ValueError(f"heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for RoPE")
        if min(self.hidden, self.layers, self.heads, self.kv_heads, self.intermediate, self.vocab) < 1:
            raise ValueError("every model dimension must be >= 1")


# Values from each model's HuggingFace config.json:
#   meta-llama/Meta-Llama-3-8B, meta-llama/Meta-Llama-3-70B, meta-llama/Llama-2-7b-hf, Qwen/Qwen2.5-7B.
# All four have untied embeddings (tie_word_embeddings: false). Qwen2 adds a bias to the Q, K and V
# projections. Llama-3.1's "llama3" RoPE scaling changes only the cos/sin table, never the cost.
MODELS: dict[str, ModelConfig] = {
    "llama-3-8b": ModelConfig("llama-3-8b", hidden=4096, layers=32, heads=32, kv_heads=8, head_dim=128,
                              intermediate=14336, vocab=128256, rms_eps=1e-5, rope_theta=500000.0,
                              max_position=8192),
    "llama-3-70b": ModelConfig("llama-3-70b", hidden=8192, layers=80, heads=64, kv_heads=8, head_dim=128,
                               intermediate=28672, vocab=128256, rms_eps=1e-5, rope_theta=500000.0,
                               max_position=8192),
    "llama-2-7b": ModelConfig("llama-2-7b", hidden=4096, layers=32, heads=32, kv_heads=32, head_dim=128,
                              intermediate=11008, vocab=32000, rms_eps=1e-5, rope_theta=10000.0,
                              max_position=4096),
    "qwen2.5-7b": ModelConfig("qwen2.5-7b", hidden=3584, layers=28, heads=28, kv_heads=4, head_dim=128,
                              intermediate=18944, vocab=152064, rms_eps=1e-6, rope_theta=1000000.0,
                              max_position=131072, qkv_bias=True),
}

# A few-hundred-thousand-parameter model with the same structure (GQA 2:1), for CPU tests.
TINY_SHAPE = dict(hidden=128, heads=4, kv_heads=2, head_dim=32, intermediate=256, vocab=512)


def resolve_model(args: argparse.Namespace) -> ModelConfig:
    """The model table entry, with --tiny and the per-dimension overrides applied (and named)."""
    cfg = MODELS[args.model]
    overrides = dict(TINY_SHAPE) if args.tiny else {}
    for key in ("hidden", "heads", "kv_heads", "head_dim", "intermediate", "vocab"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if overrides and "head_dim" not in overrides and ("hidden" in overrides or "heads" in overrides):
        overrides["head_dim"] = overrides.get("hidden", cfg.hidden) // overrides.get("heads", cfg.heads)
    name = cfg.name
    if args.tiny:
        name += ":tiny"
    extra = [f"{k}={v}" for k, v in overrides.items() if not args.tiny or TINY_SHAPE.get(k) != v]
    if extra:
        name += ":" + ":".join(extra)
    cfg = dataclasses.replace(cfg, name=name, layers=args.layers or (2 if args.tiny else cfg.layers),
                              **overrides)
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------------------------------
# Iterations: what one engine step computes, in llmsim's notation
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IterationSpec:
    """One engine iteration: prompt chunks ``(C, P)`` and decode groups ``(B, L)``.

    A chunk computes C new prompt tokens after P already cached; it is taken to complete its prompt, so
    its last token is sampled (llmsim's ``PromptChunk.samples`` default). A decode group is B sequences,
    each with L cached tokens, computing one new token each and sampling it.
    """

    chunks: tuple[tuple[int, int], ...] = ()
    decodes: tuple[tuple[int, int], ...] = ()

    @property
    def kind(self) -> str:
        if not self.chunks:
            return "decode"
        return "mixed" if self.decodes else "prefill"

    @property
    def num_tokens(self) -> int:
        return sum(c for c, _ in self.chunks) + sum(b for b, _ in self.decodes)

    @property
    def num_sampled(self) -> int:
        return len(self.chunks) + sum(b for b, _ in self.decodes)

    @property
    def kv_slots(self) -> int:
        """KV-cache rows the iteration needs: every sequence's cached plus new tokens."""
        return sum(p + c for c, p in self.chunks) + sum(b * (l + 1) for b, l in self.decodes)

    def chunks_text(self) -> str:
        return ";".join(f"{c}@{p}" for c, p in self.chunks)

    def decodes_text(self) -> str:
        return ";".join(f"{b}x{l}" for b, l in self.decodes)

    def label(self) -> str:
        parts = [p for p in (self.decodes_text(), self.chunks_text()) if p]
        return " + ".join(parts)

    @classmethod
    def parse(cls, chunks: str, decodes: str) -> "IterationSpec":
        """Inverse of chunks_text()/decodes_text(); also accepts a plain ``S`` for ``S@0``."""
        parsed_chunks = []
        for item in filter(None, (s.strip() for s in chunks.split(";"))):
            new, _, prior = item.partition("@")
            parsed_chunks.append((int(new), int(prior) if prior else 0))
        parsed_decodes = []
        for item in filter(None, (s.strip() for s in decodes.split(";"))):
            b, sep, l = item.lower().partition("x")
            if not sep:
                raise ValueError(f"expected BxL, got {item!r}")
            parsed_decodes.append((int(b), int(l)))
        spec = cls(tuple(parsed_chunks), tuple(parsed_decodes))
        if any(c < 1 or p < 0 for c, p in spec.chunks) or any(b < 1 or l < 0 for b, l in spec.decodes):
            raise ValueError(f"bad iteration: chunks={chunks!r} decodes={decodes!r}")
        if not spec.chunks and not spec.decodes:
            raise ValueError("an iteration needs at least one chunk or decode")
        return spec


@dataclass(frozen=True)
class SeqSlot:
    """One sequence of the batch: where its new tokens sit in the packed batch and its KV in the cache."""

    context: int      # tokens already in the KV cache
    new: int          # tokens computed this iteration
    samples: bool
    q_start: int      # first row of its new tokens in the packed [T, ...] activations
    slot_start: int   # first row of its KV slot (context + new rows) in the packed cache


@dataclass(frozen=True)
class AttnPiece:
    """A unit of work for the per-piece SDPA path: a group of equal-context decodes, or one chunk."""

    kind: str         # "decode" | "chunk" (no prior context) | "chunk_ctx" (chunk after cached tokens)
    q_start: int
    rows: int         # query rows (B decodes, or C chunk tokens)
    slot_start: int
    batch: int        # sequences in the piece (B, or 1 for a chunk)
    kv_len: int       # keys per sequence: L + 1, or P + C
    prior: int        # P for a chunk, L for decodes


@dataclass(frozen=True)
class BatchLayout:
    """Host-side description of an iteration's packed layout. Decodes come first, then chunks.

    Every sequence owns one contiguous KV slot of exactly ``context + new`` rows and the slots are
    packed back to back, so ``cu_seqlens_k`` indexes the cache directly and the iteration's new K/V are
    written to the last ``new`` rows of each slot. Re-running the iteration overwrites the same rows,
    so every repetition sees the same state.
    """

    seqs: tuple[SeqSlot, ...]
    pieces: tuple[AttnPiece, ...]

    @classmethod
    def from_spec(cls, spec: IterationSpec) -> "BatchLayout":
        seq_shapes = [(l, 1) for b, l in spec.decodes for _ in range(b)] + [(p, c) for c, p in spec.chunks]
        seqs, q, s = [], 0, 0
        for context, new in seq_shapes:
            seqs.append(SeqSlot(context, new, True, q, s))
            q, s = q + new, s + context + new
        return cls(tuple(seqs), tuple(_pieces(spec, seqs)))

    @property
    def num_tokens(self) -> int:
        return sum(s.new for s in self.seqs)

    @property
    def kv_slots(self) -> int:
        return sum(s.context + s.new for s in self.seqs)

    def positions(self) -> np.ndarray:
        return _concat_ranges([(s.context, s.context + s.new) for s in self.seqs])

    def kv_write_rows(self) -> np.ndarray:
        return _concat_ranges([(s.slot_start + s.context, s.slot_start + s.context + s.new)
                               for s in self.seqs])

    def sample_rows(self) -> np.ndarray:
        return np.array([s.q_start + s.new - 1 for s in self.seqs if s.samples], dtype=np.int64)

    def cu_seqlens(self) -> tuple[np.ndarray, np.ndarray]:
        cu_q = np.cumsum([0] + [s.new for s in self.seqs]).astype(np.int32)
        cu_k = np.cumsum([0] + [s.context + s.new for s in self.seqs]).astype(np.int32)
        return cu_q, cu_k

    def max_q(self) -> int:
        return max(s.new for s in self.seqs)

    def max_k(self) -> int:
        return max(s.context + s.new for s in self.seqs)


def _pieces(spec: IterationSpec, seqs: Sequence[SeqSlot]) -> Iterable[AttnPiece]:
    i = 0
    for b, l in spec.decodes:
        first = seqs[i]
        yield AttnPiece("decode", first.q_start, b, first.slot_start, b, l + 1, l)
        i += b
    for c, p in spec.chunks:
        s = seqs[i]
        yield AttnPiece("chunk_ctx" if p else "chunk", s.q_start, c, s.slot_start, 1, p + c, p)
        i += 1


def _concat_ranges(ranges: Sequence[tuple[int, int]]) -> np.ndarray:
    if not ranges:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in ranges])


# --------------------------------------------------------------------------------------------------
# Weights, KV cache, device-side batch
# --------------------------------------------------------------------------------------------------

@dataclass
class LayerWeights:
    """One decoder layer's parameters, in the ``F.linear`` layout ``[out_features, in_features]``."""

    attn_norm: "torch.Tensor"     # [H]
    qkv: "torch.Tensor"           # [q + 2kv, H], fused Q, K, V projection
    qkv_bias: "torch.Tensor | None"
    o: "torch.Tensor"             # [H, q]
    mlp_norm: "torch.Tensor"      # [H]
    gate_up: "torch.Tensor"       # [2I, H], fused gate and up projection
    down: "torch.Tensor"          # [H, I]


@dataclass
class ModelWeights:
    """The whole model's parameters plus its RoPE cos/sin table."""

    cfg: ModelConfig
    embed: "torch.Tensor"         # [V, H]
    layers: list[LayerWeights]
    final_norm: "torch.Tensor"    # [H]
    lm_head: "torch.Tensor"       # [V, H], untied from the embedding
    rope_cos: "torch.Tensor | None" = None   # [positions, D/2], model dtype
    rope_sin: "torch.Tensor | None" = None

    def nbytes(self) -> int:
        tensors = [self.embed, self.final_norm, self.lm_head]
        for lw in self.layers:
            tensors += [getattr(lw, f.name) for f in dataclasses.fields(lw) if getattr(lw, f.name) is not None]
        return sum(t.numel() * t.element_size() for t in tensors)

    def ensure_rope(self, positions: int) -> None:
        """Precompute the RoPE cos/sin table for positions [0, positions) (grown on demand)."""
        if self.rope_cos is not None and self.rope_cos.shape[0] >= positions:
            return
        n = max(positions, self.cfg.max_position)
        half = self.cfg.head_dim // 2
        dev = self.embed.device
        inv_freq = 1.0 / (self.cfg.rope_theta ** (torch.arange(half, device=dev, dtype=torch.float64) / half))
        angles = torch.outer(torch.arange(n, device=dev, dtype=torch.float64), inv_freq)
        self.rope_cos = angles.cos().to(self.embed.dtype)
        self.rope_sin = angles.sin().to(self.embed.dtype)


def init_weights(cfg: ModelConfig, device: "torch.device", dtype: "torch.dtype", seed: int) -> ModelWeights:
    """Random weights, N(0, 0.02) for matrices and biases, ones for norm scales: finite, never zero."""
    torch.manual_seed(seed)

    def mat(*shape: int) -> "torch.Tensor":
        return torch.empty(shape, device=device, dtype=dtype).normal_(0.0, WEIGHT_STD)

    def norm() -> "torch.Tensor":
        return torch.ones(cfg.hidden, device=device, dtype=dtype)

    layers = [LayerWeights(attn_norm=norm(), qkv=mat(cfg.q_size + 2 * cfg.kv_size, cfg.hidden),
                           qkv_bias=mat(cfg.q_size + 2 * cfg.kv_size) if cfg.qkv_bias else None,
                           o=mat(cfg.hidden, cfg.q_size), mlp_norm=norm(),
                           gate_up=mat(2 * cfg.intermediate, cfg.hidden), down=mat(cfg.hidden, cfg.intermediate))
              for _ in range(cfg.layers)]
    return ModelWeights(cfg, embed=mat(cfg.vocab, cfg.hidden), layers=layers, final_norm=norm(),
                        lm_head=mat(cfg.vocab, cfg.hidden))


def alloc_kv_cache(cfg: ModelConfig, slots: int, device: "torch.device", dtype: "torch.dtype") -> "torch.Tensor":
    """One preallocated cache ``[layers, 2 (K, V), slots, kv_heads, head_dim]``, filled with N(0, 1).

    Each layer has its own K and V (as in a real engine); ``cache[l, 0]`` is a contiguous
    ``[slots, kv_heads, head_dim]`` tensor, the packed layout the varlen kernel reads.
    """
    cache = torch.empty((cfg.layers, 2, slots, cfg.kv_heads, cfg.head_dim), device=device, dtype=dtype)
    return cache.normal_(0.0, 1.0)


def kv_cache_bytes(cfg: ModelConfig, slots: int, itemsize: int) -> int:
    return cfg.layers * 2 * slots * cfg.kv_size * itemsize


@dataclass
class DeviceBatch:
    """Static device tensors for one iteration shape (the inputs a CUDA graph is captured against)."""

    layout: BatchLayout
    input_ids: "torch.Tensor"       # [T] int64, device; refreshed from input_ids_host every step
    input_ids_host: "torch.Tensor"  # [T] int64, pinned when on CUDA
    positions: "torch.Tensor"       # [T] int64
    kv_write_rows: "torch.Tensor"   # [T] int64, cache row of each new token's K/V
    sample_rows: "torch.Tensor"     # [S] int64, rows that go through the LM head
    cu_q: "torch.Tensor"            # [N+1] int32
    cu_k: "torch.Tensor"            # [N+1] int32
    max_q: int
    max_k: int
    tokens_host: "torch.Tensor"     # [S] int64, pinned when on CUDA: the sampled ids land here
    scale: float


def build_batch(layout: BatchLayout, cfg: ModelConfig, device: "torch.device", seed: int) -> DeviceBatch:
    """Random token ids and every index tensor the forward pass needs, made once per shape."""
    pin = device.type == "cuda"
    gen = torch.Generator().manual_seed(seed)
    ids_host = torch.randint(0, cfg.vocab, (layout.num_tokens,), generator=gen, dtype=torch.int64)
    if pin:
        ids_host = ids_host.pin_memory()
    cu_q, cu_k = layout.cu_seqlens()

    def dev(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(a).to(device)

    n_sampled = len(layout.sample_rows())
    return DeviceBatch(layout=layout, input_ids=ids_host.to(device), input_ids_host=ids_host,
                       positions=dev(layout.positions()), kv_write_rows=dev(layout.kv_write_rows()),
                       sample_rows=dev(layout.sample_rows()), cu_q=dev(cu_q), cu_k=dev(cu_k),
                       max_q=layout.max_q(), max_k=layout.max_k(),
                       tokens_host=torch.zeros(n_sampled, dtype=torch.int64, pin_memory=pin),
                       scale=1.0 / math.sqrt(cfg.head_dim))


# --------------------------------------------------------------------------------------------------
# Attention: flash varlen (one call per layer for the whole mixed batch) or per-piece SDPA
# --------------------------------------------------------------------------------------------------

def _flash_varlen_kernel(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, is_causal, return_debug_mask, *,
                         scale):
    """PyTorch's bundled FlashAttention-2 varlen forward (CUDA, sm80+).

    Called through the aten op rather than ``torch.nn.attention.varlen.varlen_attn`` because the op's
    leading positional arguments and ``scale`` have been stable across torch releases while the Python
    wrapper's signature has changed between them. With ``is_causal`` the mask is aligned to the
    bottom-right corner (query i of a sequence with n new and k keys sees keys <= k - n + i), which is
    exactly "a chunk attends to all earlier tokens plus the causal part of itself".
    """
    return torch.ops.aten._flash_attention_forward(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, is_causal,
                                                   return_debug_mask, scale=scale)


class VarlenFlashAttention:
    """One FlashAttention varlen call per layer covers every chunk and decode of the batch, GQA native."""

    name = "flash-varlen"

    def __init__(self, kernel: Callable = _flash_varlen_kernel):
        self.kernel = kernel   # injectable so that the packing logic can be tested on a CPU

    def __call__(self, q, k_cache, v_cache, batch: DeviceBatch):
        out = self.kernel(q, k_cache, v_cache, batch.cu_q, batch.cu_k, batch.max_q, batch.max_k, 0.0, True,
                          False, scale=batch.scale)
        return out[0] if isinstance(out, (tuple, list)) else out


class SdpaAttention:
    """Fallback: ``F.scaled_dot_product_attention`` per piece, flash backend forced where it accepts.

    * decodes with equal context: one call, q ``[B, Hq, 1, D]`` against ``[B, Hkv, L+1, D]`` views of
      the packed cache, no mask (a decode attends to everything cached plus itself);
    * a chunk without prior context: one call, square causal mask;
    * a chunk of C after P cached tokens: causal mask aligned to the bottom-right corner, through
      ``torch.nn.attention.bias.causal_lower_right`` (which uses the flash kernel when it can), else an
      explicit boolean mask.

    Each piece kind walks a ladder of strategies; a strategy that raises is abandoned (eagerly, during
    the start-up check, never inside a CUDA-graph capture) and the next one is used from then on.
    """

    LADDERS = {
        "decode": [("plain", True), ("plain", False)],
        "chunk": [("causal", True), ("causal", False)],
        "chunk_ctx": [("lower_right_bias", True), ("lower_right_bias", False), ("explicit_mask", False)],
    }

    def __init__(self, device_type: str):
        can_force = device_type == "cuda"
        self.ladder = {kind: [s for s in steps if can_force or not s[1]] for kind, steps in self.LADDERS.items()}
        self.level = {kind: 0 for kind in self.ladder}
        self.used: set[str] = set()

    @property
    def name(self) -> str:
        parts = []
        for kind in self.ladder:
            if kind in self.used:
                strategy, forced = self.ladder[kind][self.level[kind]]
                parts.append(f"{kind}:{strategy}/{'flash' if forced else 'auto'}")
        return "sdpa[" + ",".join(parts) + "]"

    def __call__(self, q, k_cache, v_cache, batch: DeviceBatch):
        outs = [self._piece(p, q, k_cache, v_cache, batch.scale) for p in batch.layout.pieces]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def _piece(self, piece: AttnPiece, q, k_cache, v_cache, scale: float):
        hq, d = q.shape[1], q.shape[2]
        hkv = k_cache.shape[1]
        # [rows, Hq, D] -> [batch, Hq, q_len, D]; cache rows -> [batch, Hkv, kv_len, D] (views, no copies)
        q_len = piece.rows // piece.batch
        qp = q[piece.q_start:piece.q_start + piece.rows].view(piece.batch, q_len, hq, d).transpose(1, 2)
        span = slice(piece.slot_start, piece.slot_start + piece.batch * piece.kv_len)
        kp = k_cache[span].view(piece.batch, piece.kv_len, hkv, d).transpose(1, 2)
        vp = v_cache[span].view(piece.batch, piece.kv_len, hkv, d).transpose(1, 2)
        self.used.add(piece.kind)
        while True:
            strategy, forced = self.ladder[piece.kind][self.level[piece.kind]]
            try:
                out = self._sdpa(strategy, forced, qp, kp, vp, scale, hq != hkv)
                break
            except Exception as exc:  # noqa: BLE001 - any failure moves down the ladder
                capturing = q.is_cuda and torch.cuda.is_current_stream_capturing()
                if capturing or self.level[piece.kind] + 1 >= len(self.ladder[piece.kind]):
                    raise
                log(f"{PROG}: sdpa {piece.kind} strategy {strategy}/{'flash' if forced else 'auto'} failed "
                    f"({describe(exc, 160)}); trying the next one")
                self.level[piece.kind] += 1
        return out.transpose(1, 2).reshape(piece.rows, hq, d)

    @staticmethod
    def _sdpa(strategy: str, forced: bool, q, k, v, scale: float, gqa: bool):
        kwargs = dict(scale=scale, enable_gqa=True) if gqa else dict(scale=scale)
        if strategy == "causal":
            kwargs["is_causal"] = True
        elif strategy == "lower_right_bias":
            kwargs["attn_mask"] = causal_lower_right(q.shape[2], k.shape[2])
        elif strategy == "explicit_mask":
            kwargs["attn_mask"] = _lower_right_mask(q.shape[2], k.shape[2], q.device)
        if forced:
            with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                return F.scaled_dot_product_attention(q, k, v, **kwargs)
        return F.scaled_dot_product_attention(q, k, v, **kwargs)


def _lower_right_mask(q_len: int, kv_len: int, device) -> "torch.Tensor":
    """Boolean mask, True where query i (absolute position kv_len - q_len + i) may see key j."""
    rows = torch.arange(q_len, device=device)[:, None] + (kv_len - q_len)
    return torch.arange(kv_len, device=device)[None, :] <= rows


def reference_attention(q, k_cache, v_cache, layout: BatchLayout, scale: float) -> "torch.Tensor":
    """Straightforward fp32 attention, sequence by sequence, mask from absolute positions (the oracle)."""
    hq, hkv = q.shape[1], k_cache.shape[1]
    outs = []
    for s in layout.seqs:
        qi = q[s.q_start:s.q_start + s.new].float()
        keys = slice(s.slot_start, s.slot_start + s.context + s.new)
        ki = k_cache[keys].float().repeat_interleave(hq // hkv, dim=1)   # query head h uses kv head h // group
        vi = v_cache[keys].float().repeat_interleave(hq // hkv, dim=1)
        scores = torch.einsum("qhd,khd->hqk", qi, ki) * scale
        q_pos = s.context + torch.arange(s.new, device=q.device)
        k_pos = torch.arange(s.context + s.new, device=q.device)
        scores = scores.masked_fill(k_pos[None, None, :] > q_pos[None, :, None], float("-inf"))
        outs.append(torch.einsum("hqk,khd->qhd", scores.softmax(dim=-1), vi))
    return torch.cat(outs, dim=0)


# A mixed batch (decodes at two contexts, a fresh chunk, a chunk spanning several kernel tiles after 200
# cached tokens, a short chunk after 13) and a decode-only batch (FlashAttention has a separate code path
# when every sequence has one query).
CHECK_SPECS = (IterationSpec(chunks=((7, 0), (150, 200), (5, 13)), decodes=((3, 6), (2, 129))),
               IterationSpec(decodes=((3, 6), (2, 129))))


def check_attention(attention, cfg: ModelConfig, device, dtype, seed: int = 1) -> float:
    """Largest relative error (Frobenius) of ``attention`` against the fp32 oracle over CHECK_SPECS,
    with the model's real head counts (so GQA is covered)."""
    return max(_check_one(attention, spec, cfg, device, dtype, seed) for spec in CHECK_SPECS)


def _check_one(attention, spec: IterationSpec, cfg: ModelConfig, device, dtype, seed: int) -> float:
    layout = BatchLayout.from_spec(spec)
    batch = build_batch(layout, cfg, device, seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # q as the forward pass hands it over: the first Hq heads of a [T, Hq + Hkv, D] tensor (strided rows)
    qk = torch.randn((layout.num_tokens, cfg.heads + cfg.kv_heads, cfg.head_dim), generator=gen).to(device, dtype)
    q = qk[:, :cfg.heads]
    kv = torch.randn((2, layout.kv_slots, cfg.kv_heads, cfg.head_dim), generator=gen).to(device, dtype)
    with torch.inference_mode():
        got = attention(q, kv[0], kv[1], batch).float()
        want = reference_attention(q, kv[0], kv[1], layout, batch.scale)
    if got.shape != want.shape:
        raise RuntimeError(f"attention returned {tuple(got.shape)}, expected {tuple(want.shape)}")
    return float((got - want).norm() / want.norm())


def check_tolerance(dtype) -> float:
    return 1e-4 if dtype == torch.float32 else 2e-2


def select_attention(choice: str, cfg: ModelConfig, device, dtype) -> tuple[object, float, list[str]]:
    """Pick the attention path (varlen first on CUDA), verified against the fp32 oracle before use."""
    candidates = []
    if choice in ("auto", "varlen"):
        candidates.append(VarlenFlashAttention())
    if choice in ("auto", "sdpa"):
        candidates.append(SdpaAttention(device.type))
    problems = []
    for attn in candidates:
        if isinstance(attn, VarlenFlashAttention) and device.type != "cuda":
            problems.append("flash-varlen: needs CUDA")
            continue
        try:
            err = check_attention(attn, cfg, device, dtype)
        except Exception as exc:  # noqa: BLE001 - try the next path, report why
            problems.append(f"{attn.name}: {describe(exc)}")
            if device.type == "cuda":
                torch.cuda.synchronize()
            continue
        if err <= check_tolerance(dtype):
            return attn, err, problems
        problems.append(f"{attn.name}: relative error {err:.2e} > {check_tolerance(dtype):.0e}")
    raise RuntimeError("no attention path passed the correctness check: " + " | ".join(problems))


# --------------------------------------------------------------------------------------------------
# The forward pass
# --------------------------------------------------------------------------------------------------

def rms_norm(x, weight, eps: float):
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    var = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * weight


def apply_rope(x, cos, sin):
    """Rotary embedding in the "rotate half" layout of the HF Llama/Qwen2 checkpoints, in four kernels.

    x: [T, H, D] (any row stride); cos, sin: [T, 1, D/2]. Returns a new contiguous [T, H, D]:
    out[:D/2] = x1 cos - x2 sin, out[D/2:] = x2 cos + x1 sin.
    """
    x1, x2 = x.chunk(2, dim=-1)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    o1, o2 = out.chunk(2, dim=-1)
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=o2).addcmul_(x1, sin)
    return out


def attention_block(x, lw: LayerWeights, cfg: ModelConfig, k_cache, v_cache, cos, sin, batch, attention):
    t = x.shape[0]
    qkv = F.linear(rms_norm(x, lw.attn_norm, cfg.rms_eps), lw.qkv, lw.qkv_bias)
    # Q and K heads sit side by side in the fused projection: rotate them together, then split (views).
    qk = apply_rope(qkv[:, :cfg.q_size + cfg.kv_size].view(t, cfg.heads + cfg.kv_heads, cfg.head_dim), cos, sin)
    q, k = qk.split([cfg.heads, cfg.kv_heads], dim=1)
    v = qkv[:, cfg.q_size + cfg.kv_size:].view(t, cfg.kv_heads, cfg.head_dim)
    # Append this iteration's K/V to each sequence's slot, then attend over the whole slot.
    k_cache.index_copy_(0, batch.kv_write_rows, k)
    v_cache.index_copy_(0, batch.kv_write_rows, v)
    out = attention(q, k_cache, v_cache, batch)
    return F.linear(out.reshape(t, cfg.q_size), lw.o)


def mlp_block(x, lw: LayerWeights, cfg: ModelConfig):
    gate, up = F.linear(rms_norm(x, lw.mlp_norm, cfg.rms_eps), lw.gate_up).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, lw.down)


def kv_views(cache) -> list[tuple]:
    """Per-layer (K, V) views of the cache, made once per shape rather than once per layer and step."""
    return [(cache[i, 0], cache[i, 1]) for i in range(cache.shape[0])]


def forward(w: ModelWeights, kv: Sequence[tuple], batch: DeviceBatch, attention):
    """One engine iteration on the packed batch. Returns (sampled token ids [S], logits [S, V]).

    ``kv[i]`` is layer i's (K, V) cache, each ``[slots, kv_heads, head_dim]``.
    """
    cfg = w.cfg
    x = F.embedding(batch.input_ids, w.embed)
    cos = w.rope_cos.index_select(0, batch.positions).unsqueeze(1)   # [T, 1, D/2], shared by all layers
    sin = w.rope_sin.index_select(0, batch.positions).unsqueeze(1)
    for lw, (k_cache, v_cache) in zip(w.layers, kv):
        x = x + attention_block(x, lw, cfg, k_cache, v_cache, cos, sin, batch, attention)
        x = x + mlp_block(x, lw, cfg)
    # Only the rows that sample go through the final norm and the LM head; greedy sampling.
    h = rms_norm(x.index_select(0, batch.sample_rows), w.final_norm, cfg.rms_eps)
    logits = F.linear(h, w.lm_head)
    return torch.argmax(logits, dim=-1), logits


# --------------------------------------------------------------------------------------------------
# Running and timing one iteration shape
# --------------------------------------------------------------------------------------------------

@dataclass
class Step:
    """A callable engine step (H2D inputs, forward or graph replay, D2H sampled ids) and its outputs."""

    run: Callable[[], None]
    outputs: Callable[[], tuple]     # (tokens, logits) of the latest run
    graph: object = None


def eager_step(w, kv, batch, attention) -> Step:
    state = {}

    def run():
        batch.input_ids.copy_(batch.input_ids_host, non_blocking=True)
        tokens, logits = forward(w, kv, batch, attention)
        batch.tokens_host.copy_(tokens, non_blocking=True)
        state["out"] = (tokens, logits)

    return Step(run, lambda: state["out"])


def graph_step(w, kv, batch, attention, warmup: int = 2) -> Step:
    """Capture the forward pass in a CUDA graph against the batch's static tensors, as engines do."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):   # warm-up on a side stream: lazy inits (cuBLAS handles, workspaces)
        for _ in range(warmup):
            forward(w, kv, batch, attention)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        tokens, logits = forward(w, kv, batch, attention)
    torch.cuda.synchronize()

    def run():
        batch.input_ids.copy_(batch.input_ids_host, non_blocking=True)
        graph.replay()
        batch.tokens_host.copy_(tokens, non_blocking=True)

    return Step(run, lambda: (tokens, logits), graph)


@dataclass
class Timing:
    times_s: list[float]        # device time per repetition (CUDA events; perf_counter on the CPU)
    wall_s: list[float]         # host wall clock per repetition, including the final synchronisation

    def stats(self) -> tuple[float, float, float]:
        a = np.asarray(self.times_s)
        return float(np.median(a)), float(np.percentile(a, 10)), float(np.percentile(a, 90))


def time_step(step: Step, device, warmup: int, reps: int, min_reps: int = MIN_REPS,
              max_timed_s: float = math.inf) -> Timing:
    """Warm up, then time each repetition separately; every repetition ends synchronised, like an engine
    step that needs its sampled tokens on the host before it can schedule the next one.

    Stops after ``min_reps`` once the timed repetitions have taken ``max_timed_s`` (a guard against a
    badly underestimated iteration eating the time budget)."""
    cuda = device.type == "cuda"
    for _ in range(warmup):
        step.run()
    if cuda:
        torch.cuda.synchronize()
    times, walls = [], []
    start = torch.cuda.Event(enable_timing=True) if cuda else None
    end = torch.cuda.Event(enable_timing=True) if cuda else None
    for _ in range(reps):
        t0 = time.perf_counter()
        if cuda:
            start.record()
            step.run()
            end.record()
            end.synchronize()
        else:
            step.run()
        wall = time.perf_counter() - t0
        times.append(start.elapsed_time(end) / 1e3 if cuda else wall)
        walls.append(wall)
        if len(times) >= min_reps and sum(walls) > max_timed_s:
            break
    return Timing(times, walls)


def outputs_finite(step: Step, vocab: int) -> bool:
    tokens, logits = step.outputs()
    return bool(torch.isfinite(logits).all()) and bool(((tokens >= 0) & (tokens < vocab)).all())


# --------------------------------------------------------------------------------------------------
# Grid, cost guess and budget
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measurement:
    """One CSV row to produce: an iteration shape in one mode. Lower tier runs earlier."""

    spec: IterationSpec
    mode: str          # "graph" | "eager"
    tier: int


def decode_spec(b: int, l: int) -> IterationSpec:
    return IterationSpec(decodes=((b, l),))


def prefill_spec(*prompts: int) -> IterationSpec:
    return IterationSpec(chunks=tuple((s, 0) for s in prompts))


def mixed_spec(d: int, l: int, c: int, p: int) -> IterationSpec:
    return IterationSpec(chunks=((c, p),), decodes=((d, l),))


def full_grid() -> list[Measurement]:
    """The default grid with its priority tiers (see REFERENCE_EXECUTOR.md, "Time budget").

    tier 0: the spine of every family (decode at L=1024 as graphs, four prefill lengths, two mixed
            batches, three eager decodes); tier 1: the rest of the graph-decode grid, of prefill and of
            mixed; tier 2: the rest of the eager decodes (host-overhead fit); tier 3: prefill and mixed
            as CUDA graphs.
    """
    out = []
    batch_sizes, contexts = (1, 8, 32, 64, 128, 256), (128, 512, 1024, 2048, 4096)
    for b in batch_sizes:
        for l in contexts:
            out.append(Measurement(decode_spec(b, l), "graph", 0 if l == 1024 else 1))
    for b in batch_sizes:
        for l in (128, 1024, 4096):
            out.append(Measurement(decode_spec(b, l), "eager", 0 if (l == 1024 and b in (1, 32, 128)) else 2))
    prefills = [prefill_spec(s) for s in (128, 256, 512, 1024, 2048, 4096, 8192, 16384)]
    prefills += [prefill_spec(*[512] * 4), prefill_spec(*[1024] * 8)]
    for spec in prefills:
        s = spec.num_tokens
        out.append(Measurement(spec, "eager", 0 if len(spec.chunks) == 1 and s in (128, 512, 2048, 8192) else 1))
        out.append(Measurement(spec, "graph", 3))
    for d in (16, 64):
        for c in (256, 512, 2048):
            for p in (0, 2048):
                spec = mixed_spec(d, 1024, c, p)
                out.append(Measurement(spec, "eager", 0 if (d, c) == (16, 512) else 1))
                out.append(Measurement(spec, "graph", 3))
    return out


def quick_grid() -> list[Measurement]:
    """A handful of points touching every code path: seconds on a GPU, a CPU test with --tiny."""
    specs = [prefill_spec(128), prefill_spec(512), prefill_spec(128, 128), decode_spec(1, 128),
             decode_spec(8, 512), mixed_spec(4, 256, 128, 0), mixed_spec(4, 256, 128, 256)]
    return [Measurement(s, mode, 0) for s in specs for mode in ("graph", "eager")]


@dataclass(frozen=True)
class DeviceSpeed:
    """Deliberately conservative sustained rates, used only to plan the time budget (not reported)."""

    name: str
    flops: float          # bf16 dense FLOP/s a forward pass sustains
    bandwidth: float      # HBM bytes/s
    kernel_gap_s: float   # per-kernel launch/drain cost on the device, even inside a graph
    host_op_s: float      # host time per eager op (Python + dispatcher + launch)
    memory_bytes: float   # for --dry-run memory screening only


SPEEDS = {
    "h100": DeviceSpeed("h100", 4.5e14, 2.6e12, 2e-6, 12e-6, 79.6 * 2**30),
    "h200": DeviceSpeed("h200", 4.5e14, 3.8e12, 2e-6, 12e-6, 139.8 * 2**30),
    "a100": DeviceSpeed("a100", 2.0e14, 1.5e12, 2.5e-6, 12e-6, 79.2 * 2**30),
    "gpu": DeviceSpeed("gpu", 1.5e14, 1.0e12, 3e-6, 15e-6, 40 * 2**30),
    "cpu": DeviceSpeed("cpu", 5e10, 1e10, 0.0, 10e-6, 16 * 2**30),
}
EAGER_OPS_PER_LAYER = 24   # torch calls per decoder layer in eager mode (~17 kernels plus views)


def speed_for(device_name: str) -> DeviceSpeed:
    name = device_name.lower()
    for key in ("h200", "h100", "a100"):
        if key in name:
            return SPEEDS[key]
    return SPEEDS["cpu"] if name in ("cpu", "") else SPEEDS["gpu"]


def iteration_work(spec: IterationSpec, cfg: ModelConfig, itemsize: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one forward pass: linear layers, attention, LM head; weights and KV read once."""
    t, s = spec.num_tokens, spec.num_sampled
    seqs = [(p, c) for c, p in spec.chunks] + [(l, 1) for b, l in spec.decodes for _ in range(b)]
    attn_pairs = sum(n * ctx + n * (n + 1) / 2 for ctx, n in seqs)
    flops = (2 * t * cfg.linear_params_per_layer() * cfg.layers + 4 * cfg.q_size * attn_pairs * cfg.layers
             + 2 * s * cfg.hidden * cfg.vocab)
    weights = (cfg.linear_params_per_layer() * cfg.layers + cfg.vocab * cfg.hidden) * itemsize
    kv = kv_cache_bytes(cfg, spec.kv_slots, itemsize)
    acts = cfg.layers * t * (8 * cfg.hidden + 3 * (cfg.q_size + 2 * cfg.kv_size) + 6 * cfg.intermediate) * itemsize
    return flops, weights + kv + acts


class CostGuess:
    """Predicts a measurement's wall time so the budget can drop points before running them.

    Per iteration: FLOPs / rate + bytes / bandwidth + kernel gaps (graphs), or the larger of that and the
    host's eager launch time. Finished measurements rescale later guesses by the median measured/guessed
    ratio of the same mode and kind (else of the same mode), clamped to [0.5, 10].
    """

    def __init__(self, speed: DeviceSpeed, cfg: ModelConfig, itemsize: int, args: argparse.Namespace):
        self.speed, self.cfg, self.itemsize = speed, cfg, itemsize
        self.warmup, self.min_reps = args.warmup, args.reps
        self.max_reps, self.target_s = max(args.reps, args.max_reps), args.target_s_per_point
        self.ratios: dict[tuple[str, str], list[float]] = {}

    def raw_iteration_s(self, spec: IterationSpec, mode: str) -> float:
        flops, nbytes = iteration_work(spec, self.cfg, self.itemsize)
        kernels = self.cfg.layers * 20 + 10
        device = flops / self.speed.flops + nbytes / self.speed.bandwidth + kernels * self.speed.kernel_gap_s
        if mode == "graph":
            return device
        return max(device, self.cfg.layers * EAGER_OPS_PER_LAYER * self.speed.host_op_s)

    def iteration_s(self, spec: IterationSpec, mode: str) -> float:
        ratios = self.ratios.get((mode, spec.kind)) or [r for (m, _), rs in self.ratios.items() if m == mode
                                                        for r in rs]
        scale = min(10.0, max(0.5, float(np.median(ratios)))) if ratios else 1.0
        return self.raw_iteration_s(spec, mode) * scale

    def reps(self, m: Measurement) -> int:
        """Enough repetitions for ~target_s of timed work, at least min_reps, at most max_reps."""
        it = self.iteration_s(m.spec, m.mode)
        return int(min(self.max_reps, max(self.min_reps, math.ceil(self.target_s / max(it, 1e-6)))))

    def measurement_s(self, m: Measurement) -> float:
        it = self.iteration_s(m.spec, m.mode)
        setup = 0.3 + kv_cache_bytes(self.cfg, m.spec.kv_slots, self.itemsize) / (0.2 * self.speed.bandwidth)
        if m.mode == "graph":
            setup += 3 * max(it, self.iteration_s(m.spec, "eager"))   # side-stream warm-up + capture
        return setup + (self.warmup + self.reps(m)) * it

    def learn(self, m: Measurement, measured_s: float) -> None:
        ratio = measured_s / max(self.raw_iteration_s(m.spec, m.mode), 1e-9)
        self.ratios.setdefault((m.mode, m.spec.kind), []).append(ratio)


def activation_bytes(spec: IterationSpec, cfg: ModelConfig, itemsize: int) -> int:
    """Peak transient memory of one forward pass, generously (rope temporaries, gate/up, logits, masks)."""
    t, s = spec.num_tokens, spec.num_sampled
    per_token = 10 * cfg.hidden + 4 * (cfg.q_size + 2 * cfg.kv_size) + 5 * cfg.intermediate
    mask = max((cfg.heads * c * (p + c) * 4 for c, p in spec.chunks), default=0)   # SDPA fallback, worst case
    return (t * per_token + s * cfg.vocab * 3) * itemsize + mask


# --------------------------------------------------------------------------------------------------
# Environment and CSV
# --------------------------------------------------------------------------------------------------

def environment(device) -> dict[str, str]:
    env = {"gpu": "cpu", "driver": "", "torch": torch.__version__ if torch else "",
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["driver"] = nvidia_driver()
    return env


def nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15, check=False)
        return out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


class CsvSink:
    """Writes the header at once and every row as soon as it exists (flushed and fsynced)."""

    def __init__(self, path: str):
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.fh = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.fh, fieldnames=CSV_HEADER)
        self.writer.writeheader()
        self._flush()
        self.rows: list[dict] = []

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self._flush()
        self.rows.append(row)

    def _flush(self) -> None:
        self.fh.flush()
        try:
            os.fsync(self.fh.fileno())
        except OSError:
            pass

    def close(self) -> None:
        self.fh.close()


# --------------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------------

@dataclass
class Run:
    """Everything shared by the measurements of one invocation."""

    args: argparse.Namespace
    cfg: ModelConfig
    device: "torch.device"
    dtype: "torch.dtype"
    weights: ModelWeights
    attention: object
    check_note: str
    env: dict[str, str]
    guess: CostGuess
    sink: CsvSink
    t0: float
    graphs_ok: bool = True
    graph_note: str = ""
    dropped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def fits_in_memory(run: Run, spec: IterationSpec, mode: str) -> tuple[bool, str]:
    """Does this shape's KV cache plus activations (twice for a graph's pool) fit in free memory?"""
    if run.device.type != "cuda":
        return True, ""
    itemsize = torch.empty((), dtype=run.dtype).element_size()
    need = kv_cache_bytes(run.cfg, spec.kv_slots, itemsize) + activation_bytes(spec, run.cfg, itemsize) * (
        2 if mode == "graph" else 1)
    for attempt in range(2):
        if attempt:
            gc.collect()               # only when short: normal points leave no reference cycles behind
        torch.cuda.empty_cache()       # cached blocks go back to the driver before we look
        free, total = torch.cuda.mem_get_info(run.device)
        margin = 1.5 * 2**30 + 0.03 * total
        if need + margin <= free:
            return True, ""
    return False, f"needs {need / 2**30:.1f} GiB + {margin / 2**30:.1f} GiB margin, {free / 2**30:.1f} GiB free"


def measure(run: Run, m: Measurement) -> dict:
    """Build the batch and cache, (capture and) time one measurement, return its CSV row."""
    spec = m.spec
    layout = BatchLayout.from_spec(spec)
    reps = run.guess.reps(m)
    with torch.inference_mode():
        run.weights.ensure_rope(layout.max_k())
        timing, finite = _timed_run(run, m, layout, reps)
    median, p10, p90 = timing.stats()
    run.guess.learn(m, median)
    note = [f"attn={run.attention.name}", run.check_note,
            f"graph=captured {run.graph_note}" if m.mode == "graph" else "graph=no",
            f"wall_median_s={float(np.median(timing.wall_s)):.6g}",
            "finite=yes" if finite else "finite=NO", "weights=not-rotated", f"dtype={str(run.dtype)[6:]}"]
    if layout.max_k() > run.cfg.max_position:
        note.append(f"beyond_native_ctx={run.cfg.max_position}")
    if not finite:
        log(f"{PROG}: WARNING non-finite outputs for {m.mode} {spec.label()}")
    return {"kind": spec.kind, "mode": m.mode, "model": run.cfg.name, "layers": run.cfg.layers,
            "chunks": spec.chunks_text(), "decodes": spec.decodes_text(), "num_tokens": spec.num_tokens,
            "num_sampled": spec.num_sampled, "median_s": f"{median:.6e}", "p10_s": f"{p10:.6e}",
            "p90_s": f"{p90:.6e}", "reps": len(timing.times_s), "note": " ".join(note), **run.env}


def _timed_run(run: Run, m: Measurement, layout: BatchLayout, reps: int) -> tuple[Timing, bool]:
    """Allocate this shape's batch and KV cache, time it, and free everything before returning."""
    batch = build_batch(layout, run.cfg, run.device, run.args.seed)
    cache = alloc_kv_cache(run.cfg, layout.kv_slots, run.device, run.dtype)
    step = None
    try:
        make = graph_step if m.mode == "graph" else eager_step
        step = make(run.weights, kv_views(cache), batch, run.attention)
        planned_s = reps * run.guess.iteration_s(m.spec, m.mode)
        guard = 4 * max(run.args.target_s_per_point, planned_s)
        timing = time_step(step, run.device, run.args.warmup, reps, run.args.reps, guard)
        return timing, outputs_finite(step, run.cfg.vocab)
    finally:
        del step, cache, batch
        release_memory(run.device)


GRAPH_CHECK_SPECS = (IterationSpec(chunks=((8, 0), (5, 16)), decodes=((2, 16),)), IterationSpec(decodes=((4, 16),)))


def check_graph(run: Run) -> float:
    """Capture and replay small mixed and decode-only iterations; return the largest relative error of
    their logits against eager runs of the same iterations."""
    return max(_check_graph_one(run, spec) for spec in GRAPH_CHECK_SPECS)


def _check_graph_one(run: Run, spec: IterationSpec) -> float:
    """Same cache state for both runs: each rewrites the same rows with the same K/V before reading."""
    layout = BatchLayout.from_spec(spec)
    with torch.inference_mode():
        run.weights.ensure_rope(layout.max_k())
        batch = build_batch(layout, run.cfg, run.device, run.args.seed)
        kv = kv_views(alloc_kv_cache(run.cfg, layout.kv_slots, run.device, run.dtype))
        eager = forward(run.weights, kv, batch, run.attention)[1].float()
        step = graph_step(run.weights, kv, batch, run.attention)
        step.run()
        torch.cuda.synchronize()
        replayed = step.outputs()[1].float()
        err = float((replayed - eager).norm() / eager.norm())
    del step, kv, batch
    release_memory(run.device)
    return err


def preflight_graphs(run: Run) -> bool:
    """Disable graph mode up front if capture or replay is broken here; False if the device died."""
    try:
        err, why = check_graph(run), ""
    except Exception as exc:  # noqa: BLE001
        err, why = float("nan"), describe(exc)
    if why or not err <= check_tolerance(run.dtype):
        run.graphs_ok = False
        log(f"{PROG}: CUDA graph check failed ({why or f'relative error {err:.2e} vs eager'}); "
            "running eager mode only")
        return device_usable(run.device)
    run.graph_note = f"graph_check_relerr={err:.1e}"
    log(f"{PROG}: CUDA graph capture/replay check vs eager: relative error {err:.2e}")
    return True


def release_memory(device, collect: bool = False) -> None:
    if collect:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def run_grid(run: Run, grid: list[Measurement]) -> None:
    budget, reserve = run.args.time_budget_s, 3.0
    for index, m in enumerate(grid, 1):
        what = f"{m.spec.kind} {m.mode} {m.spec.label()}"
        if m.mode == "graph" and not run.graphs_ok:
            run.dropped.append(f"{what} (graphs disabled after a capture failure)")
            continue
        guess = run.guess.measurement_s(m)
        if run.elapsed() + guess > budget - reserve:
            run.dropped.append(f"{what} (time budget: needs ~{guess:.1f}s, {budget - run.elapsed():.1f}s left)")
            continue
        ok, why = fits_in_memory(run, m.spec, m.mode)
        if not ok:
            run.dropped.append(f"{what} (memory: {why})")
            log(f"[{index}/{len(grid)} {run.elapsed():6.1f}s] skip {what}: {why}")
            continue
        if not measure_one(run, m, index, len(grid), what):
            break


def measure_one(run: Run, m: Measurement, index: int, total: int, what: str) -> bool:
    """Measure and record one point; False when the device is unusable and the run must stop."""
    t = time.perf_counter()
    try:
        row, out_of_memory = measure(run, m), False
    except Exception as exc:  # noqa: BLE001 - one bad point must not lose the others
        msg, row = describe(exc), None
        out_of_memory = isinstance(exc, torch.cuda.OutOfMemoryError)
    if row is None:   # (outside the except block, so the traceback no longer pins tensors)
        run.failed.append(f"{what} ({msg})")
        log(f"[{index}/{total} {run.elapsed():6.1f}s] FAILED {what}: {msg}")
        if m.mode == "graph" and not out_of_memory:   # a capture problem is systematic; memory is not
            run.graphs_ok = False
            log(f"{PROG}: disabling CUDA graphs for the rest of the run")
        return device_usable(run.device)
    run.sink.write(row)
    log(f"[{index}/{total} {run.elapsed():6.1f}s] {what}: median {float(row['median_s']) * 1e3:.3f} ms "
        f"(p10 {float(row['p10_s']) * 1e3:.3f}, p90 {float(row['p90_s']) * 1e3:.3f}) x{row['reps']} "
        f"in {time.perf_counter() - t:.1f}s")
    return True


def device_usable(device) -> bool:
    """After an error, can the device still run work? (A CUDA fault is sticky and ends the run.)"""
    try:
        release_memory(device, collect=True)   # an exception's traceback may hold tensors in a cycle
        if device.type == "cuda":
            (torch.ones(8, device=device) * 2).sum().item()
        return True
    except Exception as exc:  # noqa: BLE001
        log(f"{PROG}: the device is unusable after an error ({describe(exc)}); stopping. "
            "Rows written so far are in the CSV.")
        return False


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    log(f"\n{'kind':8} {'mode':5} {'decodes':>10} {'chunks':>22} {'tokens':>7} {'median ms':>10} "
        f"{'p10 ms':>9} {'p90 ms':>9} {'tok/s':>10}")
    for r in rows:
        med = float(r["median_s"])
        chunks = r["chunks"] if len(r["chunks"]) <= 22 else r["chunks"][:19] + "..."
        log(f"{r['kind']:8} {r['mode']:5} {r['decodes']:>10} {chunks:>22} {r['num_tokens']:>7} "
            f"{med * 1e3:10.3f} {float(r['p10_s']) * 1e3:9.3f} {float(r['p90_s']) * 1e3:9.3f} "
            f"{int(r['num_tokens']) / med:10.0f}")


def graphs_supported(device_type: str) -> bool:
    return device_type == "cuda"


def select_grid(args: argparse.Namespace, device_type: str) -> list[Measurement]:
    grid = quick_grid() if args.quick else full_grid()
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    kinds = {k.strip() for k in args.kinds.split(",") if k.strip()}
    if not graphs_supported(device_type) and "graph" in modes:
        log(f"{PROG}: CUDA graphs need a CUDA device; running eager mode only")
        modes.discard("graph")
    return [m for m in grid if m.mode in modes and m.spec.kind in kinds]


def order_grid(grid: list[Measurement], guess: CostGuess) -> list[Measurement]:
    """Visit points by tier, cheapest first within a tier: what the budget drops is the tail."""
    return sorted(grid, key=lambda m: (m.tier, guess.measurement_s(m)))


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="reference_executor.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="CSV file to write (rows are appended as they finish)")
    p.add_argument("--model", default="llama-3-8b", choices=sorted(MODELS))
    p.add_argument("--layers", type=int, default=None, help="override the layer count (recorded in the CSV)")
    p.add_argument("--quick", action="store_true", help="a small grid touching every path")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (testing only)")
    p.add_argument("--dtype", default=None, choices=["bfloat16", "float16", "float32"],
                   help="default bfloat16 on CUDA, float32 on the CPU")
    p.add_argument("--modes", default="graph,eager", help="comma list of graph, eager")
    p.add_argument("--kinds", default="prefill,decode,mixed", help="comma list of prefill, decode, mixed")
    p.add_argument("--time-budget-s", type=float, default=300.0,
                   help="wall-clock budget for the whole run; points that would overrun are dropped")
    p.add_argument("--attention", default="auto", choices=["auto", "varlen", "sdpa"])
    p.add_argument("--warmup", type=int, default=MIN_WARMUP, help=f"warm-up runs per point (>= {MIN_WARMUP})")
    p.add_argument("--reps", type=int, default=MIN_REPS, help=f"minimum timed repetitions (>= {MIN_REPS})")
    p.add_argument("--max-reps", type=int, default=40, help="repetitions cap for short iterations")
    p.add_argument("--target-s-per-point", type=float, default=0.5,
                   help="aim for this much timed work per point (within --reps..--max-reps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dry-run", action="store_true", help="print the ordered plan with time guesses; run nothing")
    p.add_argument("--assume-gpu", default=None, choices=sorted(SPEEDS),
                   help="device speeds for --dry-run (default: detect, else h100)")
    shape = p.add_argument_group("shape overrides (for tests and what-ifs; recorded in the model column)")
    shape.add_argument("--tiny", action="store_true", help=f"tiny shape {TINY_SHAPE}, 2 layers unless --layers")
    for name in ("hidden", "heads", "kv-heads", "head-dim", "intermediate", "vocab"):
        shape.add_argument(f"--{name}", type=int, default=None)
    args = p.parse_args(argv)
    if args.warmup < MIN_WARMUP or args.reps < MIN_REPS:
        p.error(f"--warmup must be >= {MIN_WARMUP} and --reps >= {MIN_REPS}")
    if args.layers is not None and args.layers < 1:
        p.error("--layers must be >= 1")
    for option, allowed in (("modes", {"graph", "eager"}), ("kinds", {"prefill", "decode", "mixed"})):
        values = {v.strip() for v in getattr(args, option).split(",") if v.strip()}
        if not values or values - allowed:
            p.error(f"--{option} takes a comma list of {', '.join(sorted(allowed))}")
    return args


def dry_run(args: argparse.Namespace, cfg: ModelConfig) -> int:
    """Print the ordered plan with predicted seconds and which points would not fit (no torch needed)."""
    speed = SPEEDS[args.assume_gpu or "h100"]
    device_type = "cpu" if speed.name == "cpu" else "cuda"
    itemsize = 4 if (args.dtype == "float32" or (args.dtype is None and device_type == "cpu")) else 2
    guess = CostGuess(speed, cfg, itemsize, args)
    grid = order_grid(select_grid(args, device_type), guess)
    weights = (cfg.linear_params_per_layer() * cfg.layers + 2 * cfg.vocab * cfg.hidden) * itemsize
    free = speed.memory_bytes - weights - 1.5 * 2**30
    total, kept = 20.0, 0   # ~20 s: interpreter, CUDA context, weights, attention check
    print(f"plan for {cfg.name} x{cfg.layers} layers on {speed.name} (weights {weights / 2**30:.1f} GiB); "
          f"guesses are conservative")
    for m in grid:
        need = kv_cache_bytes(cfg, m.spec.kv_slots, itemsize) + activation_bytes(m.spec, cfg, itemsize)
        if need + 0.03 * speed.memory_bytes > free:
            print(f"  skip(memory) tier {m.tier} {m.spec.kind:7} {m.mode:5} {m.spec.label()}")
            continue
        it, reps, secs = guess.iteration_s(m.spec, m.mode), guess.reps(m), guess.measurement_s(m)
        status = "run " if total + secs <= args.time_budget_s - 3.0 else "drop"
        if status == "run ":
            total, kept = total + secs, kept + 1
        print(f"  {status} tier {m.tier} {m.spec.kind:7} {m.mode:5} {m.spec.label():28} iter ~{it * 1e3:9.2f} ms "
              f"x{reps:<3} ~{secs:6.2f} s  (cumulative {total:6.1f} s)")
    print(f"total: {kept}/{len(grid)} measurements in ~{total:.0f} s (budget {args.time_budget_s:.0f} s)")
    return 0


def setup_device(args: argparse.Namespace):
    """The torch device and dtype, or an exit code with one clear line."""
    if torch is None:
        log(f"{PROG}: PyTorch is not installed (pip install torch numpy)")
        return None, None, 2
    try:
        device = torch.device(args.device)
    except RuntimeError:
        log(f"{PROG}: unsupported device {args.device!r} (use cuda, cuda:N or cpu)")
        return None, None, 2
    if device.type == "cuda" and not torch.cuda.is_available():
        log(f"{PROG}: --device {args.device} but no CUDA device is available (torch {torch.__version__}, "
            f"CUDA build {torch.version.cuda}); use --device cpu for a test run")
        return None, None, 2
    if device.type not in ("cuda", "cpu"):
        log(f"{PROG}: unsupported device {args.device!r} (use cuda, cuda:N or cpu)")
        return None, None, 2
    if device.type == "cuda":   # pin an explicit index: every torch.cuda query below then names it
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    return device, dtype, 0


def main(argv: Sequence[str] | None = None) -> int:
    t0 = time.perf_counter()
    args = parse_args(argv)
    try:
        cfg = resolve_model(args)
    except ValueError as exc:
        log(f"{PROG}: {exc}")
        return 2
    if args.dry_run:
        return dry_run(args, cfg)
    device, dtype, rc = setup_device(args)
    if rc:
        return rc
    sink = CsvSink(args.out)   # the header exists from the start, whatever happens next
    try:
        return measure_all(args, cfg, device, dtype, sink, t0)
    finally:
        sink.close()


def measure_all(args: argparse.Namespace, cfg: ModelConfig, device, dtype, sink: CsvSink, t0: float) -> int:
    env = environment(device)
    log(f"{PROG}: {cfg.name} x{cfg.layers} layers, {str(dtype)[6:]} on {env['gpu']} (torch {env['torch']}, "
        f"driver {env['driver'] or '?'})")
    with torch.inference_mode():
        weights = init_weights(cfg, device, dtype, args.seed)
    log(f"{PROG}: weights {weights.nbytes() / 2**30:.2f} GiB initialised in {time.perf_counter() - t0:.1f}s")
    try:
        attention, err, problems = select_attention(args.attention, cfg, device, dtype)
    except RuntimeError as exc:
        log(f"{PROG}: {exc}")
        return 1
    for problem in problems:
        log(f"{PROG}: attention path not used: {problem}")
    log(f"{PROG}: attention {attention.name}, check vs fp32 reference: relative error {err:.2e}")
    itemsize = torch.empty((), dtype=dtype).element_size()
    guess = CostGuess(speed_for(env["gpu"]), cfg, itemsize, args)
    grid = order_grid(select_grid(args, device.type), guess)
    run = Run(args, cfg, device, dtype, weights, attention, f"attn_check_relerr={err:.1e}", env, guess, sink, t0)
    if any(m.mode == "graph" for m in grid) and not preflight_graphs(run):
        return summarize(run, len(grid))
    run_grid(run, grid)
    return summarize(run, len(grid))


def summarize(run: Run, planned: int) -> int:
    print_table(run.sink.rows)
    for item in run.dropped:
        log(f"{PROG}: dropped {item}")
    for item in run.failed:
        log(f"{PROG}: failed  {item}")
    log(f"{PROG}: {len(run.sink.rows)}/{planned} rows written to {run.args.out} in {run.elapsed():.1f}s "
        f"({len(run.dropped)} dropped, {len(run.failed)} failed)")
    return 0 if run.sink.rows else 1


if __name__ == "__main__":
    sys.exit(main())
