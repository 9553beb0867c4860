"""Engine profiles: what the serving engine adds on the host side of each iteration.

Separate from the GPU calibration: the same GPU runs faster under an engine that replays CUDA graphs than
under one that launches every kernel eagerly. A profile prices, per iteration,
``fixed_s + per_layer_s x layers + per_seq_s x sequences + per_token_s x new tokens``, with one set of terms
for iterations replayed from CUDA graphs (decode-only batches of at most ``graph_max_seqs`` sequences) and
another for iterations run eagerly (prefill, mixed, or larger decode batches).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from llmsim.costmodel.batch import BatchFeatures
from llmsim.errors import InputError, did_you_mean, unknown_name
from llmsim.specs._yaml import is_file, read_yaml_mapping


@dataclass(frozen=True)
class HostTerms:
    """Host-side seconds of one iteration: fixed + per layer + per sequence + per new token.

    ``launch_s`` is the host time to launch one kernel when kernels are launched one by one (eager mode):
    a kernel shorter than that leaves the GPU waiting, so each operator then takes at least
    ``kernels x launch_s`` (applied by the cost model operator by operator).
    """

    fixed_s: float = 0.0
    per_layer_s: float = 0.0
    per_seq_s: float = 0.0
    per_token_s: float = 0.0
    launch_s: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
                raise InputError("expected a number of seconds", where=f.name, value=value)

    def seconds(self, layers: int, seqs: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Host seconds per iteration (arrays)."""
        return self.fixed_s + self.per_layer_s * layers + self.per_seq_s * seqs + self.per_token_s * tokens


@dataclass(frozen=True)
class EngineProfile:
    """Host overhead for graph-replayed and eager iterations (see module docstring)."""

    name: str
    graph: HostTerms = HostTerms()
    eager: HostTerms = HostTerms()
    graph_max_seqs: int = 512
    source: str = ""

    def graphed(self, f: BatchFeatures) -> np.ndarray:
        """True for iterations replayed from CUDA graphs (decode-only, at most ``graph_max_seqs``)."""
        return (f.prefill_tokens == 0) & (f.decode_seqs <= self.graph_max_seqs)

    def overhead_s(self, f: BatchFeatures, layers: int) -> np.ndarray:
        """Host seconds added to each iteration in ``f``."""
        seqs = f.decode_seqs + f.prefill_chunks
        tokens = f.new_tokens
        graphed = self.graphed(f)
        active = tokens > 0
        host = np.where(graphed, self.graph.seconds(layers, seqs, tokens), self.eager.seconds(layers, seqs, tokens))
        return np.where(active, host, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML."""
        return {"name": self.name, "source": self.source, "graph_max_seqs": self.graph_max_seqs,
                "graph": dataclasses.asdict(self.graph), "eager": dataclasses.asdict(self.eager)}

    def save(self, path: Path) -> None:
        """Write the profile as YAML."""
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


#: No host overhead: the pure GPU time of a captured forward pass (what the suite and the reference
#: executor's graph mode measure).
CUDA_GRAPHS = EngineProfile(name="cuda-graphs", source="no host overhead (pure GPU time of captured graphs)")


def builtin_engine_dir() -> Path:
    """Folder of the built-in engine profiles shipped with llmsim."""
    return Path(str(resources.files("llmsim"))) / "data" / "engines"


def builtin_engine_names() -> list[str]:
    """Names of the built-in engine profiles."""
    return sorted(["cuda-graphs"] + [p.stem for p in builtin_engine_dir().glob("*.yaml")])


def load_engine(name_or_path: str | Path, *, base_dir: Path | None = None) -> EngineProfile:
    """A built-in engine profile by name, or a profile YAML by path."""
    text = str(name_or_path)
    if text == "cuda-graphs":
        return CUDA_GRAPHS
    path = builtin_engine_dir() / f"{text}.yaml"
    if not is_file(path):
        if "/" not in text and not text.endswith((".yaml", ".yml")):
            raise unknown_name("engine profile", text, builtin_engine_names())
        path = Path(text) if base_dir is None or Path(text).is_absolute() else base_dir / text
        if not is_file(path):
            raise InputError(f"engine profile not found: {path}", value=text)
    return engine_from_mapping(read_yaml_mapping(path), source=path)


ENGINE_KEYS = ("name", "source", "graph_max_seqs", "graph", "eager")


def engine_from_mapping(data: Mapping[str, Any], *, source: object) -> EngineProfile:
    """Validate a mapping (from YAML) into an :class:`EngineProfile`.

    Every host term must be a finite number of seconds >= 0; unknown keys are errors (with a suggestion).
    """
    if not data:
        raise InputError("empty engine profile; expected graph: and/or eager: host terms", source=source)
    for key in data:
        if key not in ENGINE_KEYS:
            raise InputError(f"unknown engine-profile field{did_you_mean(key, ENGINE_KEYS)}; expected one of "
                             f"{', '.join(ENGINE_KEYS)}", source=source, where=key)
    terms = {mode: _host_terms(data.get(mode), mode, source) for mode in ("graph", "eager")}
    max_seqs = data.get("graph_max_seqs", 512)
    if isinstance(max_seqs, bool) or not isinstance(max_seqs, int) or max_seqs < 0:
        raise InputError("expected an integer >= 0", source=source, where="graph_max_seqs", value=max_seqs)
    for key in ("name", "source"):
        if key in data and not isinstance(data[key], str):
            raise InputError("expected text", source=source, where=key, value=data[key])
    return EngineProfile(name=data.get("name", Path(str(source)).stem), graph=terms["graph"],
                         eager=terms["eager"], graph_max_seqs=max_seqs, source=data.get("source", str(source)))


def _host_terms(raw: Any, mode: str, source: object) -> HostTerms:
    """The ``graph:`` or ``eager:`` section: a mapping of host terms, each a finite number of seconds >= 0."""
    if raw is None:
        return HostTerms()
    names = [f.name for f in dataclasses.fields(HostTerms)]
    if not isinstance(raw, dict):
        raise InputError(f"expected a mapping of host terms ({', '.join(names)})", source=source, where=mode,
                         value=raw)
    for key, value in raw.items():
        if key not in names:
            raise InputError(f"unknown host term{did_you_mean(key, names)}; expected one of {', '.join(names)}",
                             source=source, where=f"{mode}.{key}")
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(value) and value >= 0
        except OverflowError:
            ok = False
        if not ok:
            raise InputError("expected a number of seconds >= 0", source=source, where=f"{mode}.{key}", value=value)
    return HostTerms(**{k: float(v) for k, v in raw.items()})
