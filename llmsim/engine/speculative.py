"""Speculative decoding: a drafter proposes k tokens, the target model verifies them in one pass.

Scenario syntax (the ``speculative:`` section; ``null``, absent or ``method: none`` = off)::

    speculative:
      method: eagle                 # draft_model | eagle | mtp | none
      num_speculative_tokens: 3     # k: tokens the drafter proposes per round
      acceptance: 0.7               # per-token probability, or {dist: beta, mean: 0.7, concentration: 10}
      draft_cost_fraction: 0.1      # eagle / mtp: one draft step, as a fraction of a target decode of the batch
      # draft_model: llama-3-8b     # draft_model: any model spec, run on the target's GPUs, TP and precision

One *round* of a decoding sequence with ``c`` cached tokens and ``m`` output tokens still to produce:

* the drafter proposes ``k_r = min(k, m - 1)`` tokens (fewer only in the last round, so that a request never
  produces more than its ``output_tokens``). The batch drafts in lockstep: draft step ``j`` (``0 <= j < k``)
  is a decode iteration of the sequences with ``k_r > j``, at context ``c + j``, priced by the draft model's
  cost model, or for a self-drafting head (EAGLE, MTP) as ``draft_cost_fraction`` x the target model's
  decode iteration of those sequences;
* the target verifies the ``k_r + 1`` tokens (the last output token and the drafts) in one forward pass,
  priced as a prompt chunk ``PromptChunk(k_r + 1, c)`` whose ``k_r + 1`` rows are all sampled;
* the sequence gains ``L + 1`` tokens, ``L`` = the number of leading successes of ``k_r`` Bernoulli(a)
  trials (the accepted drafts, then the target's own token). With ``k_r = k`` the expected gain is
  ``(1 - a^(k+1)) / (1 - a)``; its KV cache grows by the same number of tokens.

Acceptance draws are counter-based: round ``(request r, g tokens generated when it starts)`` draws one
uniform ``u = splitmix64(key, r, g)`` and ``L = #{j in 1..k_r : u < a^j}`` (so P(L >= j) = a^j, the law of the
leading successes of independent trials). ``g`` grows by at least one every round and survives preemption,
so it identifies the round; the draws therefore do not depend on how iterations are grouped or simulated.
``key`` and the per-request acceptances of ``dist: beta`` come from the scenario seed (stream 1).

Approximations (also in ``docs/cost_model.md``): the draft model's KV cache is taken to hold every token the
target holds (vLLM lets the draft catch up on the bonus token in its next step); a self-drafting head's
weights and KV are not counted in memory; a draft model's are (weights, and KV bytes per token added to the
target's); rejected draft tokens keep their KV slots until the next round overwrites them (vLLM's lookahead
slots), so a sequence holds blocks for ``c + k_r + 1`` tokens during a round.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmsim.costmodel.memory import MemoryPlan, kv_bytes_per_token_per_gpu, weight_bytes_per_gpu
from llmsim.costmodel.operators import Precision
from llmsim.costmodel.roofline import CostModel
from llmsim.errors import InputError
from llmsim.specs.model import ModelSpec, load_model
from llmsim.specs.parallelism import Parallelism
from llmsim.workload._keys import check_keys, choice, mapping, number

METHODS = ("draft_model", "eagle", "mtp", "none")
SELF_DRAFTING = ("eagle", "mtp")
KEYS = ("method", "num_speculative_tokens", "acceptance", "draft_cost_fraction", "draft_model")
ACCEPTANCE_DISTS = ("fixed", "beta")
MAX_SPECULATIVE_TOKENS = 64


# -- configuration ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Acceptance:
    """Per-token acceptance probability of a request: ``mean`` for all, or Beta(mean, concentration) per request.

    A Beta with mean ``m`` and concentration ``n`` has parameters ``alpha = m n``, ``beta = (1 - m) n``.
    """

    mean: float
    concentration: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.mean <= 1.0:
            raise InputError("expected a probability from 0 to 1", where="mean", value=self.mean)
        if self.concentration is not None and (not 0.0 < self.mean < 1.0 or not self.concentration > 0):
            raise InputError("a beta needs 0 < mean < 1 and concentration > 0",
                             value={"mean": self.mean, "concentration": self.concentration})

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Acceptance probabilities of ``n`` requests (float64 in [0, 1]), drawn once each from ``rng``."""
        if self.concentration is None:
            return np.full(n, self.mean)
        return rng.beta(self.mean * self.concentration, (1.0 - self.mean) * self.concentration, size=n)

    def moment(self, j: int) -> float:
        """E[a^j] over requests: ``mean^j``, or for a Beta ``prod_{i<j} (alpha + i) / (alpha + beta + i)``."""
        if self.concentration is None:
            return self.mean ** j
        alpha, total = self.mean * self.concentration, self.concentration
        return float(np.prod([(alpha + i) / (total + i) for i in range(j)]))

    def expected_tokens_per_round(self, k: int) -> float:
        """Expected tokens a full round yields, ``sum_{j=0..k} E[a^j]`` (= (1 - a^(k+1)) / (1 - a) for fixed a)."""
        return float(sum(self.moment(j) for j in range(k + 1)))

    def to_dict(self) -> float | dict[str, Any]:
        """The scenario form: a number, or ``{dist: beta, mean, concentration}``."""
        if self.concentration is None:
            return self.mean
        return {"dist": "beta", "mean": self.mean, "concentration": self.concentration}


@dataclass(frozen=True)
class SpeculativeConfig:
    """The validated ``speculative:`` section (see module docstring); ``method == "none"`` is off."""

    method: str
    num_speculative_tokens: int = 0
    acceptance: Acceptance | None = None
    draft_cost_fraction: float | None = None
    draft_model: ModelSpec | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"expected one of {', '.join(METHODS)}", where="method", value=self.method)
        if not self.enabled:
            return
        if not 1 <= self.num_speculative_tokens <= MAX_SPECULATIVE_TOKENS:
            raise InputError(f"expected an integer from 1 to {MAX_SPECULATIVE_TOKENS}",
                             where="num_speculative_tokens", value=self.num_speculative_tokens)
        if self.acceptance is None:
            raise InputError("missing required key 'acceptance'", where="acceptance")
        if self.method in SELF_DRAFTING and self.draft_cost_fraction is None:
            raise InputError(f"missing required key 'draft_cost_fraction' (method {self.method})",
                             where="draft_cost_fraction")
        if self.method == "draft_model" and self.draft_model is None:
            raise InputError("missing required key 'draft_model' (method draft_model)", where="draft_model")

    @property
    def enabled(self) -> bool:
        """True when the replicas speculate."""
        return self.method != "none"

    @classmethod
    def from_dict(cls, data: Any, *, source: object = None, base_dir: Path | None = None,
                  where: str = "speculative") -> "SpeculativeConfig":
        """Validate the ``speculative:`` mapping; every error is an :class:`InputError` naming ``where.key``.

        ``method`` may be left out when ``draft_model`` is given. ``draft_cost_fraction`` belongs to the
        self-drafting methods and ``draft_model`` to ``draft_model``; ``method: none`` accepts (and checks)
        both, so that a scenario can carry the settings and a ``--set speculative.method=...`` turn them on.
        """
        d = mapping(data, where, source)
        check_keys(d, KEYS, where, source)
        method = d.get("method", "draft_model" if d.get("draft_model") is not None else None)
        if method is None:
            raise InputError(f"missing required key 'method' (one of {', '.join(METHODS)})", source=source,
                             where=f"{where}.method")
        method = choice(method, METHODS, "speculative method", f"{where}.method", source)
        k = d.get("num_speculative_tokens")
        k = 0 if k is None else number(k, f"{where}.num_speculative_tokens", source, minimum=1, integer=True)
        acceptance = None if d.get("acceptance") is None else _acceptance(d["acceptance"], f"{where}.acceptance",
                                                                           source)
        fraction = d.get("draft_cost_fraction")
        if fraction is not None:
            fraction = number(fraction, f"{where}.draft_cost_fraction", source, positive=True)
            if method == "draft_model":
                raise InputError("draft_cost_fraction is for eagle and mtp (a draft model is priced by the cost "
                                 "model); remove it or set it to null", source=source,
                                 where=f"{where}.draft_cost_fraction", value=fraction)
        draft = d.get("draft_model")
        if draft is not None:
            if method in SELF_DRAFTING:
                raise InputError(f"draft_model is for method draft_model, not {method}; remove it or set it to "
                                 "null", source=source, where=f"{where}.draft_model", value=draft)
            draft = _draft_model(draft, f"{where}.draft_model", source, base_dir)
        try:
            return cls(method, int(k), acceptance, fraction, draft)
        except InputError as exc:
            raise exc.located(source=source, where_prefix=where) from None

    def summary(self) -> dict[str, Any]:
        """The configuration as reported in ``summary.json`` (with the expected tokens per full round)."""
        out: dict[str, Any] = {"method": self.method, "num_speculative_tokens": self.num_speculative_tokens,
                               "acceptance": self.acceptance.to_dict()}
        if self.draft_model is not None:
            out["draft_model"] = self.draft_model.name
        if self.draft_cost_fraction is not None:
            out["draft_cost_fraction"] = self.draft_cost_fraction
        out["expected_tokens_per_round"] = self.acceptance.expected_tokens_per_round(self.num_speculative_tokens)
        return out


def _acceptance(value: Any, where: str, source: object) -> Acceptance:
    """A probability, or ``{dist: beta, mean, concentration}`` / ``{dist: fixed, value}``."""
    if not isinstance(value, dict):
        p = number(value, where, source, minimum=0.0)
        if p > 1:
            raise InputError("expected a probability from 0 to 1", source=source, where=where, value=value)
        return Acceptance(p)
    dist = choice(value.get("dist"), ACCEPTANCE_DISTS, "acceptance distribution", f"{where}.dist", source)
    keys = ("dist", "value") if dist == "fixed" else ("dist", "mean", "concentration")
    check_keys(value, keys, where, source)
    for key in keys[1:]:
        if value.get(key) is None:
            raise InputError(f"missing required key {key!r}", source=source, where=f"{where}.{key}")
    if dist == "fixed":
        return _acceptance(value["value"], f"{where}.value", source)
    mean = number(value["mean"], f"{where}.mean", source, positive=True)
    if mean >= 1:
        raise InputError("expected a mean strictly between 0 and 1", source=source, where=f"{where}.mean",
                         value=value["mean"])
    return Acceptance(mean, number(value["concentration"], f"{where}.concentration", source, positive=True))


def _draft_model(value: Any, where: str, source: object, base_dir: Path | None) -> ModelSpec:
    """A draft model spec: a built-in name, a HuggingFace config.json or a model YAML."""
    if not isinstance(value, str) or not value.strip():
        raise InputError("expected a built-in model name, a HuggingFace config.json or a model YAML",
                         source=source, where=where, value=value)
    try:
        return load_model(value, base_dir=base_dir)
    except InputError as exc:
        if exc.source is None:
            raise exc.located(source=source, where_prefix=where) from None
        raise


# -- memory ----------------------------------------------------------------------------------------------
def with_draft_model(plan: MemoryPlan, draft: ModelSpec, par: Parallelism, prec: Precision) -> MemoryPlan:
    """The memory plan once a draft model shares the GPUs: its weights come out of the KV budget, and each
    token's KV bytes are the target's plus the draft's (the block pool holds both caches, as in vLLM)."""
    weights = weight_bytes_per_gpu(draft, par, prec)
    kv_bytes = plan.kv_cache_bytes - weights
    per_token = plan.kv_bytes_per_token + kv_bytes_per_token_per_gpu(draft, par, prec)
    if kv_bytes < per_token * plan.block_size:
        raise InputError(f"the draft model {draft.name} ({weights / 2**30:.1f} GiB per GPU) leaves no room for a KV "
                         f"cache", where="speculative.draft_model")
    tokens = int(kv_bytes // per_token)
    blocks = tokens // plan.block_size
    return dataclasses.replace(plan, weight_bytes=plan.weight_bytes + weights, kv_cache_bytes=kv_bytes,
                               kv_bytes_per_token=per_token, kv_tokens=blocks * plan.block_size, kv_blocks=blocks)


# -- counter-based draws ---------------------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser of ``x + golden ratio`` (uint64 arrays, wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def round_uniforms(key: int, request_ids: np.ndarray, counters: np.ndarray) -> np.ndarray:
    """One uniform in [0, 1) per (key, request id, round counter): a pure function, 53 random bits each."""
    ids = np.asarray(request_ids, dtype=np.int64).astype(np.uint64)
    ctr = np.asarray(counters, dtype=np.int64).astype(np.uint64)
    h = splitmix64(splitmix64(splitmix64(np.full(ids.shape, key, dtype=np.uint64)) ^ ids) ^ ctr)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def accepted_drafts(u: np.ndarray, acceptance: np.ndarray, proposed: np.ndarray) -> np.ndarray:
    """Leading accepted drafts of each round: ``#{j in 1..proposed : u < a^j}`` (int64, 0..proposed)."""
    k = int(proposed.max(initial=0))
    powers = np.asarray(acceptance, dtype=np.float64)[:, None] ** np.arange(1, k + 1, dtype=np.float64)
    return np.minimum((u[:, None] < powers).sum(axis=1), proposed)


# -- one round -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Round:
    """One speculative round of a decoding batch, ready to price and apply.

    Attributes:
        produced: output tokens each sequence gains (accepted drafts + 1), int64, >= 1.
        draft_s: seconds of the batch's draft steps.
        verify_tokens: tokens the target verifies, ``sum (k_r + 1)`` (all sampled).
        verify_attn_pairs: causal (query, key) pairs of the verification chunks, ``sum q (c + (q + 1) / 2)``.
        verify_kv_tokens: KV tokens the verification attention reads, ``sum (c + q)``.
    """

    produced: np.ndarray
    draft_s: float
    verify_tokens: float
    verify_attn_pairs: float
    verify_kv_tokens: float


@dataclass(frozen=True, eq=False)
class SpeculativeDecoder:
    """Speculative decoding on one replica: the config, the target and draft cost models, and the draws.

    ``acceptance[r]`` is request ``r``'s per-token acceptance probability; ``key`` seeds the counter-based
    draws. ``draft`` is None for a self-drafting head (priced as a fraction of the target).
    """

    config: SpeculativeConfig
    target: CostModel
    draft: CostModel | None
    acceptance: np.ndarray
    key: int

    @classmethod
    def build(cls, config: SpeculativeConfig, target: CostModel, n_requests: int,
              rng: np.random.Generator) -> "SpeculativeDecoder":
        """The decoder of replicas priced by ``target``; ``rng`` is the scenario's speculative stream."""
        key = int(rng.integers(0, 2**63))
        acceptance = config.acceptance.sample(rng, n_requests)
        draft = None
        if config.draft_model is not None:
            draft = CostModel(config.draft_model, target.gpu, target.parallelism, target.precision,
                              target.calibration, target.engine)
        return cls(config, target, draft, acceptance, key)

    @property
    def lookahead_tokens(self) -> int:
        """KV slots a decoding sequence needs beyond its next token (k, as vLLM's lookahead slots)."""
        return self.config.num_speculative_tokens

    def plan_round(self, kv_len: np.ndarray, generated: np.ndarray, output: np.ndarray,
                   ids: np.ndarray) -> Round:
        """The round of decoding sequences ``ids``; ``kv_len``, ``generated`` and ``output`` are their request
        table entries (int64 arrays aligned with ``ids``)."""
        ctx = kv_len.astype(np.float64)
        proposed = np.minimum(self.config.num_speculative_tokens, output - generated - 1)
        u = round_uniforms(self.key, ids, generated)
        produced = accepted_drafts(u, self.acceptance[ids], proposed) + 1
        q = (proposed + 1).astype(np.float64)
        return Round(produced=produced.astype(np.int64), draft_s=self.draft_seconds(ctx, proposed),
                     verify_tokens=float(q.sum()), verify_attn_pairs=float((q * (ctx + (q + 1) / 2)).sum()),
                     verify_kv_tokens=float((ctx + q).sum()))

    def draft_seconds(self, ctx: np.ndarray, proposed: np.ndarray) -> float:
        """Seconds of the draft steps: step j decodes the sequences with ``proposed > j`` at context ``ctx + j``."""
        total = 0.0
        for j in range(int(proposed.max(initial=0))):
            live = proposed > j
            seqs = float(live.sum())
            total += self.draft_step_s(seqs, float(ctx[live].sum()) + j * seqs)
        return total

    def draft_step_s(self, seqs: float, ctx_tokens: float) -> float:
        """One draft step of ``seqs`` sequences holding ``ctx_tokens`` cached tokens in total (seconds)."""
        if self.draft is not None:
            return self.draft.time_one(0.0, 0.0, 0.0, 0.0, seqs, ctx_tokens, seqs)
        return self.config.draft_cost_fraction * self.target.time_one(0.0, 0.0, 0.0, 0.0, seqs, ctx_tokens, seqs)
