"""How one replica is split over GPUs: tensor parallel (TP) within a stage, pipeline parallel (PP) across stages."""

from __future__ import annotations

from dataclasses import dataclass

from llmsim.errors import InputError
from llmsim.specs.model import ModelSpec


@dataclass(frozen=True)
class Parallelism:
    """``tp`` GPUs shard every layer (weights, heads, KV); ``pp`` stages each hold ``num_layers / pp`` layers.

    A replica uses ``tp * pp`` GPUs.
    """

    tp: int = 1
    pp: int = 1

    def __post_init__(self) -> None:
        for name in ("tp", "pp"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError("expected a positive integer", where=f"parallelism.{name}", value=value)

    @property
    def num_gpus(self) -> int:
        """GPUs per replica."""
        return self.tp * self.pp

    def check_model(self, model: ModelSpec) -> None:
        """Raise :class:`InputError` when this split is impossible for ``model`` (with the numbers)."""
        if model.num_heads % self.tp:
            raise InputError(f"tp={self.tp} does not divide the {model.num_heads} attention heads of {model.name}",
                             where="parallelism.tp", value=self.tp)
        kv = model.num_kv_heads
        if kv % self.tp and self.tp % kv:
            raise InputError(f"tp={self.tp} neither divides nor is a multiple of the {kv} KV heads of {model.name}",
                             where="parallelism.tp", value=self.tp)
        if self.pp > model.num_layers:
            raise InputError(f"pp={self.pp} exceeds the {model.num_layers} layers of {model.name}",
                             where="parallelism.pp", value=self.pp)

    def kv_heads_per_gpu(self, model: ModelSpec) -> int:
        """KV heads each GPU stores: sharded when TP divides them, else replicated (one per GPU, as vLLM does)."""
        return max(1, model.num_kv_heads // self.tp)

    def layers_per_stage(self, model: ModelSpec) -> int:
        """Layers of the largest pipeline stage (the one that sets the stage time)."""
        return -(-model.num_layers // self.pp)
