"""The paged KV cache of one replica: a pool of fixed-size blocks, with optional prefix caching.

Invariant (checked by tests): ``used + free == total`` at every instant, and ``used <= total``.

Prefix caching (off unless a :class:`PrefixCache` is attached) keeps the KV of prompt prefixes, keyed by a
chain of content hashes, at the granularity of one *prefix unit* of ``unit_tokens`` tokens (a multiple of
the block size; Mooncake's ``hash_ids`` cover 512 tokens each). A unit referenced by running requests is
counted once in ``used``. A unit no running request references is *evictable*: it keeps its blocks but
counts as free, and is evicted least-recently-used first when blocks are allocated.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


def blocks_for(tokens: int | np.ndarray, block_size: int) -> int | np.ndarray:
    """Blocks needed to hold ``tokens`` tokens (ceil division)."""
    return -(-tokens // block_size)


def block_count(tokens: int, block_size: int) -> int:
    """:func:`blocks_for` of one count (the per-request hot path: plain ints, no numpy)."""
    return -(-tokens // block_size)


class PrefixCache:
    """Hash-chained prefix units kept in the KV cache (see module docstring)."""

    def __init__(self, unit_tokens: int, block_size: int) -> None:
        if unit_tokens % block_size:
            raise ValueError(f"prefix unit of {unit_tokens} tokens is not a multiple of block size {block_size}")
        self.unit_tokens = unit_tokens
        self.unit_blocks = unit_tokens // block_size
        self.refs: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.lookup_tokens = 0
        self.hit_tokens = 0

    @property
    def evictable_blocks(self) -> int:
        """Blocks held only by the cache (free to evict)."""
        return len(self.lru) * self.unit_blocks

    def cacheable_units(self, prompt_tokens: int, n_keys: int) -> int:
        """Units of a prompt that may be cached: full units, never including the prompt's last token."""
        return min(n_keys, max(0, (prompt_tokens - 1) // self.unit_tokens))

    def match(self, keys: np.ndarray, prompt_tokens: int) -> int:
        """Number of leading units of ``keys`` present in the cache."""
        n = 0
        for key in keys[: self.cacheable_units(prompt_tokens, len(keys))]:
            if int(key) not in self.refs:
                break
            n += 1
        return n

    def reference(self, key: int) -> int:
        """Add a reference to a cached unit; returns the blocks that moved from evictable to used."""
        if self.refs[key] == 0:
            del self.lru[key]
            self.refs[key] = 1
            return self.unit_blocks
        self.refs[key] += 1
        return 0

    def add(self, key: int) -> bool:
        """Register a unit the caller just computed, referenced once; False if it is already cached."""
        if key in self.refs:
            return False
        self.refs[key] = 1
        return True

    def unreference(self, key: int) -> int:
        """Drop a reference; returns the blocks that moved from used to evictable (MRU end of the LRU)."""
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.lru[key] = None
            return self.unit_blocks
        return 0

    def evict_for(self, free_blocks_after: int) -> None:
        """Evict least-recently-used units until the cached-but-free blocks fit in ``free_blocks_after``."""
        while self.lru and self.evictable_blocks > free_blocks_after:
            key, _ = self.lru.popitem(last=False)
            del self.refs[key]


class KVBlockPool:
    """Block accounting for one replica's KV cache (``total`` blocks of ``block_size`` tokens)."""

    def __init__(self, total_blocks: int, block_size: int, prefix_cache: PrefixCache | None = None) -> None:
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.used = 0
        self.prefix_cache = prefix_cache

    @property
    def free(self) -> int:
        """Blocks available to allocate now (unreferenced cached prefix blocks count as free)."""
        return self.total - self.used

    def allocate(self, n: int) -> None:
        """Take ``n`` free blocks, evicting cached prefixes as needed. The caller has checked ``n <= free``."""
        if n > self.free:
            raise RuntimeError(f"KV over-allocation: {n} blocks requested, {self.free} free")
        self.used += n
        if self.prefix_cache is not None:
            self.prefix_cache.evict_for(self.total - self.used)

    def release(self, n: int) -> None:
        """Return ``n`` blocks to the free pool."""
        if n > self.used:
            raise RuntimeError(f"KV release of {n} blocks with only {self.used} in use")
        self.used -= n


def chain_keys(hashes: np.ndarray) -> np.ndarray:
    """Turn per-unit content hashes into prefix-chained keys (equal key = equal prefix up to that unit).

    Deterministic across processes (hashes of int tuples do not depend on PYTHONHASHSEED).
    """
    keys = np.empty(len(hashes), dtype=np.int64)
    prev = 0
    for i, h in enumerate(hashes):
        prev = hash((prev, int(h))) & 0x7FFFFFFFFFFFFFFF
        keys[i] = prev
    return keys
