"""GPU specs: datasheet figures that the roofline prices operators against.

One YAML per GPU lives in ``hardware_profiles/`` (installed as ``llmsim.hardware_profiles``). A user adds a
GPU by writing one YAML file with the same fields and passing its path wherever a hardware name is accepted.
Units are SI: FLOP/s, bytes, bytes/s, seconds, watts; the hourly price is in US dollars per GPU-hour.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from llmsim.errors import InputError, did_you_mean, unknown_name
from llmsim.specs._yaml import is_file, read_yaml_mapping

#: Compute dtypes a GPU may list peaks for (int4 weight-only runs its math in bf16).
COMPUTE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
LINK_KEYS = ("kind", "bandwidth_bytes_per_s", "latency_s")


@dataclass(frozen=True)
class LinkSpec:
    """A point-to-point or collective interconnect: bandwidth per direction (bytes/s) and a per-call latency (s)."""

    kind: str
    bandwidth_bytes_per_s: float
    latency_s: float

    def __post_init__(self) -> None:
        if not self.bandwidth_bytes_per_s > 0:
            raise InputError("expected a positive bandwidth", where="bandwidth_bytes_per_s",
                             value=self.bandwidth_bytes_per_s)
        if not self.latency_s >= 0:
            raise InputError("expected a non-negative latency", where="latency_s", value=self.latency_s)


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model: peaks, memory, cache, links, power and price."""

    name: str
    description: str
    peak_flops_per_s: Mapping[str, float]
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    intra_node_link: LinkSpec
    l2_cache_bytes: float | None = None
    sm_count: int | None = None
    pcie_generation: int | None = None
    tdp_w: float | None = None
    price_per_hour_usd: float = 0.0
    sources: tuple[str, ...] = ()
    path: str = ""

    def __post_init__(self) -> None:
        for key, value in self.peak_flops_per_s.items():
            if key not in COMPUTE_DTYPES:
                raise InputError(f"unknown dtype{did_you_mean(key, COMPUTE_DTYPES)}; expected one of "
                                 f"{', '.join(COMPUTE_DTYPES)}", where=f"peak_flops_per_s.{key}")
            if not (isinstance(value, (int, float)) and value > 0):
                raise InputError("expected a positive number of FLOP/s", where=f"peak_flops_per_s.{key}",
                                 value=value)
        if "bf16" not in self.peak_flops_per_s and "fp16" not in self.peak_flops_per_s:
            raise InputError("a GPU needs at least a bf16 or fp16 peak", where="peak_flops_per_s")
        for key in ("memory_bytes", "memory_bandwidth_bytes_per_s"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and value > 0):
                raise InputError("expected a positive number", where=key, value=value)
        if self.price_per_hour_usd < 0:
            raise InputError("expected a price >= 0", where="price_per_hour_usd", value=self.price_per_hour_usd)

    def peak_for(self, dtype: str) -> float:
        """Dense peak FLOP/s for math in ``dtype``; fp8/int8 fall back to bf16 on GPUs without them."""
        peaks = self.peak_flops_per_s
        if dtype in peaks:
            return float(peaks[dtype])
        if dtype in ("bf16", "fp16"):
            return float(peaks.get("bf16") or peaks["fp16"])
        return self.peak_for("bf16")

    def supports(self, dtype: str) -> bool:
        """True when the GPU has tensor-core math for ``dtype``."""
        return dtype in self.peak_flops_per_s


def builtin_hardware_dir() -> Path:
    """The folder holding the built-in hardware (and calibration) profiles."""
    return Path(str(resources.files("llmsim.hardware_profiles")))


def builtin_hardware_names() -> list[str]:
    """Names of the built-in GPUs (file stems of ``hardware_profiles/*.yaml``, calibrations excluded)."""
    return sorted(p.stem for p in builtin_hardware_dir().glob("*.yaml") if "." not in p.stem)


def resolve_hardware_path(name_or_path: str | Path, *, base_dir: Path | None = None) -> Path:
    """The YAML file behind a built-in name or a user path; :class:`InputError` when there is none."""
    text = str(name_or_path)
    builtin = builtin_hardware_dir() / f"{text}.yaml"
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        if is_file(builtin):
            return builtin
        raise unknown_name("hardware", text, builtin_hardware_names())
    path = Path(text)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if not is_file(path):
        raise InputError(f"hardware file not found: {path} (expected a built-in GPU name or a hardware YAML)",
                         value=text)
    return path


def load_hardware(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None,
                  *, base_dir: Path | None = None) -> GpuSpec:
    """Load a built-in GPU by name or a user's hardware YAML by path, with optional field overrides."""
    path = resolve_hardware_path(name_or_path, base_dir=base_dir)
    data = read_yaml_mapping(path)
    if overrides:
        data = {**data, **dict(overrides)}
    return _from_mapping(data, source=path)


def _from_mapping(data: dict[str, Any], *, source: Path) -> GpuSpec:
    known = [f.name for f in dataclasses.fields(GpuSpec) if f.name != "path"]
    for key in data:
        if key not in known:
            raise InputError(f"unknown hardware field{did_you_mean(key, known)}; expected one of {', '.join(known)}",
                             source=source, where=key)
    for key in ("name", "peak_flops_per_s", "memory_bytes", "memory_bandwidth_bytes_per_s", "intra_node_link"):
        if data.get(key) is None:
            raise InputError("required field missing", source=source, where=key)
    fields = {k: v for k, v in data.items() if k != "intra_node_link"}
    for key in ("name", "description"):
        if key in fields and (not isinstance(fields[key], str) or not fields[key].strip()):
            raise InputError("expected text", source=source, where=key, value=fields[key])
    if not isinstance(data["peak_flops_per_s"], dict):
        raise InputError("expected a mapping of dtype to FLOP/s", source=source, where="peak_flops_per_s",
                         value=data["peak_flops_per_s"])
    fields["peak_flops_per_s"] = {k: _number(v, source, f"peak_flops_per_s.{k}", positive=True)
                                  for k, v in data["peak_flops_per_s"].items()}
    for key in ("memory_bytes", "memory_bandwidth_bytes_per_s", "l2_cache_bytes", "tdp_w", "price_per_hour_usd"):
        if fields.get(key) is not None or (key == "price_per_hour_usd" and key in fields):  # (a price has no 'unknown')
            fields[key] = _number(fields[key], source, key, positive=key != "price_per_hour_usd")
    for key in ("sm_count", "pcie_generation"):
        value = fields.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise InputError("expected a positive integer (or leave it out)", source=source, where=key, value=value)
    fields["sources"] = _sources(fields.get("sources"), source)
    fields.setdefault("description", fields["name"])
    try:
        return GpuSpec(intra_node_link=_link(data["intra_node_link"], source), path=str(source), **fields)
    except InputError as exc:
        raise exc.located(source=source) from None


def _link(link: Any, source: Path) -> LinkSpec:
    """``intra_node_link: {kind, bandwidth_bytes_per_s, latency_s}``, every key checked."""
    if not isinstance(link, dict):
        raise InputError(f"expected a mapping {{{', '.join(LINK_KEYS)}}}", source=source, where="intra_node_link",
                         value=link)
    for key in link:
        if key not in LINK_KEYS:
            raise InputError(f"unknown link field{did_you_mean(key, LINK_KEYS)}; expected one of "
                             f"{', '.join(LINK_KEYS)}", source=source, where=f"intra_node_link.{key}")
    for key in LINK_KEYS:
        if link.get(key) is None:
            raise InputError("required field missing", source=source, where=f"intra_node_link.{key}")
    if not isinstance(link["kind"], str) or not link["kind"].strip():
        raise InputError("expected a link name such as nvlink", source=source, where="intra_node_link.kind",
                         value=link["kind"])
    bandwidth = _number(link["bandwidth_bytes_per_s"], source, "intra_node_link.bandwidth_bytes_per_s", positive=True)
    return LinkSpec(link["kind"], bandwidth, _number(link["latency_s"], source, "intra_node_link.latency_s",
                                                     positive=False))


def _sources(value: Any, source: Path) -> tuple[str, ...]:
    """``sources``: a list of strings (citations), or absent."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("expected a list of citations (text)", source=source, where="sources", value=value)
    return tuple(value)


def _number(value: Any, source: Path, where: str, *, positive: bool) -> float:
    """A finite number > 0 (``positive``) or >= 0; YAML strings like '989.4e12' are accepted (PyYAML reads
    exponents without a dot as str)."""
    number = None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            number = None
    if number is None or not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise InputError("expected a positive number" if positive else "expected a number >= 0", source=source,
                         where=where, value=value)
    return number
